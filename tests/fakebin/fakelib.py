"""What the stand-in `kpt` and `kubectl` share: recording calls and hanging like a stuck tool.

Not a command: the fakes import it from their own directory (a script's directory is first on
`sys.path`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["fail", "hang", "record"]


def fail(message: str, code: int = 1) -> None:
    """Print ``message`` to stderr and exit with ``code``, as the real tools do on an error."""
    print(message, file=sys.stderr)
    sys.exit(code)


def record(
    tool: str, argv: list[str], directory: str | None = None, stdin: str | None = None
) -> None:
    """Append this call to $FAKE_RECORD: argv, cwd, the files of ``directory`` and, when given,
    what the tool read on stdin."""
    target = os.environ.get("FAKE_RECORD")
    if not target:
        return
    files: dict[str, str] = {}
    root = Path(directory) if directory else None
    if root is not None and root.is_dir():
        files = {
            p.relative_to(root).as_posix(): p.read_text(errors="replace")
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }
    entry: dict[str, object] = {
        "tool": tool,
        "argv": argv,
        "cwd": str(Path.cwd()),
        "dir_files": files,
        "time": time.time(),
    }
    if stdin is not None:
        entry["stdin"] = stdin
    with Path(target).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")


def hang() -> None:
    """Sleep forever, with a child that ignores SIGTERM and keeps stdout open; both pids go to
    $FAKE_PIDS once the child ignores SIGTERM, so a test can check that nothing survived."""
    pids = Path(os.environ.get("FAKE_PIDS", os.devnull))
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import os, signal, time\n"
                "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                f"open({str(pids)!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
                "while True: time.sleep(1)\n"
            ),
        ]
    )
    with pids.open("a", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()}\n")
    ready = time.monotonic() + 5
    while (
        str(pids) != os.devnull
        and time.monotonic() < ready
        and str(child.pid) not in pids.read_text().split()
    ):
        time.sleep(0.02)
    while True:
        time.sleep(1)
