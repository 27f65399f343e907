"""Pre- and post-sync hooks: shell commands with a timeout and the sync's context in their environment.

Each hook gets ``SLIPWAY_WORKFLOW_ID``, ``SLIPWAY_SYNC_ID``, ``SLIPWAY_REVISION``,
``SLIPWAY_NAMESPACE`` and ``KUBECONFIG`` (the destination's, narrowed to its context), runs in its
own process group so a timeout kills everything it started, and has its output kept (the last
64 KiB) in the sync result: read from a pipe as it comes, never more than that held in memory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from . import tools

MAX_OUTPUT = 64 * 1024  # bytes of a hook's output kept: its last ones
READ_SIZE = 64 * 1024
LINGER = 0.5  # seconds to wait for the rest of the output once the hook's process has exited


@dataclass
class HookResult:
    phase: str  # pre | post
    command: str
    exit_code: int | None  # None: timed out
    output: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def kubeconfig_for(path: Path, context: str | None) -> Iterator[Path]:
    """The kubeconfig a hook sees: the destination's own, or a copy whose current context is ours."""
    if not context:
        yield path
        return
    doc = yaml.safe_load(path.read_text()) or {}
    base = path.parent
    for section, keys in (
        ("clusters", ("certificate-authority",)),
        ("users", ("client-certificate", "client-key", "tokenFile")),
    ):
        for entry in doc.get(section) or []:
            inner = entry.get(section[:-1]) or {}
            for key in keys:
                if isinstance(inner.get(key), str) and not os.path.isabs(inner[key]):
                    inner[key] = str(base / inner[key])
    doc["current-context"] = context
    fd, name = tempfile.mkstemp(prefix="slipway-kubeconfig-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w") as out:
            yaml.safe_dump(doc, out)
        yield Path(name)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


class _Tail:
    """Reads a pipe to its end in a thread of its own, keeping only the last ``limit`` bytes: a hook
    never blocks on a full pipe, and what it prints never costs more than ``limit`` of memory."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._stream, self._limit = stream, limit
        self._buf = bytearray()
        self._cut = False
        self._lock = threading.Lock()
        self.done = threading.Event()
        threading.Thread(target=self._read, name="slipway-hook-output", daemon=True).start()

    def _read(self) -> None:
        try:
            while chunk := os.read(self._stream.fileno(), READ_SIZE):
                with self._lock:
                    self._buf += chunk
                    if len(self._buf) > self._limit:
                        del self._buf[: len(self._buf) - self._limit]
                        self._cut = True
        except (OSError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                self._stream.close()
            self.done.set()

    def text(self) -> str:
        with self._lock:
            raw, cut = bytes(self._buf), self._cut
        text = raw.decode("utf-8", "replace")
        return "...\n" + text if cut else text


def run_hook(
    phase: str, command: str, env: dict[str, str], timeout: float, cancel: threading.Event | None = None
) -> HookResult:
    """Run one hook to its end, its timeout, or ``cancel`` (which kills it: a hook may take minutes)."""
    started = time.monotonic()
    path = env.get("PATH", os.defpath)
    kubectl = tools.built("kubectl")
    if kubectl is not None:
        path = f"{path}{os.pathsep}{kubectl.parent}"  # the user's own kubectl comes first
    proc = subprocess.Popen(
        ["/bin/sh", "-c", command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**env, "PATH": path},
        start_new_session=True,
    )
    assert proc.stdout is not None
    tail = _Tail(proc.stdout, MAX_OUTPUT)
    code: int | None = None
    why = ""
    while True:
        try:
            code = proc.wait(timeout=0.1)
            break
        except subprocess.TimeoutExpired:
            if time.monotonic() - started > timeout:
                why = f"timed out after {timeout:.0f}s"
            elif cancel is not None and cancel.is_set():
                why = "cancelled"
            if why:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                code = None
                break
    # A child the hook left running may hold the pipe open: the hook is over when its own process
    # is; what is read keeps draining the pipe (bounded) so that child never blocks on it.
    tail.done.wait(LINGER)
    text = tail.text()
    if why:
        text += f"\n({why})"
    return HookResult(phase, command, code, text, round(time.monotonic() - started, 3))
