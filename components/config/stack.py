"""What a stack holds (`Pulumi.<stack>.yaml`, `kpt-catalog:` keys): the cluster, the catalog
directory, the reapply tokens, and the package graph read from `packages.yaml`."""

from __future__ import annotations

import contextlib
import difflib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from components.config.model import (
    CONFIG_KEYS,
    DEFAULT_CATALOG_DIR,
    DEFAULT_KUBECONFIG,
    GRAPH_FILE,
    CatalogConfig,
    ConfigError,
    PackageSpec,
)
from components.config.packages import (
    check_names,
    check_secrets,
    parse_package,
)
from components.config.problems import Problems

__all__ = [
    "ConfigSource",
    "local_path",
    "parse_config",
    "parse_reapply",
    "structured_getter",
]

# Top-level keys of the `kpt-catalog:` namespace that the program reads.


def parse_reapply(
    problems: Problems, raw: object, packages: Sequence[PackageSpec]
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


def local_path(path: str, base_dir: Path) -> Path:
    """`path` as this machine reads it: `~` expanded, a relative path taken from `base_dir` (the
    project directory, where Pulumi runs the steps and the Kubernetes provider)."""
    expanded = Path(path).expanduser()
    return expanded if expanded.is_absolute() else base_dir / expanded


def _unknown_top_level_keys(problems: Problems, given: Iterable[str]) -> None:
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
    problems = Problems()
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
        if (p := parse_package(problems, f"packages[{i}]", raw)) is not None
    ]
    if raw_packages is not None and not packages and not problems.items:
        problems.add("packages", "expected at least one package, found an empty list")
    check_names(problems, packages)
    reapply_tokens = parse_reapply(problems, get("reapply"), packages)
    check_secrets(problems, packages)
    # The keys the packages' Secrets read are the stack's too (set with --secret); reported
    # first, as before they were known.
    unknown = Problems()
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
