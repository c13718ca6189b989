"""The step contract (docs/step-contract.md): variable names, sub-commands, the result line, and
reading the environment into checked values. Everything named here is stored in users' Pulumi
state (a Command's strings and environment), so names only ever get added.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_STACK",
    "ENV_ALLOW_PRUNE",
    "ENV_APPLY_TIMEOUT",
    "ENV_CONTEXT",
    "ENV_DESTROY_TIMEOUT",
    "ENV_DIGEST",
    "ENV_DIR",
    "ENV_GENERATION",
    "ENV_INVENTORY_ID",
    "ENV_INVENTORY_NAME",
    "ENV_INVENTORY_NAMESPACE",
    "ENV_INVENTORY_POLICY",
    "ENV_KUBECONFIG",
    "ENV_PACKAGE",
    "ENV_PHASE",
    "ENV_REAPPLY",
    "ENV_RECONCILE_TIMEOUT",
    "ENV_SECRETS_DIGEST",
    "ENV_SERVER_SIDE",
    "ENV_STACK",
    "ENV_VARS",
    "ENV_WAITS",
    "ENV_WORKLOADS",
    "EXIT_BAD_ENV",
    "EXIT_FAILED",
    "EXIT_OK",
    "INVENTORY_POLICIES",
    "MAX_SECONDS",
    "MINIMUM_PYTHON",
    "PHASES",
    "PHASE_NAMESPACE",
    "RESULT_PREFIX",
    "STEP_SCRIPT",
    "SUBCOMMANDS",
    "SUBCOMMAND_APPLY",
    "SUBCOMMAND_DESTROY",
    "SUBCOMMAND_INVENTORY",
    "SUBCOMMAND_RESTART",
    "SUBCOMMAND_STATUS",
    "SUBCOMMAND_WAIT",
    "WORKLOAD_KINDS",
    "Cluster",
    "EnvError",
    "Inventory",
    "Wait",
    "Workload",
    "absolute_dir",
    "cluster",
    "inventory",
    "inventory_policy",
    "inventory_yaml",
    "parse_result",
    "parse_waits",
    "parse_workloads",
    "path_variable",
    "phase",
    "require",
    "result_line",
    "seconds",
    "step_command",
]

ENV_PACKAGE = "KPT_CATALOG_PACKAGE"
ENV_DIR = "KPT_CATALOG_DIR"
ENV_RECONCILE_TIMEOUT = "KPT_CATALOG_RECONCILE_TIMEOUT"
ENV_APPLY_TIMEOUT = "KPT_CATALOG_APPLY_TIMEOUT"
ENV_DESTROY_TIMEOUT = "KPT_CATALOG_DESTROY_TIMEOUT"
ENV_SERVER_SIDE = "KPT_CATALOG_SERVER_SIDE"
ENV_INVENTORY_NAME = "KPT_CATALOG_INVENTORY_NAME"
ENV_INVENTORY_NAMESPACE = "KPT_CATALOG_INVENTORY_NAMESPACE"
ENV_INVENTORY_ID = "KPT_CATALOG_INVENTORY_ID"
ENV_KUBECONFIG = "KPT_CATALOG_KUBECONFIG"
ENV_CONTEXT = "KPT_CATALOG_CONTEXT"
ENV_DIGEST = "KPT_CATALOG_DIGEST"
ENV_GENERATION = "KPT_CATALOG_GENERATION"
ENV_PHASE = "KPT_CATALOG_PHASE"
ENV_WAITS = "KPT_CATALOG_WAITS"
ENV_STACK = "KPT_CATALOG_STACK"  # optional: which stack's log the step appends to
# Optional: the kinds and objects the package allows kpt to prune (JSON list; absent: none).
ENV_ALLOW_PRUNE = "KPT_CATALOG_ALLOW_PRUNE"
# Optional, never read: the package's re-apply token (only there so that a new one is an update).
ENV_REAPPLY = "KPT_CATALOG_REAPPLY"
ENV_INVENTORY_POLICY = "KPT_CATALOG_INVENTORY_POLICY"  # optional: strict (default) or adopt
ENV_WORKLOADS = "KPT_CATALOG_WORKLOADS"  # restart: the workloads to restart
# Only there so that a changed Secret value is an update of the restart; never read.
ENV_SECRETS_DIGEST = "KPT_CATALOG_SECRETS_DIGEST"
ENV_VARS = (
    ENV_PACKAGE,
    ENV_DIR,
    ENV_RECONCILE_TIMEOUT,
    ENV_APPLY_TIMEOUT,
    ENV_DESTROY_TIMEOUT,
    ENV_SERVER_SIDE,
    ENV_INVENTORY_NAME,
    ENV_INVENTORY_NAMESPACE,
    ENV_INVENTORY_ID,
    ENV_KUBECONFIG,
    ENV_CONTEXT,
    ENV_DIGEST,
    ENV_GENERATION,
    ENV_PHASE,
    ENV_WAITS,
    ENV_STACK,
    ENV_ALLOW_PRUNE,
    ENV_REAPPLY,
    ENV_INVENTORY_POLICY,
    ENV_WORKLOADS,
    ENV_SECRETS_DIGEST,
)
DEFAULT_STACK = "default"

SUBCOMMAND_APPLY = "apply"
SUBCOMMAND_DESTROY = "destroy"
SUBCOMMAND_WAIT = "wait"
SUBCOMMAND_STATUS = "status"
SUBCOMMAND_INVENTORY = "inventory"
SUBCOMMAND_RESTART = "restart"
SUBCOMMANDS = (
    SUBCOMMAND_APPLY,
    SUBCOMMAND_DESTROY,
    SUBCOMMAND_WAIT,
    SUBCOMMAND_STATUS,
    SUBCOMMAND_INVENTORY,
    SUBCOMMAND_RESTART,
)
PHASE_NAMESPACE = "wait-namespace"  # the gate that lets a package's Secrets be created
PHASES = ("wait-before", "wait-after", PHASE_NAMESPACE)
INVENTORY_POLICIES = ("strict", "adopt")
# What `kubectl rollout restart` restarts, as kubectl names the kinds.
WORKLOAD_KINDS = ("deployment", "daemonset", "statefulset")
STEP_SCRIPT = "components/kptstep.py"
RESULT_PREFIX = "kpt-catalog-result: "
EXIT_OK, EXIT_FAILED, EXIT_BAD_ENV = 0, 1, 2
# The oldest Python the step runs on; components/kptstep.py checks it before importing anything
# newer syntax could break (it repeats the number: it must parse on any Python).
MINIMUM_PYTHON = (3, 11)
# The longest deadline a variable may ask for (about 115 days): beyond it a time is a typo, and a
# 400-digit number would overflow the clock arithmetic.
MAX_SECONDS = 10_000_000


def step_command(subcommand: str) -> str:
    """The fixed command string a Pulumi Command runs for ``subcommand``."""
    if subcommand not in SUBCOMMANDS:
        raise ValueError(f"unknown sub-command {subcommand!r}; expected one of {SUBCOMMANDS}")
    return f"python3 {STEP_SCRIPT} {subcommand}"


class EnvError(Exception):
    """A step variable is missing or malformed (exit status 2)."""


@dataclass(frozen=True)
class Cluster:
    """How kpt and kubectl reach the cluster: flags only when a value is given."""

    kubeconfig: str
    context: str

    def flags(self) -> list[str]:
        """``--kubeconfig`` and ``--context`` as kpt and kubectl both spell them."""
        kubeconfig = ["--kubeconfig", self.kubeconfig] if self.kubeconfig else []
        return kubeconfig + (["--context", self.context] if self.context else [])


@dataclass(frozen=True)
class Inventory:
    """A package's ResourceGroup: enough for kpt to find everything it applied."""

    name: str
    namespace: str
    inventory_id: str

    def __str__(self) -> str:
        return f"ResourceGroup {self.namespace}/{self.name} (inventory id {self.inventory_id})"


@dataclass(frozen=True)
class Wait:
    """One readiness check: ``kubectl wait`` or ``kubectl rollout status``, maybe a report."""

    resource: str
    condition: str  # the contract's "for": "rollout" or a `kubectl wait --for` value
    namespace: str
    selector: str
    timeout: int
    report: str

    @property
    def key(self) -> str:
        """The key of this wait's report: ``namespace/resource``, or ``resource``."""
        return f"{self.namespace}/{self.resource}" if self.namespace else self.resource

    def __str__(self) -> str:
        where = f" in namespace {self.namespace}" if self.namespace else ""
        selector = f" selecting {self.selector}" if self.selector else ""
        return f"{self.resource} for {self.condition}{where}{selector}"


def require(env: Mapping[str, str], name: str, expected: str) -> str:
    """The value of ``name``; EnvError naming it and ``expected`` when missing or blank."""
    value = env.get(name, "")
    if not value.strip():
        raise EnvError(f"{name} is missing or empty; expected {expected}")
    return value


def _within_limit(where: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_SECONDS:
        shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:40]}... (too long)"
        raise EnvError(
            f"{where} must be a whole number of seconds from 1 to {MAX_SECONDS}, got {shown}"
        )
    return value


def seconds(env: Mapping[str, str], name: str) -> int:
    """A timeout variable: whole seconds from 1 to MAX_SECONDS."""
    value = require(env, name, "a whole number of seconds")
    if not re.fullmatch(r"[0-9]{1,9}", value):
        _within_limit(name, value)  # raises, showing the value cut short
    return _within_limit(name, int(value))


def path_variable(env: Mapping[str, str], name: str) -> str:
    """How every path variable (``KPT_CATALOG_DIR``, ``KPT_CATALOG_KUBECONFIG``) is read: as
    written in the stack (``~/...``, relative or absolute), resolved on this machine: ``~``
    expanded, a relative path taken from the working directory, which is the project directory
    (Pulumi runs every Command there, and so does ``make status``). Empty stays empty."""
    value = env.get(name, "")
    return str(Path(value).expanduser().absolute()) if value else ""


def absolute_dir(env: Mapping[str, str]) -> str:
    """``KPT_CATALOG_DIR``, resolved to an absolute path."""
    require(env, ENV_DIR, "the package directory")
    return path_variable(env, ENV_DIR)


def cluster(env: Mapping[str, str]) -> Cluster:
    """Cluster access: kubeconfig and context, either may be empty or absent."""
    return Cluster(path_variable(env, ENV_KUBECONFIG), env.get(ENV_CONTEXT, ""))


def inventory(env: Mapping[str, str]) -> Inventory:
    """The package's ResourceGroup, from the three inventory variables."""
    return Inventory(
        require(env, ENV_INVENTORY_NAME, "the package's ResourceGroup name"),
        require(env, ENV_INVENTORY_NAMESPACE, "the package's ResourceGroup namespace"),
        require(env, ENV_INVENTORY_ID, "the package's inventory id"),
    )


def phase(env: Mapping[str, str]) -> str:
    """``KPT_CATALOG_PHASE``: one of PHASES."""
    value = require(env, ENV_PHASE, " or ".join(PHASES))
    if value not in PHASES:
        raise EnvError(f"{ENV_PHASE} must be one of {', '.join(PHASES)}, got {value!r}")
    return value


def inventory_policy(env: Mapping[str, str]) -> str:
    """``KPT_CATALOG_INVENTORY_POLICY``: ``strict`` when absent or empty, else one of
    INVENTORY_POLICIES."""
    value = env.get(ENV_INVENTORY_POLICY, "").strip() or "strict"
    if value not in INVENTORY_POLICIES:
        raise EnvError(
            f"{ENV_INVENTORY_POLICY} must be one of {', '.join(INVENTORY_POLICIES)}, got {value!r}"[
                :300
            ]
        )
    return value


@dataclass(frozen=True)
class Workload:
    """A workload to restart: ``kubectl rollout restart KIND/NAME -n NAMESPACE``."""

    kind: str
    name: str
    namespace: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name} in namespace {self.namespace}"


def _json_list(name: str, text: str, what: str) -> list[object]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise EnvError(f"{name} is not valid JSON ({reason}); expected a list of {what}") from None
    if not isinstance(data, list):
        raise EnvError(f"{name} must be a JSON list of {what}, got {type(data).__name__}")
    return data


def parse_workloads(text: str) -> tuple[Workload, ...]:
    """Parse KPT_CATALOG_WORKLOADS (a JSON list of ``{"kind", "name", "namespace"}``)."""
    workloads = []
    for index, item in enumerate(_json_list(ENV_WORKLOADS, text, "workloads")):
        where = f"{ENV_WORKLOADS}[{index}]"
        if not isinstance(item, dict):
            raise EnvError(f"{where} must be an object, got {item!r}"[:300])
        values = {key: item.get(key) for key in ("kind", "name", "namespace")}
        for key, value in values.items():
            if not isinstance(value, str) or not value or value.startswith("-"):
                raise EnvError(
                    f"{where}.{key} must be a non-empty string not starting with '-', "
                    f"got {value!r}"[:300]
                )
        if values["kind"] not in WORKLOAD_KINDS:
            raise EnvError(
                f"{where}.kind must be one of {', '.join(WORKLOAD_KINDS)}, got {values['kind']!r}"[
                    :300
                ]
            )
        workloads.append(
            Workload(str(values["kind"]), str(values["name"]), str(values["namespace"]))
        )
    return tuple(workloads)


def parse_waits(text: str) -> tuple[Wait, ...]:
    """Parse KPT_CATALOG_WAITS (a JSON list of waits, see the contract); raise EnvError."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise EnvError(
            f"{ENV_WAITS} is not valid JSON ({reason}); expected a list of waits"
        ) from None
    if not isinstance(data, list):
        raise EnvError(f"{ENV_WAITS} must be a JSON list of waits, got {type(data).__name__}")
    waits = []
    for index, item in enumerate(data):
        where = f"{ENV_WAITS}[{index}]"
        if not isinstance(item, dict):
            raise EnvError(f"{where} must be an object, got {item!r}"[:300])
        strings = {}
        for key in ("resource", "for", "namespace", "selector", "report"):
            value = item.get(key, "")
            if not isinstance(value, str):
                raise EnvError(f"{where}.{key} must be a string, got {value!r}"[:300])
            strings[key] = value
        for key in ("resource", "for"):
            if not strings[key] or strings[key].startswith("-"):
                raise EnvError(
                    f"{where}.{key} must be a non-empty string not starting with "
                    f"'-', got {strings[key]!r}"
                )
        waits.append(
            Wait(
                strings["resource"],
                strings["for"],
                strings["namespace"],
                strings["selector"],
                _within_limit(f"{where}.timeout", item.get("timeout")),
                strings["report"],
            )
        )
    return tuple(waits)


def inventory_yaml(inventory: Inventory) -> str:
    """A resourcegroup.yaml for ``inventory``; JSON strings are valid YAML double-quoted
    scalars, so any value is quoted safely."""
    q = json.dumps
    return (
        "apiVersion: kpt.dev/v1alpha1\n"
        "kind: ResourceGroup\n"
        "metadata:\n"
        f"  name: {q(inventory.name)}\n"
        f"  namespace: {q(inventory.namespace)}\n"
        "  labels:\n"
        f"    cli-utils.sigs.k8s.io/inventory-id: {q(inventory.inventory_id)}\n"
    )


def result_line(payload: Mapping[str, object]) -> str:
    """The machine-readable last line of stdout."""
    return RESULT_PREFIX + json.dumps(payload)


def parse_result(stdout: str | None) -> dict[str, object]:
    """The payload of the last result line in a step's stdout; {} when there is none."""
    for line in reversed((stdout or "").splitlines()):
        if line.startswith(RESULT_PREFIX):
            try:
                payload = json.loads(line[len(RESULT_PREFIX) :])
            except (ValueError, RecursionError):
                return {}
            return payload if isinstance(payload, dict) else {}
    return {}
