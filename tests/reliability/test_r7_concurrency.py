"""R7 concurrency: CLI syncs, API syncs, webhooks, the controller and rollbacks racing on the same workflows.

A seeded mix of operations runs from several threads at once against the real server (which runs
the controller) and the real CLI. Every sync of a workflow runs a pre-sync hook that takes a lock
directory named after the workflow (``mkdir`` is atomic) and notes an overlap if it cannot: two
syncs of one workflow at once would be seen. Afterwards: no overlap, no sync left running, every
operation either done or refused with a clear "in progress" answer, and each workflow's live
object is what the last successful operation of its history says.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from slipway.kube import Kube
from tests.gitservers import HttpGitServer, commit, push
from tests.manifests import configmap, dump

from .conftest import Cli, SlipwayServer, size

SECRET = "whsec-" + secrets.token_hex(16)
SEED = 7


def test_r7_racing_operations(
    start_server: Any, cli: Cli, kube: Kube, namespace: str, tmp_path: Path, git_http_server: HttpGitServer,
    record: Any,
) -> None:  # fmt: skip
    ops_total = size(40, 200)
    locks, overlaps = tmp_path / "locks", tmp_path / "overlaps.log"
    locks.mkdir()
    hook = (f'mkdir "{locks}/$SLIPWAY_WORKFLOW_ID" 2>/dev/null || echo "$SLIPWAY_WORKFLOW_ID $SLIPWAY_SYNC_ID" '
            f'>> "{overlaps}"; sleep 0.3; rmdir "{locks}/$SLIPWAY_WORKFLOW_ID" 2>/dev/null; true')  # fmt: skip
    server: SlipwayServer = start_server(env={"SLIPWAY_WEBHOOK_SECRET": SECRET})
    admin = server.client("admin")
    prefix = f"r7-{secrets.token_hex(3)}"
    works: dict[str, Path] = {}
    values: dict[str, dict[str, str]] = {}  # workflow -> commit -> value it declares
    for i in range(3):
        wf = f"w{i}"
        works[wf] = git_http_server.create_repo(
            f"{prefix}/{wf}", {"k8s/a.yaml": dump(configmap(f"app-{wf}", {"v": "0"}))}
        )
        values[wf] = {}
        url = git_http_server.public_url(f"{prefix}/{wf}")
        assert admin.post("/api/v1/repositories", json={"id": wf, "url": url, "poll_interval": "3s"}).status_code == 201
        r = admin.post("/api/v1/workflows", json={
            "id": wf, "repository": wf, "target_path": "k8s", "auto_sync": True, "destination": {"namespace": namespace},
            "sync_policy": {"pre_sync_hooks": [hook], "health_check": {"timeout": "30s"}}})  # fmt: skip
        assert r.status_code == 201, r.text
    server_cli = Cli({**cli.env, "SLIPWAY_HOME": str(server.home), "SLIPWAY_GIT_CACHE": server.env["SLIPWAY_GIT_CACHE"]},
                     server.home, cli.cwd)  # the CLI on the server's own state store  # fmt: skip
    operator = server.client("operator")
    rng = random.Random(SEED)
    commit_lock = threading.Lock()
    counter = [0]
    outcomes: dict[str, int] = {}

    def note(outcome: str) -> None:
        with commit_lock:
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    def do(op: tuple[str, str]) -> None:
        kind, wf = op
        if kind == "commit":
            with commit_lock:
                counter[0] += 1
                v = str(counter[0])
                sha = commit(works[wf], {"k8s/a.yaml": dump(configmap(f"app-{wf}", {"v": v}))})
                push(works[wf])
                values[wf][sha] = v
            body = json.dumps({"ref": "refs/heads/main", "after": sha,
                               "repository": {"clone_url": git_http_server.public_url(f"{prefix}/{wf}")}}).encode()  # fmt: skip
            digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            r = server.client().post("/api/v1/webhooks/github", content=body, headers={
                "X-GitHub-Event": "push", "X-GitHub-Delivery": secrets.token_hex(8),
                "X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"})  # fmt: skip
            assert r.status_code < 500, r.text
            note(f"webhook {r.status_code}")
        elif kind == "api-sync":
            r = operator.post(f"/api/v1/workflows/{wf}/sync", json={})
            assert r.status_code in (202, 409), r.text
            note(f"api-sync {r.status_code}")
        elif kind == "cli-sync":
            r = server_cli("sync", wf, "--yes")
            assert "Traceback" not in r.stderr
            assert r.returncode in (0, 1) or "in progress" in r.stderr, r.stdout + r.stderr
            note(f"cli-sync {r.returncode}")
        elif kind == "cli-rollback":
            r = server_cli("rollback", wf, "--reason", "racing")
            assert "Traceback" not in r.stderr
            assert r.returncode in (0, 1) or "in progress" in r.stderr or "no sync to roll back" in r.stderr, r.stderr
            note(f"cli-rollback {r.returncode}")
        else:
            r = operator.post(f"/api/v1/workflows/{wf}/rollback", json={"reason": "racing over the API"})
            assert r.status_code in (202, 404, 409), r.text
            note(f"api-rollback {r.status_code}")

    kinds = ["commit", "commit", "api-sync", "cli-sync", "cli-rollback", "api-rollback"]
    ops = [(rng.choice(kinds), f"w{rng.randrange(3)}") for _ in range(ops_total)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(do, ops))

    # Quiet: nothing running anywhere, the controller settled.
    eng = server.engine()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        states = [eng.run_state(f"w{i}") for i in range(3)]
        if all(s["sync_owner"] is None and s["status"] != "syncing" for s in states):
            time.sleep(4)  # a poll interval more: nothing starts again
            if all(eng.run_state(f"w{i}")["sync_owner"] is None for i in range(3)):
                break
        time.sleep(0.5)
    for i in range(3):
        wf = f"w{i}"
        history = eng.history(wf)
        assert not [h for h in history if h.status == "running"], wf
        assert all(h.end_time for h in history), wf
        last = next(h for h in history if h.status == "succeeded")
        obj = kube.get(kube.discovery.lookup("v1", "ConfigMap"), namespace, f"app-{wf}")
        live = (obj or {}).get("data", {})
        if last.kind == "rollback" and not last.commit_hash:
            # Rolled back to the state before the first sync: what that sync created is gone again.
            assert obj is None, f"{wf}: live {live} after a rollback to before the first sync"
            continue
        expected = values[wf].get(last.commit_hash or "", "0")  # the first commit declares "0"
        assert live.get("v") == expected, f"{wf}: live {live} but its last successful {last.kind} says {expected}"
    overlap = overlaps.read_text() if overlaps.exists() else ""
    assert overlap == "", f"two syncs of one workflow at once:\n{overlap}"
    record("R7", f"{ops_total} racing operations (CLI and API syncs, webhooks, the controller, rollbacks; seeded): "
           "never two syncs of one workflow at once, the history consistent", ops_total, ops_total - len(overlap.splitlines()),
           "make reliability  # tests/reliability/test_r7_concurrency.py", outcomes=outcomes, seed=SEED)  # fmt: skip
