"""How a kpt event stream reads, from lines the real kpt 1.0.0-beta.56 printed."""

from __future__ import annotations

from components.step.errors import (
    IncompleteOutputError,
    ObjectsSkippedError,
    ReconcileTimeoutError,
)
from components.step.events import (
    KEPT_BY_ANNOTATION,
    Summary,
    classify,
    parse_event,
    summarize,
)

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


# An apply's closing events as kpt printed them on the local control plane (type "summary").
def _apply_summary(successful: int, skipped: int = 0, failed: int = 0) -> str:
    count = successful + skipped + failed
    return (
        f'{{"action":"Apply","count":{count},"failed":{failed},"skipped":{skipped},'
        f'"successful":{successful},"timestamp":"2026-12-03T11:37:09Z","type":"summary"}}'
    )


def _wait_summary(successful: int, timeout: int) -> str:
    return (
        f'{{"action":"Wait","count":{successful + timeout},"failed":0,"skipped":0,'
        f'"successful":{successful},"timeout":{timeout},"timestamp":"2026-12-03T11:37:09Z",'
        '"type":"summary"}'
    )


APPLIED = _event("apply", "Successful", "", "ConfigMap", "config", "headscale")


def test_a_skip_only_the_summary_counts_fails_the_apply_though_kpt_exits_0() -> None:
    summary = _summary([APPLIED, _apply_summary(1, skipped=1)])

    failure = classify("apply", "kpt live apply", 0, summary)

    assert isinstance(failure, ObjectsSkippedError)
    assert "kpt's summary counted 1 skipped object(s)" in failure.details


def test_a_prune_skipped_for_another_reason_than_the_keep_annotation_fails_the_apply() -> None:
    in_use = (
        '{"type":"prune","status":"Skipped","group":"","kind":"Namespace","namespace":"",'
        '"name":"headscale","error":"namespace still in use: headscale",'
        '"timestamp":"2026-12-03T11:37:09Z"}'
    )
    kept = in_use.replace("namespace still in use: headscale", KEPT_BY_ANNOTATION + " (x)")

    assert isinstance(
        classify("apply", "kpt live apply", 0, _summary([APPLIED, in_use, _apply_summary(1)])),
        ObjectsSkippedError,
    )
    assert classify("apply", "kpt live apply", 0, _summary([APPLIED, kept, _apply_summary(1)])) is (
        None
    )


def test_timeouts_only_the_wait_summary_counts_fail_the_apply() -> None:
    summary = _summary([APPLIED, _apply_summary(1), _wait_summary(0, timeout=1)])

    failure = classify("apply", "kpt live apply", 0, summary)

    assert isinstance(failure, ReconcileTimeoutError)
    assert "kpt reported 1 object(s) timed out reconciling" in failure.details
