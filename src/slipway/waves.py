"""Sync waves and resource hooks as repositories already write them (Argo CD's and Helm's annotations).

An object annotated ``argocd.argoproj.io/hook`` (PreSync, Sync, PostSync, SyncFail, Skip; several
comma-separated) or ``helm.sh/hook`` is a hook, not part of the desired state: it runs in its
phase and is never pruned or diffed as an ordinary object. Helm's hooks map as Argo CD maps them:
``pre-install``/``pre-upgrade`` run PreSync, ``post-install``/``post-upgrade`` PostSync; ``test``
hooks are never run by a sync, nor are ``pre-delete``/``post-delete``/``pre-rollback``/
``post-rollback`` (a sync is neither a deletion nor a Helm rollback); ``crd-install`` is an
ordinary object (Helm 2). A wave (``argocd.argoproj.io/sync-wave``, ``slipway.dev/sync-wave``,
``helm.sh/hook-weight`` for hooks) orders objects within their phase, lowest first, default 0.
Delete policies (``HookSucceeded``, ``HookFailed``, ``BeforeHookCreation`` — the default — and
Helm's spellings) say when a hook's object is deleted. All of it is data, read here once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

ARGO_HOOK = "argocd.argoproj.io/hook"
HELM_HOOK = "helm.sh/hook"
WAVE_KEYS = ("slipway.dev/sync-wave", "argocd.argoproj.io/sync-wave")
HELM_WEIGHT = "helm.sh/hook-weight"
ARGO_DELETE = "argocd.argoproj.io/hook-delete-policy"
HELM_DELETE = "helm.sh/hook-delete-policy"

PHASES = ("PreSync", "Sync", "PostSync", "SyncFail")
BEFORE, SUCCEEDED, FAILED = "BeforeHookCreation", "HookSucceeded", "HookFailed"
_HELM_PHASES = {"pre-install": "PreSync", "pre-upgrade": "PreSync", "post-install": "PostSync",
                "post-upgrade": "PostSync"}  # fmt: skip
_HELM_NEVER = {"test", "test-success", "test-failure", "pre-delete", "post-delete", "pre-rollback", "post-rollback"}
_POLICIES = {"hooksucceeded": SUCCEEDED, "hook-succeeded": SUCCEEDED, "hookfailed": FAILED, "hook-failed": FAILED,
             "beforehookcreation": BEFORE, "before-hook-creation": BEFORE}  # fmt: skip


class WaveError(ValueError):
    """An annotation slipway cannot read (a wave that is not a number, an unknown phase)."""


@dataclass(frozen=True)
class HookSpec:
    phases: tuple[str, ...]  # empty: declared as a hook that a sync never runs (Skip, Helm test...)
    wave: int
    delete_policies: frozenset[str] = field(default_factory=frozenset)
    why_not_run: str = ""  # for phase-less hooks: what the annotation said

    @property
    def runs(self) -> bool:
        return bool(self.phases)


def _annotations(obj: dict[str, Any]) -> dict[str, Any]:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return annotations if isinstance(annotations, dict) else {}


def _int(value: Any, key: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise WaveError(f"annotation {key}: {value!r} is not a whole number") from None


def wave_of(obj: dict[str, Any]) -> int:
    """The object's sync wave (slipway's annotation first, then Argo CD's); 0 when it names none."""
    annotations = _annotations(obj)
    for key in WAVE_KEYS:
        if key in annotations:
            return _int(annotations[key], key)
    return 0


def hook_of(obj: dict[str, Any]) -> HookSpec | None:
    """The object's hook settings, or None for an ordinary object."""
    annotations = _annotations(obj)
    if ARGO_HOOK in annotations:
        names = [n.strip() for n in str(annotations[ARGO_HOOK]).split(",") if n.strip()]
        unknown = [n for n in names if n not in (*PHASES, "Skip")]
        if unknown:
            raise WaveError(f"annotation {ARGO_HOOK}: {unknown[0]!r} is not one of {', '.join((*PHASES, 'Skip'))}")
        phases = tuple(p for p in PHASES if p in names and "Skip" not in names)
        why = "" if phases else f"{ARGO_HOOK}: Skip"
        policies = annotations.get(ARGO_DELETE, annotations.get(HELM_DELETE, ""))
        return HookSpec(phases, wave_of(obj), _policies(policies), why)
    if HELM_HOOK in annotations:
        names = [n.strip() for n in str(annotations[HELM_HOOK]).split(",") if n.strip()]
        if names == ["crd-install"]:
            return None  # Helm 2's way to install a CRD: an ordinary object
        phases = tuple(p for p in PHASES if any(_HELM_PHASES.get(n) == p for n in names))
        unknown = [n for n in names if n not in _HELM_PHASES and n not in _HELM_NEVER and n != "crd-install"]
        if unknown:
            raise WaveError(f"annotation {HELM_HOOK}: {unknown[0]!r} is not a Helm hook")
        why = "" if phases else f"{HELM_HOOK}: {annotations[HELM_HOOK]} (not run by a sync)"
        weight = _int(annotations[HELM_WEIGHT], HELM_WEIGHT) if HELM_WEIGHT in annotations else wave_of(obj)
        policies = annotations.get(HELM_DELETE, annotations.get(ARGO_DELETE, ""))
        return HookSpec(phases, weight, _policies(policies), why)
    return None


def _policies(text: Any) -> frozenset[str]:
    out = set()
    for name in str(text or "").split(","):
        key = name.strip().lower()
        if not key:
            continue
        if key not in _POLICIES:
            raise WaveError(f"hook delete policy {name.strip()!r} is not one of HookSucceeded, HookFailed, "
                            "BeforeHookCreation")  # fmt: skip
        out.add(_POLICIES[key])
    return frozenset(out or {BEFORE})


def identity(workflow_id: str, obj: dict[str, Any]) -> str:
    """A label value naming one hook across runs (a generateName hook makes a new object each time)."""
    md = obj.get("metadata") or {}
    key = "|".join([workflow_id, str(obj.get("apiVersion")), str(obj.get("kind")), str(md.get("namespace") or ""),
                    str(md.get("name") or md.get("generateName") or "")])  # fmt: skip
    return hashlib.sha256(key.encode()).hexdigest()[:40]
