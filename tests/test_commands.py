"""The command strings the program registers, run in a shell the way the command provider runs
them, against the stand-in `kpt` and `kubectl` of `tests/fakebin` (which record their arguments).

A simulated `pulumi up` runs every create in dependency order; a simulated `pulumi destroy` runs
every delete in reverse. The tests assert what the user's cluster would see: which commands run,
in what order, with which arguments.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.harness import EXAMPLE_CATALOG, ROOT, ProgramRun, Registration, dev_stack_config
from tests.harness import run_program as _run_program

FAKEBIN = ROOT / "tests" / "fakebin"
COMMAND = "command:local:Command"
# A directory name a naive `create="kpt live apply " + path` would execute.
HOSTILE = "cat $(touch PWNED) `touch PWNED2` 'single' \"double\" ; touch PWNED3"


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The steps' logs go under the test's own directory."""
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory holding the step runner, as the command provider's cwd."""
    target = tmp_path / "project"
    shutil.copytree(ROOT / "components", target / "components")
    return target


def _shell(
    script: str, environment: dict[str, str], cwd: Path, record: Path, **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run `script` as pulumi-command's local provider does: `/bin/sh -c <script>`."""
    env = {
        **os.environ,
        **environment,
        "PATH": f"{FAKEBIN}{os.pathsep}{os.environ['PATH']}",
        "FAKE_RECORD": str(record),
        **extra,
    }
    return subprocess.run(
        ["/bin/sh", "-c", script], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def _calls(record: Path) -> list[dict[str, Any]]:
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]


def _commands_in_dependency_order(run: ProgramRun) -> list[Registration]:
    """Commands in an order the engine may run them: each after everything it depends on."""
    by_urn = {r.urn: r for r in run.registrations}
    children: dict[str, list[str]] = {}
    for r in run.registrations:
        children.setdefault(r.parent, []).append(r.urn)
    done: list[str] = []

    def ready(r: Registration) -> bool:
        deps = {d for dep in r.dependencies for d in [dep, *children.get(dep, [])]}
        return all(d in done or by_urn[d].type != COMMAND for d in deps if d in by_urn)

    # Registration order is asynchronous; pick among ready commands by the deploy order.
    order = run.outputs["deployOrder"]
    pending = sorted(
        (r for r in run.registrations if r.type == COMMAND),
        key=lambda r: order.index(r.parent.rpartition("::")[2]),
    )
    ordered: list[Registration] = []
    while pending:
        step = next(r for r in pending if ready(r))
        pending.remove(step)
        done.append(step.urn)
        ordered.append(step)
    return ordered


def _describe(call: dict[str, Any]) -> str:
    """`kpt live apply <dir-basename>` / `kubectl wait <resource>`: enough to read an order."""
    argv = call["argv"]
    if call["tool"] == "kpt":
        target = Path(argv[2]).name if argv[1] != "destroy" else "<inventory>"
        dry_run = " --dry-run" if "--dry-run" in argv else ""
        return f"kpt live {argv[1]}{dry_run} {target}"
    words = 3 if argv[0] == "rollout" else 2  # `rollout status R`, `wait R`, `get R`
    return "kubectl " + " ".join(argv[:words])


def test_simulated_up_follows_the_documented_order(
    project: Path, catalog: Path, tmp_path: Path
) -> None:
    config = {**dev_stack_config(), "catalogDir": str(catalog)}
    run = _run_program(config)
    record = tmp_path / "calls.jsonl"
    for command in _commands_in_dependency_order(run):
        if "create" not in command.inputs:  # runs on update only (the restart of a rotation)
            continue
        result = _shell(command.inputs["create"], command.inputs["environment"], project, record)
        assert result.returncode == 0, (command.name, result.stderr)
        assert "kpt-catalog-result: " in result.stdout.splitlines()[-1]
    sequence = [_describe(c) for c in _calls(record)]
    expected_kube_vip = [
        "kpt live apply --dry-run kube-vip",  # the prune check, before anything changes
        "kpt live apply kube-vip",
        "kpt live status kube-vip",
        "kubectl rollout status daemonset/kube-vip-ds",
    ]
    assert sequence[:4] == expected_kube_vip
    index = sequence.index
    # cilium waits for its runtime CRDs before its apply
    assert index("kubectl wait crd/ciliumloadbalancerippools.cilium.io") < index(
        "kpt live apply cilium"
    )
    # the Tailscale operator: apply, status, rollout, CRD Established (the Connector follows
    # through the provider), then headscale
    tailscale = [
        "kpt live apply operator",
        "kpt live status operator",
        "kubectl rollout status deployment/operator",
        "kubectl wait crd/connectors.tailscale.com",
        "kpt live apply headscale",
        "kpt live status headscale",
        "kubectl wait svc/headscale",
    ]
    assert [s for s in sequence if s in tailscale] == tailscale
    assert index("kpt live apply cilium") < index("kpt live apply envoy-gateway")


def test_hostile_catalog_path_is_passed_literally(project: Path, tmp_path: Path) -> None:
    hostile = tmp_path / HOSTILE
    shutil.copytree(EXAMPLE_CATALOG, hostile)
    kubeconfig = tmp_path / "kube config $(touch PWNED4)"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    config = {
        **dev_stack_config(),
        "catalogDir": str(hostile),
        "kubeconfig": str(kubeconfig),
        "context": "ctx 'x' $(touch PWNED5)",
    }
    run = _run_program(config)
    apply = run.by_name("headscale-apply")
    gate = run.by_name("headscale-wait-after")
    # The strings never hold a value: only the environment does.
    assert apply.inputs["create"] == "python3 components/kptstep.py apply"
    inventory = run.by_name("headscale-inventory")
    assert HOSTILE not in apply.inputs["create"] + inventory.inputs["delete"]
    assert "delete" not in apply.inputs
    record = tmp_path / "calls.jsonl"
    for script in (apply.inputs["create"], apply.inputs["update"], gate.inputs["create"]):
        result = _shell(
            script, apply.inputs["environment"] | gate.inputs["environment"], project, record
        )
        assert result.returncode == 0, result.stderr
    calls = _calls(record)
    package_dir = str(hostile / "mesh" / "headscale")
    kpt_calls = [c for c in calls if c["tool"] == "kpt"]
    assert [c["argv"][:3] for c in kpt_calls] == [
        ["live", "apply", package_dir],  # the prune check's dry run
        ["live", "apply", package_dir],
        ["live", "status", package_dir],
    ] * 2
    assert ["--dry-run" in c["argv"] for c in kpt_calls] == [True, False, False] * 2
    for call in calls:
        argv = call["argv"]
        assert argv[argv.index("--kubeconfig") + 1] == str(kubeconfig)
        assert argv[argv.index("--context") + 1] == "ctx 'x' $(touch PWNED5)"
    leftovers = [p for p in (tmp_path, project, ROOT) for p in p.rglob("PWNED*")]
    assert leftovers == []
    # The Kubernetes provider gets the same kubeconfig and context.
    provider = run.by_name("kubernetes")
    assert provider.inputs["kubeconfig"] == str(kubeconfig)
    assert provider.inputs["context"] == "ctx 'x' $(touch PWNED5)"


def test_simulated_destroy_works_after_the_catalog_is_gone(
    project: Path, catalog: Path, tmp_path: Path
) -> None:
    run = _run_program({**dev_stack_config(), "catalogDir": str(catalog)})
    shutil.rmtree(catalog)  # moved, renamed or deleted since the deploy
    record = tmp_path / "calls.jsonl"
    deletes = [c for c in reversed(_commands_in_dependency_order(run)) if "delete" in c.inputs]
    assert [c.name for c in deletes][:1] == ["envoy-gateway-inventory"]
    assert all(c.name.endswith("-inventory") for c in deletes)
    for command in deletes:
        if command.protect:
            continue  # `make destroy` is --exclude-protected
        result = _shell(command.inputs["delete"], command.inputs["environment"], project, record)
        assert result.returncode == 0, (command.name, result.stderr)
    destroyed = []
    for call in _calls(record):
        assert call["argv"][:2] == ["live", "destroy"]
        files = call["dir_files"]
        assert list(files) == ["resourcegroup.yaml"], files
        destroyed.append(files["resourcegroup.yaml"])
    expected = [
        ("envoy-gateway", "envoy-gateway-system", "kpt-catalog-envoy-gateway"),
        ("headscale", "headscale", "kpt-catalog-headscale"),
        ("tailscale-operator", "tailscale-system", "kpt-catalog-tailscale-operator"),
        ("cilium", "kube-system", "kpt-catalog-cilium"),
    ]
    assert len(destroyed) == len(expected)
    for text, (name, namespace, inventory_id) in zip(destroyed, expected, strict=True):
        assert "kind: ResourceGroup" in text
        assert f'name: "{name}"' in text or f"name: {name}" in text
        assert namespace in text and inventory_id in text


def test_registered_delete_gets_past_the_inventory_with_the_real_kpt(
    project: Path, catalog: Path, tmp_path: Path
) -> None:
    """The delete stored in state, run after the package is gone, with the real kpt binary: kpt
    reads the rebuilt inventory and fails only at the cluster connection."""
    if shutil.which("kpt") is None:
        pytest.skip("the real kpt is not on PATH")
    run = _run_program({**dev_stack_config(), "catalogDir": str(catalog)})
    shutil.rmtree(catalog)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\n"
        "contexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n"
        "users:\n- name: u\n  user: {token: t}\n"
    )
    command = run.by_name("headscale-inventory")
    env = {**os.environ, **command.inputs["environment"], "KUBECONFIG": str(kubeconfig)}
    result = subprocess.run(
        ["/bin/sh", "-c", command.inputs["delete"]],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "cluster unreachable or misconfigured" in result.stderr
    assert "failed to read inventory from cluster" in result.stderr
    assert "127.0.0.1:1" in result.stderr
    assert "no ResourceGroup object was provided" not in result.stderr


def test_a_failed_first_apply_is_rolled_back_by_the_inventory_delete(
    project: Path, catalog: Path, tmp_path: Path
) -> None:
    """The engine records nothing for a failed create; the rollback lives on `<pkg>-inventory`,
    created first, so `pulumi destroy` still runs `kpt live destroy` for what kpt applied."""
    run = _run_program({**dev_stack_config(), "catalogDir": str(catalog)})
    inventory = run.by_name("headscale-inventory")
    apply = run.by_name("headscale-apply")
    assert inventory.urn in apply.dependencies
    assert "delete" not in apply.inputs
    record = tmp_path / "calls.jsonl"
    created = _shell(inventory.inputs["create"], inventory.inputs["environment"], project, record)
    assert created.returncode == 0, created.stderr
    assert _calls(record) == []  # recording the rollback touches nothing
    failed = _shell(
        apply.inputs["create"],
        apply.inputs["environment"],
        project,
        record,
        FAKE_KPT_SCENARIO="apply-failed",
    )
    assert failed.returncode == 1
    assert [c["argv"][:2] for c in _calls(record)] == [["live", "apply"]] * 2  # dry run, apply
    rolled_back = _shell(
        inventory.inputs["delete"], inventory.inputs["environment"], project, record
    )
    assert rolled_back.returncode == 0, rolled_back.stderr
    destroy = _calls(record)[-1]
    assert destroy["argv"][:2] == ["live", "destroy"]
    group = destroy["dir_files"]["resourcegroup.yaml"]
    assert 'name: "headscale"' in group and 'namespace: "headscale"' in group
    assert "kpt-catalog-headscale" in group
