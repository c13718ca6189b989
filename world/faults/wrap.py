"""A thin wrapper around the real `kpt` or `kubectl` that logs each call and can inject a fault.

    world/faults/kpt ...   world/faults/kubectl ...   (put world/faults first on PATH)

Every call is appended to `$KPT_CATALOG_FAULTS/calls.log` (one JSON list per line). Faults are
read from `$KPT_CATALOG_FAULTS/<tool>.json`, a list of rules tried in order:

    {"match": ["live", "apply"], "action": "kill", "after_lines": 3, "signal": "KILL", "times": 1}

`match` is a list of words that must all be among the arguments, `unless` words that must not
be (`["--dry-run"]`); `times` (default: every call)
how often the rule fires. Actions:
- `kill`: run the real tool, and after `after_lines` lines of its stdout kill it with `signal`;
  this process then dies of the same signal (the OOM killer, a segfault);
- `cut`: pass `after_lines` lines of stdout through, then stop the tool and exit 0 (a tool that
  lies about its success with its output cut short);
- `hang`: run nothing and sleep until killed;
- `long_line`: print one stdout line of `bytes` bytes (default 70,000), then run the real tool;
- `flood`: print `events` (default 100,000) well-formed kpt status events, then run the tool;
- `refuse`: print what kubectl prints for a refused connection and exit 1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _real(tool: str) -> str:
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory) / tool
        if (
            Path(directory).resolve() != HERE
            and candidate.is_file()
            and os.access(candidate, os.X_OK)
        ):
            return str(candidate)
    sys.stderr.write(f"{tool}: not found on PATH (besides the fault wrapper)\n")
    sys.exit(127)


def _rule(faults: Path, tool: str, args: list[str]) -> dict[str, Any] | None:
    rules_file = faults / f"{tool}.json"
    if not rules_file.exists():
        return None
    rules = json.loads(rules_file.read_text())
    for index, rule in enumerate(rules):
        if not all(word in args for word in rule.get("match", [])):
            continue
        if any(word in args for word in rule.get("unless", [])):
            continue
        times = rule.get("times")
        if times is not None:
            if times <= 0:
                continue
            rules[index]["times"] = times - 1
            rules_file.write_text(json.dumps(rules))
        return dict(rule)
    return None


def _pass_lines(process: subprocess.Popen[bytes], count: int) -> None:
    if process.stdout is None:
        return
    for _ in range(count):
        line = process.stdout.readline()
        if not line:
            return
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()


def main(tool: str, args: list[str]) -> int:
    faults = Path(os.environ.get("KPT_CATALOG_FAULTS", "/nonexistent"))
    real = _real(tool)
    if faults.is_dir():
        with (faults / "calls.log").open("a") as log:
            log.write(json.dumps([tool, *args]) + "\n")
        rule = _rule(faults, tool, args)
    else:
        rule = None
    action = rule["action"] if rule else ""
    if action == "hang":
        while True:
            time.sleep(3600)
    if action == "refuse":
        sys.stderr.write(
            "The connection to the server 127.0.0.1:6443 was refused - did you specify the "
            "right host or port?\n"
        )
        return 1
    if action == "long_line":
        sys.stdout.write("x" * int(rule.get("bytes", 70_000)) + "\n")  # type: ignore[union-attr]
        sys.stdout.flush()
    if action == "flood":
        event = {
            "type": "status",
            "kind": "ConfigMap",
            "group": "",
            "namespace": "flood",
            "status": "InProgress",
            "message": "flooding",
            "timestamp": "2026-12-03T00:00:00Z",
        }
        for number in range(int(rule.get("events", 100_000))):  # type: ignore[union-attr]
            event["name"] = f"flood-{number}"
            sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()
    if action not in ("kill", "cut"):
        os.execv(real, [real, *args])  # noqa: S606 - the real tool, in this process's place
    if rule is None:
        return 2
    process = subprocess.Popen([real, *args], stdout=subprocess.PIPE)
    _pass_lines(process, int(rule.get("after_lines", 0)))
    if action == "cut":
        process.kill()
        process.wait()
        return 0
    number = getattr(signal, "SIG" + str(rule.get("signal", "KILL")))
    process.send_signal(number)
    process.wait()
    if number not in (signal.SIGKILL, signal.SIGSTOP):  # those two cannot be caught anyway
        signal.signal(number, signal.SIG_DFL)
    os.kill(os.getpid(), number)
    return 128 + int(number)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
