"""The environment each step gets: the one definition the Pulumi Commands and `make status` share.

These dictionaries end up in Pulumi state, and `pulumi destroy` runs the stored delete with the
stored environment, so the variable names are the frozen interface of `docs/step-contract.md`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from components import kptstep
from components.config import CatalogConfig, WaitSpec
from components.loaded import LoadedPackage

__all__ = [
    "apply_environment",
    "gate_environment",
    "inventory_environment",
    "status_environment",
]


def _common(package: LoadedPackage, config: CatalogConfig) -> dict[str, str]:
    """Cluster access, plus what makes every step of the package re-run: its digest and the
    stack's re-apply generation (an environment change is an update, never a replacement).

    Paths are stored as written (`~` and relative paths kept) and resolved by the step where it
    runs, so two checkouts of the project at different places store the same environment."""
    return {
        kptstep.ENV_PACKAGE: package.spec.name,
        kptstep.ENV_KUBECONFIG: config.kubeconfig,
        kptstep.ENV_CONTEXT: config.context,
        kptstep.ENV_DIGEST: package.digest,
        kptstep.ENV_GENERATION: config.reapply_generation,
        # Only when set: a new variable in every Command's environment would re-apply them all.
        **_only_if(kptstep.ENV_REAPPLY, config.reapply_tokens.get(package.spec.name, "")),
    }


def _only_if(name: str, value: str) -> dict[str, str]:
    """``{name: value}``, or nothing for an empty value (an optional member of the contract)."""
    return {name: value} if value else {}


def apply_environment(package: LoadedPackage, config: CatalogConfig) -> dict[str, str]:
    """Everything `kptstep.py apply`, and months later `kptstep.py destroy`, needs."""
    spec = package.spec
    return {
        **_common(package, config),
        kptstep.ENV_DIR: config.package_dir_as_written(package.spec),
        kptstep.ENV_RECONCILE_TIMEOUT: str(spec.reconcile_timeout),
        kptstep.ENV_APPLY_TIMEOUT: str(spec.apply_timeout),
        kptstep.ENV_DESTROY_TIMEOUT: str(spec.destroy_timeout),
        kptstep.ENV_SERVER_SIDE: "true" if spec.server_side else "false",
        kptstep.ENV_INVENTORY_NAME: package.inventory.name,
        kptstep.ENV_INVENTORY_NAMESPACE: package.inventory.namespace,
        kptstep.ENV_INVENTORY_ID: package.inventory.inventory_id,
        **_only_if(
            kptstep.ENV_ALLOW_PRUNE, json.dumps(list(spec.allow_prune)) if spec.allow_prune else ""
        ),
    }


def _waits(waits: Sequence[WaitSpec]) -> str:
    return json.dumps([w.as_step_input() for w in waits])


def gate_environment(
    package: LoadedPackage, config: CatalogConfig, phase: str, waits: Sequence[WaitSpec]
) -> dict[str, str]:
    """What `kptstep.py wait` needs for one phase's gates."""
    return {**_common(package, config), kptstep.ENV_PHASE: phase, kptstep.ENV_WAITS: _waits(waits)}


def status_environment(
    package: LoadedPackage, config: CatalogConfig, waits: Sequence[WaitSpec]
) -> dict[str, str]:
    """What `kptstep.py status` (`make status`) needs: the apply's, plus every check to rerun."""
    return {**apply_environment(package, config), kptstep.ENV_WAITS: _waits(waits)}


def inventory_environment(package: LoadedPackage, config: CatalogConfig) -> dict[str, str]:
    """What `kptstep.py inventory`, and its delete `kptstep.py destroy`, need: the inventory,
    cluster access and the destroy deadline. Neither the digest nor the re-apply generation: a
    file edit must not touch the resource that holds the rollback."""
    return {
        kptstep.ENV_PACKAGE: package.spec.name,
        kptstep.ENV_KUBECONFIG: config.kubeconfig,
        kptstep.ENV_CONTEXT: config.context,
        kptstep.ENV_DESTROY_TIMEOUT: str(package.spec.destroy_timeout),
        kptstep.ENV_INVENTORY_NAME: package.inventory.name,
        kptstep.ENV_INVENTORY_NAMESPACE: package.inventory.namespace,
        kptstep.ENV_INVENTORY_ID: package.inventory.inventory_id,
    }
