"""A catalog as it was deployed: a content-addressed copy of the package files and the graph,
`.fleet/catalogs/<digest>/` holding `catalog/` and `packages.yaml`, so that a cluster can be
returned to it later whatever the working copy holds by then. The digest is over every file's
relative path and bytes, so the same catalog is always the same copy."""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Snapshot", "snapshot_catalog"]


@dataclass(frozen=True)
class Snapshot:
    """One stored catalog."""

    digest: str
    root: Path

    @property
    def catalog_dir(self) -> Path:
        return self.root / "catalog"

    @property
    def graph_file(self) -> Path:
        return self.root / "packages.yaml"

    @property
    def short(self) -> str:
        return self.digest[:12]


def _files(catalog_dir: Path) -> list[Path]:
    """Every regular file below `catalog_dir`, by relative path; symlinks and special files are
    not followed (a FIFO would block the copy)."""
    found = []
    for directory, dirs, names in os.walk(catalog_dir):
        dirs.sort()
        for name in sorted(names):
            path = Path(directory) / name
            if path.is_file() and not path.is_symlink():
                found.append(path)
    return found


def snapshot_catalog(catalog_dir: Path, graph: bytes, store: Path) -> Snapshot:
    """Store the catalog and the graph (`packages.yaml`'s text) under `store/<digest>` (once: an
    existing copy of the same digest is kept) and return it."""
    digest = hashlib.sha256()
    files = _files(catalog_dir)
    digest.update(b"packages.yaml\0" + graph + b"\0")
    for path in files:
        relative = path.relative_to(catalog_dir).as_posix()
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    name = digest.hexdigest()
    root = store / name
    if not (root / ".complete").exists():
        partial = store / f".{name}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        for path in files:
            target = partial / "catalog" / path.relative_to(catalog_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        (partial / "catalog").mkdir(parents=True, exist_ok=True)
        (partial / "packages.yaml").write_bytes(graph)
        (partial / ".complete").touch()
        shutil.rmtree(root, ignore_errors=True)
        partial.rename(root)  # whole or not at all
    return Snapshot(name, root)
