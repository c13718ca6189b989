"""The files of a package that kpt reads, read safely: never followed into a device, never hung,
never handed to the YAML parser when they are not text or would expand without bound.

kpt 1.0.0-beta.56 reads `*.yaml` and `*.yml` below the package (sub-directories included), plus
the Kptfile; measured on the local control plane (`kpt live apply --dry-run` and `kpt pkg tree`
list `x.yml`, `.#x.yaml` and `sub/x.yaml`, never `x.json`, `x.YAML` or `x.yaml~`). The glob is
matched against the base name as Go's `filepath.Match` does, whose `*` also matches a leading
dot: an editor's lock file `.#x.yaml` is read, a backup `x.yaml~` or `#x.yaml#` is not. A `.json`
file holding an object is reported: kpt would never apply it, which its author cannot mean.
Directories are walked without following symlinks; a symlinked *file* is opened (so followed).
A `.krmignore` changes what kpt reads, with gitignore rules this program does not reproduce, so
it is refused.

Only the files kpt reads feed the digest and the scan, so an edit kpt would not see never
re-applies a package, and every edit it would see does.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "MAX_EXPANDED_NODES",
    "MAX_MANIFEST_BYTES",
    "PackageFile",
    "PackageFiles",
    "read_file",
    "read_package_files",
    "unsafe_yaml",
]

MAX_MANIFEST_BYTES = 64 * 1024 * 1024
"""No manifest kpt is meant to apply is this large (the largest CRD bundles are a few MiB)."""
MAX_EXPANDED_NODES = 1_000_000
"""A file whose aliases expand past this many nodes is refused, as kpt's YAML parser refuses
"excessive aliasing" (a "billion laughs" document expands a few lines into billions of nodes)."""
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_KPT_GLOBS = ("*.yaml", "*.yml")
_KPTFILE = "Kptfile"
_KRMIGNORE = ".krmignore"


@dataclass(frozen=True)
class PackageFile:
    """One file kpt would read, with its bytes."""

    relative: str
    """Posix path relative to the package directory."""
    content: bytes


@dataclass
class PackageFiles:
    """What a safe read of a package directory found."""

    files: list[PackageFile] = field(default_factory=list)
    """Sorted by relative path."""
    problems: list[str] = field(default_factory=list)


def kpt_reads(name: str) -> bool:
    """Whether kpt reads a file of this base name (Go's `filepath.Match`, where `*` matches a
    leading dot too, unlike a shell glob; Python's fnmatch behaves like Go's here)."""
    return name == _KPTFILE or any(fnmatch.fnmatchcase(name, glob) for glob in _KPT_GLOBS)


def read_file(path: Path, label: str) -> tuple[bytes | None, str | None]:
    """The bytes of a regular file of at most MAX_MANIFEST_BYTES, or a problem naming `label`.

    Checked before it is opened, opened non-blocking (a FIFO swapped in never blocks the open)
    and checked again on the open descriptor, so what is read is what was checked: never a
    device, FIFO or socket."""
    try:
        # stat first: a socket cannot even be opened, and a FIFO or device need not be.
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            return (
                None,
                f"{label} is {_kind(info.st_mode)}, not a file: kpt cannot read it; remove it",
            )
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        if not path.is_symlink():
            return None, f"{label}: cannot read it, it does not exist"
        return None, f"{label} is a symlink to nothing (dangling); remove it or fix its target"
    except OSError as error:
        if error.errno == 40:  # ELOOP
            return None, f"{label} is a symlink loop; remove it"
        return None, f"{label} cannot be read: {error.strerror}"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return (
                None,
                f"{label} is {_kind(info.st_mode)}, not a file: kpt cannot read it; remove it",
            )
        if info.st_size > MAX_MANIFEST_BYTES:
            return None, (
                f"{label} is {info.st_size} bytes, over the {MAX_MANIFEST_BYTES // 2**20} MiB "
                "a manifest may have; remove it or move it out of the package"
            )
        with os.fdopen(fd, "rb", closefd=True) as stream:
            fd = -1
            content = stream.read(MAX_MANIFEST_BYTES + 1)
        if len(content) > MAX_MANIFEST_BYTES:  # grew while read
            return (
                None,
                f"{label} is over the {MAX_MANIFEST_BYTES // 2**20} MiB a manifest may have",
            )
        return content, None
    finally:
        if fd >= 0:
            os.close(fd)


def _kind(mode: int) -> str:
    for test, what in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return what
    return "a special file"


def read_package_files(root: Path) -> PackageFiles:
    """Every file kpt would read below `root`, read once, with a problem per unreadable one."""
    found = PackageFiles()
    pending = [(root, "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as error:
            found.problems.append(f"{prefix or '.'}: cannot list the directory: {error.strerror}")
            continue
        for entry in entries:
            relative = f"{prefix}{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                pending.append((Path(entry.path), relative + "/"))
            elif entry.name == _KRMIGNORE:
                found.problems.append(
                    f"{relative}: a .krmignore changes which files kpt applies, which this "
                    "program cannot follow; move the ignored files out of the package instead"
                )
            elif entry.name.endswith(".json") and entry.is_file():
                content, _ = read_file(Path(entry.path), relative)
                if content is not None and b'"apiVersion"' in content and b'"kind"' in content:
                    found.problems.append(
                        f"{relative}: kpt does not read .json files, so this object would never "
                        "be applied; rename it to .yaml (JSON is YAML) or move it out"
                    )
            elif kpt_reads(entry.name):
                content, problem = read_file(Path(entry.path), relative)
                if problem is not None:
                    found.problems.append(problem)
                elif content is not None:
                    found.files.append(PackageFile(relative, content))
    found.files.sort(key=lambda f: f.relative)
    return found


def unsafe_yaml(content: bytes) -> str | None:
    """Why the YAML parser must not be given `content`: bytes that are not UTF-8 text, or
    aliases that expand past MAX_EXPANDED_NODES; None when it is safe."""
    try:
        content.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"is not UTF-8 text (byte {error.start}); kpt reads UTF-8 YAML only"
    if b"&" not in content or b"*" not in content:  # no anchor or no alias: nothing expands
        return None
    try:
        expanded = _expanded_nodes(content)
    except yaml.YAMLError as error:
        return f"not valid YAML: {error}".replace("\n", " ")
    if expanded > MAX_EXPANDED_NODES:
        return (
            f"its YAML aliases expand to over {MAX_EXPANDED_NODES} nodes (an alias bomb?); "
            "kpt refuses excessive aliasing: write the values out"
        )
    return None


def _expanded_nodes(content: bytes) -> int:
    """How many nodes the documents have with every alias expanded, from parser events alone
    (nothing is constructed), stopping as soon as the count passes the bound."""
    sizes: dict[str, int] = {}
    open_nodes: list[tuple[str | None, int]] = [(None, 0)]  # (anchor, nodes so far) per container
    for event in yaml.parse(content, Loader=_Loader):
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            open_nodes.append((event.anchor, 1))
            continue
        if isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            anchor, size = open_nodes.pop()
        elif isinstance(event, yaml.ScalarEvent):
            anchor, size = event.anchor, 1
        elif isinstance(event, yaml.AliasEvent):
            anchor, size = None, sizes.get(str(event.anchor), 1)
        else:
            continue
        if anchor is not None:
            sizes[anchor] = size
        parent_anchor, parent_size = open_nodes[-1]
        open_nodes[-1] = (parent_anchor, parent_size + size)
        if open_nodes[0][1] + sum(s for _, s in open_nodes[1:]) > MAX_EXPANDED_NODES:
            return MAX_EXPANDED_NODES + 1
    return open_nodes[0][1]
