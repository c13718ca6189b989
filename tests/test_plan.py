"""`make plan`: the plan a user reads, and the README's picture generated from the same graph."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from components.graph import Graph
from kpt_catalog import exits, plan
from kpt_catalog.stackfile import load_stack_config
from tests.harness import EXAMPLE_CATALOG, ROOT, check_json_output


def test_plan_of_the_dev_stack(capsys: pytest.CaptureFixture[str], stack_project: Path) -> None:
    assert plan.main(["--stack", "dev", "--catalog-dir", str(EXAMPLE_CATALOG)]) == 0
    out = capsys.readouterr().out
    assert "  1. kube-vip\n  2. cilium\n  3. tailscale, envoy-gateway\n  4. headscale\n" in out
    rollback = out[out.index("Rollback order") :]
    lines = [line.split(":")[0].strip() for line in rollback.splitlines()[1:5]]
    assert lines == ["envoy-gateway", "headscale", "tailscale", "cilium"]
    assert (
        "tailscale: native mesh/tailscale/03-connector.yaml first (while its operator runs), "
        "then Secret tailscale-system/operator-oauth, then kpt live destroy"
    ) in rollback
    assert "kept (protected, removed only with the cluster): kube-vip" in rollback
    assert "Critical path: kube-vip -> cilium -> tailscale -> headscale" in out
    # 8m+2m+2m (kube-vip) + 8m+2m+10m (cilium) + 12m+3m+4m+5m (tailscale) + 12m+3m+3m
    assert "worst case from the timeouts: 1h14m" in out
    assert "as the bash loop did: 1h35m" in out  # + envoy-gateway 12m+3m+3m+3m
    assert "kpt live apply --server-side --reconcile-timeout=3m" in out


def test_plan_without_the_catalog_shows_the_graph_and_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, stack_project: Path
) -> None:
    assert plan.main(["--catalog-dir", str(tmp_path / "absent")]) == exits.OK
    printed = capsys.readouterr()
    assert "3. tailscale, envoy-gateway" in printed.out
    assert (
        f"warning: catalogDir {tmp_path}/absent is not on this machine: the plan shows the graph "
        "alone; no package file was read"
    ) in printed.err


def test_plan_reports_every_problem_at_once_before_any_plan(
    capsys: pytest.CaptureFixture[str], catalog: Path, stack_project: Path
) -> None:
    (catalog / "networking/cilium/resourcegroup.yaml").unlink()
    os.mkfifo(catalog / "mesh/headscale/pipe.yaml")
    graph_file = stack_project / "packages.yaml"
    graph = yaml.safe_load(graph_file.read_text())
    headscale = next(p for p in graph["packages"] if p["name"] == "headscale")
    headscale["waitAfter"][0]["for"] = "rolout"
    graph_file.write_text(yaml.safe_dump(graph))
    index = {p["name"]: i for i, p in enumerate(graph["packages"])}

    assert plan.main(["--catalog-dir", str(catalog)]) == exits.CONFIG
    printed = capsys.readouterr()
    assert printed.out == ""  # no plan, not even part of one: the problems are all there is
    assert "kpt-catalog: 3 configuration problem(s):" in printed.err
    assert f"packages[{index['headscale']}].waitAfter[0].for: expected one of rollout" in (
        printed.err
    )
    assert f"packages[{index['cilium']}].path:" in printed.err and "kpt live init" in printed.err
    assert "pipe.yaml is a FIFO (named pipe), not a file" in printed.err


def test_a_problem_names_the_file_line_and_package(
    capsys: pytest.CaptureFixture[str], stack_project: Path
) -> None:
    graph_file = stack_project / "packages.yaml"
    text = graph_file.read_text()
    # a typo in a key, where an editor leaves it: the line it is on is named
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == "- name: headscale")
    needs = next(i for i in range(at, len(lines)) if lines[i].strip().startswith("needs:"))
    lines[needs] = lines[needs].replace("needs:", "need:")
    graph_file.write_text("\n".join(lines) + "\n")

    assert plan.main(["--catalog-dir", str(EXAMPLE_CATALOG)]) == exits.CONFIG
    err = capsys.readouterr().err
    assert f"packages.yaml line {needs + 1}, package headscale: packages[" in err
    assert ".need: unknown key; did you mean 'needs'?" in err


def test_plan_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        plan.main(["--no-such-option"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_plan_names_a_missing_stack_file_and_how_to_make_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert plan.main(["--stack", "nosuchstack"]) == exits.CONFIG
    err = capsys.readouterr().err
    assert "Pulumi.nosuchstack.yaml does not exist" in err
    assert "kpt-catalog stack init nosuchstack --kubeconfig FILE --context CONTEXT" in err


def test_plan_reports_catalog_problems(
    capsys: pytest.CaptureFixture[str], catalog: Path, stack_project: Path
) -> None:
    (catalog / "networking/cilium/resourcegroup.yaml").unlink()
    assert plan.main(["--catalog-dir", str(catalog)]) == exits.CONFIG
    err = capsys.readouterr().err
    assert "package cilium: packages[1].path:" in err and "kpt live init" in err


def test_the_graph_picture_is_the_generated_one() -> None:
    graph = Graph.build(load_stack_config("dev").packages)
    page = (ROOT / plan.PICTURE_PAGE).read_text()
    assert plan.readme_with_diagram(page, graph) == page, (
        f"{plan.PICTURE_PAGE}'s graph is stale: run `make plan-picture`"
    )


def test_mermaid_has_every_package_wait_and_manifest(stack_project: Path) -> None:
    graph = Graph.build(load_stack_config("dev").packages)
    diagram = graph.mermaid()
    for node in (
        'pkg_cilium_wait_before["wait before: crd/ciliumloadbalancerippools.cilium.io',
        'pkg_tailscale_manifest0["native: mesh/tailscale/03-connector.yaml"]',
        "pkg_tailscale_wait_after --> pkg_tailscale_manifest0",
        "pkg_cilium --> pkg_envoy_gateway",
        "pkg_tailscale --> pkg_headscale",
    ):
        assert node in diagram
    assert "pkg_tailscale --> pkg_envoy_gateway" not in diagram


def test_plan_shows_every_step_of_a_package_in_the_order_it_runs(
    capsys: pytest.CaptureFixture[str], stack_project: Path
) -> None:
    assert plan.main(["--stack", "dev", "--catalog-dir", str(EXAMPLE_CATALOG)]) == 0
    out = capsys.readouterr().out
    steps = out[out.index("  tailscale (mesh/tailscale/operator)") : out.index("  headscale (")]
    assert [line.split(":")[0].split(" --")[0].strip() for line in steps.splitlines()[1:]] == [
        "inventory",
        "kpt live apply",
        "beside it",
        "beside it",
        "on new Secret values",
        "wait after",
        "wait after",
        "native",
    ]
    assert "    beside it: wait for namespace tailscale-system\n" in steps
    assert (
        "    beside it: Secret tailscale-system/operator-oauth from secret config"
        " (tailscaleOauthClientId, tailscaleOauthClientSecret)\n"
    ) in steps
    # the operator's Deployment mounts the Secret: it is what a rotation restarts
    assert "    on new Secret values: restart deployment/operator (tailscale-system)\n" in steps
    # every package holds its rollback in an inventory step created first
    assert (
        out.count("inventory: checks the rollback's inputs; its delete runs kpt live destroy") == 5
    )
    # no Secrets, no namespace gate or restart
    assert "beside it" not in out[out.index("  headscale (") : out.index("Rollback order")]


def test_mermaid_shows_the_inventory_the_secrets_and_the_restart(stack_project: Path) -> None:
    diagram = Graph.build(load_stack_config("dev").packages).mermaid()
    for line in (
        'pkg_tailscale_inventory["inventory: its delete runs kpt live destroy"]',
        'pkg_tailscale_wait_namespace["wait for namespace: tailscale-system"]',
        'pkg_tailscale_secret_0["Secret tailscale-system/operator-oauth from secret config"]',
        'pkg_tailscale_restart["restart on new Secret values: workloads that use them"]',
        # the namespace gate waits for what the apply waits for: it runs beside it
        "pkg_tailscale_inventory --> pkg_tailscale_apply",
        "pkg_tailscale_inventory --> pkg_tailscale_wait_namespace",
        "pkg_tailscale_wait_namespace --> pkg_tailscale_secret_0",
        "pkg_tailscale_apply --> pkg_tailscale_restart",
        "pkg_tailscale_secret_0 --> pkg_tailscale_restart",
        "pkg_tailscale_secret_0 --> pkg_tailscale_manifest0",
        # the gates before an apply run beside the inventory; the apply waits for both
        "pkg_cilium_inventory --> pkg_cilium_apply",
        "pkg_cilium_wait_before --> pkg_cilium_apply",
    ):
        assert f"    {line}\n" in diagram
    assert "pkg_tailscale_apply --> pkg_tailscale_wait_namespace" not in diagram
    assert "pkg_cilium_inventory --> pkg_cilium_wait_before" not in diagram
    assert "pkg_headscale_wait_namespace" not in diagram


def test_plan_json_follows_its_schema_and_says_what_the_text_says(
    capsys: pytest.CaptureFixture[str], stack_project: Path
) -> None:
    assert plan.main(["--catalog-dir", str(EXAMPLE_CATALOG), "--output", "json"]) == exits.OK
    printed = capsys.readouterr()
    document = check_json_output(printed.out, "plan")
    assert document["command"] == "plan" and document["exitCode"] == 0
    assert document["waves"] == [
        ["kube-vip"],
        ["cilium"],
        ["tailscale", "envoy-gateway"],
        ["headscale"],
    ]
    assert document["rollbackOrder"] == ["envoy-gateway", "headscale", "tailscale", "cilium"]
    assert document["kept"] == ["kube-vip"]
    tailscale = next(p for p in document["packages"] if p["name"] == "tailscale")
    assert tailscale["needs"] == ["cilium", "kube-vip"] and tailscale["wave"] == 3
    assert tailscale["manifests"] == ["mesh/tailscale/03-connector.yaml"]
    assert len(tailscale["digest"]) == 64


def test_plan_json_of_a_bad_catalog_is_the_problems_and_exit_2(
    capsys: pytest.CaptureFixture[str], catalog: Path, stack_project: Path
) -> None:
    (catalog / "networking/cilium/resourcegroup.yaml").unlink()
    assert plan.main(["--catalog-dir", str(catalog), "-o", "json"]) == exits.CONFIG
    document = check_json_output(capsys.readouterr().out, "plan")
    assert document["exitCode"] == exits.CONFIG
    assert any("package cilium: packages[1].path:" in p for p in document["problems"])
