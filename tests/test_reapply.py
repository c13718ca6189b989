"""Re-applying one package (`make reapply PACKAGE=...`): its token in `kpt-catalog:reapply` updates
that package's apply and gates only, never its inventory (the rollback) nor another package, and
a token for a package the stack does not have is named before anything runs."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from components.config import ConfigError
from kpt_catalog import stackfile
from tests.harness import ProgramRun, run_program

COMMAND = "command:local:Command"
STAMP = "2026-11-29T02:30:00Z"  # what `make reapply` writes: a UTC timestamp


def _environments(run: ProgramRun) -> dict[str, dict[str, str]]:
    return {r.name: r.inputs["environment"] for r in run.registrations if r.type == COMMAND}


def _changed(before: ProgramRun, after: ProgramRun) -> dict[str, set[str]]:
    """Command name -> environment variables whose values differ (or that appeared)."""
    old, new = _environments(before), _environments(after)
    assert set(old) == set(new)  # the same Commands, so nothing is created or deleted
    changed = {}
    for name, environment in new.items():
        keys = {
            k for k in set(old[name]) | set(environment) if old[name].get(k) != environment.get(k)
        }
        if keys:
            changed[name] = keys
    return changed


def test_a_token_updates_that_packages_apply_and_gates_only(dev_config: dict[str, Any]) -> None:
    before = run_program(dev_config)
    after = run_program({**dev_config, "reapply": {"headscale": STAMP}})

    assert _changed(before, after) == {
        "headscale-apply": {"KPT_CATALOG_REAPPLY"},
        "headscale-wait-after": {"KPT_CATALOG_REAPPLY"},
    }
    assert _environments(after)["headscale-apply"]["KPT_CATALOG_REAPPLY"] == STAMP
    # Only the environment differs: no other input, so an update, never a replacement.
    old = {r.name: r for r in before.registrations}
    for registration in after.registrations:
        inputs = {k: v for k, v in registration.inputs.items() if k != "environment"}
        assert inputs == {
            k: v for k, v in old[registration.name].inputs.items() if k != "environment"
        }


def test_the_next_up_with_the_same_token_changes_nothing(dev_config: dict[str, Any]) -> None:
    config = {**dev_config, "reapply": {"headscale": STAMP}}
    assert _changed(run_program(config), run_program(config)) == {}


def test_a_new_token_updates_again_and_packages_keep_their_own(dev_config: dict[str, Any]) -> None:
    first = run_program({**dev_config, "reapply": {"headscale": STAMP, "cilium": "1"}})
    second = run_program(
        {**dev_config, "reapply": {"headscale": "2026-11-30T00:00:00Z", "cilium": "1"}}
    )
    assert _changed(first, second) == {
        "headscale-apply": {"KPT_CATALOG_REAPPLY"},
        "headscale-wait-after": {"KPT_CATALOG_REAPPLY"},
    }
    assert "KPT_CATALOG_REAPPLY" not in _environments(second)["cilium-inventory"]


def test_pulumi_config_json_is_read_as_the_mapping(dev_config: dict[str, Any]) -> None:
    """`pulumi config set --path` stores an object; the program gets it as JSON text (the
    harness passes non-strings as JSON, as the language host does)."""
    run = run_program({**dev_config, "reapply": {"kube-vip": 20261129}})
    assert _environments(run)["kube-vip-apply"]["KPT_CATALOG_REAPPLY"] == "20261129"


@pytest.mark.parametrize(
    ("reapply", "expected"),
    [
        (
            {"headscal": STAMP},
            "reapply.headscal: no package named 'headscal' in this stack (known: cilium, "
            "envoy-gateway, headscale, kube-vip, tailscale); remove it with "
            "`pulumi config rm --path 'kpt-catalog:reapply.headscal'`",
        ),
        (
            {"headscale": True},
            "reapply.headscale: expected a token (a UTC timestamp or a number), found True",
        ),
        (
            ["headscale"],
            "reapply: expected a mapping of package name to token (`make reapply "
            "PACKAGE=<name>` sets one), found ['headscale']",
        ),
    ],
    ids=["unknown package", "not a token", "not a mapping"],
)
def test_a_bad_token_stops_the_program_naming_the_key(
    dev_config: dict[str, Any], reapply: object, expected: str
) -> None:
    run = run_program({**dev_config, "reapply": reapply}, raise_errors=False)
    assert isinstance(run.error, ConfigError), run.error
    assert expected in run.error.problems
    assert not any(r.type == COMMAND for r in run.registrations)  # before anything registered


def test_the_stack_file_key_is_known_to_the_offline_views(stack_project) -> None:
    """`make plan` and `make status` read Pulumi.<stack>.yaml: a reapply token written there by
    `pulumi config set --path` is a known key, not a misspelling."""
    stack_file = stack_project / "Pulumi.dev.yaml"
    document = yaml.safe_load(stack_file.read_text())
    document["config"]["kpt-catalog:reapply"] = {"headscale": STAMP}
    stack_file.write_text(yaml.safe_dump(document))

    config = stackfile.load_stack_config("dev")  # raises on an unknown key
    assert config.reapply_tokens == {"headscale": STAMP}
