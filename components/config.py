"""The stack's configuration, validated once into frozen dataclasses.

Everything here is pure: it takes plain values (as `pulumi.Config` or a stack file gives them) and
either returns a `CatalogConfig` or raises `ConfigError` listing *every* problem found, each naming
the config key, what was found and what was expected. Nothing touches the cluster or Pulumi.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import yaml

from components.step.prune import CLUSTER_SCOPED_KINDS, ENTRY, GUARDED_KINDS

__all__ = [
    "CONFIG_KEYS",
    "DEFAULT_CATALOG_DIR",
    "DEFAULT_KUBECONFIG",
    "GRAPH_FILE",
    "CatalogConfig",
    "ConfigError",
    "ConfigSource",
    "Located",
    "LocatedList",
    "ManifestSpec",
    "PackageSpec",
    "SecretSpec",
    "WaitSpec",
    "format_duration",
    "graph_and_stack",
    "load_with_lines",
    "local_path",
    "locate",
    "parse_config",
    "parse_duration",
    "secret_config_keys",
    "structured_getter",
    "yaml_error_text",
]

DEFAULT_CATALOG_DIR = "/var/lib/incus-rke2-cluster/kpt/catalog"
# kubectl's own default; stored as written, so a destroy months later reads the same file.
DEFAULT_KUBECONFIG = "~/.kube/config"
# The package graph, curated by hand at the project root: no Pulumi command rewrites it.
GRAPH_FILE = "packages.yaml"
DEFAULT_RECONCILE_TIMEOUT = 120
DEFAULT_DESTROY_TIMEOUT = 300
DEFAULT_WAIT_TIMEOUT = 120
# kpt's --reconcile-timeout bounds each wait phase, and a package has one phase per dependency
# level (namespace, CRD, objects, ...), so the whole apply may legitimately take several times it.
APPLY_TIMEOUT_FACTOR = 4

# Top-level keys of the `kpt-catalog:` namespace that the program reads.
CONFIG_KEYS = (
    "catalogDir",
    "kubeconfig",
    "context",
    "clusterIdentifier",
    "reapplyGeneration",
    "clusterProvidedKinds",
    "packages",
    "reapply",
)
_PACKAGE_KEYS = frozenset(
    {
        "name",
        "path",
        "needs",
        "reconcileTimeout",
        "applyTimeout",
        "destroyTimeout",
        "serverSide",
        "protect",
        "waitBefore",
        "waitAfter",
        "manifests",
        "adopt",
        "secrets",
        "formerNames",
        "allowPrune",
    }
)
_WAIT_KEYS = frozenset({"resource", "for", "namespace", "selector", "timeout", "report"})
_MANIFEST_KEYS = frozenset({"file", "waitFor", "timeout"})
_SECRET_KEYS = frozenset({"name", "namespace", "data"})
# A Secret's name is a DNS subdomain; its data keys are what the API server accepts.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SECRET_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
# A key of the stack's `kpt-catalog:` namespace, as `pulumi config set` accepts it.
_CONFIG_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# Go's time.ParseDuration, which kpt and kubectl use for every timeout: an optional sign, then
# one or more decimal numbers each with a unit (go/src/time/format.go, ParseDuration).
_GO_DURATION = re.compile(r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+")
_GO_PART = re.compile(r"(\d*)(?:\.(\d*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_NANOSECONDS = {"ns": 1, "us": 10**3, "\u00b5s": 10**3, "\u03bcs": 10**3, "ms": 10**6}
_NANOSECONDS |= {"s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_GO_MAX_NANOSECONDS = 2**63 - 1  # a Go Duration is an int64 of nanoseconds
# kubectl wait's --for forms (kubernetes/kubectl pkg/cmd/wait/wait.go, conditionFuncFor: `delete`
# and `create` in any case, `condition=<name>[=<value>]`, `jsonpath=<expression>[=<value>]`);
# `rollout` is this program's own: it runs `kubectl rollout status`.
_WAIT_FORMS = (
    "rollout, delete, create, condition=<Type>[=<value>] or jsonpath=<expression>[=<value>]"
)
# The kinds `kubectl rollout status` can follow (kubectl pkg/polymorphichelpers/rollout_status.go).
_ROLLOUT_TYPES = frozenset(
    {"deployment", "deployments", "deploy", "daemonset", "daemonsets", "ds"}
    | {"statefulset", "statefulsets", "sts"}
)


class ConfigError(ValueError):
    """The stack configuration or the catalog it names is not usable; lists every problem."""

    def __init__(
        self,
        problems: Sequence[str],
        partial: CatalogConfig | None = None,
        *,
        sources: Sequence[object] = (),
    ) -> None:
        self.problems = tuple(problems)
        """Each problem as `key: what is wrong`, e.g. `packages[4].need: unknown key; ...`."""
        self.partial = partial
        """What could be parsed despite the problems, so the catalog's files can be checked too."""
        self.sources = sources
        """The packages' entries as read (`CatalogConfig.package_sources`), for `locate`."""
        self.located = tuple(locate(self.problems, sources))
        """The problems as printed: each led by the file, line and package it is about."""
        lines = "\n".join(f"  - {problem}" for problem in self.located)
        super().__init__(f"kpt-catalog: {len(self.problems)} configuration problem(s):\n{lines}")


@dataclass(frozen=True)
class WaitSpec:
    """One readiness gate, with `kubectl wait` meaning."""

    resource: str
    """What to wait for, as kubectl names it: `crd/connectors.tailscale.com`, `deployment/x`."""
    condition: str
    """The `for` key: `condition=Established`, `jsonpath={...}`, `delete`, or `rollout`."""
    namespace: str
    """Namespace of a namespaced resource; empty for cluster-scoped ones."""
    selector: str
    """Label selector (`-l`), empty for none."""
    timeout: int
    """Seconds kubectl may wait; the step's hard deadline is a little longer."""
    report: str
    """A jsonpath read after the wait succeeded and exported as a stack output; empty for none."""

    @property
    def target(self) -> str:
        """What is waited for, as a user reads it: `deployment/x`, or `svc -l app=x`."""
        return f"{self.resource} -l {self.selector}" if self.selector else self.resource

    def as_step_input(self) -> dict[str, str | int]:
        """The wait as the step runner reads it from `KPT_CATALOG_WAITS`."""
        return {
            "resource": self.resource,
            "for": self.condition,
            "namespace": self.namespace,
            "selector": self.selector,
            "timeout": self.timeout,
            "report": self.report,
        }


@dataclass(frozen=True)
class ManifestSpec:
    """A YAML file created as native Kubernetes resources after the package's waits."""

    file: str
    """Path relative to `catalogDir`."""
    wait_for: str
    """Condition the provider waits for on each object (`condition=ConnectorReady`), or empty."""
    timeout: int
    """Seconds the provider may take to create each object, including `wait_for`."""


@dataclass(frozen=True)
class SecretSpec:
    """A Kubernetes Secret whose values come from stack config set with `--secret`."""

    name: str
    """The Secret's name (`operator-oauth`)."""
    namespace: str
    """Its namespace; the package creates it (or it already exists)."""
    data: tuple[tuple[str, str], ...]
    """(key in the Secret, `kpt-catalog:` config key holding its value), in the order written."""

    @property
    def config_keys(self) -> tuple[str, ...]:
        """The stack config keys this Secret's values come from."""
        return tuple(config_key for _secret_key, config_key in self.data)


@dataclass(frozen=True)
class PackageSpec:
    """One kpt package of the catalog and its place in the graph."""

    name: str
    """Unique DNS label; names the component and its children (part of every URN)."""
    path: str
    """Package directory relative to `catalogDir`."""
    needs: tuple[str, ...]
    """Packages that must be fully deployed (waits and manifests included) before this one."""
    reconcile_timeout: int
    """Seconds: kpt's `--reconcile-timeout` (per wait phase) and the status check's bound."""
    apply_timeout: int
    """Seconds: hard deadline on the `kpt live apply` process."""
    destroy_timeout: int
    """Seconds: hard deadline on the `kpt live destroy` process."""
    server_side: bool
    """Apply with `--server-side` (large CRDs such as Envoy Gateway's)."""
    protect: bool
    """Pulumi `protect`: `make destroy` leaves the package in place."""
    wait_before: tuple[WaitSpec, ...]
    """Gates run before the apply (CRDs another controller registers at run time)."""
    wait_after: tuple[WaitSpec, ...]
    """Gates run after the apply (rollouts, CRDs Established, LoadBalancer addresses)."""
    manifests: tuple[ManifestSpec, ...]
    """Native Kubernetes resources created after `wait_after`."""
    adopt: bool = False
    """Apply with `--inventory-policy=adopt`: kpt takes over objects that exist in the cluster
    outside any inventory (default: kpt's `strict`, which skips them)."""
    secrets: tuple[SecretSpec, ...] = ()
    """Kubernetes Secrets the package's workloads need, their values from secret stack config."""
    former_names: tuple[str, ...] = ()
    """Names the package had before: its component and children carry aliases to them, so a
    rename changes nothing in the cluster."""
    allow_prune: tuple[str, ...] = ()
    """CRDs, Namespaces and PVCs kpt may prune from this package (`Kind`, `Kind/name`,
    `Kind/namespace/name`); the apply refuses to prune any other."""

    @property
    def worst_case_seconds(self) -> int:
        """Longest this package may take to deploy, from its timeouts."""
        status_bound = self.reconcile_timeout
        waits = sum(w.timeout for w in (*self.wait_before, *self.wait_after))
        return self.apply_timeout + status_bound + waits + sum(m.timeout for m in self.manifests)


@dataclass(frozen=True)
class CatalogConfig:
    """The whole stack configuration."""

    catalog_dir: Path
    """Absolute catalog root on this machine: where the program reads the packages' files."""
    kubeconfig: str
    """Kubeconfig path as written (`~` and relative paths kept), handed to kpt, kubectl and the
    Kubernetes provider, which resolve it where they run (the project directory)."""
    context: str
    """Kubeconfig context every step and the provider use, whatever the shell's current one is."""
    cluster_identifier: str
    """Stable cluster identity for the Kubernetes provider (a changed URL must not replace)."""
    reapply_generation: str
    """Bump to re-run every package's apply on the next `pulumi up` (corrects drift)."""
    cluster_provided_kinds: frozenset[str]
    """`group/Kind` entries that the cluster provides without any package or wait."""
    packages: tuple[PackageSpec, ...]
    """In configuration order; the deploy order is derived by `components.graph`."""
    catalog_dir_as_written: str = DEFAULT_CATALOG_DIR
    """`catalogDir` as written: what reaches state, so that every checkout stores the same."""
    kubeconfig_path: Path = field(default_factory=lambda: Path(DEFAULT_KUBECONFIG).expanduser())
    """`kubeconfig` resolved on this machine, to check that it exists."""
    kubeconfig_required: bool = True
    """A missing kubeconfig is a problem (preview, up); the offline views only warn."""
    reapply_tokens: Mapping[str, str] = field(default_factory=dict)
    """`kpt-catalog:reapply`: per package, a token whose change re-runs that package's apply and
    gates on the next `pulumi up` (`make reapply PACKAGE=...` sets it)."""
    package_sources: Sequence[object] = field(default=(), compare=False, repr=False)
    """Each package's entry as read (with its lines when read from packages.yaml), so that a
    problem found later can still say where the package is written (`locate`)."""

    def package_dir_as_written(self, package: PackageSpec) -> str:
        """The package directory as the steps get it: `catalogDir` as written joined with the
        package's path (`examples/catalog/ha/kube-vip`, `~/catalog/...`, or absolute)."""
        return str(PurePosixPath(self.catalog_dir_as_written) / package.path)

    def package(self, name: str) -> PackageSpec:
        """The package named `name`."""
        return next(p for p in self.packages if p.name == name)


def parse_duration(text: str) -> int:
    """Seconds in a Go duration (`90s`, `3m`, `1h30m`, `1.5h`, `500ms`) as kpt and kubectl read
    it, rounded up to whole seconds; ValueError when Go would refuse it, or it is not positive."""
    shown = repr(text if not isinstance(text, str) or len(text) <= 40 else text[:40] + "...")
    if text == "0":
        raise ValueError(f"{shown} must be longer than zero")
    if not isinstance(text, str) or not _GO_DURATION.fullmatch(text):
        raise ValueError(f"{shown} is not a duration such as 90s, 3m or 1h30m")
    nanoseconds = 0
    for whole, fraction, unit in _GO_PART.findall(text):
        if len(whole) > 19:  # no int64 of nanoseconds has more digits
            raise ValueError(f"{shown} is too long a duration (at most about 290 years)")
        scale = _NANOSECONDS[unit]
        fraction = fraction[:19]  # finer than a nanosecond even in hours: Go drops it too
        nanoseconds += int(whole or 0) * scale + int(fraction or 0) * scale // 10 ** len(fraction)
        if nanoseconds > _GO_MAX_NANOSECONDS:
            raise ValueError(f"{shown} is too long a duration (at most about 290 years)")
    if text.startswith("-") or nanoseconds <= 0:
        raise ValueError(f"{shown} must be longer than zero")
    return -(-nanoseconds // 10**9)


def format_duration(seconds: int) -> str:
    """`150` -> `2m30s`: how durations read in messages and the plan."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{secs}s" if secs or not text else "")


class _Problems:
    """Collects problems so that one run reports all of them."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.items.append(f"{key}: {message}")

    def string(self, key: str, value: object, *, required: bool = False, default: str = "") -> str:
        if value is None:
            if required:
                self.add(key, "is required (a string)")
            return default
        if not isinstance(value, str) or (required and not value.strip()):
            self.add(key, f"expected a non-empty string, found {value!r}")
            return default
        return value

    def boolean(self, key: str, value: object) -> bool:
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.add(key, f"expected true or false, found {value!r}")
        return False

    def duration(self, key: str, value: object, default: int) -> int:
        if value is None:
            return default
        try:
            return parse_duration(value)  # type: ignore[arg-type]  # checked inside
        except ValueError as error:
            self.add(
                key, f"expected a duration greater than zero such as 90s, 3m or 1h30m: {error}"
            )
            return default

    def listing(self, key: str, value: object) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.add(key, f"expected a list, found {type(value).__name__} {value!r}")
            return []
        return value

    def unknown_keys(self, key: str, value: Mapping[str, Any], allowed: frozenset[str]) -> None:
        for extra in sorted(set(value) - allowed, key=str):
            nearest = difflib.get_close_matches(str(extra), sorted(allowed), n=1, cutoff=0.6)
            hint = f"did you mean {nearest[0]!r}? " if nearest else ""
            self.add(
                f"{key}.{extra}",
                f"unknown key; {hint}expected one of {', '.join(sorted(allowed))}",
            )


def _check_wait_for(problems: _Problems, key: str, condition: str, resource: str) -> None:
    """The `for` grammar kubectl accepts (see _WAIT_FORMS), and rollouts of kinds that roll out."""
    name, _, rest = condition.partition("=")
    if condition == "rollout":
        kind = resource.partition("/")[0].lower().removesuffix(".apps").removesuffix(".v1")
        if kind.removesuffix(".apps") not in _ROLLOUT_TYPES:
            problems.add(
                key,
                f"rollout works only for a deployment, daemonset or statefulset, not {resource!r};"
                " wait for condition=<Type> instead",
            )
    elif condition.lower() not in ("delete", "create") and not (
        name in ("condition", "jsonpath") and rest.partition("=")[0]
    ):
        hint = f"; did you mean condition={condition}?" if "=" not in condition else ""
        problems.add(key, f"expected one of {_WAIT_FORMS}, found {condition!r}{hint}")


def _parse_wait(problems: _Problems, key: str, raw: object) -> WaitSpec | None:
    if not isinstance(raw, dict):
        problems.add(key, f"expected an object with resource, for and timeout, found {raw!r}")
        return None
    problems.unknown_keys(key, raw, _WAIT_KEYS)
    resource = problems.string(f"{key}.resource", raw.get("resource"), required=True)
    condition = problems.string(f"{key}.for", raw.get("for"), required=True)
    selector = problems.string(f"{key}.selector", raw.get("selector"))
    if resource and "/" not in resource and not selector:
        problems.add(
            f"{key}.resource",
            f"expected TYPE/NAME such as deployment/operator (or a type with selector), "
            f"found {resource!r}",
        )
    if "/" in resource and selector:
        problems.add(
            f"{key}.selector",
            f"kubectl refuses a name ({resource!r}) together with a selector: give the resource "
            "type alone (such as svc) with the selector, or drop the selector",
        )
    if condition:
        _check_wait_for(problems, f"{key}.for", condition, resource)
    wait = WaitSpec(
        resource=resource,
        condition=condition,
        namespace=problems.string(f"{key}.namespace", raw.get("namespace")),
        selector=selector,
        timeout=problems.duration(f"{key}.timeout", raw.get("timeout"), DEFAULT_WAIT_TIMEOUT),
        report=problems.string(f"{key}.report", raw.get("report")),
    )
    for member, value in wait.as_step_input().items():
        if isinstance(value, str) and value.startswith("-"):
            problems.add(
                f"{key}.{member}",
                f"{value!r} starts with '-', which kubectl would read as an option",
            )
    return wait


def _parse_manifest(problems: _Problems, key: str, raw: object) -> ManifestSpec | None:
    if isinstance(raw, str):
        raw = {"file": raw}
    if not isinstance(raw, dict):
        problems.add(key, f"expected a file path or an object with file, found {raw!r}")
        return None
    problems.unknown_keys(key, raw, _MANIFEST_KEYS)
    return ManifestSpec(
        file=problems.string(f"{key}.file", raw.get("file"), required=True),
        wait_for=problems.string(f"{key}.waitFor", raw.get("waitFor")),
        timeout=problems.duration(f"{key}.timeout", raw.get("timeout"), 600),
    )


_ALLOW_PRUNE_SHAPES = (
    "Kind, Kind/name (CustomResourceDefinition, Namespace) or Kind/namespace/name "
    "(PersistentVolumeClaim), the Kind one of " + ", ".join(GUARDED_KINDS)
)


def _parse_allow_prune(problems: _Problems, key: str, raw: object) -> tuple[str, ...]:
    """`allowPrune`: what the apply's prune check lets kpt prune (components/step/prune.py)."""
    allowed: list[str] = []
    for index, entry in enumerate(problems.listing(key, raw)):
        parts = entry.split("/") if isinstance(entry, str) and ENTRY.fullmatch(entry) else [""]
        # A name alone for the cluster-scoped kinds, namespace and name for a PVC.
        scoped = len(parts) == 1 or (len(parts) == 2) == (parts[0] in CLUSTER_SCOPED_KINDS)
        if parts[0] not in GUARDED_KINDS or not scoped:
            problems.add(f"{key}[{index}]", f"expected {_ALLOW_PRUNE_SHAPES}, found {entry!r}")
        else:
            allowed.append(entry)
    return tuple(allowed)


def _parse_reapply(
    problems: _Problems, raw: object, packages: Sequence[PackageSpec]
) -> dict[str, str]:
    """`kpt-catalog:reapply`: {package: token}, as `pulumi config set --path` writes it."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add(
            "reapply",
            f"expected a mapping of package name to token (`make reapply PACKAGE=<name>` sets "
            f"one), found {raw!r:.80}",
        )
        return {}
    known = {p.name for p in packages}
    tokens: dict[str, str] = {}
    for name, token in raw.items():
        key = f"reapply.{name}"
        if name not in known:
            problems.add(
                key,
                f"no package named {name!r} in this stack (known: {', '.join(sorted(known))}); "
                f"remove it with `pulumi config rm --path 'kpt-catalog:{key}'`",
            )
        elif isinstance(token, bool) or not isinstance(token, (str, int)) or not str(token):
            problems.add(key, f"expected a token (a UTC timestamp or a number), found {token!r}")
        else:
            tokens[name] = str(token)
    return tokens


def _parse_secret(problems: _Problems, key: str, raw: object) -> SecretSpec | None:
    if not isinstance(raw, dict):
        problems.add(key, f"expected an object with name, namespace and data, found {raw!r}")
        return None
    problems.unknown_keys(key, raw, _SECRET_KEYS)
    name = problems.string(f"{key}.name", raw.get("name"), required=True)
    if name and not (_DNS_SUBDOMAIN.fullmatch(name) and len(name) <= 253):
        problems.add(f"{key}.name", f"{name!r} is not a Kubernetes object name (a DNS subdomain)")
    namespace = problems.string(f"{key}.namespace", raw.get("namespace"), required=True)
    if namespace and not _DNS_LABEL.fullmatch(namespace):
        problems.add(f"{key}.namespace", f"{namespace!r} is not a namespace name (a DNS label)")
    data = raw.get("data")
    if not isinstance(data, dict) or not data:
        problems.add(
            f"{key}.data",
            "expected a mapping of Secret key to stack config key, such as "
            f"{{client_id: tailscaleOauthClientId}}, found {data!r}",
        )
        data = {}
    pairs: list[tuple[str, str]] = []
    for secret_key, config_key in data.items():
        where = f"{key}.data.{secret_key}"
        if not isinstance(secret_key, str) or not _SECRET_DATA_KEY.fullmatch(secret_key):
            problems.add(where, "a Secret key may hold only letters, digits, '-', '_' and '.'")
        elif not isinstance(config_key, str) or not _CONFIG_KEY.fullmatch(config_key):
            problems.add(
                where,
                "expected the name of a kpt-catalog: stack config key set with "
                f"`pulumi config set --secret`, found {config_key!r}",
            )
        elif config_key in CONFIG_KEYS:
            problems.add(
                where, f"{config_key!r} is a setting of this program, not a place for a secret"
            )
        else:
            pairs.append((secret_key, config_key))
    return SecretSpec(name=name, namespace=namespace, data=tuple(pairs))


def _parse_secrets(problems: _Problems, key: str, raw: object) -> tuple[SecretSpec, ...]:
    parsed = (
        _parse_secret(problems, f"{key}[{i}]", s) for i, s in enumerate(problems.listing(key, raw))
    )
    return tuple(s for s in parsed if s is not None)


def _check_secrets(problems: _Problems, packages: Sequence[PackageSpec]) -> None:
    """One Secret, one owner: two declarations of one namespace/name would fight over its data."""
    owners: dict[tuple[str, str], str] = {}
    for index, package in enumerate(packages):
        names = [secret.name for secret in package.secrets]
        for s_index, secret in enumerate(package.secrets):
            if secret.name and names.index(secret.name) != s_index:
                problems.add(
                    f"packages[{index}].secrets[{s_index}].name",
                    f"{secret.name!r} is also the name of secrets[{names.index(secret.name)}]; "
                    f"the Secrets of one package need distinct names (each is the Pulumi "
                    f"resource {package.name}-secret-<name>)",
                )
            where = (secret.namespace, secret.name)
            if where in owners:
                problems.add(
                    f"packages[{index}].secrets[{s_index}]",
                    f"Secret {secret.namespace}/{secret.name} is also declared by {owners[where]}; "
                    "declare it once",
                )
            owners.setdefault(where, f"packages[{index}] ({package.name!r})")


def secret_config_keys(config: CatalogConfig) -> frozenset[str]:
    """The `kpt-catalog:` stack config keys the catalog's Secrets read (set with `--secret`)."""
    return frozenset(k for p in config.packages for s in p.secrets for k in s.config_keys)


def _parse_package(problems: _Problems, key: str, raw: object) -> PackageSpec | None:
    if not isinstance(raw, dict):
        problems.add(key, f"expected an object with name and path, found {raw!r}")
        return None
    problems.unknown_keys(key, raw, _PACKAGE_KEYS)
    name = problems.string(f"{key}.name", raw.get("name"), required=True)
    if name and not _DNS_LABEL.fullmatch(name):
        problems.add(
            f"{key}.name",
            f"{name!r} is not a DNS label (lower-case letters, digits and '-', at most 63)",
        )
    path = problems.string(f"{key}.path", raw.get("path"), required=True)
    if path and Path(path).is_absolute():
        problems.add(f"{key}.path", f"expected a path relative to catalogDir, found {path!r}")
    needs = problems.listing(f"{key}.needs", raw.get("needs"))
    for index, need in enumerate(needs):
        if not isinstance(need, str):
            problems.add(f"{key}.needs[{index}]", f"expected a package name, found {need!r}")
    reconcile = problems.duration(
        f"{key}.reconcileTimeout", raw.get("reconcileTimeout"), DEFAULT_RECONCILE_TIMEOUT
    )

    def gates(field: str) -> tuple[WaitSpec, ...]:
        parsed = (
            _parse_wait(problems, f"{key}.{field}[{i}]", w)
            for i, w in enumerate(problems.listing(f"{key}.{field}", raw.get(field)))
        )
        return tuple(w for w in parsed if w is not None)

    former = problems.listing(f"{key}.formerNames", raw.get("formerNames"))
    for index, old in enumerate(former):
        if not isinstance(old, str) or not _DNS_LABEL.fullmatch(old):
            problems.add(
                f"{key}.formerNames[{index}]",
                f"expected a former package name (a DNS label), found {old!r}",
            )
    manifests = (
        _parse_manifest(problems, f"{key}.manifests[{i}]", m)
        for i, m in enumerate(problems.listing(f"{key}.manifests", raw.get("manifests")))
    )
    return PackageSpec(
        name=name,
        path=path,
        needs=tuple(n for n in needs if isinstance(n, str)),
        reconcile_timeout=reconcile,
        apply_timeout=problems.duration(
            f"{key}.applyTimeout", raw.get("applyTimeout"), APPLY_TIMEOUT_FACTOR * reconcile
        ),
        destroy_timeout=problems.duration(
            f"{key}.destroyTimeout", raw.get("destroyTimeout"), DEFAULT_DESTROY_TIMEOUT
        ),
        server_side=problems.boolean(f"{key}.serverSide", raw.get("serverSide")),
        protect=problems.boolean(f"{key}.protect", raw.get("protect")),
        wait_before=gates("waitBefore"),
        wait_after=gates("waitAfter"),
        manifests=tuple(m for m in manifests if m is not None),
        adopt=problems.boolean(f"{key}.adopt", raw.get("adopt")),
        secrets=_parse_secrets(problems, f"{key}.secrets", raw.get("secrets")),
        former_names=tuple(o for o in former if isinstance(o, str) and _DNS_LABEL.fullmatch(o)),
        allow_prune=_parse_allow_prune(problems, f"{key}.allowPrune", raw.get("allowPrune")),
    )


def _check_names(problems: _Problems, packages: Sequence[PackageSpec]) -> None:
    seen: dict[str, int] = {}
    for index, package in enumerate(packages):
        if package.name in seen:
            problems.add(
                f"packages[{index}].name",
                f"duplicate package name {package.name!r} (also packages[{seen[package.name]}])",
            )
        seen.setdefault(package.name, index)
    for index, package in enumerate(packages):
        for need in package.needs:
            if need not in seen:
                nearest = difflib.get_close_matches(need, sorted(seen), n=1, cutoff=0.6)
                hint = f"did you mean {nearest[0]!r}? " if nearest else ""
                problems.add(
                    f"packages[{index}].needs",
                    f"package {package.name!r} needs {need!r}, which is not a package of this "
                    f"stack; {hint}the packages are {', '.join(sorted(seen))}",
                )
            elif need == package.name:
                problems.add(f"packages[{index}].needs", f"package {package.name!r} needs itself")
    renamed: dict[str, int] = {}
    for index, package in enumerate(packages):
        for old in package.former_names:
            if old in seen:
                problems.add(
                    f"packages[{index}].formerNames",
                    f"{old!r} is the name of a current package (packages[{seen[old]}]); a former "
                    "name must be one no package has any more",
                )
            elif old in renamed and renamed[old] != index:
                problems.add(
                    f"packages[{index}].formerNames",
                    f"{old!r} is also a former name of packages[{renamed[old]}]; only one package "
                    "can take over what was deployed under it",
                )
            renamed.setdefault(old, index)


def local_path(path: str, base_dir: Path) -> Path:
    """`path` as this machine reads it: `~` expanded, a relative path taken from `base_dir` (the
    project directory, where Pulumi runs the steps and the Kubernetes provider)."""
    expanded = Path(path).expanduser()
    return expanded if expanded.is_absolute() else base_dir / expanded


def _unknown_top_level_keys(problems: _Problems, given: Iterable[str]) -> None:
    for key in sorted(set(given) - set(CONFIG_KEYS)):
        nearest = difflib.get_close_matches(key, CONFIG_KEYS, n=1, cutoff=0.6)
        if not nearest:  # a case slip (`kubeConfig`) is the commonest typo
            nearest = [k for k in CONFIG_KEYS if k.lower() == key.lower()]
        hint = f"did you mean kpt-catalog:{nearest[0]}? " if nearest else ""
        problems.add(
            f"kpt-catalog:{key}",
            f"unknown key; {hint}the keys are {', '.join(CONFIG_KEYS)}",
        )


ConfigSource = Callable[[str], object] | Mapping[str, object]
"""The stack's `kpt-catalog:` values: a mapping (whose unknown keys are reported), or a `get`."""


def parse_config(
    get: ConfigSource, *, stack: str, base_dir: Path, kubeconfig_required: bool = True
) -> CatalogConfig:
    """Validate the raw values `get(key)` returns for each key of `CONFIG_KEYS`.

    Given a mapping, also report its keys that are not config keys. `base_dir` (the project
    directory) is where a relative `catalogDir` or `kubeconfig` is read from; both are kept as
    written for the steps. Graph problems that need the whole graph (cycles) are checked by
    `components.graph`; files by `components.scan`.
    """
    problems = _Problems()
    given: frozenset[str] = frozenset()
    if isinstance(get, Mapping):
        given = frozenset(get)
        get = get.get
    catalog_dir = problems.string("catalogDir", get("catalogDir"), default=DEFAULT_CATALOG_DIR)
    # Never empty: an empty kubeconfig would be filled from the shell that runs a later destroy.
    kubeconfig = (
        problems.string("kubeconfig", get("kubeconfig"), default=DEFAULT_KUBECONFIG).strip()
        or DEFAULT_KUBECONFIG
    )
    raw_context = get("context")
    context = problems.string("context", raw_context)
    if raw_context is None or (isinstance(raw_context, str) and not raw_context.strip()):
        problems.add(
            "context",
            "is required: the kubeconfig context of the cluster to deploy to (list them with "
            "`kubectl config get-contexts -o name`; RKE2 names its own `default`), e.g. "
            "`pulumi config set kpt-catalog:context default`",
        )
    raw_kinds = problems.listing("clusterProvidedKinds", get("clusterProvidedKinds"))
    for index, kind in enumerate(raw_kinds):
        if not isinstance(kind, str) or "/" not in kind:
            problems.add(
                f"clusterProvidedKinds[{index}]",
                f"expected group/Kind such as cilium.io/CiliumNode, found {kind!r}",
            )
    generation = get("reapplyGeneration")
    raw_packages = get("packages")
    if raw_packages is None:
        problems.add(
            "packages",
            f"is required: a list of {{name, path, needs, ...}} objects in {GRAPH_FILE}",
        )
    packages = [
        p
        for i, raw in enumerate(problems.listing("packages", raw_packages))
        if (p := _parse_package(problems, f"packages[{i}]", raw)) is not None
    ]
    if raw_packages is not None and not packages and not problems.items:
        problems.add("packages", "expected at least one package, found an empty list")
    _check_names(problems, packages)
    reapply_tokens = _parse_reapply(problems, get("reapply"), packages)
    _check_secrets(problems, packages)
    # The keys the packages' Secrets read are the stack's too (set with --secret); reported
    # first, as before they were known.
    unknown = _Problems()
    _unknown_top_level_keys(
        unknown, given - {k for p in packages for s in p.secrets for k in s.config_keys}
    )
    problems.items[:0] = unknown.items
    config = CatalogConfig(
        catalog_dir=local_path(catalog_dir, base_dir),
        kubeconfig=kubeconfig,
        context=context,
        cluster_identifier=str(get("clusterIdentifier") or stack),
        reapply_generation="" if generation is None else str(generation),
        cluster_provided_kinds=frozenset(k for k in raw_kinds if isinstance(k, str)),
        packages=tuple(packages),
        catalog_dir_as_written=catalog_dir,
        kubeconfig_path=local_path(kubeconfig, base_dir),
        kubeconfig_required=kubeconfig_required,
        reapply_tokens=reapply_tokens,
        package_sources=raw_packages if isinstance(raw_packages, list) else (),
    )
    if problems.items:
        raise ConfigError(problems.items, partial=config, sources=config.package_sources)
    return config


# Keys whose values are structured (YAML lists/objects in the stack file, JSON in Pulumi config).
_STRUCTURED_KEYS = frozenset({"packages", "clusterProvidedKinds", "reapply"})


class _ConfigSource(Protocol):
    def get(self, key: str) -> str | None: ...


def structured_getter(source: _ConfigSource) -> Callable[[str], object]:
    """A `get` for `parse_config` over `pulumi.Config("kpt-catalog")`, which holds structured
    values (lists, objects) as JSON text."""

    def get(key: str) -> object:
        value = source.get(key)
        if value is None:
            return value
        if key not in _STRUCTURED_KEYS:
            # A list or object where text belongs (`context: [a]`) reaches here as its JSON
            # text: handed over as what it is, so that parse_config names the key and the type.
            if value.lstrip().startswith(("[", "{")):
                with contextlib.suppress(json.JSONDecodeError):
                    parsed = json.loads(value)
                    if isinstance(parsed, list | dict):
                        return parsed
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value  # parse_config then says what was expected

    return get


def yaml_error_text(file_name: str, error: yaml.YAMLError) -> str:
    """A YAML syntax error on one line, naming the file, line and column where it was found
    (PyYAML names the text it was given `<unicode string>`)."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        context = f" ({error.context})" if error.context else ""
        return (
            f"{file_name} line {mark.line + 1}, column {mark.column + 1}: not valid YAML: "
            f"{error.problem}{context}"
        )
    return f"{file_name}: not valid YAML: {' '.join(str(error).split())}"


class Located(dict[Any, Any]):
    """A mapping read from a YAML file, knowing the line of each of its keys."""

    source: str = ""
    line: int = 0
    key_lines: dict[str, int]


class LocatedList(list[Any]):
    """A list read from a YAML file, knowing the line of each item."""

    source: str = ""
    line: int = 0
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    """PyYAML's safe loader, keeping the line where each mapping key and list item is written."""

    source = ""


def _located_mapping(loader: _LineLoader, node: yaml.MappingNode) -> Located:
    mapping = Located(loader.construct_mapping(node, deep=True))
    mapping.source, mapping.line = loader.source, node.start_mark.line + 1
    mapping.key_lines = {
        str(key.value): key.start_mark.line + 1
        for key, _ in node.value
        if isinstance(key, yaml.ScalarNode)
    }
    return mapping


def _located_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LocatedList:
    items = LocatedList(loader.construct_sequence(node, deep=True))
    items.source, items.line = loader.source, node.start_mark.line + 1
    items.item_lines = [item.start_mark.line + 1 for item in node.value]
    return items


_LineLoader.add_constructor("tag:yaml.org,2002:map", _located_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _located_sequence)


def load_with_lines(text: str, source: str) -> object:
    """`yaml.safe_load(text)`, its mappings and lists knowing where they are written in
    `source` (a file name), for `locate`."""
    loader = _LineLoader(text)
    loader.source = source
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


_PACKAGE_KEY = re.compile(r"^packages\[(\d+)\]((?:\.[A-Za-z0-9_-]+|\[\d+\])*)(?=: )")
_PATH_PART = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]")


def locate(problems: Iterable[str], sources: Sequence[object]) -> list[str]:
    """Each `packages[i]...: message` problem led by where the package is: the file and line
    of the key it is about (when read from a file) and the package's name, e.g.
    `packages.yaml line 57, package headscale: packages[4].need: unknown key ...`."""
    located = []
    for problem in problems:
        match = _PACKAGE_KEY.match(problem)
        index = int(match.group(1)) if match else -1
        if match is None or index >= len(sources):
            located.append(problem)
            continue
        entry = sources[index]
        where = []
        line = sources.item_lines[index] if isinstance(sources, LocatedList) else 0
        node: object = entry
        for name, position in _PATH_PART.findall(match.group(2)):
            if isinstance(node, Located) and name:
                line = node.key_lines.get(name, line)
                node = node.get(name)
            elif isinstance(node, LocatedList) and position and int(position) < len(node):
                line = node.item_lines[int(position)]
                node = node[int(position)]
            else:
                break
        source = sources.source if isinstance(sources, LocatedList) else ""
        if source and line:
            where.append(f"{source} line {line}")
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str) and name:
            where.append(f"package {name}")
        located.append(f"{', '.join(where)}: {problem}" if where else problem)
    return located


def graph_and_stack(
    stack_values: Mapping[str, object], *, project_dir: Path, stack_file: str
) -> tuple[dict[str, object], tuple[str, ...]]:
    """The values the program reads: the stack's `kpt-catalog:` keys (namespace removed) plus
    `packages` from `packages.yaml` in `project_dir`, and warnings.

    The program, `make plan`, `make status` and the tests all read the graph through this one
    function. A stack that sets `kpt-catalog:packages` itself deploys that graph instead of the
    file's (with a warning naming both). Raises ConfigError when the file cannot be used.
    """
    values = dict(stack_values)
    graph_file = project_dir / GRAPH_FILE
    if "packages" in values:
        warnings = (
            (
                f"kpt-catalog:packages in {stack_file} wins over {GRAPH_FILE}: this stack deploys "
                f"its own graph and ignores {graph_file}; keep the graph in one of the two",
            )
            if graph_file.exists()
            else ()
        )
        return values, warnings
    if not graph_file.is_file():
        return values, ()  # parse_config says that packages are required, and where
    try:
        document = load_with_lines(graph_file.read_text(encoding="utf-8"), GRAPH_FILE)
    except yaml.YAMLError as error:
        raise ConfigError([yaml_error_text(GRAPH_FILE, error)]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([f"{GRAPH_FILE}: cannot be read: {error}"]) from None
    if not isinstance(document, dict) or "packages" not in document:
        raise ConfigError(
            [f"{GRAPH_FILE}: expected a mapping with the key packages, found {document!r:.80}"]
        )
    extra = sorted(str(key) for key in document if key != "packages")
    if extra:
        raise ConfigError(
            [f"{GRAPH_FILE}: unknown key(s) {', '.join(extra)}; the file holds packages only"]
        )
    values["packages"] = document["packages"]
    return values, ()
