"""Serve this project's program to the Pulumi CLI when no Python language host is installed.

    python -m kpt_catalog.program_host pulumi up --stack dev [args...]

The CLI normally starts the program through its `pulumi-language-python` plugin. Where that
plugin is missing (a CLI built from its Go module: the plugin's module is not published where it
was built), this does what the Python Automation API does for an inline program: it serves
`__main__.py` from this process over the language-runtime protocol and passes its address to the
CLI with `--client` (pulumi/pulumi sdk/python/lib/pulumi/automation/_stack.py; the CLI accepts
`--client` on up, preview and refresh since 3.181). Every other argument goes to the CLI as
given, its terminal and exit status are the CLI's own.
"""

from __future__ import annotations

import os
import runpy
import signal
import subprocess
import sys
from concurrent import futures
from pathlib import Path

import grpc  # type: ignore[import-untyped]  # grpcio ships no type hints
from pulumi.automation._server import LanguageServer  # the Automation API's own server
from pulumi.runtime.proto import language_pb2_grpc

__all__ = ["PROGRAM_COMMANDS", "main"]

ROOT = Path(__file__).resolve().parent.parent
PROGRAM_COMMANDS = frozenset({"up", "update", "preview", "pre", "refresh"})
"""The CLI commands that run the program, and so take `--client`."""


def _program() -> None:
    runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")


def main(argv: list[str]) -> int:
    """Run `argv` (a pulumi command line), serving the program to it when it runs one."""
    if len(argv) < 2 or Path(argv[0]).name != "pulumi":
        usage = "usage: python -m kpt_catalog.program_host pulumi <command> [args...]"
        print(usage, file=sys.stderr)
        return 2
    if argv[1] not in PROGRAM_COMMANDS:
        return subprocess.call(argv)
    os.chdir(ROOT)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(LanguageServer(_program), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with subprocess.Popen([*argv, f"--client=127.0.0.1:{port}"]) as cli:
            # Ctrl-C reaches the CLI through the terminal's process group; this process only
            # waits for it, so that the program keeps being served while the CLI cancels.
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                return cli.wait()
            finally:
                signal.signal(signal.SIGINT, previous)
    finally:
        server.stop(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
