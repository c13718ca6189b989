"""Print pip constraints pinning every requirement of requirements.txt to its lower bound:
`make test-floor` installs them, so the suite runs on the oldest versions the ranges admit."""

from __future__ import annotations

import re
import sys
from pathlib import Path

_LOWER = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*>=\s*([0-9][^,;\s#]*)")


def floor_constraints(text: str) -> list[str]:
    """`name==version` for each `name>=version` line; a requirement without a lower bound is an
    error (its floor could not be tested)."""
    pins = []
    for number, line in enumerate(text.splitlines(), start=1):
        requirement = line.split("#", 1)[0].strip()
        if not requirement:
            continue
        match = _LOWER.match(requirement)
        if match is None:
            raise ValueError(f"requirements.txt line {number}: {requirement!r} has no >= bound")
        pins.append(f"{match.group(1)}=={match.group(2)}")
    return pins


def main() -> int:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "requirements.txt")
    try:
        print("\n".join(floor_constraints(source.read_text())))
    except (OSError, ValueError) as error:
        print(f"floor: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
