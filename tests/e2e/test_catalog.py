"""Offline checks of what the end-to-end test deploys; they run with `make test`, no cluster needed.

`test_e2e.py` can only run against a real cluster, so whatever can be known before one is checked
here: the e2e config and catalog pass the program's own validation and register the dev stack's
URNs, kpt reads every committed inventory as `kpt live init` wrote it, and the stand-in operator's
shell loop does to Connectors what the real operator does (with stand-ins for kubectl and sleep,
and its jsonpath checked with the real kubectl).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.catalog_config import (
    CONNECTOR_CRD,
    CONNECTOR_FINALIZER,
    E2E_CATALOG,
    E2E_GROUP,
    EDITED_PACKAGE,
    PACKAGES,
    e2e_config,
)
from tests.harness import ProgramRun, Registration, run_program

OPERATOR = E2E_CATALOG / "mesh" / "tailscale" / "operator" / "02-operator.yaml"
INVENTORY_LABEL = "cli-utils.sigs.k8s.io/inventory-id"
# The dev stack's Connector type, and the e2e stand-in's that takes its place.
DEV_CONNECTOR_TYPE = "kubernetes:tailscale.com/"
E2E_CONNECTOR_TYPE = f"kubernetes:{E2E_GROUP}/"
SMALL_IMAGES = re.compile(r"^(registry\.k8s\.io/pause|alpine/k8s):[0-9][0-9.]*$")


@pytest.fixture
def e2e_catalog(tmp_path: Path) -> Path:
    target = tmp_path / "e2e-catalog"
    shutil.copytree(E2E_CATALOG, target)
    return target


def _shape(registration: Registration, run: ProgramRun) -> tuple[Any, ...]:
    """What must match between the dev and the e2e stack: URN, protection, dependencies (by
    name), and for Commands the apply mode; the Connector's API group aside."""
    names = {r.urn: r.name for r in run.registrations}
    environment = registration.inputs.get("environment") or {}
    return (
        registration.urn.replace(E2E_CONNECTOR_TYPE, DEV_CONNECTOR_TYPE),
        registration.protect,
        tuple(sorted(names.get(d, d) for d in registration.dependencies)),
        environment.get("KPT_CATALOG_SERVER_SIDE"),
    )


def test_the_e2e_stack_passes_validation_and_registers_the_dev_stacks_urns(
    e2e_catalog: Path, dev_config: dict[str, Any]
) -> None:
    e2e_run = run_program(e2e_config(e2e_catalog))  # raises what `pulumi preview` would print
    dev_run = run_program(dev_config)

    assert sorted(_shape(r, e2e_run) for r in e2e_run.registrations) == sorted(
        _shape(r, dev_run) for r in dev_run.registrations
    )
    assert e2e_run.outputs["deployOrder"] == dev_run.outputs["deployOrder"]
    assert e2e_run.outputs["rollbackOrder"] == dev_run.outputs["rollbackOrder"]
    connector = e2e_run.by_name("tailscale-connector-cluster-subnet-router")
    annotations = connector.inputs["metadata"]["annotations"]
    assert annotations["pulumi.com/waitFor"] == "condition=ConnectorReady"


def test_the_edited_file_changes_only_its_packages_digest(e2e_catalog: Path) -> None:
    """Step 4 of the e2e test edits this file: only that package's Commands may change."""
    before = run_program(e2e_config(e2e_catalog))
    package, file = EDITED_PACKAGE
    edited = e2e_catalog / file
    edited.write_text(edited.read_text().replace("example.internal", "e2e.example.internal"))
    after = run_program(e2e_config(e2e_catalog))

    inputs = {r.name: r.inputs for r in before.registrations}
    assert sorted(inputs) == sorted(r.name for r in after.registrations)
    changed = {r.name for r in after.registrations if r.inputs != inputs[r.name]}
    assert changed == {f"{package}-apply", f"{package}-wait-after"}


def _inventory(package: Path) -> tuple[str, str, str]:
    document = yaml.safe_load((package / "resourcegroup.yaml").read_text())
    metadata = document["metadata"]
    return metadata["name"], metadata["namespace"], metadata["labels"][INVENTORY_LABEL]


def test_every_inventory_is_what_kpt_live_init_writes(tmp_path: Path) -> None:
    if shutil.which("kpt") is None:
        pytest.skip("the real kpt is not on PATH")
    inventory_ids = []
    for package in PACKAGES:
        committed = E2E_CATALOG / package["path"]
        name, namespace, inventory_id = _inventory(committed)
        inventory_ids.append(inventory_id)
        copy = tmp_path / package["name"]
        shutil.copytree(committed, copy)
        result = subprocess.run(
            [
                *("kpt", "live", "init", str(copy)),
                *("--name", name, "--namespace", namespace, "--inventory-id", inventory_id),
                "--force",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        for path in sorted(committed.iterdir()):
            assert (copy / path.name).read_bytes() == path.read_bytes(), path
        assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in committed.iterdir())
    # Inventories of their own: an e2e run never takes over the example catalog's objects.
    assert len(set(inventory_ids)) == len(PACKAGES)
    assert all(i.startswith("kpt-catalog-e2e-") for i in inventory_ids)


def test_the_stand_ins_run_on_a_plain_cluster() -> None:
    """Small pinned images, and custom kinds only in the e2e group (never a real CRD)."""
    documents = [
        d
        for path in sorted(E2E_CATALOG.rglob("*.yaml"))
        for d in yaml.safe_load_all(path.read_text())
        if isinstance(d, dict)
    ]
    images = [
        container["image"]
        for d in documents
        if d["kind"] in ("Deployment", "DaemonSet")
        for container in d["spec"]["template"]["spec"]["containers"]
    ]
    assert images and all(SMALL_IMAGES.match(image) for image in images), images
    crds = [d["metadata"]["name"] for d in documents if d["kind"] == "CustomResourceDefinition"]
    assert CONNECTOR_CRD in crds
    assert all(name.endswith(f".{E2E_GROUP}") for name in crds), crds
    services = [d for d in documents if d["kind"] == "Service"]
    assert all(s["spec"].get("type", "ClusterIP") != "LoadBalancer" for s in services)


def _operator_script() -> str:
    (deployment,) = [
        d for d in yaml.safe_load_all(OPERATOR.read_text()) if d and d["kind"] == "Deployment"
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["/bin/sh", "-c"]
    return str(container["args"][0])


FAKE_KUBECTL = """\
import json, os, sys

with open(os.environ["FAKE_KUBECTL_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:2] == ["get"]:
    sys.stdout.write(os.environ["FAKE_CONNECTORS"])
"""
# The loop's `sleep` ends the loop: SIGTERM to the shell, which the script traps to exit 0.
FAKE_SLEEP = '#!/bin/sh\nkill -TERM "$PPID"\n'


def _run_operator_once(tmp_path: Path, listing: str) -> list[list[str]]:
    """One round of the operator's loop over `listing` (what its `kubectl get` prints); the
    kubectl calls it made."""
    fakebin = tmp_path / "bin"
    fakebin.mkdir()
    (fakebin / "kubectl").write_text(f"#!{sys.executable}\n{FAKE_KUBECTL}")
    (fakebin / "sleep").write_text(FAKE_SLEEP)
    for tool in fakebin.iterdir():
        tool.chmod(0o755)
    log = tmp_path / "kubectl.log"
    oauth = tmp_path / "oauth"  # what the Secret's volume holds
    oauth.mkdir()
    for key in ("client_id", "client_secret"):
        (oauth / key).write_text(f"test-{key}")
    result = subprocess.run(
        ["/bin/sh", "-c", _operator_script()],
        env={
            "PATH": f"{fakebin}{os.pathsep}/usr/bin{os.pathsep}/bin",
            "FAKE_KUBECTL_LOG": str(log),
            "FAKE_CONNECTORS": listing,
            "CLIENT_ID_FILE": str(oauth / "client_id"),
            "CLIENT_SECRET_FILE": str(oauth / "client_secret"),
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_the_stand_in_operator_owns_the_connector_finalizer(tmp_path: Path) -> None:
    listing = "".join(
        f"{line}\n"
        for line in (
            "fresh|||",
            f'ready||True|["{CONNECTOR_FINALIZER}"]',
            f'leaving|2025-01-01T00:00:00Z|True|["{CONNECTOR_FINALIZER}"]',
            "gone|2025-01-01T00:00:00Z||",
            f'unready||False|["{CONNECTOR_FINALIZER}"]',
        )
    )
    calls = _run_operator_once(tmp_path, listing)

    status = ["--subresource=status", "--type=merge", "-p"]
    ready = json.dumps(
        {
            "status": {
                "conditions": [
                    {
                        "type": "ConnectorReady",
                        "status": "True",
                        "reason": "StandIn",
                        "message": "kpt-catalog e2e stand-in operator",
                    }
                ]
            }
        },
        separators=(",", ":"),
    )
    assert calls[0][:2] == ["get", CONNECTOR_CRD]
    assert calls[1:] == [
        ["patch", CONNECTOR_CRD, "fresh", "--type=merge", "-p",
         json.dumps({"metadata": {"finalizers": [CONNECTOR_FINALIZER]}}, separators=(",", ":"))],
        ["patch", CONNECTOR_CRD, "fresh", *status, ready],
        ["patch", CONNECTOR_CRD, "leaving", "--type=merge", "-p",
         '{"metadata":{"finalizers":null}}'],
        ["patch", CONNECTOR_CRD, "unready", *status, ready],
    ]  # fmt: skip


def test_the_stand_in_operators_listing_reads_connectors_with_the_real_kubectl(
    tmp_path: Path,
) -> None:
    """The jsonpath of the operator's `kubectl get`, per Connector (`kubectl annotate --local`
    renders it without a cluster), prints the lines the loop above expects."""
    if shutil.which("kubectl") is None:
        pytest.skip("the real kubectl is not on PATH")
    found = re.search(r"^\s*listing='([^']*)'$", _operator_script(), re.MULTILINE)
    assert found, "the operator script sets listing='<jsonpath>'"
    listing = found.group(1)
    per_item = listing.removeprefix("{range .items[*]}").removesuffix("{end}")
    assert per_item != listing and "{range" not in per_item
    api_version = f"{E2E_GROUP}/v1alpha1"
    connectors = tmp_path / "connectors.yaml"
    connectors.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": [
                    {"apiVersion": api_version, "kind": "Connector", "metadata": {"name": "fresh"}},
                    {
                        "apiVersion": api_version,
                        "kind": "Connector",
                        "metadata": {
                            "name": "leaving",
                            "deletionTimestamp": "2025-01-01T00:00:00Z",
                            "finalizers": [CONNECTOR_FINALIZER],
                        },
                        "status": {
                            "conditions": [
                                {"type": "Other", "status": "False"},
                                {"type": "ConnectorReady", "status": "True"},
                            ]
                        },
                    },
                ],
            }
        )
    )
    result = subprocess.run(
        [
            *("kubectl", "annotate", "--local", "-f", str(connectors), "e2e=1"),
            f"--output=jsonpath={per_item}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "KUBECONFIG": str(tmp_path / "no-kubeconfig")},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "fresh|||",
        f'leaving|2025-01-01T00:00:00Z|True|["{CONNECTOR_FINALIZER}"]',
    ]
