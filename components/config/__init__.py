"""The stack's configuration, validated once into frozen dataclasses.

Everything here is pure: it takes plain values (as `pulumi.Config` or a stack file gives them) and
either returns a `CatalogConfig` or raises `ConfigError` listing *every* problem found, each naming
the config key (and, for `packages.yaml`, the file, line and package), what was found and what
was expected. Nothing touches the cluster or Pulumi. One module per thing read:

- model.py      the checked configuration (the specs) and ConfigError
- stack.py      the stack's `kpt-catalog:` keys, and parse_config, which checks them all
- packages.py   each entry of `packages.yaml`
- files.py      reading `packages.yaml` itself
- located.py    where a value is written (file, line), for the problems
- durations.py  Go durations; problems.py: collecting problems
"""

from __future__ import annotations

from components.config.durations import format_duration, parse_duration
from components.config.files import graph_and_stack, yaml_error_text
from components.config.located import Located, LocatedList, load_with_lines, locate
from components.config.model import (
    CONFIG_KEYS,
    DEFAULT_CATALOG_DIR,
    DEFAULT_KUBECONFIG,
    GRAPH_FILE,
    CatalogConfig,
    ConfigError,
    ManifestSpec,
    PackageSpec,
    SecretSpec,
    WaitSpec,
)
from components.config.packages import secret_config_keys
from components.config.stack import (
    ConfigSource,
    local_path,
    parse_config,
    structured_getter,
)

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
