"""Taking over a cluster the bash loop built: the provider takes over what `kubectl apply` made,
kpt adopts what no inventory holds when a package says so, and nothing is ever replaced."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import TEST_KUBECONFIG, ProgramRun, run_program, run_registered_step

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
    # The rollback (the inventory Command's delete) is untouched.
    assert "delete" not in apply.inputs


def test_adopt_false_is_the_default(dev_config: dict[str, Any]) -> None:
    explicit = run_program(_with_adopt(dev_config, "headscale", False))
    assert POLICY not in explicit.by_name("headscale-apply").inputs["environment"]


def test_adopt_must_be_a_boolean(dev_config: dict[str, Any]) -> None:
    run = run_program(_with_adopt(dev_config, "headscale", "yes please"), raise_errors=False)

    assert run.registrations == []
    assert "packages[3].adopt: expected true or false, found 'yes please'" in str(run.error)


# --- `adopt` reaching kpt, with the stand-in and with the real kpt --------------------------------


def _apply(
    tmp_path: Path, run: ProgramRun, package: str, *, fake: bool = True, **extra: str
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    """Run the package's registered apply as the command provider does."""
    apply = run.by_name(f"{package}-apply")
    return run_registered_step(tmp_path, apply, apply.inputs["create"], fake=fake, **extra)


def test_adopt_reaches_kpt_as_the_inventory_policy_flag(
    dev_config: dict[str, Any], tmp_path: Path
) -> None:
    run = run_program(_with_adopt(dev_config, "headscale", True))

    result, calls = _apply(tmp_path, run, "headscale")

    assert result.returncode == 0, result.stderr
    # The prune check's dry run asks kpt with the same policy as the apply that follows it.
    dry_run, apply = [argv for argv in calls if argv[:2] == ["live", "apply"]]
    assert "--dry-run" in dry_run and "--dry-run" not in apply
    assert "--inventory-policy=adopt" in dry_run and "--inventory-policy=adopt" in apply
    (status,) = [argv for argv in calls if argv[:2] == ["live", "status"]]
    assert not [arg for arg in status if arg.startswith("--inventory-policy")]


def test_without_adopt_kpt_gets_no_policy_flag_and_stays_strict(
    dev_run: ProgramRun, tmp_path: Path
) -> None:
    result, calls = _apply(tmp_path, dev_run, "headscale")

    assert result.returncode == 0, result.stderr
    assert calls
    assert not [arg for argv in calls for arg in argv if arg.startswith("--inventory-policy")]


def test_an_unknown_inventory_policy_runs_nothing(dev_run: ProgramRun, tmp_path: Path) -> None:
    result, calls = _apply(tmp_path, dev_run, "headscale", KPT_CATALOG_INVENTORY_POLICY="adopt-all")

    assert result.returncode == 2
    assert (
        "[headscale] apply: malformed environment: KPT_CATALOG_INVENTORY_POLICY must be one of "
        "strict, adopt, got 'adopt-all'"
    ) in result.stderr
    assert calls == []


def test_the_real_kpt_accepts_the_adopt_flag(dev_config: dict[str, Any], tmp_path: Path) -> None:
    """Offline, kpt refuses an unknown flag or policy before it connects; `adopt` gets as far
    as the (refused) connection."""
    kubeconfig = TEST_KUBECONFIG  # a cluster at 127.0.0.1:1, which refuses connections
    run = run_program(_with_adopt(dev_config, "headscale", True))

    result, _calls = _apply(
        tmp_path, run, "headscale", fake=False, KPT_CATALOG_KUBECONFIG=str(kubeconfig)
    )

    assert result.returncode == 1
    assert "cluster unreachable or misconfigured" in result.stderr, result.stderr
    assert "127.0.0.1:1" in result.stderr
    assert "unknown flag" not in result.stderr
    assert "inventory policy must be one of" not in result.stderr  # kpt's answer to a bad one
