"""The prune guard of the apply step, and `allowPrune` from packages.yaml to the step.

The step runs against the stand-in kpt and kubectl (tests/fakebin), whose dry runs answer as
kpt 1.0.0-beta.56 does (prune events, Skipped for an object annotated on-remove: keep, the
ResourceGroup CRD error); one test runs the real kpt and kubectl against a closed port.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.config import ConfigError
from tests.harness import run_program
from tests.test_kptstep import (
    PACKAGE_FILES,
    apply_env,
    assert_all_dead,
    calls,
    destroy_env,
    real_tools_env,
    run,
)

CRD = "apiextensions.k8s.io/CustomResourceDefinition widgets.example.com"
ALL_GUARDED = [
    "CustomResourceDefinition/widgets.example.com",
    "Namespace",
    "PersistentVolumeClaim/headscale/data",
]


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture
def record(tmp_path: Path) -> Path:
    return tmp_path / "record.jsonl"


@pytest.fixture
def pids(tmp_path: Path) -> Path:
    return tmp_path / "pids"


@pytest.fixture
def package(tmp_path: Path) -> Path:
    directory = tmp_path / "catalog" / "headscale"
    directory.mkdir(parents=True)
    for name, text in PACKAGE_FILES.items():
        (directory / name).write_text(text)
    return directory


def _ran(record: Path) -> list[str]:
    """Each recorded call in a few words: `kpt apply --dry-run`, `kpt apply`, `kubectl get`."""
    described = []
    for call in calls(record):
        argv = call["argv"]
        words = [call["tool"], argv[1] if call["tool"] == "kpt" else argv[0]]
        described.append(" ".join([*words, *(["--dry-run"] if "--dry-run" in argv else [])]))
    return described


def _summary(stderr: str) -> list[str]:
    """The failure summary: the headline and the lines under it."""
    lines = stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if " failed (" in line)
    return lines[start:]


def _apply(record: Path, pids: Path, package: Path, scenario: str, **extra: str) -> Any:
    return run("apply", apply_env(record, pids, package, FAKE_KPT_SCENARIO=scenario, **extra))


# --- the step ----------------------------------------------------------------------------------


def test_a_pruned_crd_namespace_and_pvc_are_refused_before_anything_is_applied(
    record, pids, package
):
    step = _apply(record, pids, package, "dry-run-prunes")

    assert step.code == 1
    assert _summary(step.stderr) == [
        "[headscale] apply failed (prune refused): kpt would prune 3 object(s) that package "
        "headscale does not allow to be pruned; nothing was applied",
        f"[headscale]   {CRD}: to let it go, add 'CustomResourceDefinition/widgets.example.com' "
        "to allowPrune of package headscale in packages.yaml",
        "[headscale]   Namespace legacy: to let it go, add 'Namespace/legacy' to allowPrune of "
        "package headscale in packages.yaml",
        "[headscale]   PersistentVolumeClaim headscale/data: to let it go, add "
        "'PersistentVolumeClaim/headscale/data' to allowPrune of package headscale in "
        "packages.yaml",
        "[headscale]   to keep an object instead, put its file back in the package, or annotate "
        "it in the cluster with cli-utils.sigs.k8s.io/on-remove: keep",
    ]
    assert step.result == {
        "package": "headscale",
        "step": "apply",
        "ok": False,
        "failure": "prune refused",
    }
    assert _ran(record) == ["kpt apply --dry-run"]  # kpt live apply itself never ran


def test_allow_prune_lets_exactly_the_named_objects_go(record, pids, package):
    allowed = json.dumps(ALL_GUARDED)
    step = _apply(record, pids, package, "dry-run-prunes", KPT_CATALOG_ALLOW_PRUNE=allowed)

    assert step.code == 0, step.stderr
    assert f"[headscale] prune check: kpt would prune {CRD}\n" in step.stderr
    assert "[headscale] prune check: 4 to prune, 1 kept, none refused\n" in step.stderr
    assert _ran(record) == ["kpt apply --dry-run", "kpt apply", "kpt status"]


def test_an_entry_allows_only_what_it_names(record, pids, package):
    allowed = json.dumps(["CustomResourceDefinition", "PersistentVolumeClaim/other/data"])
    step = _apply(record, pids, package, "dry-run-prunes", KPT_CATALOG_ALLOW_PRUNE=allowed)

    assert step.code == 1
    refused = [line for line in _summary(step.stderr) if "to let it go" in line]
    assert [line.split(":")[0] for line in refused] == [
        "[headscale]   Namespace legacy",
        "[headscale]   PersistentVolumeClaim headscale/data",
    ]
    assert "kpt would prune 2 object(s)" in step.stderr


def test_a_pruned_configmap_needs_no_allowance_and_a_kept_object_is_not_counted(
    record, pids, package
):
    step = _apply(record, pids, package, "dry-run-prunes-configmap")

    assert step.code == 0, step.stderr
    assert "[headscale] prune check: kpt would prune ConfigMap headscale/old-config\n" in (
        step.stderr
    )
    assert (
        "[headscale] prune check: kpt keeps ConfigMap headscale/kept-config: annotation prevents "
        'deletion ("cli-utils.sigs.k8s.io/on-remove": "keep")\n'
    ) in step.stderr
    assert "[headscale] prune check: 1 to prune, 1 kept, none refused\n" in step.stderr
    assert step.result["ok"] is True


def test_a_prune_kpt_would_refuse_stops_the_step_before_the_apply(record, pids, package):
    """A Namespace whose file left while the package still lives in it: kpt would skip its prune
    and the apply would fail on that skip, on every run. The check says so before applying."""
    step = _apply(record, pids, package, "dry-run-prune-blocked")

    assert step.code == 1
    assert _summary(step.stderr) == [
        "[headscale] apply failed (prune blocked): kpt would refuse to prune 1 object(s) that "
        "left package headscale, and the apply would fail on them; nothing was applied",
        "[headscale]   Namespace headscale: namespace still in use: headscale",
        "[headscale]   put each one's file back in the package, or first remove what still holds "
        "it (for a Namespace: the objects and the inventory that still live in it)",
    ]
    assert _ran(record) == ["kpt apply --dry-run"]


def test_an_apply_the_dry_run_shows_skipped_stops_the_step_with_what_to_do(record, pids, package):
    step = _apply(record, pids, package, "dry-run-apply-skipped")

    assert step.code == 1
    assert _summary(step.stderr) == [
        "[headscale] apply failed (apply skipped): kpt would skip applying 2 object(s) of "
        "package headscale (its dry run says so), and the apply would change the rest and then "
        "fail; nothing was applied",
        "[headscale]   Service headscale/headscale: exists in the cluster outside any "
        "inventory (made by hand or by the bash loop); to let package headscale take it over, "
        "set `adopt: true` on it in packages.yaml",
        "[headscale]   apps/Deployment headscale/headscale: belongs to another package's "
        "inventory; keep it in one package only (remove it from this package's files, or "
        "destroy it from the other first). Never `adopt` it: adopt does not take another "
        "package's objects",
    ]
    assert _ran(record) == ["kpt apply --dry-run"]


@pytest.mark.parametrize(
    ("scenario", "headline"),
    [
        (
            "dry-run-apply-skip-counted-only",
            "kpt live apply --dry-run counts 1 skipped apply(s) but named none",
        ),
        (
            "dry-run-prune-count-lies",
            "kpt live apply --dry-run counts 3 object(s) to prune but named 2",
        ),
    ],
)
def test_a_dry_run_whose_counts_its_events_do_not_add_up_to_is_no_answer(
    record, pids, package, scenario, headline
):
    step = _apply(record, pids, package, scenario)

    assert step.code == 1
    assert _summary(step.stderr)[0].startswith(
        f"[headscale] apply failed (prune check failed): {headline}"
    ), step.stderr
    assert _ran(record) == ["kpt apply --dry-run"]


def test_an_older_kpt_that_stops_before_its_prunes_is_no_answer(record, pids, package):
    """Older kpt prints a "completed" event after each task; exit 0 right after the apply's says
    nothing of the prunes, so the check fails instead of letting the apply prune unchecked."""
    step = _apply(record, pids, package, "dry-run-old-truncated")

    assert step.code == 1
    assert _summary(step.stderr)[0] == (
        "[headscale] apply failed (prune check failed): kpt live apply --dry-run ended before it "
        "reported its prunes, so what kpt would prune is unknown; nothing was applied"
    )
    assert _ran(record) == ["kpt apply --dry-run"]


def test_an_object_kpt_keeps_on_remove_is_no_failure_of_the_apply(record, pids, package):
    """The way out the refusal offers (annotate the object on-remove: keep) must work: kpt then
    reports a Skipped prune and a Skipped wait for it, and exits 0."""
    step = _apply(record, pids, package, "keep-on-remove")

    assert step.code == 0, step.stderr
    assert (
        "[headscale] prune Skipped  ConfigMap headscale/kept-config: annotation prevents "
        'deletion ("cli-utils.sigs.k8s.io/on-remove": "keep")\n'
    ) in step.stderr
    assert step.result == {
        "package": "headscale",
        "step": "apply",
        "objects": 3,
        "pruned": 0,
        "ok": True,
    }


def test_a_cluster_without_the_resourcegroup_crd_has_nothing_to_prune(record, pids, package):
    step = _apply(record, pids, package, "no-resourcegroup-crd")

    assert step.code == 0, step.stderr
    assert (
        "[headscale] prune check: no ResourceGroup CRD in the cluster yet, nothing to prune\n"
    ) in step.stderr
    assert _ran(record) == ["kpt apply --dry-run", "kubectl get", "kpt apply", "kpt status"]
    kubectl = calls(record)[1]["argv"]
    assert kubectl == [
        "get",
        "customresourcedefinitions.apiextensions.k8s.io",
        "resourcegroups.kpt.dev",
        "--ignore-not-found",
        "-o",
        "name",
    ]


def test_kpt_saying_no_crd_when_kubectl_finds_it_fails_the_step(record, pids, package):
    step = _apply(record, pids, package, "no-resourcegroup-crd", FAKE_KUBECTL_RG_CRD="present")

    assert step.code == 1
    assert _summary(step.stderr)[0] == (
        "[headscale] apply failed (prune check failed): kpt live apply --dry-run said the "
        "ResourceGroup CRD was not found, but kubectl finds it: kpt could not read the "
        "cluster; nothing was applied"
    )
    assert "kpt apply" not in _ran(record)


def test_an_unreachable_cluster_fails_the_check_with_kubectls_reason(record, pids, package):
    step = _apply(record, pids, package, "unreachable")

    assert step.code == 1
    assert _summary(step.stderr) == [
        "[headscale] apply failed (cluster unreachable or misconfigured): kpt live apply "
        "--dry-run found no ResourceGroup CRD, and kubectl get crd resourcegroups.kpt.dev exited "
        "1: the cluster cannot be read, so what kpt would prune is unknown; nothing was applied",
        "[headscale]   kubectl: The connection to the server 127.0.0.1:6443 was refused - did you "
        "specify the right host or port?",
    ]
    assert _ran(record) == ["kpt apply --dry-run", "kubectl get"]


@pytest.mark.parametrize(
    ("scenario", "headline", "detail"),
    [
        (
            "dry-run-forbidden",
            "kpt live apply --dry-run exited 1, so what kpt would prune is unknown; nothing was "
            "applied",
            '[headscale]   stderr: error: resourcegroups.kpt.dev "inventory-headscale" is '
            'forbidden: User "dev" cannot get resource "resourcegroups" in API group "kpt.dev" '
            'in the namespace "headscale"',
        ),
        (
            "dry-run-no-summary",
            "kpt live apply --dry-run ended before its final summary, so what kpt would prune is "
            "unknown; nothing was applied",
            None,
        ),
    ],
)
def test_any_other_dry_run_failure_fails_the_step(
    record, pids, package, scenario, headline, detail
):
    step = _apply(record, pids, package, scenario)

    assert step.code == 1
    summary = _summary(step.stderr)
    assert summary[0] == f"[headscale] apply failed (prune check failed): {headline}"
    assert summary[1:] == ([detail] if detail else [])
    assert step.result["failure"] == "prune check failed"
    assert _ran(record) == ["kpt apply --dry-run"]


def test_the_dry_run_is_bound_by_the_apply_deadline(record, pids, package):
    step = _apply(record, pids, package, "dry-run-hang", KPT_CATALOG_APPLY_TIMEOUT="2")

    assert step.code == 1
    assert _summary(step.stderr)[0] == (
        "[headscale] apply failed (hard deadline exceeded): kpt live apply --dry-run exceeded "
        "its hard deadline of 2s and was killed"
    )
    assert step.elapsed < 15
    assert_all_dead(pids)


def test_a_malformed_allow_list_exits_2_naming_the_variable(record, pids, package):
    step = _apply(record, pids, package, "success", KPT_CATALOG_ALLOW_PRUNE='["Namespace", 3]')

    assert step.code == 2
    assert (
        "[headscale] apply: malformed environment: KPT_CATALOG_ALLOW_PRUNE must be a JSON list of "
        "Kind, Kind/name or Kind/namespace/name strings, got '[\"Namespace\", 3]'"
    ) in step.stderr
    assert calls(record) == []


def test_destroy_never_runs_the_prune_check(record, pids):
    step = run("destroy", destroy_env(record, pids, FAKE_KPT_SCENARIO="dry-run-prunes"))

    assert step.code == 0, step.stderr
    assert _ran(record) == ["kpt destroy"]
    assert "prune check" not in step.stderr


def test_the_real_kpt_against_an_unreachable_cluster_is_a_clear_failure(
    record, pids, package, tmp_path
):
    """The real kpt says "The ResourceGroup CRD was not found" for a closed port too: the guard
    must not take that for "nothing deployed yet" and let the apply through."""
    tools = real_tools_env(record, pids, tmp_path, "--kubeconfig")
    step = run("apply", {**apply_env(record, pids, package), **tools})

    assert step.code == 1
    assert calls(record) == []  # the real tools ran, not the stand-ins
    summary = _summary(step.stderr)
    assert summary[0].startswith(
        "[headscale] apply failed (cluster unreachable or misconfigured): kpt live apply "
        "--dry-run found no ResourceGroup CRD, and kubectl get crd resourcegroups.kpt.dev "
        "exited 1"
    )
    assert (
        "[headscale]   kubectl: The connection to the server 127.0.0.1:1 was refused - did you "
        "specify the right host or port?"
    ) in summary
    assert "kpt live apply exited" not in step.stderr  # the apply itself never started
    assert step.result["failure"] == "cluster unreachable or misconfigured"


# --- allowPrune in packages.yaml ---------------------------------------------------------------


def _headscale(config: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in config["packages"] if p["name"] == "headscale")


def test_allow_prune_reaches_that_packages_apply_only(dev_config: dict[str, Any]) -> None:
    _headscale(dev_config)["allowPrune"] = ["Namespace/legacy", "PersistentVolumeClaim"]
    run = run_program(dev_config)

    environments = {
        r.name: r.inputs["environment"] for r in run.registrations if "environment" in r.inputs
    }
    having = {name for name, env in environments.items() if "KPT_CATALOG_ALLOW_PRUNE" in env}
    assert having == {"headscale-apply"}
    assert json.loads(environments["headscale-apply"]["KPT_CATALOG_ALLOW_PRUNE"]) == [
        "Namespace/legacy",
        "PersistentVolumeClaim",
    ]


@pytest.mark.parametrize(
    "entry",
    [
        "ConfigMap",  # not a kind the guard holds back
        "Namespace/headscale/extra",  # a Namespace has no namespace
        "CustomResourceDefinition/a/b",
        "PersistentVolumeClaim/data",  # a PVC has one
        "persistentvolumeclaim",
        "Namespace/",
        "",
        3,
    ],
)
def test_a_bad_allow_prune_entry_is_named_with_the_shapes_expected(
    dev_config: dict[str, Any], entry: object
) -> None:
    _headscale(dev_config)["allowPrune"] = ["Namespace", entry]
    index = dev_config["packages"].index(_headscale(dev_config))
    run = run_program(dev_config, raise_errors=False)

    assert isinstance(run.error, ConfigError), run.error
    assert (
        f"packages[{index}].allowPrune[1]: expected Kind, Kind/name (CustomResourceDefinition, "
        "Namespace) or Kind/namespace/name (PersistentVolumeClaim), the Kind one of "
        "CustomResourceDefinition, Namespace, PersistentVolumeClaim, found " + repr(entry)
    ) in run.error.problems
