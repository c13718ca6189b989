"""`fleet.yaml`: the clusters one catalog is rolled to, and how.

```yaml
clusters:                 # each a stack of this project: Pulumi.<name>.yaml
  - name: lab
    labels: {ring: canary}
  - name: site-a
    labels: {region: east}
canary:                   # the first wave: by label, or the first `count` clusters
  selector: {ring: canary}
waves:                    # the rest, in waves of:
  by: label               #   one wave per value of `label` (sorted), or
  label: region           #   by: count, size: 3   /   by: doubling, start: 1 (1, 2, 4, ...)
maxConcurrency: 4         # clusters deploying at once
maxFailures: 1            # per wave: a count, or a percent of the wave ("25%")
bakeTime: 2m              # after a cluster's up, before its health check
healthDeadline: 10m       # the health check's bound
unreachable: defer        # a cluster that does not answer: defer (to the end) or fail
onFailure: rollbackFailed # over budget: pause, rollbackFailed or rollbackWave
```

Every mistake is named with its line before anything runs, as packages.yaml's are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from components.config import ConfigError, load_with_lines, yaml_error_text
from components.config.located import locate_in
from components.config.problems import Problems
from kpt_catalog.stackfile import STACK_NAME

__all__ = [
    "FLEET_FILE",
    "ON_FAILURE",
    "Cluster",
    "FleetConfig",
    "WaveRule",
    "load_fleet",
    "parse_fleet",
]

FLEET_FILE = "fleet.yaml"
ON_FAILURE = ("pause", "rollbackFailed", "rollbackWave")
_KEYS = frozenset(
    {
        "clusters",
        "canary",
        "waves",
        "maxConcurrency",
        "maxFailures",
        "bakeTime",
        "healthDeadline",
        "unreachable",
        "onFailure",
    }
)
_CLUSTER_KEYS = frozenset({"name", "labels"})
_CANARY_KEYS = frozenset({"selector", "count"})
_WAVE_KEYS = frozenset({"by", "label", "size", "start"})
_PERCENT = re.compile(r"^(\d{1,3})%$")


@dataclass(frozen=True)
class Cluster:
    """One cluster: a stack of this project."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WaveRule:
    """How the clusters after the canary are grouped into waves."""

    by: str = "count"
    """label, count or doubling."""
    label: str = ""
    size: int = 1
    start: int = 1


@dataclass(frozen=True)
class FleetConfig:
    """fleet.yaml, checked."""

    clusters: tuple[Cluster, ...]
    canary_selector: Mapping[str, str]
    canary_count: int
    waves: WaveRule
    max_concurrency: int = 4
    max_failures: int = 0
    max_failures_percent: int | None = None
    """`maxFailures` written as a percent of each wave; None when a count."""
    bake_seconds: int = 0
    health_seconds: int = 600
    unreachable: str = "defer"
    on_failure: str = "pause"

    def budget(self, wave_size: int) -> int:
        """How many clusters of a wave of `wave_size` may fail before its policy runs."""
        if self.max_failures_percent is None:
            return self.max_failures
        return wave_size * self.max_failures_percent // 100


def _labels(problems: Problems, key: str, raw: object) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int | bool) for k, v in raw.items()
    ):
        problems.add(key, f"expected a mapping of label to value, found {raw!r}")
        return {}
    return {k: str(v) for k, v in raw.items()}


def _count(problems: Problems, key: str, raw: object, default: int, least: int) -> int:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < least:
        problems.add(key, f"expected a whole number of at least {least}, found {raw!r}")
        return default
    return raw


def _bake(problems: Problems, raw: object) -> int:
    """`bakeTime`: 0 (none) or a duration."""
    if raw in (None, 0, "0", "0s"):
        return 0
    return problems.duration("bakeTime", raw, 0)


def parse_fleet(document: object) -> FleetConfig:
    """Check `document` (fleet.yaml as read); ConfigError naming every problem and its line."""
    problems = Problems()
    if not isinstance(document, dict):
        raise ConfigError(
            [f"{FLEET_FILE}: expected a mapping with clusters, found {document!r:.80}"]
        )
    problems.unknown_keys("fleet", document, _KEYS)
    problems.items = [item.removeprefix("fleet.") for item in problems.items]
    clusters: list[Cluster] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(problems.listing("clusters", document.get("clusters"))):
        key = f"clusters[{index}]"
        if not isinstance(raw, dict):
            problems.add(key, f"expected {{name, labels}}, found {raw!r}")
            continue
        problems.unknown_keys(key, raw, _CLUSTER_KEYS)
        name = problems.string(f"{key}.name", raw.get("name"), required=True)
        if name and not STACK_NAME.fullmatch(name):
            problems.add(f"{key}.name", f"{name!r} is not a stack name (letters, digits, -_.)")
        elif name in seen:
            problems.add(f"{key}.name", f"{name!r} is also clusters[{seen[name]}]")
        elif name:
            seen[name] = index
            clusters.append(Cluster(name, _labels(problems, f"{key}.labels", raw.get("labels"))))
    if document.get("clusters") is not None and not clusters and not problems.items:
        problems.add("clusters", "expected at least one cluster")
    if document.get("clusters") is None:
        problems.add("clusters", "is required: a list of {name, labels}, each a stack")
    canary = document.get("canary") or {}
    selector: dict[str, str] = {}
    canary_count = 0
    if not isinstance(canary, dict):
        problems.add("canary", f"expected {{selector}} or {{count}}, found {canary!r}")
    else:
        problems.unknown_keys("canary", canary, _CANARY_KEYS)
        selector = _labels(problems, "canary.selector", canary.get("selector"))
        canary_count = _count(problems, "canary.count", canary.get("count"), 0, 1)
        if selector and canary_count:
            problems.add("canary", "give selector or count, not both")
        if not selector and not canary_count:
            canary_count = 1  # the first cluster listed
        elif selector and not any(
            all(c.labels.get(k) == v for k, v in selector.items()) for c in clusters
        ):
            problems.add("canary.selector", f"{selector} matches no cluster")
    rule = WaveRule()
    waves = document.get("waves") or {}
    if not isinstance(waves, dict):
        problems.add("waves", f"expected {{by, ...}}, found {waves!r}")
    else:
        problems.unknown_keys("waves", waves, _WAVE_KEYS)
        by = problems.string("waves.by", waves.get("by"), default="count")
        if by not in ("label", "count", "doubling"):
            problems.add("waves.by", f"expected label, count or doubling, found {by!r}")
        label = problems.string("waves.label", waves.get("label"))
        if by == "label" and not label:
            problems.add("waves.label", "is required with by: label (the label whose values group)")
        rule = WaveRule(
            by=by,
            label=label,
            size=_count(problems, "waves.size", waves.get("size"), 1, 1),
            start=_count(problems, "waves.start", waves.get("start"), 1, 1),
        )
    raw_failures = document.get("maxFailures", 0)
    max_failures, percent = 0, None
    if isinstance(raw_failures, str) and (match := _PERCENT.fullmatch(raw_failures.strip())):
        percent = int(match.group(1))
        if percent > 100:
            problems.add("maxFailures", f"expected a percent of at most 100%, found {raw_failures}")
    else:
        max_failures = _count(problems, "maxFailures", raw_failures, 0, 0)
    unreachable = problems.string("unreachable", document.get("unreachable"), default="defer")
    if unreachable not in ("defer", "fail"):
        problems.add("unreachable", f"expected defer or fail, found {unreachable!r}")
    on_failure = problems.string("onFailure", document.get("onFailure"), default="pause")
    if on_failure not in ON_FAILURE:
        problems.add("onFailure", f"expected one of {', '.join(ON_FAILURE)}, found {on_failure!r}")
    config = FleetConfig(
        clusters=tuple(clusters),
        canary_selector=selector,
        canary_count=canary_count,
        waves=rule,
        max_concurrency=_count(problems, "maxConcurrency", document.get("maxConcurrency"), 4, 1),
        max_failures=max_failures,
        max_failures_percent=percent,
        bake_seconds=_bake(problems, document.get("bakeTime")),
        health_seconds=problems.duration("healthDeadline", document.get("healthDeadline"), 600),
        unreachable=unreachable,
        on_failure=on_failure,
    )
    if problems.items:
        raise ConfigError(locate_in(problems.items, document))
    return config


def load_fleet(path: Path, known_stacks: Sequence[str] | None = None) -> FleetConfig:
    """fleet.yaml at `path`, checked; with `known_stacks`, every cluster must be one of them."""
    try:
        document = load_with_lines(path.read_text(encoding="utf-8"), path.name)
    except FileNotFoundError:
        raise ConfigError(
            [f"{path.name}: not found at {path}; it lists the clusters (docs/fleet.md)"]
        ) from None
    except yaml.YAMLError as error:
        raise ConfigError([yaml_error_text(path.name, error)]) from None
    config = parse_fleet(document)
    if known_stacks is not None:
        missing = [
            f"clusters[{i}].name: no stack file Pulumi.{c.name}.yaml; create it with "
            f"kpt-catalog stack init {c.name} --kubeconfig FILE --context CONTEXT"
            for i, c in enumerate(config.clusters)
            if c.name not in known_stacks
        ]
        if missing:
            raise ConfigError(locate_in(missing, document))
    return config
