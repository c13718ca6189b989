"""`make status`: one line per package, non-zero when any is unhealthy, against stand-ins."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kpt_catalog import clusterops, exits, stackfile, status
from tests.harness import (
    EXAMPLE_CATALOG,
    ROOT,
    TEST_CONTEXT,
    TEST_KUBECONFIG,
    check_json_output,
)

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
    # which cluster comes first; the packages follow in deploy order although checked at once
    assert out[0] == (f"stack dev: kubeconfig {TEST_KUBECONFIG}, context {TEST_CONTEXT}")
    out = out[1:]
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
    # the cluster is asked whether it answers before any package is checked
    assert calls[0] == [
        *("--kubeconfig", str(TEST_KUBECONFIG), "--context", TEST_CONTEXT),
        *("get", "--raw", "/readyz", "--request-timeout=15s"),
    ]
    # status never changes anything: no apply, no destroy
    assert not [c for c in calls if c[:2] in (["live", "apply"], ["live", "destroy"])]
    # the native Connector is checked for its waitFor condition
    connector = next(c for c in calls if "connector/cluster-subnet-router" in c)
    assert connector[:3] == [
        "wait",
        "connector/cluster-subnet-router",
        "--for=condition=ConnectorReady",
    ]


@pytest.mark.parametrize("stack", ["dev", "lab"])
def test_each_package_logs_under_the_stack_it_checks(
    fake_cluster: Path, stack_project: Path, state_home: Path, stack: str
) -> None:
    # `make status STACK=lab` appends to the same logs as lab's deploy, not to a `default` one
    dev_file = stack_project / "Pulumi.dev.yaml"
    (stack_project / f"Pulumi.{stack}.yaml").write_text(dev_file.read_text())
    assert status.main(["--stack", stack, "--catalog-dir", str(EXAMPLE_CATALOG)]) == 0
    logs = state_home / "kpt-catalog"
    assert sorted(path.name for path in logs.iterdir()) == [stack]
    assert sorted(path.name for path in (logs / stack).iterdir()) == [
        "cilium.log",
        "envoy-gateway.log",
        "headscale.log",
        "kube-vip.log",
        "tailscale.log",
    ]
    assert "status" in (logs / stack / "headscale.log").read_text()


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


def test_an_unreachable_cluster_is_said_once_with_its_own_exit_status(
    fake_cluster: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("FAKE_KUBECTL_SCENARIO", "unreachable")
    stack = _stack_with_cluster(tmp_path, monkeypatch, kubeconfig="~/.kube/rke2.yaml")
    assert status.main(["--stack", stack, "--catalog-dir", str(EXAMPLE_CATALOG)]) == 3
    out = capsys.readouterr().out.splitlines()
    kubeconfig = str(Path("~/.kube/rke2.yaml").expanduser())
    assert out == [
        f"stack {stack}: kubeconfig {kubeconfig}, context rke2-lab",
        f"cluster unreachable (kubeconfig {kubeconfig}, context rke2-lab): "
        "The connection to the server 127.0.0.1:6443 was refused - "
        "did you specify the right host or port?",
    ]
    calls = [json.loads(line) for line in fake_cluster.read_text().splitlines()]
    assert [c["argv"] for c in calls] == [
        [
            "--kubeconfig",
            kubeconfig,
            "--context",
            "rke2-lab",
            "get",
            "--raw",
            "/readyz",
            "--request-timeout=15s",
        ]
    ]


def test_the_whole_run_is_bounded_and_nothing_outlives_it(
    fake_cluster: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    pids = tmp_path / "pids"
    monkeypatch.setenv("FAKE_PIDS", str(pids))
    monkeypatch.setenv("FAKE_KUBECTL_SCENARIO", "hang")
    started = time.monotonic()
    # long enough for every package to reach its hanging wait on a loaded machine
    code = status.main(["--catalog-dir", str(EXAMPLE_CATALOG), "--timeout", "10s"])
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    assert code == exits.FAILED  # NOT CHECKED: the answer is unknown
    # every package is stuck in a wait; they ran side by side, so one bound covers them all
    assert elapsed < 10 + clusterops.KILL_GRACE_SECONDS + 4, elapsed
    assert out.count("NOT CHECKED (stopped at TIMEOUT=10s)") == 5
    assert "0 of 5 package(s) healthy" in out
    time.sleep(0.5)
    started_pids = pids.read_text().split()
    assert started_pids  # the hanging kubectl waits did start
    survivors = [pid for pid in started_pids if _alive(int(pid))]
    assert survivors == []


def test_packages_are_checked_side_by_side(
    fake_cluster: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # each kubectl call takes 1 s: waits of different packages overlap, those of one cannot
    monkeypatch.setenv("FAKE_KUBECTL_DELAY", "1")
    assert status.main(["--catalog-dir", str(EXAMPLE_CATALOG)]) == 0
    calls = [json.loads(line) for line in fake_cluster.read_text().splitlines()]
    waits = sorted(c["time"] for c in calls if c["tool"] == "kubectl" and c["argv"][0] == "wait")
    overlapping = max(sum(1 for other in waits if start <= other < start + 0.5) for start in waits)
    assert overlapping >= 3, waits


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeout", "soon"], "TIMEOUT: 'soon' is not a duration such as 90s, 3m or 1h30m"),
        (["--jobs", "0"], "JOBS: '0' is not a whole number of at least 1"),
    ],
)
def test_bad_bounds_are_configuration_errors(
    fake_cluster: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert status.main(["--catalog-dir", str(EXAMPLE_CATALOG), *args]) == 2
    assert capsys.readouterr().err.strip() == message
    assert not fake_cluster.exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie waiting for its parent is dead
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def _stack_with_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, kubeconfig: str) -> str:
    """A stack file like dev's, naming a kubeconfig (made in a private HOME) and a context;
    returns its stack name."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    target = Path(kubeconfig).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("apiVersion: v1\nkind: Config\ncontexts: [{name: rke2-lab}]\n")
    stack = f"test-{tmp_path.name}"
    project = stackfile.ROOT  # the tests' own project (the stack_project fixture)
    document = yaml.safe_load((project / "Pulumi.dev.yaml").read_text())
    document["config"]["kpt-catalog:kubeconfig"] = kubeconfig
    document["config"]["kpt-catalog:context"] = "rke2-lab"
    stack_file = project / f"Pulumi.{stack}.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    request_cleanup.append(stack_file)
    return stack


request_cleanup: list[Path] = []


@pytest.fixture(autouse=True)
def _remove_stack_files() -> Iterator[None]:
    yield
    while request_cleanup:
        request_cleanup.pop().unlink(missing_ok=True)


def test_package_checks_that_package_only(
    fake_cluster: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert status.main(["--catalog-dir", str(EXAMPLE_CATALOG), "--package", "headscale"]) == 0
    out = capsys.readouterr().out.splitlines()[1:]
    assert [line.split()[0] for line in out[:-1]] == ["headscale"]
    assert out[-1] == "1 of 1 package(s) healthy"
    calls = [json.loads(line)["argv"] for line in fake_cluster.read_text().splitlines()]
    assert not any("connector/cluster-subnet-router" in c for c in calls)  # tailscale's


def test_an_unknown_package_is_a_configuration_error_naming_the_choices(
    fake_cluster: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert status.main(["--catalog-dir", str(EXAMPLE_CATALOG), "--package", "headscal"]) == 2
    assert capsys.readouterr().err.strip() == (
        "PACKAGE: no package 'headscal' in stack dev; did you mean 'headscale'? the packages are "
        "kube-vip, cilium, tailscale, headscale, envoy-gateway"
    )
    assert not fake_cluster.exists() or not fake_cluster.read_text()


def test_status_json_follows_its_schema(
    fake_cluster: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KPT_SCENARIO", "status-timeout")
    code = status.main(["--catalog-dir", str(EXAMPLE_CATALOG), "--output", "json"])
    printed = capsys.readouterr()
    assert code == exits.DIFFERS
    document = check_json_output(printed.out, "status")
    kube_vip = document["packages"][0]
    assert kube_vip["name"] == "kube-vip" and kube_vip["state"] == "unhealthy"
    assert kube_vip["verdict"] == "UNHEALTHY (objects not Current)"
    assert any("1 of 4 object(s) not Current" in line for line in kube_vip["details"])
    assert "0 of 5 package(s) healthy" in printed.err


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ("kubeconfig", "does not exist; set the path of the cluster's kubeconfig"),
        ("context", "has no context 'rke2-lb'; did you mean 'rke2-lab'? its contexts: rke2-lab"),
        ("kubectl", "kubectl is not on PATH: install it"),
    ],
)
def test_a_cluster_that_cannot_be_asked_is_a_configuration_error_with_its_fix(
    fake_cluster: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    change: str,
    said: str,
) -> None:
    stack = _stack_with_cluster(tmp_path, monkeypatch, kubeconfig="~/.kube/rke2.yaml")
    stack_file = stackfile.ROOT / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(stack_file.read_text())
    if change == "kubeconfig":
        document["config"]["kpt-catalog:kubeconfig"] = "~/.kube/gone.yaml"
    elif change == "context":
        document["config"]["kpt-catalog:context"] = "rke2-lb"
    else:
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    stack_file.write_text(yaml.safe_dump(document))

    code = status.main(["--stack", stack, "--catalog-dir", str(EXAMPLE_CATALOG)])

    assert code == exits.CONFIG  # never "unreachable": the cluster was not asked
    assert said in capsys.readouterr().err
    assert not fake_cluster.exists()
