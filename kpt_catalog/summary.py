"""What `kpt-catalog up`, `reapply` and `destroy` print when the engine is done: one line per
package with what happened to it in this run, read from the per-package logs the steps append to
(`components/step/logs.py`): each step run opens its section with `==== kptstep <step> (pid N)
====` and closes it with its result line, `step: kpt-catalog-result: {...} (exit N)`.

A package with no step in this run was unchanged: Pulumi found nothing to do for it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from components.step.contract import ENV_PACKAGE, ENV_STACK, RESULT_PREFIX
from components.step.logs import log_path
from kpt_catalog.output import Printer

__all__ = ["HEADER", "PackageRun", "read_runs", "render_table", "render_timeline"]

HEADER = ("PACKAGE", "RESULT", "TIME", "APPLIED", "PRUNED", "DELETED", "REPORTED")
"""The columns of the table `up` ends with."""
_HEADER = re.compile(r"^(\S+) ==== kptstep (\S+) \(pid \d+\) ====$")
_RESULT = re.compile(r"^(\S+) step: " + re.escape(RESULT_PREFIX) + r"(.*) \(exit (-?\d+)\)$")


@dataclass
class PackageRun:
    """One package's steps in one run."""

    name: str
    log: Path
    steps: list[str] = field(default_factory=list)
    started: datetime | None = None
    finished: datetime | None = None
    applied: int = 0
    pruned: int = 0
    destroyed: int = 0
    reports: dict[str, str] = field(default_factory=dict)
    failure: str = ""
    failed_step: str = ""
    open_step: str = ""
    """A step that started and never wrote its result (killed, or still running)."""
    events: list[tuple[datetime, str]] = field(default_factory=list)
    """When each step started and ended, with what it said: the run's timeline."""

    @property
    def result(self) -> str:
        if self.failure:
            return f"FAILED in {self.failed_step} ({self.failure})"
        if self.open_step:
            return f"STOPPED in {self.open_step} (no result: killed or interrupted)"
        if not self.steps:
            return "unchanged"
        if "destroy" in self.steps:
            return "rolled back"
        if "apply" in self.steps:
            return "applied"
        if "restart" in self.steps:
            return "restarted"
        return "checked"

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return (self.finished - self.started).total_seconds()


def _time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def read_run(name: str, log: Path, since: datetime) -> PackageRun:
    """The package's steps whose sections start at or after `since`."""
    run = PackageRun(name, log)
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return run
    inside = False
    for line in lines:
        header = _HEADER.match(line)
        if header:
            when = _time(header.group(1))
            inside = when is not None and when >= since
            if inside and when is not None:
                run.started = run.started or when
                run.open_step = header.group(2)
                run.events.append((when, f"{run.open_step} started"))
            continue
        result = _RESULT.match(line) if inside else None
        if result is None:
            continue
        run.finished = _time(result.group(1)) or run.finished
        try:
            payload = json.loads(result.group(2))
        except ValueError:
            payload = {}
        payload = payload if isinstance(payload, dict) else {}
        step = str(payload.get("step") or run.open_step)
        run.open_step = ""
        run.steps.append(step)
        ended = run.finished or since
        if not payload.get("ok"):
            failure = str(payload.get("failure") or f"exit {result.group(3)}")
            run.failure = run.failure or failure
            run.failed_step = run.failed_step or step
            run.events.append((ended, f"{step} FAILED ({failure})"))
            continue
        run.events.append((ended, f"{step} done" + _counts(step, payload)))
        objects = payload.get("objects")
        count = objects if isinstance(objects, int) else 0
        if step == "apply":
            run.applied += count
            pruned = payload.get("pruned")
            run.pruned += pruned if isinstance(pruned, int) else 0
        elif step == "destroy":
            run.destroyed += count
        reports = payload.get("reports")
        if isinstance(reports, Mapping):
            run.reports.update({str(k): str(v) for k, v in reports.items() if v})
    return run


def _counts(step: str, payload: Mapping[str, object]) -> str:
    objects, pruned = payload.get("objects"), payload.get("pruned")
    if step == "apply" and isinstance(objects, int):
        return f": {objects} applied, {pruned if isinstance(pruned, int) else 0} pruned"
    if step in ("destroy", "status") and isinstance(objects, int):
        return f": {objects} object(s)"
    return ""


def render_timeline(runs: Sequence[PackageRun], out: Printer) -> None:
    """Every step of the run in the order it happened, one line each: what the engine's display
    showed only while it ran."""
    events = sorted((when, run.name, text) for run in runs for when, text in run.events)
    for when, name, text in events:
        out.line(f"{when.astimezone().strftime('%H:%M:%S')}  {name:<16} {text}")


def read_runs(
    stack: str, names: Sequence[str], since: datetime, env: Mapping[str, str]
) -> list[PackageRun]:
    """Each package's run since `since`, in the order of `names`, from the logs of `stack`."""
    return [
        read_run(name, log_path({**env, ENV_STACK: stack, ENV_PACKAGE: name}), since)
        for name in names
    ]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def render_table(runs: Sequence[PackageRun], out: Printer) -> None:
    """The table, then for each failed package its reason and its log."""
    header = HEADER
    rows = [
        (
            run.name,
            run.result,
            _duration(run.seconds),
            str(run.applied) if "apply" in run.steps else "-",
            str(run.pruned) if "apply" in run.steps else "-",
            str(run.destroyed) if "destroy" in run.steps else "-",
            ", ".join(f"{k}={v}" for k, v in sorted(run.reports.items())) or "-",
        )
        for run in runs
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]

    def line(row: Sequence[str], colour: str = "") -> str:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        if colour:
            cells[1] = cells[1].replace(row[1], out.paint(row[1], colour))
        return "  ".join([*cells, row[-1]]).rstrip()

    out.line("")
    out.line(out.paint(line(header), "bold"))
    for run, row in zip(runs, rows, strict=True):
        colour = "red" if run.failure or run.open_step else "" if not run.steps else "green"
        out.line(line(row, colour))
    for run in runs:
        if run.failure or run.open_step:
            out.line(f"{run.name}: {run.result}; its log: {run.log}")
