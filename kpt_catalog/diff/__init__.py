"""`kpt-catalog diff`: what `up` would do to each package's objects, from the cluster's own dry run.

For every package, in deploy order (all checked at once, up to JOBS, under one bound TIMEOUT):
- objects that would change, with a unified diff of their fields: `kubectl diff --server-side`
  on the package's objects (the Kptfile, the ResourceGroup and local-config objects left out);
- objects that would be created;
- objects kpt would prune: listed in the cluster's inventory (the ResourceGroup's
  `spec.resources`) but no longer in the files, minus those kpt keeps
  (`components.step.prune.rules`).
Secret values are never printed: for a Secret only the keys whose values change are named.

Exit status, like `terraform plan -detailed-exitcode`: 0 everything in sync, 1 differences,
2 an error (configuration, an unreachable cluster, a failed kubectl).

`--after-preview FILE` reads `pulumi preview --json` (from `make preview`) and diffs only the
packages that preview creates or updates (all of them with `--drift`); differences then exit 0.
"""

from __future__ import annotations

from kpt_catalog.diff.command import main
from kpt_catalog.diff.model import Native, PackageDiff
from kpt_catalog.diff.objects import package_objects
from kpt_catalog.diff.package import diff_package
from kpt_catalog.diff.prerequisites import Prerequisites
from kpt_catalog.diff.preview import PACKAGE_TYPE, packages_in_preview, preview_digest
from kpt_catalog.diff.unified import Change, MalformedDiffError, parse_unified_diff

__all__ = [
    "PACKAGE_TYPE",
    "Change",
    "MalformedDiffError",
    "Native",
    "PackageDiff",
    "Prerequisites",
    "diff_package",
    "main",
    "package_objects",
    "packages_in_preview",
    "parse_unified_diff",
    "preview_digest",
]
