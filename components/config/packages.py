"""What `packages.yaml` holds: each package's entry (name, path, needs, waits, manifests,
secrets, allowPrune, ...), checked key by key."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path

from components.config.model import (
    APPLY_TIMEOUT_FACTOR,
    CONFIG_KEYS,
    DEFAULT_DESTROY_TIMEOUT,
    DEFAULT_RECONCILE_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
    CatalogConfig,
    ManifestSpec,
    PackageSpec,
    SecretSpec,
    WaitSpec,
)
from components.config.problems import Problems
from components.step.prune import CLUSTER_SCOPED_KINDS, ENTRY, GUARDED_KINDS

__all__ = [
    "CONFIG_KEY_NAME",
    "DNS_LABEL",
    "DNS_SUBDOMAIN",
    "SECRET_DATA_KEY",
    "check_names",
    "check_secrets",
    "parse_package",
    "secret_config_keys",
]

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
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SECRET_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
# A key of the stack's `kpt-catalog:` namespace, as `pulumi config set` accepts it.
CONFIG_KEY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


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


def _check_wait_for(problems: Problems, key: str, condition: str, resource: str) -> None:
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


def _parse_wait(problems: Problems, key: str, raw: object) -> WaitSpec | None:
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


def _parse_manifest(problems: Problems, key: str, raw: object) -> ManifestSpec | None:
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


def _parse_allow_prune(problems: Problems, key: str, raw: object) -> tuple[str, ...]:
    """`allowPrune`: what the apply's prune check lets kpt prune (components/step/prune/)."""
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


def _parse_secret(problems: Problems, key: str, raw: object) -> SecretSpec | None:
    if not isinstance(raw, dict):
        problems.add(key, f"expected an object with name, namespace and data, found {raw!r}")
        return None
    problems.unknown_keys(key, raw, _SECRET_KEYS)
    name = problems.string(f"{key}.name", raw.get("name"), required=True)
    if name and not (DNS_SUBDOMAIN.fullmatch(name) and len(name) <= 253):
        problems.add(f"{key}.name", f"{name!r} is not a Kubernetes object name (a DNS subdomain)")
    namespace = problems.string(f"{key}.namespace", raw.get("namespace"), required=True)
    if namespace and not DNS_LABEL.fullmatch(namespace):
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
        if not isinstance(secret_key, str) or not SECRET_DATA_KEY.fullmatch(secret_key):
            problems.add(where, "a Secret key may hold only letters, digits, '-', '_' and '.'")
        elif not isinstance(config_key, str) or not CONFIG_KEY_NAME.fullmatch(config_key):
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


def _parse_secrets(problems: Problems, key: str, raw: object) -> tuple[SecretSpec, ...]:
    parsed = (
        _parse_secret(problems, f"{key}[{i}]", s) for i, s in enumerate(problems.listing(key, raw))
    )
    return tuple(s for s in parsed if s is not None)


def check_secrets(problems: Problems, packages: Sequence[PackageSpec]) -> None:
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


def parse_package(problems: Problems, key: str, raw: object) -> PackageSpec | None:
    if not isinstance(raw, dict):
        problems.add(key, f"expected an object with name and path, found {raw!r}")
        return None
    problems.unknown_keys(key, raw, _PACKAGE_KEYS)
    name = problems.string(f"{key}.name", raw.get("name"), required=True)
    if name and not DNS_LABEL.fullmatch(name):
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
        if not isinstance(old, str) or not DNS_LABEL.fullmatch(old):
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
        former_names=tuple(o for o in former if isinstance(o, str) and DNS_LABEL.fullmatch(o)),
        allow_prune=_parse_allow_prune(problems, f"{key}.allowPrune", raw.get("allowPrune")),
    )


def check_names(problems: Problems, packages: Sequence[PackageSpec]) -> None:
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
