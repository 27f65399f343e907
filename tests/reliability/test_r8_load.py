"""R8 the service under load: the API and the webhooks at a bounded rate while syncs run.

Readers poll the API's routes (lists, a workflow, its history, its diff, the metrics), a pusher
commits and announces each commit by a signed webhook, and syncs are started over the API, for a
while. No answer may be a 5xx, no webhook may be lost (with a one-hour poll, only webhooks move
the workflow: the last commit must be live soon after its webhook), and the server's memory must
stay flat (the second half's peak within a margin of the first samples).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from slipway.kube import Kube
from tests.gitservers import HttpGitServer, commit, push
from tests.manifests import configmap, dump

from .conftest import SlipwayServer, size

SECRET = "whsec-" + secrets.token_hex(16)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_r8_api_and_webhooks_under_load(
    start_server: Any, kube: Kube, namespace: str, git_http_server: HttpGitServer, record: Any
) -> None:
    seconds = size(20, 180)
    server: SlipwayServer = start_server(env={"SLIPWAY_WEBHOOK_SECRET": SECRET})
    assert server.proc is not None
    name = f"r8-{secrets.token_hex(3)}"
    objs = [configmap(f"cm-{i}", {"v": "0"}) for i in range(20)]
    work = git_http_server.create_repo(name, {"k8s/a.yaml": dump(*objs)})
    url = git_http_server.public_url(name)
    admin = server.client("admin")
    assert admin.post("/api/v1/repositories", json={"id": "app", "url": url, "poll_interval": "1h"}).status_code == 201
    assert admin.post("/api/v1/workflows", json={"id": "app", "repository": "app", "target_path": "k8s",
                      "auto_sync": True, "destination": {"namespace": namespace}}).status_code == 201  # fmt: skip
    stop = threading.Event()
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    fivexx: list[str] = []

    def count(route: str, code: int) -> None:
        with lock:
            statuses[code] = statuses.get(code, 0) + 1
            if code >= 500:
                fivexx.append(f"{route}: {code}")

    def reader(n: int) -> None:
        client = server.client("viewer" if n % 2 else "operator")
        routes = ["/api/v1/workflows", "/api/v1/workflows/app", "/api/v1/workflows/app/history",
                  "/api/v1/repositories", "/metrics"] + (["/api/v1/workflows/app/diff"] if n == 0 else [])  # fmt: skip
        i = 0
        while not stop.is_set():
            route = routes[i % len(routes)]
            count(route, client.get(route).status_code)
            i += 1
            stop.wait(0.1)  # a bounded rate: about ten requests a second per reader

    last_value = ["0"]

    def pusher() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            sha = commit(work, {"k8s/a.yaml": dump(*[configmap(f"cm-{i}", {"v": str(n)}) for i in range(20)])})
            push(work)
            last_value[0] = str(n)
            body = json.dumps({"ref": "refs/heads/main", "after": sha, "repository": {"clone_url": url}}).encode()
            digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            r = server.client().post("/api/v1/webhooks/github", content=body, headers={
                "X-GitHub-Event": "push", "X-GitHub-Delivery": secrets.token_hex(8),
                "X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"})  # fmt: skip
            count("webhook", r.status_code)
            stop.wait(2)

    def syncer() -> None:
        client = server.client("operator")
        while not stop.is_set():
            count("sync", client.post("/api/v1/workflows/app/sync", json={}).status_code)
            stop.wait(3)

    time.sleep(2)
    samples = [rss_mib(server.proc.pid)]
    threads = [threading.Thread(target=reader, args=(i,)) for i in range(6)]
    threads += [threading.Thread(target=pusher), threading.Thread(target=syncer)]
    for t in threads:
        t.start()
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        time.sleep(max(1.0, seconds / 20))
        samples.append(rss_mib(server.proc.pid))
    stop.set()
    for t in threads:
        t.join(60)

    # No webhook lost: the last commit's announcement brings it live.
    deadline = time.monotonic() + 60
    live = None
    while time.monotonic() < deadline:
        live = (kube.get(kube.discovery.lookup("v1", "ConfigMap"), namespace, "cm-0") or {}).get("data", {}).get("v")
        if live == last_value[0]:
            break
        time.sleep(0.5)
    assert live == last_value[0], f"the last webhook's commit ({last_value[0]}) is not live ({live})"
    assert not fivexx, fivexx
    first = max(samples[: max(2, len(samples) // 4)])
    peak = max(samples[len(samples) // 2 :])
    assert peak <= first * 1.3 + 40, f"memory grew: {samples}"
    total = sum(statuses.values())
    record("R8", f"the API and webhooks at a bounded rate for {seconds}s while syncs run: no 5xx, no lost webhook, "
           "memory flat", total, total - len(fivexx), "make reliability  # tests/reliability/test_r8_load.py",
           statuses={str(k): v for k, v in sorted(statuses.items())},
           rss_mib={"first": round(first, 1), "second_half_peak": round(peak, 1)})  # fmt: skip
