"""kpt's JSON event stream (``kpt live ... --output=json``), in either shape kpt has printed, and
what it amounts to: which objects did not succeed, what the final summary counted, and the
failure the whole run is (``classify``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from components.step.errors import (
    ActuationFailedError,
    ClusterUnreachableError,
    DeleteFailedError,
    IncompleteOutputError,
    ObjectsSkippedError,
    ReconcileTimeoutError,
    StepError,
)

__all__ = [
    "FAILED_STATUSES",
    "KEPT_BY_ANNOTATION",
    "Event",
    "ObjectRef",
    "ObjectResult",
    "Summary",
    "classify",
    "format_progress",
    "meaningful_tail",
    "parse_event",
    "summarize",
]

FAILED_STATUSES = ("Failed", "Skipped", "Timeout")
# What kpt says of an object it does not prune because the object asks to be kept
# (cli-utils pkg/apply/filter/prevent-remove-filter.go, AnnotationPreventedDeletionError): the
# annotation cli-utils.sigs.k8s.io/on-remove: keep did its job, so the skip is no failure.
KEPT_BY_ANNOTATION = "annotation prevents deletion"
_KLOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\] ")
# The action of the summary that ends a run; without it, kpt's output stopped early.
_FINAL_SUMMARY = {"apply": "apply", "destroy": "delete"}


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
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python's stack
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
    reported: Mapping[str, Event] = field(default_factory=dict)  # final summary per action
    events: int = 0  # how many events kpt printed
    finished_groups: frozenset[str] = frozenset()  # actions whose group kpt said Finished

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
    finished: set[str] = set()
    count = 0
    for event in events:
        count += 1
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
        elif event.type == "group" and event.status == "Finished":
            finished.add(event.action)
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
        reported,
        count,
        frozenset(finished),
    )


def meaningful_tail(lines: Sequence[str], limit: int = 8) -> list[str]:
    """The last lines of a stderr that are not klog noise (or the last raw ones if all are)."""
    kept = [line for line in lines if line.strip() and not _KLOG_LINE.match(line)]
    return kept[-limit:] if kept else [line for line in lines if line.strip()][-3:]


def _nothing_was_tracked(summary: Summary) -> bool:
    """A destroy of an inventory that tracks no object: cli-utils queues no delete task for an
    empty set (pkg/apply/solver/solver.go, `len(pruneObjs) > 0`) and its JSON printer writes no
    summary at zero counts (pkg/printers/json/formatter.go, FormatSummary), so the run is only
    the inventory's own removal. Its Finished event is the last task of the queue: the run
    completed. (Seen with kpt 1.0.0-beta.56 on an empty and on an absent inventory.)"""
    return (
        "inventory" in summary.finished_groups
        and not summary.results
        and not summary.errors
        and not summary.reported
    )


def classify(action: str, label: str, returncode: int, summary: Summary) -> StepError | None:
    """The failure a kpt run amounts to, or None when every object succeeded.

    ``action`` is "apply" or "destroy", ``label`` the command for messages. Success needs all of:
    exit 0, no object Failed, Skipped or Timeout, kpt's final summary present and counting no
    failure, skip or timeout. Objects that did not succeed fail the step whatever the exit code
    (skipped objects exit 0); a non-zero exit fails it whatever the events said.
    """
    kept = {
        r.obj
        for r in summary.results
        if r.action == "prune" and r.status == "Skipped" and r.detail.startswith(KEPT_BY_ANNOTATION)
    }
    skipped_objects = {r.obj for r in summary.with_status("Skipped")} - kept
    first_problem: dict[ObjectRef, ObjectResult] = {}
    for problem in summary.problems:  # a failed apply is also a skipped wait: name it once
        if problem.obj not in kept:
            first_problem.setdefault(problem.obj, problem)
    details = [
        *(str(p) for p in first_problem.values()),
        *(f"kpt error: {e}" for e in summary.errors),
    ]
    counted_failed = sum(e.failed for e in summary.reported.values())
    # A kept object is a Skipped prune and then a Skipped wait (cli-utils taskrunner/task.go,
    # WaitTask.skipped): neither is a failure.
    kept_skips = sum(1 for r in summary.results if r.obj in kept and r.status == "Skipped")
    counted_skipped = max(0, sum(e.skipped for e in summary.reported.values()) - kept_skips)
    if summary.timeouts and not summary.with_status("Timeout"):
        details.append(f"kpt reported {summary.timeouts} object(s) timed out reconciling")
    if counted_failed and not summary.with_status("Failed"):
        details.append(f"kpt's summary counted {counted_failed} failed object(s)")
    if counted_skipped and not skipped_objects:
        details.append(f"kpt's summary counted {counted_skipped} skipped object(s)")
    failure: type[StepError]
    if returncode == 1:
        failure, what = ClusterUnreachableError, f"{label} exited 1"
    elif summary.timeouts:
        failure = ReconcileTimeoutError
        what = (
            f"{summary.timeouts} object(s) did not reconcile in time ({label} exited {returncode})"
        )
    elif summary.with_status("Failed") or summary.errors or returncode == 3 or counted_failed:
        failure = DeleteFailedError if action == "destroy" else ActuationFailedError
        failed = len({r.obj for r in summary.with_status("Failed")}) or counted_failed
        what = f"{failed} object(s) failed ({label} exited {returncode})"
    elif skipped_objects or counted_skipped:
        skipped = len(skipped_objects) or counted_skipped
        what = f"{label} exited {returncode} but skipped {skipped} object(s)"
        failure = ObjectsSkippedError
    elif returncode != 0:
        failure, what = StepError, f"{label} exited {returncode}"
    elif not summary.events:
        failure, what = IncompleteOutputError, f"{label} exited 0 but printed no events"
    elif action == "destroy" and _nothing_was_tracked(summary):
        return None
    elif _FINAL_SUMMARY.get(action, "") not in (*summary.reported, ""):
        failure = IncompleteOutputError
        what = f"{label} exited 0 but its output ended before kpt's final summary"
    else:
        return None
    return failure(what, details)
