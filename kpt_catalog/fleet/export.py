"""`kpt-catalog fleet export --operator`: the waves as Pulumi Kubernetes Operator `Stack`
objects (`pulumi.com/v1`), for a management cluster that runs the operator instead of this
machine running `fleet up`.

Each cluster is one `Stack` of this project's repository; every `Stack` of a wave lists every
`Stack` of the wave before it in `spec.prerequisites`, so the operator updates a wave only once
the one before has succeeded. That is all the operator does with them: it has no failure budget
(one failed `Stack` holds back every later wave, for good), no `maxConcurrency`, no bake time or
health check beyond the update itself, no rollback, and no gate on the canary's diff. Its
workspace must have `kpt` and `kubectl` on PATH, as this program runs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from kpt_catalog.fleet.waves import Wave

__all__ = ["operator_stacks", "render_stacks"]


def _name(cluster: str) -> str:
    """A Kubernetes name for the cluster's `Stack` object."""
    return f"kpt-catalog-{cluster.lower().replace('_', '-').replace('.', '-')}"[:253]


def _wave_label(wave: str) -> str:
    """`canary`, `wave-1`, ...: a label value."""
    return wave.split(" (")[0].replace(" ", "-")


def operator_stacks(
    waves: Sequence[Wave],
    *,
    repository: str,
    branch: str,
    namespace: str,
    backend: str = "",
    passphrase_secret: str = "",
) -> list[dict[str, Any]]:
    """One `Stack` per cluster, the waves as prerequisites."""
    stacks: list[dict[str, Any]] = []
    previous: list[str] = []
    for wave in waves:
        names = [_name(c.name) for c in wave.clusters]
        for cluster, name in zip(wave.clusters, names, strict=True):
            spec: dict[str, Any] = {
                "stack": cluster.name,
                "projectRepo": repository,
                "branch": branch,
                "refresh": False,
                "destroyOnFinalize": False,
            }
            if backend:
                spec["backend"] = backend
            if passphrase_secret:
                spec["envRefs"] = {
                    "PULUMI_CONFIG_PASSPHRASE": {
                        "type": "Secret",
                        "secret": {"name": passphrase_secret, "key": "passphrase"},
                    }
                }
            if previous:
                spec["prerequisites"] = [{"name": before} for before in previous]
            stacks.append(
                {
                    "apiVersion": "pulumi.com/v1",
                    "kind": "Stack",
                    "metadata": {
                        "name": name,
                        "namespace": namespace,
                        "labels": {"kpt-catalog.dev/wave": _wave_label(wave.name)},
                    },
                    "spec": spec,
                }
            )
        previous = names
    return stacks


def render_stacks(stacks: Sequence[dict[str, Any]]) -> str:
    """The objects as one multi-document YAML stream."""
    return yaml.safe_dump_all(stacks, sort_keys=False)
