"""`kpt-catalog fleet`: fleet.yaml checked with its lines, the waves it makes, and the rollout
engine against a stand-in for the clusters (what each cluster was asked to do, in what order)."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from components.config import ConfigError, load_with_lines
from kpt_catalog import exits
from kpt_catalog.fleet import command
from kpt_catalog.fleet import diff as fleet_diff
from kpt_catalog.fleet import status as fleet_status
from kpt_catalog.fleet.config import load_fleet, parse_fleet
from kpt_catalog.fleet.journal import FleetLockedError, Journal, fleet_lock, read_journal
from kpt_catalog.fleet.rollout import Outcome, Rollout, finished_clusters
from kpt_catalog.fleet.snapshot import Snapshot, snapshot_catalog
from kpt_catalog.fleet.waves import plan_waves
from tests.harness import EXAMPLE_CATALOG, ROOT

FLEET = """\
clusters:
  - name: lab
    labels: {ring: canary}
  - name: east-1
    labels: {region: east}
  - name: east-2
    labels: {region: east}
  - name: west-1
    labels: {region: west}
  - name: west-2
    labels: {region: west}
canary:
  selector: {ring: canary}
waves:
  by: label
  label: region
maxConcurrency: 2
maxFailures: 0
onFailure: rollbackFailed
"""


def _fleet(text: str = FLEET, **changes: object):
    document = load_with_lines(text, "fleet.yaml")
    assert isinstance(document, dict)
    document.update(changes)
    return parse_fleet(document)


# --- fleet.yaml --------------------------------------------------------------------------------


def test_the_waves_are_the_canary_then_one_per_region():
    waves = plan_waves(_fleet())
    assert [(w.name, [c.name for c in w.clusters], w.budget) for w in waves] == [
        ("canary", ["lab"], 0),
        ("wave 1 (region=east)", ["east-1", "east-2"], 0),
        ("wave 2 (region=west)", ["west-1", "west-2"], 0),
    ]


@pytest.mark.parametrize(
    ("waves", "sizes"),
    [
        ({"by": "count", "size": 3}, [1, 3, 1]),
        ({"by": "doubling", "start": 1}, [1, 1, 2, 1]),
    ],
)
def test_waves_by_count_or_doubling(waves, sizes):
    config = _fleet(canary={"count": 1}, waves=waves)
    assert [len(w.clusters) for w in plan_waves(config)] == sizes


def test_a_percent_budget_is_of_each_wave():
    config = _fleet(maxFailures="50%")
    assert [w.budget for w in plan_waves(config)] == [0, 1, 1]


def test_every_mistake_is_named_with_its_line():
    text = FLEET.replace("maxFailures: 0", "maxFailure: 0").replace(
        "onFailure: rollbackFailed", "onFailure: rollback"
    )
    text = text.replace("  - name: west-2", "  - name: east-1")
    with pytest.raises(ConfigError) as raised:
        parse_fleet(load_with_lines(text, "fleet.yaml"))
    said = str(raised.value)
    assert "fleet.yaml line 10: clusters[4].name: 'east-1' is also clusters[1]" in said
    assert "fleet.yaml line 18: maxFailure: unknown key; did you mean 'maxFailures'?" in said
    assert (
        "fleet.yaml line 19: onFailure: expected one of pause, rollbackFailed, rollbackWave, "
        "found 'rollback'"
    ) in said


def test_a_cluster_without_a_stack_file_is_named_with_the_fix(tmp_path: Path):
    (tmp_path / "fleet.yaml").write_text(FLEET)
    with pytest.raises(ConfigError) as raised:
        load_fleet(tmp_path / "fleet.yaml", ["lab", "east-1", "east-2", "west-1"])
    assert (
        "fleet.yaml line 10: clusters[4].name: no stack file Pulumi.west-2.yaml; create it with "
        "kpt-catalog stack init west-2"
    ) in str(raised.value)


# --- the rollout engine ------------------------------------------------------------------------


@dataclass
class Clusters:
    """Stand-in clusters: which fail their up, which do not answer, how long an up takes."""

    failing: set[str] = field(default_factory=set)
    unhealthy: set[str] = field(default_factory=set)
    unreachable: set[str] = field(default_factory=set)
    up_seconds: float = 0.0
    crash_after: int = 0
    """Stop the whole process (as a kill would) when this many ups have finished."""
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    running: int = 0
    most_running: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reachable(self, cluster: str) -> bool:
        return cluster not in self.unreachable

    def up(self, cluster: str, snapshot: Snapshot) -> Outcome:
        with self.lock:
            self.calls.append(("up", cluster, snapshot.digest[:11]))
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        failing = cluster in self.failing and snapshot.digest.startswith("new-catalog")
        time.sleep(self.up_seconds / 6 if failing else self.up_seconds)  # a failure comes first
        with self.lock:
            self.running -= 1
            ups = sum(1 for call in self.calls if call[0] == "up")
            if self.crash_after and ups >= self.crash_after:
                raise KeyboardInterrupt  # the orchestrator killed mid-wave
        if failing:
            return Outcome(False, "kpt live apply failed")
        return Outcome(True)

    def health(self, cluster: str, deadline_seconds: int) -> Outcome:
        self.calls.append(("health", cluster, ""))
        return Outcome(cluster not in self.unhealthy, "headscale: UNHEALTHY")

    def mark_good(self, cluster: str, digest: str) -> None:
        self.calls.append(("mark", cluster, digest[:11]))

    def destroy(self, cluster: str) -> Outcome:
        self.calls.append(("destroy", cluster, ""))
        return Outcome(True)

    def did(self, what: str) -> list[str]:
        return [cluster for kind, cluster, _ in self.calls if kind == what]


def _store(tmp_path: Path, digest: str) -> Snapshot:
    root = tmp_path / "fleet" / "catalogs" / digest
    (root / "catalog").mkdir(parents=True, exist_ok=True)
    (root / ".complete").touch()
    return Snapshot(digest, root)


def _rollout(
    tmp_path: Path, clusters: Clusters, config=None, *, last_good=None, finished=None, before=None
):
    config = config or _fleet()
    root = tmp_path / "fleet"
    new = _store(tmp_path, "new-catalog" + "0" * 52)
    journal = Journal(root / "runs" / "run-1.jsonl")
    if finished is None:
        journal.write("run", run="run-1", catalog=new.digest)
    rollout = Rollout(
        config,
        plan_waves(config),
        clusters,
        journal,
        new,
        store=root / "catalogs",
        last_good=last_good or {},
        last_good_file=root / "last-good.json",
        finished=finished,
        before=before,
        say=lambda line: None,
    )
    return rollout, root


def test_a_good_rollout_deploys_every_cluster_wave_by_wave(tmp_path: Path):
    clusters = Clusters()
    rollout, root = _rollout(tmp_path, clusters)

    result = rollout.run()

    assert result.verdict == "done"
    ups = clusters.did("up")
    assert ups[0] == "lab" and set(ups[1:3]) == {"east-1", "east-2"}
    assert set(ups[3:]) == {"west-1", "west-2"}
    assert clusters.did("health") and len(clusters.did("health")) == 5
    last_good = json.loads((root / "last-good.json").read_text())
    assert set(last_good) == {"lab", "east-1", "east-2", "west-1", "west-2"}
    assert sorted(clusters.did("mark")) == sorted(last_good)  # each stack tagged too


def test_a_failed_canary_touches_nothing_else_and_is_rolled_back(tmp_path: Path):
    _store(tmp_path, "old-catalog" + "0" * 52)
    clusters = Clusters(failing={"lab"})
    rollout, root = _rollout(tmp_path, clusters, last_good={"lab": "old-catalog" + "0" * 52})

    result = rollout.run()

    assert result.verdict == "rolled back"
    # the canary's up, then its up from the last good catalog; no other cluster is touched
    assert clusters.calls == [
        ("up", "lab", "new-catalog"),
        ("up", "lab", "old-catalog"),
        ("mark", "lab", "old-catalog"),  # its stack says again which catalog it runs well
    ]
    assert result.clusters["lab"].state == "rolled back"
    assert {result.clusters[n].state for n in ("east-1", "west-2")} == {"pending"}
    events = [e["event"] for e in read_journal(root / "runs" / "run-1.jsonl")]
    assert events == [
        "run",
        "wave",
        "start",
        "result",
        "over-budget",
        "rollback",
        "rolled-back",
        "end",
    ]


def test_a_cluster_that_never_ran_well_is_rolled_back_with_destroy(tmp_path: Path):
    clusters = Clusters(unhealthy={"lab"})
    rollout, _ = _rollout(tmp_path, clusters)

    result = rollout.run()

    assert clusters.did("destroy") == ["lab"]
    assert "unhealthy after up: headscale: UNHEALTHY" in result.clusters["lab"].reason


def test_one_failure_within_the_budget_goes_on(tmp_path: Path):
    clusters = Clusters(failing={"east-2"})
    rollout, _ = _rollout(tmp_path, clusters, _fleet(maxFailures=1))

    result = rollout.run()

    assert result.verdict == "done, with failures"  # never silent, though the rollout went on
    assert set(clusters.did("up")) == {"lab", "east-1", "east-2", "west-1", "west-2"}
    assert clusters.did("destroy") == []
    assert result.clusters["east-2"].state == "failed"


def test_over_budget_rollback_wave_returns_the_whole_wave_and_stops(tmp_path: Path):
    old = "old-catalog" + "0" * 52
    _store(tmp_path, old)
    clusters = Clusters(failing={"east-1"}, up_seconds=0.2)  # east-1 and east-2 side by side
    config = _fleet(onFailure="rollbackWave")
    rollout, root = _rollout(
        tmp_path, clusters, config, last_good={"east-1": old, "east-2": old, "lab": old}
    )

    result = rollout.run()

    assert result.verdict == "rolled back"
    rolled = sorted(
        c for kind, c, short in clusters.calls if kind == "up" and short == "old-catalog"
    )
    assert rolled == ["east-1", "east-2"]  # the wave's clusters, not the canary
    assert not {"west-1", "west-2"} & set(clusters.did("up"))
    assert json.loads((root / "last-good.json").read_text()) == {
        "east-1": old,
        "east-2": old,
        "lab": "new-catalog" + "0" * 52,
    }


def test_pause_stops_without_touching_what_failed(tmp_path: Path):
    clusters = Clusters(failing={"east-1"})
    rollout, _ = _rollout(tmp_path, clusters, _fleet(onFailure="pause"))

    result = rollout.run()

    assert result.verdict == "paused"
    assert clusters.did("destroy") == [] and "west-1" not in clusters.did("up")


def test_over_budget_no_new_cluster_starts_and_running_ups_finish(tmp_path: Path):
    names = [f"c{i}" for i in range(6)]
    text = "clusters:\n" + "".join(f"  - name: {n}\n" for n in names)
    text += "canary: {count: 1}\nwaves: {by: count, size: 5}\nmaxConcurrency: 2\n"
    clusters = Clusters(failing={"c1"}, up_seconds=0.3)
    rollout, _ = _rollout(tmp_path, clusters, _fleet(text))

    result = rollout.run()

    # c1 and c2 ran side by side; c1 failed: c2 finished, c3.. never started
    assert sorted(clusters.did("up")) == ["c0", "c1", "c2"]
    assert clusters.did("destroy") == []  # onFailure defaults to pause: nothing rolled back
    assert result.clusters["c2"].state == "good"
    assert {result.clusters[n].state for n in ("c3", "c4", "c5")} == {"not started"}
    assert clusters.most_running == 2


def test_an_unreachable_cluster_is_deferred_then_tried_at_the_end(tmp_path: Path):
    clusters = Clusters(unreachable={"east-1"})
    rollout, _ = _rollout(tmp_path, clusters)

    result = rollout.run()

    assert result.verdict == "deferred"
    assert "east-1" not in clusters.did("up")
    assert result.clusters["east-1"].state == "deferred"
    assert set(clusters.did("up")) == {"lab", "east-2", "west-1", "west-2"}


def test_a_rollout_killed_mid_wave_resumes_without_deploying_a_cluster_twice(tmp_path: Path):
    clusters = Clusters(crash_after=3)
    rollout, root = _rollout(tmp_path, clusters, _fleet(maxConcurrency=1))
    with pytest.raises(KeyboardInterrupt):
        rollout.run()
    journal = root / "runs" / "run-1.jsonl"
    with journal.open("a") as handle:
        handle.write('{"event": "resu')  # a line torn by the kill
    finished = finished_clusters(read_journal(journal))
    assert finished == {"lab": "good", "east-1": "good"}  # the third up never got its result

    again = Clusters()
    resumed, _ = _rollout(tmp_path, again, _fleet(maxConcurrency=1), finished=finished)
    result = resumed.run()

    assert result.verdict == "done"
    assert sorted(again.did("up")) == ["east-2", "west-1", "west-2"]  # none of them twice
    every = [c for kind, c, _ in clusters.calls + again.calls if kind == "up"]
    assert every.count("lab") == 1 and every.count("east-1") == 1


def test_a_resumed_rollout_sends_the_wave_back_to_the_catalogs_before_it_began(tmp_path: Path):
    old, new = "old-catalog" + "0" * 52, "new-catalog" + "0" * 52
    _store(tmp_path, old)
    clusters = Clusters(failing={"east-2"})
    # the killed run deployed lab and east-1 well: the file says so, its journal what was before
    rollout, _ = _rollout(
        tmp_path,
        clusters,
        _fleet(onFailure="rollbackWave"),
        last_good={"lab": new, "east-1": new, "east-2": old},
        finished={"lab": "good", "east-1": "good"},
        before={"lab": old, "east-1": old, "east-2": old},
    )

    result = rollout.run()

    assert result.verdict == "rolled back"
    assert clusters.did("up")[0] == "east-2"
    back = sorted(c for kind, c, short in clusters.calls if kind == "up" and short == "old-catalog")
    assert back == ["east-1", "east-2"]  # east-1 too, though it finished before the kill


def test_two_rollouts_never_run_at_once(tmp_path: Path):
    lock = tmp_path / "lock"
    held = pytest.raises(FleetLockedError, match="another rollout holds the fleet lock")
    with fleet_lock(lock, "run-1"), held, fleet_lock(lock, "run-2"):
        pass
    assert not lock.exists()
    # a lock left by a process that is gone is taken over, and said
    lock.write_text(json.dumps({"pid": 2**22 + 7, "host": os.uname().nodename, "run": "old"}))
    with fleet_lock(lock, "run-3") as stale:
        assert stale["run"] == "old"


def test_a_catalog_is_stored_once_by_its_content(tmp_path: Path):
    store = tmp_path / "catalogs"
    graph = (ROOT / "packages.yaml").read_bytes()
    first = snapshot_catalog(EXAMPLE_CATALOG, graph, store)
    again = snapshot_catalog(EXAMPLE_CATALOG, graph, store)
    assert first == again and len(list(store.iterdir())) == 1
    assert (first.catalog_dir / "mesh" / "tailscale" / "03-connector.yaml").read_bytes() == (
        EXAMPLE_CATALOG / "mesh" / "tailscale" / "03-connector.yaml"
    ).read_bytes()
    assert first.graph_file.read_bytes() == (ROOT / "packages.yaml").read_bytes()


# --- the command ---------------------------------------------------------------------------------


def test_fleet_plan_prints_the_waves_offline(
    tmp_path: Path, stack_project: Path, capsys: pytest.CaptureFixture[str]
):
    for name in ("lab", "east-1", "east-2", "west-1", "west-2"):
        (stack_project / f"Pulumi.{name}.yaml").write_text("config: {}\n")
    (tmp_path / "fleet.yaml").write_text(FLEET)

    code = command.main(["--fleet", str(tmp_path / "fleet.yaml"), "plan", "-o", "json"])

    printed = capsys.readouterr()
    assert code == exits.OK, printed.err
    assert json.loads(printed.out)["waves"] == [
        {"name": "canary", "clusters": ["lab"], "budget": 0},
        {"name": "wave 1 (region=east)", "clusters": ["east-1", "east-2"], "budget": 0},
        {"name": "wave 2 (region=west)", "clusters": ["west-1", "west-2"], "budget": 0},
    ]
    assert "canary: lab (may fail: 0)" in printed.err


def test_fleet_up_without_yes_or_with_a_bad_fleet_runs_nothing(
    tmp_path: Path, stack_project: Path, capsys: pytest.CaptureFixture[str]
):
    (tmp_path / "fleet.yaml").write_text(FLEET)
    fleet = ["--fleet", str(tmp_path / "fleet.yaml")]
    assert command.main([*fleet, "up"]) == exits.CONFIG
    assert "then run fleet up --yes" in capsys.readouterr().err
    assert command.main([*fleet, "up", "--yes"]) == exits.CONFIG  # no stack files
    assert "no stack file Pulumi.lab.yaml" in capsys.readouterr().err
    assert not (tmp_path / ".fleet").exists()


# --- fleet diff: clusters grouped by what would change on them ---------------------------------


def _diff_document(*entries: tuple[str, str, str, list[str]]) -> dict[str, Any]:
    """A `kpt-catalog diff --output json` document: (package, action, kind/ns/name, lines)."""
    packages: dict[str, list[dict[str, object]]] = {}
    for package, action, key, lines in entries:
        kind, namespace, name = key.split("/")
        packages.setdefault(package, []).append(
            {
                "action": action,
                "object": {"group": "", "kind": kind, "namespace": namespace, "name": name},
                "reason": "",
                "lines": lines,
                "native": False,
            }
        )
    return {"packages": [{"name": n, "objects": o} for n, o in packages.items()]}


CHANGE = (
    "headscale",
    "change",
    "ConfigMap/headscale/config",
    ["@@ -1,3 +1,3 @@", " data:", "-  a: 1", "+  a: 2"],
)


def test_ten_identical_clusters_are_one_group_and_the_one_that_differs_is_named(capsys):
    diffs = []
    for i in range(10):
        own = ["-  uid: " + "x" * i, "+  resourceVersion: " + str(i)]  # every cluster's own lines
        change = (*CHANGE[:3], [*CHANGE[3], *own])
        diffs.append(fleet_diff.ClusterDiff(f"site-{i}", exits.DIFFERS, _diff_document(change)))
    odd = _diff_document(CHANGE, ("headscale", "prune", "PersistentVolumeClaim/headscale/data", []))
    diffs.append(fleet_diff.ClusterDiff("site-b", exits.DIFFERS, odd))
    diffs.append(
        fleet_diff.ClusterDiff("site-x", exits.UNREACHABLE, {}, "the cluster did not answer")
    )

    groups = fleet_diff.render(diffs, "site-0", print)

    out = capsys.readouterr().out
    assert [g.clusters for g in groups] == [tuple(f"site-{i}" for i in range(10)), ("site-b",)]
    assert "10 cluster(s) (site-0, site-1, site-2" in out and "the canary's 1 change(s)" in out
    differs = (
        "1 cluster(s) (site-b) differ from the canary:\n"
        "  + headscale: prune PersistentVolumeClaim/headscale/data\n"
    )
    assert differs in out
    assert "site-x: could not be diffed (exit 3): the cluster did not answer" in out
    assert "fleet: 0 create(s), 11 change(s), 1 prune(s)" in out
    assert fleet_diff.unapproved(groups, []) == ["site-b"]
    assert fleet_diff.unapproved(groups, ["site-b"]) == []
    assert fleet_diff.exit_code(diffs) == exits.UNREACHABLE


def test_a_change_of_other_values_is_another_change_set():
    other = (*CHANGE[:3], ["-  a: 1", "+  a: 3"])
    assert fleet_diff.change_set(_diff_document(CHANGE)) != fleet_diff.change_set(
        _diff_document(other)
    )
    kept: tuple[str, str, str, list[str]] = ("headscale", "keep", "Service/headscale/old", [])
    assert fleet_diff.change_set(_diff_document(CHANGE, kept)) == fleet_diff.change_set(
        _diff_document(CHANGE)
    )


# --- fleet status: cluster by package -----------------------------------------------------------


def test_fleet_status_is_one_table_cluster_by_package(tmp_path: Path, capsys):
    answers = {
        "lab": (
            (
                0,
                {
                    "packages": [
                        {"name": "cilium", "state": "healthy"},
                        {"name": "headscale", "state": "healthy"},
                    ]
                },
            ),
            (
                1,
                {
                    "packages": [
                        {"name": "cilium", "state": "in-sync", "objects": []},
                        {
                            "name": "headscale",
                            "state": "differs",
                            "objects": _diff_document(CHANGE)["packages"][0]["objects"],
                        },
                    ]
                },
            ),
        ),
        "site-a": (
            (
                1,
                {
                    "packages": [
                        {"name": "cilium", "state": "healthy"},
                        {"name": "headscale", "state": "unhealthy"},
                    ]
                },
            ),
            (0, {"packages": []}),
        ),
        "site-b": ((3, {}), (3, {})),
    }
    asked: list[tuple[str, ...]] = []

    def run(argv, rollout):
        asked.append((*argv, rollout))
        status, drift = answers[argv[2]]
        return status if argv[0] == "status" else drift

    (tmp_path / "work" / "lab").mkdir(parents=True)
    (tmp_path / "work" / "lab" / "catalog.digest").write_text("abc\n")
    statuses = [fleet_status.check_cluster(n, tmp_path / "work" / n, run) for n in answers]
    fleet_status.render(statuses, ["cilium", "headscale"], print)

    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows == [
        ["CLUSTER", "cilium", "headscale"],
        ["lab", "healthy", "drifted", "(1)"],
        ["site-a", "healthy", "UNHEALTHY"],
        ["site-b", "unreachable"],
    ]
    # lab is checked against what the fleet last put there; site-a against its own catalog
    assert ("status", "--stack", "lab", str(tmp_path / "work" / "lab")) in asked
    assert ("status", "--stack", "site-a", "") in asked
    assert fleet_status.exit_code(statuses) == exits.UNREACHABLE
    assert fleet_status.status_json(statuses)["site-a"]["packages"]["headscale"] == "UNHEALTHY"
