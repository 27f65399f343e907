"""P1's command-line figures and P8 (the command line itself): ``slipway`` run as a person runs it.

P1.cliN: ``slipway sync WF --yes`` of N new objects (four ConfigMaps and a Service to a file, so
400 and 100 of 500), health checks off, the Git mirror warm (fetched once before, untimed), in a
process of its own with its output piped, as CI runs it. Anchors on the same files, each in a
namespace of its own in the same run: ``kubectl apply --server-side`` and the bare loop.

P8.first_request: seconds from starting ``slipway diff WF`` (one ConfigMap, the mirror warm)
until its first request reaches the API server. The workflow's kubeconfig points at a TCP relay
in this process that forwards to the API server unchanged (TLS passes through untouched) and
notes when the first connection arrives. P8.help: ``slipway --help`` from start to exit.
P8.print: printing a plan of 1,000 changes as the CLI prints it (in a process of its own, to a
pipe), the plan computed before the clock starts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from slipway.engine import Engine
from slipway.kube import Kube
from slipway.plan.ownership import stamp
from slipway.source import GitSource
from slipway.store import Store

from . import anchors
from .namespaces import Namespaces, run_id
from .report import Comparison, Figure
from .workload import GitRepo, Obj, configmap, dump, service

PER_FILE = 5  # four ConfigMaps and a Service


@dataclass
class Params:
    sizes: list[int]
    runs: int
    kubeconfig: Path
    tmp: Path
    concurrency: int = 16
    phases: set[str] = field(default_factory=lambda: {"P1", "P8"})
    settle_timeout: float = 600.0


def figures(p: Params) -> dict[str, Figure]:
    out: list[Figure] = []
    if "P1" in p.phases:
        for n in p.sizes:
            out += [
                Figure(
                    f"P1.cli{n}",
                    f"slipway sync --yes, {n} objects, health off",
                    "s",
                    comparisons=[Comparison(f"P1.cli{n}_kubectl", 0.5), Comparison(f"P1.cli{n}_bare", 1.3)],
                    note=f"the CLI in a process of its own, output piped; {n * 4 // 5} ConfigMaps, "
                    f"{n // 5} Services; the Git mirror warm",
                ),
                Figure(f"P1.cli{n}_kubectl", f"kubectl apply --server-side, {n} objects", "s"),
                Figure(f"P1.cli{n}_bare", f"bare SSA loop, {n} objects", "s"),
            ]
    if "P8" in p.phases:
        out += [
            Figure("P8.first_request", "slipway diff: start to first API request", "s", target=0.3),
            Figure("P8.help", "slipway --help: start to exit", "s"),
            Figure("P8.print", "printing a plan of 1000 changes", "s", target=1.0),
        ]
    return {f.key: f for f in out}


def cli_objects(n: int) -> dict[str, list[Obj]]:
    files: dict[str, list[Obj]] = {}
    for i in range((n + PER_FILE - 1) // PER_FILE):
        app = f"app-{i:04d}"
        objs = [configmap(f"{app}-cm{j}") for j in range(PER_FILE - 1)] + [service(f"{app}-svc", app)]
        files[f"apps/{app}.yaml"] = objs[: n - i * PER_FILE]
    return files


def _env(home: Path, git_cache: Path, kubeconfig: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SLIPWAY_HOME": str(home),
        "SLIPWAY_GIT_CACHE": str(git_cache),
        "KUBECONFIG": str(kubeconfig),
    }


def _slipway(args: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "slipway", *args],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=1800,
    )
    took = time.perf_counter() - started
    if proc.returncode not in ok:
        raise RuntimeError(f"slipway {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return took


def _engine(home: Path, git_cache: Path) -> Engine:
    return Engine(Store(home=home), GitSource(cache_dir=git_cache, home=home))


def _workflow(engine: Engine, url: str, wid: str, namespace: str, kubeconfig: Path) -> None:
    repo = engine.register_repository({"url": url, "id": f"{wid}-repo"})
    engine.create_workflow(
        {
            "id": wid,
            "repository": repo.id,
            "target_path": "apps",
            "destination": {"namespace": namespace, "kubeconfig": str(kubeconfig)},
            "sync_policy": {"health_check": {"enabled": False}},
        }
    )
    engine.fetch(repo)  # the mirror warm: what is measured is the CLI, not a clone


def one_run(p: Params, index: int, figs: dict[str, Figure], kube: Kube, say: Callable[[str], None]) -> None:
    if "P1" in p.phases:
        for n in p.sizes:
            _sync_run(p, index, n, figs, kube, say)
    if "P8" in p.phases:
        _first_request(p, figs, kube, say)


def _sync_run(p: Params, index: int, n: int, figs: dict[str, Figure], kube: Kube, say: Callable[[str], None]) -> None:
    run = run_id()
    tmp = Path(tempfile.mkdtemp(prefix=f"cli-{run}-", dir=p.tmp))
    files = cli_objects(n)
    repo = GitRepo.create(tmp / "repo", {path: dump(objs) for path, objs in files.items()})
    home, git_cache = tmp / "home", tmp / "git"
    spaces = Namespaces(kube, run)
    ns = {c: f"bench-cli-{run}-{c}" for c in ("slipway", "kubectl", "bare")}
    try:
        spaces.create(ns.values())
        engine = _engine(home, git_cache)
        try:
            _workflow(engine, repo.url, "cli", ns["slipway"], p.kubeconfig)
        finally:
            engine.store.close()
        env = _env(home, git_cache, p.kubeconfig)
        order = ["slipway", "kubectl", "bare"]
        order = order[index % 3 :] + order[: index % 3]
        for contender in order:
            say(f"  P1 cli {n} {contender}")
            if contender == "slipway":
                figs[f"P1.cli{n}"].add(_slipway(["sync", "cli", "--yes"], env))
            elif contender == "kubectl":
                figs[f"P1.cli{n}_kubectl"].add(anchors.kubectl_apply(repo.work / "apps", ns["kubectl"], p.kubeconfig))
            else:
                stamped = [stamp(o, "bench-bare", "bench") for objs in files.values() for o in objs]
                figs[f"P1.cli{n}_bare"].add(anchors.bare_apply(stamped, ns["bare"], p.kubeconfig, p.concurrency))
    finally:
        spaces.delete_all(wait=p.settle_timeout)
        shutil.rmtree(tmp, ignore_errors=True)


class Relay:
    """A TCP relay to the API server that notes when its first connection arrives."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.first: float | None = None
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if self.first is None:
                self.first = time.perf_counter()
            upstream = socket.create_connection(self.upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def _relayed_kubeconfig(kubeconfig: Path, port: int, out: Path) -> tuple[str, int]:
    doc = yaml.safe_load(kubeconfig.read_text())
    context = next(c["context"] for c in doc["contexts"] if c["name"] == doc["current-context"])
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == context["cluster"])
    server = cluster["server"]
    host, _, rest = server.removeprefix("https://").partition(":")
    upstream = (host, int(rest.split("/")[0]))
    cluster["server"] = f"https://{host}:{port}"
    for c in doc["clusters"] + doc["users"]:
        for key, value in list((c.get("cluster") or c.get("user") or {}).items()):
            if isinstance(value, str) and key in ("certificate-authority", "client-certificate", "client-key"):
                (c.get("cluster") or c.get("user"))[key] = str((kubeconfig.parent / value).resolve())
    out.write_text(yaml.safe_dump(doc))
    return upstream


def _first_request(p: Params, figs: dict[str, Figure], kube: Kube, say: Callable[[str], None]) -> None:
    run = run_id()
    tmp = Path(tempfile.mkdtemp(prefix=f"cli-first-{run}-", dir=p.tmp))
    repo = GitRepo.create(tmp / "repo", {"apps/a.yaml": dump([configmap("first")])})
    home, git_cache = tmp / "home", tmp / "git"
    spaces = Namespaces(kube, run)
    namespace = f"bench-cli-{run}-first"
    relay: Relay | None = None
    try:
        spaces.create([namespace])
        relayed = tmp / "relayed.kubeconfig"
        upstream = _relayed_kubeconfig(p.kubeconfig, 0, relayed)
        relay = Relay(upstream)
        _relayed_kubeconfig(p.kubeconfig, relay.port, relayed)
        engine = _engine(home, git_cache)
        try:
            _workflow(engine, repo.url, "first", namespace, relayed)
        finally:
            engine.store.close()
        env = _env(home, git_cache, relayed)
        say("  P8 first request, --help")
        relay.first = None
        started = time.perf_counter()
        _slipway(["diff", "first"], env, ok=(0, 1))
        if relay.first is None:
            raise RuntimeError("slipway diff sent no request through the relay")
        figs["P8.first_request"].add(relay.first - started)
        figs["P8.help"].add(_slipway(["--help"], env))
        figs["P8.print"].add(_print_time(tmp))
    finally:
        if relay is not None:
            relay.close()
        spaces.delete_all(wait=0.0)
        shutil.rmtree(tmp, ignore_errors=True)


_PRINT = """
import sys, time
from slipway.cli.printing import print_plan
from slipway.plan.model import Plan
from slipway.results import Change
changes = []
for i in range(1000):
    a = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}, "data": {"k": "1"}}
    b = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}, "data": {"k": "2"}}
    kind = "update" if i % 10 == 0 else "create"
    cur = a if kind == "update" else None
    changes.append(Change(type=kind, resource=f"ConfigMap/c{i}", namespace="ns", api_version="v1",
                          current_state=cur, desired_state=b, reasons=["x"]))
plan = Plan("wf", "0" * 40, "now", changes=changes)
started = time.perf_counter()
print_plan(plan)
sys.stdout.flush()
print(time.perf_counter() - started, file=sys.stderr)
"""


def _print_time(tmp: Path) -> float:
    proc = subprocess.run(
        [sys.executable, "-c", _PRINT], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise RuntimeError(f"printing a plan failed: {proc.stderr[-1500:]}")
    return float(proc.stderr.strip().splitlines()[-1])


__all__ = ["Params", "cli_objects", "figures", "one_run"]
