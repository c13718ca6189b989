"""One running world: a control plane, its stand-ins, and the environment that points the real
`pulumi`, `kpt` and `kubectl` at it with a local backend and a passphrase."""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

from world.binaries import Binaries, find_binaries
from world.controlplane import CONTEXT, ControlPlane
from world.standins import STANDINS

__all__ = ["ROOT", "World"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class World:
    """A control plane with its stand-ins, under `directory`."""

    directory: Path
    binaries: Binaries = field(default_factory=find_binaries)
    detach: bool = False
    passphrase: str = field(default_factory=lambda: secrets.token_hex(12))
    control_plane: ControlPlane | None = None

    @property
    def context(self) -> str:
        return CONTEXT

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def control(self) -> Path:
        """Where the stand-ins read how to behave (`world.standins`)."""
        return self.directory / "control"

    @property
    def backend(self) -> Path:
        return self.directory / "backend"

    def start(self) -> World:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.control.mkdir(exist_ok=True)
        self.backend.mkdir(exist_ok=True)
        self.control_plane = ControlPlane(self.binaries, self.directory, detach=self.detach)
        try:
            self.control_plane.start()
            self.start_standins()
        except BaseException:
            self.stop()
            raise
        return self

    def start_standins(self) -> None:
        assert self.control_plane is not None  # noqa: S101 - start() made it
        self.control_plane.start_process(
            "standins",
            [
                sys.executable,
                "-m",
                "world.standins",
                "--kubeconfig",
                str(self.kubeconfig),
                "--control",
                str(self.control),
            ],
            cwd=ROOT,
        )

    def behave(self, standin: str, mode: str) -> None:
        """Tell a stand-in how to behave: `normal`, `late <seconds>`, `never` or `stopped`."""
        if standin not in STANDINS:
            raise ValueError(f"no stand-in {standin!r}; there are {', '.join(STANDINS)}")
        (self.control / standin).write_text(mode + "\n")

    def env(self) -> dict[str, str]:
        """The environment for pulumi, kpt, kubectl and make against this world."""
        env = dict(os.environ)
        env.update(
            {
                "PATH": os.pathsep.join([*self.binaries.path_dirs(), env.get("PATH", "")]),
                "KUBECONFIG": str(self.kubeconfig),
                "PULUMI_BACKEND_URL": self.backend.as_uri(),
                "PULUMI_CONFIG_PASSPHRASE": self.passphrase,
                "PULUMI_SKIP_UPDATE_CHECK": "true",
                # Every plugin is on PATH; nothing may be downloaded (there is no network).
                "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
                "PULUMI_HOME": str(self.directory / "pulumi-home"),
            }
        )
        env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
        env.pop("PULUMI_ACCESS_TOKEN", None)
        return env

    def stop(self) -> None:
        """Stop the stand-ins and the control plane (the last started first)."""
        if self.control_plane is not None:
            self.control_plane.stop()
