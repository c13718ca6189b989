#!/usr/bin/env python3
"""Run one step of the catalog for one kpt package: apply, destroy, wait or status.

Pulumi's Commands run ``python3 components/kptstep.py <sub-command>`` with the environment that
docs/step-contract.md describes; that file is the interface and this module follows it. Standard
library only: the command provider may run this outside the project's virtualenv.

kpt's exit code alone does not prove success (skipped objects and an expired status timeout exit
0), so every step reads kpt's JSON events and fails when any object did not succeed. Every kpt and
kubectl process runs in its own process group under a hard deadline of ours, because kpt can wait
forever (destroy has no timeout at all in beta.56).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

__all__ = [
    "ENV_APPLY_TIMEOUT",
    "ENV_CONTEXT",
    "ENV_DESTROY_TIMEOUT",
    "ENV_DIGEST",
    "ENV_DIR",
    "ENV_GENERATION",
    "ENV_INVENTORY_ID",
    "ENV_INVENTORY_NAME",
    "ENV_INVENTORY_NAMESPACE",
    "ENV_KUBECONFIG",
    "ENV_PACKAGE",
    "ENV_PHASE",
    "ENV_RECONCILE_TIMEOUT",
    "ENV_SERVER_SIDE",
    "ENV_VARS",
    "ENV_WAITS",
    "EXIT_BAD_ENV",
    "EXIT_FAILED",
    "EXIT_OK",
    "PHASES",
    "RESULT_PREFIX",
    "STEP_SCRIPT",
    "SUBCOMMANDS",
    "SUBCOMMAND_APPLY",
    "SUBCOMMAND_DESTROY",
    "SUBCOMMAND_STATUS",
    "SUBCOMMAND_WAIT",
    "ActuationFailedError",
    "Cluster",
    "ClusterUnreachableError",
    "Completed",
    "DeadlineExceededError",
    "DeleteFailedError",
    "EnvError",
    "Event",
    "Inventory",
    "InventoryEmptyError",
    "NotCurrentError",
    "ObjectRef",
    "ObjectResult",
    "ObjectsSkippedError",
    "PackageDirMissingError",
    "ReconcileTimeoutError",
    "StepError",
    "StepInterruptedError",
    "Summary",
    "ToolMissingError",
    "Wait",
    "WaitFailedError",
    "classify",
    "format_progress",
    "inventory_yaml",
    "main",
    "meaningful_tail",
    "parse_event",
    "parse_result",
    "parse_waits",
    "result_line",
    "run_apply",
    "run_destroy",
    "run_process",
    "run_status",
    "run_wait",
    "step_command",
    "summarize",
]

ENV_PACKAGE = "KPT_CATALOG_PACKAGE"
ENV_DIR = "KPT_CATALOG_DIR"
ENV_RECONCILE_TIMEOUT = "KPT_CATALOG_RECONCILE_TIMEOUT"
ENV_APPLY_TIMEOUT = "KPT_CATALOG_APPLY_TIMEOUT"
ENV_DESTROY_TIMEOUT = "KPT_CATALOG_DESTROY_TIMEOUT"
ENV_SERVER_SIDE = "KPT_CATALOG_SERVER_SIDE"
ENV_INVENTORY_NAME = "KPT_CATALOG_INVENTORY_NAME"
ENV_INVENTORY_NAMESPACE = "KPT_CATALOG_INVENTORY_NAMESPACE"
ENV_INVENTORY_ID = "KPT_CATALOG_INVENTORY_ID"
ENV_KUBECONFIG = "KPT_CATALOG_KUBECONFIG"
ENV_CONTEXT = "KPT_CATALOG_CONTEXT"
ENV_DIGEST = "KPT_CATALOG_DIGEST"
ENV_GENERATION = "KPT_CATALOG_GENERATION"
ENV_PHASE = "KPT_CATALOG_PHASE"
ENV_WAITS = "KPT_CATALOG_WAITS"
ENV_VARS = (
    ENV_PACKAGE,
    ENV_DIR,
    ENV_RECONCILE_TIMEOUT,
    ENV_APPLY_TIMEOUT,
    ENV_DESTROY_TIMEOUT,
    ENV_SERVER_SIDE,
    ENV_INVENTORY_NAME,
    ENV_INVENTORY_NAMESPACE,
    ENV_INVENTORY_ID,
    ENV_KUBECONFIG,
    ENV_CONTEXT,
    ENV_DIGEST,
    ENV_GENERATION,
    ENV_PHASE,
    ENV_WAITS,
)

SUBCOMMAND_APPLY = "apply"
SUBCOMMAND_DESTROY = "destroy"
SUBCOMMAND_WAIT = "wait"
SUBCOMMAND_STATUS = "status"
SUBCOMMANDS = (SUBCOMMAND_APPLY, SUBCOMMAND_DESTROY, SUBCOMMAND_WAIT, SUBCOMMAND_STATUS)
PHASES = ("wait-before", "wait-after")
STEP_SCRIPT = "components/kptstep.py"
RESULT_PREFIX = "kpt-catalog-result: "
EXIT_OK, EXIT_FAILED, EXIT_BAD_ENV = 0, 1, 2

DEADLINE_MARGIN = 30  # seconds a kpt status or kubectl wait may run past its own timeout
REPORT_DEADLINE = 60  # seconds for one `kubectl get -o jsonpath`
KILL_GRACE_SECONDS = 3.0  # between SIGTERM and SIGKILL to a process group
PIPE_DRAIN_SECONDS = 5.0  # to read what is left in the pipes once the process has exited
STDERR_KEPT_LINES = 400
FAILED_STATUSES = ("Failed", "Skipped", "Timeout")
_KLOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\] ")


def step_command(subcommand: str) -> str:
    """The fixed command string a Pulumi Command runs for ``subcommand``."""
    if subcommand not in SUBCOMMANDS:
        raise ValueError(f"unknown sub-command {subcommand!r}; expected one of {SUBCOMMANDS}")
    return f"python3 {STEP_SCRIPT} {subcommand}"


class EnvError(Exception):
    """A step variable is missing or malformed (exit status 2)."""


class StepError(Exception):
    """The step did not succeed (exit status 1); ``details`` are the lines under the headline."""

    kind = "step failed"

    def __init__(self, message: str, details: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.details = tuple(details)


class PackageDirMissingError(StepError):
    """The package directory handed to apply or status does not exist."""

    kind = "package directory missing"


class ToolMissingError(StepError):
    """kpt or kubectl is not on PATH."""

    kind = "tool not found"


class DeadlineExceededError(StepError):
    """A kpt or kubectl process outlived its hard deadline and its process group was killed."""

    kind = "hard deadline exceeded"


class StepInterruptedError(StepError):
    """kptstep itself received SIGTERM or SIGINT and stopped the running process group."""

    kind = "interrupted"

    def __init__(self, signum: int, stopped: str = "") -> None:
        name = signal.Signals(signum).name
        super().__init__(f"received {name}" + (f"; stopped {stopped}" if stopped else ""))
        self.signum = signum


class ClusterUnreachableError(StepError):
    """kpt exited 1: no cluster, bad kubeconfig or context, or invalid input."""

    kind = "cluster unreachable or misconfigured"


class ActuationFailedError(StepError):
    """kpt failed to apply or prune an object, or an object failed to reconcile (exit 3)."""

    kind = "apply or reconcile failure"


class DeleteFailedError(ActuationFailedError):
    """kpt live destroy failed to delete an object (exit 3)."""

    kind = "delete failure"


class ObjectsSkippedError(StepError):
    """kpt skipped objects (inventory policy, failed dependency) and still exited 0."""

    kind = "objects skipped"


class ReconcileTimeoutError(StepError):
    """Objects did not reconcile before kpt's reconcile timeout."""

    kind = "reconcile timeout"


class NotCurrentError(StepError):
    """kpt live status ended with objects that are not Current."""

    kind = "objects not Current"


class InventoryEmptyError(StepError):
    """kpt live status found no inventory in the cluster, or no objects in it."""

    kind = "no objects in the inventory"


class WaitFailedError(StepError):
    """A kubectl wait, rollout status or report did not succeed."""

    kind = "wait failed"


@dataclass(frozen=True)
class ObjectRef:
    """One Kubernetes object as kpt names it."""

    group: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        kind = f"{self.group}/{self.kind}" if self.group else self.kind
        return f"{kind} {self.namespace}/{self.name}" if self.namespace else f"{kind} {self.name}"


@dataclass(frozen=True)
class Event:
    """One line of kpt's JSON output, in the current shape whatever release printed it."""

    type: str  # apply, prune, delete, wait, status, group, summary, error, validation
    status: str = ""  # Successful/Pending/Skipped/Failed/Timeout; Current/InProgress/...
    obj: ObjectRef | None = None
    objects: tuple[ObjectRef, ...] = ()  # validation events name several objects
    error: str = ""
    message: str = ""
    action: str = ""  # group and summary: apply, prune, delete or wait
    count: int = 0
    successful: int = 0
    skipped: int = 0
    failed: int = 0
    timeout: int = 0


def _text(data: Mapping[str, object], key: str) -> str:
    value = data.get(key)
    return "" if value is None else str(value)


def _number(data: Mapping[str, object], key: str) -> int:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _object(data: Mapping[str, object]) -> ObjectRef:
    return ObjectRef(
        _text(data, "group"), _text(data, "kind"), _text(data, "namespace"), _text(data, "name")
    )


# Older cli-utils printed "eventType" with an "operation" instead of a "status".
_OLD_ACTIONS = {"resourceApplied": "apply", "resourcePruned": "prune", "resourceDeleted": "delete"}
_OLD_WAIT_STATUS = {
    "Reconciled": "Successful",
    "Pending": "Pending",
    "Skipped": "Skipped",
    "Timeout": "Timeout",
    "Failed": "Failed",
}
_OLD_SUCCESS_COUNT = {"prune": "pruned", "delete": "deleted", "wait": "reconciled"}


def _parse_old(data: Mapping[str, object], event_type: str) -> Event | None:
    kind = _text(data, "type")
    error = _text(data, "error")
    operation = _text(data, "operation")
    if event_type in _OLD_ACTIONS:
        # A skip carried an error (or a *Skipped operation) on an otherwise successful event.
        was_skipped = bool(error) or operation.endswith("Skipped")
        return Event(
            kind or _OLD_ACTIONS[event_type],
            "Skipped" if was_skipped else "Successful",
            _object(data),
            error=error,
        )
    if event_type == "resourceFailed":
        return Event(kind or "apply", "Failed", _object(data), error=error)
    if event_type == "resourceReconciled":
        return Event("wait", _OLD_WAIT_STATUS.get(operation, operation), _object(data))
    if event_type == "resourceStatus":
        return Event("status", _text(data, "status"), _object(data), message=_text(data, "message"))
    if event_type == "completed":
        failed = _number(data, "failed") or _number(data, "failedCount")
        if kind == "apply":
            successful = _number(data, "count") - failed
        else:
            successful = _number(data, _OLD_SUCCESS_COUNT.get(kind, "successful"))
        skipped, timeout = _number(data, "skipped"), _number(data, "timeout")
        return Event(
            "summary",
            action=kind,
            successful=successful,
            skipped=skipped,
            failed=failed,
            timeout=timeout,
            count=successful + skipped + failed + timeout,
        )
    return None


def parse_event(line: str) -> Event | None:
    """Parse one stdout line of ``kpt live ... --output=json``; None for anything else."""
    line = line.strip()
    if not line.startswith("{"):
        return None  # "[WARN] ...", "no resources found in the inventory", blank lines
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    event_type = _text(data, "eventType")
    if event_type and event_type not in ("error", "validation"):
        return _parse_old(data, event_type)
    kind = _text(data, "type") or event_type or ("status" if "kind" in data else "")
    if kind in ("apply", "prune", "delete", "wait", "status"):
        return Event(
            kind,
            _text(data, "status"),
            _object(data),
            error=_text(data, "error"),
            message=_text(data, "message"),
        )
    if kind in ("group", "summary"):
        return Event(
            kind,
            _text(data, "status"),
            action=_text(data, "action").lower(),
            count=_number(data, "count"),
            successful=_number(data, "successful"),
            skipped=_number(data, "skipped"),
            failed=_number(data, "failed"),
            timeout=_number(data, "timeout"),
        )
    if kind == "error":
        return Event("error", "Failed", error=_text(data, "error"))
    if kind == "validation":
        listed = data.get("objects")
        objects = (
            tuple(_object(o) for o in listed if isinstance(o, dict))
            if isinstance(listed, list)
            else ()
        )
        return Event("validation", "Failed", objects=objects, error=_text(data, "error"))
    return None


def format_progress(event: Event) -> str | None:
    """The progress line for one event, or None for events that only frame others."""
    if event.type == "error":
        return f"kpt error: {event.error}"
    if event.type == "validation":
        names = ", ".join(str(o) for o in event.objects)
        return f"validation Failed  {names}: {event.error}"
    if event.type == "summary":
        timeout = f", {event.timeout} timed out" if event.action == "wait" else ""
        return (
            f"{event.action} result: {event.successful}/{event.count} successful, "
            f"{event.skipped} skipped, {event.failed} failed{timeout}"
        )
    if event.obj is None:
        return None
    detail = event.error or (event.message if event.type == "status" else "")
    return f"{event.type} {event.status}  {event.obj}" + (f": {detail}" if detail else "")


@dataclass(frozen=True)
class ObjectResult:
    """The last thing kpt said about one object in one action (or its last status)."""

    action: str
    obj: ObjectRef
    status: str
    detail: str = ""  # kpt's error text, or the status message

    def __str__(self) -> str:
        return f"{self.action} {self.status}  {self.obj}" + (
            f": {self.detail}" if self.detail else ""
        )


@dataclass(frozen=True)
class Summary:
    """What one kpt run reported, reduced to what decides success."""

    results: tuple[ObjectResult, ...]  # apply/prune/delete/wait, last per object and action
    statuses: tuple[ObjectResult, ...]  # status events, last per object
    errors: tuple[str, ...]  # fatal errors: "error" lines and validation failures
    successful: Mapping[str, int]  # per action: kpt's summary count, else counted events
    timeouts: int
    text: tuple[str, ...]  # stdout lines that were not JSON

    @property
    def problems(self) -> tuple[ObjectResult, ...]:
        """Objects that were Failed, Skipped or Timeout."""
        return tuple(r for r in self.results if r.status in FAILED_STATUSES)

    def with_status(self, status: str) -> tuple[ObjectResult, ...]:
        """Results whose last status is ``status``."""
        return tuple(r for r in self.results if r.status == status)


def summarize(events: Iterable[Event], text: Iterable[str] = ()) -> Summary:
    """Reduce a kpt event stream to a Summary; the last event per object wins."""
    results: dict[tuple[str, ObjectRef], ObjectResult] = {}
    statuses: dict[ObjectRef, ObjectResult] = {}
    errors: list[str] = []
    reported: dict[str, Event] = {}
    for event in events:
        if event.type == "status" and event.obj is not None:
            statuses[event.obj] = ObjectResult("status", event.obj, event.status, event.message)
        elif event.obj is not None:
            results[(event.type, event.obj)] = ObjectResult(
                event.type, event.obj, event.status, event.error
            )
        elif event.type == "validation":
            errors.append(f"validation: {event.error}")
            for obj in event.objects:
                results[("validation", obj)] = ObjectResult(
                    "validation", obj, "Failed", event.error
                )
        elif event.type == "error":
            errors.append(event.error)
        elif event.type == "summary":
            reported[event.action] = event
    counted: dict[str, int] = {}
    for result in results.values():
        if result.status == "Successful":
            counted[result.action] = counted.get(result.action, 0) + 1
    successful = counted | {action: e.successful for action, e in reported.items()}
    timeouts = max(
        sum(1 for r in results.values() if r.status == "Timeout"),
        reported["wait"].timeout if "wait" in reported else 0,
    )
    return Summary(
        tuple(results.values()),
        tuple(statuses.values()),
        tuple(errors),
        successful,
        timeouts,
        tuple(text),
    )


def meaningful_tail(lines: Sequence[str], limit: int = 8) -> list[str]:
    """The last lines of a stderr that are not klog noise (or the last raw ones if all are)."""
    kept = [line for line in lines if line.strip() and not _KLOG_LINE.match(line)]
    return kept[-limit:] if kept else [line for line in lines if line.strip()][-3:]


def classify(action: str, label: str, returncode: int, summary: Summary) -> StepError | None:
    """The failure a kpt run amounts to, or None when every object succeeded.

    ``action`` is "apply" or "destroy", ``label`` the command for messages. Objects that did not
    succeed fail the step whatever kpt's exit code: skipped objects exit 0.
    """
    first_problem: dict[ObjectRef, ObjectResult] = {}
    for problem in summary.problems:  # a failed apply is also a skipped wait: name it once
        first_problem.setdefault(problem.obj, problem)
    details = [
        *(str(p) for p in first_problem.values()),
        *(f"kpt error: {e}" for e in summary.errors),
    ]
    if summary.timeouts and not summary.with_status("Timeout"):
        details.append(f"kpt reported {summary.timeouts} object(s) timed out reconciling")
    failure: type[StepError]
    if returncode == 1:
        failure, what = ClusterUnreachableError, f"{label} exited 1"
    elif summary.timeouts:
        failure = ReconcileTimeoutError
        what = (
            f"{summary.timeouts} object(s) did not reconcile in time ({label} exited {returncode})"
        )
    elif summary.with_status("Failed") or summary.errors or returncode == 3:
        failure = DeleteFailedError if action == "destroy" else ActuationFailedError
        failed = len({r.obj for r in summary.with_status("Failed")})
        what = f"{failed} object(s) failed ({label} exited {returncode})"
    elif summary.with_status("Skipped"):
        skipped = len({r.obj for r in summary.with_status("Skipped")})
        what = f"{label} exited {returncode} but skipped {skipped} object(s)"
        failure = ObjectsSkippedError
    elif returncode != 0:
        failure, what = StepError, f"{label} exited {returncode}"
    else:
        return None
    return failure(what, details)


@dataclass(frozen=True)
class Completed:
    """A kpt or kubectl process that ran to its end within its deadline."""

    returncode: int
    stdout: tuple[str, ...]
    stderr: tuple[str, ...]


def _pump(name: str, stream: IO[str], lines: queue.Queue[tuple[str, str | None]]) -> None:
    try:
        for line in stream:
            lines.put((name, line.rstrip("\r\n")))
    except (OSError, ValueError):
        pass  # the pipe was closed under us: the process group is being killed
    lines.put((name, None))


def _signal_group(pgid: int, signum: int) -> None:
    # ProcessLookupError: the group is gone; PermissionError: macOS, for a group of zombies.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leader_exited(proc: subprocess.Popen[str]) -> bool:
    """Whether the process has exited, without reaping it: while it is an unreaped zombie its
    pid, and so its process-group id, cannot be reused, so killing the group stays safe."""
    if not hasattr(os, "waitid"):
        return proc.poll() is not None
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _stop_group(proc: subprocess.Popen[str], first_signal: int) -> None:
    """Signal the whole group, give it a grace period, then SIGKILL whatever is left."""
    try:
        _signal_group(proc.pid, first_signal)
        give_up = time.monotonic() + KILL_GRACE_SECONDS
        while time.monotonic() < give_up:
            proc.poll()  # reap the leader so that an empty group reads as empty
            if not _group_alive(proc.pid):
                break
            time.sleep(0.05)
    finally:
        if _group_alive(proc.pid):
            _signal_group(proc.pid, signal.SIGKILL)
            # SIGKILL is delivered asynchronously: give the group a moment to be gone. (Where
            # PID 1 does not reap orphans, their zombies keep the group listed; they are dead.)
            settle = time.monotonic() + 1.0
            while _group_alive(proc.pid) and time.monotonic() < settle:
                proc.poll()
                time.sleep(0.05)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=KILL_GRACE_SECONDS)


def run_process(
    argv: Sequence[str],
    *,
    label: str,
    deadline_seconds: int,
    on_stdout: Callable[[str], None] | None = None,
) -> Completed:
    """Run ``argv`` in its own process group, passing each stdout line to ``on_stdout`` as it
    arrives. Past ``deadline_seconds`` the whole group is killed and DeadlineExceededError
    raised; nothing the process started outlives this call."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise ToolMissingError(f"{argv[0]} is not on PATH (needed for {label})") from None
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    stdout: list[str] = []
    stderr: deque[str] = deque(maxlen=STDERR_KEPT_LINES)
    open_streams = 2
    end = time.monotonic() + deadline_seconds
    exited_at: float | None = None
    try:
        for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            assert stream is not None  # noqa: S101 -- both are PIPE above
            threading.Thread(target=_pump, args=(name, stream, lines), daemon=True).start()
        while open_streams:
            now = time.monotonic()
            if now >= end:
                raise DeadlineExceededError(
                    f"{label} exceeded its hard deadline of {deadline_seconds}s and was killed",
                    [f"stderr: {line}" for line in meaningful_tail(stderr)],
                )
            if exited_at is None and _leader_exited(proc):
                exited_at = now
                _signal_group(proc.pid, signal.SIGKILL)  # nothing it started may outlive it
            elif exited_at is not None and now - exited_at > PIPE_DRAIN_SECONDS:
                break
            try:
                name, line = lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                open_streams -= 1
            elif name == "stderr":
                stderr.append(line)
            else:
                stdout.append(line)
                if on_stdout is not None:
                    on_stdout(line)
        return Completed(proc.wait(), tuple(stdout), tuple(stderr))
    except StepInterruptedError as exc:  # forward the signal kptstep received to the group
        _stop_group(proc, exc.signum)
        raise StepInterruptedError(exc.signum, f"{label} and its process group") from None
    except BaseException:
        _stop_group(proc, signal.SIGTERM)
        raise


def _say(package: str, text: str) -> None:
    print(f"[{package}] {text}", file=sys.stderr, flush=True)


def _run_kpt(
    package: str, label: str, argv: Sequence[str], deadline_seconds: int
) -> tuple[Completed, Summary]:
    """Run one kpt command, printing one progress line per event as kpt reports it."""
    events: list[Event] = []
    text: list[str] = []

    def on_line(line: str) -> None:
        event = parse_event(line)
        if event is None:
            if line.strip():
                text.append(line.strip())
                _say(package, f"kpt: {line.strip()}")
            return
        events.append(event)
        progress = format_progress(event)
        if progress is not None:
            _say(package, progress)

    try:
        completed = run_process(
            argv, label=label, deadline_seconds=deadline_seconds, on_stdout=on_line
        )
    except DeadlineExceededError as exc:
        so_far = summarize(events)
        pending = [
            *so_far.with_status("Pending"),
            *(s for s in so_far.statuses if s.status != "Current"),
        ]
        details = [*(f"still {p}" for p in pending), *exc.details]
        raise DeadlineExceededError(str(exc), details) from None
    return completed, summarize(events, text)


def _with_stderr(failure: StepError, completed: Completed, summary: Summary) -> StepError:
    """The failure with kpt's meaningful stderr lines added (those not already shown)."""
    extra = [
        f"stderr: {line}"
        for line in meaningful_tail(completed.stderr)
        if not any(error and error in line for error in summary.errors)
    ]
    return type(failure)(str(failure), [*failure.details, *extra])


@dataclass(frozen=True)
class Cluster:
    """How kpt and kubectl reach the cluster: flags only when a value is given."""

    kubeconfig: str
    context: str

    def flags(self) -> list[str]:
        """``--kubeconfig`` and ``--context`` as kpt and kubectl both spell them."""
        kubeconfig = ["--kubeconfig", self.kubeconfig] if self.kubeconfig else []
        return kubeconfig + (["--context", self.context] if self.context else [])


@dataclass(frozen=True)
class Inventory:
    """A package's ResourceGroup: enough for kpt to find everything it applied."""

    name: str
    namespace: str
    inventory_id: str


@dataclass(frozen=True)
class Wait:
    """One readiness check: ``kubectl wait`` or ``kubectl rollout status``, maybe a report."""

    resource: str
    condition: str  # the contract's "for": "rollout" or a `kubectl wait --for` value
    namespace: str
    selector: str
    timeout: int
    report: str

    @property
    def key(self) -> str:
        """The key of this wait's report: ``namespace/resource``, or ``resource``."""
        return f"{self.namespace}/{self.resource}" if self.namespace else self.resource

    def __str__(self) -> str:
        where = f" in namespace {self.namespace}" if self.namespace else ""
        selector = f" selecting {self.selector}" if self.selector else ""
        return f"{self.resource} for {self.condition}{where}{selector}"


def _require(env: Mapping[str, str], name: str, expected: str) -> str:
    value = env.get(name, "")
    if not value.strip():
        raise EnvError(f"{name} is missing or empty; expected {expected}")
    return value


def _seconds(env: Mapping[str, str], name: str) -> int:
    value = _require(env, name, "a whole number of seconds")
    if not re.fullmatch(r"[0-9]+", value) or int(value) == 0:
        raise EnvError(f"{name} must be a whole number of seconds above 0, got {value!r}")
    return int(value)


def _local_path(value: str) -> str:
    """A path from the environment as written in the stack (`~/...`, relative or absolute), as
    this machine reads it: `~` expanded, a relative path taken from the working directory, which
    is the project directory (Pulumi runs every Command there, and so does `make status`)."""
    return str(Path(value).expanduser().absolute())


def _absolute_dir(env: Mapping[str, str]) -> str:
    return _local_path(_require(env, ENV_DIR, "the package directory"))


def _cluster(env: Mapping[str, str]) -> Cluster:
    kubeconfig = env.get(ENV_KUBECONFIG, "")
    return Cluster(_local_path(kubeconfig) if kubeconfig else "", env.get(ENV_CONTEXT, ""))


def parse_waits(text: str) -> tuple[Wait, ...]:
    """Parse KPT_CATALOG_WAITS (a JSON list of waits, see the contract); raise EnvError."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise EnvError(f"{ENV_WAITS} is not valid JSON ({exc}); expected a list of waits") from None
    if not isinstance(data, list):
        raise EnvError(f"{ENV_WAITS} must be a JSON list of waits, got {type(data).__name__}")
    waits = []
    for index, item in enumerate(data):
        where = f"{ENV_WAITS}[{index}]"
        if not isinstance(item, dict):
            raise EnvError(f"{where} must be an object, got {item!r}")
        strings = {}
        for key in ("resource", "for", "namespace", "selector", "report"):
            value = item.get(key, "")
            if not isinstance(value, str):
                raise EnvError(f"{where}.{key} must be a string, got {value!r}")
            strings[key] = value
        for key in ("resource", "for"):
            if not strings[key] or strings[key].startswith("-"):
                raise EnvError(
                    f"{where}.{key} must be a non-empty string not starting with "
                    f"'-', got {strings[key]!r}"
                )
        timeout = item.get("timeout")
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0:
            raise EnvError(
                f"{where}.timeout must be a whole number of seconds above 0, got {timeout!r}"
            )
        waits.append(
            Wait(
                strings["resource"],
                strings["for"],
                strings["namespace"],
                strings["selector"],
                timeout,
                strings["report"],
            )
        )
    return tuple(waits)


def inventory_yaml(inventory: Inventory) -> str:
    """A resourcegroup.yaml for ``inventory``; JSON strings are valid YAML double-quoted
    scalars, so any value is quoted safely."""
    q = json.dumps
    return (
        "apiVersion: kpt.dev/v1alpha1\n"
        "kind: ResourceGroup\n"
        "metadata:\n"
        f"  name: {q(inventory.name)}\n"
        f"  namespace: {q(inventory.namespace)}\n"
        "  labels:\n"
        f"    cli-utils.sigs.k8s.io/inventory-id: {q(inventory.inventory_id)}\n"
    )


def _check_status(package: str, directory: str, timeout: int, cluster: Cluster) -> int:
    """Run ``kpt live status --poll-until=current``; the number of Current objects, or raise."""
    if not Path(directory).is_dir():
        raise PackageDirMissingError(f"package directory {directory} does not exist ({ENV_DIR})")
    label = "kpt live status"
    argv = [
        "kpt",
        "live",
        "status",
        directory,
        "--output=json",
        "--poll-until=current",
        f"--timeout={timeout}s",
        *cluster.flags(),
    ]
    completed, summary = _run_kpt(package, label, argv, timeout + DEADLINE_MARGIN)
    if completed.returncode != 0:
        failure = classify("status", label, completed.returncode, summary)
        assert failure is not None  # noqa: S101 -- a non-zero exit always classifies
        raise _with_stderr(failure, completed, summary)
    # kpt exits 0 both when the inventory is missing and when its --timeout expired.
    if not summary.statuses:
        found = summary.text[-1] if summary.text else "no status lines"
        raise InventoryEmptyError(
            f"{label} found no objects in {directory} ({found}); "
            "the package's inventory is missing or empty in the cluster"
        )
    not_current = [s for s in summary.statuses if s.status != "Current"]
    if not_current:
        raise NotCurrentError(
            f"{len(not_current)} of {len(summary.statuses)} object(s) not Current after {timeout}s",
            [*(str(s) for s in not_current), *(f"kpt error: {e}" for e in summary.errors)],
        )
    return len(summary.statuses)


def _run_waits(package: str, phase: str, waits: Sequence[Wait], cluster: Cluster) -> dict[str, str]:
    """Run each wait in order; the reports they asked for, keyed by Wait.key."""
    reports: dict[str, str] = {}
    for wait in waits:
        scope = [
            *(["-n", wait.namespace] if wait.namespace else []),
            *(["-l", wait.selector] if wait.selector else []),
            *cluster.flags(),
        ]
        if wait.condition == "rollout":
            verb, argv = "kubectl rollout status", ["kubectl", "rollout", "status", wait.resource]
        else:
            verb = "kubectl wait"
            argv = ["kubectl", "wait", wait.resource, f"--for={wait.condition}"]
        _say(package, f"{phase}: waiting for {wait} (up to {wait.timeout}s)")
        try:
            completed = run_process(
                [*argv, f"--timeout={wait.timeout}s", *scope],
                label=f"{verb} {wait.resource}",
                deadline_seconds=wait.timeout + DEADLINE_MARGIN,
                on_stdout=lambda line: _say(package, f"kubectl: {line}") if line else None,
            )
        except DeadlineExceededError as exc:
            raise DeadlineExceededError(f"{exc} (waiting for {wait})", exc.details) from None
        if completed.returncode != 0:
            raise WaitFailedError(
                f"{wait} ({verb} exited {completed.returncode})",
                [f"kubectl: {line}" for line in meaningful_tail(completed.stderr)],
            )
        if wait.report:
            got = run_process(
                ["kubectl", "get", wait.resource, *scope, "-o", f"jsonpath={wait.report}"],
                label=f"kubectl get {wait.resource}",
                deadline_seconds=REPORT_DEADLINE,
            )
            if got.returncode != 0:
                raise WaitFailedError(
                    f"report {wait.report} of {wait.key} (kubectl get exited {got.returncode})",
                    [f"kubectl: {line}" for line in meaningful_tail(got.stderr)],
                )
            reports[wait.key] = "\n".join(got.stdout).strip()
            _say(package, f"{phase}: {wait.key} {wait.report} = {reports[wait.key]}")
    return reports


def _apply(env: Mapping[str, str]) -> Callable[[], dict[str, object]]:
    package = _require(env, ENV_PACKAGE, "the package name")
    directory = _absolute_dir(env)
    reconcile = _seconds(env, ENV_RECONCILE_TIMEOUT)
    deadline = _seconds(env, ENV_APPLY_TIMEOUT)
    server_side = _require(env, ENV_SERVER_SIDE, "true or false")
    if server_side not in ("true", "false"):
        raise EnvError(f"{ENV_SERVER_SIDE} must be true or false, got {server_side!r}")
    cluster = _cluster(env)

    def execute() -> dict[str, object]:
        if not Path(directory).is_dir():
            raise PackageDirMissingError(
                f"package directory {directory} does not exist ({ENV_DIR})"
            )
        label = "kpt live apply"
        argv = [
            "kpt",
            "live",
            "apply",
            directory,
            "--output=json",
            f"--reconcile-timeout={reconcile}s",
            f"--prune-timeout={reconcile}s",
            *(["--server-side"] if server_side == "true" else []),
            *cluster.flags(),
        ]
        completed, summary = _run_kpt(package, label, argv, deadline)
        failure = classify("apply", label, completed.returncode, summary)
        if failure is not None:
            raise _with_stderr(failure, completed, summary)
        _check_status(package, directory, reconcile, cluster)
        return {"objects": summary.successful.get("apply", 0)}

    return execute


def _destroy(env: Mapping[str, str]) -> Callable[[], dict[str, object]]:
    package = _require(env, ENV_PACKAGE, "the package name")
    inventory = Inventory(
        _require(env, ENV_INVENTORY_NAME, "the package's ResourceGroup name"),
        _require(env, ENV_INVENTORY_NAMESPACE, "the package's ResourceGroup namespace"),
        _require(env, ENV_INVENTORY_ID, "the package's inventory id"),
    )
    deadline = _seconds(env, ENV_DESTROY_TIMEOUT)
    cluster = _cluster(env)

    def execute() -> dict[str, object]:
        # Only the inventory: kpt then deletes everything the cluster-side ResourceGroup
        # tracks, so rollback works after the package directory is gone.
        workdir = tempfile.mkdtemp(prefix="kpt-catalog-destroy-")
        try:
            Path(workdir, "resourcegroup.yaml").write_text(
                inventory_yaml(inventory), encoding="utf-8"
            )
            label = "kpt live destroy"
            argv = ["kpt", "live", "destroy", workdir, "--output=json", *cluster.flags()]
            completed, summary = _run_kpt(package, label, argv, deadline)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        failure = classify("destroy", label, completed.returncode, summary)
        if failure is not None:
            raise _with_stderr(failure, completed, summary)
        return {"objects": summary.successful.get("delete", 0)}

    return execute


def _phase(env: Mapping[str, str]) -> str:
    phase = _require(env, ENV_PHASE, " or ".join(PHASES))
    if phase not in PHASES:
        raise EnvError(f"{ENV_PHASE} must be one of {', '.join(PHASES)}, got {phase!r}")
    return phase


def _wait(env: Mapping[str, str]) -> Callable[[], dict[str, object]]:
    package = _require(env, ENV_PACKAGE, "the package name")
    phase = _phase(env)
    waits = parse_waits(_require(env, ENV_WAITS, "a JSON list of waits"))
    cluster = _cluster(env)
    return lambda: {"reports": _run_waits(package, phase, waits, cluster)}


def _status(env: Mapping[str, str]) -> Callable[[], dict[str, object]]:
    package = _require(env, ENV_PACKAGE, "the package name")
    directory = _absolute_dir(env)
    reconcile = _seconds(env, ENV_RECONCILE_TIMEOUT)
    waits = parse_waits(env[ENV_WAITS]) if env.get(ENV_WAITS, "").strip() else ()
    cluster = _cluster(env)

    def execute() -> dict[str, object]:
        current = _check_status(package, directory, reconcile, cluster)
        reports = _run_waits(package, "status", waits, cluster)
        _say(package, f"healthy: {current} object(s) Current, {len(waits)} wait(s) met")
        return {"objects": current, "reports": reports}

    return execute


def result_line(payload: Mapping[str, object]) -> str:
    """The machine-readable last line of stdout."""
    return RESULT_PREFIX + json.dumps(payload)


def parse_result(stdout: str | None) -> dict[str, object]:
    """The payload of the last result line in a step's stdout; {} when there is none."""
    for line in reversed((stdout or "").splitlines()):
        if line.startswith(RESULT_PREFIX):
            try:
                payload = json.loads(line[len(RESULT_PREFIX) :])
            except json.JSONDecodeError:
                return {}
            return payload if isinstance(payload, dict) else {}
    return {}


def _run(
    subcommand: str,
    env: Mapping[str, str],
    prepare: Callable[[Mapping[str, str]], Callable[[], dict[str, object]]],
) -> int:
    package = env.get(ENV_PACKAGE, "").strip() or "?"
    step = env.get(ENV_PHASE, "") if subcommand == SUBCOMMAND_WAIT else subcommand
    try:
        execute = prepare(env)
    except EnvError as exc:
        _say(package, f"{subcommand}: malformed environment: {exc}")
        return EXIT_BAD_ENV
    try:
        result = execute()
    except StepError as exc:
        _say(package, f"{step} failed ({exc.kind}): {exc}")
        for detail in exc.details:
            _say(package, f"  {detail}")
        print(
            result_line({"package": package, "step": step, "ok": False, "failure": exc.kind}),
            flush=True,
        )
        return EXIT_FAILED
    print(result_line({"package": package, "step": step, **result, "ok": True}), flush=True)
    return EXIT_OK


def run_apply(env: Mapping[str, str]) -> int:
    """``kpt live apply`` the package, then ``kpt live status`` until every object is Current."""
    return _run(SUBCOMMAND_APPLY, env, _apply)


def run_destroy(env: Mapping[str, str]) -> int:
    """``kpt live destroy`` everything the package's inventory tracks in the cluster."""
    return _run(SUBCOMMAND_DESTROY, env, _destroy)


def run_wait(env: Mapping[str, str]) -> int:
    """Run the package's waits of one phase, in order, and report what they asked for."""
    return _run(SUBCOMMAND_WAIT, env, _wait)


def run_status(env: Mapping[str, str]) -> int:
    """Check without changing anything: every object Current, then the waits if given."""
    return _run(SUBCOMMAND_STATUS, env, _status)


_RUNNERS: dict[str, Callable[[Mapping[str, str]], int]] = {
    SUBCOMMAND_APPLY: run_apply,
    SUBCOMMAND_DESTROY: run_destroy,
    SUBCOMMAND_WAIT: run_wait,
    SUBCOMMAND_STATUS: run_status,
}
_interrupted = False


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    """Turn SIGTERM/SIGINT into StepInterruptedError; run_process forwards it to the group."""
    global _interrupted
    if not _interrupted:  # a second signal must not cut the group's shutdown short
        _interrupted = True
        raise StepInterruptedError(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``kptstep.py apply|destroy|wait|status`` with the contract's environment."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] not in _RUNNERS:
        print(f"usage: python3 {STEP_SCRIPT} {'|'.join(SUBCOMMANDS)}", file=sys.stderr)
        return EXIT_BAD_ENV
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _on_signal)
    return _RUNNERS[args[0]](os.environ)


if __name__ == "__main__":
    sys.exit(main())
