"""The step runner as Pulumi's Commands run it: `python3 components/kptstep.py <sub-command>`.

kpt and kubectl are the stand-ins in tests/fakebin (first on PATH), which print what the real
binaries print and record how they were called; one test runs the real kpt against a closed port.
Assertions are on what a user sees: the exit status, the progress and summary lines on stderr and
the `kpt-catalog-result:` line.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import kptstep
from components.step import commands, events, process, waits

ROOT = Path(__file__).resolve().parent.parent
FAKEBIN = ROOT / "tests" / "fakebin"
STEP = ROOT / "components" / "kptstep.py"
DEPLOYMENT = "apps/Deployment headscale/headscale"

PACKAGE_FILES = {
    "a-namespace.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: headscale\n",
    "b-service.yaml": (
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: headscale\n  namespace: headscale\n"
        "spec:\n  type: LoadBalancer\n"
    ),
    # Last in the package: the object the fake's failure scenarios pick on.
    "c-deployment.yaml": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: headscale\n"
        "  namespace: headscale\nspec:\n  template:\n    metadata:\n      name: not-this\n"
    ),
    "resourcegroup.yaml": (
        "apiVersion: kpt.dev/v1alpha1\nkind: ResourceGroup\nmetadata:\n"
        "  name: inventory-headscale\n  namespace: headscale\n  labels:\n"
        "    cli-utils.sigs.k8s.io/inventory-id: 6f0c0a52-headscale\n"
    ),
}


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A package whose path a shell would mangle: spaces, quotes and a command substitution."""
    directory = tmp_path / "cat alog" / 'it\'s "headscale" $(touch pwned)'
    directory.mkdir(parents=True)
    for name, text in PACKAGE_FILES.items():
        (directory / name).write_text(text)
    return directory


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The steps' logs go under the test's own directory."""
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


@pytest.fixture
def record(tmp_path: Path) -> Path:
    return tmp_path / "record.jsonl"


@pytest.fixture
def pids(tmp_path: Path):
    """Where the hanging fakes write their pids; whatever a failed test left alive is killed."""
    path = tmp_path / "pids"
    yield path
    if path.exists():
        for pid in (int(line) for line in path.read_text().split()):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def base_env(record: Path, pids: Path, *, fakes: bool = True) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KPT_CATALOG_", "FAKE_")) and k != "KUBECONFIG"
    }
    if fakes:
        env["PATH"] = f"{FAKEBIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        {"FAKE_RECORD": str(record), "FAKE_PIDS": str(pids), "KPT_CATALOG_PACKAGE": "headscale"}
    )
    return env


def apply_env(record: Path, pids: Path, package: Path, **extra: str) -> dict[str, str]:
    return {
        **base_env(record, pids),
        "KPT_CATALOG_DIR": str(package),
        "KPT_CATALOG_RECONCILE_TIMEOUT": "60",
        "KPT_CATALOG_APPLY_TIMEOUT": "120",
        "KPT_CATALOG_SERVER_SIDE": "false",
        "KPT_CATALOG_INVENTORY_NAME": "inventory-headscale",
        "KPT_CATALOG_INVENTORY_NAMESPACE": "headscale",
        "KPT_CATALOG_INVENTORY_ID": "6f0c0a52-headscale",
        "KPT_CATALOG_KUBECONFIG": "",
        "KPT_CATALOG_CONTEXT": "",
        "KPT_CATALOG_DIGEST": "sha256:0",
        "KPT_CATALOG_GENERATION": "1",
        **extra,
    }


def destroy_env(record: Path, pids: Path, **extra: str) -> dict[str, str]:
    return {
        **base_env(record, pids),
        "KPT_CATALOG_INVENTORY_NAME": "inventory-headscale",
        "KPT_CATALOG_INVENTORY_NAMESPACE": "headscale",
        "KPT_CATALOG_INVENTORY_ID": "6f0c0a52-headscale",
        "KPT_CATALOG_DESTROY_TIMEOUT": "120",
        **extra,
    }


WAITS = [
    {
        "resource": "deployment/headscale",
        "for": "condition=Available",
        "namespace": "headscale",
        "selector": "",
        "timeout": 5,
        "report": "",
    },
    {
        "resource": "svc/headscale",
        "for": "jsonpath={.status.loadBalancer.ingress}",
        "namespace": "headscale",
        "selector": "",
        "timeout": 5,
        "report": "{.status.loadBalancer.ingress[0].ip}",
    },
    {
        "resource": "deployment/headscale-ui",
        "for": "rollout",
        "namespace": "",
        "selector": "",
        "timeout": 7,
        "report": "",
    },
]


def wait_env(
    record: Path, pids: Path, waits: list[dict[str, object]] = WAITS, **extra: str
) -> dict[str, str]:
    return {
        **base_env(record, pids),
        "KPT_CATALOG_PHASE": "wait-after",
        "KPT_CATALOG_WAITS": json.dumps(waits),
        "KPT_CATALOG_DIGEST": "sha256:0",
        "KPT_CATALOG_GENERATION": "1",
        **extra,
    }


class Step:
    """One finished run of the step runner."""

    def __init__(self, proc: subprocess.CompletedProcess[str], elapsed: float) -> None:
        self.code = proc.returncode
        self.stderr = proc.stderr
        self.stdout = proc.stdout
        self.elapsed = elapsed

    @property
    def result(self) -> dict[str, Any]:
        last = self.stdout.rstrip("\n").splitlines()[-1]
        assert last.startswith(kptstep.RESULT_PREFIX), self.stdout
        value = json.loads(last.removeprefix(kptstep.RESULT_PREFIX))
        assert isinstance(value, dict)
        return value


def run(sub: str, env: dict[str, str], timeout: float = 30) -> Step:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(STEP), sub],
        env=env,
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return Step(proc, time.monotonic() - start)


def calls(record: Path) -> list[dict[str, Any]]:
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]


def alive(pid: int) -> bool:
    """Whether the process still runs. A zombie does not: PID 1 in some containers never reaps
    the orphans it inherits, so a killed grandchild can stay behind as one."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state != "Z"


def assert_all_dead(pids: Path, expected: int = 2) -> None:
    listed = [int(line) for line in pids.read_text().split()]
    assert len(listed) == expected, listed  # the fake and the child that ignores SIGTERM
    assert [pid for pid in listed if alive(pid)] == []


# --- apply -------------------------------------------------------------------------------------


def test_apply_runs_kpt_on_the_exact_path_and_reports_objects(record, pids, package, tmp_path):
    step = run("apply", apply_env(record, pids, package))

    assert step.code == 0, step.stderr
    assert f"[headscale] apply Successful  {DEPLOYMENT}\n" in step.stderr
    assert "[headscale] apply Successful  Namespace headscale\n" in step.stderr
    assert f"[headscale] status Current  {DEPLOYMENT}: Resource is current\n" in step.stderr
    assert step.result == {
        "package": "headscale",
        "step": "apply",
        "objects": 3,
        "pruned": 0,
        "ok": True,
    }
    assert step.stdout.count("\n") == 1  # only the result line goes to stdout
    dry_run, apply, status = calls(record)
    assert apply["argv"] == [
        "live",
        "apply",
        str(package),
        "--output=json",
        "--reconcile-timeout=60s",
        "--prune-timeout=60s",
    ]
    assert dry_run["argv"] == [*apply["argv"], "--dry-run"]  # the prune check comes first
    assert status["argv"] == [
        "live",
        "status",
        str(package),
        "--output=json",
        "--poll-until=current",
        "--timeout=60s",
    ]
    assert set(apply["dir_files"]) == set(PACKAGE_FILES)
    assert not list(tmp_path.rglob("pwned"))


def test_apply_passes_server_side_kubeconfig_and_context(record, pids, package):
    env = apply_env(
        record,
        pids,
        package,
        KPT_CATALOG_SERVER_SIDE="true",
        KPT_CATALOG_KUBECONFIG="/home/me/kube config",
        KPT_CATALOG_CONTEXT="lab",
    )

    assert run("apply", env).code == 0
    dry_run, apply, status = (call["argv"] for call in calls(record))
    assert dry_run == [*apply, "--dry-run"]
    assert apply[-5:] == [
        "--server-side",
        "--kubeconfig",
        "/home/me/kube config",
        "--context",
        "lab",
    ]
    assert status[-4:] == ["--kubeconfig", "/home/me/kube config", "--context", "lab"]
    assert "--server-side" not in status


@pytest.mark.parametrize(
    ("scenario", "kind", "named"),
    [
        (
            "skipped",
            "objects skipped",
            f"apply Skipped  {DEPLOYMENT}: inventory policy "
            "prevented actuation (strategy: Apply, status: NoMatch, policy: MustMatch)",
        ),
        (
            "apply-failed",
            "apply or reconcile failure",
            f'apply Failed  {DEPLOYMENT}: Deployment.apps "headscale" is invalid',
        ),
        (
            "old-events-failed",
            "apply or reconcile failure",
            f'apply Failed  {DEPLOYMENT}: Deployment.apps "headscale" is invalid',
        ),
        ("reconcile-timeout", "reconcile timeout", f"wait Timeout  {DEPLOYMENT}"),
        (
            "unreachable",
            "cluster unreachable or misconfigured",
            "The connection to the server 127.0.0.1:6443 was refused - did you specify the right "
            "host or port?",
        ),
        (
            "status-timeout",
            "objects not Current",
            f"status InProgress  {DEPLOYMENT}: Deployment "
            "generation is 2, but latest observed generation is 1",
        ),
        (
            "status-no-inventory",
            "no objects in the inventory",
            "no resources found in the inventory",
        ),
    ],
)
def test_apply_fails_naming_the_objects_and_the_kind(record, pids, package, scenario, kind, named):
    step = run("apply", apply_env(record, pids, package, FAKE_KPT_SCENARIO=scenario))

    assert step.code == 1
    headline = next(line for line in step.stderr.splitlines() if " failed (" in line)
    assert headline.startswith(f"[headscale] apply failed ({kind}): ")
    summary = step.stderr[step.stderr.index(headline) :]
    assert named in summary
    assert "Namespace headscale" not in summary  # objects that succeeded are not named
    assert "factory.go" not in step.stderr  # klog noise stays hidden
    assert step.result == {"package": "headscale", "step": "apply", "ok": False, "failure": kind}


def test_apply_skipped_names_each_object_once(record, pids, package):
    step = run("apply", apply_env(record, pids, package, FAKE_KPT_SCENARIO="skipped"))

    assert "kpt live apply exited 0 but skipped 1 object(s)" in step.stderr
    # The skipped apply also shows up as a skipped wait; the summary names the object once.
    assert step.stderr.count(f"[headscale]   apply Skipped  {DEPLOYMENT}") == 1
    assert f"[headscale]   wait Skipped  {DEPLOYMENT}" not in step.stderr


@pytest.mark.parametrize("scenario", ["noise", "old-events"])
def test_apply_tolerates_noise_and_old_event_shapes(record, pids, package, scenario):
    step = run("apply", apply_env(record, pids, package, FAKE_KPT_SCENARIO=scenario))

    assert step.code == 0, step.stderr
    assert f"[headscale] wait Successful  {DEPLOYMENT}\n" in step.stderr
    assert step.result["objects"] == 3
    if scenario == "noise":
        assert "[headscale] kpt: [WARN] resolved symlink" in step.stderr
        assert "I0101" not in step.stderr


def test_apply_without_the_package_directory_names_package_and_path(record, pids, tmp_path):
    missing = tmp_path / "catalog" / "mesh" / "headscale"
    step = run("apply", apply_env(record, pids, missing))

    assert step.code == 1
    assert (
        f"[headscale] apply failed (package directory missing): package directory "
        f"{missing} does not exist (KPT_CATALOG_DIR)"
    ) in step.stderr
    assert calls(record) == []


def test_apply_that_hangs_is_killed_with_everything_it_started(record, pids, package):
    env = apply_env(record, pids, package, FAKE_KPT_SCENARIO="hang", KPT_CATALOG_APPLY_TIMEOUT="2")
    step = run("apply", env)

    assert step.code == 1
    assert (
        "[headscale] apply failed (hard deadline exceeded): kpt live apply exceeded its "
        "hard deadline of 2s and was killed"
    ) in step.stderr
    assert f"[headscale]   still wait Pending  {DEPLOYMENT}" in step.stderr
    # 2s deadline, then SIGTERM, then SIGKILL after the grace for the child that ignores it.
    assert 2 <= step.elapsed < 2 + process.KILL_GRACE_SECONDS + 3
    assert_all_dead(pids)
    assert step.result["failure"] == "hard deadline exceeded"


def test_sigterm_to_the_step_is_forwarded_to_the_process_group(record, pids, package):
    env = apply_env(record, pids, package, FAKE_KPT_SCENARIO="hang")
    proc = subprocess.Popen(
        [sys.executable, str(STEP), "apply"],
        env=env,
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    give_up = time.monotonic() + 10
    while time.monotonic() < give_up and len(pids.read_text().split() if pids.exists() else []) < 2:
        time.sleep(0.05)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=15)

    assert proc.returncode == 1
    assert time.monotonic() - started < process.KILL_GRACE_SECONDS + 3
    assert (
        "[headscale] apply failed (interrupted): received SIGTERM; stopped kpt live apply "
        "and its process group"
    ) in stderr
    assert '"failure": "interrupted"' in stdout
    assert_all_dead(pids)


# --- destroy -----------------------------------------------------------------------------------


def test_destroy_needs_only_the_inventory(record, pids, package):
    shutil.rmtree(package)
    odd_id = 'id "with" quotes: a # and \\ backslash'
    env = destroy_env(
        record,
        pids,
        KPT_CATALOG_DIR=str(package),
        KPT_CATALOG_INVENTORY_ID=odd_id,
        KPT_CATALOG_KUBECONFIG="/k/config",
        KPT_CATALOG_CONTEXT="",
    )
    step = run("destroy", env)

    assert step.code == 0, step.stderr
    assert f"[headscale] delete Successful  {DEPLOYMENT}\n" in step.stderr
    assert step.result == {"package": "headscale", "step": "destroy", "objects": 4, "ok": True}
    (destroy,) = calls(record)
    workdir = destroy["argv"][2]
    assert destroy["argv"] == [
        "live",
        "destroy",
        workdir,
        "--output=json",
        "--kubeconfig",
        "/k/config",
    ]
    assert list(destroy["dir_files"]) == ["resourcegroup.yaml"]
    inventory = yaml.safe_load(destroy["dir_files"]["resourcegroup.yaml"])
    assert inventory == {
        "apiVersion": "kpt.dev/v1alpha1",
        "kind": "ResourceGroup",
        "metadata": {
            "name": "inventory-headscale",
            "namespace": "headscale",
            "labels": {"cli-utils.sigs.k8s.io/inventory-id": odd_id},
        },
    }
    assert not Path(workdir).exists()


def test_destroy_fails_when_kpt_skips_a_delete(record, pids):
    step = run("destroy", destroy_env(record, pids, FAKE_KPT_SCENARIO="destroy-skipped"))

    assert step.code == 1
    assert (
        "[headscale] destroy failed (objects skipped): kpt live destroy exited 0 but "
        "skipped 1 object(s)"
    ) in step.stderr
    assert "[headscale]   delete Skipped  Namespace headscale: inventory policy" in step.stderr
    assert step.result["failure"] == "objects skipped"


def test_destroy_that_hangs_is_killed_and_cleans_up(record, pids):
    step = run(
        "destroy",
        destroy_env(
            record, pids, FAKE_KPT_SCENARIO="destroy-hang", KPT_CATALOG_DESTROY_TIMEOUT="2"
        ),
    )

    assert step.code == 1
    assert (
        "[headscale] destroy failed (hard deadline exceeded): kpt live destroy exceeded its "
        "hard deadline of 2s and was killed"
    ) in step.stderr
    assert step.elapsed < 2 + process.KILL_GRACE_SECONDS + 3
    assert_all_dead(pids)
    (destroy,) = calls(record)
    assert not Path(destroy["argv"][2]).exists()


CLOSED_PORT_KUBECONFIG = (
    "apiVersion: v1\nkind: Config\ncurrent-context: nowhere\n"
    "clusters:\n- name: closed\n  cluster:\n    server: https://127.0.0.1:1\n"
    "contexts:\n- name: nowhere\n  context:\n    cluster: closed\n    user: nobody\n"
    "users:\n- name: nobody\n  user:\n    token: none\n"
)


def real_tools_env(record, pids, tmp_path, how: str) -> dict[str, str]:
    """The environment without the fakes, with a kubeconfig for a closed port, given to the
    tools as $KUBECONFIG or through KPT_CATALOG_KUBECONFIG (--kubeconfig)."""
    for tool in ("kpt", "kubectl"):
        if shutil.which(tool) is None:
            pytest.skip(f"the real {tool} is not on PATH")
    kubeconfig = tmp_path / "kube config"
    kubeconfig.write_text(CLOSED_PORT_KUBECONFIG)
    env = base_env(record, pids, fakes=False)
    env["KUBECONFIG" if how == "KUBECONFIG" else "KPT_CATALOG_KUBECONFIG"] = str(kubeconfig)
    return env


@pytest.mark.parametrize("how", ["KUBECONFIG", "--kubeconfig"])
def test_destroy_with_the_real_kpt_reports_an_unreachable_cluster(record, pids, tmp_path, how):
    env = {
        **destroy_env(record, pids, KPT_CATALOG_DESTROY_TIMEOUT="60"),
        **real_tools_env(record, pids, tmp_path, how),
    }
    step = run("destroy", env)

    assert step.code == 1
    assert calls(record) == []  # the real kpt ran, not the fake
    assert (
        "[headscale] destroy failed (cluster unreachable or misconfigured): kpt live "
        "destroy exited 1"
    ) in step.stderr
    # kpt parsed the generated ResourceGroup and got as far as asking the cluster for it.
    assert (
        "  kpt error: failed to read inventory from cluster: failed to read inventory "
        'objects from cluster: Get "https://127.0.0.1:1/api?timeout=32s": dial tcp '
        "127.0.0.1:1: connect: connection refused"
    ) in step.stderr
    assert "factory.go" not in step.stderr
    assert step.result["failure"] == "cluster unreachable or misconfigured"


def test_apply_and_wait_with_the_real_tools_get_as_far_as_the_cluster(
    record, pids, package, tmp_path
):
    """The real kpt and kubectl accept every flag the steps pass: they fail on the connection."""
    tools = real_tools_env(record, pids, tmp_path, "--kubeconfig")
    apply = run("apply", {**apply_env(record, pids, package), **tools})
    wait = run("wait", {**wait_env(record, pids), **tools})

    assert apply.code == 1
    # The prune check's dry run (the apply's own flags plus --dry-run) is as far as it gets.
    assert (
        "apply failed (cluster unreachable or misconfigured): kpt live apply --dry-run found no "
        "ResourceGroup CRD, and kubectl get crd resourcegroups.kpt.dev exited 1"
    ) in apply.stderr
    assert (
        "[headscale]   kubectl: The connection to the server 127.0.0.1:1 was refused - did "
        "you specify the right host or port?"
    ) in apply.stderr
    assert wait.code == 1
    assert (
        "wait-after failed (wait failed): deployment/headscale for condition=Available in "
        "namespace headscale (kubectl wait exited 1)"
    ) in wait.stderr
    assert (
        "[headscale]   kubectl: The connection to the server 127.0.0.1:1 was refused - did "
        "you specify the right host or port?"
    ) in wait.stderr
    for step in (apply, wait):
        assert "unknown flag" not in step.stderr
        assert "memcache.go" not in step.stderr


# --- wait --------------------------------------------------------------------------------------


def test_wait_runs_each_wait_in_order_and_reports(record, pids):
    env = wait_env(record, pids, FAKE_KUBECTL_VALUE="10.80.8.130", KPT_CATALOG_CONTEXT="lab")
    step = run("wait", env)

    assert step.code == 0, step.stderr
    assert [call["argv"] for call in calls(record)] == [
        [
            "wait",
            "deployment/headscale",
            "--for=condition=Available",
            "--timeout=5s",
            "-n",
            "headscale",
            "--context",
            "lab",
        ],
        [
            "wait",
            "svc/headscale",
            "--for=jsonpath={.status.loadBalancer.ingress}",
            "--timeout=5s",
            "-n",
            "headscale",
            "--context",
            "lab",
        ],
        [
            "get",
            "svc/headscale",
            "-n",
            "headscale",
            "--context",
            "lab",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ],
        ["rollout", "status", "deployment/headscale-ui", "--timeout=7s", "--context", "lab"],
    ]
    assert "[headscale] kubectl: deployment/headscale condition met\n" in step.stderr
    assert step.result == {
        "package": "headscale",
        "step": "wait-after",
        "reports": {"headscale/svc/headscale": "10.80.8.130"},
        "ok": True,
    }


def test_wait_failure_names_the_wait_phase_and_kubectl_message(record, pids):
    step = run("wait", wait_env(record, pids, FAKE_KUBECTL_SCENARIO="wait-fail"))

    assert step.code == 1
    assert (
        "[headscale] wait-after failed (wait failed): deployment/headscale for "
        "condition=Available in namespace headscale (kubectl wait exited 1)"
    ) in step.stderr
    assert (
        "[headscale]   kubectl: error: timed out waiting for the condition on deployments/headscale"
    ) in step.stderr
    assert len(calls(record)) == 1  # later waits do not run
    assert step.result == {
        "package": "headscale",
        "step": "wait-after",
        "ok": False,
        "failure": "wait failed",
    }


def test_wait_that_hangs_is_killed(record, pids, monkeypatch, capsys):
    # In-process, to shorten the 30s a wait may run past its own timeout.
    monkeypatch.setattr(waits, "WAIT_MARGIN", 1)
    for name, value in wait_env(
        record, pids, waits=WAITS[:1], FAKE_KUBECTL_SCENARIO="hang"
    ).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KPT_CATALOG_WAITS", json.dumps([{**WAITS[0], "timeout": 1}]))
    started = time.monotonic()
    code = commands.run_wait(os.environ)

    assert code == 1
    assert time.monotonic() - started < 2 + process.KILL_GRACE_SECONDS + 3
    err = capsys.readouterr().err
    assert (
        "[headscale] wait-after failed (hard deadline exceeded): kubectl wait "
        "deployment/headscale exceeded its hard deadline of 2s and was killed (waiting for "
        "deployment/headscale for condition=Available in namespace headscale)"
    ) in err
    assert_all_dead(pids)


# --- status ------------------------------------------------------------------------------------


def test_status_prints_healthy(record, pids, package):
    env = {**apply_env(record, pids, package), "KPT_CATALOG_WAITS": json.dumps(WAITS[:2])}
    step = run("status", env)

    assert step.code == 0, step.stderr
    assert "[headscale] healthy: 3 object(s) Current, 2 wait(s) met\n" in step.stderr
    assert [call["tool"] for call in calls(record)] == ["kpt", "kubectl", "kubectl", "kubectl"]
    assert step.result["reports"] == {"headscale/svc/headscale": "10.80.8.130"}


def test_status_names_what_is_not_healthy(record, pids, package):
    step = run("status", apply_env(record, pids, package, FAKE_KPT_SCENARIO="status-timeout"))

    assert step.code == 1
    assert (
        "[headscale] status failed (objects not Current): 1 of 3 object(s) not Current after 60s"
    ) in step.stderr
    assert "healthy" not in step.stderr
    assert [call["argv"][1] for call in calls(record)] == ["status"]  # nothing was applied


# --- malformed environment ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sub", "change", "message"),
    [
        (
            "apply",
            {"KPT_CATALOG_RECONCILE_TIMEOUT": "abc"},
            "KPT_CATALOG_RECONCILE_TIMEOUT must be a whole number of seconds from 1 to "
            "10000000, got 'abc'",
        ),
        (
            "apply",
            {"KPT_CATALOG_SERVER_SIDE": "yes"},
            "KPT_CATALOG_SERVER_SIDE must be true or false, got 'yes'",
        ),
        (
            "apply",
            {"KPT_CATALOG_DIR": ""},
            "KPT_CATALOG_DIR is missing or empty; expected the package directory",
        ),
        (
            "apply",
            {"KPT_CATALOG_APPLY_TIMEOUT": None},
            "KPT_CATALOG_APPLY_TIMEOUT is missing or empty; expected a whole number of seconds",
        ),
        (
            "destroy",
            {"KPT_CATALOG_INVENTORY_ID": ""},
            "KPT_CATALOG_INVENTORY_ID is missing or empty; expected the package's inventory id",
        ),
        (
            "wait",
            {"KPT_CATALOG_WAITS": json.dumps([{**WAITS[0], "timeout": "5"}])},
            "KPT_CATALOG_WAITS[0].timeout must be a whole number of seconds from 1 to "
            "10000000, got '5'",
        ),
        ("wait", {"KPT_CATALOG_WAITS": "[{"}, "KPT_CATALOG_WAITS is not valid JSON"),
        (
            "wait",
            {"KPT_CATALOG_PHASE": "after"},
            "KPT_CATALOG_PHASE must be one of wait-before, wait-after, wait-namespace, got 'after'",
        ),
    ],
)
def test_malformed_environment_exits_2_naming_the_variable(
    record, pids, package, sub, change, message
):
    env = {
        **apply_env(record, pids, package),
        **destroy_env(record, pids),
        **wait_env(record, pids),
    }
    for name, value in change.items():
        if value is None:
            del env[name]
        else:
            env[name] = value
    step = run(sub, env)

    assert step.code == 2
    assert f"[headscale] {sub}: malformed environment: {message}" in step.stderr
    assert calls(record) == []
    step_name = env.get("KPT_CATALOG_PHASE", "") if sub == "wait" else sub
    assert step.stdout.splitlines() == [
        "kpt-catalog-result: "
        + json.dumps(
            {
                "package": "headscale",
                "step": step_name,
                "ok": False,
                "failure": "malformed environment",
            }
        )
    ]


# --- the parts the program and kpt-catalog status import ---------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("[WARN] resolved symlink", None),
        ("no resources found in the inventory", None),
        ("", None),
        ("{not json", None),
        (
            '{"group":"apps","kind":"Deployment","name":"x","namespace":"ns","status":"Failed",'
            '"error":"boom","type":"apply"}',
            events.Event(
                "apply", "Failed", events.ObjectRef("apps", "Deployment", "ns", "x"), error="boom"
            ),
        ),
        (
            '{"type":"apply","eventType":"resourceFailed","group":"","kind":"Service",'
            '"name":"x","namespace":"ns","error":"boom"}',
            events.Event(
                "apply", "Failed", events.ObjectRef("", "Service", "ns", "x"), error="boom"
            ),
        ),
        (
            '{"type":"prune","eventType":"resourcePruned","operation":"PruneSkipped","group":"",'
            '"kind":"Service","name":"x","namespace":"ns"}',
            events.Event("prune", "Skipped", events.ObjectRef("", "Service", "ns", "x")),
        ),
        (
            '{"type":"wait","eventType":"resourceReconciled","operation":"Timeout","group":"",'
            '"kind":"Service","name":"x","namespace":"ns"}',
            events.Event("wait", "Timeout", events.ObjectRef("", "Service", "ns", "x")),
        ),
        (
            '{"action":"Wait","count":2,"successful":1,"skipped":0,"failed":0,"timeout":1,'
            '"type":"summary"}',
            events.Event("summary", action="wait", count=2, successful=1, timeout=1),
        ),
    ],
)
def test_parse_event_reads_both_shapes_and_ignores_the_rest(line, expected):
    assert events.parse_event(line) == expected


def test_step_commands_are_the_contracts_fixed_strings():
    assert kptstep.step_command("apply") == "python3 components/kptstep.py apply"
    assert kptstep.step_command("destroy") == "python3 components/kptstep.py destroy"
    assert kptstep.step_command("wait") == "python3 components/kptstep.py wait"
    contract = (ROOT / "docs" / "step-contract.md").read_text()
    for name in kptstep.ENV_VARS:
        assert f"`{name}`" in contract
