"""Post-build variable substitution, as Flux's ``postBuild``: ``${var}`` in rendered objects replaced.

``post_build = {substitute = {CLUSTER = "prod"}, substitute_from = {{kind = "ConfigMap", name = "vars"}}}``.
After a path is rendered, each object is written as YAML, its ``${var}`` and ``${var:=default}``
replaced, and the text read again (so ``replicas: ${n:=2}`` becomes the number 2, as in Flux).
``$${var}`` is the escape: it becomes the literal ``${var}``. Names are Flux's
(``[_a-zA-Z][_a-zA-Z0-9]*``); a ``${...}`` that is not one is left alone. An unset variable without
a default is an error naming the object. An object annotated
``kustomize.toolkit.fluxcd.io/substitute: disabled`` is left as it is. Values come from the
ConfigMaps and Secrets listed, in order (a later one wins), then from ``substitute`` (wins over
all); a Secret's values are secrets: no error or log line ever carries a value, only names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..configread import Reader
from ..errors import ConfigError, ManifestError
from .base import Manifest, parse_yaml

OPT_OUT = "kustomize.toolkit.fluxcd.io/substitute"
NAME = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")
_TOKEN = re.compile(r"\$\$\{|\$\{([^{}$]*)\}")
_SOURCE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@dataclass
class SubstituteFrom:
    kind: str  # ConfigMap | Secret
    name: str
    optional: bool = False

    @classmethod
    def from_config(cls, data: Any, where: str) -> SubstituteFrom:
        r = Reader(data, where)
        out = cls(r.choice("kind", ("ConfigMap", "Secret"), ""), r.get("name", str, "") or "",
                  r.get("optional", bool, False))  # fmt: skip
        r.done()
        if not _SOURCE_NAME.match(out.name):
            raise ConfigError(f"{r.key('name')}: {out.name!r} is not a valid {out.kind} name")
        return out


@dataclass
class PostBuild:
    substitute: dict[str, str] = field(default_factory=dict)
    substitute_from: list[SubstituteFrom] = field(default_factory=list)

    @classmethod
    def from_config(cls, data: Any, where: str = "post_build") -> PostBuild:
        r = Reader(data, where)
        raw = r.get("substitute", dict, {}) or {}
        sources = [SubstituteFrom.from_config(t, f"{r.key('substitute_from')}[{i + 1}]")
                   for i, t in enumerate(r.tables("substitute_from"))]  # fmt: skip
        r.done()
        values: dict[str, str] = {}
        for key, value in raw.items():
            if not isinstance(key, str) or not NAME.match(key):
                raise ConfigError(f"{r.key('substitute')}: {key!r} is not a variable name ([_a-zA-Z][_a-zA-Z0-9]*)")
            if isinstance(value, bool):
                value = "true" if value else "false"
            if not isinstance(value, str | int | float):
                raise ConfigError(f"{r.key('substitute')}.{key}: must be a string")
            values[key] = str(value)
        return cls(values, sources)


def variables(post: PostBuild, read: Callable[[SubstituteFrom], Mapping[str, str] | None]) -> dict[str, str]:
    """The variables: each source's (``read`` returns None for a missing one), then ``substitute``."""
    out: dict[str, str] = {}
    for source in post.substitute_from:
        data = read(source)
        if data is None:
            if source.optional:
                continue
            raise ManifestError(
                f"post_build.substitute_from: {source.kind} {source.name} does not exist in the destination namespace",
                hint="create it, or mark the source optional",
            )
        out.update({k: v for k, v in data.items() if NAME.match(k)})
    out.update(post.substitute)
    return out


def substitute_all(manifests: list[Manifest], values: Mapping[str, str]) -> list[Manifest]:
    """Each manifest with its variables replaced (those that opted out untouched)."""
    return [_one(m, values) for m in manifests]


def _one(m: Manifest, values: Mapping[str, str]) -> Manifest:
    md = m.obj.get("metadata") or {}
    if str((md.get("annotations") or {}).get(OPT_OUT, "")).lower() == "disabled":
        return m
    text = yaml.safe_dump(m.obj, sort_keys=False, width=1 << 30, allow_unicode=True)
    if "${" not in text:
        return m
    what = f"{m.source}: {m.obj.get('kind')}/{md.get('name') or md.get('generateName') or ''}"
    out = substitute_text(text, values, what)
    docs = parse_yaml(out, f"{what} (after substitution)")
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise ManifestError(f"{what}: after substitution it is no longer one object (a value holds YAML?)")
    return Manifest(docs[0], m.source)


def substitute_text(text: str, values: Mapping[str, str], what: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        inner = match.group(1)
        name, op, default = inner, "", ""
        for sep in (":=", ":-"):
            if sep in inner:
                name, _, default = inner.partition(sep)
                op = sep
                break
        if not NAME.match(name):
            return match.group(0)  # not a variable of ours (a template of another tool)
        if name in values:
            return values[name]
        if op:
            return default
        raise ManifestError(
            f"{what}: variable {name!r} is not set and has no default",
            hint="set it with post_build.substitute (--substitute NAME=VALUE) or a substitute_from source, "
            f"give a default (${{{name}:=value}}), or write $${{{name}}} for a literal",
        )

    return _TOKEN.sub(replace, text)
