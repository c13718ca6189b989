"""Runs the real `__main__.py` under the Pulumi SDK's mocks and records what it registered.

Used by the tests and by `make bench`: fresh mocks per run, the dev stack's config from
`Pulumi.dev.yaml` (with overrides), and every `RegisterResource` request kept for assertions.
"""

from __future__ import annotations

import json
import runpy
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


def _engine_urn(urn: str) -> str:
    """The URN as the real engine writes it: the mock monitor prefixes the root stack's type to
    every top-level resource's type chain, which the engine leaves out."""
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
                    provider=_engine_urn(request.provider),
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
    """`Pulumi.dev.yaml`'s `kpt-catalog:` values, keys without the namespace."""
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    return {key.partition(":")[2]: value for key, value in document["config"].items()}


def declared_secret_keys(config: Mapping[str, Any]) -> list[str]:
    """The config keys the packages' `secrets` read, in order (plain values: the test's own)."""
    keys: list[str] = []
    packages = config.get("packages")
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
    program: Path = MAIN,
) -> ProgramRun:
    """Evaluate `__main__.py` with `config` (plain values) under fresh mocks.

    `secrets` are config values set as `pulumi config set --secret` sets them; by default a
    placeholder `test-<key>` for each key the packages' `secrets` read (`{}` for none).
    With `raise_errors=False` an exception is kept in `ProgramRun.error`, beside whatever was
    registered before it (so a test can show that nothing was)."""
    if secrets is None:
        secrets = {key: f"test-{key}" for key in declared_secret_keys(config)}
    mocks = _Mocks(command_stdout or {})
    monitor = _RecordingMonitor(mocks)
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
