"""API tokens: a Secret per token holding its role, salt and scrypt hash, and one index of names.

As in the SQLite store, the token itself is never stored (see :mod:`slipway.tokens`), only a random
salt and the scrypt hash of its secret. A token's Secret is named by its id
(``slipway-token-<id>``), so checking a request is one GET. Names must be unique, which two
objects of different names cannot promise by themselves: the ConfigMap ``slipway-token-names``
maps each name to its id and is written on the condition that nobody wrote it in between, so of
two ``put_token`` of one name at once exactly one wins. A name is taken first and its Secret
written second (revoking goes the other way), so a name whose Secret is still missing a while
after it was taken (``CUT_SHORT`` seconds) was cut short and may be taken again; sooner, its
Secret may be on its way, and the name stays taken. The last use is an annotation, written at most once a minute per token
by the caller.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from ...errors import ConfigError, KubeNotFound, SlipwayError
from ...kube import Obj
from ...kube.client import KubeAlreadyExists, KubeConflict
from . import names
from .base import ATTEMPTS, Base, b64, unb64
from .names import CONFIGMAPS, SECRETS

TOKEN_TYPE = "slipway.dev/api-token"
_FIELDS = ("id", "name", "role", "created_at", "created_by")
CUT_SHORT = 60.0  # seconds after which a taken name without its Secret is free again


def _entry(value: str | None) -> tuple[str | None, float]:
    """An index value, ``<id>@<unix time taken>``, as (id, time taken)."""
    if not value:
        return None, 0.0
    token_id, _, at = value.partition("@")
    try:
        return token_id, float(at or 0)
    except ValueError:
        return token_id, 0.0


def _index(obj: Obj) -> dict[str, str | None]:
    return {name: _entry(value)[0] for name, value in (obj.get("data") or {}).items()}


class Tokens(Base):
    def _names(self) -> Obj:
        got = self.kube.get(CONFIGMAPS, self.namespace, names.TOKEN_NAMES_CONFIGMAP)
        if got is not None:
            return got
        return self._create_or_read(CONFIGMAPS, {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": names.TOKEN_NAMES_CONFIGMAP, "namespace": self.namespace,
                         "labels": names.managed(**{names.LABEL_RECORD: "token"})},
            "data": {},
        })  # fmt: skip

    def _set_name(self, name: str, token_id: str | None, *, only_if: str | None = None) -> bool:
        """Point ``name`` at ``token_id`` (None: free it), conditionally; with ``only_if``, only while
        it points at that id. False when the name is taken by a live token (or moved on)."""
        for _ in range(ATTEMPTS):
            index = self._names()
            current, taken_at = _entry((index.get("data") or {}).get(name))
            if only_if is not None and current != only_if:
                return False
            if current == token_id:
                return True
            if token_id is not None and current:
                cut_short = time.time() - taken_at > CUT_SHORT and self._token_obj(current) is None
                if not cut_short:
                    return False
            value = f"{token_id}@{time.time():.0f}" if token_id is not None else None
            body = {"metadata": {"resourceVersion": index["metadata"]["resourceVersion"]}, "data": {name: value}}
            try:
                self.kube.patch_merge(CONFIGMAPS, self.namespace, names.TOKEN_NAMES_CONFIGMAP, body)
            except KubeConflict:
                continue
            return True
        raise SlipwayError(f"the token index ConfigMap {names.TOKEN_NAMES_CONFIGMAP} kept changing")

    def _token_obj(self, token_id: str) -> Obj | None:
        obj = self.kube.get(SECRETS, self.namespace, names.token_name(token_id))
        if obj is None or (obj["metadata"].get("labels") or {}).get(names.LABEL_TOKEN_ID) != token_id:
            return None
        return obj

    def put_token(self, token: dict[str, Any]) -> None:
        name, token_id = str(token["name"]), str(token["id"])
        if not self._set_name(name, token_id):
            raise ConfigError(f"token {name!r} already exists; revoke it first (`slipway token revoke {name}`)")
        meta = {k: token.get(k) for k in _FIELDS}
        annotations = {}
        if token.get("last_used_at") is not None:
            annotations[names.ANNOTATION_LAST_USED] = repr(float(token["last_used_at"]))
        obj: Obj = {
            "apiVersion": "v1", "kind": "Secret", "type": TOKEN_TYPE,
            "metadata": {"name": names.token_name(token_id), "namespace": self.namespace, "annotations": annotations,
                         "labels": names.managed(**{names.LABEL_RECORD: "token", names.LABEL_TOKEN_ID: token_id,
                                                    names.LABEL_ID: name, "slipway.dev/role": str(token["role"])})},
            "data": {"token": b64(json.dumps(meta).encode()), "salt": b64(bytes(token["salt"])),
                     "hash": b64(bytes(token["hash"]))},
        }  # fmt: skip
        try:
            self.kube.create(SECRETS, obj)
        except KubeAlreadyExists:
            self._set_name(name, None, only_if=token_id)
            raise ConfigError(f"token id {token_id} is taken; make the token again") from None
        except BaseException:
            self._set_name(name, None, only_if=token_id)
            raise
        if _index(self._names()).get(name) != token_id:
            # Revoked, or taken by another, while its Secret was being written: it never was.
            self.kube.delete(SECRETS, self.namespace, names.token_name(token_id))
            raise ConfigError(f"token {name!r} was revoked or made by someone else meanwhile; make it again")

    def get_token(self, token_id: str) -> dict[str, Any] | None:
        obj = self._token_obj(token_id)
        return _row(obj) if obj is not None else None

    def list_tokens(self) -> list[dict[str, Any]]:
        selector = names.selector(**{names.LABEL_RECORD: "token"})
        objs = [
            o for o in self.kube.list(SECRETS, self.namespace, label_selector=selector) if o.get("type") == TOKEN_TYPE
        ]
        index = _index(self._names()) if objs else {}
        rows = [_row(o) for o in objs]
        # A token whose name no longer points at it is being revoked: it is gone already.
        rows = [r for r in rows if index.get(r["name"]) == r["id"]]
        return sorted(rows, key=lambda r: (r["created_at"], r["name"]))

    def delete_token(self, name: str) -> bool:
        token_id = _index(self._names()).get(name)
        if not token_id:
            return False
        existed = self.kube.delete(SECRETS, self.namespace, names.token_name(token_id))
        self._set_name(name, None, only_if=token_id)
        return existed

    def touch_token(self, token_id: str, at: float) -> None:
        patch = {"metadata": {"annotations": {names.ANNOTATION_LAST_USED: repr(float(at))}}}
        with contextlib.suppress(KubeNotFound):  # revoked meanwhile
            self.kube.patch_merge(SECRETS, self.namespace, names.token_name(token_id), patch)


def _row(obj: Obj) -> dict[str, Any]:
    data = obj.get("data") or {}
    meta = json.loads(unb64(data.get("token", "")) or b"{}")
    last = (obj["metadata"].get("annotations") or {}).get(names.ANNOTATION_LAST_USED)
    return {
        **{k: meta.get(k) for k in _FIELDS},
        "salt": unb64(data.get("salt", "")),
        "hash": unb64(data.get("hash", "")),
        "last_used_at": float(last) if last else None,
    }
