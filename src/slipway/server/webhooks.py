"""Push webhooks from GitHub, GitLab, Gitea and Bitbucket: a pushed commit is applied in seconds.

``POST /api/v1/webhooks/{provider}`` authenticates by the provider's signature over the raw body
with the server's webhook secret (never a bearer token): GitHub ``X-Hub-Signature-256`` and
Bitbucket Server ``X-Hub-Signature`` (``sha256=`` HMAC-SHA256), Gitea ``X-Gitea-Signature`` (hex
HMAC-SHA256), GitLab ``X-Gitlab-Token`` (the secret itself). A bad or missing signature is 401
and does nothing; a delivery id seen before is answered and ignored (the last 10,000 are kept).
An id is remembered only once its delivery was processed: a provider's retry after a 5xx is
processed, not taken for a duplicate.

A push names its repository by several URLs (HTTPS, SSH, web) and its branch by ref. Every
registered repository whose URL matches one of them — compared normalised: no scheme, no
userinfo, no ``.git``, no default port, lower case — and whose branch was pushed is checked by
the controller at once: the push is noted in the store (:mod:`slipway.pushes`), where the
controller replica that owns the repository sees it within a second or two whichever process it
runs in (the shipped layout: servers with ``--no-controller`` beside sharded controllers), and a
controller in this process is told directly (:meth:`Controller.check_now`). The controller then
syncs as it would after a poll, so a webhook can only hurry what Git already says, never apply
anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
from collections import OrderedDict
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from .context import ApiError, BodyTooLarge, Ctx

log = logging.getLogger("slipway.server")

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])

_DEFAULT_PORTS = {"http": 80, "https": 443, "ssh": 22, "git": 9418}
_SCP = re.compile(r"^(?:[^@/]+@)?([^/:]+):(?!//)(.+)$")


class Provider(StrEnum):
    github = "github"
    gitlab = "gitlab"
    gitea = "gitea"
    bitbucket = "bitbucket"


def normalize_url(url: str) -> str:
    """``https://User@Git.Example.com:443/Team/App.git/`` -> ``git.example.com/team/app``."""
    url = url.strip()
    m = _SCP.match(url) if "://" not in url else None
    if m is not None:  # scp-like: git@host:owner/name.git
        host, port, path = m.group(1), None, m.group(2)
    else:
        p = urlsplit(url)
        try:
            port = p.port
        except ValueError:
            port = None
        host, path = p.hostname or "", p.path
        if port == _DEFAULT_PORTS.get(p.scheme.lower()):
            port = None
    path = path.strip("/")
    if path.lower().endswith(".git"):
        path = path[:-4]
    return f"{host}{f':{port}' if port else ''}/{path.strip('/')}".lower()


class Replays:
    """Delivery ids seen, the newest 10,000."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, key: str) -> bool:
        with self._lock:
            return key in self._seen

    def remember(self, key: str) -> None:
        """Called once a delivery was processed: one that failed (5xx) is processed when sent again."""
        with self._lock:
            self._seen[key] = None
            self._seen.move_to_end(key)
            while len(self._seen) > self.capacity:
                self._seen.popitem(last=False)


def _hmac_hex(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(provider: Provider, secret: bytes, headers: Any, body: bytes) -> bool:
    if provider is Provider.gitlab:
        given = headers.get("x-gitlab-token") or ""
        return hmac.compare_digest(given.encode(), secret)
    if provider is Provider.gitea:
        given = (headers.get("x-gitea-signature") or "").strip().lower()
    else:
        header = "x-hub-signature-256" if provider is Provider.github else "x-hub-signature"
        value = (headers.get(header) or "").strip()
        if not value.lower().startswith("sha256="):
            return False
        given = value[len("sha256=") :].lower()
    return bool(given) and hmac.compare_digest(given.encode(), _hmac_hex(secret, body).encode())


def delivery_id(provider: Provider, headers: Any) -> str | None:
    names = {
        Provider.github: ("x-github-delivery",),
        Provider.gitlab: ("x-gitlab-event-uuid", "idempotency-key", "x-gitlab-webhook-uuid"),
        Provider.gitea: ("x-gitea-delivery",),
        Provider.bitbucket: ("x-request-uuid", "x-request-id"),
    }[provider]
    return next((headers[n] for n in names if headers.get(n)), None)


def event_kind(provider: Provider, headers: Any) -> str:
    """``push``, ``ping`` or something else (answered, and ignored)."""
    raw = {
        Provider.github: headers.get("x-github-event"),
        Provider.gitlab: headers.get("x-gitlab-event"),
        Provider.gitea: headers.get("x-gitea-event"),
        Provider.bitbucket: headers.get("x-event-key"),
    }[provider] or ""
    raw = raw.strip().lower()
    if raw in ("push", "push hook", "repo:refs_changed", "repo:push"):
        return "push"
    if raw in ("ping", "diagnostics:ping"):
        return "ping"
    return raw or "unknown"


def _strings(*values: Any) -> list[str]:
    return [v for v in values if isinstance(v, str) and v]


def _branch(ref: Any) -> str | None:
    return ref[len("refs/heads/") :] if isinstance(ref, str) and ref.startswith("refs/heads/") else None


def push_of(provider: Provider, payload: Any) -> tuple[list[str], set[str]]:
    """The repository's URLs and the branches pushed, from a push event's payload."""
    if not isinstance(payload, dict):
        raise ApiError(400, "the payload is not a JSON object")
    get = lambda d, k: d.get(k) if isinstance(d, dict) else None  # noqa: E731
    repo = get(payload, "repository") or {}
    urls: list[str] = []
    branches: set[str] = set()
    if provider in (Provider.github, Provider.gitea):
        urls = _strings(*(get(repo, k) for k in ("clone_url", "ssh_url", "git_url", "html_url", "url", "svn_url")))
        branches = {b for b in [_branch(get(payload, "ref"))] if b}
    elif provider is Provider.gitlab:
        project = get(payload, "project") or {}
        keys = ("git_http_url", "git_ssh_url", "http_url", "ssh_url", "web_url", "url", "homepage")
        urls = _strings(*(get(project, k) for k in keys), *(get(repo, k) for k in keys))
        branches = {b for b in [_branch(get(payload, "ref"))] if b}
    else:  # Bitbucket Server (refs_changed) and Bitbucket Cloud (repo:push)
        links = get(repo, "links") or {}
        for link in (get(links, "clone") or []) + (get(links, "self") or []):
            urls += _strings(get(link, "href"))
        urls += _strings(get(get(links, "html"), "href"))
        for change in get(payload, "changes") or []:
            ref = get(change, "ref") or {}
            if get(ref, "type") in (None, "BRANCH"):
                branches |= {b for b in [_branch(get(ref, "id"))] if b}
        for change in get(get(payload, "push"), "changes") or []:
            new = get(change, "new") or {}
            if get(new, "type") == "branch" and isinstance(get(new, "name"), str):
                branches.add(new["name"])
    if not urls:
        raise ApiError(400, "the payload names no repository URL")
    return urls, branches


@router.post("/{provider}", summary="A push from GitHub, GitLab, Gitea or Bitbucket: check its repositories now")
async def receive(provider: Provider, request: Request, ctx: Ctx) -> JSONResponse:
    metrics = ctx.metrics
    seen_key: str | None = None  # the delivery's id, remembered once the delivery was processed

    def answer(status: int, outcome: str, body: dict[str, Any]) -> JSONResponse:
        metrics.webhooks.labels(provider.value, outcome).inc()
        if seen_key is not None and status < 500:
            ctx.webhooks_seen.remember(seen_key)
        if status >= 400:
            body = {"error": body.pop("error", outcome), "status": status, **body}
        return JSONResponse(body, status_code=status)

    if ctx.webhook_secret is None:
        return answer(404, "disabled", {"error": "webhooks are off: start the server with SLIPWAY_WEBHOOK_SECRET "
                                                 "or --webhook-secret-file"})  # fmt: skip
    try:
        body = await request.body()
    except BodyTooLarge as e:
        return answer(413, "too_large", {"error": e.message})
    if not verify(provider, ctx.webhook_secret, request.headers, body):
        log.warning(
            "webhook %s: bad or missing signature from %s",
            provider.value,
            request.client.host if request.client else "?",
        )
        return answer(401, "bad_signature", {"error": "bad or missing signature"})
    delivery = delivery_id(provider, request.headers)
    if delivery and ctx.webhooks_seen.seen(f"{provider.value}:{delivery}"):
        return answer(200, "duplicate", {"status": "duplicate", "delivery": delivery})
    seen_key = f"{provider.value}:{delivery}" if delivery else None
    kind = event_kind(provider, request.headers)
    if kind == "ping":
        return answer(200, "ping", {"status": "pong"})
    if kind != "push":
        return answer(202, "ignored", {"status": "ignored", "reason": f"not a push event ({kind})"})
    try:
        payload = json.loads(body)
    except ValueError:
        return answer(400, "bad_request", {"error": "the body is not JSON"})
    try:
        urls, branches = push_of(provider, payload)
    except ApiError as e:
        return answer(400, "bad_request", {"error": e.message})
    wanted = {normalize_url(u) for u in urls}
    repositories = await run_in_threadpool(ctx.engine.repositories)
    matched = [r.id for r in repositories if normalize_url(r.url) in wanted and r.branch in branches]
    if not matched:
        return answer(202, "ignored", {"status": "ignored", "reason": "no registered repository follows the pushed "
                                       "branch of this repository", "branches": sorted(branches)})  # fmt: skip
    # Noted in the store for whichever controller replica owns them (another process, or another
    # shard); the controller in this process, if any, looks at once without waiting for the note.
    await run_in_threadpool(ctx.engine.replicas.note_push, matched)
    if ctx.controller is not None and ctx.controller.shards is None:
        checking = ctx.controller.check_now(matched)
    else:
        if ctx.controller is not None:
            ctx.controller.check_now(matched)
        workflows = await run_in_threadpool(ctx.engine.workflows)
        checking = sorted({wf.repository for wf in workflows if wf.auto_sync} & set(matched))
    log.info("webhook %s: push to %s; checking %s", provider.value, ", ".join(sorted(branches)), ", ".join(matched))
    return answer(202, "accepted", {"status": "accepted", "repositories": matched, "checking": checking})


__all__ = ["Provider", "Replays", "normalize_url", "push_of", "router", "verify"]
