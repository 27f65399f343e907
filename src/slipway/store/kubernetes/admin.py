"""What only slipway's admin configures on the kubernetes store: the settings that run code as slipway.

A shell hook runs as slipway, with its credentials (it could read the store's key); a
``destination.kubeconfig`` names a file on slipway's machine, whose credentials and exec
plugins become slipway's. Anyone allowed to write a Workflow (``kubectl``, or Git through an app
of apps) is not thereby allowed that, so a Workflow never carries them: they live in the
ConfigMap ``slipway-admin`` of slipway's namespace, one key per workflow (``workflow.<id>``,
YAML with ``preSyncHooks``, ``postSyncHooks``, ``kubeconfig``), which only whoever may write
slipway's own namespace can write: its admin, as Argo CD's ``argocd-cm`` is. slipway's own fronts
(CLI, Python, Lua, an admin API token) write it for the workflows they create. A Workflow whose
spec carries one of these is refused (condition Ready=False, reason ``AdminOnly``) and never runs.
"""

from __future__ import annotations

from typing import Any

import yaml

from ...errors import ConfigError
from ...kube import Obj

CONFIGMAP = "slipway-admin"
KEY_PREFIX = "workflow."

# (the model's section, its key) -> the name in a Workflow's spec section and in a grant.
FIELDS: dict[tuple[str, str], tuple[str, str]] = {
    ("sync_policy", "pre_sync_hooks"): ("syncPolicy", "preSyncHooks"),
    ("sync_policy", "post_sync_hooks"): ("syncPolicy", "postSyncHooks"),
    ("destination", "kubeconfig"): ("destination", "kubeconfig"),
}
EMPTY: dict[str, Any] = {"pre_sync_hooks": [], "post_sync_hooks": [], "kubeconfig": None}


class AdminOnly(ConfigError):
    """A Workflow carries what only slipway's admin may configure."""


def key(workflow_id: str) -> str:
    return KEY_PREFIX + workflow_id


def refuse_in_spec(spec: dict[str, Any], workflow_id: str, namespace: str) -> None:
    """Raise :class:`AdminOnly` naming the first admin-only field the spec sets."""
    where = f"ConfigMap {CONFIGMAP} of namespace {namespace} (key {key(workflow_id)})"
    for (_, model), (section, name) in FIELDS.items():
        if not (spec.get(section) or {}).get(name):
            continue
        what = (
            "a kubeconfig file on slipway's machine lends slipway's credentials and runs its exec plugins"
            if model == "kubeconfig"
            else "shell hooks run as slipway, with its credentials"
        )
        raise AdminOnly(f"spec.{section}.{name}: {what}; only slipway's admin configures that, in {where}, "
                        "never a Workflow")  # fmt: skip


def split(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A workflow's config without its admin-only settings, and those settings as a grant."""
    out = {**config}
    grant: dict[str, Any] = {}
    for (section, model), (_, name) in FIELDS.items():
        inner = dict(out.get(section) or {})
        value = inner.get(model)
        if value:
            grant[name] = value
        inner[model] = EMPTY[model]
        out[section] = inner
    return out, grant


def grant_of(configmap: Obj | None, workflow_id: str, namespace: str) -> dict[str, Any]:
    """The admin's grant for a workflow, as the model's keys to merge into its config ({} when none)."""
    text = ((configmap or {}).get("data") or {}).get(key(workflow_id))
    if not text:
        return {}
    where = f"ConfigMap {CONFIGMAP} of namespace {namespace}, key {key(workflow_id)}"
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML: {str(e).splitlines()[0]}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected a mapping of preSyncHooks, postSyncHooks, kubeconfig")
    by_name = {name: (section, model) for (section, model), (_, name) in FIELDS.items()}
    out: dict[str, Any] = {}
    for name, value in doc.items():
        if name not in by_name:
            raise ConfigError(f"{where}: unknown key {name!r}; it holds {', '.join(by_name)}")
        section, model = by_name[name]
        ok = (
            isinstance(value, str)
            if model == "kubeconfig"
            else (isinstance(value, list) and all(isinstance(v, str) for v in value))
        )
        if value is not None and not ok:
            want = "a path" if model == "kubeconfig" else "a list of shell commands"
            raise ConfigError(f"{where}: {name} must be {want}")
        out.setdefault(section, {})[model] = value if value is not None else EMPTY[model]
    return out


def merge(config: dict[str, Any], grant: dict[str, Any]) -> dict[str, Any]:
    for section, values in grant.items():
        config[section] = {**(config.get(section) or {}), **values}
    return config


def grant_text(grant: dict[str, Any]) -> str:
    return yaml.safe_dump(grant, sort_keys=False, default_flow_style=False)
