"""The API server's OpenAPI v3 schemas, fetched once and kept: what lets a plan check new objects locally.

``GET /openapi/v3`` lists one document per group/version, each under a URL that carries a hash
of its content, so a document is fetched at most once per content: it is kept in memory and, with
descriptions stripped, on disk under ``$SLIPWAY_CACHE/openapi/<server>/`` for the next process.
The list itself is asked for again when discovery has been refreshed since (a CRD came or went)
and at least every five minutes, so a CRD whose schema changed is seen. A server that publishes
no OpenAPI v3, or forbids reading it, has no schemas here: callers then ask the server instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import msgspec

from .. import settings
from ..errors import KubeError
from .schema import Node, compile_schema

if TYPE_CHECKING:
    from .client import Kube

log = logging.getLogger("slipway.kube")

INDEX_MAX_AGE = 300.0
_DROP = frozenset({"description", "example", "externalDocs", "default"})


@dataclass
class _Doc:
    schemas: dict[str, Any]
    gvk: dict[tuple[str, str, str], str]
    memo: dict[str, Node] = field(default_factory=dict)  # compiled nodes, shared by the doc's kinds
    lock: threading.Lock = field(default_factory=threading.Lock)


def compact(schema: Any) -> Any:
    """A schema without the prose: a fraction of the size, the same rules."""
    if isinstance(schema, list):
        return [compact(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROP:
            continue
        if key in _MAPS and isinstance(value, dict):
            out[key] = {name: compact(sub) for name, sub in value.items()}  # names, not schema keywords
        elif key in _VERBATIM or key.startswith("x-kubernetes-"):
            out[key] = value
        else:
            out[key] = compact(value)
    return out


_MAPS = frozenset({"properties", "patternProperties", "definitions", "$defs"})
_VERBATIM = frozenset({"enum", "required"})


class OpenAPI:
    """Schemas of one API server, by group, version and kind."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self._lock = threading.Lock()
        self._index: dict[str, str] | None = None
        self._index_at = -1e9
        self._index_generation = -1
        self._failed_at = -1e9
        self._docs: dict[str, _Doc] = {}
        self.cache_dir = settings.cache() / "openapi" / hashlib.sha256(kube.server.encode()).hexdigest()[:16]

    def schema(self, group: str, version: str, kind: str) -> Node | None:
        """The compiled schema of a kind the server serves, or None when the server publishes none."""
        path = f"apis/{group}/{version}" if group else f"api/{version}"
        url = self._url(path)
        if url is None:
            return None
        doc = self._doc(url)
        if doc is None:
            return None
        name = doc.gvk.get((group, version, kind))
        if name is None:
            return None
        with doc.lock:
            return compile_schema(doc.schemas[name], doc.schemas.get, doc.memo)

    # -- the list of documents -----------------------------------------------------------------------

    def _url(self, path: str) -> str | None:
        generation = self._kube.discovery.generation
        with self._lock:
            now = time.monotonic()
            stale = self._index is None or generation != self._index_generation or now - self._index_at > INDEX_MAX_AGE
            if stale and now - self._failed_at > 60:
                self._load_index(generation)
            return (self._index or {}).get(path)

    def _load_index(self, generation: int) -> None:
        try:
            text = self._kube.request("GET", "/openapi/v3", action="read", what="the API's OpenAPI index")
            doc = msgspec.json.decode(text.encode() if isinstance(text, str) else msgspec.json.encode(text))
        except (KubeError, msgspec.DecodeError) as e:
            log.debug("no OpenAPI v3 from %s: %s", self._kube.server, e)
            self._failed_at = time.monotonic()
            return
        paths = doc.get("paths") if isinstance(doc, dict) else None
        self._index = {
            p: str(v.get("serverRelativeURL"))
            for p, v in (paths or {}).items()
            if isinstance(v, dict) and v.get("serverRelativeURL")
        }
        self._index_at = time.monotonic()
        self._index_generation = generation
        live = set(self._index.values())
        self._docs = {u: d for u, d in self._docs.items() if u in live}  # documents whose content changed go

    # -- one document ---------------------------------------------------------------------------------

    def _doc(self, url: str) -> _Doc | None:
        with self._lock:
            doc = self._docs.get(url)
            if doc is None:
                schemas = self._read_cached(url) or self._fetch(url)
                if schemas is None:
                    return None
                doc = self._docs[url] = _Doc(schemas, _kinds(schemas))
            return doc

    def _cache_file(self, url: str) -> Path | None:
        parts = urlsplit(url)
        digest = (parse_qs(parts.query).get("hash") or [""])[0]
        if not digest.isalnum():
            return None
        name = parts.path.removeprefix("/openapi/v3/").replace("/", "_")
        return self.cache_dir / f"{name}-{digest[:40]}.json"

    def _read_cached(self, url: str) -> dict[str, Any] | None:
        path = self._cache_file(url)
        if path is None:
            return None
        try:
            data = msgspec.json.decode(path.read_bytes())
        except (OSError, msgspec.DecodeError):
            return None
        return data if isinstance(data, dict) else None

    def _fetch(self, url: str) -> dict[str, Any] | None:
        try:
            doc = self._kube.request("GET", url, action="read", what="the API's OpenAPI schemas")
        except KubeError as e:
            log.debug("OpenAPI document %s: %s", url, e)
            return None
        if isinstance(doc, str):
            doc = msgspec.json.decode(doc.encode())
        raw = ((doc or {}).get("components") or {}).get("schemas") or {}
        schemas = {name: compact(schema) for name, schema in raw.items()}
        path = self._cache_file(url)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
                tmp.write_bytes(msgspec.json.encode(schemas))
                os.replace(tmp, path)
            except OSError as e:  # a read-only cache costs a fetch per process, nothing more
                log.debug("cannot keep %s: %s", path, e)
        return schemas


def _kinds(schemas: dict[str, Any]) -> dict[tuple[str, str, str], str]:
    out: dict[tuple[str, str, str], str] = {}
    for name, schema in schemas.items():
        for gvk in (schema.get("x-kubernetes-group-version-kind") or []) if isinstance(schema, dict) else []:
            key = (str(gvk.get("group") or ""), str(gvk.get("version") or ""), str(gvk.get("kind") or ""))
            # A kind listed by several schemas (the List and the object share none; watch events do): first wins.
            out.setdefault(key, name)
    return out


__all__ = ["OpenAPI", "compact"]
