"""The catalog scan: what it finds must match a full YAML load, on any layout."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from components.scan import KindRef, package_digest, scan_package
from tests.harness import EXAMPLE_CATALOG


def _full_load(root: Path) -> tuple[int, set[KindRef], set[KindRef], set[str]]:
    """objects, kinds used, CRD kinds provided, namespaces: the slow, obvious way."""
    objects, used, provided, namespaces = 0, set(), set(), set()
    for path in sorted(root.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") == "ResourceGroup":
                continue
            annotations = (doc.get("metadata") or {}).get("annotations") or {}
            if annotations.get("config.kubernetes.io/local-config") == "true":
                continue
            objects += 1
            used.add(KindRef(doc["apiVersion"].rpartition("/")[0], doc["kind"]))
            if doc["kind"] == "CustomResourceDefinition":
                provided.add(KindRef(doc["spec"]["group"], doc["spec"]["names"]["kind"]))
            if doc["kind"] == "Namespace":
                namespaces.add(doc["metadata"]["name"])
    return objects, used, provided, namespaces


def test_scan_agrees_with_a_full_load_on_the_example_catalog() -> None:
    for kptfile in EXAMPLE_CATALOG.rglob("Kptfile"):
        scan = scan_package(kptfile.parent)
        objects, used, provided, namespaces = _full_load(kptfile.parent)
        assert (scan.objects, set(scan.uses), scan.provides, scan.namespaces) == (
            objects,
            used,
            provided,
            namespaces,
        ), kptfile.parent


def test_unusual_layouts(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(
        "{apiVersion: example.com/v1, kind: Widget, metadata: {name: w}}\n"
    )
    (tmp_path / "crd.yaml").write_text(
        "# comment first\n---\n"
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        "metadata:\n  name: widgets.example.com\n"
        "spec:\n  names:\n    plural: widgets\n    kind: Widget\n"
        "  versions:\n    - name: v1\n      schema:\n        openAPIV3Schema:\n"
        "          properties:\n            kind: {type: string}\n"
        "  group: example.com\n"  # after the schema: still found
        "---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: local\n  annotations:\n"
        '    config.kubernetes.io/local-config: "true"\n'
        "---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: text}\ndata:\n  x: |\n"
        "    kind: NotAKind\n"
    )
    (tmp_path / "ns.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns1\n")
    scan = scan_package(tmp_path)
    assert scan.provides == {KindRef("example.com", "Widget")}
    assert set(scan.uses) == {
        KindRef("example.com", "Widget"),
        KindRef("apiextensions.k8s.io", "CustomResourceDefinition"),
        KindRef("", "ConfigMap"),
        KindRef("", "Namespace"),
    }
    assert scan.objects == 4  # flow Widget, CRD, ConfigMap text, Namespace (local one excluded)
    assert scan.namespaces == {"ns1"}


def test_invalid_yaml_is_reported_with_its_file(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: [x\n")
    assert scan_package(tmp_path).problems[0].startswith("broken.yaml: not valid YAML")


def test_digest_is_the_scan_digest_and_sees_paths_and_contents(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n")
    first = package_digest(tmp_path)
    assert first == scan_package(tmp_path).digest
    assert first != hashlib.sha256(b"").hexdigest()
    (tmp_path / "a.yaml").rename(tmp_path / "b.yaml")
    renamed = package_digest(tmp_path)
    assert renamed != first
    (tmp_path / "b.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n")
    assert package_digest(tmp_path) not in (first, renamed)


def test_two_packages_whose_names_and_contents_run_together_alike_differ(tmp_path: Path) -> None:
    """Two file sets whose names and contents, run together, are the same bytes: without each
    name and content length-prefixed they would share a digest, and an edit would go unseen."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "a.yaml").write_text("x: 1\n# b.yaml")
    (one / "c.yaml").write_text("")
    (two / "a.yaml").write_text("x: 1\n# ")
    (two / "b.yaml").write_text("c.yaml")
    assert package_digest(one) != package_digest(two)


def test_a_manifest_in_a_subdirectory_is_scanned(tmp_path: Path) -> None:
    (tmp_path / "Kptfile").write_text(
        "apiVersion: kpt.dev/v1\nkind: Kptfile\nmetadata: {name: p}\n"
    )
    (tmp_path / "crds" / "deep").mkdir(parents=True)
    (tmp_path / "crds" / "deep" / "widget.yaml").write_text(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        "metadata: {name: widgets.example.com}\n"
        "spec: {group: example.com, names: {kind: Widget}}\n"
    )
    (tmp_path / "crds" / "ns.yaml").write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: sub}\n"
    )

    scan = scan_package(tmp_path)

    assert scan.provides == {KindRef("example.com", "Widget")}
    assert scan.namespaces == {"sub"}
    assert scan.objects == 2
