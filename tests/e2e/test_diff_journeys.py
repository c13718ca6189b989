"""`make diff` and `make preview` predict what `make up` does: journeys through the real CLI,
kpt and kubectl on a local control plane of their own (see test_journeys.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from components.kptyaml import load_documents
from tests.e2e.journey import Journey, ok
from tests.harness import ROOT

pytestmark = pytest.mark.e2e


def _numbers_as_floats(value: object) -> object:
    return json.loads(json.dumps(value), parse_int=float)


def test_a_package_is_read_as_kpt_reads_it(journey: Journey, tmp_path: Path) -> None:
    """What kpt sent for every kind of plain scalar, as the API server stored it, is what the
    program's reader makes of the same file."""
    package = tmp_path / "scalars"
    package.mkdir()
    (package / "Kptfile").write_text(
        "apiVersion: kpt.dev/v1\nkind: Kptfile\nmetadata:\n  name: s\n"
    )
    (package / "crd.yaml").write_text(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        "metadata:\n  name: things.example.com\nspec:\n  group: example.com\n"
        "  names: {kind: Thing, plural: things, singular: thing, listKind: ThingList}\n"
        "  scope: Cluster\n  versions:\n  - name: v1\n    served: true\n    storage: true\n"
        "    schema:\n      openAPIV3Schema:\n        type: object\n"
        "        x-kubernetes-preserve-unknown-fields: true\n"
    )
    shutil.copy(ROOT / "tests/data/kpt-scalars.yaml", package / "thing.yaml")
    # kpt reads JSON written in a .yaml file; a .json file it never reads
    (package / "t2.yaml").write_text(
        '{"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t2"}, '
        '"spec": {"a": 1.0, "b": "yes"}}'
    )
    (package / "t3.json").write_text(
        '{"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t3"}}'
    )
    flags = ["--kubeconfig", str(journey.world.kubeconfig), "--context", journey.world.context]
    ok(journey.run(["kpt", "live", "init", str(package), "--namespace", "default"]), "init")
    ok(
        journey.run(
            ["kpt", "live", "apply", str(package), "--reconcile-timeout=60s", *flags], timeout=240
        ),
        "kpt live apply",
    )

    things = journey.json("get", "things.example.com")["items"]
    stored = {thing["metadata"]["name"]: thing["spec"] for thing in things}
    assert sorted(stored) == ["t1", "t2"]
    for name, file in (("t1", "thing.yaml"), ("t2", "t2.yaml")):
        (document,) = load_documents((package / file).read_bytes())
        # as numbers: Python reads the server's 12345678901234567000 as an int, the same float64
        assert _numbers_as_floats(stored[name]) == _numbers_as_floats(document["spec"]), name


def test_make_diff_after_make_up_is_in_sync_for_values_yaml_1_1_reads_otherwise(
    journey: Journey,
) -> None:
    config = journey.catalog / "mesh/headscale/flags.yaml"
    config.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: flags\n  namespace: headscale\n"
        "data:\n  flag: yes\n  mode: on\n  answer: n\n"
        "  since: !!str 2024-01-01\n"
    )
    ok(journey.up(), "make up")

    assert journey.json("get", "configmap", "flags", "-n", "headscale")["data"] == {
        "flag": "yes",
        "mode": "on",
        "answer": "n",
        "since": "2024-01-01",
    }
    out = ok(journey.make("diff"), "make diff")
    assert "5 of 5 package(s) in sync" in out, out


def test_make_diff_names_the_prune_make_up_stops_on_and_make_up_does_stop(
    journey: Journey,
) -> None:
    ok(journey.up(), "make up")
    (journey.catalog / "mesh/headscale/00-namespace.yaml").unlink()

    diff = journey.make("diff")

    assert diff.returncode == 2, diff.stdout  # make folds the differences code into 2
    assert (
        "  ! Namespace/headscale (left the files; kpt will not prune it, make up stops: "
        "namespace still in use by the package's inventory)"
    ) in diff.stdout.splitlines(), diff.stdout
    up = journey.up()
    assert up.returncode != 0
    assert "prune blocked" in up.stdout + up.stderr
    assert journey.kubectl("get", "namespace", "headscale").returncode == 0


def test_make_preview_names_the_objects_a_removed_package_deletes(journey: Journey) -> None:
    ok(journey.up(), "make up")
    journey.packages = [p for p in journey.packages if p["name"] != "headscale"]
    journey.write_stack()

    out = ok(journey.make("preview"), "make preview")

    lines = out.splitlines()
    head = next(line for line in lines if line.startswith("headscale "))
    assert head.split(None, 1)[1] == (
        "package removed: make up deletes 4 object(s) (kpt live destroy, in reverse "
        "dependency order)"
    ), out
    for key in (
        "Namespace/headscale",
        "ConfigMap/headscale/headscale-config",
        "Deployment/headscale/headscale",
        "Service/headscale/headscale",
    ):
        assert f"  - {key}" in lines, out
    # a preview changes nothing
    assert journey.kubectl("get", "deployment", "headscale", "-n", "headscale").returncode == 0


CONNECTOR_KEY = "Connector/cluster-subnet-router"


def test_a_hand_edited_connector_is_a_conflict_make_diff_names_before_make_up_meets_it(
    journey: Journey,
) -> None:
    ok(journey.up(), "make up")
    edited = journey.kubectl(
        "patch",
        "connectors.tailscale.com",
        "cluster-subnet-router",
        "--type=merge",
        "--field-manager=kubectl-edit",
        "-p",
        '{"spec": {"hostname": "edited-by-hand"}}',
    )
    assert edited.returncode == 0, edited.stderr

    diff = journey.tool("diff", "--package", "tailscale")

    assert diff.returncode == 1, diff.stdout + diff.stderr
    line = next(x for x in diff.stdout.splitlines() if CONNECTOR_KEY in x)
    assert line.startswith(f"  ! {CONNECTOR_KEY} (native: changed by another field manager")
    assert 'conflict with "kubectl-edit"' in line and ".spec.hostname" in line
    assert "--field-manager=pulumi-kubernetes-" in line
    # make up leaves the hand edit: Pulumi compares with its state
    ok(journey.up(), "make up")
    connector = journey.json("get", "connectors.tailscale.com", "cluster-subnet-router")
    assert connector["spec"]["hostname"] == "edited-by-hand"
    # the next change of the manifest stops on the conflict, as make diff said
    manifest = journey.catalog / "mesh/tailscale/03-connector.yaml"
    manifest.write_text(
        manifest.read_text().replace("metadata:\n", "metadata:\n  labels: {a: b}\n", 1)
    )
    up = journey.up()
    assert up.returncode != 0
    assert "conflict" in (up.stdout + up.stderr).lower()


def test_moving_the_connector_to_another_package_changes_nothing_in_the_cluster(
    journey: Journey,
) -> None:
    ok(journey.up(), "make up")
    before = journey.json("get", "connectors.tailscale.com", "cluster-subnet-router")
    tailscale = next(p for p in journey.packages if p["name"] == "tailscale")
    headscale = next(p for p in journey.packages if p["name"] == "headscale")
    headscale["manifests"] = tailscale.pop("manifests")
    journey.write_stack()

    ok(journey.up(), "make up after the move")

    after = journey.json("get", "connectors.tailscale.com", "cluster-subnet-router")
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert "deletionTimestamp" not in after["metadata"]
    assert any(
        urn.endswith("::headscale-connector-cluster-subnet-router") for urn in journey.urns()
    )
    assert not any(
        urn.endswith("::tailscale-connector-cluster-subnet-router") for urn in journey.urns()
    )
    out = ok(journey.make("diff"), "make diff")
    assert "5 of 5 package(s) in sync" in out, out
