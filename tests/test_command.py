"""`./kpt-catalog`: what a newcomer meets first. The commands and their exit codes, a machine
without the Pulumi CLI, a stack made without it, the table `up` ends with, and colour."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from kpt_catalog import cli, exits, stack, stackfile, summary
from kpt_catalog.output import Printer, colour_wanted
from tests.harness import ROOT, TEST_CONTEXT, TEST_KUBECONFIG


def _bin_with(tmp_path: Path, *names: str) -> Path:
    """A PATH directory holding the system tools the script needs and stand-ins for `names`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "dirname"):
        found = shutil.which(tool)
        assert found
        (bin_dir / tool).symlink_to(found)
    (bin_dir / "python3").symlink_to(sys.executable)
    for name in names:
        (bin_dir / name).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


@pytest.mark.parametrize("command", ["up", "preview", "destroy"])
def test_without_the_pulumi_cli_a_fresh_clone_learns_it_at_once(tmp_path: Path, command: str):
    clone = tmp_path / "clone"
    clone.mkdir()
    shutil.copy(ROOT / "kpt-catalog", clone)
    shutil.copy(ROOT / "requirements.txt", clone)
    bin_dir = _bin_with(tmp_path, "kpt", "kubectl")

    started = time.monotonic()
    result = subprocess.run(
        [str(clone / "kpt-catalog"), command],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    took = time.monotonic() - started

    assert result.returncode == exits.CONFIG
    assert took < 2, f"the first useful error took {took:.1f}s"
    assert "pulumi is not on PATH; install it: curl -fsSL https://get.pulumi.com | sh" in (
        result.stderr
    )
    assert "nothing was installed or run" in result.stderr
    assert not (clone / "venv").exists()  # nothing installed before the error


def test_help_lists_every_command_and_every_exit_code(capsys: pytest.CaptureFixture[str]):
    assert cli.main(["--help"]) == exits.OK
    out = capsys.readouterr().out
    for name in ("plan", "diff", "status", "preview", "up", "reapply", "destroy", "stack"):
        assert f"\n  {name} " in out
    for code, text in exits.TABLE:
        assert f"  {code:<4} {text}" in out


def test_an_unknown_command_is_a_usage_error_with_a_guess(capsys: pytest.CaptureFixture[str]):
    assert cli.main(["stauts"]) == exits.CONFIG
    assert "no command 'stauts'; did you mean status?" in capsys.readouterr().err


def test_a_bad_option_is_exit_2_in_every_command(capsys: pytest.CaptureFixture[str]):
    for name in ("plan", "diff", "status", "up", "stack"):
        assert cli.main([name, "--no-such-option"]) == exits.CONFIG, name
    capsys.readouterr()


# --- stack init: a cluster's stack without the Pulumi CLI -------------------------------------


def test_stack_init_writes_a_stack_file_plan_can_read(
    stack_project: Path, capsys: pytest.CaptureFixture[str]
):
    code = stack.main(
        [
            "init",
            "lab",
            "--kubeconfig",
            str(TEST_KUBECONFIG),
            "--context",
            TEST_CONTEXT,
            "--catalog-dir",
            str(ROOT / "examples" / "catalog"),
        ]
    )

    assert code == exits.OK, capsys.readouterr()
    written = stack_project / "Pulumi.lab.yaml"
    assert yaml.safe_load(written.read_text()) == {
        "config": {
            "kpt-catalog:kubeconfig": str(TEST_KUBECONFIG),
            "kpt-catalog:context": TEST_CONTEXT,
            "kpt-catalog:catalogDir": str(ROOT / "examples" / "catalog"),
        }
    }
    assert "edit it by hand" in written.read_text()
    assert "next: kpt-catalog plan --stack lab" in capsys.readouterr().out
    assert stackfile.load_stack_config("lab").context == TEST_CONTEXT
    # never overwritten
    assert stack.main(["init", "lab", "--kubeconfig", "x", "--context", "y"]) == exits.CONFIG
    assert "Pulumi.lab.yaml already exists" in capsys.readouterr().err


def test_stack_init_refuses_a_context_the_kubeconfig_lacks(
    stack_project: Path, capsys: pytest.CaptureFixture[str]
):
    argv = ["init", "site-a", "--kubeconfig", str(TEST_KUBECONFIG), "--context", "tset"]
    assert stack.main(argv) == exits.CONFIG
    err = capsys.readouterr().err
    assert f"has no context 'tset'; did you mean '{TEST_CONTEXT}'?" in err
    assert "nothing written" in err
    assert not (stack_project / "Pulumi.site-a.yaml").exists()


@pytest.mark.parametrize("name", ["../x", "", "a b", ".x"])
def test_stack_init_refuses_a_name_pulumi_would_not_take(
    stack_project: Path, capsys: pytest.CaptureFixture[str], name: str
):
    argv = ["init", name, "--kubeconfig", str(TEST_KUBECONFIG), "--context", TEST_CONTEXT]
    assert stack.main(argv) == exits.CONFIG
    assert "is not a stack name" in capsys.readouterr().err
    assert sorted(p.name for p in stack_project.glob("Pulumi.*.yaml")) == ["Pulumi.dev.yaml"]


# --- the table `up` ends with -----------------------------------------------------------------


def _log(path: Path, *lines: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def test_the_table_says_what_happened_to_each_package_in_this_run(
    state_home: Path, capsys: pytest.CaptureFixture[str]
):
    logs = state_home / "kpt-catalog" / "lab"

    def result(when: str, payload: dict[str, object], code: int = 0) -> str:
        return f"2026-{when}Z step: kpt-catalog-result: {json.dumps(payload)} (exit {code})"

    _log(
        logs / "cilium.log",
        # an earlier run: not this one's
        "2026-01-01T00:00:00.000000Z ==== kptstep apply (pid 1) ====",
        result("01-01T00:00:09.000000", {"step": "apply", "objects": 9, "ok": True}),
        "2026-12-03T10:00:00.000000Z ==== kptstep apply (pid 2) ====",
        "2026-12-03T10:00:01.000000Z kpt stdout: {}",
        result("12-03T10:00:40.000000", {"step": "apply", "objects": 12, "pruned": 2, "ok": True}),
        "2026-12-03T10:00:41.000000Z ==== kptstep wait (pid 3) ====",
        result(
            "12-03T10:01:30.000000",
            {"step": "wait-after", "reports": {"pool": "10.80.8.128/26"}, "ok": True},
        ),
    )
    _log(
        logs / "tailscale.log",
        "2026-12-03T10:01:31.000000Z ==== kptstep apply (pid 4) ====",
        result(
            "12-03T10:03:31.000000",
            {"step": "apply", "failure": "reconcile timeout", "ok": False},
            1,
        ),
    )
    _log(logs / "headscale.log", "2026-12-03T10:03:32.000000Z ==== kptstep apply (pid 5) ====")
    since = datetime(2026, 12, 3, 9, 59, tzinfo=UTC)
    names = ["kube-vip", "cilium", "tailscale", "headscale"]

    runs = summary.read_runs("lab", names, since, {**os.environ})
    summary.render_timeline(runs, Printer())
    timeline = capsys.readouterr().out.splitlines()
    summary.render_table(runs, Printer())
    out = capsys.readouterr().out.splitlines()

    # every step of this run, in the order it happened: what the engine's display let vanish
    assert [line.split(None, 1)[1].split() for line in timeline] == [
        ["cilium", "apply", "started"],
        ["cilium", "apply", "done:", "12", "applied,", "2", "pruned"],
        ["cilium", "wait", "started"],
        ["cilium", "wait-after", "done"],
        ["tailscale", "apply", "started"],
        ["tailscale", "apply", "FAILED", "(reconcile", "timeout)"],
        ["headscale", "apply", "started"],
    ]
    rows = {line.split()[0]: line for line in out if line.split()[:1] and line[0] != " "}
    assert rows["PACKAGE"].split() == list(summary.HEADER)
    assert rows["kube-vip"].split() == ["kube-vip", "unchanged", "-", "-", "-", "-", "-"]
    cilium = ["cilium", "applied", "1m30s", "12", "2", "-", "pool=10.80.8.128/26"]
    assert rows["cilium"].split() == cilium
    assert "FAILED in apply (reconcile timeout)" in rows["tailscale"]
    assert "STOPPED in apply" in rows["headscale"]
    assert f"tailscale: FAILED in apply (reconcile timeout); its log: {logs}/tailscale.log" in out


# --- colour -------------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "env", "coloured"),
    [
        (_Terminal(), {}, True),
        (_Terminal(), {"NO_COLOR": "1"}, False),
        (_Terminal(), {"TERM": "dumb"}, False),
        (io.StringIO(), {}, False),  # piped
        (_Terminal(), {"NO_COLOR": ""}, True),  # no-color.org: set and not empty
    ],
)
def test_colour_only_on_a_terminal_and_never_with_no_color(stream, env, coloured):
    assert colour_wanted(stream, env) is coloured


def test_piped_output_has_no_escape_codes(stack_project: Path):
    result = subprocess.run(
        [sys.executable, "-m", "kpt_catalog", "plan", "--catalog-dir", "examples/catalog"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "\033[" not in result.stdout + result.stderr
