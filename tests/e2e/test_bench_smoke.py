"""The benchmark suite still runs: ``python -m bench`` at a tiny size against the real local cluster.

No figure is judged here (performance targets live in docs/benchmarks.md, never in tests); this
only notices when the bench breaks, and that it reports every figure with median, min and max.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).parents[2]

FIGURES = {
    "P1.slipway",
    "P1.slipway_apply",
    "P1.kubectl",
    "P1.kubectl_ready",
    "P1.bare",
    "P1.bare_ready",
    "P2.slipway",
    "P2.writes",
    "P2.client_writes",
    "P2.kubectl",
    "P2.kubectl_writes",
    "P3.slipway",
    "P3.kubectl",
    "P4.sync_all",
    "P4.bare_ready",
    "P4.idle_cpu",
    "P4.idle_cpu_own",
    "P4.commit_to_applied",
    "P5.peak_rss",
    "P1.cli12",
    "P1.cli12_kubectl",
    "P1.cli12_bare",
    "P8.first_request",
    "P8.help",
    "P8.print",
    "P6.sync_all_1",
    "P6.sync_all_3",
    "P6.peak_rss_1",
    "P6.peak_rss_3",
    "P6.shard_spread",
    "P7.failover",
    "P7.leases",
}


@pytest.mark.timeout(420)
def test_the_bench_runs_at_a_tiny_size_and_reports_every_figure(cluster: Any, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    argv = [
        sys.executable, "-m", "bench",
        "--n", "20", "--runs", "1", "--workflows", "8", "--repos", "2", "--cli-n", "12",
        "--poll-interval", "2s", "--idle-seconds", "3", "--latency-samples", "1",
        "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "SLIPWAY_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    results = json.loads(out.read_text())
    figures = results["figures"]
    assert set(figures) == FIGURES
    for key, fig in figures.items():
        for stat in ("median", "min", "max"):
            assert isinstance(fig[stat], int | float), f"{key}: {stat} is {fig[stat]!r}"
        assert fig["min"] <= fig["median"] <= fig["max"], key
    assert figures["P1.slipway"]["comparisons"][0]["ratio"] > 0
    assert figures["P2.client_writes"]["median"] == 0  # a no-op resync sends no write
    assert figures["P4.sync_all"]["runs"][0]["complete"] is True
    assert figures["P6.sync_all_3"]["runs"][0]["complete"] is True
    assert figures["P7.failover"]["runs"][0]["complete"] is True
    for part in ("cpu_model", "cpus", "memory_gib", "kernel", "python", "kubernetes"):
        assert results["machine"][part], part
    assert "P1.slipway" in proc.stdout and "P5.peak_rss" in proc.stdout  # the table was printed
