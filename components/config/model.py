"""The configuration as the program uses it, once checked: each package's spec and the
stack's, and the error that lists every problem."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from components.config.located import locate

__all__ = [
    "APPLY_TIMEOUT_FACTOR",
    "CONFIG_KEYS",
    "DEFAULT_CATALOG_DIR",
    "DEFAULT_DESTROY_TIMEOUT",
    "DEFAULT_KUBECONFIG",
    "DEFAULT_RECONCILE_TIMEOUT",
    "DEFAULT_WAIT_TIMEOUT",
    "GRAPH_FILE",
    "CatalogConfig",
    "ConfigError",
    "ManifestSpec",
    "PackageSpec",
    "SecretSpec",
    "WaitSpec",
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
