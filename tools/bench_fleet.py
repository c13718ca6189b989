"""`make bench` (second table): what the fleet rollout engine costs above the clusters' own time.

The catalog is rolled to 50 and 200 stand-in clusters whose `up` and health check each take a
fixed time (the engine, its journal synced at every step and its thread pool are what is
measured, not a cluster). The floor is what no engine can beat: for each wave, its clusters in
batches of maxConcurrency, each batch as long as one cluster's up and health check. Goal: within
1.2x of it. Memory is the engine's own (tracemalloc's peak) divided by the clusters in flight.

Runs alternate between the fleet sizes, and each figure is a median.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

from components.config import load_with_lines
from kpt_catalog.fleet.config import FleetConfig, parse_fleet
from kpt_catalog.fleet.journal import Journal
from kpt_catalog.fleet.rollout import Outcome, Rollout
from kpt_catalog.fleet.snapshot import Snapshot
from kpt_catalog.fleet.waves import plan_waves

__all__ = ["main"]

UP_SECONDS = 0.20
HEALTH_SECONDS = 0.05
CONCURRENCY = 25


class _StandIn:
    """Clusters that answer at once and take a fixed time to deploy and to check."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most = 0

    def reachable(self, cluster: str) -> bool:
        return True

    def up(self, cluster: str, snapshot: Snapshot) -> Outcome:
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        time.sleep(UP_SECONDS)
        with self.lock:
            self.in_flight -= 1
        return Outcome(True)

    def health(self, cluster: str, deadline_seconds: int) -> Outcome:
        time.sleep(HEALTH_SECONDS)
        return Outcome(True)

    def mark_good(self, cluster: str, digest: str) -> None:
        """Nothing to record on a stand-in."""

    def destroy(self, cluster: str) -> Outcome:
        return Outcome(True)


def _fleet(count: int) -> FleetConfig:
    text = "clusters:\n" + "".join(f"  - name: c{i:03d}\n" for i in range(count))
    text += (
        f"canary: {{count: 1}}\nwaves: {{by: doubling, start: 4}}\nmaxConcurrency: {CONCURRENCY}\n"
    )
    return parse_fleet(load_with_lines(text, "fleet.yaml"))


def _floor(config: FleetConfig) -> float:
    return sum(
        math.ceil(len(wave.clusters) / config.max_concurrency) * (UP_SECONDS + HEALTH_SECONDS)
        for wave in plan_waves(config)
    )


def _roll(config: FleetConfig, work: Path) -> tuple[float, int, int]:
    """Wall seconds, peak bytes the engine allocated, most clusters in flight."""
    snapshot = Snapshot("bench" + "0" * 59, work / "catalogs" / "bench")
    stand_in = _StandIn()
    journal = Journal(work / "runs" / f"{time.monotonic_ns()}.jsonl")
    tracemalloc.start()
    started = time.perf_counter()
    Rollout(
        config,
        plan_waves(config),
        stand_in,
        journal,
        snapshot,
        store=work / "catalogs",
        last_good={},
        last_good_file=work / "last-good.json",
        say=lambda line: None,
    ).run()
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    journal.close()
    return seconds, peak, stand_in.most


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench (fleet)", description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="rounds per size (median)")
    args = parser.parse_args(argv)
    sizes = (50, 200)
    results: dict[int, list[tuple[float, int, int]]] = {size: [] for size in sizes}
    with tempfile.TemporaryDirectory(prefix="kpt-catalog-bench-fleet-") as scratch:
        for _ in range(args.runs):
            for size in sizes:
                results[size].append(_roll(_fleet(size), Path(scratch) / str(size)))
    print(
        f"fleet rollout, stand-in clusters: up {UP_SECONDS}s + health {HEALTH_SECONDS}s, "
        f"maxConcurrency {CONCURRENCY}, waves: canary then doubling from 4; {args.runs} rounds, "
        "medians"
    )
    print(
        f"{'clusters':<9} {'waves':<6} {'wall':<9} {'floor':<9} {'ratio':<24} "
        "memory per cluster in flight"
    )
    for size in sizes:
        config = _fleet(size)
        wall = statistics.median(r[0] for r in results[size])
        peak = statistics.median(r[1] for r in results[size])
        flight = max(r[2] for r in results[size])
        floor = _floor(config)
        print(
            f"{size:<9} {len(plan_waves(config)):<6} {wall:<9.3f} {floor:<9.3f} "
            f"{wall / floor:.3f}x (goal <= 1.2x)     {peak / flight / 1024:.1f} KiB "
            f"({flight} in flight)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
