"""Durations as Go writes them (`90s`, `3m`, `1h30m`): what kpt and kubectl take."""

from __future__ import annotations

import re

__all__ = [
    "format_duration",
    "parse_duration",
]

_GO_DURATION = re.compile(r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+")
_GO_PART = re.compile(r"(\d*)(?:\.(\d*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_NANOSECONDS = {"ns": 1, "us": 10**3, "\u00b5s": 10**3, "\u03bcs": 10**3, "ms": 10**6}
_NANOSECONDS |= {"s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_GO_MAX_NANOSECONDS = 2**63 - 1  # a Go Duration is an int64 of nanoseconds


def parse_duration(text: str) -> int:
    """Seconds in a Go duration (`90s`, `3m`, `1h30m`, `1.5h`, `500ms`) as kpt and kubectl read
    it, rounded up to whole seconds; ValueError when Go would refuse it, or it is not positive."""
    shown = repr(text if not isinstance(text, str) or len(text) <= 40 else text[:40] + "...")
    if text == "0":
        raise ValueError(f"{shown} must be longer than zero")
    if not isinstance(text, str) or not _GO_DURATION.fullmatch(text):
        raise ValueError(f"{shown} is not a duration such as 90s, 3m or 1h30m")
    nanoseconds = 0
    for whole, fraction, unit in _GO_PART.findall(text):
        if len(whole) > 19:  # no int64 of nanoseconds has more digits
            raise ValueError(f"{shown} is too long a duration (at most about 290 years)")
        scale = _NANOSECONDS[unit]
        fraction = fraction[:19]  # finer than a nanosecond even in hours: Go drops it too
        nanoseconds += int(whole or 0) * scale + int(fraction or 0) * scale // 10 ** len(fraction)
        if nanoseconds > _GO_MAX_NANOSECONDS:
            raise ValueError(f"{shown} is too long a duration (at most about 290 years)")
    if text.startswith("-") or nanoseconds <= 0:
        raise ValueError(f"{shown} must be longer than zero")
    return -(-nanoseconds // 10**9)


def format_duration(seconds: int) -> str:
    """`150` -> `2m30s`: how durations read in messages and the plan."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{secs}s" if secs or not text else "")
