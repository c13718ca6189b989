"""The kubectl gates: ``kubectl wait`` / ``kubectl rollout status``, then the reports asked for."""

from __future__ import annotations

from collections.abc import Sequence

from components.step import logs
from components.step.contract import Cluster, Wait
from components.step.errors import DeadlineExceededError, WaitFailedError
from components.step.events import meaningful_tail
from components.step.process import find_tool, run_process

__all__ = ["REPORT_DEADLINE", "REPORT_MAX_CHARS", "WAIT_MARGIN", "run_waits"]

WAIT_MARGIN = 30  # seconds a kubectl wait may run past its own timeout
REPORT_DEADLINE = 60  # seconds for one `kubectl get -o jsonpath`
REPORT_MAX_CHARS = 1024  # a report goes into the result line, which must stay one short line


def run_waits(package: str, phase: str, waits: Sequence[Wait], cluster: Cluster) -> dict[str, str]:
    """Run each wait in order; the reports they asked for, keyed by Wait.key."""
    reports: dict[str, str] = {}
    kubectl = find_tool("kubectl", f"the {phase} waits") if waits else "kubectl"
    for wait in waits:
        scope = [
            *(["-n", wait.namespace] if wait.namespace else []),
            *(["-l", wait.selector] if wait.selector else []),
            *cluster.flags(),
        ]
        if wait.condition == "rollout":
            verb, argv = "kubectl rollout status", [kubectl, "rollout", "status", wait.resource]
        else:
            verb = "kubectl wait"
            argv = [kubectl, "wait", wait.resource, f"--for={wait.condition}"]
        logs.say(package, f"{phase}: waiting for {wait} (up to {wait.timeout}s)")
        try:
            completed = run_process(
                [*argv, f"--timeout={wait.timeout}s", *scope],
                label=f"{verb} {wait.resource}",
                deadline_seconds=wait.timeout + WAIT_MARGIN,
                on_stdout=lambda line: logs.say(package, f"kubectl: {line}") if line else None,
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
                [kubectl, "get", wait.resource, *scope, "-o", f"jsonpath={wait.report}"],
                label=f"kubectl get {wait.resource}",
                deadline_seconds=REPORT_DEADLINE,
            )
            if got.returncode != 0:
                raise WaitFailedError(
                    f"report {wait.report} of {wait.key} (kubectl get exited {got.returncode})",
                    [f"kubectl: {line}" for line in meaningful_tail(got.stderr)],
                )
            value = "\n".join(got.stdout).strip()
            if len(value) > REPORT_MAX_CHARS:
                raise WaitFailedError(
                    f"report {wait.report} of {wait.key} is {len(value)} characters long; "
                    f"a report may hold at most {REPORT_MAX_CHARS} (the whole value is in the log)"
                )
            reports[wait.key] = value
            logs.say(package, f"{phase}: {wait.key} {wait.report} = {value}")
    return reports
