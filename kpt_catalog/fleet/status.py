"""`kpt-catalog fleet status`: one table, cluster by package: healthy, drifted (objects that
differ from the catalog the cluster last got), unhealthy, or the cluster unreachable.

Each cluster is checked against what the fleet last deployed there (`.fleet/work/<cluster>/`),
or, for a cluster no rollout reached yet, against its stack's own catalog: `kpt-catalog status`
and `kpt-catalog diff`, `maxConcurrency` clusters at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kpt_catalog import exits
from kpt_catalog.fleet.diff import run_json

__all__ = [
    "ClusterStatus",
    "check_all",
    "check_cluster",
    "exit_code",
    "render",
    "status_json",
]


@dataclass(frozen=True)
class ClusterStatus:
    """One cluster's row."""

    name: str
    cells: Mapping[str, str] = field(default_factory=dict)
    """Package to healthy, drifted (N), UNHEALTHY, NOT CHECKED or ERROR."""
    unreachable: bool = False
    error: str = ""

    @property
    def code(self) -> int:
        if self.unreachable:
            return exits.UNREACHABLE
        if self.error or any(c.startswith(("ERROR", "NOT CHECKED")) for c in self.cells.values()):
            return exits.FAILED
        if any(cell != "healthy" for cell in self.cells.values()):
            return exits.DIFFERS
        return exits.OK


def _cells(health: Mapping[str, Any], drift: Mapping[str, Any]) -> dict[str, str]:
    cells: dict[str, str] = {}
    for package in health.get("packages") or []:
        state = package.get("state")
        cells[str(package.get("name"))] = {
            "healthy": "healthy",
            "unhealthy": "UNHEALTHY",
        }.get(str(state), "NOT CHECKED")
    for package in drift.get("packages") or []:
        name = str(package.get("name"))
        if cells.get(name) != "healthy":
            continue
        if package.get("state") == "differs":
            changes = [
                o for o in package.get("objects") or [] if o.get("action") not in ("keep", "forget")
            ]
            cells[name] = f"drifted ({len(changes)})"
        elif package.get("state") in ("error", "not-checked"):
            cells[name] = "ERROR"
    return cells


def check_cluster(
    name: str,
    work: Path,
    run: Callable[[Sequence[str], str], tuple[int, dict[str, Any]]] = run_json,
) -> ClusterStatus:
    """Status, then diff, of one cluster, against the catalog the fleet last put there."""
    rollout = str(work) if (work / "catalog.digest").exists() else ""
    code, health = run(["status", "--stack", name], rollout)
    if code == exits.UNREACHABLE:
        return ClusterStatus(name, unreachable=True)
    if code == exits.CONFIG:
        return ClusterStatus(name, error="; ".join(health.get("problems") or ["exit 2"]))
    _, drift = run(["diff", "--stack", name], rollout)
    return ClusterStatus(name, _cells(health, drift))


def render(
    statuses: Sequence[ClusterStatus], packages: Sequence[str], say: Callable[[str], None]
) -> None:
    """The table: a row per cluster, a column per package."""
    width = max([len("CLUSTER"), *(len(s.name) for s in statuses)])
    columns = [max(len(p), 13) for p in packages]
    say(
        "  ".join(
            ["CLUSTER".ljust(width), *(p.ljust(w) for p, w in zip(packages, columns, strict=True))]
        ).rstrip()
    )
    for status in statuses:
        if status.unreachable or status.error:
            say(
                f"{status.name.ljust(width)}  "
                + ("unreachable" if status.unreachable else f"ERROR: {status.error}")
            )
            continue
        cells = [status.cells.get(p, "-").ljust(w) for p, w in zip(packages, columns, strict=True)]
        say("  ".join([status.name.ljust(width), *cells]).rstrip())


def status_json(statuses: Sequence[ClusterStatus]) -> dict[str, Any]:
    return {
        s.name: {"unreachable": s.unreachable, "error": s.error, "packages": dict(s.cells)}
        for s in statuses
    }


def exit_code(statuses: Sequence[ClusterStatus]) -> int:
    codes = {s.code for s in statuses}
    for code in (exits.FAILED, exits.UNREACHABLE, exits.DIFFERS):
        if code in codes:
            return code
    return exits.OK


def check_all(names: Sequence[str], fleet_dir: Path, concurrency: int) -> list[ClusterStatus]:
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(pool.map(lambda n: check_cluster(n, fleet_dir / "work" / n), names))
