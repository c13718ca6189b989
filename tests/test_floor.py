"""The floor job pins each requirement to its lower bound."""

from __future__ import annotations

import pytest

from tests.harness import ROOT
from tools.floor import floor_constraints


def test_every_runtime_requirement_is_pinned_to_its_lower_bound() -> None:
    pins = floor_constraints((ROOT / "requirements.txt").read_text())
    assert [pin.split("==")[0] for pin in pins] == [
        "pulumi",
        "pulumi-kubernetes",
        "pulumi-command",
        "pyyaml",
    ]
    assert "pulumi-kubernetes==4.29" in pins


def test_a_requirement_without_a_lower_bound_is_named() -> None:
    with pytest.raises(ValueError, match=r"line 2: 'pulumi<4' has no >= bound"):
        floor_constraints("# runtime\npulumi<4\n")
