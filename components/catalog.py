"""The catalog as the program deploys it: config + graph + what the package files say.

`load_catalog` is everything that can be known before touching the cluster. It runs at the start
of every preview and up (and of `make plan`), and raises one `ConfigError` listing every problem,
so no resource is registered from a catalog that kpt would reject or misorder.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from components import ownership
from components.config import (
    CatalogConfig,
    ConfigError,
    ConfigSource,
    ManifestSpec,
    PackageSpec,
    WaitSpec,
    parse_config,
)
from components.environment import apply_environment, gate_environment, status_environment
from components.graph import Graph
from components.loaded import Catalog, LoadedPackage
from components.ownership import Owned, check_environment_sizes, check_owners
from components.scan import KindRef, ManifestDocument, PackageScan, load_manifest
from components.scan import scan_package as _scan_package

__all__ = [
    "BUILTIN_GROUPS",
    "Catalog",
    "KindSource",
    "LoadedPackage",
    "kind_providers",
    "kind_source",
    "load",
    "load_catalog",
]

# API groups the Kubernetes API server serves itself (plus kpt's own ResourceGroup).
BUILTIN_GROUPS = frozenset(
    {
        "",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "apiregistration.k8s.io",
        "apps",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "autoscaling",
        "batch",
        "certificates.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "kpt.dev",
        "networking.k8s.io",
        "node.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "resource.k8s.io",
        "scheduling.k8s.io",
        "storage.k8s.io",
    }
)
# Namespaces every cluster has, so an inventory may live there without the package creating it.
_EXISTING_NAMESPACES = frozenset({"default", "kube-system"})


def _plural_candidates(kind: str) -> list[str]:
    """The plural names a CRD for `kind` may use (kubectl's default pluralisation), likeliest
    first."""
    lower = kind.lower()
    if lower.endswith("y") and lower[-2:-1] not in ("a", "e", "i", "o", "u"):
        return [lower[:-1] + "ies", lower + "s"]
    if lower.endswith(("s", "x", "z", "ch", "sh")):
        return [lower + "es", lower + "s"]
    return [lower + "s", lower + "es"]


_CRD_TYPES = frozenset({"crd", "crds", "customresourcedefinition", "customresourcedefinitions"})


def _awaited_kinds(waits: Sequence[WaitSpec]) -> set[tuple[str, str]]:
    """(plural, group) of every `crd/<plural>.<group>` among `waits`."""
    awaited = set()
    for wait in waits:
        kind, _, name = wait.resource.partition("/")
        if kind.lower().partition(".")[0] in _CRD_TYPES:
            plural, _, group = name.partition(".")
            awaited.add((plural, group))
    return awaited


def _check_package_files(
    spec: PackageSpec, key: str, directory: Path, scan: PackageScan
) -> tuple[list[str], list[str]]:
    problems = [f"{key}.path: {directory}: {p}" for p in scan.problems]
    warnings: list[str] = []
    if scan.nested_packages:
        problems.append(
            f"{key}.path: {directory} holds other kpt packages below it "
            f"({', '.join(sorted(scan.nested_packages))}); kpt would apply them as part of "
            f"{spec.name!r}. Point path at a leaf package"
        )
    init = shlex.join(
        [
            *("kpt", "live", "init", str(directory), "--name", spec.name),
            *("--namespace", "NAMESPACE", "--inventory-id", f"kpt-catalog-{spec.name}"),
        ]
    )
    fix = f"run `{init}` once (NAMESPACE: where the inventory lives) and commit resourcegroup.yaml"
    if not scan.inventories:
        has_kptfile = (directory / "Kptfile").is_file()
        what = "no inventory" if has_kptfile else "not a kpt package (no Kptfile, no inventory)"
        problems.append(f"{key}.path: {directory} is {what}: {fix}")
    elif len(scan.inventories) > 1:
        sources = ", ".join(i.source for i in scan.inventories)
        problems.append(
            f"{key}.path: {directory} has {len(scan.inventories)} inventories ({sources}); "
            "kpt needs exactly one: keep resourcegroup.yaml and remove the others"
        )
    else:
        inventory = scan.inventories[0]
        missing = [
            field
            for field, value in (
                ("name", inventory.name),
                ("namespace", inventory.namespace),
                ("inventory-id", inventory.inventory_id),
            )
            if not value
        ]
        if missing:
            problems.append(
                f"{key}.path: {directory}/{inventory.source} lacks {', '.join(missing)}: {fix}"
            )
        elif (
            inventory.namespace not in scan.namespaces
            and inventory.namespace not in _EXISTING_NAMESPACES
        ):
            warnings.append(
                f"{key}: the inventory namespace {inventory.namespace!r} of package "
                f"{spec.name!r} is not created by the package: it must exist before the apply"
            )
    return problems, warnings


def load(get: ConfigSource, *, stack: str, base_dir: Path) -> Catalog:
    """Parse the config values `get` returns and load the catalog they name: one ConfigError
    with every problem of both, raised before anything could touch the cluster."""
    try:
        config = parse_config(get, stack=stack, base_dir=base_dir)
    except ConfigError as error:
        return load_catalog(error)
    return load_catalog(config)


def load_catalog(config: CatalogConfig | ConfigError) -> Catalog:
    """Read and check every package and manifest; ConfigError listing all problems.

    Given the `ConfigError` of `parse_config`, checks what it could parse too and raises one
    error with every problem: the user fixes the config and the catalog in one round.
    """
    if isinstance(config, ConfigError):
        if config.partial is None:
            raise config
        earlier = list(config.problems)
        positions = {p.name: i for i, p in reversed(list(enumerate(config.partial.packages)))}
        try:
            _load(_checkable(config.partial), positions)
        except ConfigError as error:
            earlier.extend(p for p in error.problems if p not in earlier)
        raise ConfigError(earlier, sources=config.sources)
    return _load(config, {p.name: i for i, p in enumerate(config.packages)})


def _load(config: CatalogConfig, index_of: dict[str, int]) -> Catalog:
    """`load_catalog` proper; `index_of` gives each package's position in the config."""
    problems: list[str] = []
    warnings: list[str] = []
    if not config.kubeconfig_path.is_file():
        missing = (
            f"kubeconfig: {config.kubeconfig_path} does not exist or is not a file; set "
            "kpt-catalog:kubeconfig to the cluster's kubeconfig (default ~/.kube/config)"
        )
        (problems if config.kubeconfig_required else warnings).append(missing)
    if not config.catalog_dir.is_dir():
        what = "does not exist" if not config.catalog_dir.exists() else "is not a directory"
        raise ConfigError(
            [
                f"catalogDir: {config.catalog_dir} {what}; expected the catalog's root directory",
                *problems,
            ]
        )
    try:
        graph = Graph.build(config.packages)
    except ConfigError as error:
        problems.extend(error.problems)
        graph = Graph(config.packages)
    scans: dict[str, PackageScan] = {}
    manifests: dict[str, list[tuple[ManifestSpec, tuple[ManifestDocument, ...]]]] = {}
    for spec in graph.packages:
        key = f"packages[{index_of[spec.name]}]"
        directory = config.catalog_dir / spec.path
        if not directory.is_dir():
            what = "does not exist" if not directory.exists() else "is not a directory"
            problems.append(f"{key}.path: {directory} {what}; expected a kpt package directory")
        else:
            scans[spec.name] = _scan_package(directory)
            found, warned = _check_package_files(spec, key, directory, scans[spec.name])
            problems.extend(found)
            warnings.extend(warned)
        manifests[spec.name] = []
        for m_index, manifest in enumerate(spec.manifests):
            label = f"{key}.manifests[{m_index}]"
            documents, found = load_manifest(config.catalog_dir / manifest.file, label)
            problems.extend(found)
            manifests[spec.name].append((manifest, tuple(documents)))
    problems.extend(_check_kinds(config, graph, scans, manifests, index_of))
    problems.extend(_check_child_names(graph, manifests, index_of))
    owned = [
        Owned(spec, f"packages[{index_of[spec.name]}]", config.catalog_dir / spec.path)
        for spec in graph.packages
    ]
    problems.extend(check_owners(owned, scans, manifests, config.catalog_dir))
    problems.extend(_check_secret_namespaces(graph, scans, index_of))
    if problems:
        raise ConfigError(problems, sources=config.package_sources)
    catalog = Catalog(
        config=config,
        graph=graph,
        packages=tuple(
            LoadedPackage(
                spec=spec,
                directory=config.catalog_dir / spec.path,
                inventory=scans[spec.name].inventories[0],
                digest=scans[spec.name].digest,
                manifests=tuple(manifests[spec.name]),
            )
            for spec in graph.packages
        ),
        warnings=tuple(warnings),
    )
    problems = _check_environments(catalog, index_of)
    if problems:
        raise ConfigError(problems, sources=config.package_sources)
    return catalog


def _check_secret_namespaces(
    graph: Graph, scans: dict[str, PackageScan], index_of: dict[str, int]
) -> list[str]:
    """A declared Secret's namespace must come from the package itself, a package it needs, or
    the cluster: its gate waits for that namespace, and would otherwise wait until its deadline."""
    problems: list[str] = []
    for spec in graph.packages:
        if not spec.secrets:
            continue
        created = set(_EXISTING_NAMESPACES)
        for name in graph.needs_closure(spec.name) | {spec.name}:
            if name in scans:
                created |= scans[name].namespaces
        for s_index, secret in enumerate(spec.secrets):
            if secret.namespace and secret.namespace not in created:
                problems.append(
                    f"packages[{index_of[spec.name]}].secrets[{s_index}].namespace: "
                    f"{secret.namespace!r} is created neither by package {spec.name!r} nor by a "
                    f"package it needs, and is not {' or '.join(sorted(_EXISTING_NAMESPACES))}: "
                    "the Secret would wait for it until its deadline. Put the Namespace in the "
                    "package, or the package that creates it in `needs`"
                )
    return problems


def _check_environments(catalog: Catalog, index_of: dict[str, int]) -> list[str]:
    """Every step's environment, built by the one function the Commands use, fits the OS."""
    limit = ownership.arg_max()
    problems: list[str] = []
    for package in catalog.packages:
        spec, config = package.spec, catalog.config
        environments = {
            "apply": apply_environment(package, config),
            "wait-before": gate_environment(package, config, "wait-before", spec.wait_before),
            "wait-after": gate_environment(package, config, "wait-after", spec.wait_after),
            "status": status_environment(package, config, (*spec.wait_before, *spec.wait_after)),
        }
        key = f"packages[{index_of[spec.name]}]"
        problems.extend(check_environment_sizes(key, environments, limit))
    return problems


def _checkable(config: CatalogConfig) -> CatalogConfig:
    """The packages of a partly invalid config whose files can still be checked on their own:
    named uniquely, with their needs cut to known packages (those problems are reported)."""
    names = [p.name for p in config.packages]
    unique = [
        p
        for p in config.packages
        if p.name and names.count(p.name) == 1 and p.path and not Path(p.path).is_absolute()
    ]
    known = {p.name for p in unique}
    return replace(
        config,
        packages=tuple(replace(p, needs=tuple(n for n in p.needs if n in known)) for p in unique),
    )


@dataclass(frozen=True)
class KindSource:
    """Where a package's custom kind comes from before the package's apply."""

    package: str
    """The package whose files hold the kind's CRD, or that waits for the CRD; "" when the
    cluster provides it (`clusterProvidedKinds`)."""
    waited: bool
    """The CRD is registered at run time, and `package` waits for it."""


def kind_providers(scans: Mapping[str, PackageScan]) -> dict[KindRef, list[str]]:
    """The packages whose files hold each kind's CRD, in the order of `scans`."""
    providers: dict[KindRef, list[str]] = {}
    for name, scan in scans.items():
        for kind in scan.provides:
            providers.setdefault(kind, []).append(name)
    return providers


def kind_source(
    kind: KindRef,
    spec: PackageSpec,
    graph: Graph,
    providers: Mapping[KindRef, Sequence[str]],
    cluster_provided_kinds: Collection[str],
) -> KindSource | None:
    """Where package `spec`'s custom `kind` comes from: the package itself or a package it needs
    (directly or not) holding its CRD, a wait for its CRD (this package's own before its apply,
    or any wait of a package it needs), or `clusterProvidedKinds`; None when nothing provides
    it. Kinds of the API server's own groups are not asked about (BUILTIN_GROUPS)."""
    if str(kind) in cluster_provided_kinds:
        return KindSource("", waited=False)
    needed = graph.needs_closure(spec.name) | {spec.name}
    # Deploy order: the package itself last, so that a need is named first.
    in_order = [p for p in graph.packages if p.name in needed and p.name != spec.name]
    owners = providers.get(kind, [])
    for package in [spec, *in_order]:
        if package.name in owners:
            return KindSource(package.name, waited=False)
    plurals = _plural_candidates(kind.kind)
    # A CRD the cluster registers at run time is there once a wait for it passed.
    for package, waits in [
        (spec, spec.wait_before),
        *((need, (*need.wait_before, *need.wait_after)) for need in in_order),
    ]:
        if any((plural, kind.group) in _awaited_kinds(waits) for plural in plurals):
            return KindSource(package.name, waited=True)
    return None


def _check_kinds(
    config: CatalogConfig,
    graph: Graph,
    scans: dict[str, PackageScan],
    manifests: dict[str, list[tuple[ManifestSpec, tuple[ManifestDocument, ...]]]],
    index_of: dict[str, int],
) -> list[str]:
    """Every custom kind used must come from the package itself, a package it needs, a CRD it
    waits for, or `clusterProvidedKinds`: kpt cannot order across packages, so this is our job."""
    providers = kind_providers(scans)
    problems: list[str] = []
    for spec in graph.packages:
        key = f"packages[{index_of[spec.name]}]"
        used: dict[KindRef, str] = dict(scans[spec.name].uses) if spec.name in scans else {}
        for m_index, (_manifest, documents) in enumerate(manifests[spec.name]):
            for document in documents:
                used.setdefault(document.kind, f"manifests[{m_index}]")
        for kind, where in sorted(used.items()):
            if kind.group in BUILTIN_GROUPS or kind_source(
                kind, spec, graph, providers, config.cluster_provided_kinds
            ):
                continue
            owners = providers.get(kind, [])
            if owners:
                problems.append(
                    f"{key}.needs: package {spec.name!r} uses {kind} ({where}) whose CRD is in "
                    f"package {owners[0]!r}; add {owners[0]!r} to the needs of {spec.name!r}"
                )
            else:
                problems.append(
                    f"{key}: package {spec.name!r} uses {kind} ({where}) but no package provides "
                    f"its CRD and {spec.name!r} does not wait for it: add a waitBefore on "
                    f"crd/{_plural_candidates(kind.kind)[0]}.{kind.group} "
                    f"condition=Established, or list {kind} in "
                    "clusterProvidedKinds"
                )
    return problems


def _check_child_names(
    graph: Graph,
    manifests: dict[str, list[tuple[ManifestSpec, tuple[ManifestDocument, ...]]]],
    index_of: dict[str, int],
) -> list[str]:
    """Native objects name Pulumi resources `<package>-<kind>-<name>`: they must be unique."""
    problems: list[str] = []
    for spec in graph.packages:
        seen: set[str] = set()
        for _manifest, documents in manifests[spec.name]:
            for document in documents:
                child = f"{spec.name}-{document.kind.kind.lower()}-{document.name}"
                if child in seen:
                    problems.append(
                        f"packages[{index_of[spec.name]}].manifests: two objects would both be "
                        f"named {child!r}; each {document.kind.kind} needs a distinct name"
                    )
                seen.add(child)
    return problems
