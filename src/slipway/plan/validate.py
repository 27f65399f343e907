"""Checking a new object without asking the server: its kind's OpenAPI schema, then the rules the schema
cannot say (names, label syntax, a pod template's containers, a Deployment's selector).

A sync checks each object it will create here instead of sending a server-side dry-run: one
request per object saved. The verdict is one of three. ``ok``: the object is well-formed as far
as slipway can tell, and the apply is its only request. ``errors``: slipway believes the server
will refuse it; the planner then asks the server (a dry-run) for the exact answer, so a rule
slipway applies too strictly costs one request, never a false refusal. ``unsure``: no schema is
published for the kind, or it has rules only the server evaluates (CEL); the planner asks the
server. What no schema says (admission webhooks, quotas, RBAC) the apply still meets, and the
sync stops at that object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from ..items import Item
from ..kube import Obj
from ..kube.schema import Node, Outcome, check, compile_schema

if TYPE_CHECKING:
    from ..kube import Kube

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_ANNOTATIONS_MAX = 256 * 1024
# Past this size the server's own limits come into play (a request body, an etcd value, a ConfigMap's
# 1 MiB of data), which no schema states: such an object is left to the server's dry-run to judge.
_LARGE = 512 * 1024

# Kinds whose names follow other rules than a DNS subdomain.
_NAME_RULES = {
    ("", "Namespace"): "label",
    ("", "Service"): "dns1035",
    **dict.fromkeys(
        [("rbac.authorization.k8s.io", k) for k in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")],
        "segment",
    ),
}
_SELECTOR_KINDS = {("apps", "Deployment"), ("apps", "ReplicaSet"), ("apps", "StatefulSet"), ("apps", "DaemonSet")}
_TEMPLATES: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "Pod"): ("spec",),
    ("batch", "Job"): ("spec", "template", "spec"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
    **{gk: ("spec", "template", "spec") for gk in _SELECTOR_KINDS},
}


@dataclass
class Verdict:
    errors: list[str] = field(default_factory=list)
    unsure: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors and not self.unsure

    def message(self) -> str:
        more = f" (and {len(self.errors) - 3} more)" if len(self.errors) > 3 else ""
        return "; ".join(self.errors[:3]) + more


class LocalCheck:
    """Checks new objects of one plan against one server's schemas (and CRDs the same render declares)."""

    def __init__(self, kube: Kube, crds: dict[tuple[str, str, str], dict[str, Any]] | None = None) -> None:
        self.kube = kube
        self.crds = crds or {}
        self._roots: dict[tuple[str, str, str], Node | None] = {}

    def root(self, group: str, version: str, kind: str) -> Node | None:
        key = (group, version, kind)
        if key not in self._roots:
            declared = self.crds.get(key)
            if declared is not None:
                self._roots[key] = compile_schema(_crd_root(declared), lambda name: None)
            else:
                self._roots[key] = self.kube.openapi.schema(group, version, kind)
        return self._roots[key]

    def check(self, it: Item) -> Verdict:
        assert it.info is not None and it.desired is not None
        info, obj = it.info, it.desired
        root = self.root(info.group, info.version, info.kind)
        if root is None or len(msgspec.json.encode(obj)) > _LARGE:
            return Verdict(unsure=True)
        out = check(root, obj)
        gk = (info.group, info.kind)
        _metadata(gk, obj, out)
        _kind_rules(gk, obj, out)
        return Verdict(out.errors, out.unsure)


def _crd_root(schema: dict[str, Any]) -> dict[str, Any]:
    """A CRD's schema as the server reads it: apiVersion, kind and metadata are always allowed."""
    out = dict(schema)
    props = dict(out.get("properties") or {})
    props.setdefault("apiVersion", {"type": "string"})
    props.setdefault("kind", {"type": "string"})
    props["metadata"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    out["properties"] = props
    return out


def crd_schemas(manifests: list[Obj]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The schema of every kind and version the CRDs among ``manifests`` declare."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for obj in manifests:
        if obj.get("kind") != "CustomResourceDefinition" or not str(obj.get("apiVersion", "")).startswith(
            "apiextensions.k8s.io/"
        ):
            continue
        spec = obj.get("spec") or {}
        kind = (spec.get("names") or {}).get("kind")
        for v in spec.get("versions") or []:
            schema = ((v or {}).get("schema") or {}).get("openAPIV3Schema") if isinstance(v, dict) else None
            if spec.get("group") and kind and isinstance(schema, dict) and v.get("name"):
                out[(spec["group"], v["name"], kind)] = schema
    return out


def _name_ok(rule: str, name: str) -> bool:
    if rule == "segment":
        return name not in (".", "..") and "/" not in name and "%" not in name
    if rule == "label":
        return len(name) <= 63 and bool(_LABEL.match(name))
    if rule == "dns1035":
        return len(name) <= 63 and bool(_DNS1035.match(name))
    return len(name) <= 253 and bool(_SUBDOMAIN.match(name))


def _qualified(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _SUBDOMAIN.match(prefix)):
        return False
    return len(name) <= 63 and bool(_QUALIFIED.match(name))


def _metadata(gk: tuple[str, str], obj: Obj, out: Outcome) -> None:
    md = obj.get("metadata") or {}
    name = md.get("name")
    rule = _NAME_RULES.get(gk, "subdomain")
    if not isinstance(name, str) or not name:
        out.errors.append("metadata.name: Required value")
    elif not _name_ok(rule, name):
        words = {"label": "a DNS-1123 label", "dns1035": "a DNS-1035 label", "segment": "a path segment"}
        out.errors.append(f"metadata.name: Invalid value {name!r}: must be {words.get(rule, 'a DNS-1123 subdomain')}")
    ns = md.get("namespace")
    if ns and (not isinstance(ns, str) or not _LABEL.match(ns) or len(ns) > 63):
        out.errors.append(f"metadata.namespace: Invalid value {ns!r}: must be a DNS-1123 label")
    labels = md.get("labels") or {}
    for key, value in labels.items() if isinstance(labels, dict) else ():
        if not _qualified(str(key)):
            out.errors.append(f"metadata.labels: Invalid value {key!r}: not a qualified name")
        if value is not None and (
            not isinstance(value, str) or len(value) > 63 or (value and not _QUALIFIED.match(value))
        ):
            out.errors.append(f"metadata.labels: Invalid value {value!r}: not a valid label value")
    annotations = md.get("annotations") or {}
    if isinstance(annotations, dict):
        size = 0
        for key, value in annotations.items():
            if not _qualified(str(key)):
                out.errors.append(f"metadata.annotations: Invalid value {key!r}: not a qualified name")
            size += len(str(key)) + len(str(value or ""))
        if size > _ANNOTATIONS_MAX:
            out.errors.append(f"metadata.annotations: Too long: must have at most {_ANNOTATIONS_MAX} bytes")


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _kind_rules(gk: tuple[str, str], obj: Obj, out: Outcome) -> None:
    if gk in (("", "ConfigMap"), ("", "Secret")):
        for key in ("data", "binaryData", "stringData"):
            for name in obj.get(key) or {} if isinstance(obj.get(key), dict) else ():
                if len(str(name)) > 253 or not _CONFIG_KEY.match(str(name)):
                    out.errors.append(f"{key}[{name}]: Invalid value: not a valid config key")
    path = _TEMPLATES.get(gk)
    if path is not None:
        spec = _dig(obj, path)
        if isinstance(spec, dict):
            _pod_spec(".".join(path), spec, out)
    if gk in _SELECTOR_KINDS:
        want = _dig(obj, ("spec", "selector", "matchLabels")) or {}
        have = _dig(obj, ("spec", "template", "metadata", "labels")) or {}
        if isinstance(want, dict) and isinstance(have, dict) and any(have.get(k) != v for k, v in want.items()):
            out.errors.append(
                "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`"
            )
    if gk == ("", "Service"):
        spec = obj.get("spec") or {}
        headless = spec.get("clusterIP") == "None" or spec.get("type") == "ExternalName"
        if isinstance(spec, dict) and not spec.get("ports") and not headless:
            out.errors.append("spec.ports: Required value")


def _pod_spec(where: str, spec: dict[str, Any], out: Outcome) -> None:
    for key in ("initContainers", "containers"):
        containers = spec.get(key)
        if key == "containers" and not containers:
            out.errors.append(f"{where}.containers: Required value")
        seen: set[str] = set()
        for i, c in enumerate(containers if isinstance(containers, list) else []):
            if not isinstance(c, dict):
                continue
            name = c.get("name")
            if isinstance(name, str) and (not _LABEL.match(name) or len(name) > 63):
                out.errors.append(f"{where}.{key}[{i}].name: Invalid value {name!r}: must be a DNS-1123 label")
            if isinstance(name, str) and name in seen:
                out.errors.append(f"{where}.{key}[{i}].name: Duplicate value {name!r}")
            seen.add(str(name))
            if not c.get("image"):
                out.errors.append(f"{where}.{key}[{i}].image: Required value")


__all__ = ["LocalCheck", "Verdict", "crd_schemas"]
