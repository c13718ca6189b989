"""The real program under mocks: graph, order, names, and update-never-replace."""

from __future__ import annotations

import copy
import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.harness import (
    EXAMPLE_CATALOG,
    EXAMPLE_PACKAGES,
    ROOT,
    TEST_KUBECONFIG,
    ProgramRun,
    Registration,
    project_copy,
    run_program,
)

COMMAND = "command:local:Command"
COMPONENT = "kpt-catalog:index:KptPackage"

# Every URN the dev stack registers. These are users' state: a change here destroys and recreates
# (for an apply Command: runs `kpt live destroy`). Never edit this list without adding aliases.
DEV_URNS = [
    "urn:pulumi:dev::kpt-catalog::pulumi:providers:kubernetes::kubernetes",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage::kube-vip",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage$command:local:Command::kube-vip-inventory",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage$command:local:Command::kube-vip-apply",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage$command:local:Command::kube-vip-wait-after",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage::cilium",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage$command:local:Command::cilium-inventory",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage$command:local:Command::cilium-wait-before",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage$command:local:Command::cilium-apply",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage::tailscale",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage$command:local:Command::tailscale-inventory",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage$command:local:Command::tailscale-apply",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage$command:local:Command::tailscale-wait-after",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage$kubernetes:tailscale.com/v1alpha1:Connector::tailscale-connector-cluster-subnet-router",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage$command:local:Command::tailscale-wait-namespace",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage$kubernetes:core/v1:Secret::tailscale-secret-operator-oauth",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage$command:local:Command::tailscale-restart-operator-oauth",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage::headscale",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage$command:local:Command::headscale-inventory",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage$command:local:Command::headscale-apply",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage$command:local:Command::headscale-wait-after",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage::envoy-gateway",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage$command:local:Command::envoy-gateway-inventory",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage$command:local:Command::envoy-gateway-apply",
    "urn:pulumi:dev::kpt-catalog::kpt-catalog:index:KptPackage$command:local:Command::envoy-gateway-wait-after",
]


@pytest.fixture
def dev_run(dev_config: dict[str, Any]) -> ProgramRun:
    return run_program(dev_config)


def _custom(run: ProgramRun) -> list[Registration]:
    return [r for r in run.registrations if r.type != COMPONENT and "providers" not in r.type]


def _needs_graph(run: ProgramRun) -> dict[str, set[str]]:
    """Name -> names of everything it must come after (transitively).

    An explicit dependency on a component means "after all of its children"; a child also comes
    after whatever its parent component depends on (but not after its siblings).
    """
    by_urn = {r.urn: r for r in run.registrations}
    children: dict[str, list[str]] = {}
    for r in run.registrations:
        children.setdefault(r.parent, []).append(r.urn)

    def direct(urn: str) -> set[str]:
        registration = by_urn[urn]
        deps: set[str] = set()
        for dep in registration.dependencies:
            deps.add(dep)
            deps.update(children.get(dep, []))
        if registration.parent in by_urn:
            deps.add(registration.parent)
        return deps

    closure: dict[str, set[str]] = {}

    def visit(urn: str) -> set[str]:
        if urn not in closure:
            closure[urn] = set()
            found: set[str] = set()
            for dep in direct(urn):
                found.add(dep)
                found |= visit(dep)
            closure[urn] = found
        return closure[urn]

    return {by_urn[u].name: {by_urn[d].name for d in visit(u)} for u in by_urn}


def _topological(run: ProgramRun) -> list[str]:
    """The order the engine may create custom resources in (ties by registration)."""
    after = _needs_graph(run)
    names = [r.name for r in _custom(run)]
    order: list[str] = []
    while len(order) < len(names):
        ready = [
            n for n in names if n not in order and all(d in order for d in after[n] if d in names)
        ]
        assert ready, "dependency cycle"
        order.append(ready[0])
    return order


def test_every_urn_of_the_dev_stack_is_pinned(dev_run: ProgramRun) -> None:
    assert sorted(r.urn for r in dev_run.registrations) == sorted(DEV_URNS)


def test_deploy_order_follows_the_documented_order(dev_run: ProgramRun) -> None:
    after = _needs_graph(dev_run)
    chain = [
        "kube-vip-inventory",
        "kube-vip-apply",
        "cilium-wait-before",
        "cilium-apply",
        "tailscale-inventory",
        "tailscale-apply",
        "tailscale-wait-after",
        "tailscale-connector-cluster-subnet-router",
        "headscale-inventory",
        "headscale-apply",
    ]
    for earlier, later in itertools.pairwise(chain):
        assert earlier in after[later], f"{later} does not wait for {earlier}"
    assert "cilium-wait-before" in after["cilium-apply"]
    # The Tailscale operator also needs kube-vip directly (VIP routes), not only through cilium.
    tailscale_first = dev_run.by_name("tailscale-inventory")
    assert dev_run.by_name("kube-vip-apply").urn in tailscale_first.dependencies
    # envoy-gateway needs cilium only: it runs beside the Tailscale branch.
    assert "cilium-apply" in after["envoy-gateway-apply"]
    tailscale_branch = {n for n in dev_run.names() if n.startswith(("tailscale", "headscale"))}
    assert not tailscale_branch & after["envoy-gateway-apply"]
    assert not tailscale_branch & after["envoy-gateway-wait-after"]


def test_first_child_carries_the_needs_edges(dev_run: ProgramRun) -> None:
    # A dependency on a component is recorded as one on each of its children (the engine waits
    # for all of them): the Connector and the waits included.
    def children(*packages: str) -> set[str]:
        return {
            r.urn
            for r in dev_run.registrations
            if r.parent.endswith(tuple(f"::{p}" for p in packages))
        }

    expected = {
        "kube-vip-inventory": set(),
        "cilium-inventory": children("kube-vip"),
        "cilium-wait-before": children("kube-vip"),
        "tailscale-inventory": children("cilium", "kube-vip"),
        "headscale-inventory": children("tailscale", "cilium"),
        "envoy-gateway-inventory": children("cilium"),
    }
    assert (
        dev_run.by_name("tailscale-connector-cluster-subnet-router").urn
        in expected["headscale-inventory"]
    )
    for name, needs in expected.items():
        assert set(dev_run.by_name(name).dependencies) == needs, name
    for name in ("kube-vip", "cilium", "tailscale", "headscale", "envoy-gateway"):
        assert set(dev_run.by_name(name).dependencies) == expected[f"{name}-inventory"], name
        # The apply comes after the rollback is recorded (and after the gates before it).
        before = {dev_run.by_name(f"{name}-inventory").urn}
        if name == "cilium":
            before.add(dev_run.by_name("cilium-wait-before").urn)
        assert set(dev_run.by_name(f"{name}-apply").dependencies) == before, name


def test_destroy_order_is_the_reverse_with_the_connector_before_its_operator(
    dev_run: ProgramRun,
) -> None:
    after = _needs_graph(dev_run)
    deletes = [
        r.name for r in dev_run.registrations if "delete" in r.inputs or "Connector" in r.type
    ]
    # The engine deletes X before Y whenever X depends on Y. Derive that order from the edges:
    destroy = list(reversed(_topological(dev_run)))
    destroy = [n for n in destroy if n in deletes]
    for index, name in enumerate(destroy):
        assert not any(name in after[later] for later in destroy[index + 1 :]), destroy
    # The documented rollback order (the reverse of the deployment order) is what the edges
    # force, step by step.
    documented_rollback = [
        "envoy-gateway-inventory",
        "headscale-inventory",
        "tailscale-connector-cluster-subnet-router",
        "tailscale-inventory",
        "cilium-inventory",
        "kube-vip-inventory",
    ]
    assert sorted(documented_rollback) == sorted(deletes)
    forced = [
        ("headscale-inventory", "tailscale-connector-cluster-subnet-router"),
        ("tailscale-connector-cluster-subnet-router", "tailscale-inventory"),
        ("tailscale-inventory", "cilium-inventory"),
        ("headscale-inventory", "cilium-inventory"),
        ("envoy-gateway-inventory", "cilium-inventory"),
        ("cilium-inventory", "kube-vip-inventory"),
    ]
    for first, then in forced:
        assert then in after[first], f"{first} is not deleted before {then}"
    for index, name in enumerate(documented_rollback):
        assert not any(name in after[later] for later in documented_rollback[index + 1 :])
    # envoy-gateway and the Tailscale branch are independent: either may go first.
    assert "envoy-gateway-inventory" not in after["headscale-inventory"]
    assert "headscale-inventory" not in after["envoy-gateway-inventory"]


def test_kube_vip_is_protected_and_nothing_else(dev_run: ProgramRun) -> None:
    protected = {r.name for r in dev_run.registrations if r.protect}
    assert protected == {"kube-vip", "kube-vip-inventory", "kube-vip-apply", "kube-vip-wait-after"}


def test_no_command_can_be_replaced(dev_run: ProgramRun) -> None:
    for registration in dev_run.registrations:
        if registration.type == COMMAND:
            assert "triggers" not in registration.inputs, registration.name
            # pulumi-command's SDK always sends `triggers[*]`; it is inert without triggers.
            assert registration.replace_on_changes == ("triggers[*]",), registration.name
            assert registration.inputs["addPreviousOutputInEnv"] is False, registration.name


def test_apply_commands_are_fixed_strings(dev_run: ProgramRun) -> None:
    for registration in dev_run.registrations:
        if registration.name.endswith("-apply"):
            assert registration.inputs["create"] == "python3 components/kptstep.py apply"
            assert registration.inputs["update"] == "python3 components/kptstep.py apply"
            assert "delete" not in registration.inputs, registration.name
        elif registration.name.endswith("-inventory"):
            assert registration.inputs["create"] == "python3 components/kptstep.py inventory"
            assert registration.inputs["update"] == "python3 components/kptstep.py inventory"
            assert registration.inputs["delete"] == "python3 components/kptstep.py destroy"
        elif "-restart-" in registration.name:  # runs on update only
            assert "create" not in registration.inputs
            assert registration.inputs["update"] == "python3 components/kptstep.py restart"
        elif registration.type == COMMAND:
            assert registration.inputs["create"] == "python3 components/kptstep.py wait"
            assert "delete" not in registration.inputs, registration.name


def _changed(before: ProgramRun, after: ProgramRun) -> dict[str, set[str]]:
    """Resource name -> input keys whose values differ (environment keys as environment.K)."""
    changed: dict[str, set[str]] = {}
    old = {r.name: r for r in before.registrations}
    for registration in after.registrations:
        previous = old[registration.name]
        keys = set()
        for key in set(previous.inputs) | set(registration.inputs):
            a, b = previous.inputs.get(key), registration.inputs.get(key)
            if key == "environment" and isinstance(a, dict) and isinstance(b, dict):
                keys |= {f"environment.{k}" for k in set(a) | set(b) if a.get(k) != b.get(k)}
            elif a != b:
                keys.add(key)
        if keys:
            changed[registration.name] = keys
    return changed


def test_editing_one_file_updates_that_package_only(
    dev_config: dict[str, Any], catalog: Path
) -> None:
    before = run_program(dev_config)
    same = run_program(dev_config)
    assert _changed(before, same) == {}, "an unchanged catalog must show no change at all"

    deployment = catalog / "mesh" / "headscale" / "deployment.yaml"
    deployment.write_text(deployment.read_text().replace("replicas: 1", "replicas: 2"))
    edited = run_program(dev_config)

    assert sorted(r.urn for r in edited.registrations) == sorted(
        r.urn for r in before.registrations
    )
    # The apply re-runs through its digest; the package's gates re-run with it. Nothing else.
    assert _changed(before, edited) == {
        "headscale-apply": {"environment.KPT_CATALOG_DIGEST"},
        "headscale-wait-after": {"environment.KPT_CATALOG_DIGEST"},
    }


def test_reapply_generation_updates_every_package_without_replacing(
    dev_config: dict[str, Any],
) -> None:
    before = run_program(dev_config)
    bumped = run_program({**dev_config, "reapplyGeneration": "2"})
    changed = _changed(before, bumped)
    commands = {r.name for r in before.registrations if r.type == COMMAND}
    # The inventory Commands hold the rollback: a re-apply never touches them. Nor does it
    # restart the workloads that use a Secret: only a changed value does.
    assert set(changed) == {
        n
        for n in commands
        if not n.endswith("-inventory") and n != "tailscale-restart-operator-oauth"
    }
    assert all(keys == {"environment.KPT_CATALOG_GENERATION"} for keys in changed.values())


def test_connector_is_native_and_waits_for_ready(dev_run: ProgramRun) -> None:
    connector = dev_run.by_name("tailscale-connector-cluster-subnet-router")
    assert connector.type == "kubernetes:tailscale.com/v1alpha1:Connector"
    assert connector.inputs["spec"]["subnetRouter"]["advertiseRoutes"] == [
        "10.80.15.1/32",
        "10.80.8.128/26",
    ]
    annotations = connector.inputs["metadata"]["annotations"]
    assert annotations["pulumi.com/waitFor"] == "condition=ConnectorReady"
    assert connector.custom_timeouts["create"] == "300s"
    provider = dev_run.by_name("kubernetes")
    assert provider.inputs["clusterIdentifier"] == "dev"


def test_stack_outputs(dev_config: dict[str, Any]) -> None:
    result = (
        'kpt-catalog-result: {"package": "headscale", "step": "wait-after", '
        '"reports": {"headscale/svc/headscale": "10.80.8.130"}}'
    )
    run = run_program(
        dev_config,
        command_stdout={
            "headscale-wait-after": "progress\n" + result + "\n",
            "cilium-apply": "kpt-catalog-result: "
            '{"package": "cilium", "step": "apply", "objects": 5}\n',
        },
    )
    assert run.outputs["deployOrder"] == [
        "kube-vip",
        "cilium",
        "tailscale",
        "headscale",
        "envoy-gateway",
    ]
    assert run.outputs["rollbackOrder"] == list(reversed(run.outputs["deployOrder"]))
    assert run.outputs["objects"]["cilium"] == 5
    assert run.outputs["addresses"]["headscale"] == {"headscale/svc/headscale": "10.80.8.130"}
    assert len(run.outputs["digests"]["headscale"]) == 64


def test_dev_stack_config_is_not_mutated_by_runs(dev_config: dict[str, Any]) -> None:
    snapshot = copy.deepcopy(dev_config)
    run_program(dev_config)
    assert dev_config == snapshot


def _package_files(catalog: Path, config: dict[str, Any]) -> list[tuple[str, Path]]:
    return [
        (package["name"], file)
        for package in config["packages"]
        for file in sorted((catalog / package["path"]).rglob("*"))
        if file.is_file()
    ]


def test_any_file_of_a_package_changes_its_digest_and_no_other(
    dev_config: dict[str, Any], catalog: Path
) -> None:
    nested = catalog / "mesh" / "headscale" / "extra" / "settings.yaml"
    nested.parent.mkdir()
    nested.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: headscale-extra\n"
        "  namespace: headscale\ndata:\n  level: info\n"
    )
    before = run_program(dev_config).outputs["digests"]
    files = _package_files(catalog, dev_config)
    names = {file.name for _package, file in files}
    assert {"Kptfile", "00-namespace.yaml", "resourcegroup.yaml", "settings.yaml"} <= names
    for package, file in files:
        original = file.read_bytes()
        file.write_bytes(original + b"\n# edited\n")
        try:
            after = run_program(dev_config).outputs["digests"]
        finally:
            file.write_bytes(original)
        changed = {name for name in before if after[name] != before[name]}
        assert changed == {package}, f"{file.relative_to(catalog)} changed {changed}"
    assert run_program(dev_config).outputs["digests"] == before


def _checkout(root: Path, packages: list[dict[str, Any]]) -> Path:
    """A checkout of the project at `root`: the program, its graph and its catalog."""
    project = project_copy(root / "kpt-catalog", packages)
    shutil.copytree(EXAMPLE_CATALOG, project / "examples" / "catalog")
    return project


def test_two_checkouts_store_the_same_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    (home / ".kube" / "config").write_text(TEST_KUBECONFIG.read_text())
    monkeypatch.setenv("HOME", str(home))
    stack = {"catalogDir": "examples/catalog", "context": "default"}
    runs = [
        run_program(stack, program=_checkout(tmp_path / where, EXAMPLE_PACKAGES) / "__main__.py")
        for where in ("alice", "ci/runner/work")
    ]

    def stored(run: ProgramRun) -> list[tuple[str, str]]:
        return sorted((r.urn, json.dumps(r.inputs, sort_keys=True)) for r in run.registrations)

    assert stored(runs[0]) == stored(runs[1])
    environment = runs[0].by_name("headscale-apply").inputs["environment"]
    assert environment["KPT_CATALOG_DIR"] == "examples/catalog/mesh/headscale"
    assert environment["KPT_CATALOG_KUBECONFIG"] == "~/.kube/config"
    assert environment["KPT_CATALOG_CONTEXT"] == "default"
    provider = runs[0].by_name("kubernetes").inputs
    assert (provider["kubeconfig"], provider["context"]) == ("~/.kube/config", "default")


def test_the_step_reads_paths_as_written_from_the_project_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / "clusters").mkdir(parents=True)
    (home / "clusters" / "rke2.yaml").write_text(TEST_KUBECONFIG.read_text())
    monkeypatch.setenv("HOME", str(home))
    project = _checkout(tmp_path, EXAMPLE_PACKAGES)
    shutil.copytree(ROOT / "components", project / "components")
    stack = {
        "catalogDir": "examples/catalog",
        "kubeconfig": "~/clusters/rke2.yaml",
        "context": "default",
    }
    apply = run_program(stack, program=project / "__main__.py").by_name("headscale-apply")
    record = tmp_path / "calls.jsonl"
    step = subprocess.run(
        ["/bin/sh", "-c", apply.inputs["create"]],
        cwd=project,
        env={
            "PATH": f"{ROOT / 'tests' / 'fakebin'}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(home),
            "FAKE_RECORD": str(record),
            **apply.inputs["environment"],
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert step.returncode == 0, step.stderr
    kpt_apply = next(
        json.loads(line)["argv"]
        for line in record.read_text().splitlines()
        if json.loads(line)["argv"][:2] == ["live", "apply"]
    )
    assert kpt_apply[2] == str(project / "examples" / "catalog" / "mesh" / "headscale")
    assert kpt_apply[kpt_apply.index("--kubeconfig") + 1] == str(home / "clusters" / "rke2.yaml")
    assert kpt_apply[kpt_apply.index("--context") + 1] == "default"


def test_a_renamed_package_keeps_every_urn_through_aliases(dev_config: dict[str, Any]) -> None:
    tailscale = next(p for p in dev_config["packages"] if p["name"] == "tailscale")
    tailscale.update(name="tailscale-operator", formerNames=["tailscale"])
    headscale = next(p for p in dev_config["packages"] if p["name"] == "headscale")
    headscale["needs"] = ["tailscale-operator", "cilium"]
    run = run_program(dev_config)

    renamed = [r for r in run.registrations if r.name.startswith("tailscale-operator")]
    assert sorted(r.name for r in renamed) == [
        "tailscale-operator",
        "tailscale-operator-apply",
        "tailscale-operator-connector-cluster-subnet-router",
        "tailscale-operator-inventory",
        "tailscale-operator-restart-operator-oauth",
        "tailscale-operator-secret-operator-oauth",
        "tailscale-operator-wait-after",
        "tailscale-operator-wait-namespace",
    ]
    # Each resource of the renamed package names the URN it had: the engine then finds it in
    # state, and the rename deletes and creates nothing.
    former = []
    for registration in renamed:
        known = [a for a in registration.aliases if a in DEV_URNS]
        assert len(known) == 1, registration.aliases
        former += known
        # The restart also names the one it had before each Secret got its own; native objects
        # name their place in every other package (a move between packages keeps them).
        if registration.type.startswith("kubernetes:"):
            assert len(registration.aliases) == 1 + 4, registration.aliases
        elif registration.name.endswith("-restart-operator-oauth"):
            assert len(registration.aliases) == 2, registration.aliases
        else:
            assert len(registration.aliases) == 1, registration.aliases
    others = [r for r in run.registrations if r not in renamed]
    assert all(r.aliases == () for r in others if not r.type.startswith("kubernetes:"))
    assert sorted([*(r.urn for r in others), *former]) == sorted(DEV_URNS)
