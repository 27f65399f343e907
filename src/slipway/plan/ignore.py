"""``sync_policy.ignore_differences``: fields another manager owns, left to it.

An ignored field (a JSON pointer, or every field a named field manager owns in the live object)
never shows in a diff, never makes an object changed or drifted, and is not sent when slipway
updates the object, so server-side apply leaves it with its owner: an HPA keeps ``spec.replicas``
and self-heal does not fight it. Two details keep server-side apply from resetting a field:

- A new object is applied whole: Git's value is where the field starts (Argo CD's
  ``RespectIgnoreDifferences`` does the same).
- A pointed-at field slipway still owns alone (nobody changed it since) is sent with its live
  value, which changes nothing; leaving it out would hand it back to its default. Once another
  manager changes it, slipway no longer owns it and it is left out.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from .. import settings
from ..kube import Obj, ObjectRef
from ..kube.fields import applied_by
from ..model import IgnoreDifference

_ABSENT = object()


def parse_pointer(pointer: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]


def lookup(obj: Any, path: list[str]) -> Any:
    for part in path:
        if isinstance(obj, dict):
            obj = obj.get(part, _ABSENT)
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return _ABSENT
        if obj is _ABSENT:
            return _ABSENT
    return obj


def _remove(obj: Any, path: list[str]) -> None:
    parent = lookup(obj, path[:-1])
    last = path[-1]
    if isinstance(parent, dict):
        parent.pop(last, None)
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]


def _set(obj: Any, path: list[str], value: Any) -> None:
    parent = lookup(obj, path[:-1])
    if isinstance(parent, dict):
        parent[path[-1]] = copy.deepcopy(value)
    elif isinstance(parent, list) and path[-1].isdigit() and int(path[-1]) < len(parent):
        parent[int(path[-1])] = copy.deepcopy(value)


def strip_owned(obj: Any, tree: dict[str, Any]) -> None:
    """Remove from ``obj`` the leaf fields of a managed-fields set (``fieldsV1``); keys of keyed list
    items stay, they are the items' identity."""
    if isinstance(obj, dict):
        for key, sub in tree.items():
            if not key.startswith("f:") or key[2:] not in obj:
                continue
            name = key[2:]
            children = {k: v for k, v in (sub or {}).items() if k != "."} if isinstance(sub, dict) else {}
            if not children:
                del obj[name]
            else:
                strip_owned(obj[name], children)
    elif isinstance(obj, list):
        for key, sub in tree.items():
            children = {k: v for k, v in (sub or {}).items() if k != "."} if isinstance(sub, dict) else {}
            if key.startswith("k:"):
                try:
                    match = json.loads(key[2:])
                except ValueError:
                    continue
                for item in obj:
                    if isinstance(item, dict) and all(item.get(k) == v for k, v in match.items()):
                        strip_owned(item, {k: v for k, v in children.items() if k[2:] not in match})
            elif key.startswith("i:") and key[2:].isdigit() and int(key[2:]) < len(obj):
                strip_owned(obj[int(key[2:])], children)


class Ignored:
    """What the rules matching one object ignore, given the object as it is live."""

    def __init__(self, rules: list[IgnoreDifference], live: Obj) -> None:
        self.paths = [parse_pointer(p) for r in rules for p in r.json_pointers]
        managers = {m for r in rules for m in r.managed_fields_managers}
        self.trees = [
            e["fieldsV1"]
            for e in (live.get("metadata") or {}).get("managedFields") or []
            if isinstance(e, dict) and e.get("manager") in managers and isinstance(e.get("fieldsV1"), dict)
        ]
        self.mine = applied_by(live, settings.FIELD_MANAGER) or {}

    def view(self, obj: Obj) -> Obj:
        """``obj`` without the ignored fields: what diffs and comparisons see."""
        out = copy.deepcopy(obj)
        for path in self.paths:
            _remove(out, path)
        for tree in self.trees:
            strip_owned(out, tree)
        return out

    def desired(self, desired: Obj, live: Obj) -> Obj:
        """What slipway sends to update the object (see the module's notes)."""
        out = copy.deepcopy(desired)
        for path in self.paths:
            if lookup(out, path) is _ABSENT:
                continue  # Git does not declare it: nothing to send or hold back
            value = lookup(live, path)
            if value is not _ABSENT and lookup(self.mine, path) is not _ABSENT:
                _set(out, path, value)
            else:
                _remove(out, path)
        for tree in self.trees:
            strip_owned(out, tree)
        return out


def matching(rules: list[IgnoreDifference], ref: ObjectRef) -> list[IgnoreDifference]:
    return [r for r in rules if r.matches(ref.group, ref.kind, ref.namespace, ref.name)]


__all__ = ["Ignored", "lookup", "matching", "parse_pointer", "strip_owned"]
