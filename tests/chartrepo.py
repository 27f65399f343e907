"""A real Helm chart repository for tests: HTTP on 127.0.0.1, packages made by the real Helm.

``chart_repo`` (session-scoped) -> :class:`ChartRepo`. Charts are published with
``.publish({"Chart.yaml": ..., "templates/x.yaml": ...})``, which runs ``helm package`` and
``helm repo index`` into the served directory. The same directory is served twice:
``.url`` (``http://127.0.0.1:PORT/auth``) behind Basic auth with ``.username``/``.password``,
and ``.public_url`` without auth. ``.requests`` lists ``(path, status)`` of every request, so a
test can count downloads. ``helm(*args)`` runs the pinned Helm with its own empty home.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator, Mapping
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipway import tools


def helm(*args: str | Path, home: Path, cwd: Path | None = None) -> str:
    """Run the pinned Helm with HELM_* directories under ``home``; fail loudly with its stderr."""
    binary = tools.built("helm")
    if binary is None:
        pytest.fail("helm is not built: run `slipway cluster build`")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    proc = subprocess.run([str(binary), *map(str, args)], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(map(str, args))} failed: {proc.stderr}")
    return proc.stdout


def write_tree(root: Path, files: Mapping[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


class ChartRepo:
    def __init__(self, base: Path) -> None:
        self.dir = base
        self.root = base / "served"
        self.root.mkdir(parents=True)
        self.username = "charts-user"
        self.password = "chartpw-" + secrets.token_hex(10)
        self.requests: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/auth"

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/public"

    def publish(self, files: Mapping[str, str]) -> None:
        """Package the chart ``files`` with ``helm package`` and re-index the repository (once per version)."""
        meta = yaml.safe_load(files["Chart.yaml"])
        if (self.root / f"{meta['name']}-{meta['version']}.tgz").exists():
            return  # already served: a package must not change under a digest clients have seen
        work = self.dir / "src" / secrets.token_hex(4)
        write_tree(work, files)
        helm("package", work, "--destination", self.root, home=self.dir / "helm-home")
        helm("repo", "index", self.root, home=self.dir / "helm-home")
        shutil.rmtree(work)

    def downloads(self, name: str) -> int:
        with self._lock:
            return sum(1 for path, status in self.requests if path.endswith(f"/{name}") and status == 200)

    def start(self) -> None:
        repo = self
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(repo.root), **kwargs)

            def do_GET(self) -> None:
                prefix, _, rest = self.path.lstrip("/").partition("/")
                if prefix == "auth" and self.headers.get("Authorization") != expected:
                    self._record(401)
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="charts"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if prefix not in ("auth", "public"):
                    self._record(404)
                    self.send_error(404)
                    return
                self.path = "/" + rest
                if not (repo.root / rest).is_file():
                    self._record(404)
                    self.send_error(404)
                    return
                self._record(200)
                super().do_GET()

            def _record(self, status: int) -> None:
                with repo._lock:
                    repo.requests.append((self.path, status))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture(scope="session")
def chart_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartRepo]:
    repo = ChartRepo(tmp_path_factory.mktemp("chart-repo"))
    repo.start()
    try:
        yield repo
    finally:
        repo.stop()
