"""What the program holds once the catalog is read: each package with what its files say, and
the catalog in deploy order. `components.catalog` reads and checks them; `components.environment`
turns a package into its steps' environments."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from components.config import CatalogConfig, ManifestSpec, PackageSpec
from components.graph import Graph
from components.scan import Inventory, ManifestDocument

__all__ = ["Catalog", "LoadedPackage"]


@dataclass(frozen=True)
class LoadedPackage:
    """A package with everything the program read from its files."""

    spec: PackageSpec
    directory: Path
    """Absolute package directory (what `kpt live apply` gets)."""
    inventory: Inventory
    digest: str
    manifests: tuple[tuple[ManifestSpec, tuple[ManifestDocument, ...]], ...]


@dataclass(frozen=True)
class Catalog:
    """A validated catalog, in deploy order."""

    config: CatalogConfig
    graph: Graph
    packages: tuple[LoadedPackage, ...]
    """In deploy order."""
    warnings: tuple[str, ...]
