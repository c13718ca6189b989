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


def _event(kind_of_event: str, status: str, group: str, kind: str, name: str, ns: str = "") -> str:
    return (
        f'{{"type":"{kind_of_event}","status":"{status}","group":"{group}","kind":"{kind}",'
        f'"namespace":"{ns}","name":"{name}","timestamp":"2026-12-03T08:31:59Z"}}'
    )


# The end of a first apply of envoy-gateway on a real kube-apiserver: its Gateway was Programmed,
# but kpt's watcher never started for the kind the same apply had just defined.
CRD_GROUP = "apiextensions.k8s.io"
GATEWAY_GROUP = "gateway.networking.k8s.io"
FIRST_GATEWAY_APPLY = [
    _event(
        "apply", "Successful", CRD_GROUP, "CustomResourceDefinition", "gateways." + GATEWAY_GROUP
    ),
    _event("apply", "Successful", GATEWAY_GROUP, "Gateway", "eg", "envoy-gateway-system"),
    _event("wait", "Timeout", GATEWAY_GROUP, "Gateway", "eg", "envoy-gateway-system"),
    '{"type":"summary","action":"Apply","count":2,"successful":2,"skipped":0,"failed":0}',
    '{"type":"summary","action":"Wait","count":2,"successful":1,"skipped":0,"failed":0,"timeout":1}',
]


def test_a_timeout_of_a_kind_the_apply_defined_is_left_to_kpt_live_status() -> None:
    from components.step.errors import ReconcileTimeoutError
    from components.step.kpt import _unwatched_new_kinds

    summary = _summary(FIRST_GATEWAY_APPLY)
    failure = classify("apply", "kpt live apply", 3, summary)
    assert isinstance(failure, ReconcileTimeoutError)
    assert _unwatched_new_kinds("envoy-gateway", failure, summary)


def test_a_timeout_of_a_kind_the_cluster_already_had_still_fails() -> None:
    from components.step.kpt import _unwatched_new_kinds

    lines = [
        line.replace(f'"group":"{GATEWAY_GROUP}"', '"group":"other.example.com"')
        for line in FIRST_GATEWAY_APPLY
    ]
    summary = _summary(lines)
    failure = classify("apply", "kpt live apply", 3, summary)
    assert failure is not None
    assert not _unwatched_new_kinds("envoy-gateway", failure, summary)
