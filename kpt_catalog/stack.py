"""`kpt-catalog stack`: a stack (one cluster) without the Pulumi CLI.

    kpt-catalog stack init NAME --kubeconfig FILE --context CONTEXT [--catalog-dir DIR]
    kpt-catalog stack set-secret NAME KEY      (the value on stdin; needs the Pulumi CLI)

`init` writes `Pulumi.NAME.yaml`, a plain file that may be edited by hand: the keys it holds are
in docs/configuration.md. It checks what it can first (the kubeconfig has the context, the
catalog directory exists) and never overwrites a stack file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from components.config import ConfigError
from kpt_catalog import clusterops, exits, stackfile

__all__ = ["main", "stack_file_text"]


def stack_file_text(name: str, kubeconfig: str, context: str, catalog_dir: str | None) -> str:
    """The stack file `init` writes: commented, the values quoted by YAML's own dumper."""
    config: dict[str, str] = {
        "kpt-catalog:kubeconfig": kubeconfig,
        "kpt-catalog:context": context,
    }
    if catalog_dir:
        config["kpt-catalog:catalogDir"] = catalog_dir
    body = yaml.safe_dump({"config": config}, sort_keys=False, default_flow_style=False)
    return (
        f"# Stack {name}: the cluster kpt-catalog deploys to. A plain file: edit it by hand.\n"
        "# The package graph is in packages.yaml; the keys are described in "
        "docs/configuration.md.\n"
        "# Secrets go in with: kpt-catalog stack set-secret "
        f"{name} <key>   (never written here by hand)\n" + body
    )


def _init(args: argparse.Namespace) -> int:
    name = args.name
    if not stackfile.STACK_NAME.fullmatch(name):
        print(
            f"stack init: {name!r} is not a stack name: letters, digits, '-', '_' and '.'",
            file=sys.stderr,
        )
        return exits.CONFIG
    target = stackfile.ROOT / f"Pulumi.{name}.yaml"
    if target.exists():
        print(
            f"stack init: {target.name} already exists; edit it, or remove it first",
            file=sys.stderr,
        )
        return exits.CONFIG
    kubeconfig = str(Path(args.kubeconfig).expanduser())
    problem = clusterops.cluster_problem(clusterops.Cluster(kubeconfig, args.context))
    if problem and not args.no_check:
        print(f"stack init: {problem}", file=sys.stderr)
        print("stack init: nothing written (--no-check writes it anyway)", file=sys.stderr)
        return exits.CONFIG
    if args.catalog_dir and not Path(args.catalog_dir).expanduser().is_dir() and not args.no_check:
        print(
            f"stack init: --catalog-dir {args.catalog_dir} is not a directory on this machine; "
            "nothing written (--no-check writes it anyway)",
            file=sys.stderr,
        )
        return exits.CONFIG
    target.write_text(stack_file_text(name, kubeconfig, args.context, args.catalog_dir))
    print(f"wrote {target.name}")
    try:
        stackfile.load_stack_config(name)
    except ConfigError as error:
        print(f"stack {name} is written, but the catalog has problems to fix:\n{error}")
        return exits.CONFIG
    print(f"next: kpt-catalog plan --stack {name}, then kpt-catalog diff --stack {name}")
    return exits.OK


def _set_secret(args: argparse.Namespace) -> int:
    from kpt_catalog import deploy  # the engine only for this subcommand

    if not (stackfile.ROOT / f"Pulumi.{args.name}.yaml").is_file():
        print(
            f"stack set-secret: Pulumi.{args.name}.yaml does not exist; create it with "
            f"kpt-catalog stack init {args.name} --kubeconfig FILE --context CONTEXT",
            file=sys.stderr,
        )
        return exits.CONFIG
    if sys.stdin.isatty():
        print(f"value of {args.key} (not echoed), then Enter:", file=sys.stderr)
    return deploy.set_secret(args.name, args.key)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kpt-catalog stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="write Pulumi.NAME.yaml for a cluster")
    init.add_argument("name", help="the stack's name, e.g. lab or site-a")
    init.add_argument("--kubeconfig", required=True, help="the cluster's kubeconfig file")
    init.add_argument("--context", required=True, help="its context for this cluster")
    init.add_argument("--catalog-dir", help="where the catalog is read (default: the RKE2 path)")
    init.add_argument(
        "--no-check", action="store_true", help="write it even if the kubeconfig is not here"
    )
    secret = commands.add_parser("set-secret", help="store a secret config value (stdin)")
    secret.add_argument("name", help="the stack")
    secret.add_argument("key", help="the key without kpt-catalog:, e.g. tailscaleClientSecret")
    args = parser.parse_args(argv)
    if args.command == "init":
        return _init(args)
    return _set_secret(args)
