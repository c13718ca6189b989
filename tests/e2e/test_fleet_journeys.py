"""One catalog to two clusters through the real engine: two local control planes, one Pulumi
backend, `kpt-catalog fleet up`. A catalog that fails on the canary touches nothing else and the
canary is rolled back: destroyed when it never ran a good catalog, returned to its last good one
when it did."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from kpt_catalog import exits
from tests.e2e.journey import OAUTH, journey_graph
from tests.harness import EXAMPLE_CATALOG, ROOT
from world.binaries import Binaries
from world.session import World

pytestmark = pytest.mark.e2e

# An object the API server refuses (a name that is no DNS subdomain): kpt's apply of the package
# that holds it fails, on every cluster alike.
BAD_OBJECT = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n  namespace: headscale\n"
)


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
        env = self.worlds["a"].env()  # its backend, passphrase and plugins serve both stacks
        env["XDG_STATE_HOME"] = str(self.work / "state")
        env.pop("KUBECONFIG", None)  # each stack names its own
        return env

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

    def fleet_up(self) -> subprocess.CompletedProcess[str]:
        fleet = ["fleet", "--fleet", str(self.fleet_file)]
        return self.run(str(ROOT / "kpt-catalog"), *fleet, "up", "--yes")

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


@pytest.fixture
def fleet(
    tmp_path: Path, world_binaries: Binaries, request: pytest.FixtureRequest
) -> Iterator[Fleet]:
    catalog = tmp_path / "catalog"
    shutil.copytree(EXAMPLE_CATALOG, catalog)
    tag = secrets.token_hex(3)
    worlds: dict[str, World] = {}
    stacks = {letter: f"fleet-{tag}-{letter}" for letter in ("a", "b")}
    made = Fleet(tmp_path, catalog, worlds, stacks, [])
    try:
        for letter in ("a", "b"):
            worlds[letter] = World(tmp_path / f"world-{letter}", binaries=world_binaries).start()
        worlds["b"].passphrase = worlds["a"].passphrase
        for letter, stack in stacks.items():
            config = {
                "kpt-catalog:kubeconfig": str(worlds[letter].kubeconfig),
                "kpt-catalog:context": worlds[letter].context,
                "kpt-catalog:catalogDir": str(catalog),
                "kpt-catalog:packages": journey_graph(),
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
                {"name": stacks["a"], "labels": {"ring": "canary"}},
                {"name": stacks["b"], "labels": {"ring": "main"}},
            ],
            "canary": {"selector": {"ring": "canary"}},
            "waves": {"by": "label", "label": "ring"},
            "onFailure": "rollbackFailed",
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
    # 2. fixed: the canary, then the other wave
    bad.unlink()
    second = fleet.fleet_up()
    assert second.returncode == exits.OK, second.stdout + second.stderr
    good = fleet.last_good()
    assert set(good) == {a, b} and good[a] == good[b]
    deployed = {"kube-vip", "cilium", "tailscale-operator", "headscale", "envoy-gateway"}
    assert fleet.inventories("a") == fleet.inventories("b") == deployed  # their ResourceGroups
    # 3. the next catalog fails on the canary: it goes back to the last good catalog, and the
    # second cluster keeps running that one, untouched
    bad.write_text(BAD_OBJECT)
    third = fleet.fleet_up()
    out = third.stdout + third.stderr
    assert third.returncode == exits.FAILED, out
    assert f"canary: {a}: rolling back to catalog {good[a][:12]}" in out, out
    assert fleet.last_good() == good
    runs = sorted((fleet.work / ".fleet" / "runs").glob("*.jsonl"))
    events = [json.loads(line) for line in runs[-1].read_text().splitlines()]
    assert [e["cluster"] for e in events if e["event"] == "start"] == [a]
    assert [e["ok"] for e in events if e["event"] == "rolled-back"] == [True]
    assert fleet.inventories("a") == fleet.inventories("b") == deployed
    # nothing of the failed catalog is left on the canary
    configmaps = fleet.run(
        "kubectl", "--kubeconfig", str(fleet.worlds["a"].kubeconfig), "get", "configmaps",
        "-n", "headscale", "-o", "name",
    )  # fmt: skip
    assert "Bad_Name" not in configmaps.stdout
