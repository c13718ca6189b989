"""End to end: the real Pulumi engine deploys, updates and rolls back the stand-in catalog.

Runs only when selected (`make e2e`, i.e. `pytest -m e2e tests/e2e`) with the Pulumi CLI, kpt and
kubectl on PATH and a throwaway cluster (kind or k3d) in KUBECONFIG; otherwise every test here
skips, saying what is missing and where to get it. It drives `__main__.py` through the Automation
API with a local file backend and an empty passphrase, on a stack of its own (`e2e-<random>`)
whose config is `catalog_config.e2e_config` over a private copy of `tests/e2e/catalog/`.

The tests are the steps of one deployment and share its stack; they run in file order and, once
one fails, the later ones skip. Whatever happens, the stack is torn down at the end: unprotect,
destroy, `pulumi stack rm`, and `Pulumi.<stack>.yaml` deleted from the project directory.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from pulumi import automation as auto

from components.scan import scan_package
from tests.e2e.catalog_config import (
    CONNECTOR_FINALIZER,
    E2E_CATALOG,
    EDITED_PACKAGE,
    PACKAGES,
    e2e_config,
)
from tests.e2e.timeline import DONE, FAILED, PRE, Timeline, op_counts
from tests.harness import PROJECT, ROOT, ProgramRun, run_program

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

COMPONENT_TYPE = "kpt-catalog:index:KptPackage"
CONNECTOR = "tailscale-connector-cluster-subnet-router"
"""The Pulumi name of the native Connector (`<package>-<kind>-<name>`)."""
CREATE, UPDATE, DELETE = ("create",), ("update",), ("delete",)
# Context names of the throwaway clusters kind and k3d create; anything else needs an opt-in.
THROWAWAY_CONTEXTS = ("kind-", "k3d-")
ALLOW_CONTEXT = "KPT_CATALOG_E2E_CONTEXT"
# Set by CI: there a missing requirement is a failure, not a skip that would pass for a success.
REQUIRED = "KPT_CATALOG_E2E_REQUIRED"
GET_A_CLUSTER = (
    "create a throwaway cluster with kind (https://kind.sigs.k8s.io: `kind create cluster`) "
    "or k3d (https://k3d.io: `k3d cluster create`)"
)
# The order in which a package's steps run (kpt_package.py); native objects come last.
STEP_RANK = {"inventory": -1, "wait-before": 0, "apply": 1, "wait-after": 2}
# What runs beside that chain rather than in it: the namespace gate and the Secrets run beside
# the apply, the restart after it (components/secrets.py); their order is checked on its own.
SECRET = "tailscale-secret-operator-oauth"  # noqa: S105 - a resource name
NAMESPACE_GATE = "tailscale-wait-namespace"
RESTART = "tailscale-restart-operator-oauth"
SIDE_STEPS = (SECRET, NAMESPACE_GATE, RESTART)
# The OAuth client the stack's secret config holds (made up: the stand-in operator only checks
# that its files are not empty); the takeover test creates the same by hand first.
OAUTH = {"tailscaleOauthClientId": "e2e-client-id", "tailscaleOauthClientSecret": "e2e-secret-1"}


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(nothing)"


def _single_kubeconfig() -> str:
    """One kubeconfig file for kpt, kubectl and the provider alike, as a stack names one:
    $KUBECONFIG when it names one file; kubectl's merge of a $KUBECONFIG list, flattened into a
    private file (the provider reads a list as kubeconfig contents); else ~/.kube/config."""
    value = os.environ.get("KUBECONFIG", "")
    if not value:
        return str(Path("~/.kube/config").expanduser())
    if os.pathsep not in value:
        return value
    merged = subprocess.run(
        ["kubectl", "config", "view", "--flatten"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    handle, path = tempfile.mkstemp(prefix="kpt-catalog-e2e-", suffix=".kubeconfig")
    with os.fdopen(handle, "w") as file:  # mkstemp: readable by this user only
        file.write(merged)
    return path


def _cluster_problem() -> str:
    """Why the cluster in KUBECONFIG cannot be used, or ""."""
    where = os.environ.get("KUBECONFIG") or "~/.kube/config"
    try:
        ready = _run(["kubectl", "get", "--raw=/readyz", "--request-timeout=5s"], timeout=30)
    except subprocess.TimeoutExpired:
        said = "no answer within 30s"
    else:
        said = "" if ready.returncode == 0 else _last_line(ready.stderr or ready.stdout)
    if said:
        return (
            f"no reachable Kubernetes cluster in KUBECONFIG ({where}): "
            f"`kubectl get --raw=/readyz` said: {said}; {GET_A_CLUSTER}"
        )
    context = _run(["kubectl", "config", "current-context"], timeout=30).stdout.strip()
    if not context.startswith(THROWAWAY_CONTEXTS) and os.environ.get(ALLOW_CONTEXT) != context:
        return (
            f"the current kubeconfig context {context!r} does not look like a throwaway cluster "
            "(kind-*, k3d-*): the test deploys into kube-system and deletes what it deployed; "
            f"{GET_A_CLUSTER}, or run with {ALLOW_CONTEXT}={context} to use this one"
        )
    return ""


def missing_requirements(markexpr: str) -> str:
    """Why the end-to-end test cannot run here ("" when it can), naming what to install."""
    if "e2e" not in markexpr:
        return (
            "end-to-end test against a real cluster: it runs only when selected, "
            "with `make e2e` (pytest -m e2e tests/e2e)"
        )
    missing = []
    if shutil.which("pulumi") is None:
        missing.append(
            "the Pulumi CLI is not on PATH: install it with `curl -fsSL https://get.pulumi.com | "
            "sh` (https://www.pulumi.com/docs/install/) and put ~/.pulumi/bin on PATH"
        )
    if shutil.which("kpt") is None:
        missing.append(
            "kpt is not on PATH: https://kpt.dev/installation/ (release v1.0.0-beta.56, asset "
            "kpt_linux_amd64)"
        )
    if shutil.which("kubectl") is None:
        missing.append("kubectl is not on PATH: https://kubernetes.io/docs/tasks/tools/")
    else:
        missing.append(_cluster_problem())
    if not (ROOT / "venv" / "bin" / "python").exists():
        missing.append(
            "the project's virtualenv ./venv, in which Pulumi runs the program (Pulumi.yaml), "
            "does not exist: run `make venv` (`make e2e` does)"
        )
    return "; ".join(problem for problem in missing if problem)


@dataclass(frozen=True)
class KubeObject:
    """An object the catalog deploys, as kubectl names it."""

    package: str
    kind: str
    group: str
    name: str
    namespace: str

    @property
    def ref(self) -> str:
        """`kind.group/name`: unambiguous even beside real Gateway API or Tailscale objects."""
        kind = self.kind.lower()
        return f"{kind}.{self.group}/{self.name}" if self.group else f"{kind}/{self.name}"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.ref}" if self.namespace else self.ref


def catalog_objects(catalog: Path) -> list[KubeObject]:
    """Every object the e2e stack deploys: each package's objects and inventory, and the
    Connector (under `tailscale`, whose manifest it is)."""
    found: list[KubeObject] = []

    def read(package: str, path: Path) -> None:
        for body in yaml.safe_load_all(path.read_text()):
            if not isinstance(body, dict):
                continue
            metadata = body.get("metadata") or {}
            annotations = metadata.get("annotations") or {}
            if annotations.get("config.kubernetes.io/local-config") == "true":
                continue
            found.append(
                KubeObject(
                    package=package,
                    kind=str(body["kind"]),
                    group=str(body["apiVersion"]).rpartition("/")[0],
                    name=str(metadata["name"]),
                    namespace=str(metadata.get("namespace") or ""),
                )
            )

    for package in PACKAGES:
        for path in sorted((catalog / package["path"]).glob("*.yaml")):
            read(package["name"], path)
        for manifest in package.get("manifests", []):
            read(package["name"], catalog / manifest["file"])
    return found


@dataclass(frozen=True)
class Cluster:
    """The cluster under test, reached the way the stack reaches it."""

    context: str
    kubeconfig: str
    """One kubeconfig file, or "" for kubectl's own lookup ($KUBECONFIG, ~/.kube/config)."""

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        access = ["--context", self.context]
        if self.kubeconfig:
            access += ["--kubeconfig", self.kubeconfig]
        return _run(["kubectl", *access, *args], timeout=120)

    def get(self, obj: KubeObject, *output: str) -> str | None:
        """`kubectl get` of `obj` (with `output` flags), or None when it does not exist."""
        namespace = ["-n", obj.namespace] if obj.namespace else []
        result = self.kubectl("get", obj.ref, *namespace, "--ignore-not-found", *output)
        if result.returncode != 0:
            if "doesn't have a resource type" in result.stderr:
                return None  # its CRD is gone, so is it
            raise AssertionError(f"kubectl get {obj} failed: {result.stderr.strip()}")
        return result.stdout if result.stdout.strip() else None

    def secret_data(self, namespace: str, name: str) -> dict[str, str]:
        """A Secret's data, decoded."""
        result = self.kubectl("get", f"secret/{name}", "-n", namespace, "-o", "json")
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout).get("data") or {}
        return {key: base64.b64decode(value).decode() for key, value in data.items()}

    def existing(self, objects: list[KubeObject]) -> list[str]:
        return [str(obj) for obj in objects if self.get(obj, "-o", "name") is not None]

    def absent(self, objects: list[KubeObject]) -> list[str]:
        return [str(obj) for obj in objects if self.get(obj, "-o", "name") is None]


@dataclass
class E2E:
    """The shared state of the steps: the stack, its catalog copy and what the program should
    register (the same config run under the SDK's mocks)."""

    stack: auto.Stack
    env: dict[str, str]
    catalog: Path
    cluster: Cluster
    expected: ProgramRun
    objects: list[KubeObject] = field(default_factory=list)
    failed: str = ""
    """The step that failed; the later ones skip."""
    unchanged: int = 0
    """How many resources the engine counts as `same` when nothing changed (step 3)."""

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        if self.failed:
            pytest.skip(f"an earlier step failed ({self.failed})")
        try:
            yield
        except BaseException:
            self.failed = what
            raise

    def chain(self, package: str) -> list[str]:
        """The package's resources in the order they deploy (gates, apply, native objects)."""
        names = [
            r.name
            for r in self.expected.registrations
            if r.parent.rpartition("::")[2] == package
            and r.type != COMPONENT_TYPE
            and r.name not in SIDE_STEPS
        ]
        return sorted(names, key=lambda n: STEP_RANK.get(n.removeprefix(f"{package}-"), 3))

    def resources(self, *, packages: list[str] | None = None) -> set[str]:
        """The custom resources of `packages` (default: all of them)."""
        wanted = packages if packages is not None else [p["name"] for p in PACKAGES]
        side = {name for name in SIDE_STEPS if name.partition("-")[0] in wanted}
        return {name for package in wanted for name in self.chain(package)} | side

    def commands_of(self, package: str) -> set[str]:
        """The package's Commands: every one carries the package digest in its environment."""
        return {
            r.name
            for r in self.expected.registrations
            if r.type == "command:local:Command"
            and r.inputs["environment"].get("KPT_CATALOG_PACKAGE") == package
        }

    def objects_of(self, *packages: str) -> list[KubeObject]:
        return [obj for obj in self.objects if obj.package in packages]

    def state_names(self) -> set[str]:
        """Names of what the stack's state holds, the stack and providers left out."""
        deployment = self.stack.export_stack().deployment or {}
        return {
            str(r["urn"]).rpartition("::")[2]
            for r in deployment.get("resources") or []
            if r["type"] != "pulumi:pulumi:Stack" and not r["type"].startswith("pulumi:providers:")
        }

    def has_protected(self) -> bool:
        deployment = self.stack.export_stack().deployment or {}
        return any(r.get("protect") for r in deployment.get("resources") or [])

    def unprotect_all(self) -> None:
        """`pulumi state unprotect --all` (what `make destroy-all` runs first): the Automation
        API has no call for it."""
        result = subprocess.run(
            [
                *("pulumi", "state", "unprotect", "--all", "--yes", "--non-interactive"),
                *("--stack", self.stack.name),
            ],
            cwd=ROOT,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, f"pulumi state unprotect --all: {result.stderr.strip()}"


def _assert_no_failed_steps(timeline: Timeline) -> None:
    failed = sorted(e.name for e in timeline.events if e.phase == FAILED)
    assert not failed, f"failed steps: {failed}; the engine reported: {timeline.describe()}"


def _tear_down(state: E2E, backend: str) -> list[str]:
    """Unprotect and destroy everything, then remove the stack; the problems, if any."""
    problems = []
    try:
        if state.has_protected():
            state.unprotect_all()
        state.stack.destroy(color="never", on_output=print)
    except (AssertionError, auto.CommandError) as error:
        problems.append(f"{error}")
        problems.append(
            f"stack {state.stack.name} keeps what it could not delete; destroy it with "
            f"`PULUMI_BACKEND_URL={backend} PULUMI_CONFIG_PASSPHRASE= pulumi destroy --stack "
            f"{state.stack.name} --cwd {ROOT}`, or delete the cluster"
        )
        return problems
    try:
        state.stack.workspace.remove_stack(state.stack.name)
    except auto.CommandError as error:
        problems.append(f"pulumi stack rm {state.stack.name}: {error}")
    return problems


@pytest.fixture(scope="module")
def e2e(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    markexpr = str(request.config.getoption("markexpr") or "")
    reason = missing_requirements(markexpr)
    if reason and "e2e" in markexpr and os.environ.get(REQUIRED) == "1":
        pytest.fail(f"{REQUIRED}=1, but {reason}", pytrace=False)
    if reason:
        pytest.skip(reason)
    kubeconfig = _single_kubeconfig()
    context = _run(["kubectl", "config", "current-context"], timeout=30).stdout.strip()
    cluster = Cluster(context=context, kubeconfig=kubeconfig)
    work = tmp_path_factory.mktemp("e2e")
    catalog = work / "catalog"
    shutil.copytree(E2E_CATALOG, catalog)  # step 4 edits a file: never the committed catalog
    backend = work / "backend"
    backend.mkdir()
    name = f"e2e-{secrets.token_hex(4)}"
    config = e2e_config(catalog, kubeconfig=kubeconfig, context=context)
    # The program's own validation, and the resources the engine should see, before any change.
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
        stack = auto.create_stack(
            name, work_dir=str(ROOT), opts=auto.LocalWorkspaceOptions(env_vars=env)
        )
        state = E2E(stack, env, catalog, cluster, expected, catalog_objects(catalog))
        stack.set_all_config(
            {
                f"{PROJECT}:{key}": auto.ConfigValue(
                    value if isinstance(value, str) else json.dumps(value)
                )
                for key, value in config.items()
            }
            | {
                f"{PROJECT}:{key}": auto.ConfigValue(value, secret=True)
                for key, value in OAUTH.items()
            }
        )
        yield state
    finally:
        if state is not None:
            problems = _tear_down(state, backend.as_uri())
        stack_file.unlink(missing_ok=True)
    assert not problems, "tearing the e2e stack down failed:\n" + "\n".join(problems)


def test_1_preview_on_an_empty_cluster_plans_every_resource(e2e: E2E) -> None:
    with e2e.step("preview"):
        leftovers = e2e.cluster.existing(e2e.objects)
        assert not leftovers, (
            f"the cluster already holds objects of the e2e catalog: {leftovers}; delete the "
            "cluster (`kind delete cluster`) or those objects first"
        )
        timeline = Timeline()
        result = e2e.stack.preview(on_event=timeline.record, on_output=print, color="never")
        assert set(op_counts(result.change_summary)) == {"create"}, result.change_summary
        assert e2e.resources() <= timeline.names("create", PRE), timeline.describe()


def test_2_up_deploys_in_the_documented_order(e2e: E2E) -> None:
    with e2e.step("up"):
        timeline = Timeline()
        result = e2e.stack.up(on_event=timeline.record, on_output=print, color="never")
        _assert_no_failed_steps(timeline)
        assert set(op_counts(result.summary.resource_changes)) == {"create"}
        assert e2e.resources() <= timeline.names("create"), timeline.describe()

        # The documented order: each package only once everything it needs is deployed and checked.
        timeline.assert_before("kube-vip-apply", "cilium-apply", CREATE)
        timeline.assert_before("kube-vip-wait-after", "cilium-wait-before", CREATE)
        timeline.assert_before("cilium-apply", "tailscale-apply", CREATE)
        timeline.assert_before("cilium-apply", "envoy-gateway-apply", CREATE)
        timeline.assert_before("tailscale-wait-after", CONNECTOR, CREATE)
        timeline.assert_before(CONNECTOR, "headscale-apply", CREATE)
        for package in PACKAGES:
            chain = e2e.chain(package["name"])
            for earlier, later in itertools.pairwise(chain):
                timeline.assert_before(earlier, later, CREATE)
            for need in package.get("needs", []):
                timeline.assert_before(e2e.chain(need)[-1], chain[0], CREATE)

        # A fresh cluster came up in one `up` with the operator's Secret from secret config: the
        # gate saw kpt create the namespace, and the Secret existed before kpt's apply (which
        # waits for the operator that mounts it) was done.
        timeline.assert_before(NAMESPACE_GATE, SECRET, CREATE)
        assert timeline.position(SECRET, DONE, CREATE) < timeline.position(
            "tailscale-apply", DONE, CREATE
        ), timeline.describe()
        timeline.assert_before(SECRET, CONNECTOR, CREATE)
        assert e2e.cluster.secret_data("tailscale-system", "operator-oauth") == {
            "client_id": OAUTH["tailscaleOauthClientId"],
            "client_secret": OAUTH["tailscaleOauthClientSecret"],
        }
        # The values are encrypted in state, never in plain text.
        exported = json.dumps(e2e.stack.export_stack().deployment)
        assert not [v for v in OAUTH.values() if v in exported]

        # What a user then finds on the cluster and in the stack outputs.
        assert not e2e.cluster.absent(e2e.objects)
        # The stand-in operator owns the Connector like the real one: finalizer and condition.
        (connector_object,) = [o for o in e2e.objects if o.kind == "Connector"]
        connector = json.loads(e2e.cluster.get(connector_object, "-o", "json") or "{}")
        assert CONNECTOR_FINALIZER in connector["metadata"].get("finalizers", [])
        ready = [
            c
            for c in connector.get("status", {}).get("conditions", [])
            if c.get("type") == "ConnectorReady"
        ]
        assert [c.get("status") for c in ready] == ["True"], connector.get("status")
        cluster_ip = e2e.cluster.kubectl(
            "get", "svc/headscale", "-n", "headscale", "-o", "jsonpath={.spec.clusterIP}"
        ).stdout
        addresses = result.outputs["addresses"].value
        assert addresses["headscale"] == {"headscale/svc/headscale": cluster_ip}
        assert result.outputs["objects"].value == {
            p["name"]: scan_package(e2e.catalog / p["path"]).objects for p in PACKAGES
        }


def test_3_a_second_up_changes_nothing(e2e: E2E) -> None:
    with e2e.step("second up"):
        result = e2e.stack.up(on_output=print, color="never")
        changes = op_counts(result.summary.resource_changes)
        assert set(changes) == {"same"}, changes
        e2e.unchanged = changes["same"]


def test_3b_rotating_a_credential_updates_the_secret_and_restarts_what_mounts_it(
    e2e: E2E,
) -> None:
    """`pulumi config set --secret` then `up`: the Secret is updated in place, the operator
    restarted, and nothing else changes."""
    with e2e.step("rotate a credential"):
        operator = ("deployment/operator", "-n", "tailscale-system")
        uid = e2e.cluster.kubectl(
            "get",
            "secret/operator-oauth",
            "-n",
            "tailscale-system",
            "-o",
            "jsonpath={.metadata.uid}",
        ).stdout
        rotated = "e2e-secret-2"
        e2e.stack.set_config(
            f"{PROJECT}:tailscaleOauthClientSecret", auto.ConfigValue(rotated, secret=True)
        )
        expected = {"update": 2, "same": e2e.unchanged - 2}

        planned = Timeline()
        preview = e2e.stack.preview(on_event=planned.record, on_output=print, color="never")
        assert op_counts(preview.change_summary) == expected
        assert planned.names("update", PRE) == {SECRET, RESTART}, planned.describe()

        timeline = Timeline()
        result = e2e.stack.up(on_event=timeline.record, on_output=print, color="never")
        _assert_no_failed_steps(timeline)
        assert op_counts(result.summary.resource_changes) == expected
        timeline.assert_before(SECRET, RESTART, UPDATE)

        data = e2e.cluster.secret_data("tailscale-system", "operator-oauth")
        assert data["client_secret"] == rotated
        assert (
            uid
            == e2e.cluster.kubectl(
                "get",
                "secret/operator-oauth",
                "-n",
                "tailscale-system",
                "-o",
                "jsonpath={.metadata.uid}",
            ).stdout
        )  # in place
        restarted = e2e.cluster.kubectl(
            "get",
            *operator,
            "-o",
            "jsonpath={.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}",
        ).stdout
        assert restarted, "kubectl rollout restart leaves restartedAt on the pod template"
        exported = json.dumps(e2e.stack.export_stack().deployment)
        assert rotated not in exported


def test_4_an_edited_file_updates_its_package_only(e2e: E2E) -> None:
    """One edited file is an update of its package's Commands (its apply, and its gates, which
    carry the same digest: docs/step-contract.md), never a replacement, and nothing else."""
    with e2e.step("edit and up"):
        package, file = EDITED_PACKAGE
        edited = e2e.catalog / file  # the private copy
        before = edited.read_text()
        after = before.replace("headscale.example.internal", "headscale-e2e.example.internal")
        assert after != before
        edited.write_text(after)
        updated = e2e.commands_of(package)
        assert f"{package}-apply" in updated
        expected = {"update": len(updated), "same": e2e.unchanged - len(updated)}

        planned = Timeline()
        preview = e2e.stack.preview(on_event=planned.record, on_output=print, color="never")
        assert op_counts(preview.change_summary) == expected
        assert planned.names("update", PRE) == updated, planned.describe()

        timeline = Timeline()
        result = e2e.stack.up(on_event=timeline.record, on_output=print, color="never")
        _assert_no_failed_steps(timeline)
        assert op_counts(result.summary.resource_changes) == expected
        assert timeline.names("update") == updated, timeline.describe()
        chain = [name for name in e2e.chain(package) if name in updated]
        for earlier, later in itertools.pairwise(chain):
            timeline.assert_before(earlier, later, UPDATE)

        server_url = e2e.cluster.kubectl(
            "get",
            "configmap/headscale-config",
            "-n",
            "headscale",
            "-o",
            "jsonpath={.data.server_url}",
        ).stdout
        assert server_url == "https://headscale-e2e.example.internal"


def _set_packages(e2e: E2E, packages: list[dict[str, object]]) -> None:
    e2e.stack.set_config(f"{PROJECT}:packages", auto.ConfigValue(json.dumps(packages)))


def test_4b_a_dropped_namespace_is_not_pruned_until_allowed(e2e: E2E) -> None:
    """The prune check against a real cluster (kpt's own dry run): a Namespace whose file left
    the package is refused, nothing is applied and the Namespace stays, until the package's
    allowPrune names it; then kpt prunes it."""
    with e2e.step("prune check"):
        package, _file = EDITED_PACKAGE
        extra = KubeObject(package, "Namespace", "", "headscale-e2e-extra", "")
        extra_file = e2e.catalog / "mesh" / "headscale" / "90-extra-namespace.yaml"
        extra_file.write_text(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {extra.name}\n")
        e2e.stack.up(on_output=print, color="never")
        assert e2e.cluster.existing([extra]) == [str(extra)]

        extra_file.unlink()
        with pytest.raises(auto.CommandError) as refused:
            e2e.stack.up(on_output=print, color="never")
        assert "prune refused" in str(refused.value)
        assert f"'Namespace/{extra.name}'" in str(refused.value)  # the entry that allows it
        assert e2e.cluster.existing([extra]) == [str(extra)]  # kpt live apply never ran

        packages = copy.deepcopy(PACKAGES)
        next(p for p in packages if p["name"] == package)["allowPrune"] = [
            f"Namespace/{extra.name}"
        ]
        _set_packages(e2e, packages)
        e2e.stack.up(on_output=print, color="never")
        assert e2e.cluster.absent([extra]) == [str(extra)]

        _set_packages(e2e, copy.deepcopy(PACKAGES))  # as before: the next steps expect it
        e2e.stack.up(on_output=print, color="never")


def test_5_destroy_keeps_kube_vip_and_rolls_back_in_reverse(e2e: E2E) -> None:
    with e2e.step("destroy --exclude-protected"):
        protected = [p["name"] for p in PACKAGES if p.get("protect")]
        rolled_back = [p for p in PACKAGES if not p.get("protect")]
        timeline = Timeline()
        e2e.stack.destroy(
            exclude_protected=True, on_event=timeline.record, on_output=print, color="never"
        )
        _assert_no_failed_steps(timeline)
        deleted = timeline.names("delete")
        assert e2e.resources(packages=[p["name"] for p in rolled_back]) <= deleted
        assert not deleted & e2e.resources(packages=protected), timeline.describe()

        # Reverse order: the Connector while its operator still runs, and each package only once
        # everything that needs it is gone.
        timeline.assert_before(CONNECTOR, "tailscale-apply", DELETE)
        # The operator keeps its credentials until its Connector is gone; the Secret goes before
        # `kpt live destroy` removes its namespace.
        timeline.assert_before(CONNECTOR, SECRET, DELETE)
        timeline.assert_before(SECRET, NAMESPACE_GATE, DELETE)
        timeline.assert_before(NAMESPACE_GATE, "tailscale-inventory", DELETE)
        for package in rolled_back:
            chain = e2e.chain(package["name"])
            for earlier, later in itertools.pairwise(chain):
                timeline.assert_before(later, earlier, DELETE)
            for need in package.get("needs", []):
                if need not in protected:
                    timeline.assert_before(chain[0], e2e.chain(need)[-1], DELETE)

        assert e2e.state_names() == set(protected) | e2e.resources(packages=protected)
        assert not e2e.cluster.absent(e2e.objects_of(*protected))
        gone = [p["name"] for p in rolled_back]
        assert not e2e.cluster.existing(e2e.objects_of(*gone))


def test_6_destroy_all_removes_the_protected_package_too(e2e: E2E) -> None:
    """`make destroy-all`: unprotect, then destroy."""
    with e2e.step("unprotect and destroy"):
        e2e.unprotect_all()
        timeline = Timeline()
        e2e.stack.destroy(on_event=timeline.record, on_output=print, color="never")
        _assert_no_failed_steps(timeline)
        assert e2e.resources(packages=["kube-vip"]) <= timeline.names("delete")
        assert e2e.state_names() == set()
        assert not e2e.cluster.existing(e2e.objects)
