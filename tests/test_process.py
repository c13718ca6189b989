"""The step's process runner hands over every line a process wrote before it returns."""

from __future__ import annotations

import sys
import time

from components.step.process import run_process


def test_every_line_is_read_before_the_runner_returns() -> None:
    """A process that writes a burst into its pipe and exits at once, read by a slow consumer:
    the pipe still holds most of it when the process is reaped, and a runner that returned then
    would lose the end (kpt's final summary)."""
    lines = 2_000
    script = f"import sys\nfor i in range({lines}): sys.stdout.write('line %d\\n' % i)"
    seen: list[str] = []

    def slowly(line: str) -> None:
        time.sleep(0.0005)
        seen.append(line)

    completed = run_process(
        [sys.executable, "-c", script], label="burst", deadline_seconds=60, on_stdout=slowly
    )

    assert completed.returncode == 0
    assert len(seen) == lines
    assert seen[-1] == f"line {lines - 1}"


def test_stderr_is_whole_too() -> None:
    script = "import sys; [print(f'err {i}', file=sys.stderr) for i in range(300)]"

    completed = run_process([sys.executable, "-c", script], label="err", deadline_seconds=60)

    assert completed.stderr[-1] == "err 299"
