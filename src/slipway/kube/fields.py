"""Managed fields: the part of a live object one field manager set, read back out of ``managedFields``.

Server-side apply records, per manager, the set of fields it owns (``fieldsV1``): ``f:<name>``
for a field, ``k:<json>`` for an item of a keyed list (containers by name), ``v:<json>`` for a
value of a set, ``i:<n>`` for a list item by index, and ``.`` for the node itself. Extracting
slipway's set from a live object gives what slipway applied to it — without the values the
server generated (a Job's controller-uid, a Service's clusterIP, a claim's volumeName) and
without fields other managers own — which is what a rollback must restore.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from .objects import Obj


def applied_by(obj: Obj, manager: str) -> Obj | None:
    """The fields ``manager`` applied to ``obj`` (with its identity), or None when it applied none."""
    entries = [
        e
        for e in (obj.get("metadata") or {}).get("managedFields") or []
        if isinstance(e, dict) and e.get("manager") == manager and e.get("operation") == "Apply"
        and not e.get("subresource") and isinstance(e.get("fieldsV1"), dict)
    ]  # fmt: skip
    if not entries:
        return None
    # The set is relative to the version it was applied at: prefer the one the object was read at.
    entry = next((e for e in entries if e.get("apiVersion") == obj.get("apiVersion")), entries[0])
    out = _extract(obj, entry["fieldsV1"])
    if not isinstance(out, dict):
        return None
    md = obj.get("metadata") or {}
    out["apiVersion"], out["kind"] = obj.get("apiVersion"), obj.get("kind")
    identity = {k: md[k] for k in ("name", "namespace") if md.get(k)}
    out["metadata"] = {**identity, **(out.get("metadata") or {})}
    return out


def _owned_whole(tree: Any) -> bool:
    return not isinstance(tree, dict) or not any(k != "." for k in tree)


def _extract(value: Any, tree: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, sub in tree.items():
            if key.startswith("f:") and key[2:] in value:
                name = key[2:]
                child = value[name]
                if _owned_whole(sub) and not (isinstance(sub, dict) and "." in sub and isinstance(child, dict | list)):
                    out[name] = copy.deepcopy(child)
                else:
                    out[name] = _extract(child, sub)
        return out
    if isinstance(value, list):
        keep: list[tuple[int, Any]] = []
        for key, sub in tree.items():
            if key.startswith("k:"):
                try:
                    match = json.loads(key[2:])
                except ValueError:
                    continue
                for i, el in enumerate(value):
                    if isinstance(el, dict) and all(el.get(k) == v for k, v in match.items()):
                        item = copy.deepcopy(el) if _owned_whole(sub) and "." not in sub else _extract(el, sub)
                        keep.append((i, {**match, **item}))
            elif key.startswith("v:"):
                try:
                    wanted = json.loads(key[2:])
                except ValueError:
                    continue
                keep += [(i, copy.deepcopy(el)) for i, el in enumerate(value) if el == wanted]
            elif key.startswith("i:") and key[2:].isdigit() and int(key[2:]) < len(value):
                i = int(key[2:])
                keep.append((i, copy.deepcopy(value[i]) if _owned_whole(sub) else _extract(value[i], sub)))
        return [el for _, el in sorted(keep, key=lambda p: p[0])]
    return copy.deepcopy(value)
