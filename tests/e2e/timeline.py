"""What the Pulumi engine did and in which order, from the events the Automation API streams.

Pass `Timeline.record` as `on_event` to `preview`, `up` or `destroy`. The engine emits a
`ResourcePreEvent` right before it runs a step and a `ResOutputsEvent` once the step finished
(deletes included), each numbered by `sequence`: so "A finished before B started" is a comparison
of two positions, and it holds only when the engine really waited for A.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from pulumi import automation as auto

__all__ = ["DONE", "FAILED", "PRE", "StepEvent", "Timeline", "op_counts"]

PRE = "pre"
"""The engine starts a step."""
DONE = "done"
"""The step finished (its outputs, or the end of a delete)."""
FAILED = "failed"
"""The step failed."""


@dataclass(frozen=True)
class StepEvent:
    """One resource event of an engine run."""

    sequence: int
    phase: str
    """`PRE`, `DONE` or `FAILED`."""
    op: str
    """The step's operation as the engine names it: create, update, same, delete, replace, ..."""
    urn: str
    type: str

    @property
    def name(self) -> str:
        """The resource's name: the last part of its URN (`headscale-apply`)."""
        return self.urn.rpartition("::")[2]


def _op(value: object) -> str:
    """An `OpType` or a plain string (what the engine's JSON holds) as the plain string."""
    return str(getattr(value, "value", value))


def op_counts(changes: Mapping[auto.OpType, int] | Mapping[str, int] | None) -> dict[str, int]:
    """A change summary (`change_summary`, `summary.resource_changes`) as a plain dict with
    string keys, whichever way the Automation API typed it, so failures print plainly."""
    return {_op(op): count for op, count in (changes or {}).items()}


class Timeline:
    """The resource events of one engine run, in the order the engine emitted them."""

    def __init__(self) -> None:
        self._events: list[StepEvent] = []
        # The Automation API calls on_event from the thread that tails the engine's event log.
        self._lock = threading.Lock()

    def record(self, event: auto.EngineEvent) -> None:
        """Keep `event` if it is about a resource step (an `on_event` callback)."""
        for phase, payload in (
            (PRE, event.resource_pre_event),
            (DONE, event.res_outputs_event),
            (FAILED, event.res_op_failed_event),
        ):
            if payload is None:
                continue
            metadata = payload.metadata
            step = StepEvent(event.sequence, phase, _op(metadata.op), metadata.urn, metadata.type)
            with self._lock:
                self._events.append(step)

    @property
    def events(self) -> list[StepEvent]:
        """Every recorded event, ordered by the engine's sequence numbers."""
        with self._lock:
            return sorted(self._events, key=lambda e: e.sequence)

    def names(self, op: str, phase: str = DONE, *, include_providers: bool = False) -> set[str]:
        """Resources that had a step `op` reach `phase` (by default: that finished `op`)."""
        return {
            e.name
            for e in self.events
            if e.op == op
            and e.phase == phase
            and (include_providers or not e.type.startswith("pulumi:providers:"))
        }

    def position(self, name: str, phase: str, ops: Collection[str]) -> int:
        """Index of the first `phase` event of resource `name` with an op in `ops`."""
        for index, event in enumerate(self.events):
            if event.name == name and event.phase == phase and event.op in ops:
                return index
        raise AssertionError(
            f"the engine reported no {phase} event of {name!r} with op {'/'.join(sorted(ops))}; "
            f"it reported: {self.describe()}"
        )

    def assert_before(self, first: str, then: str, ops: Collection[str]) -> None:
        """`first`'s step (an op in `ops`) finished before `then`'s step started."""
        finished = self.position(first, DONE, ops)
        started = self.position(then, PRE, ops)
        assert finished < started, (
            f"{first} should have finished before {then} started "
            f"(ops {'/'.join(sorted(ops))}); the engine reported: {self.describe()}"
        )

    def describe(self) -> str:
        """The events, one `name op phase` triple each, for failure messages."""
        return ", ".join(f"{e.name} {e.op} {e.phase}" for e in self.events) or "no resource events"
