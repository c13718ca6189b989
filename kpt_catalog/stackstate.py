"""What kpt_catalog/pulumi-stack.sh needs to know of a stack, read without the stack's passphrase.

Standard library only, but for PyYAML when the interpreter has it (the project's venv does): the
wrapper runs it before anything else and must not depend on a working virtualenv. Without PyYAML
a stack file that is not JSON is scanned line by line, any spelling of `secure:` counting.

    python3 kpt_catalog/stackstate.py protected < export.json       # URNs with protect: true
    python3 kpt_catalog/stackstate.py present URN... < export.json  # those of URN... in state
    python3 kpt_catalog/stackstate.py secrets --stack S --state-dir D  # does it hold secrets?

`protected` and `present` read what `pulumi stack export` prints: `{"version": 3, "deployment":
{"resources": [{"urn": ..., "protect": true, "delete": ...}, ...]}}` (apitype.UntypedDeployment,
DeploymentV3 and ResourceV3 in pulumi/pulumi sdk/go/common/apitype/core.go). A resource with
`delete: true` is an old copy pending deletion; `pulumi state unprotect` skips those and refuses
their URN (pkg/cmd/pulumi/state/state_unprotect.go), so they are left out.

`secrets` exits 0 when the stack holds no secret, 1 when it does (one line per place found), 2 when
it cannot tell (one line saying why), and 3 when the stack file names a secrets provider other
than the passphrase (the provider is printed): then the passphrase is not what protects them.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["main", "protected_urns", "stack_secrets"]

# A secret in state is {"4dabf1...": "1b4706...", "ciphertext": "..."} (or "plaintext" in memory):
# sig.Key and sig.Secret in pulumi/pulumi sdk/go/common/resource/sig/sig.go, written by
# SerializePropertyValue in pkg/resource/stack/deployment.go.
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 - a type marker, not a password

NO_SECRETS, HOLDS_SECRETS, CANNOT_TELL, OTHER_PROVIDER = 0, 1, 2, 3

# `pulumi config set --secret` stores `key: {secure: v1:...}`; an object value may hold `secure:`
# at any depth, and Pulumi reads any one-key map named `secure` as a secret.
SECRETS_PROVIDER = re.compile(r"^secretsprovider\s*:\s*(\S.*?)\s*$")
PROJECT_NAME = re.compile(r"^name\s*:\s*['\"]?([^'\"#\s]+)")


def _resources(export: object) -> Iterator[dict[str, object]]:
    if not isinstance(export, dict):
        raise ValueError("expected a JSON object from `pulumi stack export`")
    deployment = export.get("deployment") or {}
    if not isinstance(deployment, dict):
        raise ValueError("`deployment` is not a JSON object")
    for resource in deployment.get("resources") or []:
        if isinstance(resource, dict) and isinstance(resource.get("urn"), str):
            yield resource


def protected_urns(export: object) -> list[str]:
    """The URNs of live resources that carry `protect: true`, each once, in state order."""
    urns: list[str] = []
    for resource in _resources(export):
        urn = str(resource["urn"])
        live = resource.get("delete") is not True
        if resource.get("protect") is True and live and urn not in urns:
            urns.append(urn)
    return urns


def present_urns(export: object, wanted: list[str]) -> list[str]:
    """Those of `wanted` that are still live resources in the exported state."""
    live = {str(r["urn"]) for r in _resources(export) if r.get("delete") is not True}
    return [urn for urn in wanted if urn in live]


def _holds_secret(value: object) -> bool:
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return True
        return any(_holds_secret(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_secret(item) for item in value)
    return False


# Without a YAML parser: `secure:` as a key however quoted (`"secure":`, `'secure' :`).
SECURE_ANY_QUOTE = re.compile(r"""(?:^|[\s{,-])["']?secure["']?\s*:\s*\S""")


def _holds_secure(value: object) -> bool:
    """Whether a stack file's document holds a `secure` value at any depth: Pulumi reads any
    one-key map named `secure` as a secret (sdk/go/common/resource/config/value.go)."""
    if isinstance(value, dict):
        return "secure" in value or any(_holds_secure(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_secure(item) for item in value)
    return False


def _read_stack_file(path: Path) -> tuple[object, str]:
    """(the stack file as data, or None when no parser here can read it; a problem)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        return None, f"{path.name}: cannot be read ({error})"
    try:
        import yaml  # optional: the venv has it, a bare python3 may not
    except ImportError:
        try:
            return json.loads(text), ""  # JSON is YAML: a stack file written as JSON
        except ValueError:
            return None, ""
    try:
        return yaml.safe_load(text), ""
    except yaml.YAMLError as error:
        return None, f"{path.name}: not valid YAML ({' '.join(str(error).split())})"


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]


def _checkpoints(state_dir: Path, project: str, stack: str) -> list[Path]:
    # The file backend keeps a stack at .pulumi/stacks/<project>/<stack>.json, or .json.gz /
    # .json.zst when compressed, or at .pulumi/stacks/<stack>.json in the layout from before
    # projects (pulumi/pulumi pkg/backend/diy/store.go: StackBasePath).
    stacks = state_dir / ".pulumi" / "stacks"
    found: list[Path] = []
    for base in (stacks / project / stack, stacks / stack):
        for suffix in (".json", ".json.gz", ".json.zst"):
            candidate = base.with_name(base.name + suffix)
            if candidate.is_file():
                found.append(candidate)
    return found


def stack_secrets(project_dir: Path, stack: str, state_dir: Path) -> tuple[int, list[str]]:
    """One of NO_SECRETS, HOLDS_SECRETS, CANNOT_TELL, OTHER_PROVIDER, and the lines to print."""
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    found: list[str] = []
    if stack_file.is_file():
        document, problem = _read_stack_file(stack_file)
        if problem:
            return CANNOT_TELL, [problem]
        if document is None:
            lines = _lines(stack_file)
            providers = [m.group(1) for line in lines if (m := SECRETS_PROVIDER.match(line))]
            secure = any(SECURE_ANY_QUOTE.search(line) for line in lines)
        else:
            raw = document.get("secretsprovider") if isinstance(document, dict) else None
            providers = [str(raw)] if raw is not None else []
            secure = _holds_secure(document)
        for provider in providers:
            name = provider.strip().strip("'\"")
            if name and name != "passphrase":
                return OTHER_PROVIDER, [name]
        if secure:
            found.append(
                f"{stack_file.name}: a `secure:` value (set with `pulumi config set --secret`)"
            )

    project_file = project_dir / "Pulumi.yaml"
    project_lines = _lines(project_file) if project_file.is_file() else []
    names = [m.group(1) for line in project_lines if (m := PROJECT_NAME.match(line))]
    if not names:
        return CANNOT_TELL, [f"{project_file}: no `name:`, so the stack's state file is unknown"]
    for checkpoint in _checkpoints(state_dir, names[0], stack):
        shown = (
            checkpoint.relative_to(project_dir)
            if checkpoint.is_relative_to(project_dir)
            else checkpoint
        )
        if checkpoint.name.endswith(".zst"):
            return CANNOT_TELL, [f"{shown}: zstd-compressed state cannot be read here"]
        try:
            if checkpoint.name.endswith(".gz"):
                text = gzip.decompress(checkpoint.read_bytes()).decode()
            else:
                text = checkpoint.read_text()
            state = json.loads(text)
        except (OSError, ValueError, EOFError) as error:
            return CANNOT_TELL, [f"{shown}: cannot be read ({error})"]
        if _holds_secret(state):
            found.append(f"{shown}: encrypted values in the deployed state")
    return (HOLDS_SECRETS, found) if found else (NO_SECRETS, [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stackstate", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("protected", help="URNs with protect: true, from stack export on stdin")
    present = commands.add_parser("present", help="those URNs still in the exported state")
    present.add_argument("urns", nargs="*")
    secrets = commands.add_parser("secrets", help="does the stack hold secrets?")
    secrets.add_argument("--stack", required=True)
    secrets.add_argument("--state-dir", required=True, type=Path)
    secrets.add_argument("--project-dir", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)

    if args.command == "secrets":
        status, lines = stack_secrets(args.project_dir, args.stack, args.state_dir)
        for line in lines:
            print(line)
        return status
    try:
        export = json.load(sys.stdin)
        urns = (
            protected_urns(export)
            if args.command == "protected"
            else present_urns(export, args.urns)
        )
    except ValueError as error:
        print(f"stackstate: cannot read `pulumi stack export`: {error}", file=sys.stderr)
        return 2
    for urn in urns:
        print(urn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
