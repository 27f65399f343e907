"""The OpenAPI schema checker and the local rules for new objects, on schemas written out here.

The same checker runs against the API server's published schemas in tests/cluster/test_local_checks.py.
"""

from __future__ import annotations

from typing import Any

from slipway.items import Item
from slipway.kube import ObjectRef, ResourceInfo
from slipway.kube.openapi import compact
from slipway.kube.schema import check, compile_schema
from slipway.plan.validate import LocalCheck, crd_schemas

SCHEMAS: dict[str, Any] = {
    "Quantity": {"oneOf": [{"type": "string"}, {"type": "number"}]},
    "IntOrString": {"format": "int-or-string", "oneOf": [{"type": "integer"}, {"type": "string"}]},
    "Port": {
        "type": "object",
        "required": ["port"],
        "properties": {
            "port": {"type": "integer", "format": "int32"},
            "target": {"allOf": [{"$ref": "#/components/schemas/IntOrString"}], "default": 0},
            "protocol": {"type": "string", "enum": ["TCP", "UDP"]},
        },
    },
    "Spec": {
        "type": "object",
        "properties": {
            "replicas": {"type": "integer", "format": "int32"},
            "ports": {"type": "array", "items": {"$ref": "#/components/schemas/Port"}},
            "limits": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Quantity"}},
            "blob": {"type": "string", "format": "byte"},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "anything": {"type": "object"},
            "child": {"$ref": "#/components/schemas/Spec"},
        },
    },
}


def node(name: str) -> Any:
    return compile_schema(SCHEMAS[name], SCHEMAS.get)


def errors(name: str, value: Any) -> list[str]:
    return check(node(name), value).errors


def test_types_int_or_string_quantities_and_nulls() -> None:
    assert errors("Spec", {"replicas": 3, "limits": {"cpu": "500m", "memory": 1}}) == []
    assert errors("Spec", {"replicas": "three"}) == [".replicas: expected integer, got string 'three'"]
    assert errors("Spec", {"replicas": True}) == [".replicas: expected integer, got boolean True"]
    assert (
        errors("Spec", {"replicas": None, "ports": [{"port": 80, "target": "http"}, {"port": 81, "target": 8080}]})
        == []
    )
    assert errors("Spec", {"ports": [{"port": 80, "target": 1.5}]}) == [
        ".ports[0].target: expected integer or string, got number 1.5"
    ]
    assert errors("Spec", {"limits": {"cpu": ["1"]}}) == [".limits.cpu: expected number or string, got array ['1']"]


def test_required_unknown_enum_byte_and_int32() -> None:
    assert errors("Spec", {"ports": [{"protocol": "TCP"}]}) == [".ports[0].port: Required value"]
    assert errors("Spec", {"replicaz": 1}) == [".replicaz: field not declared in schema"]
    assert errors("Spec", {"ports": [{"port": 1, "protocol": "ICMP"}]})[0].startswith(
        ".ports[0].protocol: unsupported value 'ICMP'"
    )
    assert errors("Spec", {"blob": "aGVsbG8="}) == []
    assert errors("Spec", {"blob": "!!not base64"}) == [".blob: illegal base64 data"]
    assert errors("Spec", {"replicas": 2**31}) == [f".replicas: {2**31} is out of range for int32"]


def test_open_objects_and_recursion() -> None:
    assert errors("Spec", {"free": {"x": {"y": [1]}}, "anything": {"a": 1}}) == []
    assert errors("Spec", {"child": {"child": {"replicas": "x"}}}) == [
        ".child.child.replicas: expected integer, got string 'x'"
    ]


def test_crd_schemas_limits_patterns_and_cel_leave_the_verdict_to_the_server() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["size"],
                "properties": {
                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                    "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5},
                    "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                    "rule": {"type": "string", "x-kubernetes-validations": [{"rule": "self != 'x'"}]},
                    "mode": {"x-kubernetes-int-or-string": True},
                },
            }
        },
    }
    root = compile_schema(schema, lambda name: None)
    assert check(root, {"spec": {"size": 3, "name": "abc", "mode": "auto"}}).errors == []
    got = check(root, {"spec": {"size": 11, "name": "ABCDEF", "tags": ["a", "b", "c"]}}).errors
    assert got == [
        ".spec.size: 11 is more than the maximum 10",
        ".spec.name: 'ABCDEF' does not match '^[a-z]+$'",
        ".spec.name: must have at most 5 characters",
        ".spec.tags: must have at most 2 items",
    ]
    assert check(root, {"spec": {}}).errors == [".spec.size: Required value"]
    outcome = check(root, {"spec": {"size": 1, "rule": "y"}})
    assert outcome.errors == [] and outcome.unsure  # CEL: only the server can judge


def test_compact_keeps_fields_named_like_prose() -> None:
    schema = {"type": "object", "description": "prose", "properties": {"description": {"type": "string"}}}
    assert compact(schema) == {"type": "object", "properties": {"description": {"type": "string"}}}


def _item(group: str, version: str, kind: str, obj: dict[str, Any]) -> Item:
    info = ResourceInfo(group, version, kind, kind.lower() + "s", True)
    ref = ObjectRef(group, kind, "ns", obj["metadata"].get("name", ""))
    return Item(ref, info.api_version, info, obj, "k8s/a.yaml", obj)


def test_local_rules_beyond_the_schema() -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
                "type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }}}],
        },
    }  # fmt: skip
    checker = LocalCheck(None, crd_schemas([crd]))  # type: ignore[arg-type]  # only the render's CRD is asked

    def verdict(meta: dict[str, Any]) -> list[str]:
        obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": meta, "spec": {"a": 1}}
        return checker.check(_item("example.com", "v1", "Widget", obj)).errors

    assert verdict({"name": "w-1", "labels": {"app.kubernetes.io/name": "w", "empty": ""}}) == []
    assert verdict({"name": "W_1"}) == ["metadata.name: Invalid value 'W_1': must be a DNS-1123 subdomain"]
    assert verdict({"name": "w", "labels": {"bad key!": "v"}}) == [
        "metadata.labels: Invalid value 'bad key!': not a qualified name"
    ]
    assert verdict({"name": "w", "labels": {"k": "x" * 64}})[0].startswith("metadata.labels: Invalid value 'xxx")
    assert verdict({"name": "w", "annotations": {"a": "x" * (256 * 1024)}}) == [
        "metadata.annotations: Too long: must have at most 262144 bytes"
    ]
    assert verdict({"name": "w", "unknown": 1}) == []  # metadata is the server's to read in full
    assert set(crd_schemas([crd])) == {("example.com", "v1", "Widget")}
    # A very large object meets the server's size limits, which no schema states: the server judges it.
    big = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"a": "x" * 600_000}}
    assert checker.check(_item("example.com", "v1", "Widget", big)).unsure
