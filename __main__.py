"""kpt-catalog: the user's kpt catalog as a Pulumi graph. Reads config, builds, exports."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_kubernetes as kubernetes

from components.catalog import load
from components.config import structured_getter
from components.kpt_package import KptPackage, KptPackageArgs

catalog = load(  # every problem of config and catalog, before any resource is registered
    structured_getter(pulumi.Config("kpt-catalog")),
    stack=pulumi.get_stack(),
    base_dir=Path(__file__).resolve().parent,
)
config = catalog.config
for warning in catalog.warnings:
    pulumi.log.warn(warning)

# One explicit provider, with the same kubeconfig and context kpt and kubectl get. The fixed
# cluster identifier keeps a changed server URL from replacing every native object.
provider = kubernetes.Provider(
    "kubernetes",
    kubeconfig=config.kubeconfig or None,
    context=config.context or None,
    cluster_identifier=config.cluster_identifier,
)

deployed: dict[str, KptPackage] = {}
for package in catalog.packages:  # deploy order: everything a package needs exists already
    needs = tuple(deployed[need] for need in package.spec.needs)
    deployed[package.spec.name] = KptPackage(
        package.spec.name,
        KptPackageArgs(package=package, config=config, provider=provider, needs=needs),
        pulumi.ResourceOptions(depends_on=list(needs), protect=package.spec.protect),
    )

pulumi.export("deployOrder", list(catalog.graph.deploy_order))
pulumi.export("rollbackOrder", list(catalog.graph.rollback_order))
pulumi.export("digests", {name: component.digest for name, component in deployed.items()})
pulumi.export("objects", {name: component.objects for name, component in deployed.items()})
pulumi.export("addresses", {name: component.addresses for name, component in deployed.items()})
