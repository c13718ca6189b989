"""`make demo` and `make demo-down`: the example catalog on a local control plane.

    python -m world demo-up     build (or find) the world, start it, deploy, print make status
    python -m world demo-down   roll everything back (kube-vip too), stop the control plane
    python -m world env         print the shell exports that point pulumi, kpt and kubectl at it

The control plane keeps running between the two, its files and the demo stack's state under
`$KPT_CATALOG_DEMO_DIR` (default ~/.cache/kpt-catalog/demo).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from world.binaries import BuildError
from world.controlplane import ControlPlaneError, stop_recorded
from world.session import ROOT, World

STACK = "demo"
DEMO_DIR = Path(os.environ.get("KPT_CATALOG_DEMO_DIR", "~/.cache/kpt-catalog/demo")).expanduser()
STACK_FILE = ROOT / f"Pulumi.{STACK}.yaml"
# Made-up OAuth client credentials: the operator stand-in only needs them to exist.
DEMO_SECRETS = {
    "tailscaleOauthClientId": "demo-client-id",
    "tailscaleOauthClientSecret": "demo-client-secret",
}


def _say(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)


def _make(env: dict[str, str], *args: str) -> int:
    return subprocess.call(["make", "--no-print-directory", *args], cwd=ROOT, env=env)


def _env(world: World) -> dict[str, str]:
    env = world.env()
    env.pop("PULUMI_CONFIG_PASSPHRASE", None)
    env["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(DEMO_DIR / "passphrase")
    env["STACK"] = STACK
    return env


def demo_up() -> int:
    if (DEMO_DIR / "pids").exists():
        _say(f"a demo is already running (its files: {DEMO_DIR}); `make demo-down` first")
        return 2
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    _say("finding or building the world's binaries (the first build takes a while)")
    try:
        world = World(DEMO_DIR, detach=True)
        _say(f"starting a control plane in {DEMO_DIR}")
        world.start()
    except (BuildError, ControlPlaneError) as error:
        _say(str(error))
        return 1
    passphrase = DEMO_DIR / "passphrase"
    passphrase.write_text(world.passphrase)
    passphrase.chmod(0o600)
    config = {
        "kpt-catalog:kubeconfig": str(world.kubeconfig),
        "kpt-catalog:context": world.context,
        "kpt-catalog:catalogDir": "examples/catalog",
    }
    STACK_FILE.write_text(
        "# The demo stack (make demo): the example catalog on a local control plane.\n"
        + "config:\n"
        + "".join(f"  {key}: {json.dumps(value)}\n" for key, value in config.items())
    )
    env = _env(world)
    for key, value in DEMO_SECRETS.items():
        status = _config_secret(env, key, value)
        if status != 0:
            return status
    _say("deploying the example catalog: make up")
    status = _make(env, "up", "PULUMI_ARGS=--yes")
    _say("make status")
    _make(env, "status")
    print(
        "\nThe cluster keeps running. Point your shell at it with:\n"
        '  eval "$(venv/bin/python -m world env)"\n'
        "then try make diff STACK=demo, make status STACK=demo, kubectl get pods -A.\n"
        "Roll it back and stop it with: make demo-down",
        file=sys.stderr,
    )
    return status


def _config_secret(env: dict[str, str], key: str, value: str) -> int:
    """`pulumi config set --secret`, the value on stdin (never on a command line)."""
    return subprocess.run(
        ["sh", "kpt_catalog/pulumi-stack.sh", "config", "set", "--secret", f"kpt-catalog:{key}"],
        cwd=ROOT,
        env=env,
        input=value,
        text=True,
        check=False,
    ).returncode


def demo_down() -> int:
    if not (DEMO_DIR / "pids").exists():
        _say("no demo is running")
        return 0
    world = World(DEMO_DIR, detach=True)
    world.passphrase = (DEMO_DIR / "passphrase").read_text()
    _say("rolling the catalog back: make destroy-all")
    status = _make(_env(world), "destroy-all", "PULUMI_ARGS=--yes")
    _say("stopping: " + ", ".join(stop_recorded(DEMO_DIR)))
    STACK_FILE.unlink(missing_ok=True)
    return status


def env_exports() -> int:
    world = World(DEMO_DIR, detach=True)
    for key in (
        "PATH",
        "KUBECONFIG",
        "PULUMI_BACKEND_URL",
        "PULUMI_SKIP_UPDATE_CHECK",
        "PULUMI_HOME",
    ):
        print(f"export {key}={shlex.quote(world.env()[key])}")
    print(f"export PULUMI_CONFIG_PASSPHRASE_FILE={shlex.quote(str(DEMO_DIR / 'passphrase'))}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m world", description=__doc__)
    parser.add_argument("command", choices=["demo-up", "demo-down", "env"])
    args = parser.parse_args(argv)
    return {"demo-up": demo_up, "demo-down": demo_down, "env": env_exports}[args.command]()


if __name__ == "__main__":
    sys.exit(main())
