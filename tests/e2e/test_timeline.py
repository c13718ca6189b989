"""The order checks of the e2e test, on engine events as the Automation API parses them.

The e2e test only runs against a cluster; these show offline that its order assertions pass for
the order the engine must follow and fail for the wrong one (a test that cannot fail is a defect).
"""

from __future__ import annotations

import pytest
from pulumi import automation as auto

from tests.e2e.timeline import DONE, FAILED, PRE, Timeline, op_counts

STACK = "urn:pulumi:e2e-1234::kpt-catalog::"
COMMAND = "kpt-catalog:index:KptPackage$command:local:Command"
CONNECTOR = "tailscale-connector-cluster-subnet-router"
CONNECTOR_TYPE = "kpt-catalog:index:KptPackage$kubernetes:e2e.kpt-catalog.dev/v1alpha1:Connector"
KEYS = {PRE: "resourcePreEvent", DONE: "resOutputsEvent", FAILED: "resOpFailedEvent"}


def _event(sequence: int, phase: str, op: str, name: str) -> auto.EngineEvent:
    """An engine event as it appears in the event log the Automation API tails."""
    chain = CONNECTOR_TYPE if name == CONNECTOR else COMMAND
    kind = "pulumi:providers:kubernetes" if name == "kubernetes" else chain.rpartition("$")[2]
    metadata = {"op": op, "urn": f"{STACK}{chain}::{name}", "type": kind, "provider": ""}
    payload: dict[str, object] = {"metadata": metadata}
    if phase == FAILED:
        payload.update(status=1, steps=0)
    return auto.EngineEvent.from_json({"sequence": sequence, "timestamp": 0, KEYS[phase]: payload})


def _timeline(*steps: tuple[str, str, str]) -> Timeline:
    """Events numbered in the order given, recorded in reverse (the log tailer's thread may
    deliver them in any order; the sequence numbers decide)."""
    timeline = Timeline()
    for sequence, (phase, op, name) in reversed(list(enumerate(steps))):
        timeline.record(_event(sequence, phase, op, name))
    return timeline


def test_events_are_ordered_by_the_engines_sequence() -> None:
    timeline = _timeline(
        (PRE, "create", "kube-vip-apply"),
        (DONE, "create", "kube-vip-apply"),
        (PRE, "create", "cilium-apply"),
    )
    assert [(e.phase, e.name) for e in timeline.events] == [
        (PRE, "kube-vip-apply"),
        (DONE, "kube-vip-apply"),
        (PRE, "cilium-apply"),
    ]
    timeline.assert_before("kube-vip-apply", "cilium-apply", ("create",))


def test_a_step_started_before_the_one_it_needs_finished_fails_the_check() -> None:
    timeline = _timeline(
        (PRE, "create", "kube-vip-apply"),
        (PRE, "create", "cilium-apply"),
        (DONE, "create", "kube-vip-apply"),
        (DONE, "create", "cilium-apply"),
    )
    with pytest.raises(AssertionError, match="kube-vip-apply should have finished before"):
        timeline.assert_before("kube-vip-apply", "cilium-apply", ("create",))


def test_deleting_the_operator_before_the_connector_is_gone_fails_the_check() -> None:
    right = _timeline(
        (PRE, "delete", CONNECTOR),
        (DONE, "delete", CONNECTOR),
        (PRE, "delete", "tailscale-apply"),
        (DONE, "delete", "tailscale-apply"),
    )
    right.assert_before(CONNECTOR, "tailscale-apply", ("delete",))
    wrong = _timeline(
        (PRE, "delete", "tailscale-apply"),
        (PRE, "delete", CONNECTOR),
        (DONE, "delete", "tailscale-apply"),
        (DONE, "delete", CONNECTOR),
    )
    with pytest.raises(AssertionError, match=CONNECTOR):
        wrong.assert_before(CONNECTOR, "tailscale-apply", ("delete",))


def test_a_step_the_engine_never_ran_is_named() -> None:
    timeline = _timeline((PRE, "create", "kube-vip-apply"), (DONE, "create", "kube-vip-apply"))
    with pytest.raises(AssertionError, match="no done event of 'cilium-apply' with op create"):
        timeline.assert_before("cilium-apply", "kube-vip-apply", ("create",))
    # An update is not a create.
    with pytest.raises(AssertionError, match="no pre event of 'kube-vip-apply' with op update"):
        timeline.position("kube-vip-apply", PRE, ("update",))


def test_names_by_op_and_phase_leave_providers_out() -> None:
    timeline = _timeline(
        (PRE, "update", "headscale-apply"),
        (DONE, "update", "headscale-apply"),
        (PRE, "update", "headscale-wait-after"),
        (FAILED, "update", "headscale-wait-after"),
        (PRE, "delete", "kubernetes"),
        (DONE, "delete", "kubernetes"),
    )
    assert timeline.names("update", PRE) == {"headscale-apply", "headscale-wait-after"}
    assert timeline.names("update") == {"headscale-apply"}
    assert timeline.names("update", FAILED) == {"headscale-wait-after"}
    assert timeline.names("delete") == set()
    assert timeline.names("delete", include_providers=True) == {"kubernetes"}


def test_change_summaries_are_plain_dicts_of_strings() -> None:
    summary = {auto.OpType.UPDATE: 2, auto.OpType.SAME: 14}
    assert op_counts(summary) == {"update": 2, "same": 14}
    assert all(type(op) is str for op in op_counts(summary))
    assert op_counts({"same": 16}) == {"same": 16}
    assert op_counts(None) == {}
