"""`kpt-catalog <command> [options]`: the one command; `kpt-catalog <command> --help` says more."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from kpt_catalog import exits

__all__ = ["COMMANDS", "main", "usage"]


def _plan(argv: Sequence[str]) -> int:
    from kpt_catalog import plan  # each command loads only what it needs

    return plan.main(argv)


def _diff(argv: Sequence[str]) -> int:
    from kpt_catalog.diff import command

    return command.main(argv)


def _status(argv: Sequence[str]) -> int:
    from kpt_catalog import status

    return status.main(argv)


def _stack(argv: Sequence[str]) -> int:
    from kpt_catalog import stack

    return stack.main(argv)


def _deploy(command: str) -> Callable[[Sequence[str]], int]:
    def run(argv: Sequence[str]) -> int:
        from kpt_catalog import deploy

        return deploy.main(command, argv)

    return run


def _fleet(argv: Sequence[str]) -> int:
    from kpt_catalog.fleet import command

    return command.main(argv)


COMMANDS: dict[str, tuple[str, Callable[[Sequence[str]], int]]] = {
    "plan": ("the deploy waves and rollback order; offline, no cluster", _plan),
    "diff": ("what up would change, object by object, from the cluster's dry run", _diff),
    "status": ("each package's health on the cluster; changes nothing", _status),
    "preview": ("Pulumi's preview, then the objects of each changing package", _deploy("preview")),
    "up": ("deploy the catalog (asks first; --yes does not)", _deploy("up")),
    "reapply": ("re-apply one package to correct its drift: --package NAME", _deploy("reapply")),
    "destroy": ("roll back in reverse order, keeping protected packages", _deploy("destroy")),
    "destroy-all": (
        "remove everything, kube-vip too: only when the cluster goes",
        _deploy("destroy-all"),
    ),
    "stack": ("stack init NAME --kubeconfig F --context C; stack set-secret NAME KEY", _stack),
    "fleet": ("one catalog to the clusters of fleet.yaml: fleet plan, fleet up --yes", _fleet),
}


def usage() -> str:
    """What `kpt-catalog --help` prints: the commands and the exit codes."""
    lines = [
        "usage: kpt-catalog <command> [--stack NAME] [options]",
        "",
        "Deploys an ordered catalog of kpt packages to a cluster, and rolls it back in reverse.",
        "",
        "commands:",
        *(f"  {name:<12} {text}" for name, (text, _) in COMMANDS.items()),
        "",
        "every command takes --stack NAME (default dev: Pulumi.dev.yaml); plan, diff and status",
        "take --output json; diff, status and reapply take --package NAME.",
        "",
        "exit codes (the same in every command):",
        *(f"  {code:<4} {text}" for code, text in exits.TABLE),
        "",
        "NO_COLOR=1 turns colour off; it is off anyway when the output is not a terminal.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return exits.OK if args else exits.CONFIG
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        import difflib

        nearest = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"; did you mean {nearest[0]}?" if nearest else ""
        print(f"kpt-catalog: no command {name!r}{hint}\n\n{usage()}", file=sys.stderr)
        return exits.CONFIG
    try:
        return COMMANDS[name][1](rest)
    except SystemExit as stop:  # argparse: --help is 0, a usage error 2 (exits.CONFIG)
        return stop.code if isinstance(stop.code, int) else exits.CONFIG
    except KeyboardInterrupt:
        print(f"kpt-catalog {name}: interrupted", file=sys.stderr)
        return exits.INTERRUPTED
