"""Pre- and post-sync hooks: shell commands with a timeout and the sync's context in their environment.

Each hook gets ``SLIPWAY_WORKFLOW_ID``, ``SLIPWAY_SYNC_ID``, ``SLIPWAY_REVISION``,
``SLIPWAY_NAMESPACE`` and ``KUBECONFIG`` (the destination's, narrowed to its context), runs in its
own process group so a timeout kills everything it started, and has its output kept (the last
64 KiB) in the sync result.
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
from typing import Any

import yaml

from . import tools

MAX_OUTPUT = 64 * 1024


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


def run_hook(
    phase: str, command: str, env: dict[str, str], timeout: float, cancel: threading.Event | None = None
) -> HookResult:
    """Run one hook to its end, its timeout, or ``cancel`` (which kills it: a hook may take minutes)."""
    started = time.monotonic()
    path = env.get("PATH", os.defpath)
    kubectl = tools.built("kubectl")
    if kubectl is not None:
        path = f"{path}{os.pathsep}{kubectl.parent}"  # the user's own kubectl comes first
    with tempfile.TemporaryFile() as out:  # a file, not a pipe: a chatty hook never blocks on a full pipe
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**env, "PATH": path},
            start_new_session=True,
        )
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
        out.seek(0)
        raw = out.read()
    text = raw.decode("utf-8", "replace")
    if len(text) > MAX_OUTPUT:
        text = "...\n" + text[-MAX_OUTPUT:]
    if why:
        text += f"\n({why})"
    return HookResult(phase, command, code, text, round(time.monotonic() - started, 3))
