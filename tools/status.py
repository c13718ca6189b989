"""`make status`: the documented checks of every package, in deploy order, without Pulumi.

For each package: `kpt live status` until every object is Current (within its reconcile timeout),
then its `waitBefore` and `waitAfter` gates and a wait for each native object's `waitFor`
condition. One line per package; exit status 1 when any package is unhealthy. It changes nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence

from components import kptstep
from components.catalog import LoadedPackage
from components.config import CatalogConfig, ConfigError, WaitSpec
from components.environment import status_environment
from tools.stackfile import ROOT, load_stack_catalog

__all__ = ["check_package", "main", "native_waits"]


def native_waits(package: LoadedPackage) -> list[WaitSpec]:
    """A `kubectl wait` for each native object whose manifest sets `waitFor`."""
    waits = []
    for manifest, documents in package.manifests:
        if not manifest.wait_for:
            continue
        for document in documents:
            metadata = document.body.get("metadata") or {}
            waits.append(
                WaitSpec(
                    resource=f"{document.kind.kind.lower()}/{document.name}",
                    condition=manifest.wait_for,
                    namespace=str(metadata.get("namespace") or ""),
                    selector="",
                    timeout=manifest.timeout,
                    report="",
                )
            )
    return waits


def check_package(package: LoadedPackage, config: CatalogConfig) -> tuple[bool, str, list[str]]:
    """(healthy, one-line verdict, the step's own lines) for one package."""
    spec = package.spec
    waits = [*spec.wait_before, *spec.wait_after, *native_waits(package)]
    environment = {**os.environ, **status_environment(package, config, waits)}
    completed = subprocess.run(
        [sys.executable, kptstep.STEP_SCRIPT, kptstep.SUBCOMMAND_STATUS],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    result = kptstep.parse_result(completed.stdout)
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    # The step's failure summary starts at its "<step> failed (<kind>)" line; before it is progress.
    starts = [i for i, line in enumerate(lines) if " failed (" in line]
    details = lines[starts[-1] :] if starts else lines[-12:]
    if completed.returncode == 0 and result.get("ok"):
        verdict = (
            f"healthy: {result.get('objects', 0)} object(s) Current, {len(waits)} check(s) met"
        )
        return True, verdict, details
    failure = result.get("failure", f"exit status {completed.returncode}")
    return False, f"UNHEALTHY ({failure})", details


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make status", description=__doc__)
    parser.add_argument("--stack", default="dev", help="stack whose Pulumi.<stack>.yaml to read")
    parser.add_argument("--catalog-dir", help="read the catalog here instead of catalogDir")
    args = parser.parse_args(argv)
    overrides = {"catalogDir": args.catalog_dir} if args.catalog_dir else {}
    try:
        catalog = load_stack_catalog(args.stack, overrides)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    unhealthy = 0
    for package in catalog.packages:
        healthy, verdict, details = check_package(package, catalog.config)
        print(f"{package.spec.name:<16} {verdict}", flush=True)
        if not healthy:
            unhealthy += 1
            for line in details:
                print(f"    {line}")
    total = len(catalog.packages)
    print(f"{total - unhealthy} of {total} package(s) healthy")
    return 1 if unhealthy else 0


if __name__ == "__main__":
    sys.exit(main())
