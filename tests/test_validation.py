"""Bad input stops the real program before any resource is registered, naming key and fix."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components.config import ConfigError
from kpt_catalog.stackfile import stack_config_values
from tests.harness import (
    EXAMPLE_CATALOG,
    ROOT,
    TEST_KUBECONFIG,
    project_copy,
    run_program,
    shipped_graph,
)

Mutation = Callable[[dict[str, Any], Path], object]  # tuple-lambdas do several edits


def _package(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in config["packages"] if p["name"] == name)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


CASES: dict[str, tuple[Mutation, list[str]]] = {
    "catalogDir missing": (
        lambda c, cat: c.update(catalogDir=str(cat / "nowhere")),
        ["catalogDir:", "nowhere does not exist", "catalog's root directory"],
    ),
    "catalogDir is a file": (
        lambda c, cat: c.update(catalogDir=str(cat / "ha" / "kube-vip" / "Kptfile")),
        ["catalogDir:", "is not a directory"],
    ),
    "package path missing": (
        lambda c, cat: _package(c, "cilium").update(path="networking/cilum"),
        ["packages[1].path:", "networking/cilum does not exist", "kpt package directory"],
    ),
    "package path is a file": (
        lambda c, cat: _package(c, "cilium").update(path="networking/cilium/bgp.yaml"),
        ["packages[1].path:", "bgp.yaml is not a directory"],
    ),
    "package path absolute": (
        lambda c, cat: _package(c, "cilium").update(path="/etc"),
        ["packages[1].path:", "expected a path relative to catalogDir"],
    ),
    "not a kpt package": (
        lambda c, cat: (
            _write(cat / "empty" / ".keep", ""),
            _package(c, "cilium").update(path="empty"),
        ),
        ["packages[1].path:", "is not a kpt package (no Kptfile, no inventory)", "kpt live init"],
    ),
    "nested package": (
        lambda c, cat: _write(cat / "mesh/headscale/extra/Kptfile", "apiVersion: kpt.dev/v1\n"),
        ["packages[3].path:", "holds other kpt packages below it (extra)", "leaf package"],
    ),
    "no inventory": (
        lambda c, cat: (cat / "mesh/headscale/resourcegroup.yaml").unlink(),
        [
            "packages[3].path:",
            "is no inventory",
            "kpt live init",
            "--name headscale",
            "--inventory-id kpt-catalog-headscale",
        ],
    ),
    "two inventories": (
        lambda c, cat: _write(
            cat / "mesh/headscale/Kptfile",
            "apiVersion: kpt.dev/v1\nkind: Kptfile\nmetadata: {name: headscale}\n"
            "inventory: {name: hs, namespace: headscale, inventoryID: abc}\n",
        ),
        ["packages[3].path:", "has 2 inventories", "resourcegroup.yaml", "Kptfile (inventory:)"],
    ),
    "inventory without id": (
        lambda c, cat: _write(
            cat / "mesh/headscale/resourcegroup.yaml",
            "apiVersion: kpt.dev/v1alpha1\nkind: ResourceGroup\n"
            "metadata: {name: headscale, namespace: headscale}\n",
        ),
        ["packages[3].path:", "lacks inventory-id"],
    ),
    "reconcileTimeout not a duration": (
        lambda c, cat: _package(c, "cilium").update(reconcileTimeout="2 minutes"),
        ["packages[1].reconcileTimeout:", "'2 minutes' is not a duration"],
    ),
    "zero timeout": (
        lambda c, cat: _package(c, "cilium").update(destroyTimeout="0s"),
        ["packages[1].destroyTimeout:", "must be longer than zero"],
    ),
    "negative wait timeout": (
        lambda c, cat: _package(c, "tailscale")["waitAfter"][0].update(timeout="-1m"),
        ["packages[2].waitAfter[0].timeout:", "'-1m' must be longer than zero"],
    ),
    "needs unknown": (
        lambda c, cat: _package(c, "headscale").update(needs=["tailscal", "cilium"]),
        [
            "packages[3].needs:",
            "'headscale' needs 'tailscal'",
            "did you mean 'tailscale'?",
            "packages.yaml line",
        ],
    ),
    "cycle": (
        lambda c, cat: _package(c, "kube-vip").update(needs=["headscale"]),
        ["packages.needs:", "cycle", "kube-vip -> headscale -> tailscale -> cilium -> kube-vip"],
    ),
    "duplicate name": (
        lambda c, cat: _package(c, "envoy-gateway").update(name="cilium"),
        ["packages[4].name:", "duplicate package name 'cilium' (also packages[1])"],
    ),
    "name not a DNS label": (
        lambda c, cat: _package(c, "envoy-gateway").update(name="Envoy_Gateway"),
        ["packages[4].name:", "'Envoy_Gateway' is not a DNS label"],
    ),
    "unknown package key": (
        lambda c, cat: _package(c, "cilium").update(reconcileTimout="2m"),
        ["packages[1].reconcileTimout:", "unknown key"],
    ),
    "serverSide not a bool": (
        lambda c, cat: _package(c, "envoy-gateway").update(serverSide="yes"),
        ["packages[4].serverSide:", "expected true or false, found 'yes'"],
    ),
    "manifest missing": (
        lambda c, cat: (cat / "mesh/tailscale/03-connector.yaml").unlink(),
        ["packages[2].manifests[0]:", "cannot read", "03-connector.yaml"],
    ),
    "manifest not YAML": (
        lambda c, cat: _write(cat / "mesh/tailscale/03-connector.yaml", "kind: [Connector\n"),
        ["packages[2].manifests[0]:", "is not valid YAML"],
    ),
    "manifest without kind and name": (
        lambda c, cat: _write(
            cat / "mesh/tailscale/03-connector.yaml",
            "apiVersion: tailscale.com/v1alpha1\nmetadata: {}\nspec: {}\n",
        ),
        ["packages[2].manifests[0]:", "document 1: missing kind, metadata.name"],
    ),
    "wait without resource and for": (
        lambda c, cat: _package(c, "headscale")["waitAfter"].append({"timeout": "1m"}),
        [
            "packages[3].waitAfter[1].resource: is required",
            "packages[3].waitAfter[1].for: is required",
        ],
    ),
    "kubeconfig missing": (
        lambda c, cat: c.update(kubeconfig=str(cat / "no-such-kubeconfig")),
        ["kubeconfig:", "no-such-kubeconfig does not exist"],
    ),
    "unknown top-level key, case slip": (
        lambda c, cat: c.update(kubeConfig="/etc/rancher/rke2/rke2.yaml"),
        ["kpt-catalog:kubeConfig: unknown key; did you mean kpt-catalog:kubeconfig?"],
    ),
    "unknown top-level key, typo": (
        lambda c, cat: c.update(catalogdir=str(cat)),
        ["kpt-catalog:catalogdir: unknown key; did you mean kpt-catalog:catalogDir?"],
    ),
    "unknown top-level key, nothing near": (
        lambda c, cat: c.update(colour="blue"),
        ["kpt-catalog:colour: unknown key; the keys are catalogDir, kubeconfig, context"],
    ),
    "context missing": (
        lambda c, cat: c.pop("context"),
        [
            "context: is required",
            "`kubectl config get-contexts -o name`",
            "pulumi config set kpt-catalog:context",
        ],
    ),
    "context empty": (
        lambda c, cat: c.update(context=" "),
        ["context: is required", "kubectl config get-contexts -o name"],
    ),
    "former name is a current package": (
        lambda c, cat: _package(c, "headscale").update(formerNames=["cilium"]),
        [
            "packages[3].formerNames:",
            "'cilium' is the name of a current package (packages[1])",
        ],
    ),
    "former name claimed twice": (
        lambda c, cat: (
            _package(c, "headscale").update(formerNames=["hs"]),
            _package(c, "envoy-gateway").update(formerNames=["hs"]),
        ),
        ["packages[4].formerNames:", "'hs' is also a former name of packages[3]"],
    ),
    "former name not a DNS label": (
        lambda c, cat: _package(c, "headscale").update(formerNames=["Head_Scale"]),
        ["packages[3].formerNames[0]:", "expected a former package name (a DNS label)"],
    ),
    "packages not a list": (
        lambda c, cat: c.update(packages="kube-vip,cilium"),
        ["packages: expected a list"],
    ),
    "missing needs edge for a CRD": (
        # headscale would create a Connector, whose CRD the tailscale package holds.
        lambda c, cat: (
            shutil.copy(
                cat / "mesh/tailscale/03-connector.yaml", cat / "mesh/headscale/connector.yaml"
            ),
            _package(c, "headscale").update(needs=["cilium"]),
        ),
        [
            "packages[3].needs:",
            "'headscale' uses tailscale.com/Connector (connector.yaml)",
            "whose CRD is in package 'tailscale'",
            "add 'tailscale' to the needs of 'headscale'",
        ],
    ),
    "a Secret name with a trailing newline": (
        lambda c, cat: _package(c, "tailscale")["secrets"][0].update(name="operator-oauth\n"),
        ["packages[2].secrets[0].name:", "operator-oauth\\n"],
    ),
    "a former name with a trailing newline": (
        lambda c, cat: _package(c, "headscale").update(formerNames=["old\n"]),
        ["packages[3].formerNames[0]:"],
    ),
    "a context that is a list": (
        lambda c, cat: c.update(context=["a"]),
        ["context: expected a non-empty string, found ['a']"],
    ),
    "a misspelt package key": (
        lambda c, cat: _package(c, "headscale").update(need=["cilium"]),
        ["packages[3].need: unknown key; did you mean 'needs'? expected one of"],
    ),
    "kind provided and awaited by no one": (
        lambda c, cat: _package(c, "cilium").update(waitBefore=[]),
        [
            "packages[1]: package 'cilium' uses cilium.io/CiliumBGPAdvertisement (bgp.yaml)",
            "no package provides its CRD",
            "waitBefore on crd/ciliumbgpadvertisements.cilium.io condition=Established",
            "clusterProvidedKinds",
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_before_anything_is_registered(
    case: str, dev_config: dict[str, Any], catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mutate, expected = CASES[case]
    mutate(dev_config, catalog)
    run = run_program(dev_config, raise_errors=False)
    assert isinstance(run.error, ConfigError), run.error
    message = str(run.error)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    assert run.registrations == []


def test_every_problem_is_reported_at_once(dev_config: dict[str, Any], catalog: Path) -> None:
    _package(dev_config, "cilium").update(reconcileTimeout="soon")
    _package(dev_config, "headscale").update(needs=["nope"])
    (catalog / "networking/envoy-gateway/resourcegroup.yaml").unlink()
    with pytest.raises(ConfigError) as raised:
        run_program(dev_config)
    problems = raised.value.problems
    assert any(p.startswith("packages[1].reconcileTimeout:") for p in problems)
    assert any(p.startswith("packages[3].needs:") for p in problems)
    assert any("envoy-gateway is no inventory" in p for p in problems)
    assert "3 configuration problem(s)" in str(raised.value)


def test_cluster_provided_kinds_accept_a_runtime_kind(
    dev_config: dict[str, Any],
) -> None:
    _package(dev_config, "cilium").update(waitBefore=[])
    dev_config["clusterProvidedKinds"] = [
        "cilium.io/CiliumLoadBalancerIPPool",
        "cilium.io/CiliumL2AnnouncementPolicy",
        "cilium.io/CiliumBGPClusterConfig",
        "cilium.io/CiliumBGPPeerConfig",
        "cilium.io/CiliumBGPAdvertisement",
    ]
    run = run_program(dev_config)
    assert "cilium-apply" in run.names()


def test_inventory_namespace_not_created_is_a_warning(
    dev_config: dict[str, Any], catalog: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (catalog / "mesh/headscale/00-namespace.yaml").unlink()
    run = run_program(dev_config)
    assert "headscale-apply" in run.names()
    assert any(
        "inventory namespace 'headscale'" in record.getMessage()
        and "must exist before the apply" in record.getMessage()
        for record in caplog.records
    ), [r.getMessage() for r in caplog.records]


def test_a_stacks_own_packages_win_over_the_graph_file_with_a_warning(
    dev_config: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    project = project_copy(tmp_path / "project", [{"name": "only", "path": "nowhere"}])
    run = run_program(dev_config, program=project / "__main__.py")
    assert run.outputs["deployOrder"] == [
        "kube-vip",
        "cilium",
        "tailscale",
        "headscale",
        "envoy-gateway",
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(
        "kpt-catalog:packages in Pulumi.dev.yaml wins over packages.yaml" in w
        and str(project / "packages.yaml") in w
        for w in warnings
    ), warnings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("packages: [\n", "packages.yaml line 2, column 1: not valid YAML: expected the node"),
        (
            "packages:\n  - name: a\n    needs: [b\n",
            "packages.yaml line 4, column 1: not valid YAML: expected ',' or ']', but got "
            "'<stream end>' (while parsing a flow sequence)",
        ),
        ("- name: a\n", "packages.yaml: expected a mapping with the key packages"),
        ("packages: []\ncontext: default\n", "packages.yaml: unknown key(s) context"),
        (
            None,
            "packages: is required: a list of {name, path, needs, ...} objects in packages.yaml",
        ),
    ],
)
def test_a_graph_file_that_cannot_be_used_is_named(
    text: str | None, expected: str, dev_config: dict[str, Any], tmp_path: Path
) -> None:
    project = project_copy(tmp_path / "project")
    if text is not None:
        (project / "packages.yaml").write_text(text)
    del dev_config["packages"]
    run = run_program(dev_config, program=project / "__main__.py", raise_errors=False)
    assert isinstance(run.error, ConfigError), run.error
    assert expected in str(run.error)
    assert run.registrations == []


def test_the_shipped_graph_deploys_the_example_catalog() -> None:
    """The one test of the shipped packages.yaml: it must fit examples/catalog."""
    stack = {"catalogDir": str(EXAMPLE_CATALOG), "kubeconfig": str(TEST_KUBECONFIG)}
    run = run_program({**stack, "context": "test", "packages": shipped_graph()})
    assert set(run.outputs["deployOrder"]) == {p["name"] for p in shipped_graph()}


def test_a_misspelt_key_from_the_cli_is_named(
    dev_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `pulumi up` hands the program its config as the JSON of PULUMI_CONFIG.
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"kpt-catalog:Context": "default"}))
    run = run_program(dev_config, raise_errors=False)
    assert isinstance(run.error, ConfigError), run.error
    assert "kpt-catalog:Context: unknown key; did you mean kpt-catalog:context?" in str(run.error)
    assert run.registrations == []


def test_a_stack_file_that_is_not_yaml_is_named_with_its_line(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / "Pulumi.lab.yaml").write_text("config:\n  kpt-catalog:context: [lab\n")

    with pytest.raises(ConfigError) as raised:
        stack_config_values("lab", root=tmp_path)

    (problem,) = raised.value.problems
    assert problem.startswith("Pulumi.lab.yaml line 3, column 1: not valid YAML: expected ','")
    assert "<unicode string>" not in problem
