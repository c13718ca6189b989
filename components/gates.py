"""The gate Command shared by a package's `<package>-wait-before`, `<package>-wait-after` and
`<package>-wait-namespace`: `kptstep.py wait` for one phase's waits, with no delete (a gate has
nothing to roll back).

Its environment carries the package's digest and the re-apply generation (`gate_environment`),
so a gate re-runs with its package and is never replaced.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_command as command

from components import kptstep
from components.catalog import LoadedPackage
from components.config import CatalogConfig, WaitSpec
from components.environment import gate_environment

__all__ = ["BACKSTOP_SECONDS", "declare_gate"]

# Pulumi kills a Command at its custom timeout; the step's own deadlines fire first and say why.
BACKSTOP_SECONDS = 120
_WAIT = kptstep.step_command(kptstep.SUBCOMMAND_WAIT)


def declare_gate(
    package: LoadedPackage,
    config: CatalogConfig,
    phase: str,
    waits: Sequence[WaitSpec],
    *,
    parent: pulumi.ResourceOptions,
    depends_on: Sequence[pulumi.Resource],
) -> command.local.Command:
    """`<package>-<phase>`: runs `waits` in order after `depends_on`, within their timeouts."""
    deadline = sum(w.timeout for w in waits) + BACKSTOP_SECONDS * len(waits)
    return command.local.Command(
        f"{package.spec.name}-{phase}",
        create=_WAIT,
        update=_WAIT,
        environment={
            **gate_environment(package, config, phase, waits),
            kptstep.ENV_STACK: pulumi.get_stack(),  # which log the step appends to
        },
        add_previous_output_in_env=False,
        opts=pulumi.ResourceOptions.merge(
            parent,
            pulumi.ResourceOptions(
                depends_on=list(depends_on),
                custom_timeouts=pulumi.CustomTimeouts(create=f"{deadline}s", update=f"{deadline}s"),
            ),
        ),
    )
