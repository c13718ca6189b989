"""How a kpt event stream reads, from lines the real kpt 1.0.0-beta.56 printed."""

from __future__ import annotations

from components.step.errors import IncompleteOutputError
from components.step.events import Summary, classify, parse_event, summarize

# `kpt live destroy --output=json` of an inventory that tracks no object (a first apply that
# failed before kpt recorded anything), on a real kube-apiserver: exit 0, no delete summary.
EMPTY_INVENTORY_DESTROY = [
    '{"action":"Inventory","status":"Started","timestamp":"2026-12-03T08:01:53Z","type":"group"}',
    '{"action":"Inventory","status":"Finished","timestamp":"2026-12-03T08:01:53Z","type":"group"}',
]


def _summary(lines: list[str]) -> Summary:
    return summarize(e for e in map(parse_event, lines) if e is not None)


def test_the_destroy_of_an_empty_inventory_succeeds() -> None:
    summary = _summary(EMPTY_INVENTORY_DESTROY)
    assert classify("destroy", "kpt live destroy", 0, summary) is None
    assert summary.successful.get("delete", 0) == 0


def test_a_destroy_cut_before_the_inventory_is_removed_is_incomplete() -> None:
    summary = _summary(EMPTY_INVENTORY_DESTROY[:1])
    failure = classify("destroy", "kpt live destroy", 0, summary)
    assert isinstance(failure, IncompleteOutputError)


def test_a_destroy_that_deleted_objects_still_needs_its_summary() -> None:
    deleted = (
        '{"type":"delete","status":"Successful","group":"","kind":"ConfigMap",'
        '"namespace":"headscale","name":"headscale-config","timestamp":"2026-12-03T08:01:53Z"}'
    )
    summary = _summary([EMPTY_INVENTORY_DESTROY[0], deleted, EMPTY_INVENTORY_DESTROY[1]])
    failure = classify("destroy", "kpt live destroy", 0, summary)
    assert isinstance(failure, IncompleteOutputError)


def test_an_apply_is_never_complete_without_its_summary() -> None:
    summary = _summary(EMPTY_INVENTORY_DESTROY)
    assert isinstance(classify("apply", "kpt live apply", 0, summary), IncompleteOutputError)
