"""Catalog mistakes found before anything runs: owners, inventories, waits, durations, the
environment each step gets, and whatever an editor or an accident left in a package directory.

Each refusal is checked on the real program under mocks: the message the user reads, and that
nothing was registered.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from components import ownership
from components.config import parse_duration
from components.files import MAX_MANIFEST_BYTES
from components.scan import package_digest, scan_package
from tests.harness import run_program


@pytest.fixture
def deadline() -> Iterator[None]:
    """Fail (rather than hang the suite) when the test takes over 20 seconds."""

    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise TimeoutError("the evaluation hung")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(20)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _package(config: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in config["packages"] if p["name"] == name)
    return found


def _refused(config: dict[str, Any]) -> str:
    """The error text of an evaluation that must register nothing."""
    run = run_program(config, raise_errors=False)
    assert run.error is not None, "the evaluation went through"
    assert run.registrations == []
    return str(run.error)


NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {}\n"


def test_one_inventory_in_two_packages_names_both(
    dev_config: dict[str, Any], catalog: Path
) -> None:
    shutil.copy(
        catalog / "networking/cilium/resourcegroup.yaml",
        catalog / "mesh/headscale/resourcegroup.yaml",
    )
    error = _refused(dev_config)
    assert (
        f"packages[3].path: packages 'cilium' ({catalog}/networking/cilium/resourcegroup.yaml) "
        f"and 'headscale' ({catalog}/mesh/headscale/resourcegroup.yaml) share the inventory id "
        "'kpt-catalog-cilium': each apply would prune the other's objects. First see which "
        "package the cluster holds under it: `kubectl get resourcegroups.kpt.dev cilium -n "
        "kube-system -o 'jsonpath={.spec.resources}'`. If it lists none of 'headscale''s "
        "objects ('headscale' was never deployed with it), give 'headscale' its own: "
        f"`kpt live init {catalog}/mesh/headscale --name headscale --namespace kube-system "
        "--inventory-id kpt-catalog-headscale --force`. If it does, never re-initialise "
        "'headscale' (kpt would then refuse every apply of it"
    ) in error
    assert "share the inventory name 'cilium' in namespace 'kube-system'" in error


def test_the_inventory_advice_is_safe_to_paste_from_a_hostile_path(
    dev_config: dict[str, Any], catalog: Path
) -> None:
    hostile = catalog / "mesh" / "$(touch pwned)"
    shutil.copytree(catalog / "mesh/headscale", hostile)
    shutil.copy(catalog / "networking/cilium/resourcegroup.yaml", hostile / "resourcegroup.yaml")
    _package(dev_config, "headscale")["path"] = "mesh/$(touch pwned)"

    error = _refused(dev_config)

    command = error.split("give 'headscale' its own: `", 1)[1].split("`", 1)[0]
    assert shlex.split(command)[3] == str(hostile)  # one argument, never a substitution
    result = subprocess.run(
        ["sh", "-c", f"set -- {command}; printf '%s\\n' \"$4\""],
        cwd=catalog,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == str(hostile)
    assert not (catalog / "pwned").exists()


def test_one_path_in_two_packages(dev_config: dict[str, Any]) -> None:
    _package(dev_config, "envoy-gateway")["path"] = "networking/./cilium"
    error = _refused(dev_config)
    assert (
        "packages[4].path: packages 'cilium' (packages[1]) and 'envoy-gateway' both use the "
        "directory 'networking/cilium': kpt would apply it as two packages that prune each "
        "other; give each package its own directory"
    ) in error


def test_one_object_in_two_packages(dev_config: dict[str, Any], catalog: Path) -> None:
    (catalog / "networking/envoy-gateway/99-extra.yaml").write_text(NAMESPACE.format("headscale"))
    error = _refused(dev_config)
    assert (
        "packages[4]: Namespace headscale is in both package 'headscale' "
        "(mesh/headscale/00-namespace.yaml) and package 'envoy-gateway' "
        "(networking/envoy-gateway/99-extra.yaml): two owners would fight over it"
    ) in error


def test_one_object_in_a_package_and_a_native_manifest(
    dev_config: dict[str, Any], catalog: Path
) -> None:
    (catalog / "mesh/extra.yaml").write_text(NAMESPACE.format("tailscale-system"))
    _package(dev_config, "tailscale")["manifests"].append({"file": "mesh/extra.yaml"})
    error = _refused(dev_config)
    assert (
        "packages[2]: Namespace tailscale-system is in both package 'tailscale' "
        "(mesh/tailscale/operator/00-namespace.yaml) and package 'tailscale' manifests[1] "
        "(mesh/extra.yaml): two owners would fight over it"
    ) in error


def test_a_native_manifest_inside_a_kpt_package(dev_config: dict[str, Any]) -> None:
    _package(dev_config, "headscale")["manifests"] = ["mesh/tailscale/operator/00-namespace.yaml"]
    error = _refused(dev_config)
    assert (
        "packages[3].manifests[0].file: mesh/tailscale/operator/00-namespace.yaml is inside "
        "package 'tailscale' (mesh/tailscale/operator): kpt applies it with that package and "
        "Pulumi would own it too; move it out of the package directory"
    ) in error


def test_a_secret_is_never_a_native_manifest(dev_config: dict[str, Any], catalog: Path) -> None:
    (catalog / "mesh/key.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: auth\nstringData:\n  key: hunter2\n"
    )
    _package(dev_config, "tailscale")["manifests"].append("mesh/key.yaml")
    error = _refused(dev_config)
    assert (
        f"packages[2].manifests[1]: {catalog}/mesh/key.yaml document 1: Secret 'auth' carries "
        "credentials; a native manifest's objects are stored in Pulumi state in plain text, and "
        "credentials must not be: declare it under the package's `secrets`"
    ) in error
    assert "hunter2" not in error


INVENTORY = (
    "apiVersion: kpt.dev/v1alpha1\nkind: ResourceGroup\nmetadata:\n  name: {name}\n"
    "  namespace: {namespace}\n  labels:\n    cli-utils.sigs.k8s.io/inventory-id: {id}\n"
)


def test_inventory_values_are_the_text_kpt_reads(dev_config: dict[str, Any], catalog: Path) -> None:
    """PyYAML would read 0123 as 83, yes as True and 1_000 as 1000; kpt reads the text."""
    (catalog / "mesh/headscale/resourcegroup.yaml").write_text(
        INVENTORY.format(name="0123", namespace="headscale", id="1_000")
    )
    (catalog / "networking/envoy-gateway/resourcegroup.yaml").write_text(
        INVENTORY.format(name="yes", namespace="envoy-gateway-system", id="0x1F")
    )
    run = run_program(dev_config)
    headscale = run.by_name("headscale-apply").inputs["environment"]
    assert (headscale["KPT_CATALOG_INVENTORY_NAME"], headscale["KPT_CATALOG_INVENTORY_ID"]) == (
        "0123",
        "1_000",
    )
    envoy = run.by_name("envoy-gateway-apply").inputs["environment"]
    assert (envoy["KPT_CATALOG_INVENTORY_NAME"], envoy["KPT_CATALOG_INVENTORY_ID"]) == (
        "yes",
        "0x1F",
    )


def test_inventory_written_by_kpt_itself_is_read_as_written(catalog: Path) -> None:
    package = catalog / "mesh/headscale"
    (package / "resourcegroup.yaml").unlink()
    subprocess.run(
        [
            *("kpt", "live", "init", str(package), "--name", "0123", "--namespace", "yes"),
            *("--inventory-id", "0123", "--force"),
        ],
        check=True,
        capture_output=True,
    )
    [inventory] = scan_package(package).inventories
    assert (inventory.name, inventory.namespace, inventory.inventory_id) == ("0123", "yes", "0123")


def test_inventory_values_that_are_not_strings_are_refused(
    dev_config: dict[str, Any], catalog: Path
) -> None:
    (catalog / "mesh/headscale/resourcegroup.yaml").write_text(
        INVENTORY.format(name="[a, b]", namespace="headscale", id="{x: 1}")
    )
    error = _refused(dev_config)
    assert (
        f"packages[3].path: {catalog}/mesh/headscale: resourcegroup.yaml: the inventory's name, "
        'inventory-id must be a plain string (quote it: "..."), as kpt reads it'
    ) in error


def test_waits_kubectl_would_refuse_are_all_reported_at_once(dev_config: dict[str, Any]) -> None:
    _package(dev_config, "headscale")["waitAfter"] = [
        {"resource": "deployment/headscale", "namespace": "headscale", "for": "rolout"},
        {"resource": "gateway/eg", "for": "Programmed"},
        {"resource": "svc/headscale", "selector": "app=headscale", "for": "delete"},
        {"resource": "svc/headscale", "for": "rollout"},
        {"resource": "svc/x", "namespace": "-n", "for": "condition="},
        {"resource": "sts/db", "for": "rollout", "timeout": "1" * 400 + "s"},
        {"resource": "deploy/x", "for": "jsonpath={.status.ready}=true", "timeout": "90"},
    ]
    error = _refused(dev_config)
    forms = "rollout, delete, create, condition=<Type>[=<value>] or jsonpath=<expression>[=<value>]"
    for expected in (
        f"packages[3].waitAfter[0].for: expected one of {forms}, found 'rolout'; did you mean "
        "condition=rolout?",
        f"packages[3].waitAfter[1].for: expected one of {forms}, found 'Programmed'; did you "
        "mean condition=Programmed?",
        "packages[3].waitAfter[2].selector: kubectl refuses a name ('svc/headscale') together "
        "with a selector",
        "packages[3].waitAfter[3].for: rollout works only for a deployment, daemonset or "
        "statefulset, not 'svc/headscale'",
        f"packages[3].waitAfter[4].for: expected one of {forms}, found 'condition='",
        "packages[3].waitAfter[4].namespace: '-n' starts with '-', which kubectl would read as "
        "an option",
        "packages[3].waitAfter[5].timeout: expected a duration greater than zero such as 90s, "
        "3m or 1h30m: '1111111111111111111111111111111111111111...' is too long a duration",
        "packages[3].waitAfter[6].timeout: expected a duration greater than zero such as 90s, "
        "3m or 1h30m: '90' is not a duration",
    ):
        assert expected in error
    assert error.count("\n  - ") == 8


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("1h30m", 5400),
        ("30m1h", 5400),
        ("1.5m", 90),
        (".5m", 30),
        ("500ms", 1),
        ("+2m", 120),
        ("1m0.5s", 61),
        ("9223372036s", 9223372036),
    ],
)
def test_durations_as_go_reads_them(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0", "must be longer than zero"),
        ("0s", "must be longer than zero"),
        ("-1s", "must be longer than zero"),
        ("90", "is not a duration"),
        ("1h 2m", "is not a duration"),
        (" 90s", "is not a duration"),
        ("1d", "is not a duration"),
        (".s", "is not a duration"),
        ("1e3s", "is not a duration"),
        ("9223372037s", "is too long a duration"),
        ("1" * 400 + "h", "is too long a duration"),
        ("1" * 50000, "is not a duration"),
    ],
)
def test_durations_go_refuses(text: str, why: str, deadline: None) -> None:
    with pytest.raises(ValueError, match=why):
        parse_duration(text)


def test_a_step_environment_larger_than_linux_passes(dev_config: dict[str, Any]) -> None:
    selector = "app in (" + ",".join(f"a{i}" for i in range(30000)) + ")"
    _package(dev_config, "headscale")["waitAfter"].append(
        {"resource": "pods", "namespace": "headscale", "selector": selector, "for": "delete"}
    )
    error = _refused(dev_config)
    assert "packages[3]: the wait-after step's KPT_CATALOG_WAITS would be " in error
    assert (
        "bytes, over the 131072 bytes Linux passes in one environment variable: the step could "
        "not start. Use fewer or shorter waits"
    ) in error
    assert "packages[3]: the status step's KPT_CATALOG_WAITS would be" in error


def test_a_step_environment_over_arg_max(
    dev_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ownership, "arg_max", lambda: 300)
    error = _refused(dev_config)
    assert "packages[1]: the apply step's environment would be " in error
    assert "bytes, over the 300 bytes this system allows a command (ARG_MAX" in error


SpecialFile = Callable[[Path], object]


def _socket(path: Path) -> None:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()


SPECIAL_FILES: dict[str, tuple[SpecialFile, str]] = {
    "fifo": (os.mkfifo, "x.yaml is a FIFO (named pipe), not a file"),
    "socket": (_socket, "x.yaml is a socket, not a file"),
    "dangling symlink": (
        lambda p: p.symlink_to("nowhere.yaml"),
        "x.yaml is a symlink to nothing (dangling)",
    ),
    "symlink loop": (lambda p: p.symlink_to(p.name), "x.yaml is a symlink loop"),
    "device": (lambda p: p.symlink_to("/dev/zero"), "x.yaml is a character device, not a file"),
    "directory": (lambda p: p.mkdir(), ""),  # a directory named x.yaml is walked, not read
    "too large": (
        lambda p: os.truncate(p.open("wb").name, MAX_MANIFEST_BYTES + 1),
        f"x.yaml is {MAX_MANIFEST_BYTES + 1} bytes, over the 64 MiB a manifest may have",
    ),
    "not UTF-8": (
        lambda p: p.write_bytes(b"apiVersion: v1\nkind: ConfigMap\n# \xff\xfe\n"),
        "x.yaml: is not UTF-8 text (byte 33); kpt reads UTF-8 YAML only",
    ),
    "alias bomb": (
        lambda p: p.write_text(
            'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n'
            + "".join(
                f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 10)}]\n"
                for i in range(8)
            )
        ),
        "x.yaml: its YAML aliases expand to over 1000000 nodes (an alias bomb?)",
    ),
}


@pytest.mark.parametrize("case", sorted(SPECIAL_FILES))
def test_special_files_are_named_never_read(
    case: str, dev_config: dict[str, Any], catalog: Path, deadline: None
) -> None:
    make, message = SPECIAL_FILES[case]
    make(catalog / "mesh/headscale/x.yaml")
    if not message:
        run_program(dev_config)
        return
    error = _refused(dev_config)
    assert f"packages[3].path: {catalog}/mesh/headscale: {message}" in error
    assert error.count("\n  - ") == 1


def test_the_digest_reads_what_kpt_reads(catalog: Path) -> None:
    """kpt reads *.yaml, *.yml and the Kptfile (a dotted `.#x.yaml` lock too: Go's `*` matches a
    leading dot); backups, .json and other files change nothing."""
    package = catalog / "mesh/headscale"
    before = package_digest(package)
    for ignored in (
        "config.yaml~",
        "#config.yaml#",
        ".config.yaml.swp",
        "README.md",
        "notes",
        "schema.json",
        "x.YAML",
    ):
        (package / ignored).write_text("kind: Secret\n")
    assert package_digest(package) == before
    for read in (".#lock.yaml", "extra.yml", "sub/nested.yaml"):
        (package / read).parent.mkdir(exist_ok=True)
        (package / read).write_text('{"apiVersion": "v1", "kind": "ConfigMap"}\n')
        changed = package_digest(package)
        assert changed != before, read
        before = changed


def test_an_object_in_a_json_file_is_refused_since_kpt_would_never_apply_it(
    catalog: Path,
) -> None:
    package = catalog / "mesh/headscale"
    (package / "extra.json").write_text('{"apiVersion": "v1", "kind": "ConfigMap"}\n')
    (package / "schema.json").write_text('{"type": "object"}\n')
    assert scan_package(package).problems == [
        "extra.json: kpt does not read .json files, so this object would never be applied; "
        "rename it to .yaml (JSON is YAML) or move it out"
    ]


def test_krmignore_is_refused(catalog: Path) -> None:
    (catalog / "mesh/headscale/.krmignore").write_text("config.yaml\n")
    assert scan_package(catalog / "mesh/headscale").problems == [
        ".krmignore: a .krmignore changes which files kpt applies, which this program cannot "
        "follow; move the ignored files out of the package instead"
    ]


def test_a_crd_a_needed_package_waits_for_counts_as_provided(
    dev_config: dict[str, Any], catalog: Path
) -> None:
    """cilium waits for its run-time CRDs; headscale needs cilium, so may use those kinds."""
    (catalog / "mesh/headscale/pool.yaml").write_text(
        "apiVersion: cilium.io/v2alpha1\nkind: CiliumLoadBalancerIPPool\n"
        "metadata:\n  name: headscale\n"
    )
    run_program(dev_config)
    _package(dev_config, "headscale")["needs"] = ["tailscale"]  # cilium only through tailscale
    run_program(dev_config)
    _package(dev_config, "tailscale")["needs"] = ["kube-vip"]
    _package(dev_config, "headscale")["needs"] = ["tailscale"]
    error = _refused(dev_config)
    assert (
        "packages[3]: package 'headscale' uses cilium.io/CiliumLoadBalancerIPPool (pool.yaml) "
        "but no package provides its CRD and 'headscale' does not wait for it: add a waitBefore "
        "on crd/ciliumloadbalancerippools.cilium.io condition=Established"
    ) in error
