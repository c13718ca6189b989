# ruff: noqa: F811 -- pytest fixtures imported from test_kptstep are parameters by name here
"""The step against hostile tools and a hostile engine: output it must read to the end, counts
only kpt's summary carries, lines too long for the engine, and the engine's SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.test_kptstep import (  # noqa: F401 -- fixtures are found by name
    ROOT,
    alive,
    apply_env,
    calls,
    package,
    pids,
    record,
    run,
    state_home,
)


@pytest.mark.parametrize(
    ("scenario", "kind", "said"),
    [
        ("summary-failed", "apply or reconcile failure", "kpt's summary counted 1 failed object"),
        ("exit-2-clean", "step failed", "kpt live apply exited 2"),
        ("no-events", "output incomplete", 'stderr: error: no matches for kind "Widget"'),
        ("no-summary", "output incomplete", "ended before kpt's final summary"),
    ],
)
def test_apply_never_claims_what_kpt_did_not_say(record, pids, package, scenario, kind, said):
    step = run("apply", apply_env(record, pids, package, FAKE_KPT_SCENARIO=scenario))

    assert step.code == 1, step.stderr
    assert f"[headscale] apply failed ({kind})" in step.stderr
    assert said in step.stderr
    assert step.result["ok"] is False and step.result["failure"] == kind


def test_hundreds_of_thousands_of_events_are_read_to_the_end(record, pids, package):
    started = time.monotonic()
    step = run("apply", apply_env(record, pids, package, FAKE_KPT_SCENARIO="many-events"), 60)

    assert step.code == 0, step.stderr[-2000:]
    assert step.stderr.count("apply Successful  ConfigMap x/y") == 200_000
    assert "apply result: 3/3 successful" in step.stderr  # the final summary, after them all
    assert time.monotonic() - started < 30


def test_a_long_line_is_cut_and_kept_whole_in_the_log(record, pids, package, state_home):
    step = run("apply", apply_env(record, pids, package, FAKE_KPT_SCENARIO="long-line"))

    assert step.code == 0, step.stderr[-2000:]
    assert max(len(line.encode()) for line in step.stderr.splitlines()) <= 4096
    log = state_home / "kpt-catalog" / "default" / "headscale.log"
    assert f"the line is {(1 << 20) + len('[headscale] kpt: ')} bytes" in step.stderr
    assert str(log) in step.stderr
    assert "x" * (1 << 20) in log.read_text()
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    assert oct(log.parent.stat().st_mode & 0o777) == "0o700"
    assert "run: " in log.read_text() and "live apply" in log.read_text()


def test_a_tool_that_closes_its_pipes_and_hangs_is_killed_at_the_deadline(record, pids, package):
    env = apply_env(
        record, pids, package, FAKE_KPT_SCENARIO="close-and-hang", KPT_CATALOG_APPLY_TIMEOUT="2"
    )
    started = time.monotonic()
    step = run("apply", env)

    assert step.code == 1
    assert "kpt live apply exceeded its hard deadline of 2s and was killed" in step.stderr
    assert time.monotonic() - started < 10


def test_a_huge_timeout_is_a_one_line_answer(record, pids, package):
    step = run("apply", apply_env(record, pids, package, KPT_CATALOG_APPLY_TIMEOUT="9" * 400))

    assert step.code == 2
    assert "Traceback" not in step.stderr
    assert "KPT_CATALOG_APPLY_TIMEOUT must be a whole number of seconds from 1" in step.stderr
    assert calls(record) == []


def test_a_kpt_that_cannot_run_is_named_before_anything_starts(record, pids, package, tmp_path):
    fakes = tmp_path / "bin"
    fakes.mkdir()
    (fakes / "kpt").write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 64)  # not for this machine
    (fakes / "kpt").chmod(0o755)
    env = apply_env(record, pids, package)
    env["PATH"] = f"{fakes}{os.pathsep}{env['PATH']}"
    step = run("apply", env)
    assert step.code == 1
    assert "tool cannot run" in step.stderr and "Traceback" not in step.stderr

    (fakes / "kpt").chmod(0o644)
    env["PATH"] = str(fakes)  # the only kpt there is
    step = run("apply", env)
    assert step.code == 1
    assert f"{fakes / 'kpt'} is not executable" in step.stderr


def _group_members(pgids: set[int]) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[2]) in pgids:
                found.append(int(entry.name))
    return found


def test_sigkill_of_the_engines_shell_leaves_no_process(record, pids, package, tmp_path):
    """What Ctrl-C, `pulumi cancel` and a custom timeout do: SIGKILL to `/bin/sh -c ...` only."""
    env = apply_env(record, pids, package, FAKE_KPT_SCENARIO="hang")
    project = tmp_path / "project"
    project.mkdir()
    (project / "components").symlink_to(ROOT / "components")
    shell = subprocess.Popen(
        ["/bin/sh", "-c", "python3 components/kptstep.py apply; echo done"],
        env=env,
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while len(pids.read_text().split() if pids.exists() else []) < 2:
        assert time.monotonic() < deadline, "the stand-in kpt never started"
        time.sleep(0.05)
    tool_pgid = os.getpgid(int(pids.read_text().split()[0]))
    members = _group_members({shell.pid, tool_pgid})
    assert len(members) >= 5  # shell, step, watcher, kpt, kpt's child

    os.kill(shell.pid, signal.SIGKILL)
    shell.wait()
    gone_by = time.monotonic() + 5
    while [p for p in members if alive(p)] and time.monotonic() < gone_by:
        time.sleep(0.05)
    assert [p for p in members if alive(p)] == []


def test_a_killed_destroy_leaves_no_workspace_behind(record, pids, tmp_path):
    from tests.test_kptstep import destroy_env

    workspaces = tmp_path / "tmp"
    workspaces.mkdir()
    env = destroy_env(record, pids, FAKE_KPT_SCENARIO="destroy-hang", TMPDIR=str(workspaces))
    step = subprocess.Popen(
        ["python3", str(ROOT / "components" / "kptstep.py"), "destroy"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while len(pids.read_text().split() if pids.exists() else []) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    step.kill()
    step.wait()
    assert len(list(workspaces.glob("kpt-catalog-destroy-*"))) == 1  # SIGKILL: no cleanup ran

    done = run("destroy", destroy_env(record, pids, TMPDIR=str(workspaces)))
    assert done.code == 0, done.stderr
    assert list(workspaces.glob("kpt-catalog-destroy-*")) == []
    assert json.loads(Path(record).read_text().splitlines()[-1])["argv"][:2] == [
        "live",
        "destroy",
    ]
