"""How the commands print: colour only on a terminal and never with NO_COLOR
(https://no-color.org), and `--output json` for scripts, with the human lines moved to stderr."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from typing import IO, Any

__all__ = ["SCHEMA_VERSION", "Printer", "add_output_argument", "colour_wanted"]

SCHEMA_VERSION = 1
"""Raised only when a field of the JSON output changes meaning or goes away; fields are added
without raising it (docs/commands.md)."""

_CODES = {"green": "32", "yellow": "33", "red": "31", "bold": "1", "dim": "2"}


def colour_wanted(stream: IO[str], env: Mapping[str, str] | None = None) -> bool:
    """Whether to colour what goes to `stream`: a terminal, NO_COLOR unset or empty, and TERM
    other than `dumb`."""
    env = os.environ if env is None else env
    if env.get("NO_COLOR", ""):
        return False
    if env.get("TERM", "") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def add_output_argument(parser: argparse.ArgumentParser) -> None:
    """`--output text|json` (text by default)."""
    parser.add_argument(
        "--output",
        "-o",
        choices=("text", "json"),
        default="text",
        help="json: one JSON document on stdout for scripts; the progress lines go to stderr",
    )


class Printer:
    """Where a command's lines go: stdout in text mode; stderr when stdout carries JSON."""

    def __init__(self, json_output: bool = False) -> None:
        self.json_output = json_output
        self.stream: IO[str] = sys.stderr if json_output else sys.stdout
        self.coloured = colour_wanted(self.stream)

    def line(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    def paint(self, text: str, colour: str) -> str:
        """`text` in `colour` (green, yellow, red, bold, dim) when colour is wanted."""
        if not self.coloured or not text:
            return text
        return f"\033[{_CODES[colour]}m{text}\033[0m"

    def document(self, command: str, body: Mapping[str, Any], code: int) -> None:
        """The JSON document of a run (`--output json` only): the schema version, the command,
        its exit code, then the command's own fields."""
        if not self.json_output:
            return
        whole = {"schemaVersion": SCHEMA_VERSION, "command": command, "exitCode": code, **body}
        sys.stdout.write(json.dumps(whole, indent=2, sort_keys=False) + "\n")
        sys.stdout.flush()
