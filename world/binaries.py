"""Where the world's binaries come from: a directory the user names, PATH, or a build.

In that order, as envtest finds its assets: `$KPT_CATALOG_WORLD_BIN` (a directory holding some
or all of the binaries; `$KUBEBUILDER_ASSETS` is read the same way for etcd and kube-apiserver),
then `PATH`, then `world/build.sh`, which compiles what is still missing from its Go modules into
a cache outside the checkout (`$KPT_CATALOG_WORLD_CACHE`, default ~/.cache/kpt-catalog/world).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BINARIES", "Binaries", "BuildError", "find_binaries"]

HERE = Path(__file__).resolve().parent
BINARIES: dict[str, str] = {
    "etcd": "etcd",
    "kube-apiserver": "kube",
    "kube-controller-manager": "kube",
    "kube-scheduler": "kube",
    "pulumi": "pulumi",
    "pulumi-resource-kubernetes": "kubernetes-provider",
    "pulumi-resource-command": "command-provider",
}
"""Each binary, and the build group (`world/build.sh GROUP`) that makes it."""


class BuildError(RuntimeError):
    """`world/build.sh` failed; the message holds its last lines."""


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of the world's binaries, by name."""

    paths: dict[str, Path]

    def __getitem__(self, name: str) -> Path:
        return self.paths[name]

    def path_dirs(self) -> list[str]:
        """The directories to put first on PATH, so that pulumi finds the providers there."""
        return list(dict.fromkeys(str(path.parent) for path in self.paths.values()))


def _named_dirs() -> list[Path]:
    dirs = []
    for variable in ("KPT_CATALOG_WORLD_BIN", "KUBEBUILDER_ASSETS"):
        value = os.environ.get(variable, "")
        if value:
            dirs.append(Path(value).expanduser())
    return dirs


def find_binaries(*, build: bool = True) -> Binaries:
    """Every binary of the world, building the missing ones (unless `build` is False)."""
    found: dict[str, Path] = {}
    for name in BINARIES:
        for directory in _named_dirs():
            if (directory / name).is_file() and os.access(directory / name, os.X_OK):
                found[name] = directory / name
                break
        else:
            on_path = shutil.which(name)
            if on_path:
                found[name] = Path(on_path)
    missing = sorted({BINARIES[name] for name in BINARIES if name not in found})
    if missing:
        if not build:
            raise BuildError(f"not found and not built: {', '.join(missing)}")
        result = subprocess.run(
            ["bash", str(HERE / "build.sh"), *missing],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-15:])
            raise BuildError(f"world/build.sh {' '.join(missing)} failed:\n{tail}")
        bin_dir = Path(result.stdout.strip().splitlines()[-1])
        for name in BINARIES:
            if name not in found:
                found[name] = bin_dir / name
    return Binaries(paths={name: path.resolve() for name, path in found.items()})
