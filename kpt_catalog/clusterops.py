"""What `make status` and `make diff` share: their common options, which stack and cluster,
whether it answers, and running one check per package side by side under one overall bound, with
results printed in deploy order.

Every command runs in its own process group; at the bound (`TIMEOUT=`) the group gets SIGTERM,
then SIGKILL after a short grace, so nothing a check started outlives the run.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import yaml

from components.catalog import Catalog
from components.config import CatalogConfig, format_duration, parse_duration, yaml_error_text
from kpt_catalog.output import Printer, add_output_argument
from kpt_catalog.stackfile import load_stack_catalog, unknown_package

__all__ = [
    "DEFAULT_JOBS",
    "DEFAULT_TIMEOUT",
    "Cluster",
    "Ran",
    "RunSettings",
    "UnusableClusterError",
    "add_bound_arguments",
    "add_package_argument",
    "add_stack_arguments",
    "bound_text",
    "checks_parser",
    "cluster_of",
    "cluster_problem",
    "connect",
    "load_run_settings",
    "parse_jobs",
    "parse_timeout",
    "run_bounded",
    "run_in_deploy_order",
    "stop_everything",
    "unreachable_reason",
]

DEFAULT_TIMEOUT = "5m"
DEFAULT_JOBS = 8
# How long a process group may take to stop after SIGTERM before it gets SIGKILL: longer than the
# step runner's own grace (3 s, then 1 s to settle), so that it stops the kpt or kubectl it runs
# in a session of their own before it is killed itself.
KILL_GRACE_SECONDS = 6.0
# How long the reachability probe may take: an API server that does not answer /readyz in this
# time will not serve the checks either.
PROBE_SECONDS = 15

Result = TypeVar("Result")


@dataclass(frozen=True)
class Cluster:
    """The kubeconfig and context every command of a run uses."""

    kubeconfig: str
    context: str

    def flags(self) -> list[str]:
        """`--kubeconfig` and `--context`, as kubectl and kpt spell them (a stack always names
        both, so the shell's `KUBECONFIG` and current context never decide the cluster)."""
        return ["--kubeconfig", self.kubeconfig, "--context", self.context]

    def describe(self) -> str:
        """`kubeconfig /x, context lab`."""
        return f"kubeconfig {self.kubeconfig}, context {self.context}"


def cluster_of(config: CatalogConfig) -> Cluster:
    """The cluster the stack's config names."""
    return Cluster(str(config.kubeconfig_path), config.context)


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """`--stack` and `--catalog-dir`: which stack file, and where its catalog is read."""
    parser.add_argument("--stack", default="dev", help="stack whose Pulumi.<stack>.yaml to read")
    parser.add_argument("--catalog-dir", help="read the catalog here instead of catalogDir")


def add_package_argument(parser: argparse.ArgumentParser, *, what: str) -> None:
    """`--package` (PACKAGE=): `what` only this package (`load_run_settings` checks the name)."""
    parser.add_argument("--package", help=f"{what} only this package (PACKAGE=)")


def add_bound_arguments(parser: argparse.ArgumentParser, *, checked: str) -> None:
    """`--timeout` (TIMEOUT=) and `--jobs` (JOBS=); `checked` says what JOBS counts."""
    parser.add_argument("--timeout", default=DEFAULT_TIMEOUT, help="bound on the whole run (5m)")
    parser.add_argument("--jobs", default=str(DEFAULT_JOBS), help=f"packages {checked} at once")


def checks_parser(
    command: str, description: str, *, what: str, checked: str
) -> argparse.ArgumentParser:
    """The parser of a command that checks each package against the cluster (`diff`, `status`):
    `--stack`, `--catalog-dir`, `--package`, `--timeout`, `--jobs` and `--output`."""
    parser = argparse.ArgumentParser(
        prog=f"kpt-catalog {command}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_stack_arguments(parser)
    add_package_argument(parser, what=what)
    add_bound_arguments(parser, checked=checked)
    add_output_argument(parser)
    return parser


@dataclass(frozen=True)
class RunSettings:
    """A run's bound, its parallelism and the stack's catalog, read from the options."""

    timeout: int
    """Seconds the whole run may take."""
    jobs: int
    """Packages checked at once."""
    catalog: Catalog
    """The stack's config and every package of its catalog."""
    selected: list[str]
    """The packages to check, in deploy order: `--package`'s, else all of them."""


def load_run_settings(args: argparse.Namespace) -> RunSettings:
    """The options of `add_stack_arguments`, `add_bound_arguments` and `add_package_argument`,
    checked, and the stack's catalog loaded; ValueError or ConfigError naming what is wrong,
    before anything runs."""
    overrides = {"catalogDir": args.catalog_dir} if args.catalog_dir else {}
    timeout = parse_timeout(args.timeout)
    jobs = parse_jobs(args.jobs)
    catalog = load_stack_catalog(args.stack, overrides)
    names = [package.spec.name for package in catalog.packages]
    package = getattr(args, "package", None)
    problem = unknown_package(args.stack, package, names) if package is not None else ""
    if problem:
        raise ValueError(problem)
    return RunSettings(timeout, jobs, catalog, [package] if package else names)


def cluster_problem(cluster: Cluster) -> str:
    """Why the stack's cluster cannot even be asked, with the fix; "" when it can: kubectl on
    PATH, the kubeconfig file readable, and the context named in it. These are configuration
    errors (exit 2), never "unreachable", which means a cluster that did not answer."""
    if shutil.which("kubectl") is None:
        return (
            "kubectl is not on PATH: install it (https://kubernetes.io/docs/tasks/tools/#kubectl)"
            " and run this again"
        )
    path = Path(cluster.kubeconfig)
    if not path.is_file():
        return (
            f"kpt-catalog:kubeconfig: {cluster.kubeconfig} does not exist; set the path of the "
            "cluster's kubeconfig in the stack file (RKE2 writes /etc/rancher/rke2/rke2.yaml on "
            "its servers)"
        )
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        return f"kpt-catalog:kubeconfig: {cluster.kubeconfig} cannot be read: {error}"
    except yaml.YAMLError as error:
        return f"kpt-catalog:kubeconfig: {yaml_error_text(cluster.kubeconfig, error)}"
    contexts = document.get("contexts") if isinstance(document, dict) else None
    names = [
        str(entry.get("name"))
        for entry in (contexts if isinstance(contexts, list) else [])
        if isinstance(entry, dict) and entry.get("name")
    ]
    if cluster.context not in names:
        known = ", ".join(names) or "none"
        nearest = difflib.get_close_matches(cluster.context, names, n=1, cutoff=0.6)
        hint = f"did you mean {nearest[0]!r}? " if nearest else ""
        return (
            f"kpt-catalog:context: {cluster.kubeconfig} has no context {cluster.context!r}; "
            f"{hint}its contexts: {known}"
        )
    return ""


class UnusableClusterError(ValueError):
    """The stack's cluster cannot be asked (`cluster_problem`): a configuration error."""


def connect(
    stack: str, config: CatalogConfig, deadline: float, printer: Printer | None = None
) -> Cluster | None:
    """Print which cluster the stack names, then probe it; None, after printing why, when it
    does not answer. UnusableClusterError when it cannot be asked at all."""
    printer = printer or Printer()
    cluster = cluster_of(config)
    printer.line(f"stack {stack}: {cluster.describe()}")
    problem = cluster_problem(cluster)
    if problem:
        raise UnusableClusterError(problem)
    reason = unreachable_reason(cluster, deadline)
    if reason:
        printer.line(printer.paint(f"cluster unreachable ({cluster.describe()}): {reason}", "red"))
        return None
    return cluster


def parse_timeout(text: str) -> int:
    """Seconds of a `TIMEOUT=` duration; ValueError naming TIMEOUT when it is not one."""
    try:
        return parse_duration(text)
    except ValueError as error:
        raise ValueError(f"TIMEOUT: {error}") from None


def parse_jobs(text: str) -> int:
    """A `JOBS=` count of checks run at once; ValueError naming JOBS when it is not one."""
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"JOBS: {text!r} is not a whole number of at least 1")
    return int(text)


@dataclass(frozen=True)
class Ran:
    """What one bounded command did."""

    returncode: int
    stdout: str
    stderr: str
    killed: bool
    """Killed at the run's bound before it finished."""

    def last_lines(self, count: int = 6) -> list[str]:
        """The last non-empty lines of stderr (else stdout): what a failure message quotes."""
        text = self.stderr if self.stderr.strip() else self.stdout
        return [line for line in text.splitlines() if line.strip()][-count:]


# Process groups started and not yet reaped, so that an interrupted run can stop them all.
_groups: set[int] = set()
_groups_lock = threading.Lock()


def _signal_group(pgid: int, signum: int) -> None:
    # ProcessLookupError: the group is gone; PermissionError: macOS, for a group of zombies.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM to the process group (the step runner forwards it to kpt), SIGKILL after a grace."""
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_GRACE_SECONDS)
    _signal_group(proc.pid, signal.SIGKILL)


# After the group is stopped, how long its pipes may take to close. A child that left the group
# (a kubeconfig exec plugin can call setsid) keeps them open as long as it lives: reading stops
# here instead, so the run's bound holds.
DRAIN_SECONDS = 1.0


def _drain(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """What the stopped command wrote, read until its pipes close or DRAIN_SECONDS pass."""
    try:
        return proc.communicate(timeout=DRAIN_SECONDS)
    except subprocess.TimeoutExpired as expired:
        # communicate() hands over what it read so far as bytes, undecoded.
        def text(data: bytes | str | None) -> str:
            if isinstance(data, bytes):
                return data.decode("utf-8", errors="replace")
            return data or ""

        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        return text(expired.output), text(expired.stderr)


def stop_everything() -> None:
    """Stop every command still running (Ctrl-C on the whole run)."""
    with _groups_lock:
        groups = list(_groups)
    for pgid in groups:
        _signal_group(pgid, signal.SIGTERM)
    time.sleep(0.2)
    for pgid in groups:
        _signal_group(pgid, signal.SIGKILL)


def run_bounded(
    argv: Sequence[str],
    *,
    deadline: float,
    stdin_text: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Ran:
    """Run `argv` in its own process group until it exits or `deadline` (a `time.monotonic()`
    value) passes; then the group is stopped and the result says `killed`."""
    if time.monotonic() >= deadline:
        return Ran(-1, "", "", killed=True)
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError:
        return Ran(127, "", f"{argv[0]} is not on PATH", killed=False)
    except OSError as error:
        # E2BIG (an argument list longer than the system takes), EACCES, ENOEXEC, ...: the
        # command never ran; a failure like any other, said in one line.
        return Ran(126, "", f"{argv[0]} could not be started: {error.strerror or error}", False)
    with _groups_lock:
        _groups.add(proc.pid)
    try:
        try:
            stdout, stderr = proc.communicate(
                stdin_text, timeout=max(0.0, deadline - time.monotonic())
            )
        except subprocess.TimeoutExpired:
            _stop(proc)
            stdout, stderr = _drain(proc)
            return Ran(proc.returncode, stdout, stderr, killed=True)
        # Whatever the command left running in its group goes with it.
        _signal_group(proc.pid, signal.SIGKILL)
        return Ran(proc.returncode, stdout, stderr, killed=False)
    except BaseException:
        _stop(proc)
        raise
    finally:
        with _groups_lock:
            _groups.discard(proc.pid)


def unreachable_reason(cluster: Cluster, deadline: float) -> str:
    """Empty when the cluster's API server answers `GET /readyz`, else kubectl's reason.

    /readyz is readable without any RBAC grant (the `system:public-info-viewer` role), so it
    tests the address, the credentials and the context, and nothing the checks may lack.
    """
    probe_end = min(deadline, time.monotonic() + PROBE_SECONDS)
    argv = [
        "kubectl",
        *cluster.flags(),
        "get",
        "--raw",
        "/readyz",
        f"--request-timeout={PROBE_SECONDS}s",
    ]
    ran = run_bounded(argv, deadline=probe_end)
    if ran.killed:
        return f"kubectl get --raw /readyz did not answer within {PROBE_SECONDS}s"
    if ran.returncode != 0:
        return "; ".join(ran.last_lines(2)) or f"kubectl exited {ran.returncode}"
    return ""


def run_in_deploy_order(
    names: Sequence[str],
    check: Callable[[str, float], Result],
    *,
    jobs: int,
    deadline: float,
    show: Callable[[str, Result], None],
) -> dict[str, Result]:
    """Run `check(name, deadline)` for every name, up to `jobs` at once, and `show` each result
    as soon as it and every name before it are done, so the output reads in deploy order.

    A check that starts after the deadline must return at once (`run_bounded` does); Ctrl-C
    stops every running command before it propagates.
    """
    results: dict[str, Result] = {}
    executor = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="check")
    try:
        futures: list[tuple[str, Future[Result]]] = [
            (name, executor.submit(check, name, deadline)) for name in names
        ]
        for name, future in futures:
            results[name] = future.result()
            show(name, results[name])
    except BaseException:
        executor.shutdown(wait=False, cancel_futures=True)
        stop_everything()
        raise
    executor.shutdown(wait=True)
    return results


def bound_text(seconds: int) -> str:
    """`TIMEOUT=5m`, as a message names the bound."""
    return f"TIMEOUT={format_duration(seconds)}"
