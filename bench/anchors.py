"""The anchors slipway is measured against: kubectl, and a bare loop of server-side apply requests.

kubectl is the one slipway builds for its local cluster (``slipway.cluster.build.binary``), run
on the same files. The bare loop is the practical limit of applying: the same server-side apply
PATCH requests slipway sends (same bodies, ownership labels and hash annotation included, in the
same order of kinds), from the standard library's HTTP client (kept-open connections, as
slipway's own transport uses) with the kubeconfig's client certificate, no discovery, no reads,
no retries, and the same concurrency as slipway's default (16).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import queue
import ssl
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from slipway import order
from slipway.cluster import build

Obj = dict[str, Any]

# Where each bench kind lives in the API (the bare loop does no discovery).
PATHS = {
    ("v1", "ConfigMap"): "/api/v1/namespaces/{ns}/configmaps/{name}",
    ("v1", "Secret"): "/api/v1/namespaces/{ns}/secrets/{name}",
    ("v1", "Service"): "/api/v1/namespaces/{ns}/services/{name}",
    ("apps/v1", "Deployment"): "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
}


def kubectl() -> Path:
    return build.binary("kubectl")


def _run(
    argv: list[str], kubeconfig: Path, ok: tuple[int, ...] = (0,)
) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=1800)
    took = time.perf_counter() - started
    if proc.returncode not in ok:
        raise RuntimeError(
            f"{Path(argv[0]).name} {' '.join(argv[1:3])} failed ({proc.returncode}): {proc.stderr[-800:]}"
        )
    return took, proc


def kubectl_apply(directory: Path, namespace: str, kubeconfig: Path) -> float:
    """``kubectl apply --server-side -f DIR -R -n NS``; seconds."""
    took, _ = _run([str(kubectl()), "apply", "--server-side", "-R", "-f", str(directory), "-n", namespace], kubeconfig)
    return took


def kubectl_diff(directory: Path, namespace: str, kubeconfig: Path) -> tuple[float, int]:
    """``kubectl diff --server-side -f DIR -R -n NS``; seconds and the number of objects it shows changed."""
    took, proc = _run(
        [str(kubectl()), "diff", "--server-side", "-R", "-f", str(directory), "-n", namespace],
        kubeconfig,
        ok=(0, 1),  # 1: differences found
    )
    changed = sum(1 for line in proc.stdout.splitlines() if line.startswith("diff "))
    return took, changed


# -- the bare loop ----------------------------------------------------------------------------------


def _kubeconfig_tls(kubeconfig: Path, tmp: Path) -> tuple[str, ssl.SSLContext]:
    """The server and a TLS context with the client certificate of the kubeconfig's current context."""
    doc = yaml.safe_load(kubeconfig.read_text())
    ctx_name = doc.get("current-context")
    context = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in doc["users"] if u["name"] == context["user"])

    def file_of(section: dict[str, Any], key: str) -> str | None:
        if section.get(f"{key}-data"):
            path = tmp / key
            path.write_bytes(base64.b64decode(section[f"{key}-data"]))
            return str(path)
        value = section.get(key)
        return str((kubeconfig.parent / value).resolve()) if value else None

    ca = file_of(cluster, "certificate-authority")
    ctx = ssl.create_default_context(cafile=ca)
    cert, key = file_of(user, "client-certificate"), file_of(user, "client-key")
    if cert is None or key is None:
        raise RuntimeError("the bare loop needs a kubeconfig with a client certificate")
    ctx.load_cert_chain(cert, key)
    return str(cluster["server"]), ctx


def bare_apply(objects: list[Obj], namespace: str | None, kubeconfig: Path, concurrency: int = 16) -> float:
    """Send one server-side apply PATCH per object, ``concurrency`` at a time; seconds for all of them.
    ``namespace`` None: each object's own.

    The client (TLS context, connection pool) is made before the clock starts; connecting is
    inside it, as it is for slipway and kubectl.
    """
    bodies: list[tuple[str, bytes]] = []
    # In slipway's apply order (ConfigMaps and Secrets, then Services, then Deployments), but with no
    # barrier between kinds: Deployments sent early start the controllers' work early, which then
    # competes with the rest of the requests for the machine's two cores.
    for obj in sorted(objects, key=lambda o: order.rank(o["kind"])):
        body = json.loads(json.dumps(obj))
        if namespace is not None:
            body["metadata"]["namespace"] = namespace
        where = body["metadata"]["namespace"]
        path = PATHS[(body["apiVersion"], body["kind"])].format(ns=where, name=body["metadata"]["name"])
        bodies.append((path, json.dumps(body, separators=(",", ":")).encode()))
    with tempfile.TemporaryDirectory(prefix="slipway-bench-tls-") as tmp:
        server, ctx = _kubeconfig_tls(kubeconfig, Path(tmp))
        parts = urlsplit(server)
        idle: queue.LifoQueue[http.client.HTTPSConnection] = queue.LifoQueue()
        query = "?fieldManager=bench-bare&force=true"
        headers = {"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"}

        def one(item: tuple[str, bytes]) -> int:
            try:
                conn = idle.get_nowait()
            except queue.Empty:
                conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, context=ctx, timeout=60.0)
            conn.request("PATCH", item[0] + query, body=item[1], headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status >= 300:
                raise RuntimeError(f"bare apply {item[0]}: HTTP {resp.status}: {data[:300]!r}")
            idle.put(conn)
            return resp.status

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(one, bodies))
        took = time.perf_counter() - started
        while not idle.empty():
            idle.get_nowait().close()
        return took


__all__ = ["bare_apply", "kubectl", "kubectl_apply", "kubectl_diff"]
