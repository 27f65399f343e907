"""OpenAPI v3 schemas of the API server, compiled once and checked against objects without a request.

The API server publishes the schema of every kind it serves (built-in kinds and CRDs alike) under
``/openapi/v3`` (:mod:`.openapi` fetches it). :func:`compile_schema` turns one schema into a tree of
:class:`Node` (``$ref`` and ``allOf`` resolved, recursion allowed), and :func:`check` walks an
object along it the way server-side apply reads it: types (int-or-string, quantities), required
fields, fields the schema does not declare (unless ``x-kubernetes-preserve-unknown-fields``),
enums, formats, and the value limits CRDs may set. Nulls are accepted anywhere: an apply treats
them as "not set". A schema with CEL rules (``x-kubernetes-validations``) marks the check unsure:
only the server evaluates those.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_REF = "#/components/schemas/"
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


class Node:
    """One compiled schema: what a value at this place may be."""

    __slots__ = (
        "all",
        "alts",
        "cel",
        "embedded",
        "enum",
        "extra",
        "fmt",
        "items",
        "limits",
        "open",
        "pattern",
        "props",
        "required",
        "types",
    )  # fmt: skip

    def __init__(self) -> None:
        self.types: frozenset[str] | None = None  # None: any type
        self.props: dict[str, Node] | None = None
        self.extra: Node | None = None  # additionalProperties (a map's values)
        self.items: Node | None = None
        self.required: tuple[str, ...] = ()
        self.open = False  # x-kubernetes-preserve-unknown-fields, or an object with nothing declared
        self.enum: tuple[Any, ...] | None = None
        self.fmt = ""
        self.embedded = False
        self.cel = False
        self.alts: list[Node] | None = None  # anyOf/oneOf with more than types: one must hold
        self.limits: dict[str, Any] | None = None
        self.pattern: re.Pattern[str] | None = None
        self.all: list[Node] | None = None  # allOf branches beyond the first: each must hold


Resolver = Callable[[str], dict[str, Any] | None]


def compile_schema(schema: dict[str, Any], resolve: Resolver, memo: dict[str, Node] | None = None) -> Node:
    """Compile ``schema``; ``resolve(name)`` returns the schema a ``$ref`` names (None if unknown)."""
    return _Compiler(resolve, memo if memo is not None else {}).node(schema)


class _Compiler:
    def __init__(self, resolve: Resolver, memo: dict[str, Node]) -> None:
        self.resolve = resolve
        self.memo = memo

    def ref(self, ref: str) -> Node:
        name = ref.removeprefix(_REF)
        node = self.memo.get(name)
        if node is None:
            node = self.memo[name] = Node()  # before its body: a recursive schema points back at it
            target = self.resolve(name)
            if target is not None:
                self.fill(node, target)
        return node

    def node(self, schema: dict[str, Any]) -> Node:
        if "$ref" in schema:
            return self.ref(schema["$ref"])
        structural = {k for k in schema if k not in ("description", "default", "example")}
        branches = schema.get("allOf")
        if structural == {"allOf"} and isinstance(branches, list) and len(branches) == 1:
            return self.node(branches[0])  # the built-in kinds' way of saying "$ref with a default"
        node = Node()
        self.fill(node, schema)
        return node

    def fill(self, node: Node, s: dict[str, Any]) -> None:
        kind = s.get("type")
        if isinstance(kind, str):
            node.types = frozenset({kind})
        if s.get("x-kubernetes-int-or-string"):
            node.types = frozenset({"integer", "string"})
        for key in ("oneOf", "anyOf"):
            branches = [b for b in s.get(key) or [] if isinstance(b, dict)]
            if not branches:
                continue
            if all(set(b) <= {"type", "format"} and isinstance(b.get("type"), str) for b in branches):
                # Quantity (string or number), IntOrString (integer or string): a union of types.
                node.types = frozenset(b["type"] for b in branches) | (node.types or frozenset())
            else:
                node.alts = [self.node(b) for b in branches]
        for b in s.get("allOf") or []:
            if isinstance(b, dict):
                node.all = [*(node.all or []), self.node(b)]
        props = s.get("properties")
        if isinstance(props, dict):
            node.props = {k: self.node(v) for k, v in props.items() if isinstance(v, dict)}
        extra = s.get("additionalProperties")
        if isinstance(extra, dict):
            node.extra = self.node(extra)
        elif extra is True:
            node.open = True
        items = s.get("items")
        if isinstance(items, dict):
            node.items = self.node(items)
        node.required = tuple(r for r in s.get("required") or [] if isinstance(r, str))
        node.open = node.open or bool(s.get("x-kubernetes-preserve-unknown-fields"))
        if node.types == frozenset({"object"}) and node.props is None and node.extra is None and not node.all:
            node.open = True  # declared as an object and nothing more: the server takes any fields
        if isinstance(s.get("enum"), list):
            node.enum = tuple(s["enum"])
        node.fmt = str(s.get("format") or "")
        node.embedded = bool(s.get("x-kubernetes-embedded-resource"))
        node.cel = bool(s.get("x-kubernetes-validations"))
        limits = {k: s[k] for k in _LIMITS if isinstance(s.get(k), int | float) and not isinstance(s.get(k), bool)}
        node.limits = limits or None
        if isinstance(s.get("pattern"), str):
            try:
                node.pattern = re.compile(s["pattern"])
            except re.error:
                node.cel = True  # a pattern Python cannot read: let the server judge
        if "not" in s:
            node.cel = True


_LIMITS = ("minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties")


@dataclass
class Outcome:
    errors: list[str] = field(default_factory=list)
    unsure: bool = False  # something only the server can judge (CEL rules) was met on the way


def type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check(node: Node, value: Any, path: str = "", out: Outcome | None = None) -> Outcome:
    """Walk ``value`` along ``node``; every error names the field (``.spec.replicas: ...``)."""
    out = out if out is not None else Outcome()
    _check(node, value, path, out)
    return out


def _check(node: Node, value: Any, path: str, out: Outcome) -> None:
    if value is None or len(out.errors) >= 20:
        return
    if node.cel:
        out.unsure = True
    t = type_of(value)
    types = node.types
    if types is not None and t not in types and not (t == "integer" and "number" in types):
        want = " or ".join(sorted(types))
        out.errors.append(f"{path or '.'}: expected {want}, got {t} {_show(value)}")
        return
    if node.enum is not None and value not in node.enum:
        allowed = ", ".join(_show(v) for v in node.enum[:10])
        out.errors.append(f"{path}: unsupported value {_show(value)}: must be one of {allowed}")
    if t == "object":
        _object(node, value, path, out)
    elif t == "array":
        if node.items is not None:
            for i, item in enumerate(value):
                _check(node.items, item, f"{path}[{i}]", out)
    elif t == "string":
        _string(node, value, path, out)
    elif t in ("integer", "number"):
        _number(node, value, path, out)
    if node.limits:
        _limits(node.limits, value, t, path, out)
    for sub in node.all or ():
        _check(sub, value, path, out)
    if node.alts and not any(not check(alt, value).errors for alt in node.alts):
        out.errors.append(f"{path or '.'}: matches none of the schemas allowed here")


def _object(node: Node, value: dict[str, Any], path: str, out: Outcome) -> None:
    props, extra = node.props, node.extra
    for key, sub_value in value.items():
        sub = props.get(key) if props is not None else None
        if sub is None:
            sub = extra
        if sub is not None:
            _check(sub, sub_value, f"{path}.{key}", out)
        elif not node.open and (props is not None or extra is not None):
            out.errors.append(f"{path}.{key}: field not declared in schema")
    for name in node.required:
        if value.get(name) is None:
            out.errors.append(f"{path}.{name}: Required value")
    if node.embedded:
        for name in ("apiVersion", "kind"):
            if not value.get(name):
                out.errors.append(f"{path}.{name}: Required value (an embedded object)")


def _string(node: Node, value: str, path: str, out: Outcome) -> None:
    if node.fmt == "byte":
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            out.errors.append(f"{path}: illegal base64 data")
    if node.pattern is not None and not node.pattern.search(value):
        out.errors.append(f"{path}: {_show(value)} does not match {node.pattern.pattern!r}")


def _number(node: Node, value: float, path: str, out: Outcome) -> None:
    bounds = _INT32 if node.fmt == "int32" else _INT64 if node.fmt == "int64" else None
    if bounds is not None and isinstance(value, int) and not bounds[0] <= value <= bounds[1]:
        out.errors.append(f"{path}: {value} is out of range for {node.fmt}")


def _limits(limits: dict[str, Any], value: Any, t: str, path: str, out: Outcome) -> None:
    size = len(value) if t in ("string", "array", "object") else None
    for key, bound in limits.items():
        if key == "minimum" and t in ("integer", "number") and value < bound:
            out.errors.append(f"{path}: {value} is less than the minimum {bound}")
        elif key == "maximum" and t in ("integer", "number") and value > bound:
            out.errors.append(f"{path}: {value} is more than the maximum {bound}")
        elif size is not None and key[3:] == _SIZED[t][0]:
            if key.startswith("min") and size < bound:
                out.errors.append(f"{path}: must have at least {bound} {_SIZED[t][1]}")
            elif key.startswith("max") and size > bound:
                out.errors.append(f"{path}: must have at most {bound} {_SIZED[t][1]}")


_SIZED = {"string": ("Length", "characters"), "array": ("Items", "items"), "object": ("Properties", "fields")}


__all__ = ["Node", "Outcome", "check", "compile_schema", "type_of"]
