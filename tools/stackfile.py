"""Reading a stack's configuration straight from `Pulumi.<stack>.yaml`, without the Pulumi CLI.

`make plan` and `make status` use this; the program itself reads the same keys through
`pulumi.Config`, and both end in `components.catalog.load`, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from components.catalog import Catalog, load
from components.config import CatalogConfig, ConfigError, parse_config

__all__ = ["ROOT", "load_stack_catalog", "load_stack_config", "stack_values"]

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "kpt-catalog:"


def stack_values(stack: str, overrides: dict[str, Any] | None = None) -> Callable[[str], object]:
    """A `get` over the stack file's `kpt-catalog:` keys (project defaults underneath)."""
    stack_file = ROOT / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        raise ConfigError([f"stack: {stack_file} does not exist; expected Pulumi.{stack}.yaml"])
    values: dict[str, object] = {}
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text()) or {}
    for key, spec in (project.get("config") or {}).items():
        if key.startswith(NAMESPACE) and isinstance(spec, dict) and "default" in spec:
            values[key.removeprefix(NAMESPACE)] = spec["default"]
    try:
        document = yaml.safe_load(stack_file.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError([f"{stack_file.name}: not valid YAML: {error}"]) from error
    for key, value in (document.get("config") or {}).items():
        if key.startswith(NAMESPACE):
            values[key.removeprefix(NAMESPACE)] = value
    values.update(overrides or {})
    return values.get


def load_stack_config(stack: str, overrides: dict[str, Any] | None = None) -> CatalogConfig:
    """The stack's validated config (graph checks included, catalog files not read)."""
    return parse_config(stack_values(stack, overrides), stack=stack, base_dir=ROOT)


def load_stack_catalog(stack: str, overrides: dict[str, Any] | None = None) -> Catalog:
    """The stack's catalog, read and checked exactly as `pulumi preview` does."""
    return load(stack_values(stack, overrides), stack=stack, base_dir=ROOT)
