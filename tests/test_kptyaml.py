"""Package files are read as kpt reads them: the values below are what kpt 1.0.0-beta.56 sent
and the API server stored for tests/data/kpt-scalars.yaml (a custom resource that keeps unknown
fields, applied with `kpt live apply` on the local control plane; the journey
`test_a_package_is_read_as_kpt_reads_it` checks the same file there)."""

from __future__ import annotations

import json

import pytest
import yaml

from components.kptyaml import KptYamlError, load_documents
from tests.harness import ROOT

# `kubectl get thing t1 -o json | jq .spec` after kpt applied the file.
STORED = {
    "big": 12345678901234567000,
    "bin": 5,
    "date": "2024-01-01T00:00:00Z",
    "dot5": 0.5,
    "float1": 1500,
    "hex": 31,
    "n": "n",
    "null1": None,
    "null2": None,
    "oct": 83,
    "oct2": 15,
    "off1": "Off",
    "on1": "on",
    "plusint": 12,
    "sexa": "1:20",
    "true1": True,
    "true2": True,
    "ts": "2001-12-14T21:59:43.1-05:00",
    "under": 1000,
    "y": "y",
    "yes1": "yes",
}


def test_every_scalar_reads_as_kpt_sent_it() -> None:
    (document,) = load_documents((ROOT / "tests/data/kpt-scalars.yaml").read_bytes())
    # Compared as JSON, as the server receives it: a float64 past 2^53 is the same number.
    assert json.loads(json.dumps(document["spec"])) == pytest.approx(STORED)
    for key, value in STORED.items():
        assert type(document["spec"][key]) in (type(value), float), key


def test_quoted_and_tagged_values_stay_text_and_json_reads_the_same() -> None:
    assert load_documents("a: \"yes\"\nb: !!str 0123\nc: '2024-01-01'\n") == [
        {"a": "yes", "b": "0123", "c": "2024-01-01"}
    ]
    assert load_documents('{"kind": "ConfigMap", "data": {"n": 1.0}}') == [
        {"kind": "ConfigMap", "data": {"n": 1}}
    ]


def test_merge_keys_merge_and_empty_documents_are_left_out() -> None:
    text = "---\nbase: &b {m: 1}\nx:\n  <<: *b\n  n: 2\n---\n---\n"
    assert load_documents(text) == [{"base": {"m": 1}, "x": {"m": 1, "n": 2}}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: .inf\n", "line 1: .inf: kpt cannot send .inf or .nan"),
        ("a:\n  b: -.Inf\n", "line 2: -.Inf: kpt cannot send"),
        ("true: 1\n", "line 1: the key 'true' is read as bool"),
        ("~: 1\n", "line 1: the key '~' is read as null"),
    ],
)
def test_values_kpt_cannot_send_are_refused_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(KptYamlError, match=message.replace(".", r"\.").replace("'", "'")):
        load_documents(text)


def test_not_yaml_is_a_yaml_error() -> None:
    with pytest.raises(yaml.YAMLError):
        load_documents("a: [1, 2\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-1-2", "2024-01-02T00:00:00Z"),
        ("2024-01-02 03:04:05", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05.500+00:00", "2024-01-02T03:04:05.5Z"),
        ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05", "2024-01-02T03:04:05"),  # no zone: not a timestamp
        ("2024-13-02", "2024-13-02"),  # no such month
        ("12:30", "12:30"),
        ("0x", "0x"),
        ("08", 8.0),  # not octal: a float, as yaml.v3's float form reads it
        ("-0b11", -3),
        ("1e3", 1000),
        ("9223372036854775808", 9223372036854775808.0),
    ],
)
def test_plain_scalars_resolve_as_yaml_v3_resolves_them(text: str, expected: object) -> None:
    (document,) = load_documents(f"v: {text}\n")
    assert document["v"] == expected
    assert type(document["v"]) is type(expected) or isinstance(expected, float)
