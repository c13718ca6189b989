"""The exit codes of every `kpt-catalog` subcommand: one code per condition, whichever command
meets it, so that a script can tell them apart by the code alone."""

from __future__ import annotations

__all__ = ["CONFIG", "DIFFERS", "FAILED", "INTERRUPTED", "OK", "TABLE", "UNREACHABLE"]

OK = 0
"""Done: in sync, healthy, deployed, rolled back, or nothing to do."""
DIFFERS = 1
"""The cluster is not what the catalog says: `diff` found differences, `status` an unhealthy
package."""
CONFIG = 2
"""A usage or configuration error (a bad option, packages.yaml, a stack file, a missing tool,
kubeconfig or context): nothing was run against the cluster."""
UNREACHABLE = 3
"""The cluster did not answer: nothing was checked or changed."""
FAILED = 4
"""A run failed part way: a check could not finish (a kubectl error, TIMEOUT), or `up`,
`reapply`, `destroy` or `preview` failed; what is known is printed, the rest is in the logs."""
INTERRUPTED = 130
"""Stopped by Ctrl-C."""

TABLE = (
    (OK, "done: in sync, healthy, deployed or rolled back"),
    (DIFFERS, "differences (diff) or an unhealthy package (status)"),
    (CONFIG, "usage or configuration error; nothing ran against the cluster"),
    (UNREACHABLE, "the cluster did not answer; nothing was checked or changed"),
    (FAILED, "a check could not finish, or up/reapply/destroy/preview failed"),
    (INTERRUPTED, "interrupted (Ctrl-C)"),
)
"""What `kpt-catalog --help` and the README print."""
