"""Every render runs in a child process with a time and a memory limit: Jsonnet, Helm and kustomize alike.

A render is code from a repository; a library cannot be stopped from inside (the Jsonnet binding
holds the interpreter until it returns), so each render is a process of its own, in a session of
its own, watched by the caller's thread: its process tree's resident memory is read every few
milliseconds and the whole group killed past the limit, past the deadline, when the caller's
cancel event is set (the server's and the controller's are set on SIGTERM), or when slipway exits
(:func:`stop_all`, an exit hook). ``setpriv
--pdeathsig`` makes the child die with the thread that started it even when slipway is killed
outright. The error names the render and the limit hit.

Limits: ``$SLIPWAY_RENDER_TIMEOUT`` (a duration, default ``60s``) for the whole render of a
workflow's path, ``$SLIPWAY_RENDER_MEMORY`` (``1Gi``, ``512Mi``, bytes) for each of its processes.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import settings
from ..errors import Cancelled, ManifestError

TICK = 0.02  # seconds between looks at a running render's memory, deadline and caller
MAX_OUTPUT = 256 * 1024 * 1024  # what a render may print; more is refused, never held
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Limits:
    timeout: float  # seconds, for the whole render of one path
    memory: int  # bytes of resident memory, for each process tree a render runs

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(settings.render_timeout(), settings.render_memory())

    def describe_time(self) -> str:
        return f"{self.timeout:g}s time limit (SLIPWAY_RENDER_TIMEOUT)"

    def describe_memory(self) -> str:
        return f"{_size(self.memory)} memory limit (SLIPWAY_RENDER_MEMORY)"


def _size(n: int) -> str:
    if n >= 1 << 30 and n % (1 << 28) == 0:
        return f"{n / (1 << 30):g} GiB"
    return f"{n / (1 << 20):.4g} MiB"


@dataclass
class Result:
    returncode: int
    stdout: bytes
    stderr: str


class LimitExceeded(ManifestError):
    """A render ran past its time or memory limit; its processes have been killed."""


_live: dict[int, subprocess.Popen[bytes]] = {}  # pid -> child, for stop_all
_stopped: set[int] = set()  # pids stop_all killed: their callers get Cancelled
_live_lock = threading.Lock()


def stop_all() -> None:
    """Kill every render running in this process (slipway is stopping); each caller gets Cancelled."""
    with _live_lock:
        children = list(_live.values())
        _stopped.update(_live)
    for proc in children:
        _kill(proc)


atexit.register(stop_all)


def live() -> list[int]:
    """The pids of the renders running now (tests check that none is left behind)."""
    with _live_lock:
        return list(_live)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its descendants (kustomize runs helm; each counts)."""
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/statm", "rb") as f:
                total += int(f.read().split()[1]) * _PAGE
            tasks = os.listdir(f"/proc/{p}/task")  # Go starts children from any of its threads
        except (OSError, ValueError, IndexError):
            continue
        for task in tasks:
            try:
                with open(f"/proc/{p}/task/{task}/children", "rb") as f:
                    stack += [int(c) for c in f.read().split()]
            except (OSError, ValueError):
                continue
    return total


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # before Linux 5.3: the loop polls instead
        return None


def _pdeathsig() -> list[str]:
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


def run(
    argv: list[str],
    *,
    where: str,
    limits: Limits,
    deadline: float,
    cancel: threading.Event | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
) -> Result:
    """Run ``argv`` to its end within ``limits`` and ``deadline`` (a ``time.monotonic()``); LimitExceeded
    or Cancelled otherwise, with its whole process group killed before this returns."""
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{where}: render cancelled")
    if time.monotonic() >= deadline:
        raise LimitExceeded(f"{where}: render exceeded the {limits.describe_time()}")
    proc = subprocess.Popen(
        [*_pdeathsig(), *argv],
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
        start_new_session=True,
    )
    with _live_lock:
        _live[proc.pid] = proc
    out: list[bytes] = []
    err: list[bytes] = []
    too_much = threading.Event()
    threads = [
        threading.Thread(target=_drain, args=(proc.stdout, out, too_much), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, err, too_much), daemon=True),
    ]
    if stdin is not None:
        threads.append(threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True))
    for t in threads:
        t.start()
    pidfd = _pidfd(proc.pid)
    try:
        while True:
            # Woken the moment the child ends (a small render takes milliseconds), else every TICK to
            # look at its memory, the clock and the caller.
            if pidfd is not None:
                if select.select([pidfd], [], [], TICK)[0]:
                    proc.wait()
                    break
            else:
                try:
                    proc.wait(timeout=TICK)
                    break
                except subprocess.TimeoutExpired:
                    pass
            if cancel is not None and cancel.is_set():
                _kill(proc)
                raise Cancelled(f"{where}: render cancelled")
            if time.monotonic() >= deadline:
                _kill(proc)
                raise LimitExceeded(f"{where}: render exceeded the {limits.describe_time()}")
            if _tree_rss(proc.pid) > limits.memory:
                _kill(proc)
                raise LimitExceeded(f"{where}: render exceeded the {limits.describe_memory()}")
            if too_much.is_set():
                _kill(proc)
                raise LimitExceeded(f"{where}: render printed more than {MAX_OUTPUT >> 20} MiB")
        if proc.pid in _stopped:
            raise Cancelled(f"{where}: render cancelled (slipway is stopping)")
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()) + 1)
        if too_much.is_set():
            raise LimitExceeded(f"{where}: render printed more than {MAX_OUTPUT >> 20} MiB")
    finally:
        # Whatever happened (an exception, an interrupt), nothing of this render outlives the call.
        if proc.returncode is None or proc.returncode < 0:
            _kill(proc)
        with contextlib.suppress(Exception):
            proc.wait(timeout=5)
        with _live_lock:
            _live.pop(proc.pid, None)
            _stopped.discard(proc.pid)
        if pidfd is not None:
            os.close(pidfd)
        for stream in (proc.stdout, proc.stderr, proc.stdin):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
    stderr = b"".join(err).decode("utf-8", "replace")
    return Result(proc.returncode, b"".join(out), stderr)


def _drain(stream: Any, into: list[bytes], too_much: threading.Event) -> None:
    read = getattr(stream, "read1", None) or stream.read
    total = 0
    with contextlib.suppress(OSError, ValueError):
        while True:
            chunk: bytes = read(1 << 16)
            if not chunk:
                return
            total += len(chunk)
            if total > MAX_OUTPUT:
                too_much.set()
                return
            into.append(chunk)


def _feed(stream: Any, data: bytes) -> None:
    with contextlib.suppress(OSError, ValueError):
        stream.write(data)
        stream.close()
