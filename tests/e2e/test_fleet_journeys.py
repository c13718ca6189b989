"""One catalog to two clusters through the real engine: two local control planes, one Pulumi
backend, `kpt-catalog fleet diff` and `fleet up`. A catalog that fails on the canary touches
nothing else and the canary is rolled back: destroyed when it never ran a good catalog, returned
to its last good one when it did. A cluster whose changes are not the canary's is named, and
deployed only once approved."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kpt_catalog import exits
from tests.e2e.journey import FAULTS_BIN, OAUTH, journey_graph
from tests.harness import EXAMPLE_CATALOG, ROOT
from world.binaries import Binaries
from world.session import World

pytestmark = pytest.mark.e2e

# An object the API server refuses (a name that is no DNS subdomain): kpt's apply of the package
# that holds it fails, on every cluster alike (and so does its diff, once the package is deployed).
BAD_OBJECT = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n  namespace: headscale\n"
)


SERVICE_ADDRESS = "{.spec.type} {.status.loadBalancer.ingress[0].ip}"


def _graph() -> list[dict[str, object]]:
    """The journeys' graph, headscale's address awaited 20 s only: the catalog that breaks it
    must fail fast."""
    packages = journey_graph()
    for package in packages:
        if package["name"] == "headscale":
            package["waitAfter"][0]["timeout"] = "20s"
    return packages


@dataclass
class Fleet:
    work: Path
    catalog: Path
    worlds: dict[str, World]
    stacks: dict[str, str]
    """Cluster letter to stack name."""
    log: list[str]

    @property
    def fleet_file(self) -> Path:
        return self.work / "fleet.yaml"

    def env(self) -> dict[str, str]:
        env = self.worlds["a"].env()  # its backend, passphrase and plugins serve every stack
        env["XDG_STATE_HOME"] = str(self.work / "state")
        env["PATH"] = os.pathsep.join([str(FAULTS_BIN), env["PATH"]])
        env["KPT_CATALOG_FAULTS"] = str(self.work / "faults")
        env.pop("KUBECONFIG", None)  # each stack names its own
        return env

    def refuse_apply_on(self, *letters: str) -> None:
        """The next real `kpt live apply` on each of these clusters is refused (once each)."""
        rules = [
            {
                "match": ["live", "apply", str(self.worlds[letter].kubeconfig)],
                "unless": ["--dry-run"],
                "action": "refuse",
                "times": 1,
            }
            for letter in letters
        ]
        (self.work / "faults" / "kpt.json").write_text(json.dumps(rules))

    def listen_port(self, letter: str) -> str:
        """headscale's listen port on that cluster, from its ConfigMap."""
        shown = self.run(
            "kubectl", "--kubeconfig", str(self.worlds[letter].kubeconfig), "get", "configmap",
            "headscale-config", "-n", "headscale", "-o", "jsonpath={.data.config\\.yaml}",
        )  # fmt: skip
        found = re.search(r"^listen_addr: 0\.0\.0\.0:(\d+)$", shown.stdout, re.MULTILINE)
        assert found, shown.stdout + shown.stderr
        return found.group(1)

    def run(
        self, *argv: str, stdin: str | None = None, stack: str = ""
    ) -> subprocess.CompletedProcess[str]:
        env = self.env() | ({"STACK": stack} if stack else {})
        result = subprocess.run(
            list(argv),
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            input=stdin,
            timeout=1800,
            check=False,
        )
        self.log.append(
            f"$ {' '.join(argv)} -> {result.returncode}\n"
            f"{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
        )
        return result

    def fleet_up(self, *args: str) -> subprocess.CompletedProcess[str]:
        fleet = ["fleet", "--fleet", str(self.fleet_file)]
        return self.run(str(ROOT / "kpt-catalog"), *fleet, "up", "--yes", *args)

    def inventories(self, letter: str) -> set[str]:
        """The kpt inventories in that cluster: which packages are deployed there."""
        world = self.worlds[letter]
        listed = self.run(
            "kubectl", "--kubeconfig", str(world.kubeconfig), "get", "resourcegroups.kpt.dev",
            "-A", "-o", "json",
        )  # fmt: skip
        if listed.returncode != 0 and "doesn't have a resource type" in listed.stderr:
            return set()
        assert listed.returncode == 0, listed.stderr
        return {item["metadata"]["name"] for item in json.loads(listed.stdout)["items"]}

    def last_good(self) -> dict[str, str]:
        path = self.work / ".fleet" / "last-good.json"
        return json.loads(path.read_text()) if path.exists() else {}


def _open_fleet(
    tmp_path: Path,
    world_binaries: Binaries,
    request: pytest.FixtureRequest,
    letters: Sequence[str],
    rules: Mapping[str, object],
) -> Iterator[Fleet]:
    """A control plane and a stack per letter (the first the canary), one backend, fleet.yaml
    with `rules` (the waves: ring=main after the canary)."""
    catalog = tmp_path / "catalog"
    shutil.copytree(EXAMPLE_CATALOG, catalog)
    tag = secrets.token_hex(3)
    worlds: dict[str, World] = {}
    stacks = {letter: f"fleet-{tag}-{letter}" for letter in letters}
    made = Fleet(tmp_path, catalog, worlds, stacks, [])
    (tmp_path / "faults").mkdir()
    try:
        for letter in letters:
            worlds[letter] = World(tmp_path / f"world-{letter}", binaries=world_binaries).start()
            worlds[letter].passphrase = worlds[letters[0]].passphrase
        for letter, stack in stacks.items():
            config = {
                "kpt-catalog:kubeconfig": str(worlds[letter].kubeconfig),
                "kpt-catalog:context": worlds[letter].context,
                "kpt-catalog:catalogDir": str(catalog),
                "kpt-catalog:packages": _graph(),
            }
            (ROOT / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))
            for key, value in OAUTH.items():
                stored = made.run(
                    "sh", "kpt_catalog/pulumi-stack.sh", "config", "set", "--secret",
                    f"kpt-catalog:{key}", stdin=value, stack=stack,
                )  # fmt: skip
                assert stored.returncode == 0, stored.stderr
        fleet_yaml = {
            "clusters": [
                {"name": stack, "labels": {"ring": "canary" if letter == letters[0] else "main"}}
                for letter, stack in stacks.items()
            ],
            "canary": {"selector": {"ring": "canary"}},
            "waves": {"by": "label", "label": "ring"},
            **rules,
        }
        made.fleet_file.write_text(yaml.safe_dump(fleet_yaml, sort_keys=False))
        yield made
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            print("\n".join(made.log))
        for world in worlds.values():
            world.stop()
        for stack in stacks.values():
            (ROOT / f"Pulumi.{stack}.yaml").unlink(missing_ok=True)


@pytest.fixture
def fleet(
    tmp_path: Path, world_binaries: Binaries, request: pytest.FixtureRequest
) -> Iterator[Fleet]:
    yield from _open_fleet(
        tmp_path, world_binaries, request, ("a", "b"), {"onFailure": "rollbackFailed"}
    )


@pytest.fixture
def fleet_of_four(
    tmp_path: Path, world_binaries: Binaries, request: pytest.FixtureRequest
) -> Iterator[Fleet]:
    """Four control planes at once: a canary, then a wave of three that may lose one."""
    rules = {"maxFailures": 1, "maxConcurrency": 1, "onFailure": "rollbackWave"}
    yield from _open_fleet(tmp_path, world_binaries, request, ("a", "b", "c", "d"), rules)


def test_a_catalog_failing_on_the_canary_touches_nothing_else_and_the_canary_goes_back(
    fleet: Fleet,
) -> None:
    a, b = fleet.stacks["a"], fleet.stacks["b"]
    bad = fleet.catalog / "mesh" / "headscale" / "bad.yaml"
    # 1. the first catalog fails on the canary, which never ran a good one: it is destroyed
    bad.write_text(BAD_OBJECT)
    first = fleet.fleet_up()
    out = first.stdout + first.stderr
    assert first.returncode == exits.FAILED, out
    assert f"canary: {a}: FAILED" in out, out
    assert f"canary: {a}: no earlier good catalog: destroy" in out, out
    assert fleet.inventories("a") == {"kube-vip"}  # protected: only destroy-all removes it
    assert fleet.inventories("b") == set(), "the second cluster was touched"
    assert fleet.last_good() == {}
    # 2. fixed: the canary, then the other wave. The canary kept kube-vip through its rollback,
    # so the second cluster gets kube-vip's creates besides the canary's: fleet up names them
    # and waits for that cluster's approval
    bad.unlink()
    held = fleet.fleet_up()
    assert held.returncode == exits.CONFIG, held.stdout + held.stderr
    assert "  + kube-vip: create apps/DaemonSet/kube-system/kube-vip-ds" in held.stdout
    assert fleet.inventories("b") == set()
    second = fleet.fleet_up(f"--approve={b}")
    assert second.returncode == exits.OK, second.stdout + second.stderr
    good = fleet.last_good()
    assert set(good) == {a, b} and good[a] == good[b]
    for stack in (a, b):  # each stack says which catalog it runs well
        tag = fleet.run("pulumi", "stack", "tag", "get", "kpt-catalog:catalog", "--stack", stack)
        assert tag.stdout.strip() == good[a], tag.stdout + tag.stderr
    deployed = {"kube-vip", "cilium", "tailscale-operator", "headscale", "envoy-gateway"}
    assert fleet.inventories("a") == fleet.inventories("b") == deployed  # their ResourceGroups
    # 3. someone scaled headscale down on the second cluster: a new catalog would change more
    # there than on the canary, so fleet diff names it and fleet up waits for its approval
    scaled = fleet.run(
        "kubectl", "--kubeconfig", str(fleet.worlds["b"].kubeconfig), "scale",
        "deployment/headscale", "-n", "headscale", "--replicas=0",
    )  # fmt: skip
    assert scaled.returncode == 0, scaled.stderr
    config = fleet.catalog / "mesh" / "headscale" / "config.yaml"
    config.write_text(config.read_text().replace("0.0.0.0:8080", "0.0.0.0:8081"))
    diff = fleet.run(str(ROOT / "kpt-catalog"), "fleet", "--fleet", str(fleet.fleet_file), "diff")
    out = diff.stdout + diff.stderr
    assert diff.returncode == exits.DIFFERS, out
    assert f"1 cluster(s) ({a}): the canary's 1 change(s)" in out, out
    assert f"1 cluster(s) ({b}) differ from the canary:" in out, out
    assert (
        "  + headscale: change apps/Deployment/headscale/headscale [-  replicas: 0; +  replicas: 1]"
        in out
    ), out
    refused = fleet.fleet_up()
    assert refused.returncode == exits.CONFIG, refused.stdout + refused.stderr
    assert f"--approve {b}" in refused.stderr
    approved = fleet.fleet_up(f"--approve={b}")
    assert approved.returncode == exits.OK, approved.stdout + approved.stderr
    good = fleet.last_good()
    assert good[a] == good[b]
    # 4. the next catalog breaks the canary in a way no diff can tell (headscale's Service gets
    # no address): it goes back to its last good catalog, and the second cluster keeps running
    # that one, untouched
    service = fleet.catalog / "mesh" / "headscale" / "deployment.yaml"
    service.write_text(service.read_text().replace("type: LoadBalancer", "type: ClusterIP"))
    third = fleet.fleet_up()
    out = third.stdout + third.stderr
    assert third.returncode == exits.FAILED, out
    assert f"canary: {a}: FAILED: " in out, out
    assert f"canary: {a}: rolling back to catalog {good[a][:12]}" in out, out
    assert fleet.last_good() == good
    runs = sorted((fleet.work / ".fleet" / "runs").glob("*.jsonl"))
    events = [json.loads(line) for line in runs[-1].read_text().splitlines()]
    assert [e["cluster"] for e in events if e["event"] == "start"] == [a]
    assert [e["ok"] for e in events if e["event"] == "rolled-back"] == [True]
    for letter in ("a", "b"):  # both run the last good catalog: a LoadBalancer with its address
        shown = fleet.run(
            "kubectl", "--kubeconfig", str(fleet.worlds[letter].kubeconfig), "get", "service",
            "headscale", "-n", "headscale", "-o", f"jsonpath={SERVICE_ADDRESS}",
        )  # fmt: skip
        kind, _, address = shown.stdout.partition(" ")
        assert kind == "LoadBalancer" and address, shown.stdout + shown.stderr


def _journal_has(fleet: Fleet, event: str, cluster: str, timeout: float = 900) -> None:
    """Wait until the newest rollout journal holds `event` for `cluster`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = sorted((fleet.work / ".fleet" / "runs").glob("*.jsonl"))
        if runs:
            for line in runs[-1].read_text().splitlines():
                entry = json.loads(line) if line.endswith("}") else {}
                if entry.get("event") == event and entry.get("cluster") == cluster:
                    return
        time.sleep(0.5)
    raise AssertionError(f"no {event} of {cluster} in the journal after {timeout}s")


def test_a_killed_rollout_resumes_without_deploying_again_and_a_silent_cluster_is_deferred(
    fleet: Fleet,
) -> None:
    a, b = fleet.stacks["a"], fleet.stacks["b"]
    command = [str(ROOT / "kpt-catalog"), "fleet", "--fleet", str(fleet.fleet_file), "up", "--yes"]
    # 1. the orchestrator is killed while the second cluster's up runs
    rollout = subprocess.Popen(
        command, cwd=ROOT, env=fleet.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _journal_has(fleet, "start", b)
    finally:
        rollout.kill()
        rollout.wait()
    # 2. --resume waits for that up (never cancelled, never doubled) and does not deploy the
    # canary again
    resumed = fleet.fleet_up("--resume")
    out = resumed.stdout + resumed.stderr
    assert resumed.returncode == exits.OK, out
    assert "1 cluster(s) finished" in out, out
    runs = sorted((fleet.work / ".fleet" / "runs").glob("*.jsonl"))
    assert len(runs) == 1  # the same rollout, gone on with
    events = [json.loads(line) for line in runs[0].read_text().splitlines()]
    assert [e["cluster"] for e in events if e["event"] == "start"] == [a, b, b]
    assert [e["cluster"] for e in events if e["event"] == "result" and e["ok"]] == [a, b]
    assert events[-1]["event"] == "end" and events[-1]["verdict"] == "done"
    logs = (fleet.work / ".fleet" / "logs" / runs[0].stem / f"{b}.log").read_text()
    assert "waiting for pid" in logs or logs.count("==== ") >= 3
    status = fleet.run(
        str(ROOT / "kpt-catalog"), "fleet", "--fleet", str(fleet.fleet_file), "status"
    )
    assert status.returncode == exits.OK, status.stdout + status.stderr
    rows = [
        line.split()
        for line in status.stdout.splitlines()
        if line.startswith(("fleet-", "CLUSTER"))
    ]
    assert rows[0][0] == "CLUSTER" and len(rows[0]) == 6  # a column per package
    assert rows[1:] == [[a, *["healthy"] * 5], [b, *["healthy"] * 5]]
    # 3. the second cluster stops answering: the next rollout deploys the canary and defers it
    world_b = fleet.worlds["b"]
    assert world_b.control_plane is not None
    world_b.control_plane.stop_process("kube-apiserver")
    config = fleet.catalog / "mesh" / "headscale" / "config.yaml"
    config.write_text(config.read_text().replace("0.0.0.0:8080", "0.0.0.0:8081"))
    silent = fleet.fleet_up()
    out = silent.stdout + silent.stderr
    assert silent.returncode == exits.UNREACHABLE, out
    assert f"{b}: could not be diffed (exit 3)" in out, out
    assert "did not answer; deferred to the end" in out, out
    assert f"{b}  " in out and "deferred" in out
    good = fleet.last_good()
    assert good[a] != good[b]  # the canary runs the new catalog; the silent one the last
    status = fleet.run(
        str(ROOT / "kpt-catalog"), "fleet", "--fleet", str(fleet.fleet_file), "status"
    )
    assert status.returncode == exits.UNREACHABLE, status.stdout + status.stderr
    assert [b, "unreachable"] in [line.split() for line in status.stdout.splitlines()]


def _listen(fleet: Fleet, port: int) -> None:
    """A new catalog: headscale listens on another port."""
    config = fleet.catalog / "mesh" / "headscale" / "config.yaml"
    text = config.read_text()
    current = text.split("listen_addr: 0.0.0.0:")[1].split()[0]
    config.write_text(
        text.replace(f"listen_addr: 0.0.0.0:{current}", f"listen_addr: 0.0.0.0:{port}")
    )


def _run_events(fleet: Fleet) -> list[dict[str, Any]]:
    runs = sorted((fleet.work / ".fleet" / "runs").glob("*.jsonl"))
    return [json.loads(line) for line in runs[-1].read_text().splitlines()]


def test_a_failure_within_budget_goes_on_and_over_budget_the_wave_goes_back(
    fleet_of_four: Fleet,
) -> None:
    fleet = fleet_of_four
    a, b, c, d = (fleet.stacks[x] for x in "abcd")
    first = fleet.fleet_up()
    assert first.returncode == exits.OK, first.stdout + first.stderr
    v1 = fleet.last_good()[a]
    # 1. one cluster of the wave fails: within the budget of one, the wave goes on; the rollout
    # ends with exit 4, naming it
    _listen(fleet, 8081)
    fleet.refuse_apply_on("b")
    second = fleet.fleet_up()
    out = second.stdout + second.stderr
    assert second.returncode == exits.FAILED, out
    assert "done, with failures" in out, out
    v2 = fleet.last_good()[a]
    assert fleet.last_good() == {a: v2, b: v1, c: v2, d: v2}
    assert [fleet.listen_port(x) for x in "abcd"] == ["8081", "8080", "8081", "8081"]
    # 2. two fail: over the budget, no other cluster of the wave starts and the wave's clusters
    # that ran go back to their last good catalogs (b, still on the first one, must be approved:
    # it would get more changes than the canary)
    _listen(fleet, 8082)
    fleet.refuse_apply_on("b", "c")
    third = fleet.fleet_up(f"--approve={b}")
    out = third.stdout + third.stderr
    assert third.returncode == exits.FAILED, out
    events = _run_events(fleet)
    over = next(e for e in events if e["event"] == "over-budget")
    assert sorted(over["failed"]) == sorted([b, c]) and over["policy"] == "rollbackWave"
    assert d not in [e.get("cluster") for e in events if e["event"] == "start"]
    assert sorted(
        e["cluster"] for e in events if e["event"] == "rolled-back" and e["ok"]
    ) == sorted([b, c])
    v3 = fleet.last_good()[a]
    assert fleet.last_good() == {a: v3, b: v1, c: v2, d: v2}
    assert [fleet.listen_port(x) for x in "abcd"] == ["8082", "8080", "8081", "8081"]
