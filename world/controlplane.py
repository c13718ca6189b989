"""A local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler on free loopback ports, with a kubeconfig whose context is named.

Flags as envtest starts kube-apiserver (controller-runtime
pkg/internal/testing/controlplane/apiserver.go) and as hack/local-up-cluster.sh starts the
controller manager. Authentication is a static token of a `system:masters` user; the serving
certificate is the one kube-apiserver makes for itself in `--cert-dir`, so the kubeconfig skips
its verification (loopback only).

Every process is started with the parent-death signal set to SIGKILL (Linux `PR_SET_PDEATHSIG`),
so a killed test run leaves nothing running; `stop()` ends them by their own process ids, which
are also written to `<dir>/pids` for `stop_recorded()` (what `make demo-down` uses).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from world.binaries import Binaries

__all__ = ["CONTEXT", "ControlPlane", "ControlPlaneError", "stop_recorded"]

CONTEXT = "kpt-catalog-local"
"""The kubeconfig context (and cluster and user) name of the local control plane."""
_PR_SET_PDEATHSIG = 1
_READY_SECONDS = 90.0


class ControlPlaneError(RuntimeError):
    """The control plane did not start; the message names the process and its last log lines."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class ControlPlane:
    """One control plane, its files under `directory`."""

    binaries: Binaries
    directory: Path
    detach: bool = False
    """Keep running after this process exits (`make demo`); stop with `stop_recorded`."""
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    server: str = ""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    def start_process(self, name: str, argv: list[str], cwd: Path | None = None) -> None:
        """Start `argv` as one of this control plane's processes, logging to `<name>.log`."""
        log = (self.directory / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=None if self.detach else _die_with_parent,
            start_new_session=self.detach,
        )
        log.close()
        self.processes[name] = process
        with (self.directory / "pids").open("a") as pids:
            pids.write(f"{process.pid} {name}\n")

    def start(self) -> ControlPlane:
        """Start every process and wait until the API server is ready and a Node can be bound."""
        self.directory.mkdir(parents=True, exist_ok=True)
        d = self.directory
        subprocess.run(
            ["openssl", "genrsa", "-out", str(d / "sa.key"), "2048"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            ["openssl", "rsa", "-in", str(d / "sa.key"), "-pubout", "-out", str(d / "sa.pub")],
            check=True,
            capture_output=True,
        )
        (d / "tokens.csv").write_text(f'{self.token},admin,admin,"system:masters"\n')
        (d / "tokens.csv").chmod(0o600)
        etcd_client, etcd_peer, api_port = _free_port(), _free_port(), _free_port()
        self.server = f"https://127.0.0.1:{api_port}"
        self.start_process(
            "etcd",
            [
                str(self.binaries["etcd"]),
                f"--data-dir={d / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        self.start_process(
            "kube-apiserver",
            [
                str(self.binaries["kube-apiserver"]),
                f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                f"--secure-port={api_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--cert-dir={d / 'certs'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--authorization-mode=RBAC",
                f"--token-auth-file={d / 'tokens.csv'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={d / 'sa.pub'}",
                f"--service-account-signing-key-file={d / 'sa.key'}",
            ],
        )
        self._write_kubeconfig()
        self._wait("kube-apiserver", lambda: self.get("/readyz") is not None)
        component = str(d / "component.kubeconfig")
        self.start_process(
            "kube-controller-manager",
            [
                str(self.binaries["kube-controller-manager"]),
                f"--kubeconfig={component}",
                # No kubelet posts node heartbeats: the node lifecycle controller would taint and
                # evict. The node stand-in keeps the Node Ready instead.
                "--controllers=*,-nodelifecycle,-nodeipam",
                "--leader-elect=false",
                f"--service-account-private-key-file={d / 'sa.key'}",
                f"--root-ca-file={d / 'certs' / 'apiserver.crt'}",
                "--secure-port=0",
                "--concurrent-gc-syncs=5",
            ],
        )
        self.start_process(
            "kube-scheduler",
            [
                str(self.binaries["kube-scheduler"]),
                f"--kubeconfig={component}",
                "--leader-elect=false",
                "--secure-port=0",
            ],
        )
        self._wait(
            "kube-controller-manager",
            lambda: self.get("/api/v1/namespaces/default/serviceaccounts/default") is not None,
        )
        return self

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": CONTEXT,
                    "cluster": {"server": self.server, "insecure-skip-tls-verify": True},
                }
            ],
            "users": [{"name": CONTEXT, "user": {"token": self.token}}],
            "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT}}],
            "current-context": CONTEXT,
        }
        for path in (self.kubeconfig, self.directory / "component.kubeconfig"):
            path.write_text(json.dumps(config, indent=2))
            path.chmod(0o600)

    def get(self, path: str) -> object | None:
        """GET `path` from the API server as JSON (or text); None when it does not answer 2xx."""
        request = urllib.request.Request(  # noqa: S310 - the server is our own https URL
            self.server + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as response:  # noqa: S310
                body = response.read().decode()
        except (urllib.error.URLError, OSError):
            return None
        try:
            parsed: object = json.loads(body)
        except ValueError:
            return str(body)
        return parsed

    def _wait(self, name: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + _READY_SECONDS
        while time.monotonic() < deadline:
            for each, process in self.processes.items():
                if process.poll() is not None:
                    raise ControlPlaneError(
                        f"{each} exited with {process.returncode}:\n"
                        f"{_tail(self.directory / f'{each}.log')}"
                    )
            if ready():
                return
            time.sleep(0.2)
        raise ControlPlaneError(
            f"{name} not ready within {_READY_SECONDS:.0f}s:\n"
            f"{_tail(self.directory / f'{name}.log')}"
        )

    def stop_process(self, name: str) -> None:
        """Stop one process (the API server, to make the cluster unreachable)."""
        process = self.processes.pop(name, None)
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop(self) -> None:
        """Stop every process, the last started first."""
        for name in reversed(list(self.processes)):
            self.stop_process(name)


def stop_recorded(directory: Path) -> list[str]:
    """Stop the processes `<directory>/pids` records, if they still run; returns their names."""
    stopped: list[str] = []
    pids = directory / "pids"
    if not pids.exists():
        return stopped
    for line in reversed(pids.read_text().splitlines()):
        pid_text, _, name = line.partition(" ")
        try:
            os.kill(int(pid_text), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            continue
        stopped.append(name)
    deadline = time.monotonic() + 15
    for line in pids.read_text().splitlines():
        pid = int(line.partition(" ")[0])
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    pids.unlink()
    return stopped
