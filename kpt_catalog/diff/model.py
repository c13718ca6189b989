"""What `kpt-catalog diff` finds for one package."""

from __future__ import annotations

from dataclasses import dataclass, field

from components.step.prune.rules import (
    ObjectKey,
    PrunePlan,
)
from kpt_catalog.diff.unified import (
    Change,
)

__all__ = [
    "Native",
    "PackageDiff",
]


@dataclass(frozen=True)
class Native:
    """A native object `make up` would create or change."""

    key: ObjectKey
    created: bool
    summary: str = ""
    """Why it is created, or which keys of a Secret change (values hidden)."""
    lines: tuple[str, ...] = ()
    """A manifest object's change: the hunks of its server-side dry run."""


@dataclass
class PackageDiff:
    """What `make diff` found for one package."""

    changes: list[Change] = field(default_factory=list)
    deferred: list[tuple[ObjectKey, str]] = field(default_factory=list)
    """Created after a CRD or Namespace that the package, a package it needs, a wait or the
    cluster provides, each with which: the server cannot dry-run them before that exists."""
    prune: PrunePlan = field(default_factory=PrunePlan)
    deployed: bool = True
    """The cluster holds the package's inventory."""
    error: str = ""
    details: list[str] = field(default_factory=list)
    hidden: frozenset[str] = frozenset()
    """The values of the package's Secrets: never printed, whatever line quotes them."""
    native: list[Native] = field(default_factory=list)
    """The package's native objects (its manifests' objects, its declared Secrets) that
    `make up` would create or change."""
    conflicts: list[tuple[ObjectKey, str, str]] = field(default_factory=list)
    """Native objects whose fields another field manager set to other values, each with the
    provider's field manager and the conflict: the provider never forces a manifest's object,
    so the next update of it fails on the conflict."""

    @property
    def differences(self) -> int:
        prune = self.prune
        return (
            len(self.native)
            + len(self.conflicts)
            + len(self.changes)
            + len(self.deferred)
            + len(prune.prune)
            + len(prune.blocked)
            + len(prune.refused)
        )
