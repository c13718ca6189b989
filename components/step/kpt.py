"""The kpt runs of a step: ``kpt live apply``, ``kpt live status`` and ``kpt live destroy``, each
read to its end and judged by its events (see events.classify), never by its exit code alone."""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from components.step import logs, prune
from components.step.contract import ENV_DIR, Cluster, Inventory, inventory_yaml
from components.step.errors import (
    DeadlineExceededError,
    InventoryEmptyError,
    NotCurrentError,
    PackageDirMissingError,
    ReconcileTimeoutError,
    StepError,
)
from components.step.events import (
    Event,
    Summary,
    classify,
    format_progress,
    meaningful_tail,
    parse_event,
    summarize,
)
from components.step.process import Completed, find_tool, run_process

__all__ = ["DEADLINE_MARGIN", "WORKSPACE_PREFIX", "apply", "check_status", "destroy"]

DEADLINE_MARGIN = 30  # seconds a kpt status may run past its own timeout
WORKSPACE_PREFIX = "kpt-catalog-destroy-"
# A workspace without a lock file is stale after this long (a step killed right after creating
# it); one with a lock is stale as soon as no process holds the lock.
UNLOCKED_WORKSPACE_SECONDS = 3600


def run_kpt(
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
                logs.say(package, f"kpt: {line.strip()}")
            return
        events.append(event)
        progress = format_progress(event)
        if progress is not None:
            logs.say(package, progress)

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


def with_stderr(failure: StepError, completed: Completed, summary: Summary) -> StepError:
    """The failure with kpt's meaningful stderr lines added (those not already shown)."""
    extra = [
        f"stderr: {line}"
        for line in meaningful_tail(completed.stderr)
        if not any(error and error in line for error in summary.errors)
    ]
    return type(failure)(str(failure), [*failure.details, *extra])


def _package_dir(directory: str) -> None:
    if not Path(directory).is_dir():
        raise PackageDirMissingError(f"package directory {directory} does not exist ({ENV_DIR})")


def check_status(package: str, directory: str, timeout: int, cluster: Cluster) -> int:
    """Run ``kpt live status --poll-until=current``; the number of Current objects, or raise."""
    _package_dir(directory)
    label = "kpt live status"
    argv = [
        find_tool("kpt", label),
        "live",
        "status",
        directory,
        "--output=json",
        "--poll-until=current",
        f"--timeout={timeout}s",
        *cluster.flags(),
    ]
    completed, summary = run_kpt(package, label, argv, timeout + DEADLINE_MARGIN)
    if completed.returncode != 0:
        failure = classify("status", label, completed.returncode, summary)
        assert failure is not None  # noqa: S101 -- a non-zero exit always classifies
        raise with_stderr(failure, completed, summary)
    # kpt exits 0 both when the inventory is missing and when its --timeout expired.
    if not summary.statuses:
        found = summary.text[-1] if summary.text else "no status lines"
        raise with_stderr(
            InventoryEmptyError(
                f"{label} found no objects in {directory} ({found}); "
                "the package's inventory is missing or empty in the cluster"
            ),
            completed,
            summary,
        )
    not_current = [s for s in summary.statuses if s.status != "Current"]
    if not_current:
        raise NotCurrentError(
            f"{len(not_current)} of {len(summary.statuses)} object(s) not Current after {timeout}s",
            [*(str(s) for s in not_current), *(f"kpt error: {e}" for e in summary.errors)],
        )
    return len(summary.statuses)


def apply(
    package: str,
    directory: str,
    reconcile: int,
    deadline: int,
    server_side: bool,
    cluster: Cluster,
    allow_prune: Sequence[str] = (),
    inventory_policy: str = "strict",
) -> dict[str, int]:
    """``kpt live apply`` then ``kpt live status``; how many objects kpt applied (`objects`) and
    pruned (`pruned`), for the result line and the run's summary. First the
    prune guard: the same apply as a dry run, refusing prunes ``allow_prune`` does not allow.
    ``inventory_policy`` ``adopt`` lets kpt take over objects outside any inventory; the default,
    kpt's own ``strict``, adds no flag."""
    _package_dir(directory)
    label = "kpt live apply"
    argv = [
        find_tool("kpt", label),
        "live",
        "apply",
        directory,
        "--output=json",
        f"--reconcile-timeout={reconcile}s",
        f"--prune-timeout={reconcile}s",
        *(["--server-side"] if server_side else []),
        # `adopt` is cli-utils' AdoptIfNoInventory: objects of another inventory are still
        # refused (kpt pkg/live flagutils, ConvertInventoryPolicy).
        *([f"--inventory-policy={inventory_policy}"] if inventory_policy != "strict" else []),
        *cluster.flags(),
    ]
    # The dry run and the apply share the apply's deadline, so the step stays within the bound
    # the apply Command's custom timeout was built from (components/kpt_package.py).
    started = time.monotonic()
    prune.check_prunes(package, argv, deadline, allow_prune, cluster)
    remaining = max(1, deadline - int(time.monotonic() - started))
    completed, summary = run_kpt(package, label, argv, remaining)
    failure = classify("apply", label, completed.returncode, summary)
    if failure is not None and not _unwatched_new_kinds(package, failure, summary):
        raise with_stderr(failure, completed, summary)
    check_status(package, directory, reconcile, cluster)
    return {
        "objects": summary.successful.get("apply", 0),
        "pruned": summary.successful.get("prune", 0),
    }


_CRD_GROUP = "apiextensions.k8s.io"


def _unwatched_new_kinds(package: str, failure: StepError, summary: Summary) -> bool:
    """Whether the apply's only failure is a reconcile timeout of objects whose kinds this
    apply itself defined, which kpt 1.0.0-beta.56 can fail to watch at all.

    cli-utils' status watcher (pkg/kstatus/watcher/object_status_reporter.go) starts the
    informer of a kind that does not exist yet only when its CRD is added or updated; when the
    CRD's last event comes before the API server serves the kind, the informer never starts and
    every object of that kind times out although it is Current (seen on a real kube-apiserver:
    `Watch start error (blocking until CRD is added)`, the CRD's events, then nothing for the
    Gateway). Such objects are checked again by `kpt live status`, whose fresh watcher sees them;
    that check is what decides."""
    if not isinstance(failure, ReconcileTimeoutError) or summary.errors:
        return False
    if summary.with_status("Failed") or summary.with_status("Skipped"):
        return False
    new_groups = {
        r.obj.name.partition(".")[2]
        for r in summary.results
        if r.action == "apply" and r.obj.group == _CRD_GROUP and r.status == "Successful"
    }
    timed_out = summary.with_status("Timeout")
    if not timed_out or any(r.obj.group not in new_groups for r in timed_out):
        return False
    logs.say(
        package,
        f"{len(timed_out)} object(s) of kinds this apply defined timed out in kpt's own wait "
        "(its watcher can miss a kind that a CRD of the same apply defines); kpt live status "
        "checks them instead",
    )
    return True


def _sweep_stale(root: Path) -> None:
    """Remove workspaces that earlier destroys left behind (killed before their cleanup)."""
    for workspace in root.glob(WORKSPACE_PREFIX + "*"):
        lock = workspace / "lock"
        try:
            if not lock.is_file():
                if time.time() - workspace.stat().st_mtime > UNLOCKED_WORKSPACE_SECONDS:
                    shutil.rmtree(workspace, ignore_errors=True)
                continue
            with lock.open("rb") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held: a destroy runs
                shutil.rmtree(workspace, ignore_errors=True)
        except OSError:
            continue


@contextlib.contextmanager
def _workspace(inventory: Inventory) -> Iterator[Path]:
    """A fresh temporary directory holding only resourcegroup.yaml (in ``inventory/``), locked
    while this step lives so that the next run can tell a leftover from a running destroy."""
    root = Path(tempfile.gettempdir())
    _sweep_stale(root)
    workspace = Path(tempfile.mkdtemp(prefix=WORKSPACE_PREFIX, dir=root))
    try:
        with (workspace / "lock").open("wb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            package = workspace / "inventory"
            package.mkdir()
            (package / "resourcegroup.yaml").write_text(inventory_yaml(inventory), encoding="utf-8")
            yield package
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


def destroy(package: str, inventory: Inventory, deadline: int, cluster: Cluster) -> int:
    """``kpt live destroy`` of everything the cluster-side inventory tracks; objects deleted.

    Only the inventory is given to kpt: it then deletes what the ResourceGroup in the cluster
    tracks, so rollback works after the package directory is gone."""
    label = "kpt live destroy"
    kpt = find_tool("kpt", label)
    with _workspace(inventory) as directory:
        argv = [kpt, "live", "destroy", str(directory), "--output=json", *cluster.flags()]
        completed, summary = run_kpt(package, label, argv, deadline)
    failure = classify("destroy", label, completed.returncode, summary)
    if failure is not None:
        raise with_stderr(failure, completed, summary)
    return summary.successful.get("delete", 0)
