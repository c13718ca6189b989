"""`kpt-catalog fleet export --operator` against the Pulumi Kubernetes Operator's published Stack
CRD: its schema, from the operator's Go module (the module proxy is how the world gets its
binaries too), must accept every object, and the waves must be the prerequisites."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from components.config import load_with_lines
from kpt_catalog.fleet.config import parse_fleet
from kpt_catalog.fleet.export import operator_stacks
from kpt_catalog.fleet.waves import plan_waves

pytestmark = pytest.mark.e2e

# The newest release of the operator the module proxy serves (v2 is not served there).
OPERATOR_MODULE = "github.com/pulumi/pulumi-kubernetes-operator@v1.16.0"


def _stack_schema(tmp_path: Path) -> dict[str, Any]:
    downloaded = subprocess.run(
        ["go", "mod", "download", "-json", OPERATOR_MODULE],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    found = json.loads(downloaded.stdout)
    assert "Dir" in found, f"go mod download {OPERATOR_MODULE}: {found.get('Error')}"
    crd = yaml.safe_load((Path(found["Dir"]) / "deploy/crds/pulumi.com_stacks.yaml").read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def test_the_exported_stacks_are_what_the_operators_crd_accepts_in_wave_order(tmp_path: Path):
    text = (
        "clusters:\n"
        + "".join(f"  - name: site-{i}\n    labels: {{region: r{i % 2}}}\n" for i in range(4))
        + "canary: {count: 1}\nwaves: {by: label, label: region}\n"
    )
    waves = plan_waves(parse_fleet(load_with_lines(text, "fleet.yaml")))
    stacks = operator_stacks(
        waves,
        repository="https://git.example.com/ops/kpt-catalog.git",
        branch="main",
        namespace="pulumi-operator",
        backend="s3://state/kpt-catalog",
        passphrase_secret="kpt-catalog-passphrase",  # noqa: S106 - the Secret's name
    )
    schema = _stack_schema(tmp_path)
    for stack in stacks:
        jsonschema.validate(stack, schema)  # the CRD's structural schema, as the API server would
    prerequisites = {
        s["spec"]["stack"]: sorted(p["name"] for p in s["spec"].get("prerequisites", []))
        for s in stacks
    }
    assert prerequisites == {
        "site-0": [],
        "site-2": ["kpt-catalog-site-0"],
        "site-1": ["kpt-catalog-site-2"],
        "site-3": ["kpt-catalog-site-2"],
    }
    assert [w.name for w in waves] == ["canary", "wave 1 (region=r0)", "wave 2 (region=r1)"]
    # a prerequisite without its name is refused: the check can fail
    broken = {**stacks[0], "spec": {**stacks[0]["spec"], "prerequisites": [{"nme": "x"}]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
