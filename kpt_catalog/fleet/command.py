"""`kpt-catalog fleet`: one catalog to the clusters `fleet.yaml` lists.

    kpt-catalog fleet plan [-o json]        the waves and their clusters; offline
    kpt-catalog fleet diff [-o json]        every cluster's diff, grouped against the canary's
    kpt-catalog fleet status [-o json]      one table: cluster by package
    kpt-catalog fleet export --operator --repo URL
                                            the waves as Pulumi Kubernetes Operator Stacks
    kpt-catalog fleet up --yes [--approve CLUSTER] [--resume [RUN]]
                                            roll the catalog out, wave by wave

What each cluster went through is journalled in `.fleet/runs/<run>.jsonl` (beside the fleet
file) and each command's output kept in `.fleet/logs/<run>/<cluster>.log`;
`.fleet/last-good.json` says which catalog each cluster last ran well, and `.fleet/catalogs/`
holds those catalogs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import yaml

from components.config import ConfigError, parse_config
from kpt_catalog import exits, stackfile
from kpt_catalog.fleet import diff as fleet_diff
from kpt_catalog.fleet.config import FLEET_FILE, FleetConfig, load_fleet
from kpt_catalog.fleet.journal import (
    FleetLockedError,
    Journal,
    fleet_lock,
    latest_run,
    read_journal,
)
from kpt_catalog.fleet.rollout import Rollout, RolloutResult, Runner, finished_clusters
from kpt_catalog.fleet.snapshot import Snapshot, snapshot_catalog
from kpt_catalog.fleet.waves import Wave, plan_waves
from kpt_catalog.output import Printer, add_output_argument

__all__ = ["fleet_dir", "main", "run_rollout"]


def fleet_dir(fleet_file: str | None) -> Path:
    """`.fleet/` beside the fleet file (the project's, by default)."""
    return (Path(fleet_file).resolve().parent if fleet_file else stackfile.ROOT) / ".fleet"


def _known_stacks() -> list[str]:
    return [
        p.name.removeprefix("Pulumi.").removesuffix(".yaml")
        for p in stackfile.ROOT.glob("Pulumi.*.yaml")
    ]


def _load(path: str | None) -> FleetConfig:
    return load_fleet(Path(path) if path else stackfile.ROOT / FLEET_FILE, _known_stacks())


def _plan(args: argparse.Namespace) -> int:
    out = Printer(args.output == "json")
    try:
        config = _load(args.fleet)
    except ConfigError as error:
        print(error, file=sys.stderr)
        out.document("fleet plan", {"stack": "", "problems": str(error).splitlines()}, exits.CONFIG)
        return exits.CONFIG
    waves = plan_waves(config)
    for wave in waves:
        out.line(
            f"{wave.name}: {', '.join(c.name for c in wave.clusters)} (may fail: {wave.budget})"
        )
    out.line(
        f"at most {config.max_concurrency} at once; bake {config.bake_seconds}s, health within "
        f"{config.health_seconds}s; unreachable: {config.unreachable}; over budget: "
        f"{config.on_failure}"
    )
    out.document(
        "fleet plan",
        {
            "stack": "",
            "problems": [],
            "waves": [
                {"name": w.name, "clusters": [c.name for c in w.clusters], "budget": w.budget}
                for w in waves
            ],
        },
        exits.OK,
    )
    return exits.OK


def _snapshot_of(stack: str, root: Path) -> Snapshot:
    """The catalog and graph `stack` deploys today, stored: what the rollout takes everywhere."""
    values, _ = stackfile.stack_config_values(stack)
    config = parse_config(values, stack=stack, base_dir=stackfile.ROOT, kubeconfig_required=False)
    packages = json.loads(json.dumps(values.get("packages")))  # plain lists and dicts
    graph = yaml.safe_dump({"packages": packages}, sort_keys=False).encode()
    return snapshot_catalog(Path(config.catalog_dir), graph, root / "catalogs")


def _table(result: RolloutResult, out: Printer) -> None:
    width = max((len(n) for n in result.clusters), default=7)
    out.line("")
    out.line(out.paint(f"{'CLUSTER':<{width}}  {'WAVE':<24}  RESULT", "bold"))
    for run in result.clusters.values():
        colour = {"good": "green", "done before": "green", "deferred": "yellow"}.get(
            run.state, "red"
        )
        reason = f": {run.reason}" if run.reason and run.state != "good" else ""
        out.line(f"{run.name:<{width}}  {run.wave:<24}  {out.paint(run.state, colour)}{reason}")


def run_rollout(
    config: FleetConfig,
    waves: Sequence[Wave],
    runner: Runner,
    snapshot: Snapshot,
    *,
    root: Path,
    run_id: str,
    finished: dict[str, str] | None = None,
    before: dict[str, str] | None = None,
    out: Printer | None = None,
) -> RolloutResult:
    """One rollout (or the rest of one: `finished` and `before`, each cluster's last good catalog
    when it began, from its journal) under the fleet lock, journalled in `root/runs`."""
    out = out or Printer()
    last_good_file = root / "last-good.json"
    last_good = json.loads(last_good_file.read_text()) if last_good_file.exists() else {}
    journal = Journal(root / "runs" / f"{run_id}.jsonl")
    try:
        if finished is None:
            journal.write(
                "run",
                run=run_id,
                catalog=snapshot.digest,
                waves=[[c.name for c in w.clusters] for w in waves],
                lastGood=last_good,
            )
        rollout = Rollout(
            config,
            waves,
            runner,
            journal,
            snapshot,
            store=root / "catalogs",
            last_good=last_good,
            last_good_file=last_good_file,
            finished=finished,
            before=before,
            say=out.line,
        )
        return rollout.run()
    finally:
        journal.close()


def _diffs(config: FleetConfig, snapshot: Snapshot, timeout: int) -> list[fleet_diff.ClusterDiff]:
    names = [c.name for c in config.clusters]
    return fleet_diff.diff_clusters(
        names, lambda name: fleet_diff.run_diff(name, snapshot, timeout), config.max_concurrency
    )


def _diff(args: argparse.Namespace) -> int:
    out = Printer(args.output == "json")
    root = fleet_dir(args.fleet)
    try:
        config = _load(args.fleet)
        snapshot = _snapshot_of(config.clusters[0].name, root)
    except ConfigError as error:
        print(error, file=sys.stderr)
        out.document("fleet diff", {"stack": "", "problems": str(error).splitlines()}, exits.CONFIG)
        return exits.CONFIG
    canary = plan_waves(config)[0].clusters[0].name
    out.line(f"catalog {snapshot.short} against {len(config.clusters)} cluster(s); canary {canary}")
    diffs = _diffs(config, snapshot, args.timeout)
    groups = fleet_diff.render(diffs, canary, out.line)
    code = fleet_diff.exit_code(diffs)
    out.document(
        "fleet diff",
        {
            "stack": "",
            "problems": [f"{d.name}: {d.error}" for d in diffs if d.error],
            "catalog": snapshot.digest,
            "canary": canary,
            "clusters": {
                d.name: {
                    "exitCode": d.code,
                    "error": d.error,
                    "changes": sorted(fleet_diff.change_set(d.document)),
                }
                for d in diffs
            },
            "groups": [
                {
                    "clusters": list(g.clusters),
                    "sameAsCanary": g.canary,
                    "changes": sorted(g.changes),
                }
                for g in groups
            ],
            "totals": fleet_diff.totals(diffs),
        },
        code,
    )
    return code


def _status(args: argparse.Namespace) -> int:
    from kpt_catalog.fleet import status as fleet_status

    out = Printer(args.output == "json")
    try:
        config = _load(args.fleet)
        packages = [p.name for p in stackfile.load_stack_config(config.clusters[0].name).packages]
    except ConfigError as error:
        print(error, file=sys.stderr)
        out.document(
            "fleet status", {"stack": "", "problems": str(error).splitlines()}, exits.CONFIG
        )
        return exits.CONFIG
    names = [c.name for c in config.clusters]
    statuses = fleet_status.check_all(names, fleet_dir(args.fleet), config.max_concurrency)
    fleet_status.render(statuses, packages, out.line)
    code = fleet_status.exit_code(statuses)
    body = {"stack": "", "problems": [], "clusters": fleet_status.status_json(statuses)}
    out.document("fleet status", body, code)
    return code


def _export(args: argparse.Namespace) -> int:
    from kpt_catalog.fleet.export import operator_stacks, render_stacks

    try:
        config = _load(args.fleet)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return exits.CONFIG
    stacks = operator_stacks(
        plan_waves(config),
        repository=args.repo,
        branch=args.branch,
        namespace=args.namespace,
        backend=args.backend or "",
        passphrase_secret=args.passphrase_secret or "",
    )
    sys.stdout.write(render_stacks(stacks))
    return exits.OK


def _gate(config: FleetConfig, snapshot: Snapshot, approved: Sequence[str], out: Printer) -> int:
    """Before a rollout: every cluster's change set is the canary's, or approved by name."""
    canary = plan_waves(config)[0].clusters[0].name
    out.line(f"diffing catalog {snapshot.short} against every cluster first (fleet diff)")
    diffs = _diffs(config, snapshot, 300)
    groups = fleet_diff.render(diffs, canary, out.line)
    if any(d.name == canary and d.error for d in diffs):
        print(
            f"fleet up: the canary {canary} could not be diffed; nothing was deployed",
            file=sys.stderr,
        )
        return exits.FAILED
    refused = fleet_diff.unapproved(groups, approved)
    if refused:
        print(
            f"fleet up: {', '.join(refused)} would get other changes than the canary {canary} "
            "(above); nothing was deployed. Approve each by name once you have read its "
            f"changes: fleet up --yes {' '.join(f'--approve {n}' for n in refused)}",
            file=sys.stderr,
        )
        return exits.CONFIG
    return exits.OK


def _up(args: argparse.Namespace) -> int:
    from kpt_catalog.fleet.runner import CommandRunner  # the engine's side

    out = Printer()
    root = fleet_dir(args.fleet)
    if not args.yes:
        print(
            "fleet up: each cluster's up runs unattended and cannot ask: check `kpt-catalog "
            "fleet plan` (and each cluster's diff), then run fleet up --yes",
            file=sys.stderr,
        )
        return exits.CONFIG
    try:
        config = _load(args.fleet)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return exits.CONFIG
    finished: dict[str, str] | None = None
    before: dict[str, str] | None = None
    waves = plan_waves(config)
    if args.resume is not None:
        journal_path = (
            root / "runs" / f"{args.resume}.jsonl" if args.resume else latest_run(root / "runs")
        )
        if journal_path is None or not journal_path.exists():
            print(
                f"fleet up --resume: no rollout journal {journal_path or root / 'runs'}",
                file=sys.stderr,
            )
            return exits.CONFIG
        events = read_journal(journal_path)
        if any(e.get("event") == "end" for e in events):
            print(
                f"fleet up --resume: rollout {journal_path.stem} ended; nothing to resume",
                file=sys.stderr,
            )
            return exits.CONFIG
        start = next(e for e in events if e.get("event") == "run")
        run_id = journal_path.stem
        digest = str(start["catalog"])
        snapshot = Snapshot(digest, root / "catalogs" / digest)
        by_name = {c.name: c for c in config.clusters}
        waves = [
            Wave(w.name, tuple(by_name[n] for n in names if n in by_name), w.budget)
            for w, names in zip(waves, start["waves"], strict=False)
        ]
        finished = finished_clusters(events)
        before = dict(start.get("lastGood") or {})
        out.line(
            f"resuming rollout {run_id} (catalog {snapshot.short}): "
            f"{len(finished)} cluster(s) finished"
        )
    else:
        run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        try:
            snapshot = _snapshot_of(config.clusters[0].name, root)
        except ConfigError as error:
            print(error, file=sys.stderr)
            return exits.CONFIG
        out.line(f"rollout {run_id}: catalog {snapshot.short} to {len(config.clusters)} cluster(s)")
        gate = _gate(config, snapshot, args.approve or [], out)
        if gate != exits.OK:
            return gate
    runner = CommandRunner(root, root / "logs" / run_id, yes=args.yes)
    try:
        with fleet_lock(root / "lock", run_id) as stale:
            if stale:
                out.line(
                    f"the fleet lock of run {stale.get('run')} (pid {stale.get('pid')}, gone) "
                    "was taken over"
                )
            runner.prepare([c.name for w in waves for c in w.clusters])
            result = run_rollout(
                config,
                waves,
                runner,
                snapshot,
                root=root,
                run_id=run_id,
                finished=finished,
                before=before,
                out=out,
            )
    except FleetLockedError as error:
        print(f"fleet up: {error}", file=sys.stderr)
        return exits.CONFIG
    _table(result, out)
    out.line(f"rollout {run_id}: {result.verdict}; journal .fleet/runs/{run_id}.jsonl")
    if result.verdict == "done":
        return exits.OK
    if result.verdict == "deferred":
        return exits.UNREACHABLE
    return exits.FAILED


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kpt-catalog fleet",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--fleet", help=f"the fleet file (default: {FLEET_FILE} in the project)")
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", help="the waves and their clusters; offline")
    add_output_argument(plan)
    diff = commands.add_parser("diff", help="every cluster's diff, grouped against the canary's")
    diff.add_argument(
        "--timeout", type=int, default=300, help="seconds each cluster's diff may take"
    )
    add_output_argument(diff)
    export = commands.add_parser(
        "export", help="the waves as Pulumi Kubernetes Operator Stack objects (--operator)"
    )
    export.add_argument("--operator", action="store_true", required=True, help="Stack objects")
    export.add_argument("--repo", required=True, help="this project's git repository URL")
    export.add_argument("--branch", default="main", help="the branch the operator deploys")
    export.add_argument("--namespace", default="pulumi-operator", help="where the Stacks go")
    export.add_argument("--backend", help="the Pulumi backend URL the stacks' state is in")
    export.add_argument(
        "--passphrase-secret", help="a Secret (key `passphrase`) holding the stacks' passphrase"
    )
    status = commands.add_parser("status", help="one table: cluster by package")
    add_output_argument(status)
    up = commands.add_parser("up", help="roll the catalog out, wave by wave")
    up.add_argument("--resume", nargs="?", const="", help="go on with the last (or RUN) rollout")
    up.add_argument(
        "--approve",
        action="append",
        metavar="CLUSTER",
        help="deploy to CLUSTER although its changes are not the canary's (repeat for each)",
    )
    up.add_argument(
        "--yes",
        action="store_true",
        help="required: the clusters' ups run unattended, so none can ask",
    )
    args = parser.parse_args(argv)
    chosen = {"plan": _plan, "diff": _diff, "status": _status, "up": _up, "export": _export}
    return chosen[args.command](args)
