"""The README and the pages it links: every link leads to a page that exists, every command it
shows is one the project has, and the first screen keeps its two set-up commands."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from kpt_catalog import cli
from tests.harness import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_COMMAND = re.compile(r"\./kpt-catalog ([a-z-]+)((?: [^`|#\n]*)?)")
_MAKE = re.compile(r"`make ([a-z][a-z0-9-]*)")


def _phony_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    line = next(line for line in makefile.splitlines() if line.startswith(".PHONY:"))
    return set(line.split(":", 1)[1].split())


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_leads_to_a_page_that_exists(page: Path) -> None:
    for target in _LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name} links to {target}, which does not exist"
        if anchor and file.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", file.read_text(), re.MULTILINE)
            slugs = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
            assert anchor in slugs, f"{page.name} links to #{anchor}, no heading of {file.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_make_target_shown_exists(page: Path) -> None:
    targets = _phony_targets()
    for target in _MAKE.findall(page.read_text()):
        assert target in targets, f"{page.name} shows `make {target}`, which the Makefile lacks"


def test_every_command_the_readme_shows_is_accepted() -> None:
    readme = (ROOT / "README.md").read_text()
    shown = _COMMAND.findall(readme)
    assert {name for name, _ in shown} >= set(cli.COMMANDS) - {"stack"} | {"stack"}
    for name, rest in shown:
        assert name in cli.COMMANDS, f"README shows ./kpt-catalog {name}, no such command"
        words = ["example" if w == "NAME" else w for w in shlex.split(rest.split("  #")[0])]
        if "..." in words:
            continue  # the table's `stack init NAME ...`: an outline, not a command line
        # each shown command line parses: its options exist (--help stops before running)
        result = subprocess.run(
            [sys.executable, "-m", "kpt_catalog", name, *words, "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"./kpt-catalog {name}{rest}: {result.stderr}"


def test_the_readme_starts_with_its_two_set_up_commands_and_stays_short() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[2:6] == [
        "```sh",
        lines[3],
        lines[4],
        "```",
    ]
    assert lines[3].startswith("make up ") and lines[4].startswith("make test ")
    assert len(lines) <= 170, f"the README is {len(lines)} lines: move detail to docs/"
    # the credentials the first `up` needs are on the first screens, not at the end
    first = "\n".join(lines[:80])
    assert "stack set-secret" in first and "tailscaleOauthClientSecret" in first
