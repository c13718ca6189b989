"""The sub-commands (``apply``, ``destroy``, ``wait``, ``status``, ``inventory``, ``restart``)
and the entry point. Every run ends with a one-line reason on failure and the result line,
whatever happens: a malformed environment exits 2 before anything starts, a failed step exits 1,
and no traceback ever escapes (an unexpected error is reported by its type and message on one
line)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from types import FrameType

from components.step import contract, kpt, logs, prune, restart, waits
from components.step.contract import (
    ENV_APPLY_TIMEOUT,
    ENV_DESTROY_TIMEOUT,
    ENV_PACKAGE,
    ENV_PHASE,
    ENV_RECONCILE_TIMEOUT,
    ENV_SERVER_SIDE,
    ENV_WAITS,
    ENV_WORKLOADS,
    EXIT_BAD_ENV,
    EXIT_FAILED,
    EXIT_OK,
    STEP_SCRIPT,
    SUBCOMMAND_APPLY,
    SUBCOMMAND_DESTROY,
    SUBCOMMAND_INVENTORY,
    SUBCOMMAND_RESTART,
    SUBCOMMAND_STATUS,
    SUBCOMMAND_WAIT,
    SUBCOMMANDS,
    EnvError,
    result_line,
)
from components.step.errors import StepError, StepInterruptedError
from components.step.process import die_with_parent, find_tool

__all__ = [
    "main",
    "run_apply",
    "run_destroy",
    "run_inventory",
    "run_restart",
    "run_status",
    "run_wait",
]

Execute = Callable[[], dict[str, object]]


def _apply(env: Mapping[str, str]) -> Execute:
    package = contract.require(env, ENV_PACKAGE, "the package name")
    directory = contract.absolute_dir(env)
    reconcile = contract.seconds(env, ENV_RECONCILE_TIMEOUT)
    deadline = contract.seconds(env, ENV_APPLY_TIMEOUT)
    server_side = contract.require(env, ENV_SERVER_SIDE, "true or false")
    if server_side not in ("true", "false"):
        raise EnvError(f"{ENV_SERVER_SIDE} must be true or false, got {server_side!r}")
    cluster = contract.cluster(env)
    allow_prune = prune.allowed_prunes(env)
    policy = contract.inventory_policy(env)
    return lambda: dict(
        kpt.apply(
            package,
            directory,
            reconcile,
            deadline,
            server_side == "true",
            cluster,
            allow_prune=allow_prune,
            inventory_policy=policy,
        )
    )


def _destroy(env: Mapping[str, str]) -> Execute:
    package = contract.require(env, ENV_PACKAGE, "the package name")
    inventory = contract.inventory(env)
    deadline = contract.seconds(env, ENV_DESTROY_TIMEOUT)
    cluster = contract.cluster(env)
    return lambda: {"objects": kpt.destroy(package, inventory, deadline, cluster)}


def _inventory(env: Mapping[str, str]) -> Execute:
    """What the package's rollback will need, checked; nothing on the cluster is touched."""
    package = contract.require(env, ENV_PACKAGE, "the package name")
    inventory = contract.inventory(env)
    contract.seconds(env, ENV_DESTROY_TIMEOUT)
    contract.cluster(env)

    def execute() -> dict[str, object]:
        logs.say(package, f"rollback recorded: kpt live destroy of {inventory}")
        return {"inventory": f"{inventory.namespace}/{inventory.name}"}

    return execute


def _wait(env: Mapping[str, str]) -> Execute:
    package = contract.require(env, ENV_PACKAGE, "the package name")
    phase = contract.phase(env)
    gates = contract.parse_waits(contract.require(env, ENV_WAITS, "a JSON list of waits"))
    cluster = contract.cluster(env)
    return lambda: {"reports": waits.run_waits(package, phase, gates, cluster)}


def _restart(env: Mapping[str, str]) -> Execute:
    package = contract.require(env, ENV_PACKAGE, "the package name")
    workloads = contract.parse_workloads(
        contract.require(env, ENV_WORKLOADS, "a JSON list of workloads")
    )
    timeout = contract.seconds(env, ENV_RECONCILE_TIMEOUT)
    cluster = contract.cluster(env)
    return lambda: {"restarted": restart.restart_workloads(package, workloads, timeout, cluster)}


def _status(env: Mapping[str, str]) -> Execute:
    package = contract.require(env, ENV_PACKAGE, "the package name")
    directory = contract.absolute_dir(env)
    reconcile = contract.seconds(env, ENV_RECONCILE_TIMEOUT)
    gates = contract.parse_waits(env[ENV_WAITS]) if env.get(ENV_WAITS, "").strip() else ()
    cluster = contract.cluster(env)

    def execute() -> dict[str, object]:
        if gates:
            find_tool("kubectl", "the status waits")  # before kpt starts, not after
        current = kpt.check_status(package, directory, reconcile, cluster)
        reports = waits.run_waits(package, "status", gates, cluster)
        logs.say(package, f"healthy: {current} object(s) Current, {len(gates)} wait(s) met")
        return {"objects": current, "reports": reports}

    return execute


def _finish(package: str, payload: Mapping[str, object], code: int) -> int:
    line = result_line(payload)
    print(logs.bounded(line), flush=True)
    logs.close(f"{line} (exit {code})")
    return code


def _run(
    subcommand: str, env: Mapping[str, str], prepare: Callable[[Mapping[str, str]], Execute]
) -> int:
    package = env.get(ENV_PACKAGE, "").strip() or "?"
    step = env.get(ENV_PHASE, "") if subcommand == SUBCOMMAND_WAIT else subcommand
    failed = {"package": package, "step": step, "ok": False}
    try:
        problem = logs.open_log(env, f"kptstep {subcommand}")
        if problem:
            logs.say(package, problem)
        try:
            execute = prepare(env)
        except EnvError as exc:
            logs.say(package, f"{subcommand}: malformed environment: {exc}")
            return _finish(package, {**failed, "failure": "malformed environment"}, EXIT_BAD_ENV)
        result = execute()
    except StepError as exc:
        logs.say(package, f"{step} failed ({exc.kind}): {exc}")
        for detail in exc.details:
            logs.say(package, f"  {detail}")
        return _finish(package, {**failed, "failure": exc.kind}, EXIT_FAILED)
    except Exception as exc:  # the contract promises a reason, never a traceback
        logs.say(package, f"{step} failed (internal error): {type(exc).__name__}: {exc}")
        return _finish(package, {**failed, "failure": "internal error"}, EXIT_FAILED)
    return _finish(package, {"package": package, "step": step, **result, "ok": True}, EXIT_OK)


def run_apply(env: Mapping[str, str]) -> int:
    """``kpt live apply`` the package, then ``kpt live status`` until every object is Current."""
    return _run(SUBCOMMAND_APPLY, env, _apply)


def run_destroy(env: Mapping[str, str]) -> int:
    """``kpt live destroy`` everything the package's inventory tracks in the cluster."""
    return _run(SUBCOMMAND_DESTROY, env, _destroy)


def run_inventory(env: Mapping[str, str]) -> int:
    """Check what the rollback needs (the delete of ``<package>-inventory``); touch nothing."""
    return _run(SUBCOMMAND_INVENTORY, env, _inventory)


def run_wait(env: Mapping[str, str]) -> int:
    """Run the package's waits of one phase, in order, and report what they asked for."""
    return _run(SUBCOMMAND_WAIT, env, _wait)


def run_restart(env: Mapping[str, str]) -> int:
    """Restart the workloads that use a package's Secrets (the update of ``<package>-restart``)."""
    return _run(SUBCOMMAND_RESTART, env, _restart)


def run_status(env: Mapping[str, str]) -> int:
    """Check without changing anything: every object Current, then the waits if given."""
    return _run(SUBCOMMAND_STATUS, env, _status)


_RUNNERS: dict[str, Callable[[Mapping[str, str]], int]] = {
    SUBCOMMAND_APPLY: run_apply,
    SUBCOMMAND_DESTROY: run_destroy,
    SUBCOMMAND_WAIT: run_wait,
    SUBCOMMAND_STATUS: run_status,
    SUBCOMMAND_INVENTORY: run_inventory,
    SUBCOMMAND_RESTART: run_restart,
}
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
_interrupted = False


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    """Turn a stop signal into StepInterruptedError; run_process forwards it to the group."""
    global _interrupted
    if not _interrupted:  # a second signal must not cut the group's shutdown short
        _interrupted = True
        raise StepInterruptedError(signum)


def main(argv: Sequence[str] | None = None, parent: int | None = None) -> int:
    """Entry point: ``kptstep.py <sub-command>`` with the contract's environment. ``parent``
    is the pid of the shell that started the step, read first thing by the entry file."""
    if parent is not None:
        die_with_parent(parent)
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] not in _RUNNERS:
        print(f"usage: python3 {STEP_SCRIPT} {'|'.join(SUBCOMMANDS)}", file=sys.stderr)
        print(result_line({"ok": False, "failure": "usage"}), flush=True)
        return EXIT_BAD_ENV
    for signum in _FORWARDED:
        signal.signal(signum, _on_signal)
    return _RUNNERS[args[0]](os.environ)
