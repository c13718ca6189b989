"""`make up/preview/destroy` and tools/pulumi-stack.sh, run against a stand-in `pulumi`.

The stand-in records each call's arguments and the backend and passphrase it was given, so the
tests can assert what a user would see happen: which backend their state goes to, which stack is
selected, the exact pulumi command, and what a missing tool prints. Every test runs in a copy of
the Makefile and tools/ with a PATH holding only the stand-ins and the few system tools the
wrapper needs, so neither a real `pulumi` nor the developer's login can leak in.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent

# What the wrapper and the Makefile's recipes call besides pulumi, kpt and kubectl.
SYSTEM_TOOLS = ("sh", "dirname", "mkdir", "awk")

# Records one JSON line per call; `whoami` succeeds only when the test says the user is logged in.
FAKE_PULUMI = """\
import json, os, sys

args = sys.argv[1:]
with open(os.environ["FAKE_PULUMI_LOG"], "a") as log:
    log.write(json.dumps({
        "argv": args,
        "backend": os.environ.get("PULUMI_BACKEND_URL"),
        "passphrase": os.environ.get("PULUMI_CONFIG_PASSPHRASE"),
    }) + "\\n")
if args[:1] == ["whoami"] and os.environ["FAKE_PULUMI_LOGGED_IN"] != "1":
    sys.exit("error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions")
"""

WHOAMI = ["whoami", "--non-interactive"]


def _select(stack: str) -> list[str]:
    return ["stack", "select", "--create", stack]


@dataclass
class Sandbox:
    """A copy of the project's Makefile and tools/, and a PATH of stand-ins."""

    project: Path
    bin_dir: Path
    log: Path
    home: Path

    @property
    def state_dir(self) -> Path:
        return self.project / ".pulumi-state"

    def remove_tool(self, name: str) -> None:
        (self.bin_dir / name).unlink()

    def run(
        self, *argv: str, logged_in: bool = False, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        # A clean environment: no PULUMI_*, STACK or MAKEFLAGS from the shell running the tests.
        full_env = {
            "PATH": str(self.bin_dir),
            "HOME": str(self.home),
            "FAKE_PULUMI_LOG": str(self.log),
            "FAKE_PULUMI_LOGGED_IN": "1" if logged_in else "0",
            **(env or {}),
        }
        return subprocess.run(
            argv,
            cwd=self.project,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def wrapper(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.run("/bin/sh", "tools/pulumi-stack.sh", *args, **kwargs)

    def make(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        make = shutil.which("make")
        assert make, "make is needed to run these tests"
        return self.run(make, *args, **kwargs)

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def argvs(self) -> list[list[str]]:
        return [call["argv"] for call in self.calls()]


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    project = tmp_path / "project"
    (project / "tools").mkdir(parents=True)
    shutil.copy(REPO / "Makefile", project)
    shutil.copy(REPO / "tools" / "pulumi-stack.sh", project / "tools")
    # `venv` is satisfied: the stamp is newer than the requirements files it depends on.
    for name in ("requirements.txt", "requirements-dev.txt"):
        shutil.copy(REPO / name, project)
        os.utime(project / name, (1_000_000_000, 1_000_000_000))
    (project / "venv").mkdir()
    (project / "venv" / ".installed").touch()

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in SYSTEM_TOOLS:
        found = shutil.which(name)
        assert found, f"{name} is needed to run these tests"
        (bin_dir / name).symlink_to(found)
    fake = tmp_path / "fake_pulumi.py"
    fake.write_text(FAKE_PULUMI)
    _executable(
        bin_dir / "pulumi",
        f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(fake))} "$@"\n',
    )
    for name in ("kpt", "kubectl"):
        _executable(bin_dir / name, "#!/bin/sh\nexit 0\n")

    home = tmp_path / "home"
    home.mkdir()
    return Sandbox(project=project.resolve(), bin_dir=bin_dir, log=tmp_path / "calls", home=home)


# --- the wrapper, run directly -------------------------------------------------------------


def test_without_login_state_goes_to_the_project_and_login_is_left_alone(sandbox: Sandbox):
    result = sandbox.wrapper("up")

    assert result.returncode == 0, result.stderr
    assert sandbox.argvs() == [WHOAMI, _select("dev"), ["up", "--stack", "dev"]]
    assert not any(argv[0] == "login" for argv in sandbox.argvs())
    assert sandbox.state_dir.is_dir()
    local = f"file://{sandbox.state_dir}"
    assert [call["backend"] for call in sandbox.calls()[1:]] == [local, local]
    assert [call["passphrase"] for call in sandbox.calls()[1:]] == ["", ""]
    assert str(sandbox.state_dir) in result.stderr
    assert "PULUMI_CONFIG_PASSPHRASE" in result.stderr


def test_when_logged_in_the_users_backend_is_used(sandbox: Sandbox):
    result = sandbox.wrapper("up", logged_in=True)

    assert result.returncode == 0, result.stderr
    assert sandbox.argvs() == [WHOAMI, _select("dev"), ["up", "--stack", "dev"]]
    assert all(call["backend"] is None for call in sandbox.calls())
    assert all(call["passphrase"] is None for call in sandbox.calls())
    assert not sandbox.state_dir.exists()


def test_a_backend_url_the_user_set_is_never_replaced(sandbox: Sandbox):
    # Even if that backend is failing: a fresh local stack would try to create everything again.
    result = sandbox.wrapper("up", env={"PULUMI_BACKEND_URL": "s3://team-state"})

    assert result.returncode == 0, result.stderr
    assert sandbox.argvs() == [_select("dev"), ["up", "--stack", "dev"]]
    assert all(call["backend"] == "s3://team-state" for call in sandbox.calls())
    assert not sandbox.state_dir.exists()


def test_stack_variable_selects_that_stack(sandbox: Sandbox):
    result = sandbox.wrapper("preview", env={"STACK": "prod"})

    assert result.returncode == 0, result.stderr
    assert sandbox.argvs()[1:] == [_select("prod"), ["preview", "--stack", "prod"]]


@pytest.mark.parametrize(
    ("user_env", "expected_passphrase"),
    [
        ({"PULUMI_CONFIG_PASSPHRASE": "s3cret"}, "s3cret"),
        ({"PULUMI_CONFIG_PASSPHRASE_FILE": "/run/secrets/pulumi"}, None),
    ],
    ids=["passphrase", "passphrase-file"],
)
def test_a_passphrase_the_user_set_is_kept(sandbox: Sandbox, user_env, expected_passphrase):
    result = sandbox.wrapper("up", env=user_env)

    assert result.returncode == 0, result.stderr
    assert sandbox.calls()[-1]["backend"] == f"file://{sandbox.state_dir}"
    assert sandbox.calls()[-1]["passphrase"] == expected_passphrase
    assert "set to empty" not in result.stderr


@pytest.mark.parametrize(
    ("tool", "where_to_get_it"),
    [
        ("pulumi", "https://www.pulumi.com/docs/install/"),
        ("kpt", "https://github.com/kptdev/kpt/releases"),
        ("kubectl", "https://kubernetes.io/docs/tasks/tools/"),
    ],
)
def test_a_missing_tool_stops_before_anything_runs(sandbox: Sandbox, tool, where_to_get_it):
    sandbox.remove_tool(tool)

    result = sandbox.wrapper("up")

    assert result.returncode != 0
    assert f"{tool} is not on PATH" in result.stderr
    assert where_to_get_it in result.stderr
    assert sandbox.calls() == []
    assert not sandbox.state_dir.exists()


def test_without_a_pulumi_command_it_prints_usage(sandbox: Sandbox):
    result = sandbox.wrapper()

    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert sandbox.calls() == []


# --- through make ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make_args", "pulumi_command"),
    [
        # `make up` keeps pulumi's confirmation prompt unless the user asks for --yes.
        (["up"], ["up", "--stack", "dev"]),
        (["up", "PULUMI_ARGS=--yes"], ["up", "--yes", "--stack", "dev"]),
        (["destroy"], ["destroy", "--exclude-protected", "--stack", "dev"]),
    ],
    ids=["up", "up-yes", "destroy"],
)
def test_make_targets_run_pulumi(sandbox: Sandbox, make_args, pulumi_command):
    result = sandbox.make(*make_args)

    assert result.returncode == 0, result.stdout + result.stderr
    stack = "prod" if "STACK=prod" in make_args else "dev"
    assert sandbox.argvs() == [WHOAMI, _select(stack), pulumi_command]


def test_make_destroy_all_unprotects_then_destroys(sandbox: Sandbox):
    result = sandbox.make("destroy-all")

    assert result.returncode == 0, result.stdout + result.stderr
    changes = [argv for argv in sandbox.argvs() if argv not in (WHOAMI, _select("dev"))]
    assert changes == [
        ["state", "unprotect", "--all", "--yes", "--stack", "dev"],
        ["destroy", "--stack", "dev"],
    ]


def test_make_help_lists_every_target(sandbox: Sandbox):
    result = sandbox.make("help")

    assert result.returncode == 0, result.stderr
    phony = next(
        line for line in (REPO / "Makefile").read_text().splitlines() if line.startswith(".PHONY:")
    )
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")]
    assert listed == phony.split(":", 1)[1].split()


@pytest.mark.parametrize("target", ["plan", "status"])
def test_catalog_dir_reaches_plan_and_status(sandbox: Sandbox, target: str):
    result = sandbox.make("-n", target, "CATALOG_DIR=examples/my catalog", "STACK=prod")

    assert result.returncode == 0, result.stderr
    command = result.stdout.strip().splitlines()[-1]
    assert shlex.split(command) == [
        "venv/bin/python",
        "-m",
        f"tools.{target}",
        "--stack",
        "prod",
        # make status is bounded (TIMEOUT) and checks packages side by side (JOBS)
        *(["--timeout", "5m", "--jobs", "8"] if target == "status" else []),
        "--catalog-dir",
        "examples/my catalog",
    ]
