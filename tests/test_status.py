"""`make status`: one line per package, non-zero when any is unhealthy, against stand-ins."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.harness import EXAMPLE_CATALOG, ROOT
from tools import status

FAKEBIN = ROOT / "tests" / "fakebin"


@pytest.fixture
def fake_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, stack_project: Path) -> Path:
    record = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", f"{FAKEBIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_RECORD", str(record))
    return record


def test_all_healthy(fake_cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert status.main(["--catalog-dir", str(EXAMPLE_CATALOG)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[:5]] == [
        "kube-vip",
        "cilium",
        "tailscale",
        "headscale",
        "envoy-gateway",
    ]
    assert all("healthy:" in line for line in out[:5])
    assert out[-1] == "5 of 5 package(s) healthy"
    calls = [json.loads(line)["argv"] for line in fake_cluster.read_text().splitlines()]
    # status never changes anything: no apply, no destroy
    assert not [c for c in calls if c[:2] in (["live", "apply"], ["live", "destroy"])]
    # the native Connector is checked for its waitFor condition
    connector = next(c for c in calls if "connector/cluster-subnet-router" in c)
    assert connector[:3] == [
        "wait",
        "connector/cluster-subnet-router",
        "--for=condition=ConnectorReady",
    ]


def test_objects_not_current(
    fake_cluster: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KPT_SCENARIO", "status-timeout")
    assert status.main(["--catalog-dir", str(EXAMPLE_CATALOG)]) == 1
    out = capsys.readouterr().out
    assert "kube-vip         UNHEALTHY (objects not Current)" in out
    assert "1 of 4 object(s) not Current" in out
    assert "0 of 5 package(s) healthy" in out


def test_no_inventory_in_the_cluster(
    fake_cluster: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KPT_SCENARIO", "status-no-inventory")
    assert status.main(["--catalog-dir", str(EXAMPLE_CATALOG)]) == 1
    assert "UNHEALTHY (" in capsys.readouterr().out


def test_a_failed_wait_names_the_resource(
    fake_cluster: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KUBECTL_SCENARIO", "wait-fail")
    assert status.main(["--catalog-dir", str(EXAMPLE_CATALOG)]) == 1
    out = capsys.readouterr().out
    assert "kube-vip         UNHEALTHY (" in out
    assert "daemonset/kube-vip-ds" in out


def test_bad_catalog_is_reported_before_any_call(
    fake_cluster: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert status.main(["--catalog-dir", str(tmp_path / "none")]) == 2
    assert "catalogDir:" in capsys.readouterr().err
    assert not fake_cluster.exists()
