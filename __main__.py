"""kpt-catalog: the user's kpt catalog as a Pulumi graph. Reads config, builds, exports."""

from __future__ import annotations

import os
from pathlib import Path

import pulumi
import pulumi_kubernetes as kubernetes
from pulumi.runtime import config as runtime_config

from components.catalog import load
from components.config import graph_and_stack, structured_getter
from components.config.files import ROLLOUT_VARIABLE
from components.kpt_package import KptPackage, KptPackageArgs
from components.secrets import check_secret_config, secret_values

PROJECT_DIR = Path(__file__).resolve().parent
NAMESPACE = "kpt-catalog:"

# Every key the stack was given, so that a misspelt one is reported rather than ignored. The
# language host hands the program its config as the JSON of `PULUMI_CONFIG`; `set_all_config`
# (mocks, the Automation API's inline programs) fills `CONFIG` instead. Both are read by
# `pulumi.runtime.config.get_config` (pulumi/runtime/config.py), so the union is the whole set.
given = {*runtime_config.CONFIG.get(), *runtime_config.get_config_env()}
read = structured_getter(pulumi.Config("kpt-catalog"))
values, source_warnings = graph_and_stack(
    {
        key.removeprefix(NAMESPACE): read(key.removeprefix(NAMESPACE))
        for key in given
        if key.startswith(NAMESPACE)
    },
    project_dir=PROJECT_DIR,
    stack_file=f"Pulumi.{pulumi.get_stack()}.yaml",
    rollout=os.environ.get(ROLLOUT_VARIABLE, ""),  # a fleet rollout's catalog (kpt_catalog/fleet)
)
catalog = load(  # every problem of config and catalog, before any resource is registered
    values, stack=pulumi.get_stack(), base_dir=PROJECT_DIR
)
config = catalog.config
for warning in (*source_warnings, *catalog.warnings):
    pulumi.log.warn(warning)

# Credentials: every value a declared Secret reads is set, and set with --secret, before anything
# is registered. The language host marks those keys (pulumi-language-python-exec:
# set_all_config(config, get_config_secret_keys_env()); read by pulumi.runtime.is_config_secret).
stack_config = pulumi.Config("kpt-catalog")
check_secret_config(
    config,
    stack_config.get,
    lambda key: pulumi.runtime.is_config_secret(stack_config.full_key(key)),
)

# One explicit provider, with the same kubeconfig and context kpt and kubectl get, as written:
# the provider expands `~` and reads a relative path from its working directory, the project
# directory (pulumi-kubernetes provider/pkg/provider/util.go, parseKubeconfigString; the engine
# starts providers in the project directory, pulumi pkg/resource/plugin/provider_plugin.go). Never
# None: the provider would then read `$KUBECONFIG` of whatever shell runs it as the kubeconfig's
# contents. The fixed cluster identifier keeps a changed server URL from replacing native objects.
provider = kubernetes.Provider(
    "kubernetes",
    kubeconfig=config.kubeconfig,
    context=config.context,
    cluster_identifier=config.cluster_identifier,
    # Taking over a running cluster: an object that exists already (the Connector `kubectl apply`
    # made) is server-side applied in place, never refused, deleted or recreated
    # (pulumi-kubernetes provider/pkg/await/await.go: with server-side apply and this option,
    # create is an apply PATCH).
    upsert_existing_objects=True,
    # A changed Secret value is an update of the Secret, not a delete and create
    # (provider/pkg/provider/diff.go: forceNewProperties replaces Secrets without it).
    enable_secret_mutable=True,
)

# Every name a package of the graph has or had: a native object moved between two of them keeps
# its identity (components.kpt_package.moved_from).
package_names = tuple(
    dict.fromkeys(n for p in catalog.packages for n in (p.spec.name, *p.spec.former_names))
)
deployed: dict[str, KptPackage] = {}
for package in catalog.packages:  # deploy order: everything a package needs exists already
    needs = tuple(deployed[need] for need in package.spec.needs)
    deployed[package.spec.name] = KptPackage(
        package.spec.name,
        KptPackageArgs(
            package=package,
            config=config,
            provider=provider,
            needs=needs,
            secret_values={
                secret.name: secret_values(stack_config, secret) for secret in package.spec.secrets
            },
            other_packages=tuple(
                n
                for n in package_names
                if n != package.spec.name and n not in package.spec.former_names
            ),
        ),
        pulumi.ResourceOptions(depends_on=list(needs), protect=package.spec.protect),
    )

pulumi.export("deployOrder", list(catalog.graph.deploy_order))
pulumi.export("rollbackOrder", list(catalog.graph.rollback_order))
pulumi.export("digests", {name: component.digest for name, component in deployed.items()})
pulumi.export("objects", {name: component.objects for name, component in deployed.items()})
pulumi.export("addresses", {name: component.addresses for name, component in deployed.items()})
