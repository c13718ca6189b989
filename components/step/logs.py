"""What the user sees, and what stays afterwards.

The engine shows a Command's output only while it runs (transient lines) and once more, whole, when
it fails; its reader stops at a line over 64 KiB (pulumi/pulumi-command#201). So every line the
step prints is cut to MAX_LINE_BYTES, saying so, and everything (each argument list run, every
line kpt and kubectl print, whole, with timestamps) is appended to a per-stack, per-package log:
``${XDG_STATE_HOME:-~/.local/state}/kpt-catalog/<stack>/<package>.log``, directories 0700, file
0600, rotated at ROTATE_BYTES (one older file kept as ``.log.1``). The log never holds the
environment: only argument lists (paths, context names) and the tools' own output.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from components.step.contract import DEFAULT_STACK, ENV_PACKAGE, ENV_STACK

__all__ = [
    "MAX_LINE_BYTES",
    "ROTATE_BYTES",
    "bounded",
    "close",
    "command",
    "log_path",
    "note",
    "open_log",
    "output",
    "say",
]

MAX_LINE_BYTES = 4096
ROTATE_BYTES = 16 << 20
_lock = threading.Lock()


class _Log:
    """The open log of this step run (none until open_log succeeds)."""

    file: BinaryIO | None = None
    path: Path | None = None


_log = _Log()


def _safe(name: str) -> str:
    """A file name from a stack or package name: no separators, no leading dot."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name.strip())[:100] or "_"
    return "_" + cleaned[1:] if cleaned.startswith(".") else cleaned


def log_path(env: Mapping[str, str]) -> Path:
    """Where the step appends its log for this stack and package."""
    state = env.get("XDG_STATE_HOME", "")
    base = Path(state) if state and Path(state).is_absolute() else Path.home() / ".local" / "state"
    stack = env.get(ENV_STACK, "").strip() or DEFAULT_STACK
    package = env.get(ENV_PACKAGE, "").strip() or "unknown-package"
    return base / "kpt-catalog" / _safe(stack) / f"{_safe(package)}.log"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _write(text: str) -> None:
    with _lock:
        if _log.file is None:
            return
        try:
            _log.file.write(f"{_now()} {text}\n".encode("utf-8", errors="replace"))
            _log.file.flush()
        except OSError:
            _log.file = None  # a full disk must not fail the step


def open_log(env: Mapping[str, str], what: str) -> str:
    """Open (create, rotate) the log and write a header; a one-line reason when it cannot be
    opened (the step then runs without it), else ""."""
    path = log_path(env)
    try:
        for directory in (path.parent.parent, path.parent):
            if not directory.is_dir():
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                directory.chmod(0o700)
        if path.is_file() and path.stat().st_size > ROTATE_BYTES:
            path.replace(path.with_name(path.name + ".1"))
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        handle = os.fdopen(descriptor, "ab")
    except OSError as exc:
        return f"no log: cannot write {path} ({exc.strerror or exc})"
    _log.file, _log.path = handle, path
    _write(f"==== {what} (pid {os.getpid()}) ====")
    return ""


def close(last: str) -> None:
    """Write the step's last line (its result line) and close the log."""
    _write(f"step: {last}")
    with _lock:
        handle, _log.file = _log.file, None
    if handle is not None:
        handle.close()


def command(argv: Sequence[str]) -> None:
    """Record an argument list about to run."""
    _write("run: " + " ".join(repr(a) if not a or re.search(r"\s|['\"]", a) else a for a in argv))


def output(label: str, stream: str, line: str) -> None:
    """Record one line a tool printed, whole."""
    _write(f"{label} {stream}: {line}")


def note(text: str) -> None:
    """Record what the step concluded."""
    _write(f"step: {text}")


def bounded(text: str, limit: int = MAX_LINE_BYTES) -> str:
    """``text`` cut to ``limit`` bytes of UTF-8, saying how long it was and where it is whole."""
    encoded = text.encode("utf-8", errors="replace")
    if len(encoded) <= limit:
        return text
    where = _log.path
    tail = f" ... [cut: the line is {len(encoded)} bytes; the whole line is in " + (
        f"{where}]" if where is not None else "no log, which could not be written]"
    )
    keep = max(limit - len(tail.encode("utf-8", errors="replace")), 64)
    return encoded[:keep].decode("utf-8", errors="ignore") + tail


def say(package: str, text: str) -> None:
    """One line to stderr, prefixed with the package and cut to MAX_LINE_BYTES; whole in the log."""
    _write(f"step: {text}")
    with _lock:
        print(bounded(f"[{package}] {text}"), file=sys.stderr, flush=True)
