"""The operations of a rollout on a real cluster: `./kpt-catalog up`, `status` and `destroy` of
that cluster's stack, each a process of its own.

Each cluster gets a work directory of its own, `.fleet/work/<cluster>/`, where the catalog being
rolled out is put (its `catalog/` and `packages.yaml`, replaced whole before each `up`); the
commands read it through KPT_CATALOG_ROLLOUT instead of the stack's catalogDir. The path stays
the same from one rollout to the next, so a package whose files did not change is not applied
again. The stacks are created and selected beforehand, one at a time (`prepare`): the commands
then run with KPT_CATALOG_SELECT=no, and no two processes ever write Pulumi's workspace file
at once (pulumi/pulumi#8186). Each command's whole output goes to `.fleet/logs/<run>/`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from components.config import ConfigError
from components.config.files import ROLLOUT_VARIABLE
from kpt_catalog import clusterops, exits
from kpt_catalog.fleet.journal import process_alive
from kpt_catalog.fleet.rollout import Outcome
from kpt_catalog.fleet.snapshot import Snapshot
from kpt_catalog.stackfile import ROOT, load_stack_config

__all__ = ["CommandRunner"]


COMMAND = str(ROOT / "kpt-catalog")
TAG = "kpt-catalog:catalog"
"""The stack tag naming the digest of the catalog the cluster last ran well."""
WRAPPER = ROOT / "kpt_catalog" / "pulumi-stack.sh"


class CommandRunner:
    """Runs `./kpt-catalog` for each cluster of a rollout."""

    def __init__(self, fleet_dir: Path, logs: Path, *, yes: bool = True) -> None:
        self.fleet_dir = fleet_dir
        self.logs = logs
        self.yes = yes

    def _work(self, cluster: str) -> Path:
        return self.fleet_dir / "work" / cluster

    def _env(self, cluster: str) -> dict[str, str]:
        return {
            **os.environ,
            ROLLOUT_VARIABLE: str(self._work(cluster)),
            "KPT_CATALOG_SELECT": "no",
            "NO_COLOR": "1",
        }

    def _run(self, cluster: str, what: str, argv: Sequence[str], env: Mapping[str, str]) -> int:
        """Run `argv` for the cluster, its output appended to the cluster's log. While it runs,
        `.fleet/work/<cluster>.pid` names it: a rollout resumed after this one was killed waits
        for it to end instead of starting a second engine on the same stack."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{cluster}.log"
        marker = self.fleet_dir / "work" / f"{cluster}.pid"
        marker.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as handle:
            self._wait_for_earlier(marker, handle)
            handle.write(f"\n==== {time.strftime('%H:%M:%S')} {what}: {' '.join(argv)}\n")
            handle.flush()
            process = subprocess.Popen(
                list(argv),
                cwd=ROOT,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                # a session of its own: Ctrl-C on the rollout stops the rollout, never an up
                # half-way (which would strand kpt); `--resume` waits for it
                start_new_session=True,
            )
            marker.write_text(f"{process.pid}\n")
            try:
                return process.wait()
            finally:
                marker.unlink(missing_ok=True)

    @staticmethod
    def _wait_for_earlier(marker: Path, handle: IO[str]) -> None:
        """Wait while a command an earlier (killed) rollout started for this cluster still runs:
        a running up is never cancelled, and never doubled."""
        try:
            pid = int(marker.read_text().strip())
        except (OSError, ValueError):
            return
        said = False
        while process_alive(pid):
            if not said:
                handle.write(f"==== waiting for pid {pid}, started by an earlier rollout\n")
                handle.flush()
                said = True
            time.sleep(1)
        marker.unlink(missing_ok=True)

    def _reason(self, cluster: str, code: int) -> str:
        """The last lines that say why, from the cluster's log."""
        log = self.logs / f"{cluster}.log"
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        failed = [line for line in lines if "FAILED" in line or "error" in line.lower()]
        tail = (failed or lines)[-1:] if lines else []
        return f"exit {code}: {tail[0].strip()[:300]}" if tail else f"exit {code}"

    def prepare(self, clusters: Sequence[str]) -> None:
        """Create and select each stack, one at a time, before anything runs side by side."""
        for cluster in clusters:
            # the wrapper creates (if need be) and selects the stack, then prints its name
            argv = ["sh", str(WRAPPER), "stack", "--show-name"]
            code = self._run(cluster, "select", argv, {**os.environ, "STACK": cluster})
            if code != 0:
                why = self._reason(cluster, code)
                raise RuntimeError(f"stack {cluster} could not be selected: {why}")

    def reachable(self, cluster: str) -> bool:
        try:
            config = load_stack_config(cluster)
        except ConfigError:
            return False
        target = clusterops.cluster_of(config)
        if clusterops.cluster_problem(target):
            return False
        deadline = time.monotonic() + clusterops.PROBE_SECONDS
        return not clusterops.unreachable_reason(target, deadline)

    def _put(self, cluster: str, snapshot: Snapshot) -> None:
        """The snapshot's files in the cluster's work directory, replacing what was there whole."""
        work = self._work(cluster)
        staging = work.with_name(f".{cluster}.staging")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(snapshot.root, staging, ignore=shutil.ignore_patterns(".complete"))
        (staging / "catalog.digest").write_text(snapshot.digest + "\n")
        old = work.with_name(f".{cluster}.old")
        shutil.rmtree(old, ignore_errors=True)
        if work.exists():
            work.rename(old)
        staging.rename(work)
        shutil.rmtree(old, ignore_errors=True)

    def up(self, cluster: str, snapshot: Snapshot) -> Outcome:
        self._put(cluster, snapshot)
        argv = [COMMAND, "up", "--stack", cluster, *(["--yes"] if self.yes else [])]
        code = self._run(cluster, f"up {snapshot.short}", argv, self._env(cluster))
        return Outcome(code == exits.OK, "" if code == exits.OK else self._reason(cluster, code))

    def health(self, cluster: str, deadline_seconds: int) -> Outcome:
        argv = [COMMAND, "status", "--stack", cluster, "--timeout", f"{deadline_seconds}s"]
        argv += ["--output", "json"]
        code = self._run(cluster, "status", argv, self._env(cluster))
        if code == exits.OK:
            return Outcome(True)
        return Outcome(False, self._unhealthy(cluster) or self._reason(cluster, code))

    def _unhealthy(self, cluster: str) -> str:
        """The unhealthy packages, from the status JSON at the end of the cluster's log."""
        text = (self.logs / f"{cluster}.log").read_text(errors="replace")
        start = text.rfind('{\n  "schemaVersion"')
        try:
            document = json.loads(text[start:]) if start >= 0 else {}
        except ValueError:
            return ""
        bad = [p for p in document.get("packages", []) if p.get("state") != "healthy"]
        return "; ".join(f"{p['name']}: {p['verdict']}" for p in bad)

    def mark_good(self, cluster: str, digest: str) -> None:
        """The stack tag `kpt-catalog:catalog`: the digest of the catalog the cluster runs well
        (`pulumi stack tag get kpt-catalog:catalog --stack <cluster>`); a failure to set it is
        logged, the rollout goes on (`.fleet/last-good.json` holds the same)."""
        argv = ["sh", str(WRAPPER), "stack", "tag", "set", TAG, digest]
        env = {**os.environ, "STACK": cluster, "KPT_CATALOG_SELECT": "no"}
        self._run(cluster, "tag", argv, env)

    def destroy(self, cluster: str) -> Outcome:
        argv = [COMMAND, "destroy", "--stack", cluster, *(["--yes"] if self.yes else [])]
        code = self._run(cluster, "destroy", argv, {**os.environ, "KPT_CATALOG_SELECT": "no"})
        return Outcome(code == exits.OK, "" if code == exits.OK else self._reason(cluster, code))
