"""`KubernetesObject`: any Kubernetes object, registered with the explicit provider from its
manifest.

The provider's typed Python classes (`pulumi_kubernetes.core.v1.Secret`, ...) register the very
same type tokens, but importing one module of them loads every type of its API group: about 0.8 s
for `core/v1`, twice the cost of evaluating the rest of the program. So native objects are
registered through this one class, with what the typed classes would add (their secret outputs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi

__all__ = ["KubernetesObject"]


class KubernetesObject(pulumi.CustomResource):
    """Any Kubernetes object, registered with the provider from its full manifest."""

    status: pulumi.Output[Any]
    """The object's live status, as the provider read it after creating it."""

    def __init__(
        self,
        resource_name: str,
        body: dict[str, Any],
        opts: pulumi.ResourceOptions,
        *,
        secret_outputs: Sequence[str] = (),
    ) -> None:
        """`secret_outputs`: outputs to keep encrypted in state, as the typed class would (a
        Secret's `data` and `stringData`)."""
        api_version = str(body["apiVersion"])
        # The provider's type tokens name the core group explicitly: `kubernetes:core/v1:...`.
        group_version = "core/v1" if api_version == "v1" else api_version
        props = {**body, "status": None}
        if secret_outputs:
            opts = pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(additional_secret_outputs=list(secret_outputs))
            )
        super().__init__(f"kubernetes:{group_version}:{body['kind']}", resource_name, props, opts)
