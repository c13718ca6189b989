"""What a user journey drives: `make` targets through the real `pulumi` CLI and providers, the
real `kpt` and `kubectl` (behind the fault wrapper, which logs every call), against a local
control plane whose controllers are the world's stand-ins."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.harness import EXAMPLE_CATALOG, ROOT, shipped_graph
from world.session import World

__all__ = ["OAUTH", "Journey", "ok", "open_journey"]

FAULTS_BIN = ROOT / "world" / "faults"
OAUTH = {
    "tailscaleOauthClientId": "journey-client",
    "tailscaleOauthClientSecret": "journey-secret-1",
}
"""The OAuth client in the stack's secret config (made up: the operator stand-in never calls
Tailscale)."""
# Where the documented order applies each package with `kpt live apply` (the bash loop).
BASH_LOOP = (
    "ha/kube-vip",
    "networking/cilium",
    "mesh/tailscale/operator",
    "mesh/headscale",
    "networking/envoy-gateway",
)
CONNECTOR_FILE = "mesh/tailscale/03-connector.yaml"


def ok(result: subprocess.CompletedProcess[str], what: str) -> str:
    """The output of a command that must have succeeded; else the failure, with its output."""
    assert result.returncode == 0, (
        f"{what} exited {result.returncode}:\n{result.stdout[-5000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout + result.stderr


def journey_graph() -> list[dict[str, Any]]:
    """The shipped graph, with envoy-gateway's reconcile timeout shortened: on a fresh cluster
    kpt's own wait can miss the Gateway whose CRD the same apply defines, and then waits out the
    whole timeout before `kpt live status` checks it (components/step/kpt.py)."""
    packages = shipped_graph()
    for package in packages:
        if package["name"] == "envoy-gateway":
            package["reconcileTimeout"] = "30s"
    return packages


@dataclass
class Journey:
    """One stack of this project on one local control plane."""

    world: World
    stack: str
    catalog: Path
    work: Path
    packages: list[dict[str, Any]] = field(default_factory=journey_graph)
    log: list[str] = field(default_factory=list)

    @property
    def faults(self) -> Path:
        return self.work / "faults"

    @property
    def stack_file(self) -> Path:
        return ROOT / f"Pulumi.{self.stack}.yaml"

    def env(self) -> dict[str, str]:
        env = self.world.env()
        env["PATH"] = os.pathsep.join([str(FAULTS_BIN), env["PATH"]])
        env["KPT_CATALOG_FAULTS"] = str(self.faults)
        env["STACK"] = self.stack
        env["XDG_STATE_HOME"] = str(self.work / "state")
        env.pop("MAKEFLAGS", None)
        return env

    def run(
        self, argv: list[str], *, timeout: float = 600, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        result = subprocess.run(
            argv,
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            input=stdin,
            timeout=timeout,
            check=False,
        )
        self.log.append(
            f"$ {' '.join(argv)}  -> {result.returncode} in {time.monotonic() - started:.1f}s\n"
            f"{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
        )
        return result

    def make(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return self.run(["make", "--no-print-directory", *args], timeout=timeout)

    def up(self) -> subprocess.CompletedProcess[str]:
        """`make up`, answering yes (the engine's preview runs, then the update)."""
        return self.make("up", "PULUMI_ARGS=--yes")

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(["kubectl", *args], timeout=120)

    def tool(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        """`./kpt-catalog <name> --stack <this stack>`: the command's own exit code, which
        `make` folds into 2."""
        return self.run([str(ROOT / "kpt-catalog"), name, "--stack", self.stack, *args])

    def json(self, *args: str) -> Any:
        result = self.kubectl(*args, "-o", "json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def write_stack(self) -> None:
        """The stack file: this world's cluster, the catalog copy and the graph."""
        config: dict[str, object] = {
            "kpt-catalog:kubeconfig": str(self.world.kubeconfig),
            "kpt-catalog:context": self.world.context,
            "kpt-catalog:catalogDir": str(self.catalog),
            "kpt-catalog:packages": self.packages,
        }
        old = yaml.safe_load(self.stack_file.read_text()) if self.stack_file.exists() else {}
        kept = {
            k: v
            for k, v in (old.get("config") or {}).items()
            if isinstance(v, dict) and "secure" in v
        }
        document = {**old, "config": {**config, **kept}}
        self.stack_file.write_text(yaml.safe_dump(document, sort_keys=False))

    def set_secret(self, key: str, value: str) -> None:
        """`pulumi config set --secret`, the value on stdin."""
        result = self.run(
            [
                "sh",
                "kpt_catalog/pulumi-stack.sh",
                "config",
                "set",
                "--secret",
                f"kpt-catalog:{key}",
            ],
            stdin=value,
        )
        assert result.returncode == 0, result.stderr

    def fault(self, tool: str, *rules: dict[str, Any]) -> None:
        (self.faults / f"{tool}.json").write_text(json.dumps(list(rules)))

    def calls(self, tool: str) -> list[list[str]]:
        """The calls of `tool` logged since the last `forget_calls`."""
        log = self.faults / "calls.log"
        if not log.exists():
            return []
        return [c[1:] for c in map(json.loads, log.read_text().splitlines()) if c[0] == tool]

    def forget_calls(self) -> None:
        (self.faults / "calls.log").unlink(missing_ok=True)

    def bash_loop(self) -> None:
        """The bash loop this project replaces: `kpt live apply` per package in the documented
        order, then `kubectl apply` of the Connector, with the OAuth Secret made by hand."""
        for path in BASH_LOOP:
            argv = ["kpt", "live", "apply", str(self.catalog / path), "--reconcile-timeout=30s"]
            applied = self.run(argv)
            if applied.returncode == 3 and "timed out" in applied.stdout:
                # kpt's wait can miss a kind its own apply defined (docs/real-world.md): the
                # operator runs the loop again, and the second apply sees it.
                applied = self.run(argv)
            out = applied.stdout + applied.stderr
            assert applied.returncode == 0, f"kpt live apply {path}:\n{out}"
            assert "0 skipped, 0 failed" in out, (
                f"kpt live apply {path}:\n{out}"
            )  # exits 0 on skips
            if path == "mesh/tailscale/operator":
                made = self.kubectl(
                    "create", "secret", "generic", "operator-oauth", "-n", "tailscale-system",
                    f"--from-literal=client_id={OAUTH['tailscaleOauthClientId']}",
                    f"--from-literal=client_secret={OAUTH['tailscaleOauthClientSecret']}",
                )  # fmt: skip
                assert made.returncode == 0, made.stderr
                waited = self.kubectl(
                    "wait", "--for=condition=established", "crd/connectors.tailscale.com",
                    "--timeout=60s",
                )  # fmt: skip
                assert waited.returncode == 0, waited.stderr
        done = self.kubectl("apply", "-f", str(self.catalog / CONNECTOR_FILE))
        assert done.returncode == 0, done.stderr

    def objects(self) -> dict[str, dict[str, Any]]:
        """Every object of the catalog's kinds in the cluster, by `kind/namespace/name`: uid,
        generation and the fields a change would touch."""
        kinds = (
            "namespaces,configmaps,services,serviceaccounts,secrets,deployments,daemonsets,"
            "clusterroles,clusterrolebindings,customresourcedefinitions,resourcegroups.kpt.dev,"
            "connectors.tailscale.com,gateways.gateway.networking.k8s.io,"
            "gatewayclasses.gateway.networking.k8s.io,ciliumloadbalancerippools.cilium.io"
        )
        found: dict[str, dict[str, Any]] = {}
        items: list[dict[str, Any]] = []
        for kind in kinds.split(","):
            listed = self.kubectl("get", kind, "-A", "-o", "json")
            if listed.returncode != 0 and "doesn't have a resource type" in listed.stderr:
                continue  # its CRD is gone, and so are its objects
            assert listed.returncode == 0, listed.stderr
            items.extend(json.loads(listed.stdout)["items"])
        for item in items:
            metadata = item["metadata"]
            key = f"{item['kind']}/{metadata.get('namespace', '')}/{metadata['name']}"
            found[key] = {
                "uid": metadata["uid"],
                "generation": metadata.get("generation"),
                "data": item.get("data"),
            }
        return found

    def state(self) -> dict[str, Any]:
        result = self.run(["pulumi", "stack", "export", "--stack", self.stack])
        assert result.returncode == 0, result.stderr
        exported: dict[str, Any] = json.loads(result.stdout)
        return exported

    def urns(self) -> set[str]:
        resources = self.state()["deployment"].get("resources") or []
        return {r["urn"] for r in resources}

    def transcript(self) -> str:
        return "\n".join(self.log)


def _no_leftover_processes(work: Path) -> list[str]:
    """kpt and kubectl processes still running on this journey's files."""
    listed = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=False)
    return [
        line.strip()
        for line in listed.stdout.splitlines()[1:]
        if str(work) in line and ("kpt " in line or "kubectl " in line)
    ]


def open_journey(base: Path, world_binaries: Any) -> Generator[Journey, None, None]:
    """A control plane, a catalog copy and a stack of its own; everything removed afterwards."""
    work = base
    catalog = work / "catalog"
    shutil.copytree(EXAMPLE_CATALOG, catalog)
    world = World(work / "world", binaries=world_binaries).start()
    journey = Journey(world, f"journey-{secrets.token_hex(4)}", catalog, work)
    journey.faults.mkdir()
    try:
        journey.write_stack()
        for key, value in OAUTH.items():
            journey.set_secret(key, value)
        yield journey
    finally:
        world.stop()
        journey.stack_file.unlink(missing_ok=True)
        for line in _no_leftover_processes(work):
            pid = int(line.split()[0])
            os.kill(pid, signal.SIGKILL)
