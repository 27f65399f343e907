"""The auto-sync controller: sync every auto_sync workflow when its branch moves.

One loop, in a thread of its own or in the foreground (``slipway controller``). Each tick it
re-reads the workflows from the state store (so workflows registered by other processes are
picked up without a restart) and, for every repository whose poll interval (with jitter) has
passed, asks Git once whether the branch moved — one cheap remote check per repository however
many workflows use it. A workflow is synced when the head differs from what it last applied and
is not the revision it was rolled back from; nothing is applied while nothing changes. Syncs run
in a bounded pool, at most one per workflow; a failing repository or workflow backs off alone.
Workflows with ``self_heal`` are also re-planned at their own interval and synced when live
drift is found. A push webhook asks for a look at once (:meth:`Controller.check_now`, or a push
mark any process noted in the store: :mod:`slipway.pushes`), so a commit need not wait for the poll. Stopping cancels in-flight syncs at their next safe point; they are recorded as
failed (cancelled), never left running.

With ``shards`` (the kubernetes store), several replicas share the workflows: each works only on
the shards it holds a Lease for (:mod:`slipway.shards`, reached through the engine), looks again
at what it gains, and cancels the syncs of a shard it hands over or loses.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .durations import parse_duration
from .errors import Cancelled, HeldBack, SlipwayError, SourceError, SyncInProgress, describe
from .model import Repository, Workflow

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("slipway.controller")

MAX_BACKOFF = 600.0


class Elector(Protocol):
    """What the controller needs of a shard elector (:class:`slipway.shards.ShardElector`)."""

    identity: str

    def start(self, busy: Callable[[int], bool] | None = None) -> None: ...
    def stop(self, release: bool = True) -> None: ...
    def owns(self, workflow_id: str) -> bool: ...
    def held(self) -> list[int]: ...
    def shard_of(self, workflow_id: str) -> int: ...


@dataclass
class _RepoState:
    next_check: float = 0.0
    failures: int = 0
    head: str | None = None
    heads: dict[str, str] = field(default_factory=dict)  # a chart repository: each workflow's chart revision
    checking: bool = False
    version: int = 0  # bumped when the head moves or the repository recovers: news to its workflows
    recheck: bool = False  # check_now() asked: look at the next tick (again, if a check is running)
    settled: tuple[object, ...] | None = None  # (version, which workflows are ours) when all of them were settled


@dataclass
class _WorkflowState:
    source_degraded: bool = False  # this controller marked it degraded for a source error
    failed_revision: str | None = None
    failures: int = 0
    not_before: float = 0.0
    next_heal: float = 0.0
    considered: tuple[str, Any] | None = (
        None  # (repository, versions of its repositories) last looked at, with nothing left to do
    )


@dataclass
class Stats:
    checks: int = 0
    syncs: int = 0
    failures: int = 0
    # The latest outcomes only: a controller runs for months.
    outcomes: deque[str] = field(default_factory=lambda: deque(maxlen=1000))


class Controller:
    def __init__(
        self,
        engine: Engine,
        *,
        concurrency: int = 16,
        tick: float = 0.5,
        jitter: float = 0.1,
        reload_every: float = 2.0,
        shards: int | None = None,
        identity: str | None = None,
    ) -> None:
        self.engine = engine
        self.shards = shards  # None: this process syncs every workflow (no election)
        self.identity = identity
        self.elector: Elector | None = None
        self._owned: tuple[int, ...] | None = None
        self._cancels: dict[str, threading.Event] = {}
        self.concurrency = max(1, concurrency)
        self.tick = tick
        self.jitter = jitter
        self.reload_every = reload_every
        self.stop_event = threading.Event()
        self.cancel = threading.Event()
        self.stats = Stats()
        self._repos: dict[str, _RepoState] = {}
        self._wfs: dict[str, _WorkflowState] = {}
        self._inflight: dict[str, Future[None]] = {}
        self._checks: dict[str, Future[None]] = {}
        self._asap: set[str] = set()  # repositories check_now() asked for
        self._pushes = engine.replicas.push_marks()  # ... or a webhook on another process
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._workflows: list[Workflow] = []
        self._repositories: dict[str, Repository] = {}
        self._loaded = -1e9
        self._config_version: tuple[object, ...] | None = None
        self._ours_key: tuple[object, ...] | None = None
        self._ours: dict[str, list[Workflow]] = {}  # our workflows, by repository
        self._healing: list[Workflow] = []  # ours with self-heal on

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self.stop_event.clear()
        self.cancel.clear()
        self._thread = threading.Thread(target=self.run, name="slipway-controller", daemon=True)
        self._thread.start()
        self.engine.refresher(self._mine, self.cancel).start()  # every workflow's sync status and health

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the loop and cancel in-flight syncs; returns when they have recorded themselves."""
        self.stop_event.set()
        self._cancel_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _cancel_all(self) -> None:
        self.cancel.set()
        with self._lock:
            for event in self._cancels.values():
                event.set()

    def _mine(self, workflow_id: str) -> bool:
        return self.elector is None or self.elector.owns(workflow_id)

    def _shard_busy(self, shard: int) -> bool:
        """Whether syncs of ``shard`` still run here (the elector waits for them before handing it over)."""
        elector = self.elector
        with self._lock:
            return elector is not None and any(elector.shard_of(w) == shard for w in self._inflight)

    def run(self) -> None:
        """The loop, until :meth:`stop` (or a signal handler) sets ``stop_event``."""
        log.info("auto-sync controller started (concurrency %d)", self.concurrency)
        if self.shards is not None and self.elector is None:
            self.elector = self.engine.shard_elector(self.shards, self.identity)
            self.elector.start(busy=self._shard_busy)
            log.info(
                "replica %s: %d shard(s), sharing them with the other replicas", self.elector.identity, self.shards
            )
        sync_pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="slipway-sync")
        check_pool = ThreadPoolExecutor(max_workers=max(2, self.concurrency), thread_name_prefix="slipway-check")
        try:
            while not self.stop_event.is_set():
                try:
                    self._tick(sync_pool, check_pool)
                except SlipwayError as e:
                    log.error("controller: %s", describe(e))
                except Exception:
                    log.exception("controller: unexpected error")
                self.stop_event.wait(self.tick)
        finally:
            self._cancel_all()
            check_pool.shutdown(wait=True, cancel_futures=True)
            sync_pool.shutdown(wait=True, cancel_futures=True)
            if self.elector is not None:
                # Only now, with every sync recorded and its claim released: the next holder starts clean.
                self.elector.stop(release=True)
                self.elector = None
            log.info("auto-sync controller stopped")

    # -- one tick --------------------------------------------------------------------------------------

    def _reload(self) -> None:
        now = time.monotonic()
        if now - self._loaded < self.reload_every:
            return
        self._loaded = now
        version = self.engine.config_version()
        if version == self._config_version:
            return  # nobody added, changed or removed a workflow or repository
        self._config_version = version
        self._workflows = [wf for wf in self.engine.workflows() if wf.auto_sync]
        wanted = {rid for wf in self._workflows for rid in (wf.repository, *wf.values_repositories())}
        self._repositories = {r.id: r for r in self.engine.repositories() if r.id in wanted}
        # Forget what was removed, so months of churn do not grow the controller.
        ids = {wf.id for wf in self._workflows}
        self._wfs = {k: v for k, v in self._wfs.items() if k in ids}
        self._repos = {k: v for k, v in self._repos.items() if k in wanted or v.checking}

    def _reshard(self) -> None:
        """The shards held changed: look again at the workflows of the shards gained (they may need a
        sync, and their repositories a fresh check), and cancel the syncs of what we no longer hold."""
        elector = self.elector
        if elector is None:
            return
        owned = tuple(elector.held())
        if owned == self._owned:
            return
        gained = set(owned) - set(self._owned or ())
        self._owned = owned
        log.info("replica %s works on shards %s", elector.identity, list(owned))
        fresh = [wf for wf in self._workflows if elector.shard_of(wf.id) in gained]
        for wf in fresh:
            self._wfs.setdefault(wf.id, _WorkflowState()).considered = None
        for repo_id in {wf.repository for wf in fresh}:
            if repo_id in self._repos:
                self._repos[repo_id].next_check = 0.0
        with self._lock:
            for workflow_id, event in self._cancels.items():
                if not self._mine(workflow_id):
                    event.set()

    def _sort_ours(self) -> tuple[object, ...]:
        """Our workflows by repository, worked out again only when the workflows or our shards change:
        an idle tick walks repositories, not workflows."""
        key = (id(self._workflows), self._config_version, self._owned)
        if key != self._ours_key:
            self._ours_key = key
            self._ours = {}
            for wf in self._workflows:
                if self._mine(wf.id):
                    # A repository its values come from is followed too: a commit there is a change of it.
                    for rid in (wf.repository, *wf.values_repositories()):
                        self._ours.setdefault(rid, []).append(wf)
            self._healing = [wf for wfs in self._ours.values() for wf in wfs if wf.sync_policy.self_heal]
        return key

    def _tick(self, sync_pool: ThreadPoolExecutor, check_pool: ThreadPoolExecutor) -> None:
        self._reload()
        self._reshard()
        ours = self._sort_ours()
        now = time.monotonic()
        wanted = self._ours
        with self._lock:
            asap, self._asap = self._asap, set()
        asap.update(self._pushes.moved())
        for repo in self._repositories.values():
            if repo.id not in wanted:
                continue  # no workflow of it is ours: another replica checks it
            state = self._repos.setdefault(repo.id, _RepoState())
            state.recheck = state.recheck or repo.id in asap
            # A check already running may have read the branch before the push: look again after it.
            if state.checking or (now < state.next_check and not state.recheck):
                continue
            state.checking, state.recheck = True, False
            self._checks[repo.id] = check_pool.submit(self._check, repo, state)
        for wf in self._healing:
            ws = self._wfs.setdefault(wf.id, _WorkflowState())
            if now >= ws.next_heal and wf.id not in self._inflight:
                ws.next_heal = now + parse_duration(wf.sync_policy.self_heal_interval)
                self._submit(sync_pool, wf, None, heal=True)
        news: list[tuple[Workflow, str, int, _WorkflowState]] = []
        looked: list[tuple[str, _RepoState, tuple[object, ...]]] = []
        for repo_id, wfs in self._ours.items():
            repo_state = self._repos.get(repo_id)
            if repo_state is None or repo_state.head is None:
                continue
            mark: tuple[object, ...] = (repo_state.version, ours)
            if repo_state.settled == mark:
                continue  # no news since all its workflows were settled: nothing to do (idle stays idle)
            looked.append((repo_id, repo_state, mark))
            for wf in wfs:
                ws = self._wfs.setdefault(wf.id, _WorkflowState())
                found = self._head_of(wf)
                if found is not None and ws.considered != (wf.repository, found[1]) and wf not in [n[0] for n in news]:
                    news.append((wf, found[0], found[1], ws))
        states = self._prefetch([n[0].id for n in news if n[0].id not in self._inflight], check_pool)
        unsettled: set[str] = set()
        for wf, head, version, ws in news:
            if self._consider(sync_pool, wf, head, states.get(wf.id)):
                ws.considered = (wf.repository, version)
            else:
                unsettled.update((wf.repository, *wf.values_repositories()))
        for repo_id, repo_state, mark in looked:
            if repo_id not in unsettled and mark[0] == repo_state.version:
                repo_state.settled = mark  # every workflow of it settled at this version

    def _head_of(self, wf: Workflow) -> tuple[str, Any] | None:
        repo = self._repositories.get(wf.repository)
        return self.engine.followed_head(wf, repo is not None and repo.type == "helm", self._repos)

    def _prefetch(self, workflow_ids: list[str], pool: ThreadPoolExecutor) -> dict[str, dict[str, Any]]:
        """Run states of many workflows at once (many look at once after a start or a hand-over of
        shards), read in parallel rather than one after another in the loop; a few are read as needed."""
        if len(workflow_ids) < 8:
            return {}

        def one(workflow_id: str) -> dict[str, Any] | None:
            try:
                return self.engine.run_state(workflow_id)
            except SlipwayError:
                return None  # removed meanwhile: _consider finds out itself

        states = dict(zip(workflow_ids, pool.map(one, workflow_ids), strict=True))
        return {k: v for k, v in states.items() if v is not None}

    def _check(self, repo: Repository, state: _RepoState) -> None:
        interval = parse_duration(repo.poll_interval)
        started = time.monotonic()
        try:
            if repo.type == "helm":  # each workflow's chart in range is its "branch head"
                ours = [wf for wf in self._workflows if wf.repository == repo.id and self._mine(wf.id)]
                state.heads = self.engine.chart_heads(repo, ours)
                head = json.dumps(state.heads, sort_keys=True)
            else:
                head = self.engine.remote_head(repo)
        except SlipwayError as e:
            self.engine.events.publish(
                "check",
                {"repository": repo.id, "seconds": time.monotonic() - started, "ok": False, "error": describe(e)},
            )
            state.failures += 1
            delay = min(MAX_BACKOFF, interval * 2 ** min(state.failures, 10))
            message = f"source error: {describe(e)} (next check in {delay:.0f}s)"
            log.warning("repository %s: %s", repo.id, message)
            for wf in self._workflows:
                if wf.repository == repo.id and self._mine(wf.id):
                    self._degrade(wf, message)
            state.next_check = time.monotonic() + delay
        else:
            self.engine.events.publish(
                "check", {"repository": repo.id, "seconds": time.monotonic() - started, "ok": True}
            )
            if state.failures:
                log.info("repository %s is reachable again", repo.id)
            first = state.head is None
            if state.failures or head != state.head:
                state.version += 1
                if head != state.head:
                    self.engine.events.publish("repository", {"repository": repo.id, "revision": head})
            state.failures = 0
            state.head = head
            # Every repository is first checked at start-up; a random phase for the second check
            # spreads the checks (and the Git servers' load) evenly over the interval from then on,
            # where jitter alone would take many cycles to break up the burst.
            # Jitter only shortens the wait: a commit is seen within one poll interval, never later.
            factor = random.uniform(0.1, 1.0) if first else 1 - random.uniform(0, self.jitter)
            state.next_check = time.monotonic() + interval * factor
        finally:
            self.stats.checks += 1
            state.checking = False

    def check_now(self, repo_ids: list[str]) -> list[str]:
        """Look at these repositories' branches at the next tick, whatever their poll interval (a push
        webhook says they moved); returns those this controller follows (they have auto-sync workflows,
        in this replica's shards when there are several)."""
        with self._lock:
            self._asap.update(repo_ids)
        self._loaded = -1e9  # a repository registered a moment ago is followed from the next tick
        followed = {
            r for wf in self._workflows if self._mine(wf.id) for r in (wf.repository, *wf.values_repositories())
        }
        return [r for r in repo_ids if r in self._repositories and r in followed]

    @property
    def queue_depth(self) -> int:
        """Syncs submitted and not finished (queued for a worker, or running)."""
        with self._lock:
            return len(self._inflight)

    def _degrade(self, wf: Workflow, message: str, source: bool = True) -> None:
        self._wfs.setdefault(wf.id, _WorkflowState()).source_degraded = source
        try:
            current = self.engine.run_state(wf.id)
            if current["status"] != "syncing":
                self.engine.set_status(wf.id, "degraded", message)
                if current["status"] != "degraded":
                    self.engine.events.publish("status", {"workflow": wf.id, "status": "degraded", "message": message})
        except SlipwayError:
            pass  # removed meanwhile

    def _consider(self, pool: ThreadPoolExecutor, wf: Workflow, head: str, state: dict[str, Any] | None = None) -> bool:
        """Sync ``wf`` to ``head`` if it needs it. True when settled for this head: look again only
        when the repository has news; False when something transient (a sync in flight, a backoff)
        means another look soon."""
        if wf.id in self._inflight:
            return False
        try:
            state = state or self.engine.run_state(wf.id)
        except SlipwayError:
            return True  # removed meanwhile
        if state["sync_owner"] is not None:
            return False  # someone (a manual sync) is at it
        if head == state["applied_revision"] and state["status"] != "degraded":
            return True
        if head == state["hold_revision"]:
            return True  # rolled back from this revision: wait for a new commit
        ws = self._wfs.setdefault(wf.id, _WorkflowState())
        if ws.failed_revision == head and time.monotonic() < ws.not_before:
            return False
        if head == state["applied_revision"] and state["status"] == "degraded" and ws.source_degraded:
            # The source recovered and nothing new arrived: just say so.
            ws.source_degraded = False
            self.engine.set_status(wf.id, "synced", "source reachable again")
            self.engine.events.publish(
                "status", {"workflow": wf.id, "status": "synced", "message": "source reachable again"}
            )
            return True
        if head == state["applied_revision"]:
            return True  # degraded for another reason (a failed rollback): a new commit or a person fixes that
        self._submit(pool, wf, head)
        return False  # the sync's outcome decides what comes next

    def _submit(self, pool: ThreadPoolExecutor, wf: Workflow, head: str | None, heal: bool = False) -> None:
        with self._lock:
            if wf.id in self._inflight:
                return
            # Its own cancel: stopping cancels every sync, losing a shard only that shard's.
            cancel = self._cancels[wf.id] = threading.Event()
            if self.cancel.is_set():
                cancel.set()
            future = pool.submit(self._sync, wf, head, heal, cancel)
            self._inflight[wf.id] = future
        future.add_done_callback(lambda _: self._done(wf.id))

    def _done(self, workflow_id: str) -> None:
        with self._lock:
            self._inflight.pop(workflow_id, None)
            self._cancels.pop(workflow_id, None)

    def _sync(self, wf: Workflow, head: str | None, heal: bool, cancel: threading.Event | None = None) -> None:
        cancel = cancel or self.cancel
        if self.stop_event.is_set() or cancel.is_set() or not self._mine(wf.id):
            return
        ws = self._wfs.setdefault(wf.id, _WorkflowState())
        try:
            if heal:
                # Heal towards what is live (after a rollback: the revision it restored), never the head.
                live = self.engine.run_state(wf.id)["applied_revision"]
                if not live:
                    return
                plan = self.engine.plan(wf.id, revision=live, cancel=cancel)
                # A deleted object is a create, not a drifted field: it is restored too.
                if not any(c.drifted or c.type == "create" for c in plan.changes):
                    return
                log.info("workflow %s: live drift found; self-healing", wf.id)
            result = self.engine.sync(wf.id, trigger="self-heal" if heal else "auto", revision=head, cancel=cancel)
        except (SyncInProgress, Cancelled):
            return
        except HeldBack as e:
            log.info("%s", describe(e))
            return
        except SlipwayError as e:
            log.warning("workflow %s: %s: %s", wf.id, "self-heal" if heal else "auto-sync", describe(e))
            self._degrade(wf, describe(e), source=isinstance(e, SourceError))
            return
        except Exception as e:  # a bug must not vanish in the pool's future: say which workflow it hit
            log.exception("workflow %s: %s: unexpected error", wf.id, "self-heal" if heal else "auto-sync")
            self._degrade(wf, f"internal error: {describe(e)}", source=False)
            return
        self.stats.syncs += 1
        rev = (result.commit_hash or "")[:12]
        line = f"auto-sync {wf.id} at {rev}: {result.status} in {result.metrics.duration}: {result.message}"
        self.stats.outcomes.append(line)
        if result.status == "succeeded":
            ws.failed_revision, ws.failures = None, 0
            log.info("%s", line)
        else:
            self.stats.failures += 1
            ws.failures += 1
            ws.failed_revision = result.commit_hash
            interval = parse_duration(self._repositories.get(wf.repository, Repository("", "")).poll_interval)
            ws.not_before = time.monotonic() + min(MAX_BACKOFF, interval * 2 ** min(ws.failures, 10))
            log.warning("%s", line)


_default: Controller | None = None
_default_lock = threading.Lock()


def start_default(engine: Engine) -> Controller:
    """The in-process controller of ``gitops.start_auto_sync()``; a second call is harmless."""
    global _default
    with _default_lock:
        if _default is None or not _default.running or _default.engine is not engine:
            if _default is not None:
                _default.stop()
            _default = Controller(engine)
            _default.start()
        return _default


def stop_default(timeout: float | None = None) -> None:
    global _default
    with _default_lock:
        if _default is not None:
            _default.stop(timeout)
            _default = None


def default() -> Controller | None:
    return _default
