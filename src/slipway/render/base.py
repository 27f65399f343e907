"""What every renderer shares: the Manifest it returns, the context it renders in, YAML read as kubectl reads it.

A :class:`Manifest` is one object with the file and document it came from, so every error and
conflict downstream can name them. YAML is read the way ``kubectl apply`` reads it: dates and
times stay strings (``released: 2024-01-01`` is ``"2024-01-01"``), ``12:30`` is a string, keys
that are numbers or booleans become strings, and a duplicate key is an error. A value JSON cannot
hold (binary, a set, NaN) is an error naming the file and document, never a crash later on.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from ..errors import ManifestError
from ..kube.objects import Obj
from .bounded import Limits

try:
    _Base: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml is part of the PyYAML wheels
    _Base = yaml.SafeLoader


@dataclass
class Manifest:
    obj: Obj
    source: str  # "apps/web.yaml, document 2" or "overlay (kustomize), document 1"


@dataclass
class RenderContext:
    """What a renderer may need beyond the files: the workflow's options and the destination."""

    workflow_id: str = ""
    namespace: str = "default"
    repository_root: Path | None = None  # the whole checkout when a renderer needs it, else None
    root: Path | None = None  # the target path being rendered (set by the walk)
    options: dict[str, Any] = field(default_factory=dict)  # per renderer: {"helm": {...}, "jsonnet": {...}}
    kube_version: str | None = None  # the destination's version, for Helm's .Capabilities
    api_versions: list[str] = field(default_factory=list)
    cache_dir: Path | None = None  # where renderers may keep downloads (chart dependencies)
    credentials: Callable[[str], tuple[str, str] | None] | None = None  # chart repository URL -> login
    # Asks the destination for (version, API versions) the first time a renderer needs them.
    discover: Callable[[], tuple[str, list[str]]] | None = field(default=None, repr=False)
    # Bounds (:mod:`.bounded`): set when the caller goes away; limits default to the settings';
    # the deadline is set by render() for the whole path.
    cancel: threading.Event | None = field(default=None, repr=False)
    limits: Limits | None = None
    deadline: float | None = None
    # Trust, decided by the engine (never by a workflow's own table): kustomize may fetch remote
    # resources; a chart repository URL may be fetched (registered or listed) -- None: none may.
    allow_remote: bool = False
    chart_repository_allowed: Callable[[str], bool] | None = field(default=None, repr=False)
    # oci:// URL -> how its registry is reached (login, plain HTTP, CA file): a registered repository's.
    chart_access: Callable[[str], Any] | None = field(default=None, repr=False)
    # ``$<repository id>/<path>`` values files, read from Git by the engine: the reference -> the file.
    values_refs: dict[str, Path] = field(default_factory=dict)

    def bounds(self) -> tuple[Limits, float]:
        """The limits of a render process, and the deadline of the whole render."""
        limits = self.limits or Limits.from_settings()
        return limits, self.deadline if self.deadline is not None else time.monotonic() + limits.timeout

    def capabilities(self) -> tuple[str | None, list[str]]:
        """The destination's Kubernetes version and served API versions (None, [] when unknown)."""
        if self.discover is not None and self.kube_version is None:
            self.kube_version, self.api_versions = self.discover()
        return self.kube_version, self.api_versions


class Renderer(Protocol):
    """One format: which directories it takes, and the objects it makes of one."""

    name: str

    def claims(self, directory: Path, context: RenderContext) -> bool:
        """True when this renderer renders ``directory`` as a whole (it is then not walked further)."""
        ...

    def needs_repository(self, directory: Path, context: RenderContext) -> bool:
        """True when rendering ``directory`` reads files outside it (kustomize bases, local charts)."""
        ...

    def render(self, directory: Path, display: str, context: RenderContext) -> list[Manifest]: ...


class _Loader(_Base):
    """PyYAML's safe loader with kubectl's reading of scalars, and duplicate keys refused."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}


class DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, mark: Any) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.problem = f"duplicate key {key!r}"
        self.problem_mark = mark


def _mapping(loader: Any, node: yaml.MappingNode) -> dict[Any, Any]:
    explicit = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
    loader.flatten_mapping(node)
    merged = len(node.value) - explicit  # merged (<<) pairs come first; explicit keys may override them
    out: dict[Any, Any] = {}
    seen: set[tuple[type, Any]] = set()  # by type too: 1 and true are different keys to kubectl
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, list | dict | set):
            raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a scalar", key_node.start_mark)
        if index >= merged:
            if (type(key), key) in seen:
                raise DuplicateKey(key, key_node.start_mark)
            seen.add((type(key), key))
        out[(type(key), key)] = (key, loader.construct_object(value_node, deep=True))
    # Keys as JSON has them, here, before 1 and true meet as one Python key.
    return {k if isinstance(k, str) else _key_text(k): v for k, v in out.values()}


def _int(loader: Any, node: yaml.ScalarNode) -> Any:
    text = str(node.value)
    if ":" in text:  # YAML 1.1 base 60 (``12:30``): kubectl reads it as a string
        return text
    return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)


def _float(loader: Any, node: yaml.ScalarNode) -> Any:
    text = str(node.value)
    if ":" in text:
        return text
    return yaml.constructor.SafeConstructor.construct_yaml_float(loader, node)


_Loader.add_constructor("tag:yaml.org,2002:map", _mapping)
_Loader.add_constructor("tag:yaml.org,2002:int", _int)
_Loader.add_constructor("tag:yaml.org,2002:float", _float)


def parse_yaml(text: str, display: str) -> list[Any]:
    """Every document of ``text``, as JSON values; a ManifestError naming the document otherwise."""
    docs: list[Any] = []
    try:
        for doc in yaml.load_all(text, Loader=_Loader):
            docs.append(doc)
    except yaml.YAMLError as e:
        where = ""
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ManifestError(f"{display}, document {len(docs) + 1}: invalid YAML{where}: {problem}") from None
    except RecursionError:
        raise ManifestError(f"{display}, document {len(docs) + 1}: nested too deeply") from None
    for index, doc in enumerate(docs, start=1):
        docs[index - 1] = as_json(doc, f"{display}, document {index}", budget=[MAX_VALUES])
    return docs


# More values than any Kubernetes object can hold (etcd takes 1.5 MB): YAML aliases that expand
# without end (a "billion laughs" document) stop here instead of filling the memory.
MAX_VALUES = 1_000_000


def as_json(value: Any, where: str, path: str = "", budget: list[int] | None = None) -> Any:
    """``value`` with only JSON types (keys as strings, as kubectl makes them); ManifestError otherwise."""
    if budget is not None:
        budget[0] -= 1
        if budget[0] < 0:
            raise ManifestError(
                f"{where}: expands to more than {MAX_VALUES:,} values (YAML aliases repeating themselves?)"
            )
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ManifestError(f"{where}: {path or 'the document'} is {value}, which JSON cannot hold")
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ManifestError(f"{where}: {path or 'the document'} has a key of type {type(k).__name__}")
            key = k
            out[key] = as_json(v, where, f"{path}.{key}" if path else str(key), budget)
        return out
    if isinstance(value, list):
        return [as_json(v, where, f"{path}[{i}]", budget) for i, v in enumerate(value)]
    names: dict[type, str] = {bytes: "binary data (!!binary)", set: "a set (!!set)"}
    what = names.get(type(value), type(value).__name__)
    raise ManifestError(f"{where}: {path or 'the document'} is {what}, which a Kubernetes object cannot hold")


def _key_text(key: Any) -> Any:
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, int | float):
        return str(key)
    return key  # anything else is refused by as_json, with the file and document


def objects_from(docs: list[Any], display: str) -> list[Manifest]:
    """Kubernetes objects from parsed documents: empty ones skipped, ``List`` kinds expanded, each checked."""
    out: list[Manifest] = []
    for index, doc in enumerate(docs, start=1):
        if doc is None:
            continue  # an empty document (a trailing ---, a file of comments)
        where = f"{display}, document {index}"
        check_object(doc, where)
        if _is_list(doc):
            for n, item in enumerate(doc.get("items") or [], start=1):
                check_object(item, f"{where}, item {n}")
                out.append(Manifest(item, f"{where}, item {n}"))
        else:
            out.append(Manifest(doc, where))
    return out


def _is_list(doc: dict[str, Any]) -> bool:
    kind = doc["kind"]
    return kind == "List" or (kind.endswith("List") and isinstance(doc.get("items"), list))


def check_object(doc: Any, where: str, *, allow_generate_name: bool = False) -> None:
    if not isinstance(doc, dict):
        raise ManifestError(f"{where}: expected a Kubernetes object (a mapping), got {_type_name(doc)}")
    for key in ("apiVersion", "kind"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise ManifestError(f"{where}: missing {key}")
    if _is_list(doc):
        return
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        raise ManifestError(f"{where}: {doc['kind']} has no metadata.name")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        if isinstance(meta.get("generateName"), str) and meta["generateName"]:
            if allow_generate_name or is_hook(doc):
                return
            raise ManifestError(
                f"{where}: {doc['kind']} uses generateName, which GitOps cannot track; give it a name "
                "(only hooks may use generateName)"
            )
        raise ManifestError(f"{where}: {doc['kind']} has no metadata.name")
    ns = meta.get("namespace")
    if ns is not None and not isinstance(ns, str):
        raise ManifestError(f"{where}: metadata.namespace must be a string")


def is_hook(doc: dict[str, Any]) -> bool:
    """An object Argo CD or Helm would run as a hook (its annotations say so)."""
    annotations = (doc.get("metadata") or {}).get("annotations") or {}
    return isinstance(annotations, dict) and ("argocd.argoproj.io/hook" in annotations or "helm.sh/hook" in annotations)


def _type_name(value: Any) -> str:
    names: dict[type, str] = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
    return names.get(type(value), type(value).__name__)
