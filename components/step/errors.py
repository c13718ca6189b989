"""The ways a step fails. Each kind is the word the failure summary's headline and the result
line's ``failure`` member use (docs/step-contract.md lists them)."""

from __future__ import annotations

import signal
from collections.abc import Iterable

__all__ = [
    "ActuationFailedError",
    "ClusterUnreachableError",
    "DeadlineExceededError",
    "DeleteFailedError",
    "IncompleteOutputError",
    "InventoryEmptyError",
    "NotCurrentError",
    "ObjectsSkippedError",
    "PackageDirMissingError",
    "ReconcileTimeoutError",
    "StepError",
    "StepInterruptedError",
    "ToolMissingError",
    "ToolUnusableError",
    "WaitFailedError",
]


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


class ToolUnusableError(StepError):
    """kpt or kubectl is on PATH but cannot run: not executable, or not a program for this
    machine (another architecture)."""

    kind = "tool cannot run"


class DeadlineExceededError(StepError):
    """A kpt or kubectl process outlived its hard deadline and its process group was killed."""

    kind = "hard deadline exceeded"


class StepInterruptedError(StepError):
    """The step received SIGTERM, SIGINT, SIGHUP or SIGQUIT and stopped the running group."""

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


class IncompleteOutputError(StepError):
    """kpt exited 0 without printing its events, or without its final summary: success is
    not proven, so it is not claimed."""

    kind = "output incomplete"


class NotCurrentError(StepError):
    """kpt live status ended with objects that are not Current."""

    kind = "objects not Current"


class InventoryEmptyError(StepError):
    """kpt live status found no inventory in the cluster, or no objects in it."""

    kind = "no objects in the inventory"


class WaitFailedError(StepError):
    """A kubectl wait, rollout status or report did not succeed."""

    kind = "wait failed"


class RestartFailedError(StepError):
    """A workload could not be restarted, or its new pods did not become ready in time."""

    kind = "restart failed"
