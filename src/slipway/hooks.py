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
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from .cluster import build

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


def run_hook(phase: str, command: str, env: dict[str, str], timeout: float) -> HookResult:
    started = time.monotonic()
    path = env.get("PATH", os.defpath)
    kubectl_dir = str(build.bin_dir(build.COMPONENTS["kubernetes"]))
    if os.path.isdir(kubectl_dir):
        path = f"{path}{os.pathsep}{kubectl_dir}"  # the user's own kubectl comes first
    proc = subprocess.Popen(
        ["/bin/sh", "-c", command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**env, "PATH": path},
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        code = None
    text = output.decode("utf-8", "replace")
    if len(text) > MAX_OUTPUT:
        text = "...\n" + text[-MAX_OUTPUT:]
    if code is None:
        text += f"\n(timed out after {timeout:.0f}s)"
    return HookResult(phase, command, code, text, round(time.monotonic() - started, 3))
