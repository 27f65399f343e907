"""Normalization: what is left of an object when the server's bookkeeping is taken away.

Two objects compare equal when their normalized forms do. A live object and the server's
dry-run of our apply on it share every server default, so comparing those two (never the raw
manifest with the live object) keeps defaulted fields out of diffs. ``covers`` is the cheap
check that lets a plan skip the dry-run: every field Git declares already has its value live.
"""

from __future__ import annotations

import base64
import copy
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from .. import settings
from ..kube.objects import Obj

SERVER_METADATA = (
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)


def normalize(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        for key in SERVER_METADATA:
            meta.pop(key, None)
        for key in ("annotations", "labels"):
            if key in meta and not meta[key]:
                del meta[key]
    return out


def display(obj: Obj) -> Obj:
    """What a person is shown of an object: ``normalize`` minus slipway's own bookkeeping annotations."""
    out = normalize(obj)
    annotations = (out.get("metadata") or {}).get("annotations")
    if annotations:
        for key in settings.BOOKKEEPING_ANNOTATIONS:
            annotations.pop(key, None)
        if not annotations:
            del out["metadata"]["annotations"]
    return out


_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[a-zA-Z]{1,2})?$")
_SUFFIX: dict[str, Any] = {
    "": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


def _quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity's value (``"500m"`` == ``"0.5"``), or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    m = _QUANTITY.match(value)
    if not m:
        return None
    number, suffix = m.group(1), m.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number + suffix)
        if suffix not in _SUFFIX:
            return None
        return Decimal(number) * Decimal(_SUFFIX[suffix])
    except InvalidOperation:
        return None


def _same_scalar(want: Any, have: Any) -> bool:
    if want == have and type(want) is type(have):
        return True
    if isinstance(want, bool) or isinstance(have, bool):
        return False
    qa, qb = _quantity(want), _quantity(have)
    return qa is not None and qa == qb


def covers(desired: Any, live: Any) -> bool:
    """True when every value ``desired`` sets is present and equal in ``live`` (a subset check).

    False only means "not sure": the caller then asks the server with a dry-run.
    """
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return False
        return all(covers(v, live.get(k)) for k, v in desired.items() if v is not None)
    if isinstance(desired, list):
        if not isinstance(live, list) or len(desired) != len(live):
            return False
        return all(covers(a, b) for a, b in zip(desired, live, strict=True))
    return _same_scalar(desired, live)


def secret_covers(desired: Obj, live: Obj) -> bool:
    """``covers`` for Secrets, where ``stringData`` is write-only and lands base64-encoded in ``data``."""
    want = {k: v for k, v in desired.items() if k != "stringData"}
    if not covers(want, live):
        return False
    data = live.get("data") or {}
    for key, value in (desired.get("stringData") or {}).items():
        if data.get(key) != base64.b64encode(str(value).encode()).decode():
            return False
    return True
