"""The test world's own pieces that need no cluster: the fault wrapper and the LB IPAM pool."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.harness import ROOT
from world.standins import _pool_addresses

FAULTS = ROOT / "world" / "faults"


@pytest.fixture
def tool_dir(tmp_path: Path) -> Path:
    """A fake `kpt` that prints five numbered lines, slowly enough to be cut."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kpt = bin_dir / "kpt"
    kpt.write_text("#!/bin/sh\nfor i in 1 2 3 4 5; do echo line-$i; sleep 0.1; done\nexit 0\n")
    kpt.chmod(0o755)
    return bin_dir


def _run(tool_dir: Path, faults: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(FAULTS), str(tool_dir), env["PATH"]])
    env["KPT_CATALOG_FAULTS"] = str(faults)
    return subprocess.run(
        ["kpt", *args], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_without_a_rule_the_real_tool_runs_and_the_call_is_logged(tool_dir, tmp_path):
    result = _run(tool_dir, tmp_path, "live", "apply", "pkg")
    assert result.returncode == 0
    assert result.stdout.split() == [f"line-{i}" for i in range(1, 6)]
    logged = [json.loads(line) for line in (tmp_path / "calls.log").read_text().splitlines()]
    assert logged == [["kpt", "live", "apply", "pkg"]]


def test_a_kill_rule_makes_the_call_die_of_that_signal_after_its_lines(tool_dir, tmp_path):
    rule = {"match": ["apply"], "action": "kill", "after_lines": 2, "signal": "KILL", "times": 1}
    (tmp_path / "kpt.json").write_text(json.dumps([rule]))
    killed = _run(tool_dir, tmp_path, "live", "apply")
    assert killed.returncode == -signal.SIGKILL
    assert killed.stdout.split() == ["line-1", "line-2"]
    again = _run(tool_dir, tmp_path, "live", "apply")  # `times` used up
    assert again.returncode == 0


def test_a_cut_rule_lies_with_exit_0_and_unless_spares_dry_runs(tool_dir, tmp_path):
    rule = {"match": ["apply"], "unless": ["--dry-run"], "action": "cut", "after_lines": 1}
    (tmp_path / "kpt.json").write_text(json.dumps([rule]))
    assert _run(tool_dir, tmp_path, "live", "apply", "--dry-run").stdout.split()[-1] == "line-5"
    cut = _run(tool_dir, tmp_path, "live", "apply")
    assert (cut.returncode, cut.stdout.split()) == (0, ["line-1"])


def test_a_long_line_and_a_flood_come_before_the_real_output(tool_dir, tmp_path):
    rules = [
        {"match": ["status"], "action": "flood", "events": 1000},
        {"match": ["apply"], "action": "long_line", "bytes": 70_000},
    ]
    (tmp_path / "kpt.json").write_text(json.dumps(rules))
    flooded = _run(tool_dir, tmp_path, "live", "status").stdout.splitlines()
    assert len(flooded) == 1005 and json.loads(flooded[999])["name"] == "flood-999"
    long = _run(tool_dir, tmp_path, "live", "apply").stdout.splitlines()
    assert len(long[0]) == 70_000 and long[1:] == [f"line-{i}" for i in range(1, 6)]


def test_a_refused_connection_reads_as_kubectl_says_it(tool_dir, tmp_path):
    (tmp_path / "kpt.json").write_text(json.dumps([{"action": "refuse"}]))
    refused = _run(tool_dir, tmp_path, "live", "apply")
    assert refused.returncode == 1 and "was refused" in refused.stderr and refused.stdout == ""


def test_the_ipam_pool_hands_out_a_cidr_then_a_range():
    pool = {
        "spec": {"blocks": [{"cidr": "10.80.8.128/30"}, {"start": "10.0.0.9", "stop": "10.0.0.10"}]}
    }
    assert list(_pool_addresses(pool)) == ["10.80.8.129", "10.80.8.130", "10.0.0.9", "10.0.0.10"]
