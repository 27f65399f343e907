"""The one table between slipway's model and its custom resources, both ways, and the CRD schemas from it.

Every field of :class:`~slipway.model.Workflow` and :class:`~slipway.model.Repository` (and their
policies) has one row here: its model key, its name in the resource (the same name in camelCase),
its type and what the schema says of it. :func:`workflow_spec` / :func:`workflow_config` and
their repository twins convert with it, :mod:`.crds` builds the OpenAPI schemas from it, and a
test checks that every model field has a row and survives the round trip, so the two cannot
drift. A spec holds only what differs from the model's defaults (the model owns defaults, the
schema has none), the way a person writes one for ``kubectl apply``. Credentials never enter a
spec: a Repository names a Secret (``credentials.secretRef.name``) whose keys the second table,
:data:`CREDENTIAL_KEYS`, maps.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import ConfigError
from ...model import REPOSITORY_TYPES
from ...results import SyncResult

# Go durations as slipway reads them ("30s", "1h30m", "1.5s", "250ms", "0").
DURATION_PATTERN = r"^(0|((\d+(\.\d*)?|\.\d+)(ms|s|m|h))+)$"


@dataclass(frozen=True)
class Field:
    model: str  # the model's key (snake_case)
    kind: str  # string | duration | boolean | integer | strings | object | objects | data | labels | secret
    doc: str = ""
    children: tuple[Field, ...] = ()
    enum: tuple[str, ...] = ()
    minimum: int | None = None
    pattern: str | None = None
    rules: tuple[tuple[str, str], ...] = ()  # CEL (rule, message) on this object
    name: str | None = None  # its name in the resource, when not the model's in camelCase (Flux's shapes)

    @property
    def cr(self) -> str:
        if self.name:
            return self.name
        head, *rest = self.model.split("_")
        name = head + "".join(p[:1].upper() + p[1:] for p in rest)
        # A secret's value is never in a spec: the spec names a Secret that holds it.
        return name + "SecretRef" if self.kind == "secret" else name


def camel(snake: str) -> str:
    return Field(snake, "string").cr


F = Field
_DURATION_MIN_1S = ("duration(self.pollInterval) >= duration('1s')", "pollInterval must be at least 1s")

WORKFLOW: tuple[Field, ...] = (
    F("name", "string", "Display name; the id (metadata.name) when omitted."),
    F("repository", "string", "The Repository (its id, the object's name) the workflow reads."),
    F("target_path", "string", "Path in the repository to render; the repository root when omitted."),
    F("chart", "string", "A Repository of type helm: the chart deployed."),
    F("chart_version", "string", "With chart: Helm's version range (an exact version pins it); default the newest."),
    F("auto_sync", "boolean", "Sync whenever the branch moves."),
    F("diff_preview", "boolean", "Log what a sync will change before it changes it (default true)."),
    F("rollback_on_failure", "boolean", "Roll back automatically when a sync fails."),
    F(
        "sync_policy",
        "object",
        "How a sync applies, prunes, retries and checks health.",
        children=(
            F("auto_prune", "boolean", "Delete what the workflow applied and Git no longer declares."),
            F("allow_empty", "boolean", "Allow a render with no objects (and so pruning everything)."),
            F("create_namespace", "boolean", "Create the destination namespace when missing."),
            F("self_heal", "boolean", "Re-apply when the live objects drift from Git."),
            F("self_heal_interval", "duration", "How often self-heal looks for drift (default 1m)."),
            F("recreate", "boolean", "Delete and create an object whose immutable fields change."),
            F("hook_timeout", "duration", "Time limit of each hook (default 5m)."),
            F(
                "retry",
                "object",
                "Retries of transient failures.",
                children=(
                    F("limit", "integer", "Attempts after the first (default 3).", minimum=0),
                    F("backoff", "string", "Delay growth (default exponential).", enum=("exponential", "linear", "fixed")),
                    F("max_duration", "duration", "Give up after this long (default 2m)."),
                ),
            ),
            F(
                "health_check",
                "object",
                "Waiting for the applied objects to become healthy.",
                children=(
                    F("enabled", "boolean", "Wait for health (default true)."),
                    F("timeout", "duration", "How long to wait (default 5m)."),
                    F("failure_mode", "string", "What an unhealthy sync does (default fail).",
                      enum=("ignore", "fail", "rollback")),
                ),
            ),
            F("pre_sync_hooks", "strings", "Shell commands run before applying."),
            F("post_sync_hooks", "strings", "Shell commands run after a healthy apply."),
            F(
                "ignore_differences",
                "objects",
                "Fields of matching objects another manager owns: never diffed, never drift.",
                children=(
                    F("kind", "string", "Kind of the objects ('*' for any)."),
                    F("group", "string", "API group ('' for the core group, '*' for any)."),
                    F("name", "string", "Only the object of this name."),
                    F("namespace", "string", "Only objects in this namespace."),
                    F("json_pointers", "strings", "Fields as RFC 6901 pointers, e.g. /spec/replicas."),
                    F("managed_fields_managers", "strings", "Every field these field managers own."),
                ),
            ),
        ),
    ),
    F(
        "destination",
        "object",
        "Where the workflow applies.",
        children=(
            F("namespace", "string", "Namespace for objects that name none (default: default)."),
            F("context", "string", "kubeconfig context of the destination cluster."),
            F("kubeconfig", "string", "Path of a kubeconfig file on slipway's machine."),
            F("kubeconfig_secret", "string",
              "A Secret in slipway's namespace whose 'kubeconfig' key reaches another cluster."),
        ),
        rules=(("!(has(self.kubeconfig) && has(self.kubeconfigSecret))",
                "give kubeconfig or kubeconfigSecret, not both"),),
    ),
    F("history_limit", "integer", "Syncs kept in the history (default 100).", minimum=1),
    F(
        "helm",
        "object",
        "How a Helm chart of the path is rendered.",
        children=(
            F("release_name", "string", "Release name (default: the workflow id)."),
            F("values_files", "strings", "Values files relative to the chart, in order."),
            F("values", "data", "Values merged last."),
            F("skip_crds", "boolean", "Leave out the chart's crds/ directory."),
        ),
    ),
    F(
        "notify",
        "object",
        "Where a message is POSTed when a sync ends, and on which outcomes.",
        children=(
            F("url", "secret", "A Secret in slipway's namespace whose key (default 'url') holds the http(s) "
              "URL messages are POSTed to; a webhook URL is often a credential."),
            F("events", "strings", "Outcomes that send a message (default failed, refused, degraded, rolled_back).",
              enum=("failed", "refused", "degraded", "succeeded", "rolled_back")),
        ),
        rules=(("has(self.urlSecretRef)", "notify needs urlSecretRef (a Secret holding the URL)"),),
    ),
    F("labels", "labels", "Labels to find the workflow by (the overview's and the API's filters)."),
    F(
        "decryption",
        "object",
        "How SOPS-encrypted files of the path are decrypted (Flux's spec.decryption).",
        children=(
            F("provider", "string", "sops.", enum=("sops",)),
            F("keys", "secret", "A Secret in slipway's namespace holding the keys: age identities (keys ending "
              "in .agekey) and armored PGP private keys (.asc), as Flux's; or one key 'keys' holding them all.",
              name="secretRef"),
        ),
        rules=(("has(self.secretRef)", "decryption needs secretRef (a Secret holding the keys)"),),
    ),
    F(
        "post_build",
        "object",
        "Variables substituted in rendered objects (Flux's spec.postBuild).",
        children=(
            F("substitute", "data", "Variables and their values (strings)."),
            F("substitute_from", "objects", "ConfigMaps and Secrets of the destination namespace holding variables.",
              children=(
                  F("kind", "string", "ConfigMap or Secret.", enum=("ConfigMap", "Secret")),
                  F("name", "string", "Its name."),
                  F("optional", "boolean", "A missing one is no error."),
              )),
        ),
    ),
    F(
        "jsonnet",
        "object",
        "How Jsonnet of the path is evaluated.",
        children=(
            F("entry", "string", "The .jsonnet file to evaluate (default: every one of the path)."),
            F("tlas", "data", "Top-level arguments."),
            F("ext_vars", "data", "External variables."),
            F("libs", "strings", "Library directories, relative to the repository root."),
        ),
    ),
)  # fmt: skip

REPOSITORY: tuple[Field, ...] = (
    F("url", "string", "Git URL (https, ssh, file) or, for type helm, the chart repository's URL."),
    F("branch", "string", "Branch to follow (default main)."),
    F("poll_interval", "duration", "How often the branch (or a chart's releases) is checked (default 30s)."),
    F("type", "string", "git (workflows read it) or helm (a chart repository).", enum=tuple(REPOSITORY_TYPES)),
    F("plain_http", "boolean", "type helm, oci://: the registry speaks HTTP without TLS."),
    F("ca_file", "string", "type helm: a CA file (on slipway's machine) for the repository's TLS."),
)

# Credentials: the model's key -> the key in the Secret a Repository names.
CREDENTIAL_KEYS: dict[str, str] = {
    "type": "type",
    "username": "username",
    "token": "token",
    "password": "password",
    "ssh_key": "sshKey",
    "known_hosts": "knownHosts",
    "token_as_username": "tokenAsUsername",
}

REPOSITORY_RULES = (
    ("!has(self.pollInterval) || " + _DURATION_MIN_1S[0], _DURATION_MIN_1S[1]),
    ("!has(self.type) || self.type != 'helm' || !has(self.branch)", "a Helm chart repository has no branch"),
    ("!has(self.type) || self.type != 'helm' || self.url.matches('^(https?|oci)://')",
     "a Helm chart repository is served over http(s) or from an OCI registry (oci://)"),
    ("!has(self.plainHttp) || !self.plainHttp || self.url.startsWith('oci://')",
     "plainHttp is for an OCI registry (oci://)"),
    ("!has(self.type) || self.type != 'helm' || !has(self.credentials) || !has(self.credentials.type) || "
     "self.credentials.type != 'ssh'", "a Helm chart repository takes token or userpass credentials"),
)  # fmt: skip

# A workflow's run state (the store protocol's keys) -> its place in the Workflow's status.
STATE: dict[str, str] = {
    "status": "status",
    "status_message": "message",
    "hold_revision": "holdRevision",
    "applied_revision": "appliedRevision",
    "last_sync_id": "lastSyncId",
    "assessment": "assessment",
}


# -- model config <-> spec ------------------------------------------------------------------------


def _to_spec(
    config: dict[str, Any], fields: tuple[Field, ...], defaults: dict[str, Any] | None, empty: dict[str, Any]
) -> dict[str, Any]:
    """Only what differs from ``defaults``; ``empty`` holds the defaults inside objects the model
    leaves out by default (helm, jsonnet), which are kept as ``{}`` when given with nothing in them."""
    out: dict[str, Any] = {}
    for f in fields:
        value = config.get(f.model)
        default = (defaults or {}).get(f.model)
        if value is None:
            continue
        if f.kind == "object":
            inner_defaults = default if isinstance(default, dict) else (empty.get(f.model) or {})
            inner = _to_spec(value, f.children, inner_defaults, {})
            if inner or default is None:
                out[f.cr] = inner
        elif f.kind == "objects":
            items = [
                _to_spec({k: v for k, v in item.items() if v not in ("", [])}, f.children, {}, {}) for item in value
            ]
            if items or default is None:
                out[f.cr] = items
        elif f.kind == "secret":
            out[f.cr] = {"name": value}  # the caller put the Secret's name where the value was
        elif defaults is None or value != default:
            out[f.cr] = list(value) if f.kind == "strings" else value
    return out


SecretReader = Callable[[dict[str, Any]], str]


def _to_config(spec: dict[str, Any], fields: tuple[Field, ...], secret: SecretReader | None) -> dict[str, Any]:
    by_cr = {f.cr: f for f in fields}
    out: dict[str, Any] = {}
    for key, value in spec.items():
        f = by_cr.get(key)
        if f is None:
            out[key] = value  # the model refuses it, naming it
        elif f.kind == "object" and isinstance(value, dict):
            out[f.model] = _to_config(value, f.children, secret)
        elif f.kind == "objects" and isinstance(value, list):
            out[f.model] = [_to_config(v, f.children, secret) if isinstance(v, dict) else v for v in value]
        elif f.kind == "secret" and isinstance(value, dict) and secret is not None:
            out[f.model] = secret(value)
        else:
            out[f.model] = value
    return out


def _defaults() -> tuple[dict[str, Any], dict[str, Any]]:
    from ...model import Workflow

    plain = Workflow.from_config({"id": "x", "repository": "x"}).to_config()
    full = Workflow.from_config({"id": "x", "repository": "x", "helm": {}, "jsonnet": {}, "post_build": {}}).to_config()
    return plain, full


def workflow_spec(config: dict[str, Any]) -> dict[str, Any]:
    """A workflow's config (``Workflow.to_config()``) as a Workflow's spec; the id is the object's, not the spec's.
    A ``secret`` field's value must have been replaced by the name of the Secret that holds it."""
    plain, full = _defaults()
    spec = _to_spec({k: v for k, v in config.items() if k != "id"}, WORKFLOW, plain, full)
    if config.get("name") == config.get("id"):
        spec.pop("name", None)
    spec["repository"] = config["repository"]
    return spec


def workflow_config(workflow_id: str, spec: dict[str, Any], secret: SecretReader | None = None) -> dict[str, Any]:
    """A Workflow's spec as the model's config (validate it with ``Workflow.from_config``); ``secret``
    reads the value a ``secret`` field's reference (``{"name": ..., "key": ...}``) points at."""
    return {"id": workflow_id, **_to_config(spec or {}, WORKFLOW, secret)}


def repository_spec(config: dict[str, Any]) -> dict[str, Any]:
    # Written whole (branch, poll interval, type), so `kubectl get repositories` shows them; a chart
    # repository has no branch.
    if config.get("type") == "helm":
        keep: tuple[str, ...] = (
            "url",
            "poll_interval",
            "type",
            *(k for k in ("plain_http", "ca_file") if config.get(k)),
        )
    else:
        keep = ("url", "branch", "poll_interval", "type")
    return _to_spec({k: config.get(k) for k in keep}, REPOSITORY, None, {})


def repository_config(repo_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": repo_id,
        **_to_config({k: v for k, v in (spec or {}).items() if k != "credentials"}, REPOSITORY, None),
    }


def credentials_data(creds: dict[str, Any]) -> dict[str, str]:
    """Credentials (``Credentials.to_dict()``) as the string values of a Secret's keys."""
    out = {}
    for key, value in creds.items():
        if value is None or value is False:
            continue
        out[CREDENTIAL_KEYS[key]] = "true" if value is True else str(value)
    return out


def credentials_config(data: dict[str, str], where: str) -> dict[str, Any]:
    """A credentials Secret's keys as the model's credentials table; the type follows from the keys when unsaid."""
    by_key = {v: k for k, v in CREDENTIAL_KEYS.items()}
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in by_key:
            raise ConfigError(
                f"{where}: unknown key {key!r}; a credentials Secret holds {', '.join(CREDENTIAL_KEYS.values())}"
            )
        out[by_key[key]] = value.strip() in ("true", "yes", "1") if key == "tokenAsUsername" else value
    if "type" not in out:
        out["type"] = "ssh" if "ssh_key" in out else "userpass" if "password" in out else "token"
    return out


def spec_path(model_key: str, fields: tuple[Field, ...] = WORKFLOW) -> str:
    """``sync_policy.retry.backoff`` as the resource names it: ``spec.syncPolicy.retry.backoff``."""
    parts, out, level = model_key.split("."), ["spec"], fields
    for part in parts:
        m = re.match(r"^([^\[]*)(\[.*\])?$", part)
        name, index = (m.group(1), m.group(2) or "") if m else (part, "")
        f = next((x for x in level if x.model == name), None)
        out.append((f.cr if f else name) + index)
        level = f.children if f else ()
    return ".".join(out)


def explain(error: ConfigError, fields: tuple[Field, ...] = WORKFLOW) -> str:
    """A model error (``sync_policy.retry.backoff: ...``) in the resource's words (``spec.syncPolicy...``)."""
    text = error.message
    key, sep, rest = text.partition(": ")
    if sep and re.match(r"^[A-Za-z0-9_.\[\]]+$", key):
        return f"{spec_path(key, fields)}: {rest}"
    return text


# -- run state and the seed's last sync result in status --------------------------------------------


def last_sync_status(result: SyncResult) -> dict[str, Any]:
    """The seed's ``last_sync_result`` as the Workflow's ``status.lastSyncResult`` (camelCase)."""
    seed = result.to_seed()
    return {camel(k): ({camel(m): n for m, n in v.items()} if k == "metrics" else v) for k, v in seed.items()}
