"""Secret values never leave slipway: ``data`` and ``stringData`` of Secrets are masked.

A value that stays the same is shown as ``MASK`` on both sides; one that changes as
``MASK_OLD`` and ``MASK_NEW``; an added or removed key as ``MASK_NEW`` or ``MASK_OLD`` alone, so a
diff still tells what changes without telling what anything is. The client-side-apply
annotation, which copies the whole object, is masked too.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from ..kube.objects import Obj

MASK = "********"
MASK_OLD = "******** (old value)"
MASK_NEW = "******** (new value)"
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def is_secret(obj: Obj | None) -> bool:
    return bool(obj) and obj.get("kind") == "Secret" and str(obj.get("apiVersion", "")) == "v1"  # type: ignore[union-attr]


def _values(obj: Obj) -> dict[str, str]:
    """Every key's value as base64, stringData folded into data the way the server does."""
    out = {k: str(v) for k, v in (obj.get("data") or {}).items()}
    for k, v in (obj.get("stringData") or {}).items():
        out[k] = base64.b64encode(str(v).encode()).decode()
    return out


def mask_one(obj: Obj | None) -> Obj | None:
    if not is_secret(obj):
        return obj
    return mask_pair(obj, None)[0]


def mask_pair(current: Obj | None, desired: Obj | None) -> tuple[Obj | None, Obj | None]:
    """Masked copies of a Secret's current and desired states (other kinds come back as they are)."""
    if not (is_secret(current) or is_secret(desired)):
        return current, desired
    old = _values(current) if current else {}
    new = _values(desired) if desired else {}

    def masked(obj: Obj | None, mine: dict[str, str], theirs: dict[str, str] | None, changed: str) -> Obj | None:
        if obj is None:
            return None
        out = copy.deepcopy(obj)
        for field in ("data", "stringData"):
            if isinstance(out.get(field), dict):
                out[field] = {
                    k: MASK if theirs is None or theirs.get(k) == mine.get(k) else changed for k in out[field]
                }
        annotations = (out.get("metadata") or {}).get("annotations") or {}
        if _LAST_APPLIED in annotations:
            annotations[_LAST_APPLIED] = MASK
        return out

    both = current is not None and desired is not None
    return (
        masked(current, old, new if both else None, MASK_OLD),
        masked(desired, new, old if both else None, MASK_NEW),
    )


def scrub(text: str, objects: list[Any]) -> str:
    """Remove any Secret value of ``objects`` that a server message might echo back."""
    for obj in objects:
        if not is_secret(obj):
            continue
        for field in ("data", "stringData"):
            for value in (obj.get(field) or {}).values():
                value = str(value)
                if len(value) >= 4 and value in text:
                    text = text.replace(value, MASK)
                if field == "data" and len(value) >= 4:
                    try:
                        plain = base64.b64decode(value, validate=True).decode()
                    except (ValueError, UnicodeDecodeError):
                        continue
                    if len(plain) >= 4 and plain in text:
                        text = text.replace(plain, MASK)
    return text
