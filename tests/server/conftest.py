"""The real ``slipway server`` on loopback, for tests that talk to it over HTTP.

``server = start_server()`` runs ``python -m slipway server --listen 127.0.0.1:<free port>`` as a
subprocess on a state store of the test's own, against the local cluster, waits until
``/readyz`` says ready, and stops it (SIGTERM, by pid) when the test ends. Tokens for each role
are made beforehand (``server.tokens["viewer"]`` ...); ``server.client("operator")`` is an HTTP
client that sends that token. Its log (stdout and stderr) is ``server.log``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from slipway.engine import Engine
from slipway.source import GitSource
from slipway.store import StateStore, Store
from slipway.store.kubernetes import KubernetesStore
from tests.gitservers import free_port

ROLES = ("viewer", "operator", "admin")


@dataclass
class SlipwayServer:
    home: Path
    env: dict[str, str]
    port: int
    log: Path
    scheme: str = "http"
    tokens: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    verify: Any = True

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def client(self, role: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        headers.update(kw.pop("headers", {}))
        return httpx.Client(base_url=self.url, headers=headers, timeout=kw.pop("timeout", 60), verify=self.verify, **kw)

    def engine(self) -> Engine:
        """An engine on the server's state store, to look at what the server did (or set things up)."""
        store: StateStore = Store(home=self.home)
        if self.env.get("SLIPWAY_STORE") == "kubernetes":
            store = KubernetesStore(namespace=self.env["SLIPWAY_NAMESPACE"])
        return Engine(store, GitSource(cache_dir=Path(self.env["SLIPWAY_GIT_CACHE"]), home=self.home))

    def start(self, *args: str) -> None:
        out = self.log.open("ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "slipway", "server", "--listen", f"127.0.0.1:{self.port}", *args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        finally:
            out.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"slipway server exited with {self.proc.returncode}:\n{self.log_text()}")
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(f"{self.url}/readyz", timeout=2, verify=self.verify)
                if r.status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"slipway server not ready within 60s:\n{self.log_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        """Signal the server (by pid) and wait for it; its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def start_server(cluster: Any, tmp_path: Path) -> Iterator[Callable[..., SlipwayServer]]:
    """start_server(*args, env={...}, tokens=True) -> a running SlipwayServer (stopped after the test)."""
    started: list[SlipwayServer] = []

    def start(*args: str, env: dict[str, str] | None = None, tokens: bool = True, scheme: str = "http",
              verify: Any = True) -> SlipwayServer:  # fmt: skip
        n = len(started)
        home = tmp_path / f"server{n}-home"
        home.mkdir()
        full_env = {
            **os.environ,
            "SLIPWAY_HOME": str(home),
            "SLIPWAY_GIT_CACHE": str(tmp_path / f"server{n}-git-cache"),
            "KUBECONFIG": str(cluster.kubeconfig),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        server = SlipwayServer(home, full_env, free_port(), tmp_path / f"server{n}.log", scheme=scheme, verify=verify)
        if tokens:
            eng = server.engine()
            for role in ROLES:
                server.tokens[role] = eng.create_token(f"{role}-{secrets.token_hex(2)}", role)[1]
            eng.store.close()
        server.start(*args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def wait_until(check: Callable[[], Any], timeout: float, step: float = 0.05) -> Any:
    """``check()``'s first true value; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"not true after {timeout}s: {check}")
