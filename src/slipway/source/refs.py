"""Where a branch points on the server, asked without starting git: what an idle controller does all day.

- HTTP(S): the smart protocol's ref listing (protocol v2 ``ls-refs`` for just the branch, or the
  v0 advertisement from ``info/refs?service=git-upload-pack``) over one shared client that keeps
  its connections open (:mod:`.http`). The repository's credentials go in an Authorization
  header, never in a URL, a log line or an error.
- Local paths and ``file://``: the branch read from the repository's own files (a loose ref, or
  ``packed-refs``).
- SSH with slipway's credentials: ``git-upload-pack``'s advertisement read through one kept-open
  OpenSSH connection (ControlMaster, in a private socket directory), so a check starts a small ssh
  client and no handshake.

Whenever this way cannot be sure it reached the server as git would — a proxy, a setting it does
not understand (:mod:`.gitconfig`), an answer it did not expect, a refusal — it answers None and
the caller runs ``git ls-remote``, whose errors are the classified ones users know.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..model import Credentials, Repository
from .auth import _credentials, authenticate, git_url
from .gitconfig import GitConfig
from .http import Pool
from .process import Git, kill_group

log = logging.getLogger("slipway.source")

_SHA = re.compile(rb"^[0-9a-f]{40}$")
_SCP = re.compile(r"^(?:(?P<user>[^@/]+)@)?(?P<host>[^:/]+):(?P<path>[^/].*|/.*)$")


def pkt_lines(data: bytes) -> list[bytes | None]:
    """Split pkt-line framing; None marks a flush, delim or response-end packet."""
    out: list[bytes | None] = []
    i = 0
    while i + 4 <= len(data):
        size = int(data[i : i + 4], 16)
        if size < 4:
            out.append(None)
            i += 4
            continue
        out.append(data[i + 4 : i + size])
        i += size
    if i != len(data):
        raise ValueError("truncated pkt-line")
    return out


def pkt(line: str) -> bytes:
    body = line.encode()
    return f"{len(body) + 4:04x}".encode() + body


def find_ref(lines: list[bytes | None], ref: str) -> tuple[bool, str | None]:
    """Read a v0 advertisement or a v2 ``ls-refs`` answer: (every line understood, commit of ``ref``)."""
    wanted, found = ref.encode(), None
    for line in lines:
        if line is None or line.startswith((b"# service=", b"version ")):
            continue
        sha, _, rest = line.split(b"\0", 1)[0].rstrip(b"\n").partition(b" ")
        if not _SHA.match(sha):
            return False, None
        if rest.split(b" ", 1)[0] == wanted:
            found = sha.decode()
    return True, found


def _basic(creds: Credentials | None) -> str | None:
    if creds is None or creds.type not in ("token", "userpass"):
        return None
    if creds.type == "token" and creds.token_as_username:
        user, password = creds.token or "", ""
    elif creds.type == "token":
        user, password = creds.username or "x-access-token", creds.token or ""
    else:
        user, password = creds.username or "", creds.password or ""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class RefReader:
    """In-process answers to "where is this branch on the server"; None means "ask git"."""

    def __init__(self, git: Git, home: Path) -> None:
        self.git = git
        self.home = home
        self.config = GitConfig(git)
        self.http = Pool()
        self.ssh = SshMasters()
        self._v2: dict[str, bool] = {}

    def head(self, repo: Repository, timeout: float) -> str | None:
        try:
            snap = self.config.snapshot()
            url = snap.rewrite(git_url(repo))
            ref = f"refs/heads/{repo.branch}"
            if url.startswith(("http://", "https://")):
                return None if snap.http_unsure else self._http(repo, url, ref, timeout, snap)
            if url.startswith("file://") or (not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url) and not _SCP.match(url)):
                return local_ref(Path(unquote(urlsplit(url).path) if url.startswith("file://") else url), ref)
            if url.startswith("ssh://") or _SCP.match(url):
                return None if snap.ssh_unsure else self._ssh(repo, url, ref, timeout)
        except (OSError, ValueError, subprocess.SubprocessError) as e:
            log.debug("in-process ref check of repository %s: %s; asking git", repo.id, type(e).__name__)
        return None

    def close(self) -> None:
        self.ssh.close()
        self.http.close()

    # -- HTTP ------------------------------------------------------------------------------------------

    def _http(self, repo: Repository, url: str, ref: str, timeout: float, snap: object) -> str | None:
        base = url.rstrip("/")
        headers = {"Git-Protocol": "version=2", "User-Agent": "git/slipway"}
        auth = _basic(_credentials(repo))
        if auth is None and _credentials(repo) is not None:
            return None  # SSH credentials on an HTTP URL: git's business
        if auth is not None:
            headers["Authorization"] = auth
        tls = (getattr(snap, "ca_file", None), getattr(snap, "ca_path", None), getattr(snap, "verify", True))
        if not self._v2.get(base):
            status, rheaders, body = self.http.request(
                "GET", f"{base}/info/refs?service=git-upload-pack", headers, None, timeout, tls
            )
            kind = rheaders.get("content-type", "")
            if status != 200 or kind != "application/x-git-upload-pack-advertisement":
                log.debug("in-process ref check of repository %s: HTTP %s (%s); asking git", repo.id, status, kind)
                return None
            lines = pkt_lines(body)
            if b"version 2\n" not in lines:
                understood, sha = find_ref(lines, ref)
                return sha if understood and sha else None
            self._v2[base] = True
        body = pkt("command=ls-refs\n") + b"0001" + pkt(f"ref-prefix {ref}\n") + b"0000"
        post = {**headers, "Content-Type": "application/x-git-upload-pack-request",
                "Accept": "application/x-git-upload-pack-result"}  # fmt: skip
        status, rheaders, answer = self.http.request("POST", f"{base}/git-upload-pack", post, body, timeout, tls)
        if status != 200:
            self._v2.pop(base, None)
            return None
        understood, sha = find_ref(pkt_lines(answer), ref)
        return sha if understood and sha else None

    # -- SSH -------------------------------------------------------------------------------------------

    def _ssh(self, repo: Repository, url: str, ref: str, timeout: float) -> str | None:
        creds = _credentials(repo)
        if creds is None or creds.type != "ssh":
            return None  # the user's own ssh setup (agent, config): git knows it, slipway does not
        if url.startswith("ssh://"):
            parts = urlsplit(url)
            user, host, port, path = parts.username, parts.hostname or "", parts.port, unquote(parts.path)
        else:
            m = _SCP.match(url)
            assert m is not None
            user, host, port, path = m.group("user"), m.group("host"), None, m.group("path")
        target = f"{user}@{host}" if user else host
        # A connection serves only the exact identity and host keys it was opened with.
        identity = "\0".join([repo.id, url, creds.ssh_key or "", creds.known_hosts or ""])
        with authenticate(self.git, self.home, repo, timeout) as auth:
            command = shlex.split(auth.env.get("GIT_SSH_COMMAND", ""))
            if not command:
                return None
            extra = ["-p", str(port)] if port else []
            remote = f"git-upload-pack {shlex.quote(path)}"
            out = self.ssh.run(command, extra, target, remote, timeout, auth.env, identity)
        if out is None:
            return None
        understood, sha = find_ref(pkt_lines(out), ref)
        return sha if understood and sha else None


def local_ref(path: Path, ref: str) -> str | None:
    """``ref`` read from a repository on disk (bare, or a work tree's ``.git``); None when unsure."""
    git_dir = path if (path / "HEAD").is_file() and (path / "objects").is_dir() else path / ".git"
    if not git_dir.is_dir() or (git_dir / "reftable").exists() or (git_dir / "commondir").exists():
        return None
    try:
        loose = (git_dir / ref).read_bytes().strip()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        loose = b""
    if loose:
        return loose.decode() if _SHA.match(loose) else None
    try:
        packed = (git_dir / "packed-refs").read_bytes()
    except FileNotFoundError:
        return None
    for line in packed.splitlines():
        sha, _, name = line.partition(b" ")
        if name == ref.encode() and _SHA.match(sha):
            return sha.decode()
    return None  # not found: git says what that means


class SshMasters:
    """One kept-open OpenSSH connection per server, in a socket directory only this process can use."""

    PERSIST = 120  # seconds a connection stays open unused; a poll interval is usually shorter

    def __init__(self) -> None:
        self._dir: str | None = None
        self._lock = threading.Lock()
        self._started: dict[str, tuple[list[str], str, dict[str, str]]] = {}

    def _socket(self, identity: str) -> str:
        with self._lock:
            if self._dir is None:
                self._dir = tempfile.mkdtemp(prefix="slipway-ssh-")  # 0700; short enough for a socket path
                atexit.register(self.close)
            return os.path.join(self._dir, hashlib.sha256(identity.encode()).hexdigest()[:24])

    def run(
        self,
        command: list[str],
        extra: list[str],
        target: str,
        remote: str,
        timeout: float,
        env: dict[str, str],
        identity: str,
    ) -> bytes | None:
        sock = self._socket(identity)
        control = ["-o", f"ControlPath={sock}"]
        if not os.path.exists(sock):
            # The master is started on its own (-f: into the background once connected), with its
            # output on /dev/null: a master left holding a check's pipes would hang the check.
            argv = [*command, *control, "-o", "ControlMaster=yes", "-o", f"ControlPersist={self.PERSIST}",
                    "-N", "-f", *extra, target]  # fmt: skip
            started = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, timeout=timeout, start_new_session=True)  # fmt: skip
            if started.returncode != 0 or not os.path.exists(sock):
                return None
            with self._lock:
                self._started[sock] = ([*command, *control, "-O", "exit", *extra, target], target, env)
        argv = [*command, *control, "-o", "ControlMaster=no", *extra, target, remote]
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        try:
            out, _ = proc.communicate(b"0000", timeout=timeout)  # a flush: "nothing wanted", the server ends
        except subprocess.TimeoutExpired:
            kill_group(proc)
            return None
        return out if proc.returncode == 0 else None

    def close(self) -> None:
        with self._lock:
            started, self._started = dict(self._started), {}
            directory, self._dir = self._dir, None
        for argv, _, env in started.values():
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=10)  # fmt: skip
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


__all__ = ["RefReader", "SshMasters", "find_ref", "local_ref", "pkt", "pkt_lines"]
