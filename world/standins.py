"""Stand-ins for the controllers whose images cannot run here, against the real API server.

    python -m world.standins --kubeconfig FILE --control DIR

Each does exactly what the catalog's waits and rollback need from the controller it replaces,
and nothing else:

- `node` replaces the kubelet (and the node lifecycle controller's lifting of the not-ready
  taint): one Node (`local-node`, a control-plane node) kept Ready; the pods
  the scheduler binds to it become Running and Ready (all containers); a pod being deleted is
  removed at once. It runs no container, probes nothing, mounts nothing.
- `cilium` replaces cilium-operator's CRD registration and its LB IPAM: it registers the five
  Cilium CRDs the catalog waits for (schemas accept any field) and gives every `LoadBalancer`
  Service the next free address of a `CiliumLoadBalancerIPPool` block. No L2 announcement, no BGP.
- `tailscale` replaces the Tailscale operator's handling of `Connector`s, and acts only while the
  operator runs (Deployment `tailscale-system/operator` has an available replica, as the real
  operator is that Deployment's pod): it puts its finalizer `tailscale.com/finalizer` on each
  Connector, sets `ConnectorReady`, and releases the finalizer of a Connector being deleted. With
  the operator gone, a Connector's finalizer stays, as it would on a real cluster.
- `envoy-gateway` replaces Envoy Gateway's Gateway handling, while Deployment
  `envoy-gateway-system/envoy-gateway` runs: a `LoadBalancer` Service per Gateway labelled
  `gateway.envoyproxy.io/owning-gateway-name`, and `Accepted`/`Programmed` with the Service's
  address once it has one. No proxy, no routes.

Each is told how to behave by a file `<control>/<name>` (re-read every pass): `normal` (or no
file), `late <seconds>` (acts only that long after it first saw an object), `never` (runs, but
never makes anything ready) or `stopped` (does nothing at all).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

__all__ = ["STANDINS", "Api", "main"]

STANDINS = ("node", "cilium", "tailscale", "envoy-gateway")
NODE = "local-node"
CONNECTOR_FINALIZER = "tailscale.com/finalizer"
CILIUM_CRDS = {
    "ciliumloadbalancerippools": ("CiliumLoadBalancerIPPool", ["v2alpha1", "v2"]),
    "ciliuml2announcementpolicies": ("CiliumL2AnnouncementPolicy", ["v2alpha1"]),
    "ciliumbgpclusterconfigs": ("CiliumBGPClusterConfig", ["v2alpha1", "v2"]),
    "ciliumbgppeerconfigs": ("CiliumBGPPeerConfig", ["v2alpha1", "v2"]),
    "ciliumbgpadvertisements": ("CiliumBGPAdvertisement", ["v2alpha1", "v2"]),
}
_PASS_SECONDS = 0.3


class Api:
    """The few calls the stand-ins make, with the kubeconfig's server and token."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        self.server = str(config["clusters"][0]["cluster"]["server"])
        self.token = str(config["users"][0]["user"]["token"])
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE

    def call(
        self,
        method: str,
        path: str,
        body: object | None = None,
        content_type: str = "application/json",
    ) -> Any:  # noqa: ANN401 - whatever JSON the API server answers
        """The response body as JSON; None on 404 or 409."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the server is the kubeconfig's https URL
            self.server + path, data=data, method=method
        )
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.context) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            if error.code in (404, 409):
                return None
            raise

    def items(self, path: str) -> list[dict[str, Any]]:
        listed = self.call("GET", path)
        return list(listed.get("items") or []) if listed else []

    def merge(self, path: str, patch: dict[str, Any]) -> None:
        """A JSON merge patch of the object at `path`."""
        self.call("PATCH", path, patch, "application/merge-patch+json")

    def merge_status(self, path: str, status: dict[str, Any]) -> None:
        self.merge(path + "/status", {"status": status})


class Behaviour:
    """How one stand-in is told to behave, from its control file."""

    def __init__(self, control: Path, name: str) -> None:
        self.file = control / name
        self.first_seen: dict[str, float] = {}

    def mode(self) -> tuple[str, float]:
        try:
            words = self.file.read_text().split()
        except OSError:
            return "normal", 0.0
        if not words:
            return "normal", 0.0
        return words[0], float(words[1]) if len(words) > 1 else 0.0

    def acts(self) -> bool:
        return self.mode()[0] != "stopped"

    def ready(self, key: str) -> bool:
        """Whether to make `key` ready now."""
        mode, seconds = self.mode()
        first = self.first_seen.setdefault(key, time.monotonic())
        if mode == "never":
            return False
        return mode != "late" or time.monotonic() - first >= seconds


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _condition(kind: str, status: bool, reason: str, generation: int = 0) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": kind,
        "status": "True" if status else "False",
        "reason": reason,
        "message": f"{reason} (kpt-catalog stand-in)",
        "lastTransitionTime": _now(),
    }
    if generation:
        condition["observedGeneration"] = generation
    return condition


def _path(obj: dict[str, Any], collection: str) -> str:
    metadata = obj["metadata"]
    namespace = metadata.get("namespace")
    where = f"/namespaces/{namespace}" if namespace else ""
    api = obj.get("apiVersion", "v1")
    base = "/api/v1" if api == "v1" else f"/apis/{api}"
    return f"{base}{where}/{collection}/{metadata['name']}"


def node_pass(api: Api, behaviour: Behaviour) -> None:
    """The kubelet's part: the Node, and the pods bound to it."""
    node_path = f"/api/v1/nodes/{NODE}"
    if api.call("GET", node_path) is None:
        labels = {
            "kubernetes.io/hostname": NODE,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "node-role.kubernetes.io/control-plane": "true",
            "node-role.kubernetes.io/master": "true",
        }
        api.call("POST", "/api/v1/nodes", {"metadata": {"name": NODE, "labels": labels}})
    resources = {"cpu": "32", "memory": "64Gi", "pods": "250"}
    ready = behaviour.ready("node")
    api.merge_status(
        node_path,
        {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "KubeletReady" if ready else "KubeletNotReady",
                    "message": "kpt-catalog node stand-in",
                    "lastHeartbeatTime": _now(),
                    "lastTransitionTime": _now(),
                }
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "nodeInfo": {"kubeletVersion": "v1.34.4", "architecture": "amd64"},
        },
    )
    node = api.call("GET", node_path) or {}
    if ready and (node.get("spec") or {}).get("taints"):
        # The TaintNodesByCondition admission plugin taints a new Node not-ready; the node
        # lifecycle controller (not run: nothing posts heartbeats) would lift it once Ready.
        api.merge(node_path, {"spec": {"taints": None}})
    for pod in api.items("/api/v1/pods"):
        spec, metadata = pod.get("spec") or {}, pod["metadata"]
        if spec.get("nodeName") != NODE:
            continue
        path = _path(pod, "pods")
        if metadata.get("deletionTimestamp"):
            api.call("DELETE", path, {"gracePeriodSeconds": 0})
            continue
        status = pod.get("status") or {}
        conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
        if not ready or (status.get("phase") == "Running" and conditions.get("Ready") == "True"):
            continue
        if not behaviour.ready(metadata.get("uid", path)):
            continue
        containers = [
            {
                "name": container["name"],
                "image": container.get("image", ""),
                "imageID": "",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": _now()}},
            }
            for container in spec.get("containers") or []
        ]
        api.merge_status(
            path,
            {
                "phase": "Running",
                "hostIP": "127.0.0.1",
                "podIP": "127.0.0.1",
                "startTime": _now(),
                "conditions": [
                    _condition(kind, True, "StandIn")
                    for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
                ],
                "containerStatuses": containers,
            },
        )


def _crd(plural: str, kind: str, versions: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.cilium.io"},
        "spec": {
            "group": "cilium.io",
            "scope": "Cluster",
            "names": {"plural": plural, "kind": kind, "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": version == versions[-1],
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
                for version in versions
            ],
        },
    }


def _pool_addresses(pool: dict[str, Any]) -> Iterator[str]:
    for block in (pool.get("spec") or {}).get("blocks") or []:
        if "cidr" in block:
            for address in ipaddress.ip_network(block["cidr"], strict=False).hosts():
                yield str(address)
        elif "start" in block:
            start = int(ipaddress.ip_address(block["start"]))
            stop = int(ipaddress.ip_address(block.get("stop", block["start"])))
            for number in range(start, stop + 1):
                yield str(ipaddress.ip_address(number))


def cilium_pass(api: Api, behaviour: Behaviour) -> None:
    """cilium-operator's part: its CRDs, and LB IPAM."""
    for plural, (kind, versions) in CILIUM_CRDS.items():
        crd_path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.cilium.io"
        if api.call("GET", crd_path) is None and behaviour.ready(f"crd/{plural}"):
            api.call(
                "POST",
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                _crd(plural, kind, versions),
            )
    try:
        pools = api.items("/apis/cilium.io/v2/ciliumloadbalancerippools")
    except urllib.error.HTTPError:
        pools = []
    services = [
        s
        for s in api.items("/api/v1/services")
        if (s.get("spec") or {}).get("type") == "LoadBalancer"
    ]
    used = {
        ingress.get("ip")
        for s in services
        for ingress in ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    }
    for service in services:
        if ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
            continue
        if not behaviour.ready(service["metadata"].get("uid", "")):
            continue
        free = next(
            (a for pool in pools for a in _pool_addresses(pool) if a not in used),
            None,
        )
        if free is None:
            continue  # no pool, or the pool is full: the Service stays pending, as with Cilium
        used.add(free)
        api.merge_status(
            _path(service, "services"),
            {"loadBalancer": {"ingress": [{"ip": free, "ipMode": "VIP"}]}},
        )


def _available(api: Api, namespace: str, name: str) -> bool:
    deployment = api.call("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
    if not deployment or deployment["metadata"].get("deletionTimestamp"):
        return False
    return int((deployment.get("status") or {}).get("availableReplicas") or 0) > 0


def _while_running(api: Api, namespace: str, deployment: str, objects: str) -> list[dict[str, Any]]:
    """The objects at `objects` that the controller of Deployment `namespace/deployment` acts on:
    none while it does not run (no available replica), or while their CRD is not served."""
    if not _available(api, namespace, deployment):
        return []
    try:
        return api.items(objects)
    except urllib.error.HTTPError:
        return []


def _set_finalizers(api: Api, path: str, metadata: dict[str, Any], finalizers: list[str]) -> None:
    """Replace the object's finalizers, only if nobody changed it since it was read (a merge
    patch replaces the whole list; a conflict is retried on the next pass)."""
    api.merge(
        path,
        {"metadata": {"finalizers": finalizers, "resourceVersion": metadata["resourceVersion"]}},
    )


def tailscale_pass(api: Api, behaviour: Behaviour) -> None:
    """The Tailscale operator's part: each Connector's finalizer and ConnectorReady."""
    connectors = _while_running(
        api, "tailscale-system", "operator", "/apis/tailscale.com/v1alpha1/connectors"
    )
    for connector in connectors:
        metadata = connector["metadata"]
        path = _path(connector, "connectors")
        finalizers = list(metadata.get("finalizers") or [])
        if metadata.get("deletionTimestamp"):
            if CONNECTOR_FINALIZER in finalizers:
                finalizers.remove(CONNECTOR_FINALIZER)
                _set_finalizers(api, path, metadata, finalizers)
            continue
        if CONNECTOR_FINALIZER not in finalizers:
            _set_finalizers(api, path, metadata, [*finalizers, CONNECTOR_FINALIZER])
        generation = int(metadata.get("generation") or 0)
        conditions = (connector.get("status") or {}).get("conditions") or []
        if any(
            c.get("type") == "ConnectorReady"
            and c.get("status") == "True"
            and c.get("observedGeneration") == generation
            for c in conditions
        ):
            continue
        if behaviour.ready(metadata.get("uid", path)):
            api.merge_status(
                path,
                {
                    "conditions": [
                        _condition("ConnectorReady", True, "ConnectorCreated", generation)
                    ]
                },
            )


def envoy_gateway_pass(api: Api, behaviour: Behaviour) -> None:
    """Envoy Gateway's part: a LoadBalancer Service per Gateway, then Programmed."""
    gateways = _while_running(
        api, "envoy-gateway-system", "envoy-gateway", "/apis/gateway.networking.k8s.io/v1/gateways"
    )
    for gateway in gateways:
        metadata = gateway["metadata"]
        if metadata.get("deletionTimestamp"):
            continue
        name, namespace = metadata["name"], metadata["namespace"]
        service_name = f"envoy-{namespace}-{name}"[:63]
        services = "/api/v1/namespaces/envoy-gateway-system/services"
        service = api.call("GET", f"{services}/{service_name}")
        if service is None:
            api.call(
                "POST",
                services,
                {
                    "metadata": {
                        "name": service_name,
                        "labels": {
                            "gateway.envoyproxy.io/owning-gateway-name": name,
                            "gateway.envoyproxy.io/owning-gateway-namespace": namespace,
                        },
                    },
                    "spec": {
                        "type": "LoadBalancer",
                        "ports": [{"name": "http", "port": 80, "targetPort": 10080}],
                        "selector": {"gateway.envoyproxy.io/owning-gateway-name": name},
                    },
                },
            )
            continue
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if not ingress or not behaviour.ready(metadata.get("uid", name)):
            continue
        generation = int(metadata.get("generation") or 0)
        api.merge_status(
            _path(gateway, "gateways"),
            {
                "addresses": [{"type": "IPAddress", "value": ingress[0]["ip"]}],
                "conditions": [
                    _condition("Accepted", True, "Accepted", generation),
                    _condition("Programmed", True, "Programmed", generation),
                ],
            },
        )


PASSES = {
    "node": node_pass,
    "cilium": cilium_pass,
    "tailscale": tailscale_pass,
    "envoy-gateway": envoy_gateway_pass,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m world.standins", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--control", type=Path, required=True)
    args = parser.parse_args(argv)
    api = Api(args.kubeconfig)
    behaviours = {name: Behaviour(args.control, name) for name in STANDINS}
    while True:
        for name, run_pass in PASSES.items():
            behaviour = behaviours[name]
            if not behaviour.acts():
                continue
            try:
                run_pass(api, behaviour)
            except (urllib.error.URLError, OSError, ValueError, KeyError) as error:
                # The API server may be stopped on purpose (an unreachable cluster): keep trying.
                print(f"{name}: {error}", file=sys.stderr, flush=True)
        time.sleep(_PASS_SECONDS)


if __name__ == "__main__":
    sys.exit(main())
