"""The local control plane: etcd, kube-apiserver, controller-manager, scheduler and a kwok node.

Everything binds to 127.0.0.1 on ports picked free at the first ``up`` and kept in
``state.json``, with TLS, RBAC and client-certificate kubeconfigs. Each process is started in
its own session with its log under ``logs/``; its pid and kernel start time are recorded so that
``down`` stops exactly the processes it started (a recycled pid is never signalled). ``up`` is
idempotent: a cluster whose processes all live and whose API server is ready is reused; a
partial one is stopped and started afresh. A file lock serialises concurrent ``up``/``down``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import settings
from ..errors import ClusterError
from . import build, certs

NODE_NAME = "kwok-node-0"
_ORDER = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]


@dataclass
class Proc:
    name: str
    pid: int
    start_time: str  # /proc/<pid>/stat field 22: tells a live process from a recycled pid
    log: str

    def alive(self) -> bool:
        return _start_time(self.pid) == self.start_time


@dataclass
class ClusterInfo:
    name: str
    root: Path
    ports: dict[str, int]
    procs: list[Proc] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    def running(self) -> list[Proc]:
        return [p for p in self.procs if p.alive()]


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces; fields after it are space separated.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return fields[19]


def cluster_root(name: str = "default") -> Path:
    return settings.cache() / "clusters" / name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load(name: str = "default") -> ClusterInfo | None:
    root = cluster_root(name)
    try:
        doc = json.loads((root / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return ClusterInfo(name, root, doc["ports"], [Proc(**p) for p in doc.get("procs", [])])


def _save(info: ClusterInfo) -> None:
    doc = {"ports": info.ports, "procs": [p.__dict__ for p in info.procs]}
    tmp = info.root / "state.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2))
    tmp.replace(info.root / "state.json")


def _ssl_context(root: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(root / "pki" / "ca.crt"))
    ctx.load_cert_chain(str(root / "pki" / "admin.crt"), str(root / "pki" / "admin.key"))
    return ctx


def _get(url: str, ctx: ssl.SSLContext | None = None, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode(errors="replace")
    except (OSError, ValueError) as e:
        return 0, str(e)


def api_ready(info: ClusterInfo) -> bool:
    if not (info.root / "pki" / "ca.crt").exists():
        return False
    code, _ = _get(f"{info.server}/readyz", _ssl_context(info.root))
    return code == 200


def _wait(what: str, check: Callable[[], bool], timeout: float, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and not proc.alive():
            raise ClusterError(f"{proc.name} exited while starting; see {proc.log}")
        time.sleep(0.2)
    where = f"; see {proc.log}" if proc else ""
    raise ClusterError(f"{what} was not ready after {timeout:.0f}s{where}")


def _spawn(info: ClusterInfo, name: str, argv: list[str]) -> Proc:
    logdir = info.root / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    log = logdir / f"{name}.log"
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=info.root,
            start_new_session=True,  # outlives the command that started it; no terminal signals
            env={**os.environ, "GOTRACEBACK": "all"},
        )
    start = None
    for _ in range(50):
        start = _start_time(popen.pid)
        if start:
            break
        time.sleep(0.01)
    proc = Proc(name, popen.pid, start or "?", str(log))
    info.procs.append(proc)
    _save(info)
    return proc


def _argv(info: ClusterInfo) -> dict[str, list[str]]:
    pki = info.root / "pki"
    p = info.ports
    b = build.binary
    etcd_url = f"http://127.0.0.1:{p['etcd']}"
    common = ["--bind-address=127.0.0.1", "--leader-elect=false"]
    return {
        "etcd": [
            str(b("etcd")),
            "--name=slipway",
            f"--data-dir={info.root / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{p['etcd_peer']}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{p['etcd_peer']}",
            f"--initial-cluster=slipway=http://127.0.0.1:{p['etcd_peer']}",
            "--listen-metrics-urls=",
            "--unsafe-no-fsync=true",  # a throwaway test cluster: speed over durability
            "--quota-backend-bytes=8589934592",
            "--log-level=warn",
        ],
        "kube-apiserver": [
            str(b("kube-apiserver")),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # The kubernetes Service may not point at loopback; nothing in this cluster needs it.
            "--endpoint-reconciler-type=none",
            f"--secure-port={p['apiserver']}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            "--max-requests-inflight=800",
            "--max-mutating-requests-inflight=400",
            "--event-ttl=30m",
            "--profiling=false",
            "--v=1",
        ],
        "kube-controller-manager": [
            str(b("kube-controller-manager")),
            f"--kubeconfig={info.root / 'controller-manager.kubeconfig'}",
            f"--authentication-kubeconfig={info.root / 'controller-manager.kubeconfig'}",
            f"--authorization-kubeconfig={info.root / 'controller-manager.kubeconfig'}",
            *common,
            f"--secure-port={p['controller_manager']}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=true",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--concurrent-deployment-syncs=10",
            "--concurrent-replicaset-syncs=10",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            "--v=1",
        ],
        "kube-scheduler": [
            str(b("kube-scheduler")),
            f"--kubeconfig={info.root / 'scheduler.kubeconfig'}",
            f"--authentication-kubeconfig={info.root / 'scheduler.kubeconfig'}",
            f"--authorization-kubeconfig={info.root / 'scheduler.kubeconfig'}",
            *common,
            f"--secure-port={p['scheduler']}",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            "--v=1",
        ],
        "kwok": [
            str(b("kwok")),
            f"--kubeconfig={info.kubeconfig}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--server-address=127.0.0.1:{p['kwok']}",
            *[f"--config={f}" for f in sorted((b("kwok").parent / "stages").glob("*.yaml"))],
            "--cidr=10.244.0.0/16",
            "--node-ip=10.244.0.1",
            "--node-lease-duration-seconds=40",
        ],
    }


def _fake_node() -> dict[str, Any]:
    capacity = {"cpu": "64", "memory": "256Gi", "pods": "5000"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE_NAME,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": NODE_NAME,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "spec": {},
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def _stop(proc: Proc, timeout: float = 10.0) -> None:
    if not proc.alive():
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.alive():
        time.sleep(0.1)
    if proc.alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        while proc.alive():
            time.sleep(0.05)


def _stop_all(info: ClusterInfo) -> None:
    for proc in sorted(info.procs, key=lambda p: -_ORDER.index(p.name) if p.name in _ORDER else 0):
        _stop(proc)


def up(name: str = "default", log: Callable[[str], None] = lambda _: None) -> ClusterInfo:
    """Start the local cluster (building what is missing) or reuse the one that runs."""
    root = cluster_root(name)
    with _locked(root):
        info = load(name)
        if info is not None and info.procs and len(info.running()) == len(info.procs) and api_ready(info):
            log(f"cluster {name} is already running")
            return info
        if info is not None:
            log(f"cluster {name} is only partly running; restarting it")
            _stop_all(info)
        for took in build.build_all(log).values():
            del took
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        ports = {k: _free_port() for k in ("etcd", "etcd_peer", "apiserver", "controller_manager", "scheduler", "kwok")}
        info = ClusterInfo(name, root, ports)
        _save(info)
        try:
            _start(info, log)
        except BaseException:
            _stop_all(info)
            raise
        return info


def _start(info: ClusterInfo, log: Callable[[str], None]) -> None:
    pki = info.root / "pki"
    certs.write_pki(pki)
    for user, file in (
        ("admin", "admin.kubeconfig"),
        ("controller-manager", "controller-manager.kubeconfig"),
        ("scheduler", "scheduler.kubeconfig"),
    ):
        (info.root / file).write_text(certs.kubeconfig(info.server, pki, user))
        (info.root / file).chmod(0o600)
    argv = _argv(info)
    started = time.monotonic()
    log("starting etcd")
    etcd = _spawn(info, "etcd", argv["etcd"])
    _wait("etcd", lambda: _get(f"http://127.0.0.1:{info.ports['etcd']}/health")[0] == 200, 30, etcd)
    log("starting kube-apiserver")
    api = _spawn(info, "kube-apiserver", argv["kube-apiserver"])
    _wait("kube-apiserver /readyz", lambda: api_ready(info), 90, api)
    for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
        log(f"starting {name}")
        _spawn(info, name, argv[name])
    _register_node(info)
    _wait_node_ready(info)
    log(f"cluster {info.name} is ready in {time.monotonic() - started:.1f}s; kubeconfig: {info.kubeconfig}")


def stop_component(name: str, component: str) -> None:
    """Stop one process of a running cluster (the reliability suite takes the API server or etcd away)."""
    root = cluster_root(name)
    with _locked(root):
        info = load(name)
        if info is None:
            raise ClusterError(f"cluster {name} is not running")
        for proc in [p for p in info.procs if p.name == component]:
            _stop(proc)


def start_component(name: str, component: str, timeout: float = 90) -> None:
    """Start one stopped process of a cluster again, on its ports, and wait until it serves."""
    root = cluster_root(name)
    with _locked(root):
        info = load(name)
        if info is None:
            raise ClusterError(f"cluster {name} is not running")
        if any(p.name == component and p.alive() for p in info.procs):
            return
        info.procs = [p for p in info.procs if p.name != component]
        proc = _spawn(info, component, _argv(info)[component])
        if component == "etcd":
            _wait("etcd", lambda: _get(f"http://127.0.0.1:{info.ports['etcd']}/health")[0] == 200, timeout, proc)
        elif component == "kube-apiserver":
            _wait("kube-apiserver /readyz", lambda: api_ready(info), timeout, proc)


def _register_node(info: ClusterInfo) -> None:
    from ..kube.client import Kube

    kube = Kube(info.kubeconfig)
    try:
        nodes = kube.discovery.lookup("v1", "Node")
        kube.apply(nodes, _fake_node(), field_manager="slipway-cluster")
        # The default ServiceAccount must exist before pods can be admitted; the controller
        # manager creates it shortly after it starts.
        sa = kube.discovery.lookup("v1", "ServiceAccount")
        _wait("the default ServiceAccount", lambda: kube.get(sa, "default", "default") is not None, 60)
    finally:
        kube.close()


def _wait_node_ready(info: ClusterInfo) -> None:
    from ..kube.client import Kube
    from ..kube.objects import conditions

    kube = Kube(info.kubeconfig)
    kwok = next(p for p in info.procs if p.name == "kwok")
    try:
        nodes = kube.discovery.lookup("v1", "Node")

        def ready() -> bool:
            node = kube.get(nodes, "", NODE_NAME)
            return node is not None and conditions(node).get("Ready", {}).get("status") == "True"

        _wait(f"node {NODE_NAME}", ready, 60, kwok)
    finally:
        kube.close()


def down(name: str = "default", log: Callable[[str], None] = lambda _: None) -> bool:
    """Stop the processes this cluster started and remove its data; False when there was none."""
    root = cluster_root(name)
    with _locked(root):
        info = load(name)
        if info is None and not root.exists():
            return False
        if info is not None:
            for proc in info.running():
                log(f"stopping {proc.name} (pid {proc.pid})")
            _stop_all(info)
        shutil.rmtree(root, ignore_errors=True)
        return True


def status(name: str = "default") -> dict[str, Any]:
    info = load(name)
    if info is None:
        return {"name": name, "running": False, "processes": []}
    return {
        "name": name,
        "running": bool(info.procs) and len(info.running()) == len(info.procs) and api_ready(info),
        "server": info.server,
        "kubeconfig": str(info.kubeconfig),
        "processes": [{"name": p.name, "pid": p.pid, "alive": p.alive(), "log": p.log} for p in info.procs],
    }
