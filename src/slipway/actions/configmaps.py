"""Action scripts from ConfigMaps, in Argo CD's ``argocd-cm`` format, for slipway running in a cluster.

ConfigMaps labelled ``slipway.dev/customizations: "true"`` in slipway's own namespace (the
kubernetes store's, where its administrator's configuration lives) may hold keys
``resource.customizations.actions.<group>_<Kind>`` (``_<Kind>`` or ``<Kind>`` for the core group,
``*`` for a wildcard part) whose value is Argo CD's YAML: ``discovery.lua`` and ``definitions``,
a list of ``{name, action.lua}``. They are written out as a directory in the same layout as
``--customizations`` (content-addressed, so an unchanged set is written once) and searched before
the built-ins. A key that is not in that format is an error naming the ConfigMap and the key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..kube import Kube

LABEL = "slipway.dev/customizations"
PREFIX = "resource.customizations.actions."
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_root: list[Path] = []
_lock = threading.Lock()


def _scratch() -> Path:
    with _lock:
        if not _root:
            _root.append(Path(tempfile.mkdtemp(prefix="slipway-actions-")))
        return _root[0]


def _layout(where: str, key: str, text: str) -> dict[str, str]:
    """``{relative path: script}`` for one key, or ConfigError naming it."""
    spec = key[len(PREFIX) :]
    group, sep, kind = spec.rpartition("_")
    if not sep:
        group, kind = "", spec
    group, kind = (group or "core").replace("*", "_"), kind.replace("*", "_")
    if not _NAME.match(group) or not (kind == "_" or _NAME.match(kind)):
        raise ConfigError(f"{where}: key {key}: expected {PREFIX}<group>_<Kind>")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: key {key}: not YAML ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("discovery.lua"), str):
        raise ConfigError(
            f"{where}: key {key}: expected discovery.lua and definitions, as Argo CD's argocd-cm has them"
        )
    base = f"{group}/{kind}/actions"
    files = {f"{base}/discovery.lua": doc["discovery.lua"]}
    for i, d in enumerate(doc.get("definitions") or []):
        name = d.get("name") if isinstance(d, dict) else None
        if not isinstance(name, str) or not _NAME.match(name) or not isinstance(d.get("action.lua"), str):
            raise ConfigError(f"{where}: key {key}: definitions[{i}]: expected a name and action.lua")
        files[f"{base}/{name}/action.lua"] = d["action.lua"]
    return files


def directory(kube: Kube, namespace: str) -> Path | None:
    """The actions of every labelled ConfigMap in ``namespace``, as a directory; None when there are none."""
    info = kube.discovery.lookup("v1", "ConfigMap")
    files: dict[str, str] = {}
    for cm in sorted(kube.list(info, namespace, label_selector=f"{LABEL}=true"), key=lambda o: o["metadata"]["name"]):
        where = f"ConfigMap {cm['metadata']['name']} in namespace {namespace}"
        for key, text in sorted((cm.get("data") or {}).items()):
            if key.startswith(PREFIX):
                for path, script in _layout(where, key, str(text)).items():
                    files.setdefault(path, script)  # the first ConfigMap (by name) wins
    if not files:
        return None
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
    target = _scratch() / digest
    if not target.is_dir():
        partial = _scratch() / f".{digest}.{threading.get_ident()}"
        for path, script in files.items():
            (partial / path).parent.mkdir(parents=True, exist_ok=True)
            (partial / path).write_text(script, encoding="utf-8")
        with contextlib.suppress(OSError):  # another thread wrote the same set first: theirs is as good
            partial.rename(target)
        shutil.rmtree(partial, ignore_errors=True)
    return target


__all__ = ["LABEL", "PREFIX", "directory"]
