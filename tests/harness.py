"""Runs the real `__main__.py` under the Pulumi SDK's mocks and records what it registered.

Used by the tests and by `make bench`: fresh mocks per run, a stack config and package graph the
tests own (built here, so that editing `packages.yaml` or `Pulumi.dev.yaml` for a real cluster
breaks no test), and every `RegisterResource` request kept for assertions.
"""

from __future__ import annotations

import copy
import json
import os
import runpy
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks

ROOT = Path(__file__).resolve().parent.parent
MAIN = ROOT / "__main__.py"
EXAMPLE_CATALOG = ROOT / "examples" / "catalog"
PROJECT = "kpt-catalog"
TEST_KUBECONFIG = ROOT / "tests" / "data" / "kubeconfig.yaml"
"""A kubeconfig naming a cluster that does not exist (the stand-ins never read it)."""
TEST_CONTEXT = "test"


def _wait(resource: str, condition: str, timeout: str, **extra: str) -> dict[str, str]:
    return {"resource": resource, "for": condition, "timeout": timeout, **extra}


def _crd(plural_and_group: str) -> dict[str, str]:
    return _wait(f"crd/{plural_and_group}", "condition=Established", "2m")


# The graph of examples/catalog: the documented deployment order's five packages as edges.
EXAMPLE_PACKAGES: list[dict[str, Any]] = [
    {
        "name": "kube-vip",
        "path": "ha/kube-vip",
        "reconcileTimeout": "2m",
        "protect": True,
        "waitAfter": [_wait("daemonset/kube-vip-ds", "rollout", "2m", namespace="kube-system")],
    },
    {
        "name": "cilium",
        "path": "networking/cilium",
        "needs": ["kube-vip"],
        "reconcileTimeout": "2m",
        "waitBefore": [
            _crd("ciliumloadbalancerippools.cilium.io"),
            _crd("ciliuml2announcementpolicies.cilium.io"),
            _crd("ciliumbgpclusterconfigs.cilium.io"),
            _crd("ciliumbgppeerconfigs.cilium.io"),
            _crd("ciliumbgpadvertisements.cilium.io"),
        ],
    },
    {
        "name": "tailscale",
        "path": "mesh/tailscale/operator",
        "needs": ["cilium", "kube-vip"],
        "reconcileTimeout": "3m",
        "secrets": [
            {
                "name": "operator-oauth",
                "namespace": "tailscale-system",
                "data": {
                    "client_id": "tailscaleOauthClientId",
                    "client_secret": "tailscaleOauthClientSecret",
                },
            }
        ],
        "waitAfter": [
            _wait("deployment/operator", "rollout", "3m", namespace="tailscale-system"),
            _wait("crd/connectors.tailscale.com", "condition=Established", "1m"),
        ],
        "manifests": [
            {
                "file": "mesh/tailscale/03-connector.yaml",
                "waitFor": "condition=ConnectorReady",
                "timeout": "5m",
            }
        ],
    },
    {
        "name": "headscale",
        "path": "mesh/headscale",
        "needs": ["tailscale", "cilium"],
        "reconcileTimeout": "3m",
        "waitAfter": [
            _wait(
                "svc/headscale",
                "jsonpath={.status.loadBalancer.ingress}",
                "3m",
                namespace="headscale",
                report="{.status.loadBalancer.ingress[0].ip}",
            )
        ],
    },
    {
        "name": "envoy-gateway",
        "path": "networking/envoy-gateway",
        "needs": ["cilium"],
        "reconcileTimeout": "3m",
        "serverSide": True,
        "waitAfter": [
            _wait(
                "gateway/eg",
                "condition=Programmed",
                "3m",
                namespace="envoy-gateway-system",
                report="{.status.addresses[0].value}",
            ),
            _wait(
                "svc",
                "jsonpath={.status.loadBalancer.ingress}",
                "3m",
                namespace="envoy-gateway-system",
                selector="gateway.envoyproxy.io/owning-gateway-name=eg",
            ),
        ],
    },
]


@dataclass(frozen=True)
class Registration:
    """One resource the program registered, as the engine would have seen it."""

    type: str
    name: str
    urn: str
    parent: str
    dependencies: tuple[str, ...]
    inputs: dict[str, Any]
    protect: bool
    replace_on_changes: tuple[str, ...]
    custom_timeouts: dict[str, str]
    provider: str = ""
    """The explicit provider reference (`<provider urn>::<id>`), empty for the default one."""
    aliases: tuple[str, ...] = ()
    """The URNs the resource may have had before, as the engine reads the alias specs."""
    secret_outputs: tuple[str, ...] = ()
    """Outputs the engine keeps encrypted in state (`additional_secret_outputs`)."""


def _alias_urn(alias: Any, request: Any) -> str:
    """One alias of a registration as the URN it stands for (an alias spec left to the engine
    names what differs from the resource: its name, type, parent, stack or project)."""
    if alias.WhichOneof("alias") == "urn":
        return _engine_urn(str(alias.urn))
    spec = alias.spec
    type_ = spec.type or request.type
    if spec.parentUrn:
        parent = _engine_urn(spec.parentUrn)
    elif spec.noParent or not request.parent or "::pulumi:pulumi:Stack::" in request.parent:
        parent = ""  # a top-level resource: the engine's URN names no parent type
    else:
        parent = _engine_urn(request.parent)
    if parent:
        prefix = parent[: parent.rfind("::")] + "$"
    else:
        stack = spec.stack or pulumi.get_stack()
        project = spec.project or pulumi.get_project()
        prefix = f"urn:pulumi:{stack}::{project}::"
    return _engine_urn(f"{prefix}{type_}::{spec.name or request.name}")


# The stack of the run under way (`_run`): what the engine would name in its URNs.
_mocked_stack = ["dev"]


def _engine_urn(urn: str) -> str:
    """The URN as the real engine writes it: the mock monitor prefixes the root stack's type to
    every top-level resource's type chain, which the engine leaves out; and older SDKs' mock
    monitor (3.200, the floor requirements.txt admits) names every URN's stack and project
    `stack::project`, whatever `set_mocks` was given, where the engine names the real ones."""
    placeholder = "urn:pulumi:stack::project::"
    if urn.startswith(placeholder):
        urn = f"urn:pulumi:{_mocked_stack[0]}::{PROJECT}::" + urn[len(placeholder) :]
    return urn.replace("::pulumi:pulumi:Stack$", "::")


class _Mocks(pulumi.runtime.Mocks):
    """Resources echo their inputs; Commands print the result line a successful step prints."""

    def __init__(self, command_stdout: Mapping[str, str]) -> None:
        self.command_stdout = command_stdout

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        if args.typ == "command:local:Command":
            outputs["stdout"] = self.command_stdout.get(args.name, "")
            outputs["stderr"] = ""
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        return {}, []


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: _Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            timeouts = request.customTimeouts
            self.registrations.append(
                Registration(
                    type=request.type,
                    name=request.name,
                    urn=_engine_urn(response.urn),
                    parent=_engine_urn(request.parent),
                    dependencies=tuple(_engine_urn(d) for d in request.dependencies),
                    inputs=pulumi.runtime.rpc.deserialize_properties(request.object),
                    protect=bool(request.protect),
                    replace_on_changes=tuple(request.replaceOnChanges),
                    custom_timeouts={
                        "create": timeouts.create,
                        "update": timeouts.update,
                        "delete": timeouts.delete,
                    },
                    aliases=tuple(_alias_urn(a, request) for a in request.aliases),
                    provider=_engine_urn(request.provider),
                    secret_outputs=tuple(request.additionalSecretOutputs),
                )
            )
        return response


@dataclass
class ProgramRun:
    """What one evaluation of the program registered."""

    registrations: list[Registration]
    outputs: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None
    """What the program raised, when run with `raise_errors=False`."""

    def by_name(self, name: str) -> Registration:
        matches = [r for r in self.registrations if r.name == name]
        assert len(matches) == 1, f"{name}: {len(matches)} registrations"
        return matches[0]

    def names(self) -> list[str]:
        return [r.name for r in self.registrations]


def dev_stack_config() -> dict[str, Any]:
    """The tests' dev stack: cluster access and the example graph (a fresh copy each call).

    `run_program` writes `packages` to the run's own `packages.yaml`, as a user keeps it."""
    return {
        "kubeconfig": str(TEST_KUBECONFIG),
        "context": TEST_CONTEXT,
        "packages": copy.deepcopy(EXAMPLE_PACKAGES),
    }


def shipped_graph() -> list[dict[str, Any]]:
    """The `packages:` of the shipped `packages.yaml`."""
    packages: list[dict[str, Any]] = yaml.safe_load((ROOT / "packages.yaml").read_text())[
        "packages"
    ]
    return packages


def project_copy(target: Path, packages: object | None = None) -> Path:
    """A project directory for one run: the program, and `packages` as its `packages.yaml`."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(MAIN, target / MAIN.name)
    if packages is not None:
        (target / "packages.yaml").write_text(yaml.safe_dump({"packages": packages}))
    return target


def declared_secret_keys(packages: object) -> list[str]:
    """The config keys the packages' `secrets` read, in order."""
    keys: list[str] = []
    for package in packages if isinstance(packages, list) else []:
        secrets = package.get("secrets") if isinstance(package, dict) else None
        for secret in secrets if isinstance(secrets, list) else []:
            data = secret.get("data") if isinstance(secret, dict) else None
            for key in data.values() if isinstance(data, dict) else []:
                if isinstance(key, str) and key not in keys:
                    keys.append(key)
    return keys


def run_program(
    config: Mapping[str, Any],
    *,
    secrets: Mapping[str, str] | None = None,
    stack: str = "dev",
    command_stdout: Mapping[str, str] | None = None,
    preview: bool = False,
    raise_errors: bool = True,
    program: Path | None = None,
    packages_in_stack: bool = False,
) -> ProgramRun:
    """Evaluate `__main__.py` with `config` (plain values) under fresh mocks.

    The program runs from a project directory of its own, whose `packages.yaml` holds
    `config["packages"]` (the rest is the stack's config); with `packages_in_stack` they stay in
    the stack's config instead. `program` runs another program file, from where it lies.

    `secrets` are config values set as `pulumi config set --secret` sets them; by default a
    placeholder `test-<key>` for each key the packages' `secrets` read (`{}` for none).
    With `raise_errors=False` an exception is kept in `ProgramRun.error`, beside whatever was
    registered before it (so a test can show that nothing was)."""
    if secrets is None:
        graph = program.parent / "packages.yaml" if program is not None else None
        packages = config.get("packages")
        if packages is None and graph is not None and graph.is_file():
            try:  # a test of a broken graph file: the program says what is wrong with it
                document = yaml.safe_load(graph.read_text())
            except yaml.YAMLError:
                document = None
            packages = document.get("packages") if isinstance(document, dict) else None
        secrets = {key: f"test-{key}" for key in declared_secret_keys(packages)}
    if program is not None:
        return _run(program, config, secrets, stack, command_stdout, preview, raise_errors)
    stack_config = dict(config)
    packages = None if packages_in_stack else stack_config.pop("packages", None)
    with tempfile.TemporaryDirectory(prefix="kpt-catalog-project-") as scratch:
        project = project_copy(Path(scratch), packages)
        return _run(
            project / MAIN.name, stack_config, secrets, stack, command_stdout, preview, raise_errors
        )


def _run(
    program: Path,
    config: Mapping[str, Any],
    secrets: Mapping[str, str],
    stack: str,
    command_stdout: Mapping[str, str] | None,
    preview: bool,
    raise_errors: bool,
) -> ProgramRun:
    mocks = _Mocks(command_stdout or {})
    monitor = _RecordingMonitor(mocks)
    _mocked_stack[0] = stack
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(
        {
            **{
                f"{PROJECT}:{key}": value if isinstance(value, str) else json.dumps(value)
                for key, value in config.items()
            },
            **{f"{PROJECT}:{key}": value for key, value in secrets.items()},
        },
        [f"{PROJECT}:{key}" for key in secrets],
    )
    run = ProgramRun(monitor.registrations)

    @pulumi.runtime.test  # type: ignore[untyped-decorator]  # the SDK's decorator is untyped
    def evaluate() -> pulumi.Output[Any]:
        runpy.run_path(str(program), run_name="__main__")
        captured = getattr(pulumi.runtime.settings.get_root_resource(), "outputs", {})
        return pulumi.Output.all(**captured).apply(run.outputs.update)

    try:
        evaluate()
    except Exception as error:
        if raise_errors:
            raise
        run.error = error
    return run


FAKEBIN = ROOT / "tests" / "fakebin"
"""The stand-in kpt and kubectl."""
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"  # noqa: S105 - the SDK's marker
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 - the SDK's marker, no password


def is_secret(value: object) -> bool:
    """Whether a registered input is a Pulumi secret, as the SDK marks one on the wire."""
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG


def run_registered_step(
    tmp_path: Path, registration: Registration, script: str, *, fake: bool = True, **extra: str
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    """Run `script` (one of the registration's command strings) the way the command provider
    runs it: `/bin/sh -c` in a copy of the project, with the registered environment (a secret
    one as the engine decrypts it for the provider), against the stand-ins (or, with
    `fake=False`, the real tools). Returns the result and the argument lists the stand-ins got."""
    project = tmp_path / "project"
    if not project.exists():
        shutil.copytree(ROOT / "components", project / "components")
    environment = registration.inputs["environment"]
    if is_secret(environment):
        environment = environment["value"]
    record = tmp_path / "calls.jsonl"
    path = f"{FAKEBIN}{os.pathsep}{os.environ['PATH']}" if fake else os.environ["PATH"]
    result = subprocess.run(
        ["/bin/sh", "-c", script],
        env={
            **os.environ,
            **environment,
            "PATH": path,
            "FAKE_RECORD": str(record),
            "XDG_STATE_HOME": str(tmp_path / "state"),
            **extra,
        },
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    calls = (
        [json.loads(line)["argv"] for line in record.read_text().splitlines()]
        if record.exists()
        else []
    )
    return result, calls


def check_json_output(text: str, schema_name: str) -> dict[str, Any]:
    """The JSON document a command printed, checked against its published schema in
    docs/schema/ (which refers to common.json); raises naming the first field that is wrong."""
    import jsonschema  # a test tool, not a dependency of the program
    from referencing import Registry, Resource

    schemas = ROOT / "docs" / "schema"
    registry: Registry[Any] = Registry()
    for path in schemas.glob("*.json"):
        document = json.loads(path.read_text())
        registry = registry.with_resource(document["$id"], Resource.from_contents(document))
    schema = json.loads((schemas / f"{schema_name}.json").read_text())
    document = json.loads(text)
    jsonschema.Draft202012Validator(schema, registry=registry).validate(document)
    assert isinstance(document, dict)
    return document
