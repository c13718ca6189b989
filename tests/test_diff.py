"""`make diff` and the object-level part of `make preview`, against a stand-in kubectl that answers
like a cluster holding the dev stack as deployed (tests/fakebin/kubectl, FAKE_KUBECTL_CLUSTER)."""

from __future__ import annotations

import base64
import copy
import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.kpt_package import TYPE_TOKEN
from components.step.prune.rules import (
    ObjectKey,
    PruneInputError,
    inventory_objects,
    kept_because,
    plan_prune,
    prune_candidates,
)
from kpt_catalog import clusterops, diff, exits
from kpt_catalog.stackfile import load_stack_catalog
from tests.harness import ROOT, TEST_CONTEXT, TEST_KUBECONFIG, check_json_output

FAKEBIN = ROOT / "tests" / "fakebin"
ORDER = ["kube-vip", "cilium", "tailscale", "headscale", "envoy-gateway"]
# The CRDs cilium-operator registers at run time (the cilium package's waitBefore).
CILIUM_KINDS = ["CiliumLoadBalancerIPPool", "CiliumL2AnnouncementPolicy", "CiliumBGPClusterConfig"]
CILIUM_KINDS += ["CiliumBGPPeerConfig", "CiliumBGPAdvertisement"]


class FakeCluster:
    """The stand-in kubectl's cluster: the catalog's objects as kpt would have applied them."""

    def __init__(self, path: Path, record: Path, catalog_dir: Path) -> None:
        self.path = path
        self.record = record
        self.objects: list[dict[str, Any]] = []
        catalog = load_stack_catalog("dev", {"catalogDir": str(catalog_dir)})
        for kind in CILIUM_KINDS:
            self.objects.append(_crd("cilium.io", kind))
        for package in catalog.packages:
            inventory = package.inventory
            applied = []
            for document in diff.package_objects(package):
                live = copy.deepcopy(document)
                annotations = live["metadata"].setdefault("annotations", {})
                annotations["config.k8s.io/owning-inventory"] = inventory.inventory_id
                live["metadata"].setdefault("uid", f"uid-{len(self.objects)}")
                self.objects.append(live)
                applied.append(ObjectKey.of(document))
            self.objects.append(
                {
                    "apiVersion": "kpt.dev/v1alpha1",
                    "kind": "ResourceGroup",
                    "metadata": {"name": inventory.name, "namespace": inventory.namespace},
                    "spec": {"resources": [_entry(key) for key in applied]},
                }
            )
            # the native objects, as the provider applied them
            for _, documents in package.manifests:
                for manifest in documents:
                    live = copy.deepcopy(manifest.body)
                    live["metadata"]["managedFields"] = [
                        {"manager": "pulumi-kubernetes-1f2e3d4c", "operation": "Apply"}
                    ]
                    self.objects.append(live)
            for secret in package.spec.secrets:
                self.objects.append(
                    {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "metadata": {"name": secret.name, "namespace": secret.namespace},
                        "type": "Opaque",
                        "data": {key: "c2VjcmV0" for key, _ in secret.data},
                    }
                )
        self.resource_group_crd = True
        self.save()

    def save(self) -> None:
        self.path.write_text(
            json.dumps({"objects": self.objects, "resourceGroupCRD": self.resource_group_crd})
        )

    def find(self, kind: str, name: str) -> dict[str, Any]:
        return next(o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name)

    def remove(self, kind: str, name: str) -> None:
        self.objects.remove(self.find(kind, name))

    def calls(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def argvs(self) -> list[list[str]]:
        """Each call's arguments after the cluster flags, which every call must lead with: the
        stack's kubeconfig and context, never the shell's."""
        flags = ["--kubeconfig", str(TEST_KUBECONFIG), "--context", TEST_CONTEXT]
        argvs = [call["argv"] for call in self.calls()]
        assert all(argv[:4] == flags for argv in argvs), argvs
        return [argv[4:] for argv in argvs]


def _crd(group: str, kind: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.lower()}s.{group}"},
        "spec": {"group": group, "names": {"kind": kind}},
    }


def _entry(key: ObjectKey) -> dict[str, str]:
    return {"group": key.group, "kind": key.kind, "namespace": key.namespace, "name": key.name}


@pytest.fixture
def cluster(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, catalog: Path, stack_project: Path
) -> FakeCluster:
    record = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", f"{FAKEBIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_RECORD", str(record))
    monkeypatch.setenv("FAKE_KUBECTL_CLUSTER", str(tmp_path / "cluster.json"))
    monkeypatch.delenv("KUBECTL_EXTERNAL_DIFF", raising=False)
    return FakeCluster(tmp_path / "cluster.json", record, catalog)


def run_diff(catalog: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = diff.main(["--catalog-dir", str(catalog), *args])
    return code, capsys.readouterr().out


def verdicts(out: str) -> dict[str, str]:
    lines = [line for line in out.splitlines() if line.split(" ", 1)[0] in ORDER]
    return {line.split()[0]: line.split(None, 1)[1] for line in lines}


# --- make diff ---------------------------------------------------------------------------------


def test_an_unchanged_catalog_is_in_sync(
    cluster: FakeCluster, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_diff(catalog, capsys)

    assert code == 0
    assert list(verdicts(out)) == ORDER
    assert set(verdicts(out).values()) == {"in sync"}
    assert out.splitlines()[-1] == "5 of 5 package(s) in sync"
    argvs = cluster.argvs()
    assert argvs[0] == ["get", "--raw", "/readyz", "--request-timeout=15s"]
    # per package: its inventory, then one server-side dry run of its objects; per native
    # object a read, and for the Connector a dry run with the provider's field manager
    assert sorted(a[0] for a in argvs[1:]) == ["diff"] * 6 + ["get"] * 7
    assert [
        "diff",
        "--server-side",
        "--field-manager=pulumi-kubernetes-1f2e3d4c",
        "-f",
        "-",
    ] in argvs
    headscale = [a for a in argvs if "headscale" in a]
    assert headscale == [
        ["get", "resourcegroups.kpt.dev", "headscale", "-n", "headscale", "-o", "json"]
    ]
    dry_runs = [a for a in argvs if a[0] == "diff"]
    # envoy-gateway applies server-side: its dry run, like kpt, stops at a field conflict
    assert dry_runs.count(["diff", "--server-side", "--field-manager=kubectl", "-f", "-"]) == 1
    assert (
        dry_runs.count(
            ["diff", "--server-side", "--field-manager=kubectl", "--force-conflicts", "-f", "-"]
        )
        == 4
    )


def test_a_changed_deployment_shows_the_fields_that_change(
    cluster: FakeCluster, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # someone scaled headscale to 0 behind kpt's back
    cluster.find("Deployment", "headscale")["spec"]["replicas"] = 0
    cluster.save()

    code, out = run_diff(catalog, capsys)

    assert code == 1
    assert verdicts(out)["headscale"] == "1 to change"
    assert verdicts(out)["kube-vip"] == "in sync"
    lines = out.splitlines()
    start = lines.index("  ~ Deployment/headscale/headscale")
    hunk = lines[start + 1 : start + 12]
    assert hunk[0].startswith("      @@ -")
    assert "      -  replicas: 0" in hunk
    assert "      +  replicas: 1" in hunk
    assert lines[-1] == "4 of 5 package(s) in sync, 1 differ"


def test_a_new_object_is_a_create(
    cluster: FakeCluster, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (catalog / "mesh" / "headscale" / "acl.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: headscale-acl\n"
        "  namespace: headscale\ndata:\n  policy: '{}'\n"
    )

    code, out = run_diff(catalog, capsys)

    assert code == 1
    assert verdicts(out)["headscale"] == "1 to create"
    assert "  + ConfigMap/headscale/headscale-acl" in out.splitlines()


def test_an_object_that_left_the_files_is_a_prune_unless_kpt_keeps_it(
    cluster: FakeCluster, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # kube-vip's ClusterRoleBinding dropped from its file
    rbac = catalog / "ha" / "kube-vip" / "rbac.yaml"
    rbac.write_text(_without_kind(rbac, "ClusterRoleBinding"))
    # the headscale Service's file removed, the Service annotated to be kept
    (catalog / "mesh" / "headscale" / "deployment.yaml").write_text(
        _without_kind(catalog / "mesh" / "headscale" / "deployment.yaml", "Service")
    )
    service = cluster.find("Service", "headscale")
    service["metadata"]["annotations"]["cli-utils.sigs.k8s.io/on-remove"] = "keep"
    cluster.save()

    code, out = run_diff(catalog, capsys)

    assert code == 1
    assert verdicts(out)["kube-vip"] == "1 to prune"
    assert (
        "  - ClusterRoleBinding/system:kube-vip-binding "
        "(pruned: in the cluster's inventory, no longer in the files)"
    ) in out.splitlines()
    assert verdicts(out)["headscale"] == "in sync"
    assert (
        "  = Service/headscale/headscale "
        "(left the files; kpt keeps it: annotated cli-utils.sigs.k8s.io/on-remove: keep)"
    ) in out.splitlines()
    # the candidates are read back from the cluster, one call per namespace
    gets = [
        a
        for a in cluster.argvs()
        if "--ignore-not-found" in a and not a[1].startswith(("connector.", "secret/"))
    ]
    assert sorted(gets) == [
        [
            "get",
            "clusterrolebinding.rbac.authorization.k8s.io/system:kube-vip-binding",
            "-o",
            "json",
            "--ignore-not-found",
        ],
        ["get", "service/headscale", "-n", "headscale", "-o", "json", "--ignore-not-found"],
    ]


def _without_kind(path: Path, kind: str) -> str:
    documents = path.read_text().split("\n---\n")
    return "\n---\n".join(d for d in documents if f"kind: {kind}\n" not in d)


@pytest.mark.parametrize("missing", ["resourcegroup", "crd"])
def test_a_package_never_deployed_is_all_creates(
    cluster: FakeCluster, catalog: Path, capsys: pytest.CaptureFixture[str], missing: str
) -> None:
    if missing == "crd":
        cluster.resource_group_crd = False
    headscale = [
        o
        for o in cluster.objects
        if o["metadata"].get("namespace") == "headscale" or o["metadata"]["name"] == "headscale"
    ]
    for obj in headscale:
        cluster.objects.remove(obj)
    cluster.save()

    code, out = run_diff(catalog, capsys, "--package", "headscale")

    assert code == 1
    assert verdicts(out) == {"headscale": "not deployed yet: 4 to create"}
    # the server cannot dry-run objects in a namespace that does not exist yet
    assert [line for line in out.splitlines() if line.startswith("  + ")] == [
        "  + Namespace/headscale",
        "  + ConfigMap/headscale/headscale-config (after its Namespace, created by this package)",
        "  + Deployment/headscale/headscale (after its Namespace, created by this package)",
        "  + Service/headscale/headscale (after its Namespace, created by this package)",
    ]
    assert not [a for a in cluster.argvs() if "--ignore-not-found" in a]


def test_custom_resources_of_the_packages_own_new_crd_are_creates(
    cluster: FakeCluster, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for obj in [o for o in cluster.objects if "gateway" in json.dumps(o["metadata"])]:
        cluster.objects.remove(obj)
    cluster.save()

    code, out = run_diff(catalog, capsys, "--package", "envoy-gateway")

    assert code == 1
    assert verdicts(out)["envoy-gateway"].startswith("not deployed yet: ")
    assert (
        "  + GatewayClass/eg (after its CustomResourceDefinition, created by this package)"
    ) in out.splitlines()
    assert (
        "  + Gateway/envoy-gateway-system/eg (after its Namespace, created by this package)"
    ) in out.splitlines()
    assert verdicts(out)["envoy-gateway"] == "not deployed yet: 7 to create"
    assert "  + CustomResourceDefinition/gateways.gateway.networking.k8s.io" in out.splitlines()


def test_an_unreachable_cluster_is_said_once(
    cluster: FakeCluster,
    catalog: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_KUBECTL_SCENARIO", "unreachable")

    code, out = run_diff(catalog, capsys)

    assert code == exits.UNREACHABLE
    assert out.splitlines()[1:] == [
        f"cluster unreachable (kubeconfig {TEST_KUBECONFIG}, "
        f"context {TEST_CONTEXT}): The connection to the server 127.0.0.1:6443 was "
        "refused - did you specify the right host or port?"
    ]
    assert len(cluster.argvs()) == 1


def test_secret_values_are_never_printed(
    cluster: FakeCluster, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (catalog / "mesh" / "headscale" / "secret.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: oidc\n  namespace: headscale\n"
        "  labels:\n    app: headscale\n"
        "stringData:\n  client_secret: n3w-s3cret-value\n  issuer: https://id.example.com\n"
    )
    old = base64.b64encode(b"0ld-s3cret-value").decode()
    cluster.objects.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "oidc",
                "namespace": "headscale",
                "annotations": {
                    # kpt's client-side apply keeps the last applied object, values included
                    "kubectl.kubernetes.io/last-applied-configuration": json.dumps(
                        {"stringData": {"client_secret": "0ld-s3cret-value"}}
                    ),
                    "config.k8s.io/owning-inventory": "kpt-catalog-headscale",
                },
            },
            "data": {"client_secret": old, "old_key": base64.b64encode(b"x0x0").decode()},
        }
    )
    cluster.save()

    code, out = run_diff(catalog, capsys, "--package", "headscale")

    assert code == 1, out
    assert (
        "  ~ Secret/headscale/oidc: adds issuer; changes client_secret; "
        "2 other line(s) differ (values hidden)"
    ) in out.splitlines()
    # no line of the Secret's diff is shown: its context could quote an annotation holding a value
    assert "last-applied-configuration" not in out
    for secret in ("s3cret", old, "x0x0", "id.example.com", "eDB4MA"):
        assert secret not in out


def test_local_config_and_the_inventory_are_not_sent(
    cluster: FakeCluster, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (catalog / "mesh" / "headscale" / "setters.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: setters\n"
        '  annotations:\n    config.kubernetes.io/local-config: "true"\ndata:\n  x: y\n'
    )

    code, _ = run_diff(catalog, capsys, "--package", "headscale")

    assert code == 0
    (sent,) = [json.loads(c["stdin"]) for c in cluster.calls() if c["argv"][4] == "diff"]
    assert [(o["kind"], o["metadata"]["name"]) for o in sent["items"]] == [
        ("Namespace", "headscale"),
        ("ConfigMap", "headscale-config"),
        ("Deployment", "headscale"),
        ("Service", "headscale"),
    ]


def test_the_users_external_diff_program_is_not_used(
    cluster: FakeCluster,
    catalog: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    spy = tmp_path / "bin" / "meld"
    spy.parent.mkdir()
    spy.write_text("#!/bin/sh\necho external diff ran\nexit 1\n")
    spy.chmod(0o755)
    monkeypatch.setenv("KUBECTL_EXTERNAL_DIFF", str(spy))
    # a kubectl that would run it, as the real one does, when the variable reaches it
    wrapper = tmp_path / "bin" / "kubectl"
    wrapper.write_text(
        "#!/bin/sh\n"
        'if [ -n "$KUBECTL_EXTERNAL_DIFF" ] && [ "$1" = diff ]; then\n'
        '  exec "$KUBECTL_EXTERNAL_DIFF"\n'
        "fi\n"
        f'exec {shlex.quote(str(FAKEBIN / "kubectl"))} "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")

    code, out = run_diff(catalog, capsys)

    assert code == 0, out
    assert "external diff ran" not in out


def test_an_unknown_package_is_named(
    cluster: FakeCluster, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert diff.main(["--catalog-dir", str(catalog), "--package", "headscal"]) == exits.CONFIG
    assert capsys.readouterr().err.strip() == (
        "PACKAGE: no package 'headscal' in stack dev; did you mean 'headscale'? the packages "
        "are kube-vip, cilium, tailscale, headscale, envoy-gateway"
    )
    assert cluster.argvs() == []


def test_a_failed_kubectl_is_an_error_with_its_reason(
    cluster: FakeCluster, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # an API version the server no longer serves: nothing the catalog deploys provides it
    (catalog / "networking" / "cilium" / "psp.yaml").write_text(
        "apiVersion: policy/v1beta1\nkind: PodSecurityPolicy\nmetadata:\n  name: cilium\n"
        "spec:\n  privileged: true\n"
    )

    code, out = run_diff(catalog, capsys, "--package", "cilium")

    assert code == exits.FAILED
    assert verdicts(out)["cilium"] == "ERROR: kubectl diff failed (exit 2)"
    assert "ensure CRDs are installed first" in out
    assert 'no matches for kind "PodSecurityPolicy" in version "policy/v1beta1"' in out
    assert out.splitlines()[-1] == "0 of 1 package(s) in sync, 1 failed"


def test_custom_resources_of_a_crd_the_package_waits_for_are_creates(
    cluster: FakeCluster, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # cilium's CRDs come from cilium-operator at run time; cilium waits for them before its apply
    cluster.objects = [o for o in cluster.objects if o["kind"] != "CustomResourceDefinition"]
    cluster.save()

    code, out = run_diff(catalog, capsys, "--package", "cilium")

    assert code == 1, out
    created = [line for line in out.splitlines() if line.startswith("  + ")]
    assert created
    assert all(line.endswith(" (after its CRD (waited for by cilium))") for line in created)
    assert (
        "  + CiliumBGPClusterConfig/cluster-bgp (after its CRD (waited for by cilium))" in created
    )
    assert verdicts(out)["cilium"] == f"{len(created)} to create"


def test_objects_after_a_needed_packages_crd_or_namespace_are_creates(
    cluster: FakeCluster, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # headscale needs tailscale (its Connector CRD, its namespace) and cilium (which waits for
    # the cilium.io CRDs); none of them is in the cluster yet
    (catalog / "mesh" / "headscale" / "extra.yaml").write_text(
        "apiVersion: tailscale.com/v1alpha1\nkind: Connector\nmetadata:\n  name: hs\n"
        "spec:\n  subnetRouter:\n    advertiseRoutes: [10.0.0.0/24]\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hs-peer\n"
        "  namespace: tailscale-system\ndata:\n  x: y\n---\n"
        "apiVersion: cilium.io/v2alpha1\nkind: CiliumLoadBalancerIPPool\nmetadata:\n"
        "  name: hs\nspec:\n  blocks: [{cidr: 10.0.1.0/24}]\n"
    )
    keep = {"headscale"}
    cluster.objects = [
        o
        for o in cluster.objects
        if o["kind"] != "CustomResourceDefinition"
        and not (o["kind"] == "Namespace" and o["metadata"]["name"] not in keep)
    ]
    cluster.save()

    code, out = run_diff(catalog, capsys, "--package", "headscale")

    assert code == 1, out
    assert [line for line in out.splitlines() if line.startswith("  + ")] == [
        "  + Connector/hs (after its CRD (from package tailscale))",
        "  + ConfigMap/tailscale-system/hs-peer (after its Namespace (from package tailscale))",
        "  + CiliumLoadBalancerIPPool/hs (after its CRD (waited for by cilium))",
    ]
    assert verdicts(out)["headscale"] == "3 to create"


def test_a_kind_the_cluster_provides_is_a_create_after_its_crd(
    cluster: FakeCluster,
    catalog: Path,
    capsys: pytest.CaptureFixture[str],
    stack_project: Path,
) -> None:
    stack_file = stack_project / "Pulumi.dev.yaml"
    document = yaml.safe_load(stack_file.read_text())
    document["config"]["kpt-catalog:clusterProvidedKinds"] = [
        "monitoring.coreos.com/ServiceMonitor"
    ]
    stack_file.write_text(yaml.safe_dump(document))
    (catalog / "mesh" / "headscale" / "monitor.yaml").write_text(
        "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n"
        "  name: headscale\n  namespace: headscale\nspec:\n  endpoints: [{port: metrics}]\n"
    )

    code, out = run_diff(catalog, capsys, "--package", "headscale")

    assert code == 1, out
    assert [line for line in out.splitlines() if line.startswith("  + ")] == [
        "  + ServiceMonitor/headscale/headscale (after its CRD (listed in clusterProvidedKinds))"
    ]


def test_an_empty_cluster_is_all_creates(
    cluster: FakeCluster, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a fresh cluster: no objects, no CRDs (kpt installs the ResourceGroup CRD on its first apply)
    cluster.objects = []
    cluster.resource_group_crd = False
    cluster.save()

    code, out = run_diff(catalog, capsys)

    assert code == 1, out
    assert list(verdicts(out)) == ORDER
    assert all(v.startswith("not deployed yet: ") for v in verdicts(out).values()), out
    assert "ERROR" not in out
    assert out.splitlines()[-1] == "0 of 5 package(s) in sync, 5 differ"
    assert "  + CiliumBGPClusterConfig/cluster-bgp (after its CRD (waited for by cilium))" in out


# --- make preview ------------------------------------------------------------------------------

URN = "urn:pulumi:dev::kpt-catalog::"
COMMAND = "kpt-catalog:index:KptPackage$command:local:Command"


def _preview(*steps: tuple[str, str]) -> str:
    """What `pulumi preview --json` prints (PreviewDigest, pulumi pkg/display/json.go), after
    the wrapper's `stack select` line."""
    digest = {
        "steps": [{"op": op, "urn": urn} for op, urn in steps],
        "changeSummary": {"same": 9, "update": len(steps)},
    }
    return "Created stack 'dev'\n" + json.dumps(digest, indent=4) + "\n"


def test_the_package_type_is_the_components() -> None:
    assert diff.PACKAGE_TYPE == TYPE_TOKEN


def test_preview_steps_map_to_packages() -> None:
    text = _preview(
        ("update", f"{URN}{COMMAND}::headscale-apply"),
        ("same", f"{URN}{COMMAND}::cilium-apply"),
        ("create", f"{URN}kpt-catalog:index:KptPackage::mesh-extra"),
        ("update", f"{URN}{COMMAND}::mesh-extra-wait-after"),
        ("update", f"{URN}pulumi:providers:kubernetes::kubernetes"),
    )
    names = ["cilium", "headscale", "mesh", "mesh-extra"]

    assert diff.packages_in_preview(text, names) == {"headscale", "mesh-extra"}
    with pytest.raises(ValueError, match="printed no preview"):
        diff.packages_in_preview("error: could not load the stack\n", names)


def test_after_preview_only_changing_packages_are_diffed(
    cluster: FakeCluster,
    catalog: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    cluster.find("Deployment", "headscale")["spec"]["replicas"] = 0
    cluster.save()
    preview = tmp_path / "preview.json"
    preview.write_text(_preview(("update", f"{URN}{COMMAND}::tailscale-apply")))

    code, out = run_diff(catalog, capsys, "--after-preview", str(preview))

    # differences are what a preview is for: only errors fail it
    assert code == 0
    assert verdicts(out) == {"tailscale": "in sync"}

    code, out = run_diff(catalog, capsys, "--after-preview", str(preview), "--drift")
    assert code == 0
    assert list(verdicts(out)) == ORDER
    assert verdicts(out)["headscale"] == "1 to change"


FAILED_DIGEST = {
    "steps": [{"op": "update", "urn": f"{URN}{COMMAND}::tailscale-apply"}],
    "diagnostics": [
        {"message": "<{%reset%}>a deprecation<{%reset%}>\n", "severity": "warning"},
        {
            "urn": f"{URN}{COMMAND}::headscale-apply",
            "prefix": "error: ",
            "message": "<{%reset%}>kpt live apply failed:\n  exit 1<{%reset%}>\n",
            "severity": "error",
        },
    ],
}
FAILED_MESSAGE = (
    "kpt-catalog preview: pulumi preview failed with error(s):\n"
    "  headscale-apply: kpt live apply failed: exit 1"
)


def test_a_preview_with_an_error_is_a_failure_naming_it() -> None:
    with pytest.raises(ValueError) as raised:
        diff.packages_in_preview(json.dumps(FAILED_DIGEST), ["headscale", "tailscale"])
    assert str(raised.value) == FAILED_MESSAGE.removeprefix("kpt-catalog preview: ")
    # a warning alone is no failure
    warned = {**FAILED_DIGEST, "diagnostics": FAILED_DIGEST["diagnostics"][:1]}
    assert diff.packages_in_preview(json.dumps(warned), ["tailscale"]) == {"tailscale"}
    with pytest.raises(ValueError, match="steps is not a list of objects"):
        diff.preview_digest(json.dumps({"steps": ["x"]}))


@pytest.mark.parametrize("drift", [[], ["--drift"]])
def test_after_a_failed_preview_nothing_is_diffed(
    cluster: FakeCluster,
    catalog: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    drift: list[str],
) -> None:
    preview = tmp_path / "preview.json"
    preview.write_text(json.dumps(FAILED_DIGEST))

    code = diff.main(["--catalog-dir", str(catalog), "--after-preview", str(preview), *drift])

    assert code == exits.FAILED
    assert capsys.readouterr().err.strip() == FAILED_MESSAGE
    assert cluster.argvs() == []
    preview.write_text("error: no stack named 'dev' found\n")
    argv = ["--catalog-dir", str(catalog), "--after-preview", str(preview), *drift]
    assert diff.main(argv) == exits.FAILED
    assert "printed no preview" in capsys.readouterr().err


def test_a_large_inventory_is_read_back_in_bounded_calls(
    cluster: FakeCluster, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    group = cluster.find("ResourceGroup", "headscale")
    left = [
        {"group": "", "kind": "ConfigMap", "namespace": "headscale", "name": f"old-{n}"}
        for n in range(450)
    ]
    group["spec"]["resources"].extend(left)
    # the last one still in the cluster
    annotations = {"config.k8s.io/owning-inventory": "kpt-catalog-headscale"}
    metadata = {"name": "old-449", "namespace": "headscale", "annotations": annotations}
    cluster.objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata})
    cluster.save()

    code, out = run_diff(catalog, capsys, "--package", "headscale")

    assert code == 1
    assert verdicts(out)["headscale"] == "1 to prune"
    assert "  - ConfigMap/headscale/old-449 (pruned: in the cluster's inventory, " in out
    assert "  = ConfigMap/headscale/old-0 (left the files and the cluster; " in out
    gets = [a for a in cluster.argvs() if "--ignore-not-found" in a]
    assert [len([n for n in argv if n.startswith("configmap/")]) for argv in gets] == [
        200,
        200,
        50,
    ]


def test_an_inventory_entry_that_is_not_strings_is_an_error_naming_the_inventory(
    cluster: FakeCluster, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    group = cluster.find("ResourceGroup", "headscale")
    group["spec"]["resources"].append({"kind": {"a": 1}, "name": "x"})
    cluster.save()

    code, out = run_diff(catalog, capsys, "--package", "headscale")

    assert code == exits.FAILED
    assert verdicts(out)["headscale"] == (
        "ERROR: the ResourceGroup headscale/headscale: spec.resources holds an entry "
        "whose kind is not a string: {'kind': {'a': 1}, 'name': 'x'}"
    )


def test_a_command_too_long_to_start_is_a_one_line_error() -> None:
    deadline = time.monotonic() + 30
    ran = clusterops.run_bounded(["kubectl", *["x" * 100] * 40_000], deadline=deadline)

    assert (ran.returncode, ran.killed) == (126, False)
    assert ran.last_lines() == ["kubectl could not be started: Argument list too long"]


def _make_dry_run(*args: str) -> list[str]:
    """The commands `make -n ARGS` prints, as a user's shell would run them: without the
    MAKEFLAGS/MAKELEVEL of a `make test` that may be running this test (a nested make announces
    its directory in its output)."""
    make = shutil.which("make")
    assert make
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    result = subprocess.run(
        [make, "--no-print-directory", "-n", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()


def _as_run(command: str, **environment: str) -> list[str]:
    """The arguments a shell would pass to the program of a printed command line, given the
    environment make exports to its recipes (STACK, PACKAGE, CATALOG_DIR, ...)."""
    result = subprocess.run(
        ["sh", "-c", f'set -- {command}; printf "%s\\0" "$@"'],
        env={"PATH": os.environ["PATH"], **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split("\0")[:-1]


def test_make_preview_hands_its_variables_to_the_command() -> None:
    commands = _make_dry_run("preview", "STACK=prod", "DRIFT=1", "PULUMI_ARGS=--refresh")
    assert commands[-1] == './kpt-catalog preview --stack "$STACK" --drift --refresh'


def test_make_diff_passes_its_variables() -> None:
    commands = _make_dry_run("diff", "PACKAGE=headscale", "TIMEOUT=2m", "CATALOG_DIR=my catalog")
    # the values are the environment's, never pasted into the line (tests/test_make.py runs it)
    assert commands[-1] == (
        './kpt-catalog diff --stack "$STACK" --timeout "$TIMEOUT" --jobs "$JOBS" '
        '--catalog-dir "$CATALOG_DIR" --package "$PACKAGE"'
    )
    exported = {"STACK": "dev", "TIMEOUT": "2m", "JOBS": "8", "CATALOG_DIR": "my catalog"}
    assert _as_run(commands[-1], **exported, PACKAGE="headscale") == [
        "./kpt-catalog",
        "diff",
        "--stack",
        "dev",
        "--timeout",
        "2m",
        "--jobs",
        "8",
        "--catalog-dir",
        "my catalog",
        "--package",
        "headscale",
    ]


# --- what kpt would prune (components/step/prune/rules.py) ----------------------------------


def test_prune_plan_from_an_inventory() -> None:
    resource_group = {
        "spec": {
            "resources": [
                {
                    "group": "apiextensions.k8s.io",
                    "kind": "CustomResourceDefinition",
                    "name": "connectors.tailscale.com",
                },
                {"group": "", "kind": "Namespace", "name": "old"},
                {"group": "apps", "kind": "Deployment", "namespace": "x", "name": "kept"},
                {"group": "", "kind": "ConfigMap", "namespace": "x", "name": "gone"},
                {"group": "", "kind": "ConfigMap", "namespace": "x", "name": "still"},
                {"group": "", "kind": "Service", "namespace": "x", "name": "theirs"},
            ]
        }
    }
    inventory = inventory_objects(resource_group)
    mine = {"metadata": {"annotations": {"config.k8s.io/owning-inventory": "mine"}}}
    # written without a namespace; depends on the Service it keeps
    package: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "still",
                "annotations": {"config.kubernetes.io/depends-on": "/namespaces/x/Service/held"},
            },
        }
    ]
    live: dict[ObjectKey, dict[str, Any]] = {
        ObjectKey(
            "apiextensions.k8s.io", "CustomResourceDefinition", "", "connectors.tailscale.com"
        ): mine,
        ObjectKey("", "Namespace", "", "old"): mine,
        ObjectKey("apps", "Deployment", "x", "kept"): {
            "metadata": {"annotations": {"client.lifecycle.config.k8s.io/deletion": "detach"}}
        },
        ObjectKey("", "Service", "x", "theirs"): {
            "metadata": {"annotations": {"config.k8s.io/owning-inventory": "other"}}
        },
        ObjectKey("", "Service", "x", "held"): mine,
        ObjectKey("", "Service", "x", "unowned"): {"metadata": {}},
        ObjectKey("", "Service", "x", "pruned"): mine,
    }
    inventory += [ObjectKey("", "Service", "x", n) for n in ("held", "unowned", "pruned")]

    plan = plan_prune(inventory, package, live, "mine", allowed=["Namespace/old"])

    assert [str(k) for k in plan.prune] == ["Namespace/old", "Service/x/pruned"]
    assert [(str(k), e) for k, e in plan.refused] == [
        (
            "CustomResourceDefinition/connectors.tailscale.com",
            "CustomResourceDefinition/connectors.tailscale.com",
        )
    ]
    assert [(str(k), r) for k, r in plan.kept] == [
        ("Deployment/x/kept", "annotated client.lifecycle.config.k8s.io/deletion: detach"),
    ]
    assert [(str(k), r) for k, r in plan.blocked] == [
        ("Service/x/held", "ConfigMap/still depends on it (config.kubernetes.io/depends-on)"),
        (
            "Service/x/theirs",
            "owned by another inventory (config.k8s.io/owning-inventory: other): kpt never "
            "prunes another package's object",
        ),
        (
            "Service/x/unowned",
            "it has no config.k8s.io/owning-inventory annotation, and kpt's strict policy "
            "prunes only its own objects",
        ),
    ]
    assert [str(k) for k in plan.gone] == ["ConfigMap/x/gone"]
    # adopt prunes an object no inventory owns, never another's
    adopted = plan_prune(inventory, package, live, "mine", adopt=True, allowed=["Namespace"])
    assert "Service/x/unowned" in [str(k) for k in adopted.prune]
    assert "Service/x/theirs" in [str(k) for k, _ in adopted.blocked]
    assert prune_candidates(inventory, inventory) == []
    assert (
        kept_because({"metadata": {"annotations": {"cli-utils.sigs.k8s.io/on-remove": "Keep"}}}, "")
        == ""
    )


def test_a_namespace_or_crd_still_in_use_is_blocked_not_pruned() -> None:
    namespace = ObjectKey("", "Namespace", "", "apps")
    inventory_ns = ObjectKey("", "Namespace", "", "inv")
    crd = ObjectKey("apiextensions.k8s.io", "CustomResourceDefinition", "", "widgets.example.com")
    mine: dict[str, Any] = {"metadata": {"annotations": {"config.k8s.io/owning-inventory": "mine"}}}
    live: dict[ObjectKey, dict[str, Any]] = {
        namespace: mine,
        inventory_ns: mine,
        crd: {**mine, "spec": {"group": "example.com", "names": {"kind": "Widget"}}},
    }
    package: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "apps"}},
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
    ]

    plan = plan_prune(
        [namespace, inventory_ns, crd], package, live, "mine", inventory_namespace="inv"
    )

    assert [(str(k), r) for k, r in plan.blocked] == [
        ("Namespace/apps", "namespace still in use by objects of the package"),
        ("Namespace/inv", "namespace still in use by the package's inventory"),
        (
            "CustomResourceDefinition/widgets.example.com",
            "Widget/w is of its kind and stays in the package",
        ),
    ]
    assert plan.prune == []
    assert plan.refused == []


def test_a_malformed_inventory_is_named() -> None:
    with pytest.raises(PruneInputError, match=r"spec\.resources holds an entry without kind"):
        inventory_objects({"spec": {"resources": [{"name": "x"}]}})


# --- every way a kubectl diff can end ----------------------------------------------------------

_CM = ObjectKey("", "ConfigMap", "headscale", "config")
_SENT = {_CM: "v1"}
_HEADERS = (
    "--- /tmp/LIVE-1/v1.ConfigMap.headscale.config\n"
    "+++ /tmp/MERGED-2/v1.ConfigMap.headscale.config\n"
)


def test_a_hunk_header_without_counts_holds_one_line_each() -> None:
    text = f"{_HEADERS}@@ -3 +3 @@\n-  a: b\n+  a: c\n"
    (change,) = diff.parse_unified_diff(text, _SENT)
    assert (change.key, change.created) == (_CM, False)
    assert change.lines == ("@@ -3 +3 @@", "-  a: b", "+  a: c")
    # a count of one read as zero would leave the second line outside the hunk
    with pytest.raises(diff.MalformedDiffError):
        diff.parse_unified_diff(f"{_HEADERS}@@ -3 +3 @@\n-  a: b\n", _SENT)


def test_a_new_object_is_a_create_only_with_its_whole_hunk() -> None:
    whole = f"{_HEADERS}@@ -0,0 +1,2 @@\n+kind: ConfigMap\n+x: y\n"
    assert [c.created for c in diff.parse_unified_diff(whole, _SENT)] == [True]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_HEADERS, "stops after its headers"),
        (f"{_HEADERS}@@ -0,0 +1,3 @@\n+kind: ConfigMap\n", "cut short inside a hunk"),
        (f"{_HEADERS}@@ -1,2 +1,2 @@\n-a\n", "cut short inside a hunk"),
        (_HEADERS.splitlines()[0] + "\n", "is not part of a diff"),
        ("error: something\n", "is not part of a diff"),
        (_HEADERS.replace("headscale.config", "headscale.other"), "no object that was sent"),
        (f"{_HEADERS}@@ -1,2 +1,2 @@\n-a\nWARNING: x\n", "cut short"),
    ],
)
def test_output_cut_short_or_not_a_diff_is_never_read_as_changes(text: str, message: str) -> None:
    with pytest.raises(diff.MalformedDiffError, match=message):
        diff.parse_unified_diff(text, _SENT)


def _kubectl_diff_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """A kubectl whose `diff` runs `script` (sh), every other call the fake cluster's."""
    wrapper = tmp_path / "liar" / "kubectl"
    wrapper.parent.mkdir()
    wrapper.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do [ "$a" = diff ] && {\n'
        "cat >/dev/null\n"
        f"{script}\n"
        "}; done\n"
        f'exec {shlex.quote(str(FAKEBIN / "kubectl"))} "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.parametrize(
    ("script", "verdict"),
    [
        # output cut short after the headers, exit 1: not "to create"
        (
            "printf -- '--- /tmp/L/apps.v1.Deployment.headscale.headscale\\n"
            "+++ /tmp/M/apps.v1.Deployment.headscale.headscale\\n'; exit 1",
            "ERROR: kubectl diff printed an unreadable diff: the diff of "
            "Deployment/headscale/headscale stops after its headers (cut short)",
        ),
        # a diff, yet exit 0
        (
            "printf -- '--- /tmp/L/v1.Namespace..headscale\\n+++ /tmp/M/v1.Namespace..headscale\\n"
            "@@ -1 +1 @@\\n-a\\n+b\\n'; exit 0",
            "ERROR: kubectl diff printed differences but exited 0 (no differences)",
        ),
        ("kill -SEGV $$", "ERROR: kubectl diff was killed by signal 11"),
        ("echo oops >&2; exit 3", "ERROR: kubectl diff failed (exit 3)"),
        ("exit 1", "ERROR: kubectl diff reported differences but printed no diff"),
    ],
)
def test_every_way_kubectl_diff_ends_is_an_error_never_in_sync(
    cluster: FakeCluster,
    catalog: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    script: str,
    verdict: str,
) -> None:
    _kubectl_diff_says(tmp_path, monkeypatch, script)

    code, out = run_diff(catalog, capsys, "--package", "headscale")

    assert code == exits.FAILED, out
    assert verdicts(out)["headscale"] == verdict
    assert out.splitlines()[-1] == "0 of 1 package(s) in sync, 1 failed"


def test_a_failed_diff_never_quotes_its_stdout_or_a_secret_value(
    cluster: FakeCluster,
    catalog: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    value = "hunter2-very-secret"
    encoded = base64.b64encode(value.encode()).decode()
    (catalog / "mesh" / "headscale" / "secret.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: oidc\n  namespace: headscale\n"
        f"data:\n  client_secret: {encoded}\nstringData:\n  other: plain-s3cret-text\n"
    )
    annotation = json.dumps({"data": {"client_secret": encoded}})
    for script in (
        # empty stderr, the Secret's last-applied-configuration on stdout
        f"echo 'last-applied-configuration: {annotation}'; exit 2",
        # the values on stderr too
        f"echo 'invalid: {value} {encoded} plain-s3cret-text' >&2; exit 2",
        f"echo 'invalid: {value}' >&2; kill -KILL $$",
    ):
        shutil.rmtree(tmp_path / "liar", ignore_errors=True)
        _kubectl_diff_says(tmp_path, monkeypatch, script)

        code, out = run_diff(catalog, capsys, "--package", "headscale")

        assert code == exits.FAILED, out
        for secret in (value, encoded, "plain-s3cret-text", "last-applied"):
            assert secret not in out, (script, out)


def test_the_bound_holds_when_a_child_leaves_the_process_group(tmp_path: Path) -> None:
    script = tmp_path / "escapes"
    # an exec credential plugin can call setsid: its child keeps kubectl's pipes open
    script.write_text("#!/bin/sh\nsetsid sleep 37 &\necho partial\nexit 0\n")
    script.chmod(0o755)
    started = time.monotonic()

    ran = clusterops.run_bounded([str(script)], deadline=started + 2)

    elapsed = time.monotonic() - started
    assert ran.killed, ran
    assert ran.stdout == "partial\n"
    assert elapsed < 2 + clusterops.DRAIN_SECONDS + 1.5, elapsed
    subprocess.run(["pkill", "-f", "sleep 37"], check=False)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (
            {"kind": "--context=evil", "name": "x"},
            "kind '--context=evil' is not a Kubernetes kind (letters and digits)",
        ),
        (
            {"group": "Apps", "kind": "Deployment", "namespace": "a", "name": "x"},
            "group 'Apps' is not an API group (a lower-case DNS name)",
        ),
        (
            {"kind": "ConfigMap", "namespace": "-n", "name": "x"},
            "namespace '-n' is not a namespace name (a lower-case DNS label)",
        ),
        ({"kind": "ConfigMap", "namespace": "a", "name": "../x"}, "name '../x' is not an"),
        (
            {"kind": "Namespace", "namespace": "default", "name": "x"},
            "a Namespace has no namespace, yet this entry names namespace 'default'",
        ),
    ],
)
def test_an_inventory_entry_kubernetes_would_not_allow_is_reported_before_kubectl_sees_it(
    cluster: FakeCluster,
    catalog: Path,
    capsys: pytest.CaptureFixture[str],
    entry: dict[str, str],
    problem: str,
) -> None:
    group = cluster.find("ResourceGroup", "cilium")
    group["spec"]["resources"].append(entry)
    cluster.save()

    code, out = run_diff(catalog, capsys, "--package", "cilium")

    assert code == exits.FAILED, out
    assert verdicts(out)["cilium"].startswith(
        "ERROR: the ResourceGroup kube-system/cilium: spec.resources[5]: "
    ), out
    assert problem in out
    assert not any("--context=evil" in " ".join(argv) for argv in cluster.argvs())


def test_an_entry_of_the_packages_own_cluster_scoped_kind_with_a_namespace_is_reported(
    cluster: FakeCluster, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    group = cluster.find("ResourceGroup", "envoy-gateway")
    entry = {"group": "gateway.networking.k8s.io", "kind": "GatewayClass", "name": "eg"}
    group["spec"]["resources"].append({**entry, "namespace": "envoy-gateway-system"})
    cluster.save()

    code, out = run_diff(catalog, capsys, "--package", "envoy-gateway")

    assert code == exits.FAILED, out
    assert (
        "a GatewayClass has no namespace, yet this entry names namespace "
        "'envoy-gateway-system': kpt cannot find it there"
    ) in verdicts(out)["envoy-gateway"]


def test_prunes_make_up_would_stop_on_are_said_with_the_fix(
    cluster: FakeCluster, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # headscale's Namespace dropped from its files while its objects stay: kpt skips the prune
    namespace_file = next(
        p
        for p in (catalog / "mesh" / "headscale").glob("*.yaml")
        if "kind: Namespace\n" in p.read_text()
    )
    namespace_file.write_text(_without_kind(namespace_file, "Namespace"))
    # a PVC the package applied once, dropped from its files: the prune guard refuses it
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": "data",
            "namespace": "headscale",
            "annotations": {"config.k8s.io/owning-inventory": "kpt-catalog-headscale"},
        },
    }
    cluster.objects.append(claim)
    group = cluster.find("ResourceGroup", "headscale")
    group["spec"]["resources"].append(
        {"group": "", "kind": "PersistentVolumeClaim", "namespace": "headscale", "name": "data"}
    )
    cluster.save()

    code, out = run_diff(catalog, capsys, "--package", "headscale")

    assert code == 1, out
    assert verdicts(out)["headscale"] == "2 make up will stop on"
    assert (
        "  ! PersistentVolumeClaim/headscale/data (left the files; make up refuses to prune it: "
        "add 'PersistentVolumeClaim/headscale/data' to allowPrune of package headscale to let "
        "it go)"
    ) in out.splitlines()
    assert (
        "  ! Namespace/headscale (left the files; kpt will not prune it, make up stops: "
        "namespace still in use by the package's inventory)"
    ) in out.splitlines()


def test_native_objects_missing_or_with_other_keys_are_named(
    cluster: FakeCluster, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.remove("Connector", "cluster-subnet-router")
    secret = cluster.find("Secret", "operator-oauth")
    secret["data"]["stale"] = secret["data"].pop("client_id")
    cluster.save()

    code, out = run_diff(catalog, capsys, "--package", "tailscale")

    assert code == 1, out
    assert verdicts(out)["tailscale"] == "2 native to create or change"
    lines = out.splitlines()
    assert (
        "  + Connector/cluster-subnet-router (native: created by make up after the package's waits)"
    ) in lines
    assert (
        "  ~ Secret/tailscale-system/operator-oauth (native: adds client_id; removes stale; "
        "values hidden)"
    ) in lines


def test_diff_json_follows_its_schema_and_says_what_the_text_says(
    cluster: FakeCluster, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.find("Deployment", "headscale")["spec"]["replicas"] = 0
    cluster.save()
    rbac = catalog / "ha" / "kube-vip" / "rbac.yaml"
    rbac.write_text(_without_kind(rbac, "ClusterRoleBinding"))

    code = diff.main(["--catalog-dir", str(catalog), "--output", "json"])

    printed = capsys.readouterr()
    assert code == exits.DIFFERS
    document = check_json_output(printed.out, "diff")
    assert document["exitCode"] == exits.DIFFERS
    states = {p["name"]: p["state"] for p in document["packages"]}
    assert list(states) == ORDER
    assert states == {
        **dict.fromkeys(ORDER, "in-sync"),
        "headscale": "differs",
        "kube-vip": "differs",
    }
    by_name = {p["name"]: p for p in document["packages"]}
    [change] = by_name["headscale"]["objects"]
    assert change["action"] == "change" and not change["native"]
    assert change["object"] == {
        "group": "apps",
        "kind": "Deployment",
        "namespace": "headscale",
        "name": "headscale",
    }
    assert "-  replicas: 0" in change["lines"] and "+  replicas: 1" in change["lines"]
    [prune] = by_name["kube-vip"]["objects"]
    assert prune["action"] == "prune"
    assert prune["object"]["name"] == "system:kube-vip-binding"
    # the human lines went to stderr, so stdout is the document alone
    assert "4 of 5 package(s) in sync" not in printed.out
    assert "3 of 5 package(s) in sync, 2 differ" in printed.err


def test_diff_json_of_an_unreachable_cluster_is_exit_3_with_no_packages(
    cluster: FakeCluster,
    catalog: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_KUBECTL_SCENARIO", "unreachable")
    assert diff.main(["--catalog-dir", str(catalog), "-o", "json"]) == exits.UNREACHABLE
    document = check_json_output(capsys.readouterr().out, "diff")
    assert document["packages"] == [] and document["exitCode"] == exits.UNREACHABLE


def test_a_secrets_value_never_reaches_the_json(
    cluster: FakeCluster, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "c2VjcmV0LXZhbHVlLTQy"  # noqa: S105 - made up, to look for
    (catalog / "mesh" / "headscale" / "secret.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: headscale-key\n  namespace: headscale\n"
        f"data:\n  key: {secret}\n"
    )
    diff.main(["--catalog-dir", str(catalog), "--package", "headscale", "-o", "json"])
    printed = capsys.readouterr()
    document = check_json_output(printed.out, "diff")
    assert secret not in printed.out + printed.err
    assert "secret-value-42" not in printed.out + printed.err
    [created] = document["packages"][0]["objects"]
    assert created["action"] == "create" and created["object"]["kind"] == "Secret"
    assert created["reason"] == "1 key(s): key (values hidden)"
