"""``GET /api/v1/sources``: each repository's branch head, last fetch and last error.

What the server saw of each Git server since it started, from the engine's events: the
controller's checks of a branch (``check``, ``repository``) and the fetch stage of every sync in
this process. A repository whose branch head is unknown or older than ``FRESH`` seconds (with
``?refresh=true``: every repository) is asked again (``git ls-remote``, never a fetch) when the route is read, at most once at a time and for
at most ``WAIT`` seconds: an unreachable server answers later (``checking`` says one is still being
asked), it never holds the page up. Before
this server has fetched a repository, its last fetch is taken from the history (the newest sync
of a workflow that reads it).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query

from ..durations import rfc3339
from ..errors import SlipwayError, describe
from .auth import Viewer
from .context import Ctx

if TYPE_CHECKING:
    from ..engine import Engine
    from ..model import Repository

log = logging.getLogger("slipway.server")

router = APIRouter(prefix="/api/v1", tags=["repositories"])

FRESH = 30.0  # seconds a branch head counts as current
WAIT = 8.0  # seconds the route waits for Git servers it asks


@dataclass
class _Seen:
    head: tuple[str, float] | None = None  # revision, when
    fetch: tuple[float, str | None, str] | None = None  # when, revision, how (fetch | check)
    error: tuple[float, str, str] | None = None  # when, operation, message
    asking: Future[None] | None = None


class Sources:
    """Per repository: the latest head, fetch and error this server saw."""

    def __init__(self, engine: Engine, workers: int = 8) -> None:
        self.engine = engine
        self._seen: dict[str, _Seen] = {}
        self._syncs: dict[str, tuple[str, float]] = {}  # sync id -> its stage and when it began
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="slipway-sources")

    def _entry(self, repo_id: str) -> _Seen:
        return self._seen.setdefault(repo_id, _Seen())

    def listen(self, event: str, data: dict[str, Any]) -> None:
        now = time.time()
        repo_id = data.get("repository")
        if event == "check" and isinstance(repo_id, str):
            with self._lock:
                entry = self._entry(repo_id)
                if data.get("ok"):
                    entry.fetch = (now, entry.head[0] if entry.head else None, "check")
                else:
                    entry.error = (now, "check", str(data.get("error") or "the Git server did not answer"))
        elif event == "repository" and isinstance(repo_id, str) and data.get("revision"):
            with self._lock:
                entry = self._entry(repo_id)
                entry.head = (str(data["revision"]), now)
                entry.fetch = (now, str(data["revision"]), "check")
        elif data.get("kind") == "sync" and data.get("sync_id"):
            self._sync_event(event, str(data["sync_id"]), data, now)

    def _sync_event(self, event: str, sync_id: str, data: dict[str, Any], now: float) -> None:
        with self._lock:
            if event == "stage":
                previous = self._syncs.get(sync_id)
                self._syncs[sync_id] = (str(data.get("name")), previous[1] if previous else now)
                while len(self._syncs) > 10_000:
                    self._syncs.pop(next(iter(self._syncs)))
                return
            if event != "finished":
                return
            stage = self._syncs.pop(sync_id, None)
        if stage is None:
            return
        try:
            repo_id = self.engine.workflow(str(data.get("workflow"))).repository
        except SlipwayError:
            return  # removed meanwhile
        with self._lock:
            entry = self._entry(repo_id)
            if stage[0] == "fetch" and data.get("status") != "succeeded":
                entry.error = (now, "fetch", str(data.get("message") or "the fetch failed"))
            elif data.get("revision"):
                entry.fetch = (now, str(data["revision"]), "fetch")

    def _ask(self, repo: Repository) -> None:
        asked = time.time()
        try:
            head = self.engine.remote_head(repo)
        except SlipwayError as e:
            with self._lock:
                self._entry(repo.id).error = (time.time(), "check", describe(e))
            return
        except Exception as e:
            log.warning("sources: checking %s failed: %s", repo.id, describe(e))
            return
        with self._lock:
            entry = self._entry(repo.id)
            if entry.head is None or entry.head[1] <= asked:  # a later answer is never overwritten by an earlier
                entry.head = (head, asked)
            entry.fetch = (time.time(), head, "check")

    def table(self, refresh: bool = False) -> list[dict[str, Any]]:
        repos = [r for r in self.engine.repositories() if r.type == "git"]
        pending: list[Future[None]] = []
        now = time.time()
        with self._lock:
            for repo in repos:
                entry = self._entry(repo.id)
                stale = entry.head is None or now - entry.head[1] > FRESH
                if refresh or (stale and (entry.asking is None or entry.asking.done())):
                    entry.asking = self._pool.submit(self._ask, repo)
                if entry.asking is not None and not entry.asking.done():
                    pending.append(entry.asking)
        if pending:
            wait(pending, timeout=WAIT)
        history = self._from_history(repos)
        out = []
        with self._lock:
            for repo in repos:
                entry = self._entry(repo.id)
                fetch = entry.fetch or history.get(repo.id)
                out.append({
                    "repository": repo.id,
                    "branch": repo.branch,
                    "checking": entry.asking is not None and not entry.asking.done(),
                    "head": {"revision": entry.head[0], "checked_at": rfc3339(entry.head[1])} if entry.head else None,
                    "last_fetch": {"at": rfc3339(fetch[0]), "revision": fetch[1], "how": fetch[2]} if fetch else None,
                    "last_error": (
                        {"at": rfc3339(entry.error[0]), "operation": entry.error[1], "message": entry.error[2]}
                        if entry.error and (fetch is None or entry.error[0] >= fetch[0]) else None
                    ),
                })  # fmt: skip
        return out

    def _from_history(self, repos: list[Repository]) -> dict[str, tuple[float, str | None, str]]:
        """The newest sync of each repository's workflows, for repositories this server has not fetched."""
        with self._lock:
            unknown = {r.id for r in repos if self._entry(r.id).fetch is None}
        found: dict[str, tuple[float, str | None, str]] = {}
        if not unknown:
            return found
        for wf in self.engine.workflows():
            if wf.repository not in unknown:
                continue
            for record in self.engine.history(wf.id, 5):
                if record.kind == "sync" and record.commit_hash:
                    at = _seconds(record.start_time)
                    if at is not None and (wf.repository not in found or at > found[wf.repository][0]):
                        found[wf.repository] = (at, record.commit_hash, "fetch")
                    break
        return found

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _seconds(stamp: str) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@router.get("/sources", summary="Each Git repository's branch head, last fetch and last error")
def sources(
    ctx: Ctx,
    who: Viewer,
    refresh: Annotated[bool, Query(description="Ask each Git server now, however recent the last answer")] = False,
) -> list[dict[str, Any]]:
    del who
    return ctx.sources.table(refresh) if ctx.sources is not None else []


__all__ = ["FRESH", "Sources", "router"]
