"""Taking over a cluster the bash loop built: the provider takes over what `kubectl apply` made,
kpt adopts what no inventory holds when a package says so, and nothing is ever replaced."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import ProgramRun, run_program

CONNECTOR = "tailscale-connector-cluster-subnet-router"
POLICY = "KPT_CATALOG_INVENTORY_POLICY"


@pytest.fixture
def dev_run(dev_config: dict[str, Any]) -> ProgramRun:
    return run_program(dev_config)


def test_the_provider_takes_over_existing_objects_and_mutates_secrets_in_place(
    dev_run: ProgramRun,
) -> None:
    provider = dev_run.by_name("kubernetes")

    assert provider.type == "pulumi:providers:kubernetes"
    # Create of an existing object: a server-side apply in place, never "already exists".
    assert provider.inputs["upsertExistingObjects"] == "true"
    # A rotated value: an update of the Secret, never a delete and create.
    assert provider.inputs["enableSecretMutable"] == "true"
    assert provider.inputs["clusterIdentifier"] == "dev"


def test_every_native_object_goes_through_that_provider(dev_run: ProgramRun) -> None:
    provider = dev_run.by_name("kubernetes")
    native = [r for r in dev_run.registrations if r.type.startswith("kubernetes:")]

    assert sorted(r.name for r in native) == [CONNECTOR, "tailscale-secret-operator-oauth"]
    assert all(r.provider == f"{provider.urn}::kubernetes-id" for r in native)


def test_the_connector_is_sent_as_kubectl_applied_it_plus_the_providers_wait(
    dev_run: ProgramRun, catalog: Path
) -> None:
    """What `kubectl apply -f 03-connector.yaml` created, the takeover applies again: the same
    spec, so the operator sees no change and the subnet router is not re-registered. The provider
    sends `pulumi.com/waitFor` too (it does not strip `pulumi.com/` annotations), which adds that
    one annotation to the live object."""
    written = yaml.safe_load((catalog / "mesh" / "tailscale" / "03-connector.yaml").read_text())
    sent = copy.deepcopy(dev_run.by_name(CONNECTOR).inputs)

    annotations = sent["metadata"].pop("annotations")
    assert annotations == {"pulumi.com/waitFor": "condition=ConnectorReady"}
    assert {key: value for key, value in sent.items() if key != "status"} == written


def _with_adopt(config: dict[str, Any], package: str, adopt: object) -> dict[str, Any]:
    changed = copy.deepcopy(config)
    (entry,) = [p for p in changed["packages"] if p["name"] == package]
    entry["adopt"] = adopt
    return changed


def test_kpt_keeps_its_strict_inventory_policy_by_default(dev_run: ProgramRun) -> None:
    applies = [r for r in dev_run.registrations if r.name.endswith("-apply")]

    assert len(applies) == 5
    assert [r.name for r in applies if POLICY in r.inputs["environment"]] == []


def test_adopt_reaches_only_that_packages_apply_as_an_update(dev_config: dict[str, Any]) -> None:
    before = run_program(dev_config)
    after = run_program(_with_adopt(dev_config, "headscale", True))

    changed = sorted(
        r.name for r in after.registrations if r.inputs != before.by_name(r.name).inputs
    )
    assert changed == ["headscale-apply"]
    apply = after.by_name("headscale-apply")
    assert apply.inputs["environment"][POLICY] == "adopt"
    assert "triggers" not in apply.inputs  # an update that re-applies; never a replacement
    assert apply.inputs["delete"] == before.by_name("headscale-apply").inputs["delete"]


def test_adopt_false_is_the_default(dev_config: dict[str, Any]) -> None:
    explicit = run_program(_with_adopt(dev_config, "headscale", False))
    assert POLICY not in explicit.by_name("headscale-apply").inputs["environment"]


def test_adopt_must_be_a_boolean(dev_config: dict[str, Any]) -> None:
    run = run_program(_with_adopt(dev_config, "headscale", "yes please"), raise_errors=False)

    assert run.registrations == []
    assert "packages[3].adopt: expected true or false, found 'yes please'" in str(run.error)
