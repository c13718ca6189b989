"""Package files read as `kpt live apply` reads them, into the values kpt sends to the server.

kpt parses a package with kyaml (a yaml.v3 fork) and turns each document into JSON before it
applies it, so a scalar written without quotes becomes what yaml.v3's resolver makes of it, and
every number becomes a Go float64. Measured with kpt 1.0.0-beta.56 on the local control plane
(tests/e2e/test_journeys.py, `test_a_package_is_read_as_kpt_reads_it`), a custom resource that
keeps unknown fields stored:

- `yes`, `no`, `on`, `off`, `y`, `n`, `1:20` as strings (YAML 1.1 spellings are not booleans);
- `true`/`True`/`TRUE` (and false) as booleans; `~`, `null`/`Null`/`NULL` and nothing as null;
- integers as Go's `strconv.ParseInt(s, 0, 64)` reads them once `_` is dropped: `0123` is octal
  83, `0o17` 15, `0x1F` 31, `0b101` 5, `+12` 12, `1_000` 1000; then floats (`1.5e3`, `.5`);
  numbers past 2^53 lose precision, as a float64 does;
- a date or time (`2024-01-01`, `2001-12-14t21:59:43.10-05:00`) as the RFC 3339 text Go
  writes for a time.Time: `2024-01-01T00:00:00Z`, `2001-12-14T21:59:43.1-05:00`;
- `.inf` and `.nan` make kpt fail (`json: unsupported value: +Inf`), and are refused here.

PyYAML alone reads YAML 1.1: `yes` as True (which the API server rejects in a ConfigMap) and a
date as a datetime (which JSON cannot hold). This loader replaces its resolver with the rules
above, so every part of the program that reads a package agrees with kpt.
"""

from __future__ import annotations

import datetime
import math
import re
from typing import Any

import yaml

__all__ = ["KptYamlError", "load_documents"]

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_SPECIAL_FLOATS = frozenset(
    f"{sign}{value}" for sign in ("", "+", "-") for value in (".inf", ".Inf", ".INF")
) | frozenset({".nan", ".NaN", ".NAN"})
# yaml.v3 resolve.go: yamlStyleFloat, tried after the integer forms.
_FLOAT_FORM = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
# Go's strconv.ParseInt with base 0: a sign, then 0x/0o/0b, a leading 0 (octal) or decimal.
_GO_INT = re.compile(r"([-+]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
# yaml.v3 allowedTimestampFormats: "2006-1-2T15:4:5.999999999Z07:00" (and a lower-case t),
# "2006-1-2 15:4:5.999999999" (UTC) and "2006-1-2".
_TIMESTAMP_FORM = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:(?:([Tt])|( ))(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,9}))?"
    r"(Z|[+-]\d{2}:\d{2})?)?"
)
# Integers a float64 holds exactly; past them kpt's value is a float64, and so is this one.
_EXACT_LIMIT = 2.0**53


class KptYamlError(ValueError):
    """A document kpt would refuse, or that holds no JSON value."""


def _go_int(text: str) -> int | None:
    match = _GO_INT.fullmatch(text)
    if match is None:
        return None
    sign, digits = match.groups()
    lowered = digits.lower()
    if lowered.startswith(("0x", "0o", "0b")):
        value = int(lowered[2:], {"x": 16, "o": 8, "b": 2}[lowered[1]])
    elif len(digits) > 1 and digits.startswith("0"):
        value = int(digits, 8)
    else:
        value = int(digits)
    value = -value if sign == "-" else value
    # ParseInt, then ParseUint: anything outside both is not an integer to yaml.v3.
    return value if -(2**63) <= value < 2**64 else None


def _timestamp(text: str) -> str | None:
    """The RFC 3339 text Go's time.Time marshals to, or None when `text` is not a timestamp."""
    match = _TIMESTAMP_FORM.fullmatch(text)
    if match is None:
        return None
    year, month, day, t_sep, space, hour, minute, second, fraction, zone = match.groups()
    if t_sep is not None and zone is None:
        return None  # "2006-1-2T15:4:5Z07:00": the T form has a zone
    if space is not None and zone is not None:
        return None  # "2006-1-2 15:4:5": the space form has none
    try:
        moment = datetime.datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
        )
    except ValueError:
        return None
    digits = (fraction or "").rstrip("0")
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{digits}" if digits else "")
    # Go's "Z07:00" writes a zero offset as Z.
    utc = zone is None or zone == "Z" or zone[1:] == "00:00"
    return stamp + ("Z" if utc else str(zone))


def _number(value: float | int) -> float | int:
    """What kpt sends for a number: a float64, which Go's encoding/json writes without a
    fraction when it is integral, so an exactly held integer stays an integer here."""
    number = float(value)
    if math.isinf(number) or math.isnan(number):
        raise KptYamlError("kpt cannot send .inf or .nan (json: unsupported value)")
    if number.is_integer() and abs(number) < _EXACT_LIMIT:
        return int(number)
    return number


def resolve_plain(text: str) -> str:
    """The tag yaml.v3 gives a plain (unquoted) scalar."""
    if text in _NULLS:
        return _NULL
    if text == "<<":
        return "tag:yaml.org,2002:merge"  # yaml.v3 merges mappings too
    if text in _BOOLS:
        return _BOOL
    if text in _SPECIAL_FLOATS:
        return _FLOAT
    if _timestamp(text) is not None:
        return _TIMESTAMP
    plain = text.replace("_", "")
    if _go_int(plain) is not None:
        return _INT
    if _FLOAT_FORM.fullmatch(plain):
        return _FLOAT
    return _STR


class _KptLoader(_Base):  # type: ignore[misc]
    """PyYAML's safe loader with yaml.v3's resolver and kpt's JSON values."""

    def resolve(self, kind: type, value: object, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode and implicit[0]:
            return resolve_plain(str(value))
        return str(super().resolve(kind, value, implicit))


def _construct_int(loader: _KptLoader, node: yaml.ScalarNode) -> int | float:
    value = _go_int(str(loader.construct_scalar(node)).replace("_", ""))
    if value is None:
        raise KptYamlError(f"line {node.start_mark.line + 1}: {node.value!r} is not an integer")
    return _number(value)


def _construct_float(loader: _KptLoader, node: yaml.ScalarNode) -> int | float:
    text = str(loader.construct_scalar(node)).replace("_", "")
    if text in _SPECIAL_FLOATS:
        raise KptYamlError(
            f"line {node.start_mark.line + 1}: {node.value}: kpt cannot send .inf or .nan "
            "(json: unsupported value); quote it if it is meant as text"
        )
    try:
        return _number(float(text))
    except ValueError:
        raise KptYamlError(
            f"line {node.start_mark.line + 1}: {node.value!r} is not a number"
        ) from None


def _construct_timestamp(loader: _KptLoader, node: yaml.ScalarNode) -> str:
    text = str(loader.construct_scalar(node))
    stamp = _timestamp(text)
    if stamp is None:
        raise KptYamlError(f"line {node.start_mark.line + 1}: {text!r} is not a timestamp")
    return stamp


def _construct_bool(loader: _KptLoader, node: yaml.ScalarNode) -> bool:
    text = str(loader.construct_scalar(node))
    if text not in _BOOLS:
        raise KptYamlError(f"line {node.start_mark.line + 1}: {text!r} is not true or false")
    return _BOOLS[text]


def _construct_mapping(loader: _KptLoader, node: yaml.MappingNode) -> dict[str, Any]:
    loader.flatten_mapping(node)
    mapping: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise KptYamlError(
                f"line {key_node.start_mark.line + 1}: the key {key_node.value!r} is read as "
                f"{'null' if key is None else type(key).__name__}, and an object's keys are "
                "text: quote it"
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_KptLoader.add_constructor(_INT, _construct_int)
_KptLoader.add_constructor(_FLOAT, _construct_float)
_KptLoader.add_constructor(_TIMESTAMP, _construct_timestamp)
_KptLoader.add_constructor(_BOOL, _construct_bool)
_KptLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def load_documents(content: bytes | str) -> list[Any]:
    """Every document of a YAML (or JSON) file, with kpt's values; empty documents left out.

    Raises yaml.YAMLError for a file that is not YAML, KptYamlError for a value kpt cannot send
    (both name the line)."""
    return [d for d in yaml.load_all(content, Loader=_KptLoader) if d is not None]
