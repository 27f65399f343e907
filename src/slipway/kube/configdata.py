"""The values of a ConfigMap or a Secret of a cluster, as text (post-build substitution reads them).

A Secret's values are decoded from base64; a value that is not UTF-8 text is left out. The values
of a Secret are secrets: callers never log them, and errors here name only the object.
"""

from __future__ import annotations

import base64
import binascii

from .client import Kube
from .discovery import ResourceInfo

CONFIGMAPS = ResourceInfo("", "v1", "ConfigMap", "configmaps", True, frozenset())
SECRETS = ResourceInfo("", "v1", "Secret", "secrets", True, frozenset())


def config_values(kube: Kube, kind: str, namespace: str, name: str) -> dict[str, str] | None:
    """``kind`` (ConfigMap or Secret) ``name``'s data as text; None when it does not exist."""
    info = SECRETS if kind == "Secret" else CONFIGMAPS
    obj = kube.get(info, namespace, name)
    if obj is None:
        return None
    data = obj.get("data") or {}
    if kind != "Secret":
        return {str(k): str(v) for k, v in data.items()}
    out: dict[str, str] = {}
    for key, value in data.items():
        try:
            out[str(key)] = base64.b64decode(str(value), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            continue
    for key, value in (obj.get("stringData") or {}).items():
        out[str(key)] = str(value)
    return out
