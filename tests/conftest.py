"""Shared fixtures: a private copy of the example catalog and the tests' own stack config."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from kpt_catalog import stackfile
from tests.harness import EXAMPLE_CATALOG, ROOT, dev_stack_config


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where every step runner a test starts writes its logs: a private directory, never the
    real `~/.local/state`."""
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    """A copy of the example catalog the test may edit."""
    target = tmp_path / "catalog"
    shutil.copytree(EXAMPLE_CATALOG, target)
    return target


@pytest.fixture
def dev_config(catalog: Path) -> dict[str, Any]:
    """The tests' dev stack config and graph, pointed at the private catalog copy."""
    config = dev_stack_config()
    config["catalogDir"] = str(catalog)
    return config


@pytest.fixture
def stack_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory the tests own, where `make plan` and `make status` find the dev
    stack's file (the tests' cluster access) and `packages.yaml` (the example graph)."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    stack = dev_stack_config()
    packages = stack.pop("packages")
    document = {"config": {f"kpt-catalog:{key}": value for key, value in stack.items()}}
    (project / "Pulumi.dev.yaml").write_text(yaml.safe_dump(document))
    (project / "packages.yaml").write_text(yaml.safe_dump({"packages": packages}))
    monkeypatch.setattr(stackfile, "ROOT", project)
    return project


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test, so that a fixture can tell the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """End-to-end tests run only when selected (`make e2e`: `-m e2e`): a plain `pytest` (and
    `make test`) leaves them out instead of reporting them as skipped."""
    if "e2e" in str(config.getoption("markexpr") or ""):
        return
    kept = [item for item in items if item.get_closest_marker("e2e") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept
