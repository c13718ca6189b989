"""The e2e stack's configuration: the dev stack's graph, pointed at the stand-in catalog.

`tests/e2e/catalog/` holds the dev stack's five packages at the dev stack's paths, made of objects
a plain kind cluster can run. The config below has the dev stack's names, `needs`, `protect` and
`serverSide`, and the same kinds of steps (a wait before cilium, waits after the others, the
Connector as a native manifest), so that it registers the dev stack's URNs; only the waits
differ where the real ones need the real components (LoadBalancer addresses, a programmed
Gateway), and the timeouts are short. `test_catalog.py` holds it to that.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from tests.harness import TEST_CONTEXT, TEST_KUBECONFIG

__all__ = [
    "CONNECTOR_CRD",
    "CONNECTOR_FINALIZER",
    "E2E_CATALOG",
    "E2E_GROUP",
    "EDITED_PACKAGE",
    "e2e_config",
]

E2E_CATALOG = Path(__file__).resolve().parent / "catalog"
E2E_GROUP = "e2e.kpt-catalog.dev"
"""API group of the stand-ins' CRDs: their own, so that they never meet real Tailscale or Gateway
API objects."""
CONNECTOR_CRD = f"connectors.{E2E_GROUP}"
CONNECTOR_FINALIZER = f"{E2E_GROUP}/finalizer"
EDITED_PACKAGE = ("headscale", "mesh/headscale/config.yaml")
"""The package whose file the test edits (in a copy of the catalog), and that file."""

_SHORT = "1m"


def _rollout(resource: str, namespace: str, timeout: str = _SHORT) -> dict[str, str]:
    return {"resource": resource, "namespace": namespace, "for": "rollout", "timeout": timeout}


def _established(crd: str) -> dict[str, str]:
    return {"resource": f"crd/{crd}", "for": "condition=Established", "timeout": _SHORT}


PACKAGES: list[dict[str, Any]] = [
    {
        "name": "kube-vip",
        "path": "ha/kube-vip",
        "reconcileTimeout": _SHORT,
        "destroyTimeout": "2m",
        "protect": True,
        "waitAfter": [_rollout("daemonset/kube-vip-ds", "kube-system")],
    },
    {
        "name": "cilium",
        "path": "networking/cilium",
        "needs": ["kube-vip"],
        "reconcileTimeout": _SHORT,
        "destroyTimeout": "2m",
        # Like cilium-operator's CRDs, this one is registered at run time by something outside the
        # package: kpt installs its ResourceGroup CRD with the first apply (kube-vip's).
        "waitBefore": [
            _established("resourcegroups.kpt.dev"),
            _rollout("deployment/coredns", "kube-system"),
        ],
    },
    {
        "name": "tailscale",
        "path": "mesh/tailscale/operator",
        "needs": ["cilium", "kube-vip"],
        # The stand-in operator's image (alpine/k8s) is the only sizeable pull.
        "reconcileTimeout": "3m",
        "destroyTimeout": "2m",
        # The stand-in operator mounts it, like the real one.
        "secrets": [
            {
                "name": "operator-oauth",
                "namespace": "tailscale-system",
                "data": {
                    "client_id": "tailscaleOauthClientId",
                    "client_secret": "tailscaleOauthClientSecret",
                },
            }
        ],
        "waitAfter": [
            _rollout("deployment/operator", "tailscale-system", "2m"),
            _established(CONNECTOR_CRD),
        ],
        "manifests": [
            {
                "file": "mesh/tailscale/03-connector.yaml",
                "waitFor": "condition=ConnectorReady",
                "timeout": "3m",
            }
        ],
    },
    {
        "name": "headscale",
        "path": "mesh/headscale",
        "needs": ["tailscale", "cilium"],
        "reconcileTimeout": "2m",
        "destroyTimeout": "2m",
        # No LoadBalancer on kind: the report reads the ClusterIP instead of the external address.
        "waitAfter": [
            _rollout("deployment/headscale", "headscale"),
            {
                "resource": "svc/headscale",
                "namespace": "headscale",
                "for": "jsonpath={.spec.type}=ClusterIP",
                "timeout": _SHORT,
                "report": "{.spec.clusterIP}",
            },
        ],
    },
    {
        "name": "envoy-gateway",
        "path": "networking/envoy-gateway",
        "needs": ["cilium"],
        "reconcileTimeout": "2m",
        "destroyTimeout": "2m",
        "serverSide": True,
        "waitAfter": [
            _rollout("deployment/envoy-gateway", "envoy-gateway-system"),
            _established(f"gateways.{E2E_GROUP}"),
        ],
    },
]


def e2e_config(
    catalog_dir: Path, *, kubeconfig: str | None = None, context: str | None = None
) -> dict[str, Any]:
    """The e2e stack's `kpt-catalog:` values (keys without the namespace), plain values.

    `catalog_dir` is a copy of `E2E_CATALOG` (the test edits a file of it); `kubeconfig` and
    `context` pin the cluster for kpt, kubectl and the provider alike; `kubeconfig=""` leaves the
    program's default (`~/.kube/config`). Not given (offline), they are the tests' stand-ins."""
    config: dict[str, Any] = {
        "catalogDir": str(catalog_dir),
        "packages": copy.deepcopy(PACKAGES),
        "context": TEST_CONTEXT if context is None else context,
    }
    if kubeconfig is None or kubeconfig:
        config["kubeconfig"] = str(TEST_KUBECONFIG) if kubeconfig is None else kubeconfig
    return config
