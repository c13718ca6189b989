"""Checks across packages: every object, inventory and directory has exactly one owner, and every
step's environment fits what the OS lets one command receive.

Two owners of one thing make kpt fight itself: two packages with one inventory prune each other's
objects on every apply, an object in two packages (or in a package and a native manifest) is
taken over by whichever applied last and deleted by whichever is destroyed first.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from components.config import ManifestSpec, PackageSpec
from components.scan import Inventory, KindRef, ManifestDocument, ObjectId, PackageScan

__all__ = ["MAX_ARG_STRLEN", "Owned", "arg_max", "check_environment_sizes", "check_owners"]

MAX_ARG_STRLEN = 131072
"""Linux's bound on one `NAME=value` string of a command's environment (32 pages of 4 KiB,
include/uapi/linux/binfmts.h); execve fails with E2BIG past it."""

SECRET_KIND = KindRef("", "Secret")

ManifestsOf = Mapping[str, Sequence[tuple[ManifestSpec, Sequence[ManifestDocument]]]]


@dataclass(frozen=True)
class Owned:
    """A package as the ownership checks see it."""

    spec: PackageSpec
    key: str
    """Its config key, `packages[i]`."""
    directory: Path


def check_owners(
    packages: Sequence[Owned],
    scans: Mapping[str, PackageScan],
    manifests: ManifestsOf,
    catalog_dir: Path,
) -> list[str]:
    """Every inventory, path and object owned once; no native manifest inside a kpt package."""
    return [
        *_shared_paths(packages),
        *_shared_inventories(packages, scans),
        *_shared_objects(packages, scans, manifests),
        *_manifests_inside_packages(packages, manifests, catalog_dir),
    ]


def _shared_paths(packages: Sequence[Owned]) -> list[str]:
    problems: list[str] = []
    seen: dict[str, Owned] = {}
    for package in packages:
        path = os.path.normpath(PurePosixPath(package.spec.path).as_posix())
        first = seen.setdefault(path, package)
        if first is not package:
            problems.append(
                f"{package.key}.path: packages {first.spec.name!r} ({first.key}) and "
                f"{package.spec.name!r} both use the directory {path!r}: kpt would apply it as "
                "two packages that prune each other; give each package its own directory"
            )
    return problems


def _own_inventory_advice(package: Owned, other: str, inventory: Inventory) -> str:
    """How to give `package` an inventory of its own, safe to paste (every value quoted), for
    both cases: a package the cluster never ran with this inventory, and one it did, where a new
    id would make kpt refuse every later apply ("inventory-id of inventory object in cluster
    doesn't match provided id")."""
    name = package.spec.name
    init = shlex.join(
        [
            "kpt",
            "live",
            "init",
            str(package.directory),
            "--name",
            name,
            "--namespace",
            inventory.namespace,
            "--inventory-id",
            f"kpt-catalog-{name}",
            "--force",
        ]
    )
    check = shlex.join(
        [
            "kubectl",
            "get",
            "resourcegroups.kpt.dev",
            inventory.name,
            "-n",
            inventory.namespace,
            "-o",
            "jsonpath={.spec.resources}",
        ]
    )
    return (
        f"First see which package the cluster holds under it: `{check}`. If it lists none of "
        f"{name!r}'s objects ({name!r} was never deployed with it), give {name!r} its own: "
        f"`{init}`. If it does, never re-initialise {name!r} (kpt would then refuse every "
        "apply of it: the inventory-id in the cluster would no longer match); re-initialise "
        f"{other!r} instead if the cluster does not hold it, and otherwise move the objects of "
        "one package into the other"
    )


def _shared_inventories(packages: Sequence[Owned], scans: Mapping[str, PackageScan]) -> list[str]:
    problems: list[str] = []
    first_with: dict[str, Owned] = {}  # by "id <id>" and by "name <name> <namespace>"
    for package in packages:
        scan = scans.get(package.spec.name)
        if scan is None or len(scan.inventories) != 1:
            continue  # reported by the package's own checks
        inventory = scan.inventories[0]
        for what, present in (
            (f"inventory id {inventory.inventory_id!r}", bool(inventory.inventory_id)),
            (
                f"inventory name {inventory.name!r} in namespace {inventory.namespace!r}",
                bool(inventory.name and inventory.namespace),
            ),
        ):
            first = first_with.setdefault(what, package) if present else package
            if first is package:
                continue
            there = f"{first.directory}/{scans[first.spec.name].inventories[0].source}"
            problems.append(
                f"{package.key}.path: packages {first.spec.name!r} ({there}) and "
                f"{package.spec.name!r} ({package.directory}/{inventory.source}) share the "
                f"{what}: each apply would prune the other's objects. "
                + _own_inventory_advice(package, first.spec.name, inventory)
            )
    return problems


def _shared_objects(
    packages: Sequence[Owned], scans: Mapping[str, PackageScan], manifests: ManifestsOf
) -> list[str]:
    problems: list[str] = []
    owners: dict[ObjectId, str] = {}
    for package in packages:
        name = package.spec.name
        found: list[tuple[ObjectId, str]] = (
            [
                (identity, f"package {name!r} ({package.spec.path}/{file})")
                for identity, file in sorted(scans[name].identities.items())
            ]
            if name in scans
            else []
        )
        for index, (manifest, documents) in enumerate(manifests.get(name, ())):
            found.extend(
                (document.identity, f"package {name!r} manifests[{index}] ({manifest.file})")
                for document in documents
            )
        for identity, owner in found:
            first = owners.setdefault(identity, owner)
            if first != owner:
                problems.append(
                    f"{package.key}: {identity} is in both {first} and {owner}: two owners "
                    "would fight over it (each apply takes it over, the first destroy deletes "
                    "it); keep it in one place"
                )
    # A declared Secret is an object the program owns: in a package's files or a manifest too,
    # kpt and the provider would overwrite each other's values, and kpt would prune or destroy
    # it. (One Secret declared twice is reported with the package config.)
    for package in packages:
        for index, secret in enumerate(package.spec.secrets):
            identity = ObjectId(SECRET_KIND, secret.namespace, secret.name)
            if identity in owners:
                problems.append(
                    f"{package.key}.secrets[{index}]: {identity} is declared here, with its "
                    f"values from stack config, and is also in {owners[identity]}: kpt and the "
                    "provider would overwrite each other's values; remove it from the files"
                )
    return problems


def _manifests_inside_packages(
    packages: Sequence[Owned], manifests: ManifestsOf, catalog_dir: Path
) -> list[str]:
    problems: list[str] = []
    directories = [(p, p.directory.resolve()) for p in packages]
    for owner in packages:
        for index, (manifest, _documents) in enumerate(manifests.get(owner.spec.name, ())):
            file = (catalog_dir / manifest.file).resolve()
            problems.extend(
                f"{owner.key}.manifests[{index}].file: {manifest.file} is inside package "
                f"{package.spec.name!r} ({package.spec.path}): kpt applies it with that package "
                "and Pulumi would own it too; move it out of the package directory"
                for package, directory in directories
                if file.is_relative_to(directory)
            )
    return problems


def check_environment_sizes(
    key: str, environments: Mapping[str, Mapping[str, str]], arg_max: int
) -> list[str]:
    """Each step's environment must reach its command: every `NAME=value` within MAX_ARG_STRLEN,
    all of them within `arg_max` (argv and envp together, counted as execve does)."""
    problems: list[str] = []
    for step, environment in environments.items():
        sizes = {name: len(f"{name}={value}".encode()) + 1 for name, value in environment.items()}
        for name, size in sizes.items():
            if size > MAX_ARG_STRLEN:
                problems.append(
                    f"{key}: the {step} step's {name} would be {size} bytes, over the "
                    f"{MAX_ARG_STRLEN} bytes Linux passes in one environment variable: the step "
                    "could not start. Use fewer or shorter waits"
                )
        total = sum(sizes.values()) + len(sizes) * 8  # each string, plus its pointer
        if total > arg_max:
            problems.append(
                f"{key}: the {step} step's environment would be {total} bytes, over the "
                f"{arg_max} bytes this system allows a command (ARG_MAX, with the environment "
                "Pulumi passes on): the step could not start. Use fewer or shorter waits"
            )
    return problems


def arg_max() -> int:
    """What is left of ARG_MAX for a step's own variables: the system's bound, less what this
    process's environment takes (Pulumi passes its own environment on to every command)."""
    inherited = sum(len(f"{k}={v}".encode()) + 9 for k, v in os.environ.items())
    return int(os.sysconf("SC_ARG_MAX")) - inherited
