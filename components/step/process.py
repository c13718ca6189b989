"""Running kpt and kubectl: found first, read to the end, bounded by one deadline, and never
outliving the step.

How nothing outlives the step. The engine ends a Command (Ctrl-C, `pulumi cancel`, a custom
timeout) only ever with SIGKILL to its direct child, `/bin/sh -c "python3 ..."`: the command
provider runs it with Go's `exec.CommandContext` (pulumi/pulumi-command,
provider/pkg/provider/local/command.go), whose cancellation kills that one process. So:
- the step asks the kernel to SIGKILL it when its parent dies (``die_with_parent``, Linux);
- every tool runs in a process group led by a watcher: a tiny Python process that ignores the
  polite signals and blocks reading a pipe whose only writer is the step. When the step ends,
  however it ends, the pipe closes and the watcher SIGKILLs its whole group: the tool and
  everything the tool started (PR_SET_PDEATHSIG in the tool itself would cover only the direct
  child, and only while the forking thread lives). The step closes the pipe itself when the tool
  exits, so nothing a tool leaves behind survives it either.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from components.step import logs
from components.step.errors import (
    DeadlineExceededError,
    StepInterruptedError,
    ToolMissingError,
    ToolUnusableError,
)

__all__ = [
    "KILL_GRACE_SECONDS",
    "STDERR_KEPT_LINES",
    "Completed",
    "die_with_parent",
    "find_tool",
    "run_process",
]

KILL_GRACE_SECONDS = 3.0  # between the first signal and SIGKILL to a process group
STDERR_KEPT_LINES = 400  # for the failure summary; the log keeps every line
STDOUT_KEPT_LINES = 10_000  # of a tool whose lines nobody handles as they come (kubectl)
READ_CHUNK = 1 << 20  # a line longer than this reaches the handlers in pieces
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_WATCHER = (
    "import os, signal\n"
    "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):\n"
    "    signal.signal(s, signal.SIG_IGN)\n"
    "while os.read(0, 512):\n"
    "    pass\n"
    "os.killpg(0, signal.SIGKILL)\n"
)


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when its parent (the engine's shell) dies; if the
    parent is already gone (it died before the request took effect), exit now."""
    if not sys.platform.startswith("linux"):
        return  # elsewhere the engine's SIGKILL reaches the step only if the shell exec'd it
    import ctypes  # only where prctl exists

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        return  # not fatal: the watcher still ends every tool when the step ends
    if os.getppid() != parent:
        os._exit(1)


@dataclass(frozen=True)
class Completed:
    """A kpt or kubectl process that ran to its end within its deadline."""

    returncode: int
    stdout: tuple[str, ...]  # empty when an on_stdout handler took the lines
    stderr: tuple[str, ...]  # the last STDERR_KEPT_LINES lines


def find_tool(name: str, needed_for: str) -> str:
    """The path of ``name`` on PATH, checked before anything starts: missing and not executable
    are told apart, each in one line."""
    not_executable = ""
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = Path(directory or ".", name)
        if candidate.is_file():
            if os.access(candidate, os.X_OK):
                return str(candidate)
            not_executable = not_executable or str(candidate)
    if not_executable:
        raise ToolUnusableError(
            f"{not_executable} is not executable (needed for {needed_for}); "
            f"make it executable or put a working {name} first on PATH"
        )
    raise ToolMissingError(f"{name} is not on PATH (needed for {needed_for})")


def _read(stream: IO[bytes], handle: Callable[[str], None], errors: list[BaseException]) -> None:
    """Hand every line of ``stream`` to ``handle`` until EOF; a failing handler is remembered
    and reading goes on, so the tool never blocks on a full pipe."""
    try:
        while chunk := stream.readline(READ_CHUNK):
            line = chunk.decode("utf-8", errors="replace").rstrip("\r\n")
            try:
                handle(line)
            except Exception as exc:  # re-raised by run_process
                if not errors:
                    errors.append(exc)
    except (OSError, ValueError):
        pass  # the pipe was closed under us: the group is being killed


class _Group:
    """A tool in a process group led by the watcher (see the module's docstring)."""

    def __init__(self, argv: Sequence[str], label: str) -> None:
        read_end, self._release = os.pipe()  # both ends close-on-exec: no tool inherits them
        try:
            self.watcher = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _WATCHER],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                process_group=0,
            )
        finally:
            os.close(read_end)
        self.pgid = self.watcher.pid
        try:
            self.tool = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                process_group=self.pgid,
            )
        except OSError as exc:
            self.release()
            self.watcher.wait()
            if exc.errno == errno.ENOEXEC:
                raise ToolUnusableError(
                    f"{argv[0]} cannot run on this machine (needed for {label}): "
                    "not a program for this system or architecture"
                ) from None
            if isinstance(exc, FileNotFoundError):
                raise ToolMissingError(f"{argv[0]} is not on PATH (needed for {label})") from None
            raise ToolUnusableError(
                f"{argv[0]} could not start (needed for {label}): {exc}"
            ) from None

    def release(self) -> None:
        """Close the pipe: the watcher kills whatever is left of the group, then itself."""
        if self._release >= 0:
            os.close(self._release)
            self._release = -1

    def stop(self, first_signal: int) -> None:
        """``first_signal`` to the group, a grace period for the tool, then SIGKILL to all."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, first_signal)  # the watcher ignores it
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.tool.wait(timeout=KILL_GRACE_SECONDS)
        # The watcher is unreaped until below, so the group id cannot have been reused.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGKILL)
        self.release()
        self.reap()
        # SIGKILL is delivered asynchronously: give the group a moment to be gone. (Where PID 1
        # does not reap orphans, their zombies keep the group listed; they are dead.)
        settle = time.monotonic() + 1.0
        while time.monotonic() < settle:
            try:
                os.killpg(self.pgid, 0)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(0.05)

    def reap(self) -> None:
        for proc in (self.tool, self.watcher):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=KILL_GRACE_SECONDS)


def run_process(
    argv: Sequence[str],
    *,
    label: str,
    deadline_seconds: int,
    on_stdout: Callable[[str], None] | None = None,
) -> Completed:
    """Run ``argv`` (its tool already found with ``find_tool``) and read both pipes to EOF,
    passing each stdout line to ``on_stdout`` as it arrives. One deadline covers the process and
    its pipes: past it the whole group is killed and DeadlineExceededError raised. Nothing the
    process started outlives this call."""
    logs.command(argv)
    end = time.monotonic() + deadline_seconds
    stdout: deque[str] = deque(maxlen=STDOUT_KEPT_LINES)
    stderr: deque[str] = deque(maxlen=STDERR_KEPT_LINES)
    failures: list[BaseException] = []

    def out(line: str) -> None:
        logs.output(label, "stdout", line)
        if on_stdout is None:
            stdout.append(line)
        else:
            on_stdout(line)

    def err(line: str) -> None:
        logs.output(label, "stderr", line)
        stderr.append(line)

    group = _Group(argv, label)
    try:
        assert group.tool.stdout is not None and group.tool.stderr is not None  # noqa: S101
        readers = [
            threading.Thread(target=_read, args=(group.tool.stdout, out, failures), daemon=True),
            threading.Thread(target=_read, args=(group.tool.stderr, err, failures), daemon=True),
        ]
        for reader in readers:
            reader.start()
        while True:
            if time.monotonic() >= end:
                raise DeadlineExceededError(
                    f"{label} exceeded its hard deadline of {deadline_seconds}s and was killed",
                    [f"stderr: {line}" for line in list(stderr)[-8:]],
                )
            if group.tool.poll() is not None:
                group.release()  # nothing it started may outlive it
                if not any(r.is_alive() for r in readers):
                    break
            time.sleep(0.05)
        group.reap()
        if failures:
            raise failures[0]
        returncode = group.tool.returncode
        logs.note(f"{label} exited {returncode}")
        return Completed(returncode, tuple(stdout), tuple(stderr))
    except StepInterruptedError as exc:  # forward the signal the step received to the group
        group.stop(exc.signum)
        raise StepInterruptedError(exc.signum, f"{label} and its process group") from None
    except BaseException:
        group.stop(signal.SIGTERM)
        raise
