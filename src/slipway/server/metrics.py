"""``/metrics``: Prometheus text format, every name prefixed ``slipway_``, in a registry of its own.

Two sources. What happens is counted as the engine's events arrive (syncs and their duration,
Git checks and fetches and their errors) and as the server answers (API requests by route
template, webhook deliveries by outcome). What *is* — each workflow's status and health, the
objects it owns, the controller's queue — is read from the engine when Prometheus scrapes, so it
is right after a restart too. Label values are bounded: workflows and repositories (what the
store holds), route templates (never raw paths), and fixed outcome words.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ..controller import Controller
    from ..engine import Engine

log = logging.getLogger("slipway.server")

WORKFLOW_STATUSES = ("active", "syncing", "synced", "failed", "degraded")
HEALTH_STATUSES = ("Healthy", "Progressing", "Degraded", "Unknown")
_DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
_GIT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_API_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def workflow_health(health: list[dict[str, Any]]) -> str:
    """One word for a workflow from its last sync's per-object health."""
    if not health:
        return "Unknown"
    states = {h.get("status") for h in health}
    if "Degraded" in states:
        return "Degraded"
    if states - {"Healthy"}:
        return "Progressing"
    return "Healthy"


class _State(Collector):
    """What is, read at scrape time."""

    def __init__(self, engine: Engine, controller: Controller | None) -> None:
        self.engine = engine
        self.controller = controller

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = GaugeMetricFamily(
            "slipway_workflow_status",
            "1 for the workflow's current status, 0 for the others",
            labels=["workflow", "status"],
        )
        health = GaugeMetricFamily(
            "slipway_workflow_health",
            "1 for the health of the workflow's objects at its last sync, 0 for the others",
            labels=["workflow", "health"],
        )
        objects = GaugeMetricFamily("slipway_workflow_objects", "Objects the workflow owns", labels=["workflow"])
        auto = GaugeMetricFamily("slipway_workflow_auto_sync", "1 when the workflow auto-syncs", labels=["workflow"])
        try:
            for wf in self.engine.workflows():
                try:
                    state = self.engine.run_state(wf.id)
                    # An action's record is no sync: the health is the last sync's or rollback's.
                    last = [r for r in self.engine.history(wf.id, 20) if r.kind != "action"][:1]
                    owned = self.engine.owned_count(wf.id)
                except Exception:
                    continue  # removed while we scraped
                for s in WORKFLOW_STATUSES:
                    status.add_metric([wf.id, s], 1.0 if state["status"] == s else 0.0)
                word = workflow_health(last[0].health) if last else "Unknown"
                for h in HEALTH_STATUSES:
                    health.add_metric([wf.id, h], 1.0 if word == h else 0.0)
                objects.add_metric([wf.id], float(owned))
                auto.add_metric([wf.id], 1.0 if wf.auto_sync else 0.0)
        except Exception:
            log.exception("metrics: cannot read the workflows")
        yield from (status, health, objects, auto)
        queue = GaugeMetricFamily(
            "slipway_controller_queue_depth", "Auto-syncs submitted and not finished (queued or running)"
        )
        queue.add_metric([], float(self.controller.queue_depth if self.controller is not None else 0))
        yield queue


class Metrics:
    def __init__(self, engine: Engine, controller: Controller | None) -> None:
        self.engine = engine
        disable_created_metrics()  # a *_created series per counter doubles the page and says nothing we need
        r = self.registry = CollectorRegistry()
        self.syncs = Counter("slipway_sync_total", "Syncs finished, by outcome", ["workflow", "status"], registry=r)
        self.rollbacks = Counter(
            "slipway_rollback_total", "Rollbacks finished, by outcome", ["workflow", "status"], registry=r
        )
        self.sync_seconds = Histogram(
            "slipway_sync_duration_seconds", "How long syncs take", ["workflow"], buckets=_DURATION_BUCKETS, registry=r
        )
        self.objects_applied = Counter(
            "slipway_objects_applied_total", "Objects created or updated by syncs", ["workflow"], registry=r
        )
        self.git_check_seconds = Histogram(
            "slipway_git_check_duration_seconds", "Asking Git where a branch points", buckets=_GIT_BUCKETS, registry=r
        )
        self.git_fetch_seconds = Histogram(
            "slipway_git_fetch_duration_seconds", "A sync's fetch stage", buckets=_GIT_BUCKETS, registry=r
        )
        self.git_errors = Counter(
            "slipway_git_errors_total", "Git checks and fetches that failed", ["operation", "repository"], registry=r
        )
        self.webhooks = Counter(
            "slipway_webhook_deliveries_total",
            "Push webhooks received, by outcome",
            ["provider", "outcome"],
            registry=r,
        )
        self.requests = Counter(
            "slipway_api_requests_total", "HTTP requests answered", ["method", "route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "slipway_api_request_duration_seconds", "HTTP request latency", ["route"], buckets=_API_BUCKETS, registry=r
        )
        self.events_dropped = Gauge(
            "slipway_events_dropped", "Events dropped for slow event-stream clients since start", registry=r
        )
        self.notifications = Counter(
            "slipway_notifications_total", "Notifications sent, by outcome", ["outcome"], registry=r
        )
        r.register(_State(engine, controller))
        self._lock = threading.Lock()
        # sync id -> (started at, stage, stage started at); bounded, in case a finished event is missed
        self._running: OrderedDict[str, tuple[float, str | None, float]] = OrderedDict()
        self._counted: OrderedDict[str, None] = OrderedDict()

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def listen(self, event: str, data: dict[str, Any]) -> None:
        now = time.monotonic()
        if event == "check":
            self.git_check_seconds.observe(float(data.get("seconds") or 0.0))
            if not data.get("ok"):
                self.git_errors.labels("check", str(data.get("repository"))).inc()
            return
        sync_id = data.get("sync_id")
        if not sync_id:
            return
        workflow = str(data.get("workflow"))
        with self._lock:
            if event == "started":
                self._running[sync_id] = (now, None, now)
                while len(self._running) > 10_000:
                    self._running.popitem(last=False)
            elif event == "stage" and sync_id in self._running:
                began, stage, stage_began = self._running[sync_id]
                if stage == "fetch":
                    self.git_fetch_seconds.observe(now - stage_began)
                self._running[sync_id] = (began, data.get("name"), now)
            elif event == "applied":
                self.objects_applied.labels(workflow).inc()
            elif event == "finished":
                self._finished(sync_id, workflow, data, now)

    def _finished(self, sync_id: str, workflow: str, data: dict[str, Any], now: float) -> None:
        running = self._running.pop(sync_id, None)
        if sync_id in self._counted:
            return  # a sync that rolled itself back reports its outcome twice
        self._counted[sync_id] = None
        while len(self._counted) > 10_000:
            self._counted.popitem(last=False)
        status = str(data.get("status"))
        if data.get("kind") == "rollback":
            self.rollbacks.labels(workflow, status).inc()
        elif data.get("kind") == "sync":
            self.syncs.labels(workflow, status).inc()
            if running is not None:
                self.sync_seconds.labels(workflow).observe(now - running[0])
        if running is not None and running[1] == "fetch" and status != "succeeded":
            try:
                repository = self.engine.workflow(workflow).repository
            except Exception:
                repository = "unknown"
            self.git_errors.labels("fetch", repository).inc()


__all__ = ["HEALTH_STATUSES", "WORKFLOW_STATUSES", "Metrics", "workflow_health"]
