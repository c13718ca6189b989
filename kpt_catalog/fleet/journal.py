"""What a rollout did, kept so that a crash loses nothing: `.fleet/runs/<id>.jsonl`, one JSON
object a line, each line synced to disk before the rollout goes on; and the fleet lock,
`.fleet/lock`, so that two rollouts never run at once (each stack keeps its own Pulumi lock too).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "FleetLockedError",
    "Journal",
    "fleet_lock",
    "latest_run",
    "process_alive",
    "read_journal",
]


class FleetLockedError(RuntimeError):
    """Another rollout holds the fleet lock."""


class Journal:
    """Appends events to one run's journal, each synced before `write` returns."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, event: str, **fields: Any) -> None:  # noqa: ANN401  # JSON values
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        line = json.dumps({"time": stamp, "event": event, **fields}, sort_keys=True) + "\n"
        os.write(self._fd, line.encode())
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The events of a journal; a last line torn by a crash is left out."""
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def latest_run(runs: Path) -> Path | None:
    """The newest journal in `runs` (ids sort by time)."""
    journals = sorted(runs.glob("*.jsonl")) if runs.is_dir() else []
    return journals[-1] if journals else None


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, exited and not reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(0) said it exists


@contextlib.contextmanager
def fleet_lock(path: Path, run_id: str) -> Iterator[Mapping[str, Any]]:
    """Hold the fleet lock for the rollout `run_id`; FleetLockedError naming the holder when
    another live rollout has it. A lock left by a process that is gone (killed) is taken over,
    and what it said is handed back so the caller can say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "run": run_id}
    stale: dict[str, Any] = {}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text())
            except (OSError, ValueError):
                holder = {}
            same_host = holder.get("host") == mine["host"]
            pid = holder.get("pid")
            if same_host and isinstance(pid, int) and not process_alive(pid):
                stale = holder
                path.unlink(missing_ok=True)
                continue
            raise FleetLockedError(
                f"another rollout holds the fleet lock {path}: run {holder.get('run', '?')}, "
                f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}; wait for it, or, "
                "if it is gone, remove the lock"
            ) from None
        with os.fdopen(fd, "w") as handle:
            json.dump(mine, handle)
        break
    else:
        raise FleetLockedError(f"could not take the fleet lock {path}")
    try:
        yield stale
    finally:
        with contextlib.suppress(OSError):
            if json.loads(path.read_text()).get("run") == run_id:
                path.unlink()
