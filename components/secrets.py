"""Credentials from secret stack config: a package's Kubernetes Secrets, and their rotation.

A package declares (in the graph, which holds no values) the Secrets its workloads need:

    secrets:
      - name: operator-oauth
        namespace: tailscale-system
        data: {client_id: tailscaleOauthClientId, client_secret: tailscaleOauthClientSecret}

Each value comes from `pulumi config set --secret kpt-catalog:<key>`; it stays a Pulumi secret all
the way (encrypted in state, never in a command line, a plain environment or a step's output).

Children this adds to a package (`KptPackage` calls `declare_secrets`, then `declare_restart`):

- `<package>-wait-namespace`: `kubectl wait --for=create namespace/<ns>` for each namespace of
  the package's Secrets. The namespace belongs to the kpt package, so nothing else creates it:
  the gate runs beside `kpt live apply` (it depends on what the apply depends on, the package's
  `<package>-inventory` among them, never on the apply), sees kpt create the namespace, and lets
  the Secret be created while kpt waits for the workloads that mount it to become ready. On
  destroy the Secret, then the gate, go before the inventory's `kpt live destroy` removes the
  namespace. With the Secret created only after the apply, a fresh
  cluster would never come up: the workload cannot start without it, and the apply waits for it.
- `<package>-secret-<name>`: the native Secret (type Opaque, `stringData` from the secret config
  values), after the gate. The package's native manifests depend on it, so `pulumi destroy`
  deletes it after them: the Tailscale operator needs its credentials to release the Connector.
- `<package>-restart-<name>`, one per Secret that a workload of the package uses: on create
  nothing; on update (one of that Secret's values changed: its environment carries a secret
  digest of them) `kubectl rollout restart` and `rollout status` of exactly the workloads that
  reference that Secret (volumes, projected volumes, `env` and `envFrom`, init containers
  included). Rotating one Secret restarts its workloads only. A package's only Secret keeps the
  name it had before (`<package>-restart`) through an alias.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_command as command
import pulumi_kubernetes as kubernetes
import yaml

from components import kptstep
from components.catalog import LoadedPackage
from components.config import (
    CatalogConfig,
    ConfigError,
    SecretSpec,
    WaitSpec,
)
from components.files import read_package_files, unsafe_yaml
from components.gates import BACKSTOP_SECONDS, declare_gate
from components.kptyaml import KptYamlError, load_documents
from components.native import KubernetesObject

__all__ = [
    "Workload",
    "check_secret_config",
    "declare_restart",
    "declare_secrets",
    "mounting_workloads",
    "restart_environment",
    "secret_values",
    "workloads_by_secret",
]

_RESTART = kptstep.step_command(kptstep.SUBCOMMAND_RESTART)

# Workloads whose pod template can reference a Secret; `kubectl rollout restart` knows all three.
_WORKLOAD_KINDS = {
    "Deployment": "deployment",
    "DaemonSet": "daemonset",
    "StatefulSet": "statefulset",
}


def _set_with_secret(key: str) -> str:
    # Without a value, `pulumi config set` prompts for it: it never lands in the shell's history.
    return f"`pulumi config set --secret kpt-catalog:{key}`"


def _structured(value: str) -> bool:
    """Whether Pulumi holds `value` as a list or object (it stores them as JSON text)."""
    if not value.lstrip().startswith(("{", "[")):
        return False
    try:
        return isinstance(json.loads(value), dict | list)
    except ValueError:
        return False


def check_secret_config(
    config: CatalogConfig,
    get: Callable[[str], str | None],
    is_secret: Callable[[str], bool],
) -> None:
    """Every config key a declared Secret reads is set with `--secret` to a text value that is not
    blank;
    otherwise one ConfigError naming each key and the command that sets it.

    `get(key)` and `is_secret(key)` see the `kpt-catalog:` namespace's keys without the prefix.
    """
    problems: list[str] = []
    seen: set[str] = set()
    for index, package in enumerate(config.packages):
        for s_index, secret in enumerate(package.secrets):
            for secret_key, config_key in secret.data:
                if config_key in seen:
                    continue
                seen.add(config_key)
                needed_by = (
                    f"packages[{index}].secrets[{s_index}] (Secret {secret.namespace}/"
                    f"{secret.name}, key {secret_key}) reads it"
                )
                value = get(config_key)
                if value is None:
                    problems.append(
                        f"kpt-catalog:{config_key}: is not set; {needed_by}. Set it with "
                        f"{_set_with_secret(config_key)}"
                    )
                elif not is_secret(config_key):
                    problems.append(
                        f"kpt-catalog:{config_key}: is set in plain text in the stack file, so "
                        f"it would be stored unencrypted; {needed_by}. Set it again with "
                        f"{_set_with_secret(config_key)}"
                    )
                elif not value.strip():
                    what = "is empty" if not value else "is only whitespace"
                    problems.append(
                        f"kpt-catalog:{config_key}: {what}; {needed_by}. Set it with "
                        f"{_set_with_secret(config_key)}"
                    )
                elif _structured(value):
                    problems.append(
                        f"kpt-catalog:{config_key}: holds a list or object (as `pulumi config "
                        f"set --path` writes one), not a text value; {needed_by}. Set it with "
                        f"{_set_with_secret(config_key)}"
                    )
    if problems:
        raise ConfigError(problems)


def secret_values(source: pulumi.Config, secret: SecretSpec) -> dict[str, pulumi.Output[str]]:
    """The Secret's data as Pulumi secrets, keyed by the Secret's keys."""
    return {secret_key: source.require_secret(key) for secret_key, key in secret.data}


@dataclass(frozen=True, order=True)
class Workload:
    """A Deployment, DaemonSet or StatefulSet of a package."""

    kind: str
    """As kubectl names it: `deployment`, `daemonset`, `statefulset`."""
    namespace: str
    name: str

    def as_step_input(self) -> dict[str, str]:
        """The workload as the step runner reads it from `KPT_CATALOG_WORKLOADS`."""
        return {"kind": self.kind, "name": self.name, "namespace": self.namespace}


def _referenced_secrets(pod_spec: Mapping[str, Any]) -> set[str]:
    """Names of the Secrets a pod spec mounts or reads: volumes (plain and projected), `env`
    `secretKeyRef` and `envFrom` `secretRef`, of containers and init containers."""
    names: set[str] = set()

    def name_of(holder: object, key: str) -> None:
        if isinstance(holder, dict) and isinstance(holder.get(key), str):
            names.add(holder[key])

    for volume in _dicts(pod_spec.get("volumes")):
        name_of(volume.get("secret"), "secretName")
        projected = volume.get("projected")
        if isinstance(projected, dict):
            for source in _dicts(projected.get("sources")):
                name_of(source.get("secret"), "name")
    for field in ("containers", "initContainers", "ephemeralContainers"):
        for container in _dicts(pod_spec.get(field)):
            for variable in _dicts(container.get("env")):
                value_from = variable.get("valueFrom")
                if isinstance(value_from, dict):
                    name_of(value_from.get("secretKeyRef"), "name")
            for source in _dicts(container.get("envFrom")):
                name_of(source.get("secretRef"), "name")
    return names


def _dicts(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _workload_of(document: object) -> tuple[Workload, set[str]] | None:
    if (
        not isinstance(document, dict)
        or document.get("kind") not in _WORKLOAD_KINDS
        or not str(document.get("apiVersion", "")).startswith("apps/")
    ):
        return None
    metadata = document.get("metadata")
    spec = document.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    pod_spec = template.get("spec") if isinstance(template, dict) else None
    if not isinstance(metadata, dict) or not isinstance(pod_spec, dict):
        return None
    workload = Workload(
        kind=_WORKLOAD_KINDS[str(document["kind"])],
        namespace=str(metadata.get("namespace") or "default"),
        name=str(metadata.get("name", "")),
    )
    return workload, _referenced_secrets(pod_spec)


def mounting_workloads(directory: Path, secrets: Sequence[SecretSpec]) -> tuple[Workload, ...]:
    """The package's workloads whose pods reference one of `secrets` by name, in their namespace."""
    found = {w for used in workloads_by_secret(directory, secrets).values() for w in used}
    return tuple(sorted(found))


def workloads_by_secret(
    directory: Path, secrets: Sequence[SecretSpec]
) -> dict[str, tuple[Workload, ...]]:
    """For each of `secrets` (by name), the package's workloads whose pods reference it, in its
    namespace, sorted.

    Reads the files kpt reads, as kpt reads them (`components.files`, `components.kptyaml`), so a
    workload written as JSON, in flow style or with a quoted key is found too; what cannot be
    read or parsed is left to the catalog's checks, which report it."""
    by_name: dict[str, set[Workload]] = {secret.name: set() for secret in secrets}
    namespaces = {secret.name: secret.namespace for secret in secrets}
    for file in read_package_files(directory).files:
        if unsafe_yaml(file.content) is not None or file.relative.endswith("Kptfile"):
            continue
        # Only a file that names a workload kind somewhere is parsed (a CRD bundle is large).
        if not any(kind.encode() in file.content for kind in _WORKLOAD_KINDS):
            continue
        try:
            documents = load_documents(file.content)
        except (yaml.YAMLError, KptYamlError):
            continue
        for document in documents:
            parsed = _workload_of(document)
            if parsed is None:
                continue
            workload, referenced = parsed
            for name in referenced:
                if name in by_name and namespaces[name] == workload.namespace:
                    by_name[name].add(workload)
    return {name: tuple(sorted(found)) for name, found in by_name.items()}


def _namespace_gate(
    package: LoadedPackage,
    config: CatalogConfig,
    parent: pulumi.ResourceOptions,
    depends_on: Sequence[pulumi.Resource],
) -> command.local.Command:
    """`<package>-wait-namespace`: waits for kpt to create the namespaces of the Secrets. Like
    the other gates, it re-runs with the package's digest or the re-apply generation."""
    spec = package.spec
    # The namespace appears while the apply runs, or the apply fails within its own deadline.
    timeout = spec.apply_timeout
    waits = [
        WaitSpec(f"namespace/{ns}", "create", "", "", timeout, "")
        for ns in sorted({s.namespace for s in spec.secrets})
    ]
    return declare_gate(
        package, config, kptstep.PHASE_NAMESPACE, waits, parent=parent, depends_on=depends_on
    )


def declare_secrets(
    package: LoadedPackage,
    config: CatalogConfig,
    *,
    provider: kubernetes.Provider,
    values: Mapping[str, Mapping[str, pulumi.Output[str]]],
    parent: pulumi.ResourceOptions,
    beside_apply: Sequence[pulumi.Resource],
    rollback: Sequence[pulumi.Resource] = (),
    moved: Callable[[str], Sequence[pulumi.Input[pulumi.Alias]]] = lambda _name: (),
) -> list[KubernetesObject]:
    """The package's Secrets, after a gate that sees kpt create their namespace.

    `values` maps each Secret's name to its data (from `secret_values`). `beside_apply` is what
    the package's apply depends on: the gate waits for the same, so it runs beside the apply.
    `moved(resource name)` gives the aliases under which a Secret moved from another package is
    known (components.kpt_package.moved_from).
    `rollback` is what must outlive the Secrets on destroy (the resource whose delete runs `kpt
    live destroy`, which removes the namespace): the gate depends on it, the Secrets on the gate.
    """
    spec = package.spec
    if not spec.secrets:
        return []
    upstream = list(beside_apply) + [r for r in rollback if r not in beside_apply]
    gate = _namespace_gate(package, config, parent, upstream)
    return [
        KubernetesObject(
            f"{spec.name}-secret-{secret.name}",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": secret.name,
                    "namespace": secret.namespace,
                    # The stack owns these values: taking over a Secret made by hand (kubectl
                    # create) with other values must not fail on a field-manager conflict
                    # (pulumi-kubernetes provider/pkg/await/await.go: this annotation forces
                    # the apply).
                    "annotations": {"pulumi.com/patchForce": "true"},
                },
                "type": "Opaque",
                "stringData": pulumi.Output.secret(dict(values[secret.name])),
            },
            pulumi.ResourceOptions.merge(
                parent,
                pulumi.ResourceOptions(
                    provider=provider,
                    depends_on=[gate],
                    aliases=list(moved(f"{spec.name}-secret-{secret.name}")),
                ),
            ),
            # What pulumi_kubernetes.core.v1.Secret adds: the values stay encrypted as outputs.
            secret_outputs=("data", "stringData"),
        )
        for secret in spec.secrets
    ]


def _digest(values: Sequence[Any]) -> str:
    """sha256 over the Secret values in declaration order (length-prefixed: no two lists of
    values feed the same bytes)."""
    digest = hashlib.sha256()
    for value in values:
        encoded = str(value).encode()
        digest.update(b"%d:" % len(encoded))
        digest.update(encoded)
    return digest.hexdigest()


def restart_environment(
    package: LoadedPackage,
    config: CatalogConfig,
    workloads: Sequence[Workload],
    values: Mapping[str, Mapping[str, pulumi.Output[str]]],
    secret: SecretSpec,
) -> dict[str, pulumi.Input[str]]:
    """What `kptstep.py restart` needs to restart `workloads` when `secret` changes; the digest
    of its values is a Pulumi secret. Neither the package's digest nor the re-apply generation:
    a re-apply never restarts anything."""
    spec = package.spec
    ordered = [values[secret.name][k] for k, _config_key in secret.data]
    digest: pulumi.Output[str] = pulumi.Output.secret(pulumi.Output.all(*ordered).apply(_digest))
    return {
        kptstep.ENV_PACKAGE: spec.name,
        kptstep.ENV_KUBECONFIG: config.kubeconfig,
        kptstep.ENV_CONTEXT: config.context,
        kptstep.ENV_STACK: pulumi.get_stack(),
        kptstep.ENV_RECONCILE_TIMEOUT: str(spec.reconcile_timeout),
        kptstep.ENV_WORKLOADS: json.dumps([w.as_step_input() for w in workloads]),
        kptstep.ENV_SECRETS_DIGEST: digest,
    }


def declare_restart(
    package: LoadedPackage,
    config: CatalogConfig,
    *,
    workloads: Mapping[str, Sequence[Workload]],
    values: Mapping[str, Mapping[str, pulumi.Output[str]]],
    parent: pulumi.ResourceOptions,
    after: Sequence[pulumi.Resource],
) -> list[command.local.Command]:
    """`<package>-restart-<secret>` for each Secret a workload of the package references
    (`workloads`: by Secret name, from `workloads_by_secret`)."""
    spec = package.spec
    restarts = []
    for secret in spec.secrets:
        used = workloads.get(secret.name, ())
        if not used:
            continue
        # Each workload: a restart, then a rollout status bounded by the reconcile timeout.
        deadline = len(used) * (spec.reconcile_timeout + BACKSTOP_SECONDS)
        # With one Secret, the restart had the package's name only, and the same environment.
        former = [pulumi.Alias(name=f"{spec.name}-restart")] if len(spec.secrets) == 1 else []
        restarts.append(
            command.local.Command(
                f"{spec.name}-restart-{secret.name}",
                # Created with the Secrets: the workloads start with the current values already.
                create=None,
                update=_RESTART,
                environment=restart_environment(package, config, used, values, secret),
                add_previous_output_in_env=False,
                opts=pulumi.ResourceOptions.merge(
                    parent,
                    pulumi.ResourceOptions(
                        depends_on=list(after),
                        custom_timeouts=pulumi.CustomTimeouts(update=f"{deadline}s"),
                        aliases=former,
                    ),
                ),
            )
        )
    return restarts
