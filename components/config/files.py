"""Reading `packages.yaml`: the graph every stack deploys, and YAML errors that name the file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from components.config.located import load_with_lines
from components.config.model import GRAPH_FILE, ConfigError

__all__ = [
    "ROLLOUT_VARIABLE",
    "graph_and_stack",
    "yaml_error_text",
]


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


ROLLOUT_VARIABLE = "KPT_CATALOG_ROLLOUT"
"""Set by a fleet rollout: a directory holding the catalog being rolled out (`catalog/`) and its
graph (`packages.yaml`), read instead of the stack's catalogDir and the project's graph."""


def graph_and_stack(
    stack_values: Mapping[str, object],
    *,
    project_dir: Path,
    stack_file: str,
    rollout: str = "",
) -> tuple[dict[str, object], tuple[str, ...]]:
    """The values the program reads: the stack's `kpt-catalog:` keys (namespace removed) plus
    `packages` from `packages.yaml` in `project_dir`, and warnings.

    The program, `make plan`, `make status` and the tests all read the graph through this one
    function. A stack that sets `kpt-catalog:packages` itself deploys that graph instead of the
    file's (with a warning naming both). Raises ConfigError when the file cannot be used.
    `rollout` (the value of ROLLOUT_VARIABLE) replaces both the catalog and the graph.
    """
    values = dict(stack_values)
    graph_file = project_dir / GRAPH_FILE
    if rollout:
        values["catalogDir"] = str(Path(rollout) / "catalog")
        values.pop("packages", None)
        graph_file = Path(rollout) / GRAPH_FILE
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
