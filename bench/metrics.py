"""What the benchmarks read besides wall-clock time: API server metrics, /proc, the machine.

Write requests are counted by the API server itself: ``apiserver_request_total`` from its
``/metrics`` endpoint, a counter per (verb, group, resource, subresource, dry_run, code...). A
benchmark scrapes it before and after the work it measures and keeps the difference, filtered
by :func:`writes` to what that work could have written (see its docstring for the filter).
"""

from __future__ import annotations

import os
import platform
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slipway.kube import Kube

# The API server's names for writes (PUT is an update; APPLY is a server-side apply PATCH).
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION", "UPDATE"})
# The bench's objects, as (group, resource).
BENCH_RESOURCES = frozenset({("", "configmaps"), ("", "secrets"), ("", "services"), ("apps", "deployments")})

_LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Key = tuple[str, str, str, str, str]  # verb, group, resource, subresource, dry_run


def scrape(kube: Kube) -> Counter[Key]:
    """``apiserver_request_total`` summed over the labels we do not filter on (code, scope, ...)."""
    text = kube.raw("/metrics", timeout=60)
    out: Counter[Key] = Counter()
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        m = _LINE.match(line)
        if m is None:
            continue
        labels = dict(_LABEL.findall(m.group("labels")))
        key = (
            labels.get("verb", ""),
            labels.get("group", ""),
            labels.get("resource", ""),
            labels.get("subresource", ""),
            labels.get("dry_run", ""),
        )
        out[key] += int(float(m.group("value")))
    return out


def writes(before: Counter[Key], after: Counter[Key]) -> dict[str, int]:
    """Non-dry-run writes to the bench's own resources between two scrapes, by verb.

    The filter: verb in WRITE_VERBS; ``dry_run`` empty (a server-side dry-run writes nothing);
    ``subresource`` empty (``deployments/status`` is written by the deployment controller, not by
    whoever applies); (group, resource) in BENCH_RESOURCES — ConfigMaps, Secrets, Services and
    Deployments — so what controllers write on their own (ReplicaSets, Pods, Endpoints,
    EndpointSlices, Events, Leases) is left out. What remains can still include another client
    writing the same kinds at the same time on a shared cluster; the caller also reports the
    writes its own client sent.
    """
    out: Counter[str] = Counter()
    for key, value in after.items():
        verb, group, resource, subresource, dry_run = key
        if verb not in WRITE_VERBS or dry_run or subresource or (group, resource) not in BENCH_RESOURCES:
            continue
        delta = value - before.get(key, 0)
        if delta > 0:
            out[verb] += delta
    return dict(sorted(out.items()))


def dry_runs(before: Counter[Key], after: Counter[Key]) -> int:
    """Dry-run requests to the bench's resources between two scrapes (they write nothing)."""
    total = 0
    for key, value in after.items():
        _, group, resource, subresource, dry_run = key
        if dry_run and not subresource and (group, resource) in BENCH_RESOURCES:
            total += max(0, value - before.get(key, 0))
    return total


def requests(before: Counter[Key], after: Counter[Key]) -> dict[str, int]:
    """Every request to the bench's resources between two scrapes, by verb (``APPLY dry-run`` apart).

    Reads (GET, LIST) come from whoever asked; the controllers in the cluster read through
    watches, so GETs and LISTs here are almost all the bench's or slipway's own.
    """
    out: Counter[str] = Counter()
    for key, value in after.items():
        verb, group, resource, subresource, dry_run = key
        if subresource or (group, resource) not in BENCH_RESOURCES:
            continue
        delta = value - before.get(key, 0)
        if delta > 0:
            out[f"{verb} dry-run" if dry_run else verb] += delta
    return dict(sorted(out.items()))


# -- /proc ------------------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuTimes:
    """Seconds of CPU: the process's own threads, and its children it has waited for (git, ...)."""

    own: float
    children: float
    at: float

    @property
    def total(self) -> float:
        return self.own + self.children


def cpu_times(pid: int) -> CpuTimes:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14..17.
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return CpuTimes((utime + stime) / CLK_TCK, (cutime + cstime) / CLK_TCK, time.monotonic())


def cpu_share(a: CpuTimes, b: CpuTimes) -> dict[str, float]:
    """Percent of one core between two readings: own threads, children, and both."""
    elapsed = max(1e-9, b.at - a.at)
    own = (b.own - a.own) / elapsed * 100
    children = (b.children - a.children) / elapsed * 100
    return {"own": own, "children": children, "total": own + children, "seconds": elapsed}


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident set) in KiB, from /proc/<pid>/status."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


# -- the machine ----------------------------------------------------------------------------------


def machine(kube: Kube | None = None) -> dict[str, Any]:
    """CPU model and count, memory, kernel, Python and Kubernetes versions: no host name, no path."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    out: dict[str, Any] = {
        "cpu_model": models[0] if models else platform.processor() or "unknown",
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
    }
    if kube is not None:
        try:
            version = kube.request("GET", "/version", action="get", what="/version")
            out["kubernetes"] = str(version.get("gitVersion", "unknown"))
        except Exception as e:  # the version is context, not a reason to fail the bench
            out["kubernetes"] = f"unknown ({type(e).__name__})"
    return out


__all__ = [
    "BENCH_RESOURCES",
    "WRITE_VERBS",
    "CpuTimes",
    "cpu_share",
    "cpu_times",
    "dry_runs",
    "machine",
    "proc_status",
    "requests",
    "scrape",
    "writes",
]
