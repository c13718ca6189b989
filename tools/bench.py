"""`make bench`: what the program costs, measured side by side in one run. Prints one table.

1. Evaluation of the real `__main__.py` under the SDK's mocks (the dev stack on the example
   catalog), each in a fresh interpreter, against the same harness evaluating an empty program:
   the floor of interpreter start, SDK import and stack registration. Goal: at most 1.5x.
2. The package digest over a generated catalog (20 packages, 2,000 files, 200 MB, with
   multi-megabyte CRD files) against `sha256sum` over the same files. Goal: at most 1.3x. The full
   scan (digest plus the object scan the checks need) is shown beside it.
3. Evaluation with 5, 50 and 500 generated packages, flat and deep graphs: it should grow
   linearly. Beside each, the time this project's own code takes to load and check the catalog
   (the rest is the Pulumi SDK registering resources).
4. `make diff` on the dev stack against a stand-in kubectl that takes a fixed time per call, run
   side by side (the default) and one package at a time (JOBS=1, the serial sum of its calls).
   Goal: at most the share of the serial time that the deploy graph's critical path takes.

Runs alternate between the things compared, and each figure is a median, since the machines
this runs on are noisy.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from components.catalog import load
from components.scan import package_digest, scan_package
from kpt_catalog.stackfile import ROOT, load_stack_catalog

__all__ = ["main"]

_EVALUATE = """
import json, sys, time
start = time.perf_counter()
from tests.harness import run_program
config = json.loads(sys.argv[2])
run_program(config, program=__import__("pathlib").Path(sys.argv[1]))
"""


# Pulumi runs the program with bytecode caching on; a PYTHONDONTWRITEBYTECODE inherited from a CI
# shell would make every run recompile this project's modules (but not the SDK's, which pip
# compiled at install time) and so measure the compiler instead.
_ENVIRONMENT = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _evaluation_seconds(program: Path, config: dict[str, object]) -> float:
    """Wall time of a fresh interpreter evaluating `program` under mocks."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", _EVALUATE, str(program), json.dumps(config)],
        cwd=ROOT,
        env=_ENVIRONMENT,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def _alternate(runs: int, *measures: Callable[[], float]) -> list[float]:
    """Median of each measure over `runs` rounds, the measures taking turns within a round."""
    samples: list[list[float]] = [[] for _ in measures]
    for _ in range(runs):
        for index, measure in enumerate(measures):
            samples[index].append(measure())
    return [statistics.median(s) for s in samples]


def _timed(action: Callable[[], object]) -> Callable[[], float]:
    def measure() -> float:
        start = time.perf_counter()
        action()
        return time.perf_counter() - start

    return measure


def _generate_large_catalog(root: Path, packages: int, files: int, megabytes: int) -> list[Path]:
    """Packages of YAML objects, each with one multi-megabyte CRD, `megabytes` in all."""
    crd_body = _crd_text(2 * 1024 * 1024)
    per_package = files // packages
    budget = megabytes * 1024 * 1024 - packages * len(crd_body)
    filler_size = max(1024, budget // (packages * (per_package - 2)))
    directories = []
    for index in range(packages):
        directory = root / f"pkg{index:03d}"
        directory.mkdir(parents=True)
        (directory / "resourcegroup.yaml").write_text(
            "apiVersion: kpt.dev/v1alpha1\nkind: ResourceGroup\n"
            f"metadata:\n  name: pkg{index}\n  namespace: default\n"
            f"  labels:\n    cli-utils.sigs.k8s.io/inventory-id: bench-{index}\n"
        )
        (directory / "crds.yaml").write_text(crd_body.replace("KIND", f"Kind{index}"))
        for number in range(per_package - 2):
            payload = "x" * (filler_size - 120)
            (directory / f"cm{number:03d}.yaml").write_text(
                f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm{number}\n"
                f"  namespace: default\ndata:\n  payload: {payload}\n"
            )
        directories.append(directory)
    return directories


def _crd_text(size: int) -> str:
    head = (
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        "metadata:\n  name: kinds.bench.example.com\nspec:\n  group: bench.example.com\n"
        "  names:\n    kind: KIND\n    plural: kinds\n  scope: Namespaced\n  versions:\n"
        "  - name: v1\n    served: true\n    storage: true\n    schema:\n"
        "      openAPIV3Schema:\n        type: object\n        properties:\n"
    )
    field = (
        "          field{n}:\n            type: string\n"
        "            description: A field of a generated schema, long like Envoy Gateway's.\n"
    )
    parts, total, number = [head], len(head), 0
    while total < size:
        text = field.format(n=number)
        parts.append(text)
        total += len(text)
        number += 1
    return "".join(parts)


def _generated_stack(root: Path, count: int, *, chain: bool) -> dict[str, object]:
    """A catalog and config of `count` small packages. `chain`: each needs the one before it and
    one halfway back (a deep graph); otherwise each needs only the first (a flat one)."""
    packages = []
    for index in range(count):
        name = f"pkg{index:03d}"
        directory = root / name
        directory.mkdir(parents=True)
        (directory / "resourcegroup.yaml").write_text(
            "apiVersion: kpt.dev/v1alpha1\nkind: ResourceGroup\n"
            f"metadata:\n  name: {name}\n  namespace: {name}\n"
            f"  labels:\n    cli-utils.sigs.k8s.io/inventory-id: bench-{name}\n"
        )
        (directory / "objects.yaml").write_text(
            f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n---\n"
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {name}\n"
        )
        earlier = (index - 1, index // 2) if chain else (0,)
        needs = [f"pkg{n:03d}" for n in earlier if 0 <= n < index]
        packages.append(
            {
                "name": name,
                "path": name,
                "needs": sorted(set(needs)),
                "waitAfter": [
                    {
                        "resource": "configmap/settings",
                        "namespace": name,
                        "for": "create",
                        "timeout": "1m",
                    }
                ],
            }
        )
    # The program requires a context and an existing kubeconfig: the tests' stand-in has both.
    cluster = {"context": "test", "kubeconfig": str(ROOT / "tests" / "data" / "kubeconfig.yaml")}
    return {"catalogDir": str(root), "packages": packages, **cluster}


# What the stand-in kubectl sleeps per call: about what one call to an API server nearby costs.
# The stand-in kubectl's latency per call: long beside its own start (a Python interpreter,
# about 0.15 s of CPU), so that the figure measures how the calls are scheduled.
_KUBECTL_SECONDS = 1.0


def _diff_rows(work: Path, runs: int) -> list[tuple[str, str, str, str]]:
    """`make diff` side by side against the same run one package at a time."""
    from tests.harness import EXAMPLE_CATALOG
    from tests.test_diff import FakeCluster

    record = work / "diff-calls.jsonl"
    cluster = FakeCluster(work / "diff-cluster.json", record, EXAMPLE_CATALOG)
    environment = {
        **_ENVIRONMENT,
        "PATH": f"{ROOT / 'tests' / 'fakebin'}{os.pathsep}{os.environ['PATH']}",
        "FAKE_KUBECTL_CLUSTER": str(cluster.path),
        "FAKE_KUBECTL_DELAY": str(_KUBECTL_SECONDS),
        "FAKE_RECORD": str(record),
    }

    def run(jobs: int, *extra: str) -> float:
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "kpt_catalog.diff",
                "--catalog-dir",
                str(EXAMPLE_CATALOG),
                "--jobs",
                str(jobs),
                *extra,
            ],
            cwd=ROOT,
            env=environment,
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - start

    record.unlink(missing_ok=True)
    run(8)
    calls = len(record.read_text().splitlines())
    # The critical path of those calls: the probe, then the longest run of calls one package
    # makes one after another (packages are checked side by side, their calls in turn).
    catalog = load_stack_catalog("dev", {"catalogDir": str(EXAMPLE_CATALOG)})
    longest = 0
    for package in catalog.packages:
        record.unlink(missing_ok=True)
        run(8, "--package", package.spec.name)
        longest = max(longest, len(record.read_text().splitlines()) - 1)

    # What one call really takes: the latency plus the stand-in's own start, measured alone.
    def one_call() -> float:
        start = time.perf_counter()
        subprocess.run(
            ["kubectl", "get", "--raw", "/readyz"], env=environment, check=True, capture_output=True
        )
        return time.perf_counter() - start

    per_call = statistics.median(one_call() for _ in range(5))
    critical = (1 + longest) * per_call
    side_by_side, serial = _alternate(runs, lambda: run(8), lambda: run(1))
    return [
        (
            f"make diff, dev stack, {calls} kubectl calls of {_KUBECTL_SECONDS}s",
            f"{side_by_side:.3f} s",
            f"{serial:.3f} s one at a time",
            f"{side_by_side / serial:.2f}x",
        ),
        (
            f"  critical path: the probe, then {longest} calls in turn, {per_call:.2f}s each",
            f"{critical:.3f} s",
            "",
            f"{side_by_side / critical:.2f}x of it (goal <= 1.20x)",
        ),
        (
            "  stand-in latency alone, serial sum",
            f"{calls * _KUBECTL_SECONDS:.3f} s",
            "",
            "",
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="rounds per comparison (median)")
    parser.add_argument("--megabytes", type=int, default=200, help="size of the large catalog")
    args = parser.parse_args(argv)
    from tests.harness import EXAMPLE_CATALOG, dev_stack_config

    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="kpt-catalog-bench-") as scratch:
        work = Path(scratch)
        empty = work / "empty_program.py"
        empty.write_text('"""An empty Pulumi program: the floor."""\n')
        dev = {**dev_stack_config(), "catalogDir": str(EXAMPLE_CATALOG)}
        _evaluation_seconds(ROOT / "__main__.py", dev)  # warm-up: writes the bytecode caches
        program, floor = _alternate(
            args.runs,
            lambda: _evaluation_seconds(ROOT / "__main__.py", dev),
            lambda: _evaluation_seconds(empty, {}),
        )
        rows.append(
            (
                "evaluate dev stack / empty program",
                f"{program:.3f} s",
                f"{floor:.3f} s",
                f"{program / floor:.2f}x (goal <= 1.5x)",
            )
        )

        directories = _generate_large_catalog(work / "large", 20, 2000, args.megabytes)
        files = sorted(str(p) for p in (work / "large").rglob("*") if p.is_file())
        size = sum(Path(f).stat().st_size for f in files) / 1e6
        sha256sum = shutil.which("sha256sum") or "sha256sum"

        def run_sha256sum() -> None:
            subprocess.run([sha256sum, *files], check=True, stdout=subprocess.DEVNULL)

        digest, scan, reference = _alternate(
            max(3, args.runs // 2),
            _timed(lambda: [package_digest(d) for d in directories]),
            _timed(lambda: [scan_package(d) for d in directories]),
            _timed(run_sha256sum),
        )
        label = f"digest {len(files)} files, {size:.0f} MB / sha256sum"
        rows.append(
            (
                label,
                f"{digest:.3f} s",
                f"{reference:.3f} s",
                f"{digest / reference:.2f}x (goal <= 1.3x)",
            )
        )
        rows.append(
            (
                "full scan (digest + object scan) / sha256sum",
                f"{scan:.3f} s",
                f"{reference:.3f} s",
                f"{scan / reference:.2f}x",
            )
        )

        main_program = ROOT / "__main__.py"
        growth: dict[bool, tuple[int, float]] = {}
        for count in (5, 50, 500):
            for chain in (False, True):
                config = _generated_stack(work / f"stack{count}{chain}", count, chain=chain)
                (seconds,) = _alternate(
                    max(3, args.runs // 2),
                    functools.partial(_evaluation_seconds, main_program, config),
                )
                above_floor = max(seconds - floor, 1e-9)
                previous = growth.get(chain)
                ratio = (
                    f"{above_floor / previous[1]:.1f}x for {count // previous[0]}x packages"
                    if previous
                    else "-"
                )
                shape = "deep" if chain else "flat"
                rows.append(
                    (
                        f"evaluate {count} packages, {shape} graph",
                        f"{seconds:.3f} s",
                        f"{above_floor * 1000 / count:.1f} ms/package above floor",
                        ratio,
                    )
                )
                (loading,) = _alternate(
                    max(3, args.runs // 2),
                    _timed(functools.partial(load, config.get, stack="bench", base_dir=work)),
                )
                rows.append(
                    (
                        f"  of which catalog load ({shape}, in-process)",
                        f"{loading * 1000:.1f} ms",
                        f"{loading * 1000 / count:.2f} ms/package",
                        "",
                    )
                )
                growth[chain] = (count, above_floor)

        rows.extend(_diff_rows(work, max(3, args.runs // 2)))

    cpu = platform.processor() or platform.machine()
    print(
        f"kpt-catalog benchmark: Python {platform.python_version()}, {cpu}, "
        f"{os.cpu_count()} cores, {args.runs} rounds, medians"
    )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    header = ("what", "measured", "against", "ratio")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
