"""Reading a stack's configuration straight from `Pulumi.<stack>.yaml`, without the Pulumi CLI.

`make plan` and `make status` use this; the program itself reads the same keys through
`pulumi.Config`, and both take the graph from `packages.yaml` through
`components.config.graph_and_stack` and end in `components.catalog.load`, so they cannot disagree.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from components.catalog import Catalog, load_catalog
from components.config import (
    CatalogConfig,
    ConfigError,
    graph_and_stack,
    parse_config,
    yaml_error_text,
)
from components.config.files import ROLLOUT_VARIABLE

__all__ = [
    "ROOT",
    "STACK_NAME",
    "check_package",
    "load_stack_catalog",
    "load_stack_config",
    "stack_config_values",
    "stack_values",
    "unknown_package",
]

ROOT = Path(__file__).resolve().parent.parent
STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
"""Pulumi's rule for a stack name (pkg/backend/diy: [a-zA-Z0-9-_.]), led by a letter or digit."""
NAMESPACE = "kpt-catalog:"


def stack_config_values(
    stack: str, overrides: dict[str, Any] | None = None, *, root: Path | None = None
) -> tuple[dict[str, object], tuple[str, ...]]:
    """The stack file's `kpt-catalog:` keys (project defaults underneath, `overrides` on top)
    with the graph from `packages.yaml`, and the warnings of reading them. `root` is the project
    directory (this checkout's by default)."""
    root = ROOT if root is None else root
    stack_file = root / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        raise ConfigError(
            [
                f"stack {stack}: {stack_file} does not exist; create it with `kpt-catalog stack "
                f"init {stack} --kubeconfig FILE --context CONTEXT` (or write it by hand: "
                "docs/configuration.md)"
            ]
        )
    values: dict[str, object] = {}
    project = yaml.safe_load((root / "Pulumi.yaml").read_text()) or {}
    for key, spec in (project.get("config") or {}).items():
        if key.startswith(NAMESPACE) and isinstance(spec, dict) and "default" in spec:
            values[key.removeprefix(NAMESPACE)] = spec["default"]
    try:
        document = yaml.safe_load(stack_file.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError([yaml_error_text(stack_file.name, error)]) from error
    for key, value in (document.get("config") or {}).items():
        if key.startswith(NAMESPACE):
            values[key.removeprefix(NAMESPACE)] = value
    values.update(overrides or {})
    rollout = os.environ.get(ROLLOUT_VARIABLE, "")  # a fleet rollout's catalog, as the program
    return graph_and_stack(values, project_dir=root, stack_file=stack_file.name, rollout=rollout)


def stack_values(stack: str, overrides: dict[str, Any] | None = None) -> Callable[[str], object]:
    """A `get` over the values `stack_config_values` returns."""
    return stack_config_values(stack, overrides)[0].get


def load_stack_config(stack: str, overrides: dict[str, Any] | None = None) -> CatalogConfig:
    """The stack's validated config (graph checks included, catalog files not read)."""
    values, _warnings = stack_config_values(stack, overrides)
    return parse_config(values, stack=stack, base_dir=ROOT, kubeconfig_required=False)


def load_stack_catalog(stack: str, overrides: dict[str, Any] | None = None) -> Catalog:
    """The stack's catalog, read and checked exactly as `pulumi preview` does, except that a
    kubeconfig missing on this machine is a warning: these views may run away from the cluster."""
    values, warnings = stack_config_values(stack, overrides)
    try:
        config = parse_config(values, stack=stack, base_dir=ROOT, kubeconfig_required=False)
    except ConfigError as error:
        return load_catalog(error)
    catalog = load_catalog(config)
    return replace(catalog, warnings=(*warnings, *catalog.warnings))


def check_package(stack: str, name: str) -> str:
    """Empty when `name` is a package of the stack's graph, else what is wrong: the names it
    knows, or the stack's config errors. `make reapply` asks before it saves anything in the
    stack, since a token for an unknown package would make every later preview fail."""
    try:
        config = load_stack_config(stack)
    except ConfigError as error:
        return str(error)
    return unknown_package(stack, name, [package.name for package in config.packages])


def unknown_package(stack: str, name: str, names: Sequence[str]) -> str:
    """ "" when `name` is one of `names`, else the error that names the choices and the likely
    one (`--package` / PACKAGE= of diff, status and reapply)."""
    if name in names:
        return ""
    nearest = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f"did you mean {nearest[0]!r}? " if nearest else ""
    return (
        f"PACKAGE: no package {name!r} in stack {stack}; {hint}the packages are {', '.join(names)}"
    )
