"""The nouns of slipway and their validation: Repository, Workflow, policies, Change, Plan, results.

Configuration arrives as dicts (from Python keyword arguments, Lua tables, CLI flags or the state
store); ``from_config`` turns each into a dataclass and rejects unknown keys and wrong types with
an error naming the key (``sync_policy.retry.backoff: ...``). A :class:`Change` is the one record
of what happens to one object; plan, apply, history, the CLI and Lua all print it.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from . import settings
from .configread import Reader as _Reader
from .durations import parse_duration
from .errors import ConfigError
from .labels import check_labels
from .paths import PathError, clean_repo_path
from .urls import UrlError, UrlParts, redact_url, split_url

if TYPE_CHECKING:
    from .render.options import HelmOptions, JsonnetOptions
    from .render.sops import Decryption
    from .render.substitute import PostBuild
from .notify import Notify

ID_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
_SHORTHAND = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


_issued: set[str] = set()
_issued_second = [0]
_issued_lock = threading.Lock()


def new_id(prefix: str) -> str:
    """``<prefix>-<unix seconds>-<48 random bits>``: sortable, and unique however many are made per second.

    Within a process an id is never handed out twice; across processes 48 random bits make a
    collision in the same second negligible.
    """
    with _issued_lock:
        second = int(time.time())
        if second != _issued_second[0]:
            _issued.clear()
            _issued_second[0] = second
        while True:
            candidate = f"{prefix}-{second}-{secrets.token_hex(6)}"
            if candidate not in _issued:
                _issued.add(candidate)
                return candidate


def check_id(value: Any, key: str) -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise ConfigError(
            f"{key}: {value!r} is not a valid id; use up to 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return value


# -- repositories ---------------------------------------------------------------------------------


@dataclass
class Credentials:
    type: str
    username: str | None = None
    token: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    ssh_key: str | None = field(default=None, repr=False)
    known_hosts: str | None = None
    # The token is sent as the user name with an empty password, as git sends https://<token>@host/x.
    token_as_username: bool | None = None

    @classmethod
    def from_config(cls, data: Any, where: str = "credentials") -> Credentials:
        r = _Reader(data, where)
        kind = r.choice("type", ("token", "userpass", "ssh"), "")
        creds = cls(
            type=kind,
            username=r.get("username", str),
            token=r.get("token", str),
            password=r.get("password", str),
            ssh_key=r.get("ssh_key", str),
            known_hosts=r.get("known_hosts", str),
            token_as_username=r.get("token_as_username", bool) or None,
        )
        r.done()
        needs = {"token": ("token",), "userpass": ("username", "password"), "ssh": ("ssh_key",)}[kind]
        for name in needs:
            if not getattr(creds, name):
                raise ConfigError(f"{r.key(name)}: required for credentials of type {kind!r}")
        if creds.token_as_username and (kind != "token" or creds.username):
            raise ConfigError(f"{r.key('token_as_username')}: only for a token without a username")
        if kind == "token" and not creds.username and not creds.token_as_username:
            creds.username = "x-access-token"
        return creds

    @classmethod
    def from_url(cls, parts: UrlParts) -> Credentials:
        """The credentials a URL carried (see :func:`slipway.urls.split_url`)."""
        return cls.from_config(_url_credentials(parts), "url")

    def public(self) -> dict[str, Any]:
        """What may be shown: the type and the username, never a secret."""
        out: dict[str, Any] = {"type": self.type}
        if self.username:
            out["username"] = self.username
        if self.token_as_username:
            out["token_as_username"] = True
        if self.known_hosts:
            out["known_hosts"] = "given"
        return out

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _url_credentials(parts: UrlParts) -> dict[str, Any]:
    """The credentials a URL carried (see :func:`slipway.urls.split_url`), as a config table."""
    user, password = parts.username or "", parts.password
    if password is None or (user and not password):
        # https://<token>@host/x, or https://user:@host/x: git sends the user name and an empty password
        return {"type": "token", "token": user, "token_as_username": True}
    if not user:
        return {"type": "token", "token": password}
    return {"type": "userpass", "username": user, "password": password}


def expand_url(url: str) -> str:
    """An ``owner/name`` shorthand becomes a repository on the default Git host."""
    if _SHORTHAND.match(url) and not url.startswith("."):
        return f"{settings.default_git_host()}/{url}"
    return url


REPOSITORY_TYPES = {
    "git": "a Git repository workflows read",
    "helm": "a Helm chart repository (http(s) or oci://): charts workflows deploy, and chart dependencies",
}


@dataclass
class Repository:
    """A Git repository workflows read from, or (``type = "helm"``) a Helm chart repository, over
    HTTP or an OCI registry (``oci://HOST/PATH``): workflows deploy its charts (polled every
    ``poll_interval`` for new releases), chart dependencies under its URL are fetched with its
    credentials. ``plain_http`` (an OCI registry without TLS) and ``ca_file`` (a private CA) are Helm's
    ``--plain-http`` and ``--ca-file``."""

    id: str
    url: str
    branch: str = "main"
    poll_interval: str = "30s"
    credentials: Credentials | None = None
    type: str = "git"
    plain_http: bool = False
    ca_file: str | None = None

    @classmethod
    def from_config(cls, data: Any) -> Repository:
        r = _Reader(data, "")
        rid = r.get("id", str)
        kind = r.choice("type", tuple(REPOSITORY_TYPES), "git")
        url = r.get("url", str)
        if not url:
            raise ConfigError("url: required (a Git URL, or owner/name on the default Git host)")
        try:
            parts = split_url(url.strip())
        except UrlError as e:
            raise ConfigError(f"url: {e}") from None
        url = parts.url
        if kind == "helm":
            _check_chart_repository(r, url)
        creds_cfg = r.get("credentials", dict)
        if parts.username is not None:
            if creds_cfg:
                raise ConfigError("url: has credentials in it and credentials are given too; use one")
            # A credential left in the URL would be stored and shown in plain text; credentials are sealed.
            creds_cfg = _url_credentials(parts)
        repo = cls(
            id=check_id(rid, "id") if rid else new_id("repo"),
            url=expand_url(url),
            branch=r.get("branch", str, "main") or "main",
            poll_interval=r.duration("poll_interval", "30s"),
            credentials=Credentials.from_config(creds_cfg) if creds_cfg else None,
            type=kind,
            plain_http=r.get("plain_http", bool, False) or False,
            ca_file=r.get("ca_file", str) or None,
        )
        r.done()
        if repo.plain_http and not repo.url.startswith("oci://"):
            raise ConfigError(
                "plain_http: only for an OCI registry (oci://); an http:// chart repository is plain already"
            )
        if repo.ca_file and (kind != "helm" or repo.url.startswith("http://") or repo.plain_http):
            raise ConfigError("ca_file: only for a Helm chart repository reached over TLS (https:// or oci://)")
        if repo.type == "helm" and repo.credentials is not None and repo.credentials.type == "ssh":
            raise ConfigError("credentials.type: a Helm chart repository takes userpass or token credentials")
        if parse_duration(repo.poll_interval) < 1:
            raise ConfigError(f"poll_interval: {repo.poll_interval!r} is too short; use at least 1s")
        if not re.match(r"^[^\s~^:?*\[\\]+$", repo.branch) or ".." in repo.branch or repo.branch.startswith("-"):
            raise ConfigError(f"branch: {repo.branch!r} is not a valid branch name")
        return repo

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "url": redact_url(self.url),  # a repository stored before URLs were split may hold a token
            "branch": self.branch,
            "poll_interval": self.poll_interval,
            "credentials": self.credentials.public() if self.credentials else None,
            **({"plain_http": True} if self.plain_http else {}),
            **({"ca_file": self.ca_file} if self.ca_file else {}),
        }


def _check_chart_repository(r: _Reader, url: str) -> None:
    if not re.match(r"^(https?|oci)://[^/\s]+", url):
        raise ConfigError(
            f"url: {url!r} is not an http(s) or oci:// URL; a Helm chart repository is served over HTTP or from "
            "an OCI registry"
        )
    if r.data.get("branch") is not None:
        raise ConfigError("branch: a Helm chart repository has no branch (a workflow names its chart and version)")


# -- workflows ------------------------------------------------------------------------------------


@dataclass
class RetryPolicy:
    limit: int = 3
    backoff: str = "exponential"
    max_duration: str = "2m"

    @classmethod
    def from_config(cls, data: Any, where: str) -> RetryPolicy:
        r = _Reader(data, where)
        limit = r.get("limit", int, 3)
        if limit < 0:
            raise ConfigError(f"{r.key('limit')}: must be 0 or more")
        out = cls(limit, r.choice("backoff", ("exponential", "linear", "fixed"), "exponential"),
                  r.duration("max_duration", "2m"))  # fmt: skip
        r.done()
        return out

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based), capped at 30s."""
        base = {"exponential": 2.0 ** (attempt - 1), "linear": float(attempt), "fixed": 1.0}[self.backoff]
        return float(min(30.0, base))


@dataclass
class HealthCheck:
    enabled: bool = True
    timeout: str = "5m"
    failure_mode: str = "fail"

    @classmethod
    def from_config(cls, data: Any, where: str) -> HealthCheck:
        r = _Reader(data, where)
        out = cls(r.get("enabled", bool, True), r.duration("timeout", "5m"),
                  r.choice("failure_mode", ("ignore", "fail", "rollback"), "fail"))  # fmt: skip
        r.done()
        return out


_POINTER_SEGMENT = re.compile(r"^([^~]|~[01])*$")
_IDENTITY = ("/apiVersion", "/kind", "/metadata", "/metadata/name", "/metadata/namespace")


@dataclass
class IgnoreDifference:
    """Fields of matching objects that another manager owns: never diffed, never drift, never sent on update.

    As Argo CD's ``ignoreDifferences``: ``group`` and ``kind`` (``*`` for any), optionally ``name``
    and ``namespace``; ``json_pointers`` (RFC 6901, ``/spec/replicas``) and/or
    ``managed_fields_managers`` (every field those field managers own). jq is not supported.
    """

    kind: str
    group: str = ""
    name: str | None = None
    namespace: str | None = None
    json_pointers: list[str] = field(default_factory=list)
    managed_fields_managers: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, data: Any, where: str) -> IgnoreDifference:
        r = _Reader(data, where)
        if r.data.get("jq_path_expressions"):
            raise ConfigError(
                f"{r.key('jq_path_expressions')}: jq expressions are not supported; name the fields with "
                "json_pointers (e.g. /spec/replicas) or their owner with managed_fields_managers"
            )
        r.seen.add("jq_path_expressions")
        out = cls(
            kind=r.get("kind", str, ""),
            group=r.get("group", str, ""),
            name=r.get("name", str),
            namespace=r.get("namespace", str),
            json_pointers=r.strings("json_pointers"),
            managed_fields_managers=r.strings("managed_fields_managers"),
        )
        r.done()
        if not out.kind:
            raise ConfigError(f"{r.key('kind')}: required (the kind of object, or * for any)")
        if not out.json_pointers and not out.managed_fields_managers:
            raise ConfigError(f"{where}: give json_pointers or managed_fields_managers (what to ignore)")
        for i, pointer in enumerate(out.json_pointers):
            key = f"{r.key('json_pointers')}[{i + 1}]"
            segments = pointer.split("/")[1:]
            if not pointer.startswith("/") or not all(segments) or not all(map(_POINTER_SEGMENT.match, segments)):
                raise ConfigError(f"{key}: {pointer!r} is not a JSON pointer (RFC 6901), e.g. /spec/replicas")
            if pointer.rstrip("/") in _IDENTITY:
                raise ConfigError(f"{key}: {pointer!r} is the object's identity; it cannot be ignored")
        for i, manager in enumerate(out.managed_fields_managers):
            if not manager.strip() or manager == settings.FIELD_MANAGER:
                raise ConfigError(
                    f"{r.key('managed_fields_managers')}[{i + 1}]: {manager!r} is not another field manager"
                )
        return out

    def matches(self, group: str, kind: str, namespace: str, name: str) -> bool:
        return (
            self.kind in ("*", kind)
            and self.group in ("*", group)
            and self.name in (None, name)
            and self.namespace in (None, namespace)
        )


@dataclass
class SyncPolicy:
    auto_prune: bool = False
    allow_empty: bool = False
    create_namespace: bool = False
    self_heal: bool = False
    self_heal_interval: str = "1m"
    recreate: bool = False
    hook_timeout: str = "5m"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    health_check: HealthCheck = field(default_factory=HealthCheck)
    pre_sync_hooks: list[str] = field(default_factory=list)
    post_sync_hooks: list[str] = field(default_factory=list)
    ignore_differences: list[IgnoreDifference] = field(default_factory=list)

    @classmethod
    def from_config(cls, data: Any, where: str = "sync_policy") -> SyncPolicy:
        r = _Reader(data, where)
        out = cls(
            auto_prune=r.get("auto_prune", bool, False),
            allow_empty=r.get("allow_empty", bool, False),
            create_namespace=r.get("create_namespace", bool, False),
            self_heal=r.get("self_heal", bool, False),
            self_heal_interval=r.duration("self_heal_interval", "1m"),
            recreate=r.get("recreate", bool, False),
            hook_timeout=r.duration("hook_timeout", "5m"),
            retry=RetryPolicy.from_config(r.get("retry", dict), r.key("retry")),
            health_check=HealthCheck.from_config(r.get("health_check", dict), r.key("health_check")),
            pre_sync_hooks=r.strings("pre_sync_hooks"),
            post_sync_hooks=r.strings("post_sync_hooks"),
            ignore_differences=[
                IgnoreDifference.from_config(item, f"{r.key('ignore_differences')}[{i + 1}]")
                for i, item in enumerate(r.tables("ignore_differences"))
            ],
        )
        r.done()
        return out


@dataclass
class Destination:
    namespace: str = "default"
    context: str | None = None
    kubeconfig: str | None = None
    # A Secret in slipway's own namespace whose ``kubeconfig`` key reaches the destination cluster
    # (the kubernetes store: a replica has no disk to keep a kubeconfig file on).
    kubeconfig_secret: str | None = None

    @classmethod
    def from_config(cls, data: Any, where: str = "destination") -> Destination:
        r = _Reader(data, where)
        out = cls(r.get("namespace", str, "default"), r.get("context", str), r.get("kubeconfig", str),
                  r.get("kubeconfig_secret", str))  # fmt: skip
        r.done()
        if out.kubeconfig and out.kubeconfig_secret:
            raise ConfigError(f"{r.key('kubeconfig_secret')}: give a kubeconfig file or a kubeconfig Secret, not both")
        if out.kubeconfig_secret is not None and not re.match(
            r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", out.kubeconfig_secret
        ):
            raise ConfigError(f"{r.key('kubeconfig_secret')}: {out.kubeconfig_secret!r} is not a valid Secret name")
        if not re.match(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", out.namespace):
            raise ConfigError(f"{r.key('namespace')}: {out.namespace!r} is not a valid namespace name")
        return out


@dataclass
class Workflow:
    id: str
    name: str
    repository: str
    target_path: str = ""
    auto_sync: bool = False
    diff_preview: bool = True
    rollback_on_failure: bool = False
    sync_policy: SyncPolicy = field(default_factory=SyncPolicy)
    destination: Destination = field(default_factory=Destination)
    history_limit: int = 100
    helm: HelmOptions | None = None
    jsonnet: JsonnetOptions | None = None
    notify: Notify | None = None
    # A repository of type helm: the chart deployed and Helm's version range (an exact version pins it).
    chart: str | None = None
    chart_version: str | None = None
    decryption: Decryption | None = None  # SOPS keys (sealed by the store)
    post_build: PostBuild | None = None  # Flux's postBuild substitution
    labels: dict[str, str] = field(default_factory=dict)  # to find it among many (Kubernetes label syntax)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Workflow:
        """A workflow as a store kept it (:meth:`to_config`): validated again, keys added since default."""
        return cls.from_config(data)

    @classmethod
    def from_config(cls, data: Any) -> Workflow:
        r = _Reader(data, "")
        wid = r.get("id", str)
        wid = check_id(wid, "id") if wid else new_id("workflow")
        repository = r.get("repository", str)
        if not repository:
            raise ConfigError("repository: required (the id register_repository returned)")
        try:
            target = clean_repo_path(r.get("target_path", str, "") or "")
        except PathError as e:
            raise ConfigError(f"target_path: {e}") from None
        out = cls(
            id=wid,
            name=r.get("name", str) or wid,
            repository=repository,
            target_path=target,
            auto_sync=r.get("auto_sync", bool, False),
            diff_preview=r.get("diff_preview", bool, True),
            rollback_on_failure=r.get("rollback_on_failure", bool, False),
            sync_policy=SyncPolicy.from_config(r.get("sync_policy", dict)),
            destination=Destination.from_config(r.get("destination", dict)),
            history_limit=r.get("history_limit", int, 100),
            helm=_optional(r, "helm", "HelmOptions"),
            jsonnet=_optional(r, "jsonnet", "JsonnetOptions"),
            notify=Notify.from_config(r.get("notify", dict)),
            chart=r.get("chart", str) or None,
            chart_version=r.get("chart_version", str) or None,
            decryption=_optional(r, "decryption", "Decryption", "sops"),
            post_build=_optional(r, "post_build", "PostBuild", "substitute"),
            labels=check_labels(r.get("labels", dict) or {}, r.key("labels")),
        )
        r.done()
        _check_chart(out)
        if out.history_limit < 1:
            raise ConfigError(f"history_limit: {out.history_limit} must be 1 or more (the syncs kept per workflow)")
        return out

    def to_config(self) -> dict[str, Any]:
        return asdict(self)

    def values_repositories(self) -> list[str]:
        """The Git repositories its ``$<repository id>/<path>`` values files come from (see :mod:`.workflowrev`)."""
        from .workflowrev import values_repositories

        return values_repositories(self)

    def public(self) -> dict[str, Any]:
        """What may be shown: the configuration with the notification URL masked (it may hold a token)
        and the decryption keys never (only how many there are)."""
        return {
            **self.to_config(),
            "notify": self.notify.public() if self.notify else None,
            "decryption": self.decryption.public() if self.decryption else None,
        }


def _check_chart(wf: Workflow) -> None:
    if wf.chart is not None and (not re.match(r"^[a-zA-Z0-9._-]+$", wf.chart) or wf.chart in (".", "..")):
        raise ConfigError(f"chart: {wf.chart!r} is not a chart name (letters, digits, '.', '_' and '-')")
    if wf.chart_version is not None:
        if wf.chart is None:
            raise ConfigError("chart_version: only with chart (a workflow of a repository of type helm)")
        from .render.semver import Constraint, SemverError

        try:
            Constraint(wf.chart_version)
        except SemverError as e:
            raise ConfigError(f"chart_version: {wf.chart_version!r} is not a version range ({e})") from None
    if wf.chart is not None and wf.target_path:
        raise ConfigError("target_path: a chart from a chart repository has no path; leave target_path empty")


def _optional(r: _Reader, name: str, cls: str, module: str = "options") -> Any:
    value = r.get(name, dict)
    if value is None:
        return None  # no table: the render stage is not even imported
    import importlib

    return getattr(importlib.import_module(f".render.{module}", __package__), cls).from_config(value, r.key(name))
