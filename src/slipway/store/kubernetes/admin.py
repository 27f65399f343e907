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

A grant is bound (``boundTo``) to the Workflow it was given to: its uid, its repository (id and
URL), target path and destination. A Workflow deleted and declared again under the same id, or
edited to fetch another repository, render another path or deploy elsewhere, no longer matches:
it is refused (``AdminOnly``, saying what changed) and the grant never used, until the admin
writes it again. ``destination.kubeconfigSecret`` lends a cluster's credentials too: a Workflow
may name one only when its grant names the same Secret. slipway's fronts write the binding; a
grant an admin writes by hand without one is bound to the Workflow it first meets.
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
    # Stays in the spec (it names a Secret, no file of slipway's), but only the grant allows it.
    secret = (out.get("destination") or {}).get("kubeconfig_secret")
    if secret:
        grant[SECRET_KEY] = secret
    return out, grant


SECRET_KEY = "kubeconfigSecret"
BOUND = "boundTo"
PENDING = {"pending": True}  # written before the Workflow, so no sync runs between the two writes
EXTRA = (SECRET_KEY, BOUND)


def document(configmap: Obj | None, workflow_id: str) -> dict[str, Any] | None:
    """The grant's YAML as written (None when there is none or it does not parse: grant_of says why)."""
    text = ((configmap or {}).get("data") or {}).get(key(workflow_id))
    try:
        doc = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return None
    return doc if isinstance(doc, dict) else None


def binding(obj: Obj, url: str | None) -> dict[str, Any]:
    """What a grant is bound to: this Workflow object, its repository's URL, path and destination."""
    spec = obj.get("spec") or {}
    return {"uid": str(obj["metadata"].get("uid") or ""), "repository": spec.get("repository"), "url": url,
            "targetPath": spec.get("targetPath"), "destination": spec.get("destination") or {}}  # fmt: skip


def check(doc: dict[str, Any], obj: Obj, url: str | None, where: str) -> None:
    """Raise :class:`AdminOnly` unless the grant ``doc`` was given to this very Workflow as it is now."""
    bound = doc.get(BOUND)
    if bound == PENDING:
        raise AdminOnly(f"{where}: its grant is being written; it runs once slipway's admin front finished")
    if not isinstance(bound, dict):
        raise AdminOnly(f"{where}: its grant carries no valid {BOUND}")
    now = binding(obj, url)
    if bound.get("uid") != now["uid"]:
        raise AdminOnly(
            f"{where}: the grant was given to another Workflow of that id (uid {bound.get('uid')}), since "
            f"deleted; this one (uid {now['uid']}) was declared after it, so it gets no hook nor kubeconfig and "
            "does not run until slipway's admin grants it again"
        )
    for field in ("repository", "url", "targetPath", "destination"):
        if bound.get(field) != now[field]:
            what = "the repository's URL" if field == "url" else f"spec.{field}"
            raise AdminOnly(
                f"{where}: {what} changed since slipway's admin granted this workflow its hooks, kubeconfig "
                "or kubeconfig Secret; it does not run until the admin grants it again (or the change is undone)"
            )


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
        if name in EXTRA:
            continue  # checked by check() and the store
        if name not in by_name:
            raise ConfigError(f"{where}: unknown key {name!r}; it holds {', '.join((*by_name, *EXTRA))}")
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
