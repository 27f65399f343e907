"""50 concurrent API clients while a sync runs: no errors, and their latency (docs/benchmarks.md).

Bounded: each client sends a fixed number of requests (reads a dashboard would make), so the
test stops by itself. The latency is printed (and written to ``$SLIPWAY_LOAD_REPORT`` if set);
targets live in the benchmarks page, not in an assertion that a busy machine would break.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.manifests import configmap, dump

from .test_api import finish, setup_workflow

pytestmark = pytest.mark.cluster

CLIENTS = 50
REQUESTS_EACH = 40


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1)]


def test_50_concurrent_clients_while_a_sync_runs(start_server, tmp_path: Path, namespace: str) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    objects = [configmap(f"cm-{i}", {"v": str(i)}) for i in range(40)]
    wf, _ = setup_workflow(
        server, tmp_path, namespace, {"k8s/app.yaml": dump(*objects)}, sync_policy={"pre_sync_hooks": ["sleep 4"]}
    )
    sync_id = server.client("operator").post(f"/api/v1/workflows/{wf}/sync").json()["id"]
    token = server.tokens["viewer"]
    paths = [
        "/api/v1/workflows",
        f"/api/v1/workflows/{wf}",
        f"/api/v1/syncs/{sync_id}",
        f"/api/v1/workflows/{wf}/history?limit=5",
        "/api/v1/repositories",
    ]
    latencies: list[float] = []
    warm: list[float] = []  # each client's requests after its first (connection set up, token checked)
    errors: list[str] = []
    during_sync: list[bool] = []

    async def one_client(n: int) -> None:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as client:
            for i in range(REQUESTS_EACH):
                path = paths[(n + i) % len(paths)]
                started = time.perf_counter()
                try:
                    r = await client.get(path)
                except httpx.HTTPError as e:
                    errors.append(f"{path}: {type(e).__name__}: {e}")
                    continue
                latencies.append(time.perf_counter() - started)
                if i:
                    warm.append(latencies[-1])
                if r.status_code != 200:
                    errors.append(f"{path}: {r.status_code} {r.text[:200]}")
                elif path.startswith("/api/v1/syncs/"):
                    during_sync.append(not r.json()["done"])

    async def all_clients() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(one_client(n) for n in range(CLIENTS)))
        return time.perf_counter() - started

    wall = asyncio.run(all_clients())
    assert not errors, errors[:10]
    assert len(latencies) == CLIENTS * REQUESTS_EACH
    result = finish(server, sync_id)
    assert result["status"] == "succeeded", result["result"]["message"]
    assert any(during_sync), "the sync was over before the clients started"
    report: dict[str, Any] = {
        "clients": CLIENTS,
        "requests": len(latencies),
        "wall_seconds": round(wall, 2),
        "throughput_rps": round(len(latencies) / wall, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p90_ms": round(percentile(latencies, 90) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "p99_after_first_ms": round(percentile(warm, 99) * 1000, 1),
        "answered_while_syncing": sum(during_sync),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
    print(f"\nload: {json.dumps(report)}")
    if os.environ.get("SLIPWAY_LOAD_REPORT"):
        Path(os.environ["SLIPWAY_LOAD_REPORT"]).write_text(json.dumps(report, indent=2) + "\n")
