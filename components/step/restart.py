"""``restart``: after a Secret value changed, restart the workloads that use it.

Pods read a Secret when they start (environment variables never change afterwards), so a rotated
credential reaches them only through a restart: ``kubectl rollout restart`` of each workload,
then ``kubectl rollout status`` until its new pods are ready, one workload after the other. The
step never sees a Secret value: only the workloads' names reach it.
"""

from __future__ import annotations

from collections.abc import Sequence

from components.step import logs
from components.step.contract import Cluster, Workload
from components.step.errors import DeadlineExceededError, RestartFailedError
from components.step.events import meaningful_tail
from components.step.process import find_tool, run_process

__all__ = ["RESTART_DEADLINE", "STATUS_MARGIN", "restart_workloads"]

RESTART_DEADLINE = 60  # seconds for `kubectl rollout restart`, which only patches the template
STATUS_MARGIN = 30  # seconds `kubectl rollout status` may run past its own timeout


def restart_workloads(
    package: str, workloads: Sequence[Workload], timeout: int, cluster: Cluster
) -> int:
    """Restart each workload and wait up to ``timeout`` seconds for its rollout; how many."""
    kubectl = find_tool("kubectl", "the restart") if workloads else "kubectl"
    for workload in workloads:
        target = f"{workload.kind}/{workload.name}"
        scope = ["-n", workload.namespace, *cluster.flags()]
        for verb, argv, deadline in (
            ("kubectl rollout restart", ["rollout", "restart", target, *scope], RESTART_DEADLINE),
            (
                "kubectl rollout status",
                ["rollout", "status", target, f"--timeout={timeout}s", *scope],
                timeout + STATUS_MARGIN,
            ),
        ):
            logs.say(package, f"restart: {verb} {workload}")
            try:
                completed = run_process(
                    [kubectl, *argv],
                    label=f"{verb} {target}",
                    deadline_seconds=deadline,
                    on_stdout=lambda line: logs.say(package, f"kubectl: {line}") if line else None,
                )
            except DeadlineExceededError as exc:
                raise DeadlineExceededError(f"{exc} (restarting {workload})", exc.details) from None
            if completed.returncode != 0:
                raise RestartFailedError(
                    f"{workload} ({verb} exited {completed.returncode})",
                    [f"kubectl: {line}" for line in meaningful_tail(completed.stderr)],
                )
    logs.say(package, f"restart: {len(workloads)} workload(s) restarted with the new values")
    return len(workloads)
