"""What `kpt live apply` would prune: objects the cluster's inventory lists that the files dropped.

Pure and standard-library only. `make diff` uses it to list prunes from the cluster's own
inventory; the apply step asks kpt itself instead (`kpt live apply --dry-run`, in
components/step/prune/__init__.py), which is the authority just before an apply. The inputs
are what the cluster and the package already say:

- the package's ResourceGroup as `kubectl get resourcegroups.kpt.dev NAME -n NS -o json` prints
  it: `spec.resources` lists every object kpt applied, as `{group, kind, namespace, name}`;
- the objects of the package's files (`ObjectKey.of` each document);
- the live objects that are candidates for pruning, whose annotations can hold them back.

kpt (cli-utils) leaves an object in place, instead of pruning it, when it carries
`cli-utils.sigs.k8s.io/on-remove: keep` or `client.lifecycle.config.k8s.io/deletion: detach`
(`NoDeletion` in kubernetes-sigs/cli-utils pkg/common/common.go, checked by its
PreventRemoveFilter), or when another inventory owns it (`config.k8s.io/owning-inventory`, the
InventoryPolicyPruneFilter of the default `strict` policy).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "CLUSTER_SCOPED",
    "DEPENDS_ON_ANNOTATION",
    "GUARDED",
    "GUARDED_KINDS",
    "KEEP_ANNOTATION",
    "KEEP_ANNOTATIONS",
    "OWNING_INVENTORY_ANNOTATION",
    "ObjectKey",
    "PruneInputError",
    "PrunePlan",
    "allowed_entry",
    "blocked_because",
    "depends_on",
    "entry_problem",
    "inventory_objects",
    "kept_because",
    "plan_prune",
    "prune_candidates",
    "refused_by_guard",
]

# Annotation -> the value that makes kpt keep the object when it leaves the package.
KEEP_ANNOTATIONS = {
    "cli-utils.sigs.k8s.io/on-remove": "keep",
    "client.lifecycle.config.k8s.io/deletion": "detach",
}
OWNING_INVENTORY_ANNOTATION = "config.k8s.io/owning-inventory"


# What Kubernetes allows in an inventory entry (apimachinery pkg/util/validation): a group is a
# DNS subdomain, a namespace a DNS label; a kind is an identifier; a name is at most 253
# characters without `/` or `%` and is not `.` or `..` (path-segment names; most kinds want a DNS
# subdomain, RBAC kinds allow `:`). Anything else is a hand edit that would reach kubectl as a
# flag or a path.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)
_KIND = re.compile(r"[A-Za-z][A-Za-z0-9]{0,62}")
# Built-in kinds that have no namespace, by API group (kubectl api-resources --namespaced=false).
CLUSTER_SCOPED = frozenset(
    {
        ("", "Namespace"),
        ("", "Node"),
        ("", "PersistentVolume"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("apiregistration.k8s.io", "APIService"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("storage.k8s.io", "StorageClass"),
        ("storage.k8s.io", "CSIDriver"),
        ("storage.k8s.io", "VolumeAttachment"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("node.k8s.io", "RuntimeClass"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
        ("networking.k8s.io", "IngressClass"),
        ("certificates.k8s.io", "CertificateSigningRequest"),
        ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    }
)


def entry_problem(key: ObjectKey, cluster_scoped: Iterable[tuple[str, str]] = ()) -> str:
    """What is wrong with an inventory entry, as Kubernetes would see it; "" when nothing.
    `cluster_scoped` adds (group, kind) pairs known to have no namespace (a package's CRDs)."""
    if not _KIND.fullmatch(key.kind):
        return f"kind {key.kind!r} is not a Kubernetes kind (letters and digits)"
    if key.group and not _DNS_SUBDOMAIN.fullmatch(key.group):
        return f"group {key.group!r} is not an API group (a lower-case DNS name)"
    if key.namespace and not _DNS_LABEL.fullmatch(key.namespace):
        return f"namespace {key.namespace!r} is not a namespace name (a lower-case DNS label)"
    if (
        len(key.name) > 253
        or key.name in (".", "..")
        or any(c in key.name for c in "/%")
        or not key.name.isprintable()
        or key.name.strip() != key.name
    ):
        return f"name {key.name!r} is not an object name"
    scoped = (key.group, key.kind) in CLUSTER_SCOPED or (key.group, key.kind) in set(cluster_scoped)
    if scoped and key.namespace:
        return (
            f"a {key.kind} has no namespace, yet this entry names namespace {key.namespace!r}: "
            "kpt cannot find it there"
        )
    return ""


class PruneInputError(ValueError):
    """The inventory or an object does not have the shape the cluster gives it."""


@dataclass(frozen=True, order=True)
class ObjectKey:
    """An object as kpt's inventory names it: API group (empty for core), kind, namespace (empty
    for cluster-scoped objects) and name."""

    group: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, document: Mapping[str, object]) -> ObjectKey:
        """The key of a manifest or live object (`apiVersion`, `kind`, `metadata`)."""
        api_version = document.get("apiVersion")
        kind = document.get("kind")
        metadata = document.get("metadata")
        if not isinstance(api_version, str) or not isinstance(kind, str) or not kind:
            raise PruneInputError("an object without apiVersion or kind")
        if not isinstance(metadata, Mapping) or not isinstance(metadata.get("name"), str):
            raise PruneInputError(f"a {kind} without metadata.name")
        group = api_version.rpartition("/")[0]
        namespace = metadata.get("namespace") or ""
        return cls(group, kind, str(namespace), str(metadata["name"]))

    def __str__(self) -> str:
        """`Kind/namespace/name`, or `Kind/name` when cluster-scoped."""
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"

    @property
    def kubectl_resource(self) -> str:
        """How `kubectl get` names it: `deployment.apps/x`, `configmap/x`."""
        kind = self.kind.lower()
        return f"{kind}.{self.group}/{self.name}" if self.group else f"{kind}/{self.name}"


def inventory_objects(
    resource_group: Mapping[str, object], cluster_scoped: Iterable[tuple[str, str]] = ()
) -> list[ObjectKey]:
    """The objects a ResourceGroup's `spec.resources` lists (its `kubectl get -o json` form),
    each checked as Kubernetes allows it (`entry_problem`; `cluster_scoped` as there)."""
    scoped = frozenset(cluster_scoped)
    spec = resource_group.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise PruneInputError("the ResourceGroup's spec is not an object")
    entries = spec.get("resources") or []
    if not isinstance(entries, list):
        raise PruneInputError("the ResourceGroup's spec.resources is not a list")
    keys: list[ObjectKey] = []
    for entry in entries:
        if isinstance(entry, Mapping):
            # The ResourceGroup CRD declares these strings; anything else would be turned into
            # a name that no object has.
            for field_name in ("group", "kind", "namespace", "name"):
                value = entry.get(field_name)
                if value is not None and not isinstance(value, str):
                    raise PruneInputError(
                        f"spec.resources holds an entry whose {field_name} is not a string: "
                        f"{entry!r:.200}"
                    )
        if not isinstance(entry, Mapping) or not entry.get("kind") or not entry.get("name"):
            raise PruneInputError(f"spec.resources holds an entry without kind or name: {entry!r}")
        key = ObjectKey(
            str(entry.get("group") or ""),
            str(entry["kind"]),
            str(entry.get("namespace") or ""),
            str(entry["name"]),
        )
        problem = entry_problem(key, scoped)
        if problem:
            raise PruneInputError(f"spec.resources[{len(keys)}]: {problem}")
        keys.append(key)
    return keys


def prune_candidates(
    inventory: Iterable[ObjectKey], package_objects: Iterable[ObjectKey]
) -> list[ObjectKey]:
    """Inventory entries that no object of the package matches, sorted.

    A package object written without a namespace matches an entry of the same group, kind and
    name in any namespace: kpt fills the namespace in at apply time, and the files cannot say
    which one it was.
    """
    exact = set(package_objects)
    unnamespaced = {(k.group, k.kind, k.name) for k in exact if not k.namespace}
    return sorted(
        key
        for key in set(inventory)
        if key not in exact and (key.group, key.kind, key.name) not in unnamespaced
    )


DEPENDS_ON_ANNOTATION = "config.kubernetes.io/depends-on"
KEEP_ANNOTATION = "cli-utils.sigs.k8s.io/on-remove: keep"
# The prune guard: kinds whose prune takes more than the object (every custom resource of a CRD,
# everything in a Namespace, a PVC's data), by API group: a custom kind called Namespace is none.
GUARDED = frozenset(
    {
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("", "Namespace"),
        ("", "PersistentVolumeClaim"),
    }
)
GUARDED_KINDS = ("CustomResourceDefinition", "Namespace", "PersistentVolumeClaim")


class Named(Protocol):
    """Anything naming an object as kpt does (ObjectKey here, the step's ObjectRef)."""

    @property
    def group(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...


def allowed_entry(obj: Named) -> str:
    """The exact allowPrune entry that allows pruning `obj`: `Kind/name`, `Kind/ns/name`."""
    where = f"{obj.namespace}/" if obj.namespace else ""
    return f"{obj.kind}/{where}{obj.name}"


def _allows(entry: str, obj: Named) -> bool:
    parts = entry.split("/")
    if parts[0] != obj.kind:
        return False
    if len(parts) == 2:
        return not obj.namespace and obj.name == parts[1]
    if len(parts) == 3:
        return obj.namespace == parts[1] and obj.name == parts[2]
    return True


def refused_by_guard(obj: Named, allowed: Iterable[str]) -> bool:
    """Whether the prune guard refuses to let kpt prune `obj`: a guarded kind that no
    allowPrune entry names (`Kind`, `Kind/name` or `Kind/namespace/name`)."""
    return (obj.group, obj.kind) in GUARDED and not any(_allows(e, obj) for e in allowed)


def kept_because(live: Mapping[str, object], inventory_id: str) -> str:
    """Why kpt would leave this live object in place although it left the files, by its
    annotations alone: kept on purpose, or another inventory's; empty when neither."""
    annotations = _annotations(live)
    for annotation, value in KEEP_ANNOTATIONS.items():
        if annotations.get(annotation) == value:
            return f"annotated {annotation}: {value}"
    owner = annotations.get(OWNING_INVENTORY_ANNOTATION)
    if inventory_id and isinstance(owner, str) and owner and owner != inventory_id:
        return f"owned by another inventory ({OWNING_INVENTORY_ANNOTATION}: {owner})"
    return ""


def _annotations(obj: Mapping[str, object]) -> Mapping[str, object]:
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    return annotations if isinstance(annotations, Mapping) else {}


def depends_on(obj: Mapping[str, object]) -> list[ObjectKey]:
    """The objects `obj`'s `config.kubernetes.io/depends-on` names: `group/namespaces/ns/Kind/
    name` or `group/Kind/name` (cluster-scoped), comma-separated; the core group is empty.
    Entries of another shape are left out (kpt refuses the package then: its own error)."""
    text = _annotations(obj).get(DEPENDS_ON_ANNOTATION)
    found = []
    for entry in str(text or "").split(","):
        parts = entry.strip().split("/")
        if len(parts) == 5 and parts[1] == "namespaces":
            found.append(ObjectKey(parts[0], parts[3], parts[2], parts[4]))
        elif len(parts) == 3:
            found.append(ObjectKey(parts[0], parts[1], "", parts[2]))
    return found


def blocked_because(
    key: ObjectKey,
    live: Mapping[str, object],
    package_objects: Iterable[Mapping[str, object]],
    inventory_namespace: str,
) -> str:
    """Why kpt would skip pruning `key` (whose live object is `live`) for a reason that fails
    the apply (cli-utils v0.36, pkg/apply/filter: LocalNamespacesFilter, then DependencyFilter,
    whose graph holds depends-on edges and the implicit ones from a CRD to its objects);
    empty when none."""
    objects = list(package_objects)
    if key.group == "" and key.kind == "Namespace":
        if key.name == inventory_namespace:
            return "namespace still in use by the package's inventory"
        if any(ObjectKey.of(o).namespace == key.name for o in objects):
            return "namespace still in use by objects of the package"
    served = _crd_kind(live) if key.kind == "CustomResourceDefinition" else None
    for obj in objects:
        if key in depends_on(obj):
            return f"{ObjectKey.of(obj)} depends on it ({DEPENDS_ON_ANNOTATION})"
        if served is not None and served == (
            str(obj.get("apiVersion", "")).rpartition("/")[0],
            obj.get("kind"),
        ):
            return f"{ObjectKey.of(obj)} is of its kind and stays in the package"
    return ""


def _crd_kind(crd: Mapping[str, object]) -> tuple[str, str] | None:
    """The (group, kind) a live CRD serves."""
    spec = crd.get("spec")
    names = spec.get("names") if isinstance(spec, Mapping) else None
    if not isinstance(spec, Mapping) or not isinstance(names, Mapping):
        return None
    return str(spec.get("group", "")), str(names.get("kind", ""))


@dataclass
class PrunePlan:
    """What a `kpt live apply` of the package would do to objects that left its files."""

    prune: list[ObjectKey] = field(default_factory=list)
    """Deleted by the apply."""
    kept: list[tuple[ObjectKey, str]] = field(default_factory=list)
    """Left in place on purpose (annotated), each with the reason."""
    blocked: list[tuple[ObjectKey, str]] = field(default_factory=list)
    """Skipped by kpt for a reason that makes `make up` stop before the apply (the prune
    check's "prune blocked"), each with the reason."""
    refused: list[tuple[ObjectKey, str]] = field(default_factory=list)
    """Pruned by kpt, but refused by the prune guard: each with the allowPrune entry that
    would let it go."""
    gone: list[ObjectKey] = field(default_factory=list)
    """Listed in the inventory but no longer in the cluster: only dropped from the inventory."""


def plan_prune(
    inventory: Iterable[ObjectKey],
    package_objects: Iterable[Mapping[str, object]],
    live: Mapping[ObjectKey, Mapping[str, object]],
    inventory_id: str,
    *,
    inventory_namespace: str = "",
    adopt: bool = False,
    allowed: Sequence[str] = (),
) -> PrunePlan:
    """Sort the prune candidates by what `make up` would do with each, given the live objects
    found (`live` holds only those that exist): kpt's prune filters in kpt's order
    (PreventRemove, InventoryPolicy, LocalNamespaces, Dependency), then the prune guard."""
    objects = list(package_objects)
    plan = PrunePlan()
    for key in prune_candidates(inventory, (ObjectKey.of(o) for o in objects)):
        found = live.get(key)
        if found is None:
            plan.gone.append(key)
            continue
        reason = kept_because(found, inventory_id)
        if reason.startswith("annotated"):
            plan.kept.append((key, reason))
            continue
        owner = _annotations(found).get(OWNING_INVENTORY_ANNOTATION)
        if reason:
            plan.blocked.append((key, f"{reason}: kpt never prunes another package's object"))
            continue
        if not owner and not adopt:
            plan.blocked.append(
                (
                    key,
                    f"it has no {OWNING_INVENTORY_ANNOTATION} annotation, and kpt's strict "
                    "policy prunes only its own objects",
                )
            )
            continue
        reason = blocked_because(key, found, objects, inventory_namespace)
        if reason:
            plan.blocked.append((key, reason))
        elif refused_by_guard(key, allowed):
            plan.refused.append((key, allowed_entry(key)))
        else:
            plan.prune.append(key)
    return plan
