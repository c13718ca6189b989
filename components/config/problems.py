"""Collecting every problem of a configuration, so that one run reports all of them."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from components.config.durations import parse_duration

__all__ = [
    "Problems",
]


class Problems:
    """Collects problems so that one run reports all of them."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.items.append(f"{key}: {message}")

    def string(self, key: str, value: object, *, required: bool = False, default: str = "") -> str:
        if value is None:
            if required:
                self.add(key, "is required (a string)")
            return default
        if not isinstance(value, str) or (required and not value.strip()):
            self.add(key, f"expected a non-empty string, found {value!r}")
            return default
        return value

    def boolean(self, key: str, value: object) -> bool:
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.add(key, f"expected true or false, found {value!r}")
        return False

    def duration(self, key: str, value: object, default: int) -> int:
        if value is None:
            return default
        try:
            return parse_duration(value)  # type: ignore[arg-type]  # checked inside
        except ValueError as error:
            self.add(
                key, f"expected a duration greater than zero such as 90s, 3m or 1h30m: {error}"
            )
            return default

    def listing(self, key: str, value: object) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.add(key, f"expected a list, found {type(value).__name__} {value!r}")
            return []
        return value

    def unknown_keys(self, key: str, value: Mapping[str, Any], allowed: frozenset[str]) -> None:
        for extra in sorted(set(value) - allowed, key=str):
            nearest = difflib.get_close_matches(str(extra), sorted(allowed), n=1, cutoff=0.6)
            hint = f"did you mean {nearest[0]!r}? " if nearest else ""
            self.add(
                f"{key}.{extra}",
                f"unknown key; {hint}expected one of {', '.join(sorted(allowed))}",
            )
