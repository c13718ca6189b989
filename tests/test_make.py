"""`make up/preview/destroy` and kpt_catalog/pulumi-stack.sh, run against a stand-in `pulumi`.

The stand-in records each call's arguments and the backend and passphrase it was given, so the
tests can assert what a user would see happen: which backend their state goes to, which stack is
selected, the exact pulumi command, and what a missing tool prints. Every test runs in a copy of
the Makefile, ./kpt-catalog and kpt_catalog/ with a PATH holding only the stand-ins and the few
system tools the wrapper needs, so neither a real `pulumi` nor the developer's login can leak in.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kpt_catalog.deploy import WRAPPER_REFUSED
from kpt_catalog.stackstate import protected_urns

REPO = Path(__file__).resolve().parent.parent

# What the wrapper and the Makefile's recipes call besides pulumi, kpt and kubectl.
SYSTEM_TOOLS = ("sh", "dirname", "mkdir", "awk", "date", "mktemp", "rm")

# Records one JSON line per call; `whoami` succeeds only when the test says the user is logged in.
# With FAKE_PULUMI_STATE it also keeps a stack's resources, as `pulumi stack export` prints them:
# `state protect`/`unprotect` flip `protect`, and `destroy` does what FAKE_PULUMI_DESTROY says:
# "ok" (remove everything, refusing protected resources as pulumi does), "decline" (change
# nothing, exit non-zero), "fail" (remove the URNs in FAKE_PULUMI_DESTROY_REMOVES, then exit
# non-zero), "interrupt" (Ctrl-C: SIGINT to the whole process group, as a terminal sends it) or
# "terminate" (SIGTERM to the group, as a CI runner's timeout sends it).
FAKE_PULUMI = """\
import json, os, signal, sys

args = sys.argv[1:]
with open(os.environ["FAKE_PULUMI_LOG"], "a") as log:
    log.write(json.dumps({
        "argv": args,
        "backend": os.environ.get("PULUMI_BACKEND_URL"),
        "passphrase": os.environ.get("PULUMI_CONFIG_PASSPHRASE"),
    }) + "\\n")
client = [a for a in args if a.startswith("--client=")]
if client and os.environ.get("FAKE_PULUMI_DIAL_CLIENT") == "1":
    import socket

    host, _, port = client[0].removeprefix("--client=").rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5):
        print("language host answered")
if args[:1] == ["whoami"] and os.environ["FAKE_PULUMI_LOGGED_IN"] != "1":
    sys.exit("error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions")
if args[:1] == ["preview"] and "--json" in args and "FAKE_PULUMI_PREVIEW_JSON" in os.environ:
    print(os.environ["FAKE_PULUMI_PREVIEW_JSON"])
    sys.exit(int(os.environ.get("FAKE_PULUMI_PREVIEW_EXIT", "0")))

state_file = os.environ.get("FAKE_PULUMI_STATE")
if not state_file:
    sys.exit(0)
with open(state_file) as f:
    export = json.load(f)
resources = export["deployment"].setdefault("resources", [])

def save():
    with open(state_file, "w") as f:
        json.dump(export, f)

if args[:2] == ["stack", "export"]:
    print(json.dumps(export, indent=4))
elif args[:1] == ["state"] and args[1] in ("protect", "unprotect"):
    urn = args[-1]
    if urn in os.environ.get("FAKE_PULUMI_FAIL_UNPROTECT", "").split(","):
        sys.exit(f"error: cannot unprotect {urn}")
    found = [r for r in resources if r["urn"] == urn and not r.get("delete")]
    if not found:
        sys.exit(f'error: No such resource "{urn}" exists in the current state')
    for r in found:
        r["protect"] = args[1] == "protect"
    save()
elif args[:1] == ["destroy"]:
    mode = os.environ.get("FAKE_PULUMI_DESTROY", "ok")
    if mode == "ok":
        protected = [r["urn"] for r in resources if r.get("protect")]
        if protected:
            sys.exit(f"error: unable to delete protected resource {protected[0]}")
        resources.clear()
        save()
    elif mode == "decline":
        sys.exit("confirmation declined, not proceeding with the destroy")
    elif mode == "fail":
        removed = os.environ["FAKE_PULUMI_DESTROY_REMOVES"].split(",")
        resources[:] = [r for r in resources if r["urn"] not in removed]
        save()
        sys.exit("error: update failed")
    elif mode in ("interrupt", "terminate"):
        sent = signal.SIGINT if mode == "interrupt" else signal.SIGTERM
        signal.signal(sent, signal.SIG_IGN)
        os.killpg(os.getpgrp(), sent)
        sys.exit("error: update canceled")
"""

WHOAMI = ["whoami", "--non-interactive"]
IGNORED = shutil.ignore_patterns("__pycache__")
# Every stack of the sandbox: a kubeconfig file with the context, and the example catalog, so
# that ./kpt-catalog's checks before the engine pass and the stand-in pulumi is what runs.
STACK_FILE = "config:\n  kpt-catalog:kubeconfig: kubeconfig.yaml\n"
STACK_FILE += "  kpt-catalog:context: default\n  kpt-catalog:catalogDir: examples/catalog\n"
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: default, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: default, user: {token: not-a-real-one}}]
contexts: [{name: default, context: {cluster: default, user: default}}]
current-context: default
"""


def _select(stack: str) -> list[str]:
    return ["stack", "select", "--create", stack]


@dataclass
class Sandbox:
    """A copy of the project's Makefile, ./kpt-catalog and kpt_catalog/, and a PATH of
    stand-ins."""

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
        # A session of its own, so that a stand-in's Ctrl-C reaches this run and not pytest.
        return subprocess.run(
            argv,
            cwd=self.project,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            start_new_session=True,
        )

    def wrapper(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.run("/bin/sh", "kpt_catalog/pulumi-stack.sh", *args, **kwargs)

    def command(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """./kpt-catalog with `args`: its own exit code."""
        return self.run(str(self.project / "kpt-catalog"), *args, **kwargs)

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

    def tool_runs(self) -> list[list[str]]:
        """The arguments of each `venv/bin/python -m kpt_catalog ...` a recipe ran."""
        log = self.log.parent / "python-calls"
        records = log.read_text().split("\036")[:-1] if log.exists() else []
        argvs = [record.split("\037")[:-1] for record in records]
        return [argv for argv in argvs if argv[:1] == ["-m"]]


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "Makefile", project)
    shutil.copy(REPO / "kpt-catalog", project)
    shutil.copytree(REPO / "kpt_catalog", project / "kpt_catalog", ignore=IGNORED)
    shutil.copytree(REPO / "components", project / "components", ignore=IGNORED)
    shutil.copytree(REPO / "examples" / "catalog", project / "examples" / "catalog")
    (project / "kubeconfig.yaml").write_text(KUBECONFIG)
    shutil.copy(REPO / "Pulumi.yaml", project)
    # The graph, and two stacks on the one cluster (kpt_catalog.stackfile reads them from the copy).
    shutil.copy(REPO / "packages.yaml", project)
    for stack in ("dev", "prod"):
        (project / f"Pulumi.{stack}.yaml").write_text(STACK_FILE)
    # `venv` is satisfied: the stamp is newer than the requirements files it depends on.
    for name in ("requirements.txt", "requirements-dev.txt"):
        shutil.copy(REPO / name, project)
        os.utime(project / name, (1_000_000_000, 1_000_000_000))
    (project / "venv" / "bin").mkdir(parents=True)
    (project / "venv" / ".runtime-installed").touch()
    (project / "venv" / ".dev-installed").touch()
    # The project's python, recording how each recipe called it (one record per call).
    _executable(
        project / "venv" / "bin" / "python",
        '#!/bin/sh\n{ for a in "$@"; do printf "%s\\037" "$a"; done; printf "\\036"; }'
        f" >>{shlex.quote(str(tmp_path / 'python-calls'))}\n"
        f'exec {shlex.quote(sys.executable)} "$@"\n',
    )

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
    # A released CLI's Python language host, beside it: pulumi runs the program itself.
    _executable(bin_dir / "pulumi-language-python", "#!/bin/sh\nexit 0\n")

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


def test_without_a_language_host_the_program_is_served_to_the_cli(sandbox: Sandbox):
    """A CLI built from its Go module has no Python language host: `make up` then serves the
    program itself and hands pulumi its address (`--client`), which must answer while pulumi
    runs."""
    (sandbox.bin_dir / "pulumi-language-python").unlink()
    result = sandbox.make("up", env={"FAKE_PULUMI_DIAL_CLIENT": "1"})

    assert result.returncode == 0, result.stdout + result.stderr
    *before, up = sandbox.argvs()
    assert before == [WHOAMI, _select("dev")]
    assert up[:3] == ["up", "--stack", "dev"] and len(up) == 4
    assert re.fullmatch(r"--client=127\.0\.0\.1:\d+", up[3]), up
    assert "language host answered" in result.stdout


# --- destroy-all: protection comes back unless the resources are gone -----------------------

STACK_URN = "urn:pulumi:dev::kpt-catalog::pulumi:pulumi:Stack::kpt-catalog-dev"
KUBE_VIP = "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage::kube-vip"
KUBE_VIP_APPLY = (
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage$command:local:Command"
    "::kube-vip-apply"
)
CILIUM = "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage::cilium"
EXPORT = ["stack", "export", "--stack", "dev"]


def _stack_state(sandbox: Sandbox, protected: tuple[str, ...] = (KUBE_VIP, KUBE_VIP_APPLY)) -> Path:
    """A deployed stack whose kube-vip (component and child) is protected, cilium not."""
    resources = [
        {"urn": urn, "type": urn.split("::")[2], "protect": urn in protected}
        for urn in (STACK_URN, KUBE_VIP, KUBE_VIP_APPLY, CILIUM)
    ]
    state = sandbox.project.parent / "fake-state.json"
    state.write_text(json.dumps({"version": 3, "deployment": {"resources": resources}}))
    return state


def _protected_now(state: Path) -> list[str]:
    resources = json.loads(state.read_text())["deployment"]["resources"]
    return [r["urn"] for r in resources if r.get("protect") and not r.get("delete")]


def _destroy_all(sandbox: Sandbox, state: Path, *make_args: str, **env: str):
    result = sandbox.make("destroy-all", *make_args, env={"FAKE_PULUMI_STATE": str(state), **env})
    changes = [argv for argv in sandbox.argvs() if argv not in (WHOAMI, _select("dev"))]
    return result, changes


def _unprotect(urn: str) -> list[str]:
    return ["state", "unprotect", "--yes", "--stack", "dev", urn]


def _protect(urn: str) -> list[str]:
    return ["state", "protect", "--yes", "--stack", "dev", urn]


def test_destroy_all_unprotects_exactly_the_protected_then_destroys_everything(sandbox):
    state = _stack_state(sandbox)

    result, changes = _destroy_all(sandbox, state, "PULUMI_ARGS=--yes")

    assert result.returncode == 0, result.stdout + result.stderr
    assert changes == [
        EXPORT,
        _unprotect(KUBE_VIP),
        _unprotect(KUBE_VIP_APPLY),
        ["destroy", "--yes", "--stack", "dev"],
        EXPORT,  # nothing of it is left: nothing to protect again
    ]
    assert json.loads(state.read_text())["deployment"]["resources"] == []
    assert "protected again" not in result.stderr


@pytest.mark.parametrize(
    ("destroy", "expected_status"),
    [("decline", 1), ("interrupt", None), ("terminate", None)],
    ids=["declined", "interrupted", "terminated"],
)
def test_destroy_all_that_does_not_happen_leaves_kube_vip_protected(
    sandbox, destroy, expected_status
):
    state = _stack_state(sandbox)

    result, changes = _destroy_all(sandbox, state, FAKE_PULUMI_DESTROY=destroy)

    assert changes == [
        EXPORT,
        _unprotect(KUBE_VIP),
        _unprotect(KUBE_VIP_APPLY),
        ["destroy", "--stack", "dev"],
        EXPORT,
        _protect(KUBE_VIP),
        _protect(KUBE_VIP_APPLY),
    ]
    assert _protected_now(state) == [KUBE_VIP, KUBE_VIP_APPLY]
    assert f"protected again: {KUBE_VIP}" in result.stderr
    if expected_status is None:
        # make itself dies of the signal, after the wrapper has finished protecting.
        assert result.returncode != 0
    else:
        assert result.returncode == 2  # make's status when a recipe fails
        assert "destroy-all] Error 4" in result.stderr  # kpt-catalog's code: the destroy failed


def test_destroy_all_that_fails_half_way_protects_again_only_what_is_left(sandbox):
    state = _stack_state(sandbox)

    result, changes = _destroy_all(
        sandbox,
        state,
        FAKE_PULUMI_DESTROY="fail",
        FAKE_PULUMI_DESTROY_REMOVES=f"{CILIUM},{KUBE_VIP_APPLY}",
    )

    assert result.returncode != 0
    assert changes[-3:] == [["destroy", "--stack", "dev"], EXPORT, _protect(KUBE_VIP)]
    assert _protected_now(state) == [KUBE_VIP]


def test_an_old_copy_pending_deletion_is_not_unprotected():
    # `pulumi state unprotect` skips such copies and refuses their URN (state_unprotect.go).
    live = {"urn": KUBE_VIP, "protect": True}
    old = {"urn": CILIUM, "protect": True, "delete": True}
    export = {"version": 3, "deployment": {"resources": [live, old, dict(live)]}}

    assert protected_urns(export) == [KUBE_VIP]


def test_destroy_all_with_nothing_protected_just_destroys(sandbox):
    state = _stack_state(sandbox, protected=())

    result, changes = _destroy_all(sandbox, state)

    assert result.returncode == 0, result.stderr
    assert changes == [EXPORT, ["destroy", "--stack", "dev"]]


def test_destroy_all_stops_before_destroying_when_an_unprotect_fails(sandbox):
    state = _stack_state(sandbox)

    result, changes = _destroy_all(sandbox, state, FAKE_PULUMI_FAIL_UNPROTECT=KUBE_VIP_APPLY)

    assert result.returncode != 0
    assert changes == [
        EXPORT,
        _unprotect(KUBE_VIP),
        _unprotect(KUBE_VIP_APPLY),
        EXPORT,
        _protect(KUBE_VIP),
    ]
    assert _protected_now(state) == [KUBE_VIP, KUBE_VIP_APPLY]
    assert f"could not unprotect {KUBE_VIP_APPLY}; nothing was destroyed" in result.stderr


def test_destroy_all_changes_nothing_when_the_state_cannot_be_read(sandbox):
    # The plain stand-in prints nothing for `stack export`.
    result = sandbox.make("destroy-all")

    assert result.returncode != 0
    assert sandbox.argvs()[-1] == EXPORT
    assert "cannot read which resources of stack dev are protected; nothing was changed" in (
        result.stderr
    )


# --- the passphrase: empty only for a stack that holds no secret ----------------------------

SECRET = {
    "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
    "ciphertext": "v1:x",
}


def _checkpoint(sandbox: Sandbox, outputs: dict[str, Any], suffix: str = ".json") -> Path:
    path = sandbox.state_dir / ".pulumi" / "stacks" / "kpt-catalog" / f"dev{suffix}"
    path.parent.mkdir(parents=True)
    text = json.dumps(
        {
            "version": 3,
            "checkpoint": {"latest": {"resources": [{"urn": CILIUM, "outputs": outputs}]}},
        }
    )
    path.write_bytes(gzip.compress(text.encode()) if suffix == ".json.gz" else text.encode())
    return path


def _stack_file(sandbox: Sandbox, text: str) -> None:
    (sandbox.project / "Pulumi.dev.yaml").write_text(text)


PLAIN_CONFIG = "config:\n  kpt-catalog:context: rke2\nencryptionsalt: v1:abc\n"
SECURE_CONFIG = (
    "config:\n  kpt-catalog:context: rke2\n  kpt-catalog:oauthSecret:\n    secure: v1:AAAA\n"
    "encryptionsalt: v1:abc\n"
)


def test_an_empty_passphrase_is_used_only_after_finding_no_secret(sandbox):
    _stack_file(sandbox, PLAIN_CONFIG)
    _checkpoint(sandbox, {"stdout": "applied 3 objects", "nested": [{"value": 1}]})

    result = sandbox.wrapper("up")

    assert result.returncode == 0, result.stderr
    assert sandbox.calls()[-1]["passphrase"] == ""
    assert "checked Pulumi.dev.yaml and its state, this stack holds no secrets" in result.stderr


@pytest.mark.parametrize(
    ("config", "state", "where"),
    [
        (SECURE_CONFIG, None, "Pulumi.dev.yaml: a `secure:` value"),
        (PLAIN_CONFIG, ".json", ".pulumi-state/.pulumi/stacks/kpt-catalog/dev.json: encrypted"),
        (
            PLAIN_CONFIG,
            ".json.gz",
            ".pulumi-state/.pulumi/stacks/kpt-catalog/dev.json.gz: encrypted",
        ),
    ],
    ids=["secure-config", "secret-in-state", "secret-in-gzipped-state"],
)
def test_a_stack_holding_secrets_stops_and_says_how_to_give_its_passphrase(
    sandbox, config, state, where
):
    _stack_file(sandbox, config)
    if state:
        _checkpoint(sandbox, {"token": {"list": [SECRET]}}, suffix=state)

    result = sandbox.wrapper("up")

    assert result.returncode == WRAPPER_REFUSED
    assert sandbox.argvs() == [WHOAMI]  # not even `stack select`
    assert "stack dev holds secrets, so it needs its passphrase:" in result.stderr
    assert where in result.stderr
    assert "export PULUMI_CONFIG_PASSPHRASE_FILE=" in result.stderr
    assert (
        f"PULUMI_CONFIG_PASSPHRASE= PULUMI_BACKEND_URL=file://{sandbox.state_dir} "
        "pulumi stack change-secrets-provider passphrase --stack dev"
    ) in result.stderr
    assert "holds no secrets" not in result.stderr


@pytest.mark.parametrize(
    "config",
    [
        'config:\n  kpt-catalog:oauthSecret: {"secure": "v1:AAAA"}\n',
        "config:\n  kpt-catalog:oauthSecret:\n    'secure' : v1:AAAA\n",
        '{"config": {"kpt-catalog:oauthSecret": {"secure": "v1:AAAA"}}}\n',
        "config:\n  kpt-catalog:nested:\n    list:\n      - {secure: v1:AAAA}\n",
    ],
    ids=["flow-quoted", "single-quoted", "json", "nested"],
)
def test_a_secret_is_found_however_the_stack_file_spells_it(sandbox, config):
    _stack_file(sandbox, config)

    result = sandbox.wrapper("up")

    assert result.returncode == WRAPPER_REFUSED
    assert "stack dev holds secrets, so it needs its passphrase:" in result.stderr


@pytest.mark.parametrize(
    "user_env",
    [
        {"PULUMI_CONFIG_PASSPHRASE": ""},
        {"PULUMI_CONFIG_PASSPHRASE_FILE": "/dev/null"},
        {"PULUMI_CONFIG_PASSPHRASE": "", "PULUMI_CONFIG_PASSPHRASE_FILE": "/run/secrets/p"},
    ],
    ids=["exported-empty", "file-dev-null", "empty-wins-over-file"],
)
def test_an_empty_passphrase_the_user_exported_is_refused_for_a_stack_with_secrets(
    sandbox, user_env
):
    _stack_file(sandbox, SECURE_CONFIG)

    result = sandbox.wrapper("up", env=user_env)

    assert result.returncode == WRAPPER_REFUSED
    assert sandbox.argvs() == [WHOAMI]
    assert "stack dev holds secrets, so it needs its passphrase:" in result.stderr


def test_an_exported_empty_passphrase_is_kept_for_a_stack_without_secrets(sandbox):
    _stack_file(sandbox, PLAIN_CONFIG)

    result = sandbox.wrapper("up", env={"PULUMI_CONFIG_PASSPHRASE": ""})

    assert result.returncode == 0, result.stderr
    assert sandbox.calls()[-1]["passphrase"] == ""
    assert "the passphrase set is empty: checked Pulumi.dev.yaml" in result.stderr


@pytest.mark.parametrize("flag", ["--secret", "--secret=true", "--secret=1", "--secret=True"])
def test_storing_a_secret_in_any_spelling_needs_a_real_passphrase(sandbox, flag):
    _stack_file(sandbox, PLAIN_CONFIG)

    result = sandbox.wrapper("config", "set", flag, "kpt-catalog:tailscaleOauthClientId")

    assert result.returncode == WRAPPER_REFUSED
    assert sandbox.argvs() == [WHOAMI]


def test_storing_the_first_secret_needs_a_real_passphrase(sandbox):
    _stack_file(sandbox, PLAIN_CONFIG)

    result = sandbox.wrapper("config", "set", "--secret", "kpt-catalog:tailscaleOauthClientId")

    assert result.returncode == WRAPPER_REFUSED
    assert sandbox.argvs() == [WHOAMI]  # the value is never stored under the empty passphrase
    assert "this command stores a secret (--secret), so the stack needs a real passphrase" in (
        result.stderr
    )
    assert "export PULUMI_CONFIG_PASSPHRASE_FILE=" in result.stderr
    assert "holds no secrets" not in result.stderr


def test_state_that_cannot_be_read_is_never_taken_for_no_secrets(sandbox):
    _checkpoint(sandbox, {}, suffix=".json.zst")

    result = sandbox.wrapper("up")

    assert result.returncode == WRAPPER_REFUSED
    assert "cannot tell whether stack dev holds secrets" in result.stderr
    assert "dev.json.zst: zstd-compressed state cannot be read here" in result.stderr
    assert "holds no secrets" not in result.stderr


def test_a_secrets_provider_named_in_the_stack_file_is_left_to_pulumi(sandbox):
    _stack_file(sandbox, SECURE_CONFIG + "secretsprovider: awskms://alias/kpt?region=eu-west-1\n")

    result = sandbox.wrapper("up")

    assert result.returncode == 0, result.stderr
    assert sandbox.calls()[-1]["passphrase"] is None
    assert "names the secrets provider awskms://alias/kpt?region=eu-west-1" in result.stderr


def test_a_passphrase_the_user_set_unlocks_a_stack_with_secrets_and_is_never_printed(sandbox):
    _stack_file(sandbox, SECURE_CONFIG)

    result = sandbox.wrapper("up", env={"PULUMI_CONFIG_PASSPHRASE": "s3cret"})

    assert result.returncode == 0, result.stderr
    assert sandbox.calls()[-1]["passphrase"] == "s3cret"  # noqa: S105 - made up, to look for
    assert "s3cret" not in result.stderr + result.stdout


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
    dry_run = sandbox.make("-n", target, "CATALOG_DIR=examples/my catalog", "STACK=prod")
    result = sandbox.make(target, "CATALOG_DIR=examples/my catalog", "STACK=prod")

    # The values reach the command from the environment, never pasted into the shell line.
    assert dry_run.returncode == 0, dry_run.stderr
    assert dry_run.stdout.strip().splitlines()[-1] == (
        f'./kpt-catalog {target} --stack "$STACK"'
        + (' --timeout "$TIMEOUT" --jobs "$JOBS"' if target == "status" else "")
        + ' --catalog-dir "$CATALOG_DIR"'
    )
    # (the directory does not exist: the command says so and fails)
    assert "examples/my catalog" in result.stdout + result.stderr
    assert sandbox.tool_runs() == [
        [
            "-m",
            "kpt_catalog",
            target,
            "--stack",
            "prod",
            # make status is bounded (TIMEOUT) and checks packages side by side (JOBS)
            *(["--timeout", "5m", "--jobs", "8"] if target == "status" else []),
            "--catalog-dir",
            "examples/my catalog",
        ]
    ]


# Values a user may give on the command line, each carrying a command (`:>FILE`, which the shell
# runs without any program on PATH) that would run if the value were pasted into a recipe's line
# bare, in double quotes or in single quotes: none may run. (make reads `$$` as a `$`.)
HOSTILE = (
    "rv;:>{marker}-semicolon",
    "rv$$(:>{marker}-subshell)",
    "x'$$(:>{marker}-quote)'",
    "it's",
)


# Each target with the variables its recipes use.
USES = {
    "help": ("STACK", "PACKAGE", "CATALOG_DIR", "TIMEOUT", "JOBS"),
    "plan": ("STACK", "CATALOG_DIR"),
    "status": ("STACK", "PACKAGE", "CATALOG_DIR", "TIMEOUT", "JOBS"),
    "diff": ("STACK", "PACKAGE", "CATALOG_DIR", "TIMEOUT", "JOBS"),
    "preview": ("STACK",),
    "reapply": ("STACK", "PACKAGE"),
}


@pytest.mark.parametrize(
    ("target", "variable"), [(t, v) for t, variables in USES.items() for v in variables]
)
def test_a_variable_holding_shell_code_runs_nothing(sandbox: Sandbox, target: str, variable: str):
    marker = sandbox.project / "marker"
    for value in HOSTILE:
        sandbox.make(target, f"{variable}={value.format(marker=marker)}")

    assert sorted(p.name for p in sandbox.project.iterdir() if p.name.startswith("marker")) == []


# --- reapply: one package's token, then up --------------------------------------------------


def test_reapply_sets_the_packages_token_then_runs_up(sandbox: Sandbox):
    result = sandbox.make("reapply", "PACKAGE=headscale", "STACK=prod", "PULUMI_ARGS=--yes")

    assert result.returncode == 0, result.stdout + result.stderr
    config_set, up = [argv for argv in sandbox.argvs() if argv not in (WHOAMI, _select("prod"))]
    assert config_set[:4] == ["config", "set", "--path", "kpt-catalog:reapply.headscale"]
    assert config_set[5:] == ["--stack", "prod"]
    token = config_set[4]  # a UTC timestamp: a new one on every run
    assert len(token) == 20 and token[4] == "-" and token[10] == "T" and token.endswith("Z")
    assert up == ["up", "--yes", "--stack", "prod"]


@pytest.mark.parametrize("package", [None, "", "Headscale", "a;b", "-x", "two words"])
def test_reapply_without_a_package_name_runs_nothing(sandbox, package):
    args = ["reapply"] if package is None else ["reapply", f"PACKAGE={package}"]
    result = sandbox.make(*args)

    assert result.returncode == 2
    assert "no package" in result.stderr or "--package" in result.stderr
    assert sandbox.calls() == []


def test_reapply_of_a_package_the_stack_does_not_have_saves_nothing(sandbox: Sandbox):
    result = sandbox.command("reapply", "--package", "headscal", "--stack", "prod")

    assert result.returncode == 2  # a configuration error: nothing ran
    assert (
        "PACKAGE: no package 'headscal' in stack prod; did you mean 'headscale'? the packages "
        "are kube-vip, cilium, tailscale, headscale, envoy-gateway"
    ) in result.stderr
    # refused before any pulumi call: no token saved in the stack, no up
    assert sandbox.calls() == []


# --- preview: Pulumi's diff, then the objects of the packages it changes ---------------------

# What `pulumi preview --json` prints when the program fails (PreviewDigest, pulumi
# pkg/display/json.go): the digest with the error among its diagnostics; pulumi exits 255.
FAILED_PREVIEW = json.dumps(
    {
        "steps": [],
        "diagnostics": [
            {
                "urn": "urn:pulumi:dev::kpt-catalog::pulumi:pulumi:Stack::kpt-catalog-dev",
                "prefix": "error: ",
                "message": "<{%reset%}>kpt-catalog: 1 configuration problem(s):\n"
                "  - catalogDir: /nowhere does not exist<{%reset%}>\n",
                "severity": "error",
            },
            {"message": "a warning", "severity": "warning"},
        ],
        "duration": 1000,
    },
    indent=4,
)


@pytest.mark.parametrize("drift", [[], ["DRIFT=1"]])
def test_a_failed_preview_fails_make_preview_and_says_why(sandbox: Sandbox, drift: list[str]):
    temp = sandbox.home / "tmp"
    temp.mkdir()
    env = {
        "FAKE_PULUMI_PREVIEW_JSON": FAILED_PREVIEW,
        "FAKE_PULUMI_PREVIEW_EXIT": "255",
        "TMPDIR": str(temp),
    }
    result = sandbox.make("preview", *drift, env=env)

    assert result.returncode != 0
    assert "kpt-catalog preview: pulumi preview failed" in result.stderr
    assert (
        "kpt-catalog-dev: kpt-catalog: 1 configuration problem(s): "
        "- catalogDir: /nowhere does not exist"
    ) in result.stderr
    assert "a warning" not in result.stderr
    # no object diff: nothing asked the cluster
    assert "Objects each package's apply would change" not in result.stdout
    assert list(temp.iterdir()) == []  # the JSON's temporary file is removed


def test_preview_diffs_the_objects_of_what_pulumi_changes(sandbox: Sandbox, catalog: Path):
    (sandbox.project / "Pulumi.prod.yaml").write_text(
        f"{STACK_FILE}  kpt-catalog:catalogDir: {catalog}\n"
    )
    temp = sandbox.home / "tmp"
    temp.mkdir()
    env = {"FAKE_PULUMI_PREVIEW_JSON": json.dumps({"steps": []}), "TMPDIR": str(temp)}
    result = sandbox.make("preview", "STACK=prod", "PULUMI_ARGS=--refresh", env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    previews = [argv for argv in sandbox.argvs() if argv[:1] == ["preview"]]
    assert previews == [
        ["preview", "--diff", "--refresh", "--stack", "prod"],
        ["preview", "--json", "--refresh", "--stack", "prod"],
    ]
    assert sandbox.tool_runs() == [["-m", "kpt_catalog", "preview", "--stack", "prod", "--refresh"]]
    assert "no package is created or updated" in result.stdout
    assert list(temp.iterdir()) == []


def test_make_diff_hands_its_variables_to_the_tool(sandbox: Sandbox):
    sandbox.make("diff", "PACKAGE=headscale", "TIMEOUT=2m", "CATALOG_DIR=my 'catalog'")

    assert sandbox.tool_runs() == [
        [
            "-m",
            "kpt_catalog",
            "diff",
            "--stack",
            "dev",
            "--timeout",
            "2m",
            "--jobs",
            "8",
            "--catalog-dir",
            "my 'catalog'",
            "--package",
            "headscale",
        ]
    ]


# --- ./kpt-catalog before the engine: every check that can be made without it ----------------


def test_up_on_a_cluster_that_does_not_answer_is_exit_3_and_never_starts_the_engine(
    sandbox: Sandbox,
):
    (sandbox.bin_dir / "kubectl").write_text(
        "#!/bin/sh\necho 'The connection to the server 127.0.0.1:6443 was refused' >&2\nexit 1\n"
    )
    result = sandbox.command("up", "--yes")

    assert result.returncode == 3, result.stdout + result.stderr
    assert "cluster unreachable (kubeconfig" in result.stdout
    assert "127.0.0.1:6443 was refused" in result.stdout
    assert sandbox.calls() == []


@pytest.mark.parametrize("command", ["up", "preview", "reapply"])
def test_a_configuration_problem_stops_the_deploy_commands_before_the_engine(
    sandbox: Sandbox, command: str
):
    graph = sandbox.project / "packages.yaml"
    graph.write_text(graph.read_text().replace("needs: [cilium]", "needs: [cilum]", 1))
    args = [command, "--package", "headscale"] if command == "reapply" else [command]

    result = sandbox.command(*args)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "did you mean 'cilium'?" in result.stderr
    assert "packages.yaml line" in result.stderr
    assert sandbox.calls() == []


def test_destroy_needs_no_catalog_only_a_cluster(sandbox: Sandbox):
    # the catalog is gone from this machine: the rollback works from the engine's state
    shutil.rmtree(sandbox.project / "examples" / "catalog")
    result = sandbox.command("destroy", "--yes")

    assert result.returncode == 0, result.stdout + result.stderr
    assert sandbox.argvs()[-1] == ["destroy", "--exclude-protected", "--yes", "--stack", "dev"]


def test_a_failed_up_is_exit_4_and_says_so(sandbox: Sandbox):
    (sandbox.bin_dir / "pulumi").write_text(
        (sandbox.bin_dir / "pulumi")
        .read_text()
        .replace("exec ", '[ "$1" = up ] && exit 255\nexec ')
    )
    result = sandbox.command("up", "--yes")

    assert result.returncode == 4, result.stdout + result.stderr
    assert "kpt-catalog up: FAILED" in result.stdout
