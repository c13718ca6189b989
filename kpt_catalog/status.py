"""`kpt-catalog status`: the deploy's own checks for each package, against the cluster.

For each package: `kpt live status` until every object is Current (within its reconcile timeout),
then its `waitBefore` and `waitAfter` gates and a wait for each native object's `waitFor`
condition. It changes nothing, so every package is checked at once (up to JOBS), under one bound
(TIMEOUT); the lines come out in deploy order.

Exit status (kpt_catalog.exits): 0 every package healthy; 1 some package unhealthy; 2 a
configuration error (nothing was run); 3 the cluster did not answer (nothing was checked); 4 some
package could not be checked within TIMEOUT.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from components import kptstep
from components.catalog import LoadedPackage
from components.config import CatalogConfig, ConfigError, WaitSpec
from components.environment import status_environment
from kpt_catalog import clusterops, exits
from kpt_catalog.output import Printer
from kpt_catalog.stackfile import ROOT

__all__ = [
    "Health",
    "check_package",
    "health_json",
    "main",
    "native_waits",
]


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


@dataclass(frozen=True)
class Health:
    """One package's verdict."""

    healthy: bool
    verdict: str
    """One line: `healthy: ...`, `UNHEALTHY (...)` or `NOT CHECKED (...)`."""
    details: tuple[str, ...]
    """The step's own lines explaining a failure."""


def check_package(
    package: LoadedPackage,
    config: CatalogConfig,
    cluster: clusterops.Cluster,
    deadline: float,
    bound: str,
    *,
    stack: str,
) -> Health:
    """Run the step runner's `status` for one package, killed at `deadline`; its log goes where
    the deploy's steps of `stack` write theirs."""
    spec = package.spec
    waits = [*spec.wait_before, *spec.wait_after, *native_waits(package)]
    environment = {**os.environ, **status_environment(package, config, waits)}
    environment[kptstep.ENV_KUBECONFIG] = cluster.kubeconfig
    environment[kptstep.ENV_STACK] = stack
    ran = clusterops.run_bounded(
        [sys.executable, kptstep.STEP_SCRIPT, kptstep.SUBCOMMAND_STATUS],
        deadline=deadline,
        env=environment,
        cwd=ROOT,
    )
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    if ran.killed:
        return Health(False, f"NOT CHECKED (stopped at {bound})", tuple(lines[-4:]))
    result = kptstep.parse_result(ran.stdout)
    # The step's failure summary starts at its "<step> failed (<kind>)" line; before it is progress.
    starts = [i for i, line in enumerate(lines) if " failed (" in line]
    details = tuple(lines[starts[-1] :] if starts else lines[-12:])
    if ran.returncode == 0 and result.get("ok"):
        verdict = (
            f"healthy: {result.get('objects', 0)} object(s) Current, {len(waits)} check(s) met"
        )
        return Health(True, verdict, details)
    failure = result.get("failure", f"exit status {ran.returncode}")
    return Health(False, f"UNHEALTHY ({failure})", details)


def health_json(name: str, health: Health) -> dict[str, object]:
    """One package in `status --output json` (docs/schema/status.json)."""
    state = "healthy" if health.healthy else "unhealthy"
    if health.verdict.startswith("NOT CHECKED"):
        state = "not-checked"
    return {
        "name": name,
        "state": state,
        "verdict": health.verdict,
        "details": list(health.details) if not health.healthy else [],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = clusterops.checks_parser("status", __doc__ or "", what="check", checked="checked")
    args = parser.parse_args(argv)
    out = Printer(args.output == "json")

    def finish(code: int, packages: list[dict[str, object]], problems: list[str]) -> int:
        out.document(
            "status", {"stack": args.stack, "packages": packages, "problems": problems}, code
        )
        return code

    try:
        settings = clusterops.load_run_settings(args)
        catalog = settings.catalog
        deadline = time.monotonic() + settings.timeout
        cluster = clusterops.connect(args.stack, catalog.config, deadline, out)
    except (ConfigError, ValueError) as error:
        print(error, file=sys.stderr)
        return finish(exits.CONFIG, [], str(error).splitlines())
    if cluster is None:
        return finish(exits.UNREACHABLE, [], ["the cluster did not answer"])
    bound = clusterops.bound_text(settings.timeout)
    by_name = {package.spec.name: package for package in catalog.packages}

    def check(name: str, until: float) -> Health:
        return check_package(by_name[name], catalog.config, cluster, until, bound, stack=args.stack)

    def show(name: str, health: Health) -> None:
        colour = "green" if health.healthy else "red"
        out.line(f"{name:<16} {out.paint(health.verdict, colour)}")
        if not health.healthy:
            for line in health.details:
                out.line(f"    {line}")

    results = clusterops.run_in_deploy_order(
        settings.selected, check, jobs=settings.jobs, deadline=deadline, show=show
    )
    healthy = sum(1 for health in results.values() if health.healthy)
    out.line(f"{healthy} of {len(results)} package(s) healthy")
    packages = [health_json(name, health) for name, health in results.items()]
    if any(package["state"] == "not-checked" for package in packages):
        code = exits.FAILED
    else:
        code = exits.OK if healthy == len(results) else exits.DIFFERS
    return finish(code, packages, [])


if __name__ == "__main__":
    sys.exit(main())
