"""End to end: the first `up` on a cluster the bash loop built takes it over and changes nothing.

Like `test_e2e.py` (whose helpers it uses), it runs only with `make e2e` against a throwaway
cluster, and skips otherwise saying what is missing. It deploys the stand-in catalog the way the
bash loop does, package by package with `kpt live apply`, the operator's Secret by hand with
`kubectl create secret` and the Connector with `kubectl apply -f`; then a fresh stack's first
`up` must only record what runs (creates, never a delete or a replacement), leave every object
as it was (same uid, same spec), and a second preview must find nothing to do.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pulumi import automation as auto

from tests.e2e.catalog_config import CONNECTOR_CRD, E2E_CATALOG, PACKAGES, e2e_config
from tests.e2e.test_e2e import (
    CONNECTOR,
    E2E,
    OAUTH,
    REQUIRED,
    Cluster,
    KubeObject,
    _assert_no_failed_steps,
    _run,
    _single_kubeconfig,
    _tear_down,
    catalog_objects,
    missing_requirements,
)
from tests.e2e.timeline import Timeline, op_counts
from tests.harness import PROJECT, ROOT, run_program

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

BASH_RECONCILE = "2m"


def _by_hand(cluster: Cluster, catalog: Path) -> None:
    """The bash loop: each package in the documented order with `kpt live apply`, the
    operator's Secret created by hand once kpt made its namespace, the Connector with kubectl."""
    access = ["--context", cluster.context]
    if cluster.kubeconfig:
        access += ["--kubeconfig", cluster.kubeconfig]

    def kubectl(*args: str) -> None:
        result = cluster.kubectl(*args)
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"

    for package in PACKAGES:
        argv = ["kpt", "live", "apply", str(catalog / package["path"]), *access]
        if package.get("serverSide", False):
            argv.append("--server-side")
        if package["name"] != "tailscale":
            result = _run([*argv, f"--reconcile-timeout={BASH_RECONCILE}"], timeout=600)
            assert result.returncode == 0, result.stderr
            continue
        # The operator cannot start before its Secret exists: apply without waiting (kpt exits 3
        # on the reconcile timeout), add the Secret by hand, then wait, as the bash loop's user did.
        result = _run([*argv, "--reconcile-timeout=1s"], timeout=300)
        assert result.returncode in (0, 3), result.stderr
        kubectl(
            *("create", "secret", "generic", "operator-oauth", "-n", "tailscale-system"),
            f"--from-literal=client_id={OAUTH['tailscaleOauthClientId']}",
            f"--from-literal=client_secret={OAUTH['tailscaleOauthClientSecret']}",
        )
        kubectl(
            "rollout", "status", "deployment/operator", "-n", "tailscale-system", "--timeout=3m"
        )
        kubectl("wait", "--for=condition=Established", f"crd/{CONNECTOR_CRD}", "--timeout=1m")
        for manifest in package.get("manifests", []):
            connector = str(catalog / manifest["file"])
            kubectl("apply", "-f", connector)
            kubectl("wait", "--for=condition=ConnectorReady", "-f", connector, "--timeout=3m")


def _snapshot(cluster: Cluster, objects: list[KubeObject]) -> dict[str, tuple[str, str]]:
    """uid and spec of every object (and of the hand-made Secret)."""
    found: dict[str, tuple[str, str]] = {}
    for obj in objects:
        body = json.loads(cluster.get(obj, "-o", "json") or "{}")
        found[str(obj)] = (
            str((body.get("metadata") or {}).get("uid")),
            json.dumps(body.get("spec"), sort_keys=True),
        )
    secret = cluster.kubectl("get", "secret/operator-oauth", "-n", "tailscale-system", "-o", "json")
    body = json.loads(secret.stdout or "{}")
    found["tailscale-system/secret/operator-oauth"] = (
        str((body.get("metadata") or {}).get("uid")),
        json.dumps(body.get("data"), sort_keys=True),
    )
    return found


@pytest.fixture(scope="module")
def taken_over(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[E2E, dict[str, tuple[str, str]]]]:
    markexpr = str(request.config.getoption("markexpr") or "")
    reason = missing_requirements(markexpr)
    if reason and "e2e" in markexpr and os.environ.get(REQUIRED) == "1":
        pytest.fail(f"{REQUIRED}=1, but {reason}", pytrace=False)
    if reason:
        pytest.skip(reason)
    kubeconfig = _single_kubeconfig()
    context = _run(["kubectl", "config", "current-context"], timeout=30).stdout.strip()
    cluster = Cluster(context=context, kubeconfig=kubeconfig)
    work = tmp_path_factory.mktemp("takeover")
    catalog = work / "catalog"
    shutil.copytree(E2E_CATALOG, catalog)
    objects = catalog_objects(catalog)
    leftovers = cluster.existing(objects)
    assert not leftovers, f"the cluster already holds objects of the e2e catalog: {leftovers}"
    backend = work / "backend"
    backend.mkdir()
    name = f"e2e-takeover-{secrets.token_hex(4)}"
    config = e2e_config(catalog, kubeconfig=kubeconfig, context=context)
    expected = run_program(config, stack=name, secrets=OAUTH)
    env = {
        "PULUMI_BACKEND_URL": backend.as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": "",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }
    stack_file = ROOT / f"Pulumi.{name}.yaml"
    state: E2E | None = None
    problems: list[str] = []
    try:
        _by_hand(cluster, catalog)
        before = _snapshot(cluster, objects)
        stack = auto.create_stack(
            name, work_dir=str(ROOT), opts=auto.LocalWorkspaceOptions(env_vars=env)
        )
        state = E2E(stack, env, catalog, cluster, expected, objects)
        stack.set_all_config(
            {
                f"{PROJECT}:{key}": auto.ConfigValue(
                    value if isinstance(value, str) else json.dumps(value)
                )
                for key, value in config.items()
            }
            | {f"{PROJECT}:{k}": auto.ConfigValue(v, secret=True) for k, v in OAUTH.items()}
        )
        yield state, before
    finally:
        if state is not None:
            problems = _tear_down(state, backend.as_uri())
        stack_file.unlink(missing_ok=True)
    assert not problems, "tearing the takeover stack down failed:\n" + "\n".join(problems)


def test_the_first_up_takes_the_bash_built_cluster_over_and_changes_nothing(
    taken_over: tuple[E2E, dict[str, tuple[str, str]]],
) -> None:
    state, before = taken_over

    planned = Timeline()
    preview = state.stack.preview(on_event=planned.record, on_output=print, color="never")
    assert set(op_counts(preview.change_summary)) == {"create"}, preview.change_summary

    timeline = Timeline()
    result = state.stack.up(on_event=timeline.record, on_output=print, color="never")
    _assert_no_failed_steps(timeline)
    # Only records: the engine created no object anew, deleted and replaced nothing.
    assert set(op_counts(result.summary.resource_changes)) == {"create"}
    assert CONNECTOR in timeline.names("create")

    after = _snapshot(state.cluster, state.objects)
    changed = sorted(key for key in before if before[key] != after.get(key))
    assert changed == [], f"changed by the takeover (uid or spec): {changed}"


def test_after_the_takeover_nothing_is_left_to_do(
    taken_over: tuple[E2E, dict[str, tuple[str, str]]],
) -> None:
    state, _before = taken_over

    preview = state.stack.preview(on_output=print, color="never")

    assert set(op_counts(preview.change_summary)) == {"same"}, preview.change_summary
