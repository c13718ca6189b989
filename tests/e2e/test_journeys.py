"""User journeys, each through the real `pulumi` CLI (`make up/preview/destroy/diff/status`), the
real providers, kpt and kubectl, on a local control plane of its own (`world/`).

Selected by `make e2e` (`pytest -m e2e tests/e2e`). The world's binaries come from
`$KPT_CATALOG_WORLD_BIN`, PATH, or `world/build.sh` (built once into a cache); when they cannot be
found or built, every journey fails saying why: there is nothing here to skip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kpt_catalog import exits, summary
from tests.e2e.journey import OAUTH, Journey, ok
from tests.harness import ROOT

pytestmark = pytest.mark.e2e

CONNECTOR = "connectors.tailscale.com/cluster-subnet-router"
FINALIZER = "tailscale.com/finalizer"


def _in_sync(journey: Journey) -> None:
    result = journey.make("diff")
    out = ok(result, "make diff")
    assert "5 of 5 package(s) in sync" in out, out


def _kpt_subcommands(journey: Journey) -> list[str]:
    """`live apply`, `live destroy`, ... of every kpt call (dry runs not counted)."""
    return [" ".join(c[:2]) for c in journey.calls("kpt") if "--dry-run" not in c]


def _applied_packages(journey: Journey) -> list[str]:
    """The package directories kpt really applied (not its dry runs)."""
    return [
        Path(c[2]).name
        for c in journey.calls("kpt")
        if c[:2] == ["live", "apply"] and "--dry-run" not in c
    ]


def test_up_takes_over_a_cluster_the_bash_loop_built_changing_nothing(journey: Journey) -> None:
    journey.bash_loop()
    _in_sync(journey)
    before = journey.objects()

    out = ok(journey.up(), "make up")

    # the run ends with what happened to each package: applied, with its objects counted
    table = out[out.index("PACKAGE  ") :].splitlines()
    assert table[0].split() == list(summary.HEADER)
    rows = {line.split()[0]: line.split() for line in table[1:6]}
    assert sorted(rows) == sorted(["kube-vip", "cilium", "tailscale", "headscale", "envoy-gateway"])
    assert {row[1] for row in rows.values()} == {"applied"}
    assert all(int(row[3]) > 0 and row[4] == "0" for row in rows.values()), table
    assert "kpt-catalog up: done" in out
    after = journey.objects()
    assert {k: v["uid"] for k, v in after.items()} == {k: v["uid"] for k, v in before.items()}, (
        "make up recreated or removed objects"
    )
    changed = [
        k
        for k in before
        if (before[k]["generation"], before[k]["data"])
        != (after[k]["generation"], after[k]["data"])
    ]
    assert changed == []
    _in_sync(journey)
    # The Connector is now Pulumi's, and still carries the operator's finalizer.
    connector = journey.json("get", CONNECTOR)
    assert FINALIZER in connector["metadata"]["finalizers"]
    assert any("tailscale-connector" in urn for urn in journey.urns())


def test_an_edited_file_is_diffed_applied_and_then_in_sync(journey: Journey) -> None:
    ok(journey.up(), "the first make up")
    _in_sync(journey)
    config = journey.catalog / "mesh/headscale/config.yaml"
    config.write_text(config.read_text().replace("0.0.0.0:8080", "0.0.0.0:8081"))

    diff = journey.make("diff")
    out = diff.stdout + diff.stderr
    assert diff.returncode != 0
    assert "headscale        1 to change" in out, out
    assert "~ ConfigMap/headscale/headscale-config" in out, out
    assert "+    listen_addr: 0.0.0.0:8081" in out, out
    assert "4 of 5 package(s) in sync" in out, out

    journey.forget_calls()
    ok(journey.up(), "make up after the edit")
    assert _applied_packages(journey) == ["headscale"]
    _in_sync(journey)

    journey.forget_calls()
    out = ok(journey.up(), "a make up with nothing to do")
    assert "live apply" not in _kpt_subcommands(journey), "a no-op up ran kpt live apply"
    assert "unchanged" in out


def test_a_first_apply_that_fails_early_rolls_back(journey: Journey) -> None:
    # kpt records the inventory, then dies (the OOM killer) before it applies any object.
    journey.fault(
        "kpt",
        {
            "match": ["live", "apply"],
            "unless": ["--dry-run"],
            "action": "kill",
            "after_lines": 2,
            "signal": "KILL",
            "times": 1,
        },
    )
    failed = journey.up()
    assert failed.returncode != 0
    assert "kube-vip" in failed.stdout + failed.stderr
    rg = journey.json("get", "resourcegroups.kpt.dev", "-n", "kube-system")
    assert [i["metadata"]["name"] for i in rg["items"]] == ["kube-vip"]  # recorded, empty

    ok(
        journey.make("destroy-all", "PULUMI_ARGS=--yes"),
        "make destroy-all after a failed first apply",
    )
    assert journey.json("get", "resourcegroups.kpt.dev", "-A")["items"] == []
    assert not [u for u in journey.urns() if "KptPackage" in u or "command:local" in u]


def test_a_package_whose_objects_were_removed_by_hand_rolls_back(journey: Journey) -> None:
    ok(journey.up(), "make up")
    ok(
        journey.kubectl("delete", "namespace", "headscale", "--wait=true"),
        "kubectl delete namespace",
    )
    out = ok(journey.make("destroy", "PULUMI_ARGS=--yes"), "make destroy")
    assert "headscale" in out
    assert not [u for u in journey.urns() if "headscale" in u]


def test_a_fresh_cluster_gets_the_oauth_secret_and_rotation_restarts_only_its_users(
    journey: Journey,
) -> None:
    ok(journey.up(), "make up on an empty cluster")
    secret = journey.json("get", "secret/operator-oauth", "-n", "tailscale-system")
    assert sorted(secret["data"]) == ["client_id", "client_secret"]

    def templates() -> dict[str, str]:
        found = {}
        for namespace, name in (
            ("tailscale-system", "operator"),
            ("headscale", "headscale"),
            ("envoy-gateway-system", "envoy-gateway"),
        ):
            deployment = journey.json("get", f"deployment/{name}", "-n", namespace)
            found[name] = json.dumps(deployment["spec"]["template"], sort_keys=True)
        return found

    before = templates()
    journey.set_secret("tailscaleOauthClientSecret", "journey-secret-2")
    ok(journey.up(), "make up after rotating the secret")
    after = templates()
    assert after["operator"] != before["operator"], "the operator was not restarted"
    assert after["headscale"] == before["headscale"]
    assert after["envoy-gateway"] == before["envoy-gateway"]
    rotated = journey.json("get", "secret/operator-oauth", "-n", "tailscale-system")
    assert rotated["data"]["client_secret"] != secret["data"]["client_secret"]
    assert (
        OAUTH["tailscaleOauthClientSecret"]
        not in journey.run(["cat", str(journey.stack_file)]).stdout
    )


def test_a_renamed_package_destroys_nothing(journey: Journey) -> None:
    ok(journey.up(), "make up")
    before = journey.objects()
    for package in journey.packages:
        if package["name"] == "headscale":
            package["name"] = "headscale-mesh"
            package["formerNames"] = ["headscale"]
    journey.write_stack()
    journey.forget_calls()
    ok(journey.up(), "make up after the rename")
    assert "live destroy" not in _kpt_subcommands(journey)
    assert {k: v["uid"] for k, v in journey.objects().items()} == {
        k: v["uid"] for k, v in before.items()
    }
    _in_sync(journey)


def test_a_cancelled_up_leaves_nothing_running_and_the_next_up_completes(journey: Journey) -> None:
    # kube-vip's apply hangs: the engine is cancelled (Ctrl-C) while the step runs.
    journey.fault(
        "kpt", {"match": ["live", "apply"], "unless": ["--dry-run"], "action": "hang", "times": 1}
    )
    process = subprocess.Popen(
        ["make", "--no-print-directory", "up", "PULUMI_ARGS=--yes"],
        cwd=ROOT,
        env=journey.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not [
        c for c in journey.calls("kpt") if c[:2] == ["live", "apply"]
    ]:
        time.sleep(0.5)
    assert journey.calls("kpt"), "kpt live apply never started"
    time.sleep(2)
    os.killpg(process.pid, signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"make up did not stop after Ctrl-C:\n{output[-4000:]}")
    assert process.returncode != 0
    time.sleep(1)
    leftovers = subprocess.run(
        ["pgrep", "-af", str(journey.catalog)], capture_output=True, text=True, check=False
    ).stdout
    assert leftovers.strip() == "", f"still running after the cancel:\n{leftovers}"

    ok(journey.up(), "the next make up")
    _in_sync(journey)


def test_destroy_keeps_kube_vip_and_releases_the_connector_before_the_operator(
    journey: Journey,
) -> None:
    empty = set(journey.objects())  # what the cluster holds of itself, and the stand-ins' CRDs
    ok(journey.up(), "make up")
    assert FINALIZER in journey.json("get", CONNECTOR)["metadata"]["finalizers"]

    # The Connector's delete waits until the operator stand-in (which runs only while the
    # operator's Deployment does) has released its finalizer: had the operator gone first, the
    # delete would wait forever and the destroy would fail.
    ok(journey.make("destroy", "PULUMI_ARGS=--yes"), "make destroy")
    left = sorted(set(journey.objects()) - empty)
    # kube-vip's objects and inventory, and the ResourceGroup CRD kpt installed (kpt never
    # removes it).
    assert left == [
        "ClusterRole//system:kube-vip-role",
        "ClusterRoleBinding//system:kube-vip-binding",
        "CustomResourceDefinition//resourcegroups.kpt.dev",
        "DaemonSet/kube-system/kube-vip-ds",
        "ResourceGroup/kube-system/kube-vip",
        "ServiceAccount/kube-system/kube-vip",
    ]
    assert not [u for u in journey.urns() if "KptPackage" in u and "kube-vip" not in u]

    ok(journey.make("destroy-all", "PULUMI_ARGS=--yes"), "make destroy-all")
    assert sorted(set(journey.objects()) - empty) == [
        "CustomResourceDefinition//resourcegroups.kpt.dev"
    ]
    assert not [u for u in journey.urns() if "KptPackage" in u or "command:local" in u]


def test_an_operator_that_never_gets_ready_fails_the_up_and_the_next_up_completes(
    journey: Journey,
) -> None:
    for package in journey.packages:
        if package["name"] == "tailscale":
            package["manifests"][0]["timeout"] = "20s"
    journey.write_stack()
    journey.world.behave("tailscale", "never")  # it takes the finalizer, never says Ready
    failed = journey.up()
    out = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "cluster-subnet-router" in out, out[-3000:]
    assert not [u for u in journey.urns() if u.endswith("headscale-apply")], "headscale ran"

    journey.world.behave("tailscale", "normal")
    ok(journey.up(), "make up once the operator is ready")
    _in_sync(journey)


def test_an_unreachable_cluster_is_named_and_never_read_as_in_sync(journey: Journey) -> None:
    ok(journey.up(), "make up")
    assert journey.world.control_plane is not None
    journey.world.control_plane.stop_process("kube-apiserver")

    diff = journey.tool("diff", "--timeout", "30s")
    assert diff.returncode == exits.UNREACHABLE, diff.stdout + diff.stderr
    assert "cluster unreachable" in diff.stdout + diff.stderr
    assert "in sync" not in diff.stdout

    status = journey.tool("status", "--timeout", "30s")
    assert status.returncode == exits.UNREACHABLE, status.stdout + status.stderr
    # the deploy commands probe first: nothing reaches the engine
    up = journey.tool("up", "--yes")
    assert up.returncode == exits.UNREACHABLE, up.stdout + up.stderr
    assert "cluster unreachable" in up.stdout + up.stderr
    assert "cluster unreachable" in status.stdout + status.stderr


def test_a_killed_test_run_leaves_no_control_plane_running(tmp_path: Path) -> None:
    """The world's processes die with the process that started them, even by SIGKILL."""
    starter = subprocess.Popen(
        [
            str(ROOT / "venv" / "bin" / "python"),
            "-c",
            "import sys, time; from pathlib import Path; from world.session import World; "
            "World(Path(sys.argv[1])).start(); print('up', flush=True); time.sleep(600)",
            str(tmp_path / "world"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert starter.stdout is not None
    assert starter.stdout.readline().strip() == "up"
    pids = [int(line.split()[0]) for line in (tmp_path / "world" / "pids").read_text().splitlines()]
    assert len(pids) == 5  # etcd, the three control-plane processes, the stand-ins
    starter.kill()
    starter.wait()
    deadline = time.monotonic() + 15
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)]
    assert alive == [], f"still running after the test process was killed: {alive}"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1]
    except (OSError, IndexError):
        return "Z"


def test_a_kubectl_diff_killed_by_a_signal_is_an_error_not_in_sync(journey: Journey) -> None:
    ok(journey.up(), "make up")
    config = journey.catalog / "mesh/headscale/config.yaml"
    config.write_text(config.read_text().replace("0.0.0.0:8080", "0.0.0.0:8082"))  # drift
    journey.fault("kubectl", {"match": ["diff"], "action": "kill", "signal": "SEGV"})
    diff = journey.tool("diff")
    out = diff.stdout + diff.stderr
    assert diff.returncode == exits.FAILED, out
    assert "killed by signal 11" in out, out
    assert "0 of 5 package(s) in sync, 5 failed" in out, out


def test_a_line_over_64_kib_from_kpt_does_not_hang_the_up(journey: Journey) -> None:
    # The command provider reads output lines with a 64 KiB scanner and blocks the command on a
    # longer one (pulumi/pulumi-command#201): the step must never pass such a line on.
    journey.fault(
        "kpt",
        {
            "match": ["live", "apply"],
            "unless": ["--dry-run"],
            "action": "long_line",
            "bytes": 200_000,
            "times": 1,
        },
    )
    ok(journey.up(), "make up with a 200 kB line from kpt")
    _in_sync(journey)
