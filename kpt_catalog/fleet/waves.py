"""The waves of a rollout: the canary first, then the rest by label, count or doubling."""

from __future__ import annotations

from dataclasses import dataclass

from kpt_catalog.fleet.config import Cluster, FleetConfig

__all__ = ["Wave", "plan_waves"]


@dataclass(frozen=True)
class Wave:
    """Clusters deployed together (at most maxConcurrency at once), with a failure budget."""

    name: str
    clusters: tuple[Cluster, ...]
    budget: int
    """How many of them may fail before the wave's policy runs."""


def _matches(cluster: Cluster, selector: dict[str, str]) -> bool:
    return all(cluster.labels.get(key) == value for key, value in selector.items())


def plan_waves(config: FleetConfig) -> list[Wave]:
    """The waves in the order they run; every cluster in exactly one."""
    clusters = list(config.clusters)
    if config.canary_selector:
        canary = [c for c in clusters if _matches(c, dict(config.canary_selector))]
    else:
        canary = clusters[: config.canary_count]
    rest = [c for c in clusters if c not in canary]
    groups: list[tuple[str, list[Cluster]]] = []
    rule = config.waves
    if rule.by == "label":
        values = sorted({c.labels[rule.label] for c in rest if rule.label in c.labels})
        groups = [
            (f"{rule.label}={v}", [c for c in rest if c.labels.get(rule.label) == v])
            for v in values
        ]
        unlabelled = [c for c in rest if rule.label not in c.labels]
        if unlabelled:
            groups.append((f"no {rule.label}", unlabelled))
    elif rule.by == "doubling":
        size, start = rule.start, 0
        while start < len(rest):
            groups.append((f"{size} cluster(s)", rest[start : start + size]))
            start += size
            size *= 2
    else:
        groups = [
            (f"{len(rest[i : i + rule.size])} cluster(s)", rest[i : i + rule.size])
            for i in range(0, len(rest), rule.size)
        ]
    waves = [Wave("canary", tuple(canary), config.budget(len(canary)))] if canary else []
    for number, (label, members) in enumerate(groups, start=1):
        waves.append(Wave(f"wave {number} ({label})", tuple(members), config.budget(len(members))))
    return waves
