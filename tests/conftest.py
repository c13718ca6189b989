"""Shared fixtures: a private copy of the example catalog and the tests' own stack config."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.harness import EXAMPLE_CATALOG, dev_stack_config


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
