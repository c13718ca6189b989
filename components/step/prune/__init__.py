"""The prune guard: before ``kpt live apply`` changes anything, kpt itself is asked what it would
prune (the same apply with ``--dry-run``), and the step stops if that includes a
CustomResourceDefinition, a Namespace or a PersistentVolumeClaim the package does not allow to be
pruned. Deleting a CRD's file by mistake would otherwise delete every custom resource of its kind,
cluster-wide; dropping a Namespace deletes everything in it; a PVC's deletion takes its data.

What a dry run reports, from cli-utils v0.36 (the release kpt 1.0.0-beta.56 bundles):
- every object kpt would prune is one ``"type":"prune"`` event; the dry run runs the same prune
  filters as the real apply and skips only the deletion (pkg/apply/prune/prune.go, Prune:
  ``if !opts.DryRunStrategy.ClientOrServerDryRun()`` around ``deleteObject``);
- an object annotated ``cli-utils.sigs.k8s.io/on-remove: keep`` (or ``client.lifecycle.config.k8s
  .io/deletion: detach``) fails PreventRemoveFilter (pkg/apply/filter/prevent-remove-filter.go,
  AnnotationPreventedDeletionError) and is reported as a Skipped prune event
  (``CreateSkippedEvent``), as are objects another inventory owns: kpt leaves every Skipped one in
  place, and so the guard does not count them;
- ``--dry-run`` never installs the ResourceGroup CRD and exits 1 with "The ResourceGroup CRD was
  not found in the cluster" without it (kpt commands/live/apply/cmdapply.go, preRunE) - but kpt
  says the same when the cluster cannot be reached at all (pkg/live/inventoryrg.go,
  ResourceGroupCRDApplied: any RESTMapper error counts as "not found"). So that answer is checked
  with ``kubectl get`` of the CRD: absent means nothing was ever deployed by kpt here, so nothing
  can be pruned; anything else fails the step with kubectl's reason.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence

from components.step import logs
from components.step.contract import ENV_ALLOW_PRUNE, Cluster, EnvError
from components.step.errors import ClusterUnreachableError, StepError
from components.step.events import (
    KEPT_BY_ANNOTATION,
    Event,
    ObjectResult,
    Summary,
    meaningful_tail,
    parse_event,
    summarize,
)
from components.step.process import find_tool, run_process
from components.step.prune.rules import (
    GUARDED_KINDS,
    KEEP_ANNOTATION,
    allowed_entry,
    refused_by_guard,
)

__all__ = [
    "CLUSTER_SCOPED_KINDS",
    "ENTRY",
    "GUARDED_KINDS",
    "ApplySkippedError",
    "PruneBlockedError",
    "PruneCheckFailedError",
    "PruneRefusedError",
    "allowed_entry",
    "allowed_prunes",
    "check_prunes",
]

CLUSTER_SCOPED_KINDS = ("CustomResourceDefinition", "Namespace")
RG_CRD_MISSING = "The ResourceGroup CRD was not found in the cluster"
RG_CRD = ("customresourcedefinitions.apiextensions.k8s.io", "resourcegroups.kpt.dev")
_KIND = r"[A-Za-z][A-Za-z0-9]*"
_PART = r"[^/\s]+"
ENTRY = re.compile(rf"{_KIND}(/{_PART}){{0,2}}")
"""An ``allowPrune`` entry: ``Kind``, ``Kind/name`` (cluster-scoped) or ``Kind/namespace/name``."""


class PruneRefusedError(StepError):
    """kpt would prune a CRD, Namespace or PVC that the package's allowPrune does not name."""

    kind = "prune refused"


class PruneBlockedError(StepError):
    """kpt would skip pruning an object that left the package (not one kept by annotation), and
    the apply would then fail on it."""

    kind = "prune blocked"


class PruneCheckFailedError(StepError):
    """The dry run that tells what kpt would prune did not give a complete answer."""

    kind = "prune check failed"


def allowed_prunes(env: Mapping[str, str]) -> tuple[str, ...]:
    """``KPT_CATALOG_ALLOW_PRUNE``: a JSON list of allowPrune entries; absent or empty: none."""
    text = env.get(ENV_ALLOW_PRUNE, "")
    if not text.strip():
        return ()
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, list) or not all(
        isinstance(item, str) and ENTRY.fullmatch(item) for item in data
    ):
        raise EnvError(
            f"{ENV_ALLOW_PRUNE} must be a JSON list of Kind, Kind/name or Kind/namespace/name "
            f"strings, got {text[:200]!r}"
        )
    return tuple(data)


def _confirm_no_resource_groups(deadline: int, cluster: Cluster) -> None:
    """Check that the ResourceGroup CRD is really absent (kpt also says so for a cluster it could
    not reach): raise ClusterUnreachableError when kubectl cannot read the cluster either, and
    PruneCheckFailedError when the CRD is there after all."""
    label = "kubectl get crd resourcegroups.kpt.dev"
    kubectl = find_tool("kubectl", "the prune check")
    argv = [kubectl, "get", *RG_CRD, "--ignore-not-found", "-o", "name", *cluster.flags()]
    completed = run_process(argv, label=label, deadline_seconds=deadline)
    if completed.returncode != 0:
        raise ClusterUnreachableError(
            f"kpt live apply --dry-run found no ResourceGroup CRD, and {label} exited "
            f"{completed.returncode}: the cluster cannot be read, so what kpt would prune is "
            "unknown; nothing was applied",
            [f"kubectl: {line}" for line in meaningful_tail(completed.stderr)],
        )
    if any(line.strip() for line in completed.stdout):
        raise PruneCheckFailedError(
            "kpt live apply --dry-run said the ResourceGroup CRD was not found, but kubectl "
            "finds it: kpt could not read the cluster; nothing was applied"
        )


def _dry_run(package: str, argv: Sequence[str], deadline: int, cluster: Cluster) -> Summary | None:
    """What ``argv`` with ``--dry-run`` reported; None when kpt never deployed here."""
    label = "kpt live apply --dry-run"
    events: list[Event] = []
    text: list[str] = []

    def on_line(line: str) -> None:
        event = parse_event(line)
        if event is not None:
            events.append(event)
        elif line.strip():
            text.append(line.strip())

    logs.say(package, "prune check: asking kpt what this apply would prune (dry run)")
    started = time.monotonic()
    completed = run_process(
        [*argv, "--dry-run"], label=label, deadline_seconds=deadline, on_stdout=on_line
    )
    summary = summarize(events, text)
    stderr = meaningful_tail(completed.stderr)
    if completed.returncode == 1 and any(RG_CRD_MISSING in line for line in completed.stderr):
        _confirm_no_resource_groups(max(1, deadline - int(time.monotonic() - started)), cluster)
        return None
    # Exit 3 means objects failed in the dry run (a namespace the package itself creates does
    # not exist yet, say); kpt still ran every prune filter, and the real apply will say more.
    # kpt's current output prints its summaries after every group, prunes included, so a summary
    # proves the prunes were printed; older releases (no group events) print a "completed" event
    # after each task, and the prune task's comes after the apply's: only it proves the same.
    grouped = any(event.type == "group" for event in events)
    prunes_unknown = not summary.reported or (not grouped and "prune" not in summary.reported)
    failed_before_prunes = (
        completed.returncode not in (0, 3) or summary.errors or not summary.events or prunes_unknown
    )
    if failed_before_prunes:
        reason = (
            f"exited {completed.returncode}"
            if completed.returncode not in (0, 3)
            else (
                "reported an error"
                if summary.errors
                else (
                    "ended before its final summary"
                    if not summary.reported
                    else "ended before it reported its prunes"
                )
            )
        )
        raise PruneCheckFailedError(
            f"{label} {reason}, so what kpt would prune is unknown; nothing was applied",
            [
                *(f"kpt error: {error}" for error in summary.errors),
                *(f"stderr: {line}" for line in stderr),
            ],
        )
    return summary


class ApplySkippedError(StepError):
    """The dry run shows kpt would skip applying objects: the real apply would change part of the
    package and then fail on them."""

    kind = "apply skipped"


# cli-utils' reason for an apply the inventory policy refused, with the live object's status:
# Empty (no owning inventory) or NoMatch (another one's) (pkg/inventory/policy.go).
_POLICY_SKIP = re.compile(r"inventory policy prevented actuation \(strategy: Apply, status: (\w+)")


def _skipped_apply_advice(package: str, result: ObjectResult) -> str:
    match = _POLICY_SKIP.search(result.detail)
    status = match.group(1) if match else ""
    if status == "Empty":
        return (
            f"{result.obj}: exists in the cluster outside any inventory (made by hand or by the "
            f"bash loop); to let package {package} take it over, set `adopt: true` on it in "
            "packages.yaml"
        )
    if status == "NoMatch":
        return (
            f"{result.obj}: belongs to another package's inventory; keep it in one package only "
            "(remove it from this package's files, or destroy it from the other first). Never "
            "`adopt` it: adopt does not take another package's objects"
        )
    return f"{result.obj}: {result.detail or 'skipped by kpt'}"


def _check_dry_run(summary: Summary) -> tuple[list[ObjectResult], list[ObjectResult]]:
    """The dry run's (prune results, skipped applies), after refusing a dry run whose summary
    counts skips or prunes that its events do not name."""
    skipped = [r for r in summary.results if r.action == "apply" and r.status == "Skipped"]
    reported_apply = summary.reported.get("apply")
    if not skipped and reported_apply is not None and reported_apply.skipped:
        raise PruneCheckFailedError(
            f"kpt live apply --dry-run counts {reported_apply.skipped} skipped apply(s) but named "
            "none, so what the apply would leave out is unknown; nothing was applied"
        )
    prunes = [r for r in summary.results if r.action == "prune"]
    reported = summary.reported.get("prune")
    if reported is not None and reported.count != len(prunes):
        raise PruneCheckFailedError(
            f"kpt live apply --dry-run counts {reported.count} object(s) to prune but named "
            f"{len(prunes)}, so what it would prune is unknown; nothing was applied"
        )
    return prunes, skipped


def check_prunes(
    package: str,
    apply_argv: Sequence[str],
    deadline: int,
    allowed: Sequence[str],
    cluster: Cluster,
) -> int:
    """Run the dry run of ``apply_argv``; raise PruneRefusedError naming every guarded object kpt
    would prune that ``allowed`` does not name. The number of objects kpt would prune."""
    dry_run = _dry_run(package, apply_argv, deadline, cluster)
    if dry_run is None:
        logs.say(package, "prune check: no ResourceGroup CRD in the cluster yet, nothing to prune")
        return 0
    results, skipped_applies = _check_dry_run(dry_run)
    kept = [r for r in results if r.status == "Skipped" and r.detail.startswith(KEPT_BY_ANNOTATION)]
    pruned = [r for r in results if r.status != "Skipped"]
    # Any other skip (a Namespace still in use, an object another inventory owns) fails the apply
    # that follows (events.classify), on every later run too: say so now, before anything runs.
    blocked = [r for r in results if r.status == "Skipped" and r not in kept]
    for result in kept:
        logs.say(package, f"prune check: kpt keeps {result.obj}: {result.detail}")
    for result in pruned:
        logs.say(package, f"prune check: kpt would prune {result.obj}")
    if blocked:
        raise PruneBlockedError(
            f"kpt would refuse to prune {len(blocked)} object(s) that left package {package}, "
            "and the apply would fail on them; nothing was applied",
            [
                *(f"{r.obj}: {r.detail or 'skipped by kpt'}" for r in blocked),
                "put each one's file back in the package, or first remove what still holds it "
                "(for a Namespace: the objects and the inventory that still live in it)",
            ],
        )
    # After the blocked prunes, their cause: objects in a Namespace kpt would prune are skipped
    # too ("dependency scheduled for delete", seen on the local control plane).
    if skipped_applies:
        raise ApplySkippedError(
            f"kpt would skip applying {len(skipped_applies)} object(s) of package {package} (its "
            "dry run says so), and the apply would change the rest and then fail; nothing was "
            "applied",
            [_skipped_apply_advice(package, r) for r in skipped_applies],
        )
    refused = [r.obj for r in pruned if refused_by_guard(r.obj, allowed)]
    if refused:
        raise PruneRefusedError(
            f"kpt would prune {len(refused)} object(s) that package {package} does not allow "
            "to be pruned; nothing was applied",
            [
                *(
                    f"{obj}: to let it go, add {allowed_entry(obj)!r} to allowPrune of package "
                    f"{package} in packages.yaml"
                    for obj in refused
                ),
                "to keep an object instead, put its file back in the package, or annotate it "
                f"in the cluster with {KEEP_ANNOTATION}",
            ],
        )
    logs.say(package, f"prune check: {len(pruned)} to prune, {len(kept)} kept, none refused")
    return len(pruned)
