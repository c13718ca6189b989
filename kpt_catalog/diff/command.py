"""`kpt-catalog diff`: the command."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from components.config import ConfigError
from kpt_catalog import clusterops, exits
from kpt_catalog.diff.model import PackageDiff
from kpt_catalog.diff.package import diff_package
from kpt_catalog.diff.prerequisites import Prerequisites
from kpt_catalog.diff.preview import (
    packages_in_preview,
    preview_digest,
    removals_in_preview,
    show_removals,
)
from kpt_catalog.diff.render import package_json, render
from kpt_catalog.output import Printer

__all__ = [
    "DESCRIPTION",
    "main",
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = clusterops.checks_parser("diff", DESCRIPTION, what="diff", checked="diffed")
    # `kpt-catalog preview` hands its `pulumi preview --json` here (kpt_catalog/deploy.py).
    parser.add_argument("--after-preview", help=argparse.SUPPRESS)
    parser.add_argument("--drift", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    out = Printer(args.output == "json")
    packages: list[dict[str, object]] = []

    def finish(code: int, problems: Sequence[str] = ()) -> int:
        body = {"stack": args.stack, "packages": packages, "problems": list(problems)}
        out.document("diff", body, code)
        return code

    preview = ""
    if args.after_preview:
        # Read and checked first, --drift or not: a preview that failed stops here.
        try:
            preview = Path(args.after_preview).read_text()
            preview_digest(preview)
        except (OSError, ValueError) as error:
            print(f"kpt-catalog preview: {error}", file=sys.stderr)
            return finish(exits.FAILED, [str(error)])
    try:
        settings = clusterops.load_run_settings(args)
    except (ConfigError, ValueError) as error:
        print(error, file=sys.stderr)
        return finish(exits.CONFIG, str(error).splitlines())
    catalog = settings.catalog
    names = [package.spec.name for package in catalog.packages]
    selected = settings.selected
    if args.after_preview:
        changing = set(names) if args.drift else packages_in_preview(preview, names)
        selected = [name for name in selected if name in changing]
        removals = [r for r in removals_in_preview(preview) if r.package not in names]
        out.line("\nObjects each package's apply would change (kpt-catalog diff):")
        if removals and not show_removals(removals, settings.timeout):
            return finish(exits.FAILED)
        if not selected:
            out.line("no package is created or updated: no objects change (--drift checks all)")
            return finish(exits.OK)
    deadline = time.monotonic() + settings.timeout
    bound = clusterops.bound_text(settings.timeout)
    try:
        cluster = clusterops.connect(args.stack, catalog.config, deadline, out)
    except clusterops.UnusableClusterError as error:
        print(error, file=sys.stderr)
        return finish(exits.CONFIG, [str(error)])
    if cluster is None:
        return finish(exits.UNREACHABLE, ["the cluster did not answer"])
    by_name = {package.spec.name: package for package in catalog.packages}
    prerequisites = Prerequisites.of(catalog)

    def check(name: str, until: float) -> PackageDiff:
        return diff_package(by_name[name], cluster, until, prerequisites)

    def show(name: str, result: PackageDiff) -> None:
        lines = render(name, result, bound)
        colour = "red" if result.error else "yellow" if result.differences else "green"
        verdict = lines[0][len(name) :]
        padding = verdict[: len(verdict) - len(verdict.lstrip())]
        out.line(name + padding + out.paint(verdict.lstrip(), colour))
        for line in lines[1:]:
            out.line(line)

    results = clusterops.run_in_deploy_order(
        selected, check, jobs=settings.jobs, deadline=deadline, show=show
    )
    packages.extend(package_json(name, result) for name, result in results.items())
    errors = sum(1 for r in results.values() if r.error)
    differ = sum(1 for r in results.values() if not r.error and r.differences)
    summary = f"{len(results) - errors - differ} of {len(results)} package(s) in sync"
    out.line(
        summary
        + (f", {differ} differ" if differ else "")
        + (f", {errors} failed" if errors else "")
    )
    if errors:
        return finish(exits.FAILED)
    if differ and not args.after_preview:
        return finish(exits.DIFFERS)
    return finish(exits.OK)


DESCRIPTION = """What `kpt-catalog up` would do to each package's objects, from the cluster's own
dry run: objects that would change (with a unified diff), be created, or be pruned (listed in
the cluster's inventory, no longer in the files). Secret values are never printed.

Exit status: 0 in sync; 1 differences; 2 a configuration error; 3 the cluster did not answer;
4 some package could not be diffed (kubectl failed, or TIMEOUT)."""
