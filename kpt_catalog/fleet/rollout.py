"""Rolling one catalog to many clusters: wave by wave, at most `maxConcurrency` clusters at once,
each cluster's `up`, then (after the bake time) its health check.

- A wave's failures are counted against its budget (`maxFailures`). Within it, the rollout goes
  on. Over it, no new cluster of the wave starts, the `up`s already running finish (a cancelled
  `up` strands kpt half-way), and the wave's policy runs: `pause` stops there; `rollbackFailed`
  returns each failed cluster to its last good catalog; `rollbackWave` returns every cluster of
  the wave that ran. No later wave starts.
- A rollback is an `up` from the stored copy of the cluster's last good catalog (kpt applies and
  prunes in the graph's order); a cluster that never had one is rolled back with `destroy`.
- A cluster that does not answer is deferred to the end (or, with `unreachable: fail`, failed).
- Every step is journalled and synced first, so `--resume` goes on after a crash without
  deploying again a cluster that finished.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kpt_catalog.fleet.config import FleetConfig
from kpt_catalog.fleet.journal import Journal
from kpt_catalog.fleet.snapshot import Snapshot
from kpt_catalog.fleet.waves import Wave

__all__ = [
    "ClusterRun",
    "Outcome",
    "Rollout",
    "RolloutResult",
    "Runner",
    "finished_clusters",
    "save_last_good",
]


@dataclass(frozen=True)
class Outcome:
    """What one operation on one cluster came to."""

    ok: bool
    reason: str = ""


class Runner(Protocol):
    """The operations a rollout runs on one cluster; each blocks until it is done."""

    def reachable(self, cluster: str) -> bool:
        """Whether the cluster's API server answers."""

    def up(self, cluster: str, snapshot: Snapshot) -> Outcome:
        """Deploy the stored catalog `snapshot` to the cluster."""

    def health(self, cluster: str, deadline_seconds: int) -> Outcome:
        """Every package healthy, within the deadline."""

    def destroy(self, cluster: str) -> Outcome:
        """Roll the cluster's catalog back entirely."""

    def mark_good(self, cluster: str, digest: str) -> None:
        """Record on the cluster's stack that it now runs the catalog `digest` well."""


@dataclass
class ClusterRun:
    """One cluster in this rollout."""

    name: str
    wave: str
    state: str = "pending"
    """pending, good, failed, deferred, not started, rolled back, rollback failed, done before."""
    reason: str = ""
    seconds: float = 0.0


@dataclass
class RolloutResult:
    """How the rollout ended."""

    verdict: str
    """done, done with failures (within their budgets), paused, rolled back, deferred."""
    clusters: dict[str, ClusterRun] = field(default_factory=dict)


def finished_clusters(events: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """From a journal: each cluster that finished in it and how (good, failed, rolled back,
    rollback failed). A cluster that started and has no result was cut off, and runs again."""
    finished: dict[str, str] = {}
    for event in events:
        name = str(event.get("cluster", ""))
        kind = event.get("event")
        if kind == "result":
            finished[name] = "good" if event.get("ok") else "failed"
        elif kind == "rolled-back":
            finished[name] = "rolled back" if event.get("ok") else "rollback failed"
    return finished


def save_last_good(path: Path, last_good: Mapping[str, str]) -> None:
    """`.fleet/last-good.json`: each cluster's last good catalog digest; replaced whole."""
    temporary = path.with_suffix(f".tmp-{os.getpid()}")
    temporary.write_text(json.dumps(dict(sorted(last_good.items())), indent=2) + "\n")
    with temporary.open("rb+") as handle:
        os.fsync(handle.fileno())
    temporary.replace(path)


class Rollout:
    """One rollout of `snapshot` over `waves`."""

    def __init__(
        self,
        config: FleetConfig,
        waves: Sequence[Wave],
        runner: Runner,
        journal: Journal,
        snapshot: Snapshot,
        *,
        store: Path,
        last_good: Mapping[str, str],
        last_good_file: Path,
        finished: Mapping[str, str] | None = None,
        before: Mapping[str, str] | None = None,
        say: Callable[[str], None] = print,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.waves = waves
        self.runner = runner
        self.journal = journal
        self.snapshot = snapshot
        self.store = store
        self.before = dict(last_good if before is None else before)
        """Each cluster's last good catalog when the rollout began (a resumed one: as its
        journal recorded it, since the killed run updated `last_good`): what a rollback
        returns to."""
        self.last_good = dict(last_good)
        self.last_good_file = last_good_file
        self.finished = dict(finished or {})
        self.say = say
        self.sleep = sleep
        self._lock = threading.Lock()
        self.clusters = {
            c.name: ClusterRun(c.name, wave.name) for wave in waves for c in wave.clusters
        }
        for name, how in self.finished.items():
            if name in self.clusters:
                self.clusters[name].state = how

    def _deploy(self, name: str, stop: threading.Event) -> str:
        """Up, bake, health for one cluster: good, failed, deferred or not started."""
        run = self.clusters[name]
        if stop.is_set():
            run.state = "not started"
            return run.state
        started = time.monotonic()
        if not self.runner.reachable(name):
            if self.config.unreachable == "defer":
                self.journal.write("deferred", cluster=name, wave=run.wave)
                self.say(f"{run.wave}: {name}: did not answer; deferred to the end")
                run.state, run.reason = "deferred", "did not answer"
                return run.state
            outcome = Outcome(False, "the cluster did not answer")
        else:
            self.journal.write("start", cluster=name, wave=run.wave, catalog=self.snapshot.digest)
            self.say(f"{run.wave}: {name}: up started (catalog {self.snapshot.short})")
            outcome = self.runner.up(name, self.snapshot)
            if outcome.ok:
                if self.config.bake_seconds:
                    self.sleep(self.config.bake_seconds)
                health = self.runner.health(name, self.config.health_seconds)
                if not health.ok:
                    outcome = Outcome(False, f"unhealthy after up: {health.reason}")
        run.seconds = time.monotonic() - started
        self.journal.write(
            "result", cluster=name, wave=run.wave, ok=outcome.ok, reason=outcome.reason
        )
        if outcome.ok:
            with self._lock:
                self.last_good[name] = self.snapshot.digest
                save_last_good(self.last_good_file, self.last_good)
            self.runner.mark_good(name, self.snapshot.digest)
            run.state = "good"
            self.say(f"{run.wave}: {name}: good ({run.seconds:.0f}s)")
        else:
            run.state, run.reason = "failed", outcome.reason
            self.say(f"{run.wave}: {name}: FAILED: {outcome.reason}")
        return run.state

    def _wave(self, wave: Wave) -> bool:
        """Run one wave; False when the rollout stops after it."""
        names = [c.name for c in wave.clusters]
        failed = [n for n in names if self.finished.get(n) in ("failed", "rollback failed")]
        todo = [n for n in names if n not in self.finished]
        self.journal.write("wave", wave=wave.name, clusters=names, budget=wave.budget)
        self.say(f"{wave.name}: {', '.join(names)} (may fail: {wave.budget})")
        stop = threading.Event()
        if len(failed) > wave.budget:
            stop.set()

        def task(name: str) -> None:
            if self._deploy(name, stop) == "failed":
                with self._lock:
                    failed.append(name)
                    if len(failed) > wave.budget:
                        stop.set()

        with ThreadPoolExecutor(max_workers=self.config.max_concurrency) as pool:
            for future in [pool.submit(task, name) for name in todo]:
                future.result()
        if len(failed) <= wave.budget:
            return True
        policy = self.config.on_failure
        self.journal.write("over-budget", wave=wave.name, failed=failed, policy=policy)
        self.say(f"{wave.name}: {len(failed)} failed, over its budget of {wave.budget}: {policy}")
        if policy == "rollbackFailed":
            self._roll_back([n for n in failed if self.clusters[n].state == "failed"])
        elif policy == "rollbackWave":
            ran = [n for n in names if self.clusters[n].state in ("good", "failed")]
            self._roll_back(ran)
        return False

    def _roll_back(self, names: Sequence[str]) -> None:
        """Each cluster back to its last good catalog before this rollout (or destroyed)."""

        def back(name: str) -> None:
            run = self.clusters[name]
            prior = self.before.get(name)
            target = self.store / prior if prior else None
            self.journal.write("rollback", cluster=name, to=prior)
            if prior and target is not None and (target / ".complete").exists():
                self.say(f"{run.wave}: {name}: rolling back to catalog {prior[:12]}")
                outcome = self.runner.up(name, Snapshot(prior, target))
            elif prior:
                gone = f"the stored catalog {prior[:12]} is gone from {self.store}"
                outcome = Outcome(False, gone)
            else:
                self.say(f"{run.wave}: {name}: no earlier good catalog: destroy")
                outcome = self.runner.destroy(name)
            self.journal.write("rolled-back", cluster=name, ok=outcome.ok, reason=outcome.reason)
            with self._lock:
                if outcome.ok:
                    if prior:
                        self.last_good[name] = prior
                    else:
                        self.last_good.pop(name, None)
                    save_last_good(self.last_good_file, self.last_good)
            if outcome.ok and prior:
                self.runner.mark_good(name, prior)
            run.state = "rolled back" if outcome.ok else "rollback failed"
            run.reason = outcome.reason or run.reason

        with ThreadPoolExecutor(max_workers=self.config.max_concurrency) as pool:
            for future in [pool.submit(back, name) for name in names]:
                future.result()

    def run(self) -> RolloutResult:
        """Every wave in turn, then the deferred clusters once more."""
        for wave in self.waves:
            if not self._wave(wave):
                self.journal.write("end", verdict="stopped")
                verdict = "paused" if self.config.on_failure == "pause" else "rolled back"
                return RolloutResult(verdict, self.clusters)
        deferred = [n for n, r in self.clusters.items() if r.state == "deferred"]
        if deferred:
            self.say(f"deferred: trying {', '.join(deferred)} once more")
            members = tuple(c for w in self.waves for c in w.clusters if c.name in deferred)
            again = Wave("deferred", members, self.config.budget(len(members)))
            for name in deferred:
                self.clusters[name].wave = "deferred"
            if not self._wave(again):
                self.journal.write("end", verdict="stopped")
                return RolloutResult("rolled back", self.clusters)
        left = [n for n, r in self.clusters.items() if r.state == "deferred"]
        failed = [n for n, r in self.clusters.items() if r.state in ("failed", "rollback failed")]
        # a failure within its wave's budget lets the rollout go on, but is never silent
        verdict = "done, with failures" if failed else "deferred" if left else "done"
        self.journal.write("end", verdict=verdict)
        return RolloutResult(verdict, self.clusters)
