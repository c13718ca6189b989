"""`KptPackage`: one kpt package of the catalog as a Pulumi component.

Children, in the order they run (each depends on the one before; the first on every package this
one needs, so the edges are explicit in state):

1. `<package>-inventory`    checks the rollback's inputs; its delete runs `kpt live destroy`
   `<package>-wait-before`  readiness gates before the apply (only when configured)
2. `<package>-apply`        `kpt live apply` + `kpt live status` (no delete)
3. `<package>-wait-after`   readiness gates after the apply (only when configured)
4. `<package>-<kind>-<name>` native Kubernetes objects from `manifests`

With `secrets` (see `components/secrets.py`): `<package>-wait-namespace` and
`<package>-secret-<name>` beside the apply, before the native objects; `<package>-restart-<secret>`
after the apply, which restarts the workloads that use a Secret when one of its values changes.

Why it is built this way:
- A change of the package's files must be an *update* that re-runs the apply, never a
  replacement (a replacement of a kpt Command runs `kpt live destroy`). So the digest goes into
  `environment`, and no Command here has `triggers` or `replace_on_changes`.
- Commands are fixed strings; every value reaches the step runner through `environment`, so a
  path holding spaces, quotes or `$(...)` is passed to kpt literally and runs nothing.
- A Command whose create fails is not recorded in state, so the rollback cannot belong to the
  apply: a failed first `kpt live apply` would leave applied objects that no `pulumi destroy`
  removes. The inventory Command is created first (it touches nothing on the cluster) and holds
  the `kpt live destroy`; its environment has everything that needs (inventory name, namespace,
  ID, cluster access, deadline) and no digest, so file edits never update it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_command as command
import pulumi_kubernetes as kubernetes

from components import kptstep
from components.catalog import LoadedPackage
from components.config import CatalogConfig, PackageSpec, WaitSpec
from components.environment import apply_environment, inventory_environment
from components.gates import BACKSTOP_SECONDS, declare_gate
from components.native import KubernetesObject
from components.secrets import declare_restart, declare_secrets, workloads_by_secret

__all__ = ["KptPackage", "KptPackageArgs", "KubernetesObject"]

TYPE_TOKEN = "kpt-catalog:index:KptPackage"  # noqa: S105  (a type token, not a password)
_APPLY = kptstep.step_command(kptstep.SUBCOMMAND_APPLY)
_DESTROY = kptstep.step_command(kptstep.SUBCOMMAND_DESTROY)
_INVENTORY = kptstep.step_command(kptstep.SUBCOMMAND_INVENTORY)
_INVENTORY_SECONDS = 60  # the inventory step only reads its environment


@dataclass(frozen=True)
class KptPackageArgs:
    """What a `KptPackage` deploys and how it reaches the cluster."""

    package: LoadedPackage
    """The package, its inventory, digest and native manifests."""
    config: CatalogConfig
    """Cluster access (kubeconfig, context) and the re-apply generation."""
    provider: kubernetes.Provider
    """The explicit provider for native manifests (same kubeconfig and context as kpt)."""
    needs: tuple[pulumi.Resource, ...] = ()
    """Components of the packages this one needs; its first step waits for all of them."""
    secret_values: Mapping[str, Mapping[str, pulumi.Output[str]]] = field(default_factory=dict)
    """Data of each of the package's `secrets`, by Secret name: key -> secret config value."""
    other_packages: tuple[str, ...] = ()
    """The names (and former names) of the graph's other packages: a native object or Secret
    moved here from one of them is the same resource to Pulumi (`moved_from`)."""


class KptPackage(pulumi.ComponentResource):
    """A kpt package applied, gated and rolled back as one unit of the catalog graph."""

    digest: pulumi.Output[str]
    """sha256 of the package's files at the last deploy."""
    objects: pulumi.Output[int]
    """Objects kpt reported applied, from the step's result line."""
    addresses: pulumi.Output[dict[str, str]]
    """What users look for after a deploy: the values `waitAfter` reports read (LoadBalancer
    addresses), and the tailnet IPs of native objects that have them (the Connector)."""

    def __init__(
        self, name: str, args: KptPackageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        renamed = _renamed_from(name, args.package.spec.former_names)
        super().__init__(TYPE_TOKEN, name, None, pulumi.ResourceOptions.merge(opts, renamed))
        package = args.package
        spec = package.spec
        child = pulumi.ResourceOptions(parent=self)
        upstream: list[pulumi.Resource] = list(args.needs)

        stack = {kptstep.ENV_STACK: pulumi.get_stack()}  # which log the steps append to
        inventory = command.local.Command(
            f"{name}-inventory",
            create=_INVENTORY,
            update=_INVENTORY,
            delete=_DESTROY,
            environment={**inventory_environment(package, args.config), **stack},
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    depends_on=list(args.needs),
                    custom_timeouts=pulumi.CustomTimeouts(
                        create=f"{_INVENTORY_SECONDS}s",
                        update=f"{_INVENTORY_SECONDS}s",
                        delete=f"{spec.destroy_timeout + BACKSTOP_SECONDS}s",
                    ),
                ),
            ),
        )

        before = self._gate(args, child, "wait-before", spec.wait_before, upstream)
        upstream = [inventory] if before is None else [inventory, before]
        secrets = declare_secrets(
            package,
            args.config,
            provider=args.provider,
            values=args.secret_values,
            parent=child,
            beside_apply=upstream,
            rollback=[inventory],
            moved=lambda resource_name: moved_from(resource_name, name, args.other_packages),
        )

        apply_deadline = spec.apply_timeout + spec.reconcile_timeout + BACKSTOP_SECONDS
        apply = command.local.Command(
            f"{name}-apply",
            create=_APPLY,
            update=_APPLY,
            environment={
                **apply_environment(package, args.config),
                **stack,
                **_inventory_policy(spec),
            },
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    depends_on=upstream,
                    custom_timeouts=pulumi.CustomTimeouts(
                        create=f"{apply_deadline}s", update=f"{apply_deadline}s"
                    ),
                ),
            ),
        )
        upstream = [apply]
        if secrets:
            declare_restart(
                package,
                args.config,
                workloads=workloads_by_secret(package.directory, spec.secrets),
                values=args.secret_values,
                parent=child,
                after=[apply, *secrets],
            )

        after = self._gate(args, child, "wait-after", spec.wait_after, upstream)
        if after is not None:
            upstream = [after]

        statuses: dict[str, pulumi.Output[Any]] = {}
        for manifest, documents in package.manifests:
            for document in documents:
                body = _with_wait_for(document.body, manifest.wait_for)
                object_name = f"{name}-{document.kind.kind.lower()}-{document.name}"
                native = KubernetesObject(
                    object_name,
                    body,
                    pulumi.ResourceOptions.merge(
                        child,
                        pulumi.ResourceOptions(
                            aliases=moved_from(object_name, name, args.other_packages),
                            provider=args.provider,
                            # After the Secrets: deleted before them (an operator may need its
                            # credentials to release the object's finalizer).
                            depends_on=[*upstream, *secrets],
                            custom_timeouts=pulumi.CustomTimeouts(
                                create=f"{manifest.timeout}s", update=f"{manifest.timeout}s"
                            ),
                        ),
                    ),
                )
                statuses[object_name] = native.status

        self.digest = pulumi.Output.from_input(package.digest)
        self.objects = apply.stdout.apply(
            lambda out: int(str(kptstep.parse_result(out).get("objects", 0)))
        )
        reports: pulumi.Output[Any] = (
            after.stdout.apply(lambda out: kptstep.parse_result(out).get("reports", {}))
            if after is not None
            else pulumi.Output.from_input({})
        )
        # Output.all() of nothing is a list, not a dict.
        live: pulumi.Output[Any] = (
            pulumi.Output.all(**statuses) if statuses else pulumi.Output.from_input({})
        )
        self.addresses = pulumi.Output.all(reports, live).apply(
            lambda both: _addresses(both[0], both[1])
        )
        self.register_outputs(
            {"digest": self.digest, "objects": self.objects, "addresses": self.addresses}
        )

    def _gate(
        self,
        args: KptPackageArgs,
        child: pulumi.ResourceOptions,
        phase: str,
        waits: tuple[WaitSpec, ...],
        upstream: list[pulumi.Resource],
    ) -> command.local.Command | None:
        """A Command running `waits` (no delete: a gate has nothing to roll back)."""
        if not waits:
            return None
        return declare_gate(
            args.package, args.config, phase, waits, parent=child, depends_on=upstream
        )


def _inventory_policy(spec: PackageSpec) -> dict[str, str]:
    """`adopt: true`: kpt may take over objects outside any inventory. Absent otherwise, so that
    stacks deployed before the option existed see no change."""
    return {kptstep.ENV_INVENTORY_POLICY: "adopt"} if spec.adopt else {}


def moved_from(
    resource_name: str, package: str, others: Sequence[str]
) -> list[pulumi.Input[pulumi.Alias]]:
    """Aliases naming `resource_name` (a child of `package`, named after it) as a child of each
    of `others`: a native object moved from one package to another in packages.yaml is then
    found in state under its old URN and kept, instead of being created (taken over by the
    provider's upsert) and then deleted with the old resource (the hazard pulumi-kubernetes'
    4.29 changelog warns of). Aliases to URNs that are not in state are ignored by the engine."""
    suffix = resource_name.removeprefix(package)
    return [
        pulumi.Alias(name=other + suffix, parent=pulumi.create_urn(other, TYPE_TOKEN))
        for other in others
        if other != package
    ]


def _renamed_from(name: str, former_names: tuple[str, ...]) -> pulumi.ResourceOptions:
    """Aliases to the URNs the component and each child had under the package's former names,
    so that a renamed package is the same resources to Pulumi: nothing is destroyed or re-applied.

    A transformation on the component runs for it and for every child (the SDK hands a parent's
    transformations to its children: pulumi/resource.py, `Resource.__init__`). Each child's name
    starts with the package's name, so its former name is the former package name plus the same
    suffix, under the former component. The engine derives the same child aliases from the
    component's (pulumi/pkg/resource/deploy/step_generator.go, `inheritedChildAlias`; the SDK's
    own `all_aliases` in pulumi/runtime/resource.py does it for engines without alias specs); they
    are given explicitly so that state, preview and the tests show them."""
    if not former_names:
        return pulumi.ResourceOptions()

    def alias(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult:
        suffix = args.name.removeprefix(name)
        if args.type_ == TYPE_TOKEN and not suffix:
            aliases = [pulumi.Alias(name=old) for old in former_names]
        else:
            aliases = [
                pulumi.Alias(name=old + suffix, parent=pulumi.create_urn(old, TYPE_TOKEN))
                for old in former_names
            ]
        extra = pulumi.ResourceOptions(aliases=list(aliases))
        return pulumi.ResourceTransformationResult(
            args.props, pulumi.ResourceOptions.merge(args.opts, extra)
        )

    return pulumi.ResourceOptions(transformations=[alias])


def _addresses(reports: dict[str, Any], statuses: dict[str, Any]) -> dict[str, str]:
    """Wait reports plus `status.tailnetIPs` of the native objects that report them."""
    found = {str(key): str(value) for key, value in reports.items()}
    for object_name, status in statuses.items():
        ips = status.get("tailnetIPs") if isinstance(status, dict) else None
        if ips:
            found[object_name] = ",".join(str(ip) for ip in ips)
    return found


def _with_wait_for(body: dict[str, Any], wait_for: str) -> dict[str, Any]:
    """`body` with the provider's `pulumi.com/waitFor` annotation when a condition is set."""
    if not wait_for:
        return body
    metadata = dict(body.get("metadata") or {})
    metadata["annotations"] = {
        **(metadata.get("annotations") or {}),
        "pulumi.com/waitFor": wait_for,
    }
    return {**body, "metadata": metadata}
