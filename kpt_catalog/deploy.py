"""`kpt-catalog up`, `preview`, `reapply`, `destroy` and `destroy-all`: the Pulumi engine, run
through `kpt_catalog/pulumi-stack.sh` (state backend, passphrase, stack selection), after every
check that can be made without it, so that a missing tool, a configuration problem or a cluster
that does not answer is said in a second with its own exit code instead of after the engine's
start-up.

Whatever the outcome, `up`, `reapply` and `destroy` end with a table of what happened to each
package in this run (kpt_catalog/summary.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from components.config import ConfigError, parse_config
from kpt_catalog import clusterops, exits, summary
from kpt_catalog.output import Printer
from kpt_catalog.stackfile import ROOT, check_package, load_stack_catalog, stack_config_values

__all__ = ["TOOLS", "WRAPPER_REFUSED", "main", "missing_tools"]

WRAPPER = ROOT / "kpt_catalog" / "pulumi-stack.sh"
WRAPPER_REFUSED = 78
"""What pulumi-stack.sh exits with when it refuses to run pulumi (sysexits' EX_CONFIG): a
missing passphrase, or a stack it cannot read. Pulumi itself never exits with it."""
TOOLS = (
    ("pulumi", "curl -fsSL https://get.pulumi.com | sh  (https://www.pulumi.com/docs/install/)"),
    ("kpt", "https://github.com/kptdev/kpt/releases (1.0.0-beta.56 is tested)"),
    ("kubectl", "https://kubernetes.io/docs/tasks/tools/#kubectl"),
)
_COMMANDS = ("up", "preview", "reapply", "destroy", "destroy-all")
# The probe before the engine starts: as long as `kpt-catalog status` gives it.
_PROBE_SECONDS = float(clusterops.PROBE_SECONDS)


def missing_tools() -> list[str]:
    """One line per tool the engine's run needs and PATH lacks, with how to install it."""
    return [
        f"{name} is not on PATH; install it: {how}" for name, how in TOOLS if not shutil.which(name)
    ]


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"kpt-catalog {command}",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Other arguments go to pulumi as given, e.g. --yes, --refresh, --target URN.",
    )
    parser.add_argument("--stack", default="dev", help="the stack (Pulumi.<stack>.yaml)")
    if command == "reapply":
        parser.add_argument("--package", required=True, help="the package to re-apply")
    if command == "preview":
        parser.add_argument(
            "--drift", action="store_true", help="diff every package's objects, not only changing"
        )
    return parser


def _wrapper(stack: str, args: Sequence[str], *, stdout: int | None = None) -> int:
    """pulumi-stack.sh with `args`; its exit status (an interrupt is INTERRUPTED)."""
    env = {**os.environ, "STACK": stack}
    # Ctrl-C reaches pulumi itself (same process group), which stops cleanly; this waits.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        done = subprocess.run(
            ["sh", str(WRAPPER), *args], cwd=ROOT, env=env, stdout=stdout, check=False
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    return exits.INTERRUPTED if done.returncode in (130, -signal.SIGINT) else done.returncode


def _outcome(status: int) -> int:
    if status == 0:
        return exits.OK
    if status == WRAPPER_REFUSED:
        return exits.CONFIG
    if status == exits.INTERRUPTED:
        return exits.INTERRUPTED
    return exits.FAILED


def _check_before(command: str, stack: str, out: Printer) -> tuple[int, list[str]]:
    """Everything checked before the engine starts: (exit code, the stack's package names).
    `destroy` and `destroy-all` need no catalog (the engine works from its state), so only a
    cluster they can reach."""
    missing = missing_tools()
    if missing:
        for line in missing:
            print(f"kpt-catalog {command}: {line}", file=sys.stderr)
        return exits.CONFIG, []
    try:
        if command.startswith("destroy"):
            values, _ = stack_config_values(stack)
            config = parse_config(values, stack=stack, base_dir=ROOT, kubeconfig_required=False)
            names = [package.name for package in config.packages]
        else:
            catalog = load_stack_catalog(stack)
            config, names = catalog.config, [p.spec.name for p in catalog.packages]
            for warning in catalog.warnings:
                print(f"warning: {warning}", file=sys.stderr)
    except ConfigError as error:
        if not command.startswith("destroy") or error.partial is None:
            print(error, file=sys.stderr)
            return exits.CONFIG, []
        config = error.partial  # a broken graph must not stop a rollback from the state
        names = [package.name for package in config.packages]
    try:
        cluster = clusterops.connect(stack, config, time.monotonic() + _PROBE_SECONDS, out)
    except clusterops.UnusableClusterError as error:
        print(error, file=sys.stderr)
        return exits.CONFIG, []
    if cluster is None:
        return exits.UNREACHABLE, []
    return exits.OK, names


def _up_like(stack: str, pulumi_args: Sequence[str], names: Sequence[str], command: str) -> int:
    since = datetime.now(UTC)
    # `destroy` keeps the protected packages (kube-vip): only `destroy-all` removes them.
    pulumi_command = ["destroy", "--exclude-protected"] if command == "destroy" else [command]
    status = _outcome(_wrapper(stack, [*pulumi_command, *pulumi_args]))
    out = Printer()
    runs = summary.read_runs(stack, names, since, os.environ)
    if any(run.events for run in runs):
        out.line("")
        summary.render_timeline(runs, out)
    if any(run.steps for run in runs) or status != exits.OK:
        summary.render_table(runs, out)
    verdict = {
        exits.OK: f"kpt-catalog {command}: done",
        exits.CONFIG: f"kpt-catalog {command}: refused (above: why, and what to set)",
        exits.INTERRUPTED: f"kpt-catalog {command}: interrupted",
    }.get(status, f"kpt-catalog {command}: FAILED (pulumi's errors above; the logs named)")
    out.line(out.paint(verdict, "green" if status == exits.OK else "red"))
    return status


def _preview(stack: str, pulumi_args: Sequence[str], drift: bool) -> int:
    """Pulumi's diff, then the objects of each package it changes, from the cluster's dry run.
    The second preview's JSON goes to a temporary file: a failed preview fails the command with
    the errors it holds instead of being hidden behind the diff's status."""
    status = _outcome(_wrapper(stack, ["preview", "--diff", *pulumi_args]))
    if status != exits.OK:
        return status
    from kpt_catalog.diff import command as diff_command  # only preview needs it

    with tempfile.NamedTemporaryFile("w+", suffix=".json") as digest:
        status = _outcome(
            _wrapper(stack, ["preview", "--json", *pulumi_args], stdout=digest.fileno())
        )
        if status not in (exits.OK, exits.FAILED):
            return status
        argv = ["--stack", stack, "--after-preview", digest.name, *(["--drift"] if drift else [])]
        if status == exits.FAILED:
            diff_command.main(argv)  # says which errors the preview printed
            print("kpt-catalog preview: pulumi preview failed", file=sys.stderr)
            return exits.FAILED
        return diff_command.main(argv)


def main(command: str, argv: Sequence[str]) -> int:
    """Run `kpt-catalog <command>` (one of up, preview, reapply, destroy, destroy-all)."""
    if command not in _COMMANDS:
        raise ValueError(command)
    args, pulumi_args = _parser(command).parse_known_args(argv)
    stack = args.stack
    if command == "reapply":
        problem = check_package(stack, args.package)
        if problem:
            print(problem, file=sys.stderr)
            return exits.CONFIG
    status, names = _check_before(command, stack, Printer())
    if status != exits.OK:
        return status
    if command == "preview":
        return _preview(stack, pulumi_args, args.drift)
    if command == "reapply":
        # A new token in kpt-catalog:reapply.<package> (a UTC timestamp) is an update of that
        # package's apply and gates only; the engine previews it and asks. The token stays: the
        # next up is a no-op.
        token = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        key = f"kpt-catalog:reapply.{args.package}"
        status = _outcome(_wrapper(stack, ["config", "set", "--path", key, token]))
        if status != exits.OK:
            return status
        command = "up"
    return _up_like(stack, pulumi_args, names, command)


def set_secret(stack: str, key: str) -> int:
    """`pulumi config set --secret kpt-catalog:<key>`, the value read by pulumi from this
    process's stdin: never on a command line, in a log or on the screen."""
    if not key.replace("-", "").replace("_", "").replace(".", "").isalnum():
        print(f"stack set-secret: {key!r} is not a config key", file=sys.stderr)
        return exits.CONFIG
    missing = [line for line in missing_tools() if line.startswith("pulumi ")]
    if missing:
        print(f"kpt-catalog stack set-secret: {missing[0]}", file=sys.stderr)
        return exits.CONFIG
    return _outcome(_wrapper(stack, ["config", "set", "--secret", f"kpt-catalog:{key}"]))
