"""Notifications: a JSON message POSTed to a workflow's ``notify.url`` when a sync ends as it asks.

What Argo CD Notifications and Flux's notification-controller give, for one webhook per
workflow: ``notify = {url = ..., events = {"failed", "refused", "degraded", "succeeded", "rolled_back"}}``.
Fed by the engine's events: ``finished`` says succeeded, failed, refused or rolled back; the workflow's
status after it (or the controller's ``status`` event) says degraded — once per fall, not on
every failed check. The message carries a Slack-compatible ``text`` and the facts as fields.

The engine's thread only queues the event (bounded; the oldest is never blocked on); a few
worker threads decide and deliver, each delivery retried with exponential backoff on a network
error, a 5xx or a 429 (never on another 4xx). A webhook URL is a credential more often than not:
every log line shows it masked (``Notify.display``), and errors are scrubbed of it.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from collections import OrderedDict
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ..durations import rfc3339
from ..errors import SlipwayError

if TYPE_CHECKING:
    from ..engine import Engine
    from ..model import Workflow
    from .metrics import Metrics

log = logging.getLogger("slipway.notify")

_VERB = {
    "succeeded": "succeeded",
    "failed": "failed",
    "refused": "was refused (nothing applied)",
    "rolled_back": "was rolled back",
    "degraded": "is degraded",
}


class Notifier:
    def __init__(
        self,
        engine: Engine,
        *,
        metrics: Metrics | None = None,
        workers: int = 2,
        attempts: int = 5,
        backoff: float = 0.5,
        timeout: float = 10.0,
        capacity: int = 1000,
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.workers = workers
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(capacity)
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._sent: OrderedDict[tuple[str, str], None] = OrderedDict()  # (sync or workflow, event) done
        self._status: OrderedDict[str, str] = OrderedDict()  # workflow -> status we last saw
        self._unsubscribe: Any = None

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> Notifier:
        self._unsubscribe = self.engine.events.subscribe(self.listen)
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"slipway-notify-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Deliver what is queued for up to ``timeout`` seconds, then stop (retries are cut short)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        for _ in self._threads:
            try:
                self.queue.put(None, timeout=timeout)
            except queue.Full:
                break
        for t in self._threads:
            t.join(timeout)
        self.stop_event.set()
        for t in self._threads:
            t.join(1.0)

    # -- the engine's thread ---------------------------------------------------------------------------

    def listen(self, event: str, data: dict[str, Any]) -> None:
        if event not in ("finished", "status"):
            return
        try:
            self.queue.put_nowait((event, data))
        except queue.Full:
            log.warning("notifications: the queue is full; the %s of %s is not notified", event, data.get("workflow"))
            self._count("dropped")

    # -- workers -----------------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            try:
                self._handle(*item)
            except Exception:
                log.exception("notifications: unexpected error")

    def _once(self, key: tuple[str, str]) -> bool:
        with self._lock:
            if key in self._sent:
                return False
            self._sent[key] = None
            while len(self._sent) > 10_000:
                self._sent.popitem(last=False)
            return True

    def _fell(self, workflow: str, status: str) -> bool:
        """Whether the workflow just became degraded (it was not, the last time we looked)."""
        with self._lock:
            before = self._status.get(workflow)
            self._status[workflow] = status
            self._status.move_to_end(workflow)
            while len(self._status) > 10_000:
                self._status.popitem(last=False)
        return status == "degraded" and before != "degraded"

    def _handle(self, event: str, data: dict[str, Any]) -> None:
        workflow_id = str(data.get("workflow"))
        try:
            wf = self.engine.workflow(workflow_id)
        except SlipwayError:
            return  # removed meanwhile
        kinds: list[str] = []
        if event == "finished":
            sync_id, status, kind = str(data.get("sync_id")), data.get("status"), data.get("kind")
            if status == "refused" and kind in ("sync", "rollback"):
                word = "refused"
            elif kind == "rollback":
                word = "rolled_back" if status == "succeeded" else "failed"
            elif kind == "sync":
                word = "succeeded" if status == "succeeded" else "failed"
            else:
                word = ""
            if word and self._once((sync_id, word)):
                kinds.append(word)
            try:
                now = self.engine.run_state(workflow_id)["status"]
            except SlipwayError:
                now = ""
            if self._fell(workflow_id, now):
                kinds.append("degraded")
        elif event == "status" and self._fell(workflow_id, str(data.get("status"))):
            kinds.append("degraded")
        for word in kinds:
            if wf.notify is not None and word in wf.notify.events:
                self.deliver(wf, word, data)

    # -- delivery --------------------------------------------------------------------------------------

    def message(self, wf: Workflow, word: str, data: dict[str, Any]) -> dict[str, Any]:
        kind = data.get("kind") or "sync"
        revision = (data.get("revision") or "")[:12]
        text = f"slipway: {kind} of workflow {wf.id} {_VERB[word]}"
        if revision:
            text += f" at {revision}"
        if data.get("message"):
            text += f": {data['message']}"
        return {
            "text": text,
            "event": word,
            "workflow": wf.id,
            "workflow_name": wf.name,
            "kind": kind,
            "sync_id": data.get("sync_id"),
            "status": data.get("status"),
            "revision": data.get("revision"),
            "message": data.get("message"),
            "at": rfc3339(),
        }

    def deliver(self, wf: Workflow, word: str, data: dict[str, Any]) -> bool:
        assert wf.notify is not None
        body = json.dumps(self.message(wf, word, data)).encode()
        url, auth = _split_auth(wf.notify.url)
        where = wf.notify.display
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            request = urllib.request.Request(url, data=body, method="POST")
            request.add_header("Content-Type", "application/json")
            request.add_header("User-Agent", "slipway-notifications")
            if auth:
                request.add_header("Authorization", auth)
            retry, why = False, ""
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read(65536)
                log.info("notified %s of workflow %s %s (attempt %d)", where, wf.id, word, attempt)
                self._count("sent")
                return True
            except urllib.error.HTTPError as e:
                retry, why = e.code >= 500 or e.code == 429, f"HTTP {e.code}"
            except (urllib.error.URLError, OSError) as e:
                reason = getattr(e, "reason", e)
                retry, why = True, _scrub(str(reason), wf.notify.url, where)
            if not retry or attempt == self.attempts:
                log.warning("notification of workflow %s %s to %s failed: %s", wf.id, word, where, why)
                self._count("failed")
                return False
            log.info("notification to %s: %s; retrying in %.1fs", where, why, delay)
            if self.stop_event.wait(delay):
                self._count("failed")
                return False
            delay *= 2
        return False

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.notifications.labels(outcome).inc()


def _split_auth(url: str) -> tuple[str, str | None]:
    """A URL's user and password become a Basic Authorization header (urllib does not send them)."""
    p = urlsplit(url)
    if not (p.username or p.password):
        return url, None
    netloc = p.hostname or ""
    if p.port:
        netloc += f":{p.port}"
    token = base64.b64encode(f"{p.username or ''}:{p.password or ''}".encode()).decode()
    return urlunsplit((p.scheme, netloc, p.path, p.query, p.fragment)), f"Basic {token}"


def _scrub(text: str, url: str, shown: str) -> str:
    text = text.replace(url, shown)
    p = urlsplit(url)
    for part in (p.password, p.path if len(p.path) > 1 else "", p.query):
        if part:
            text = text.replace(part, "***")
    return text


__all__ = ["Notifier"]
