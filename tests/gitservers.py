"""Real Git repositories and servers for tests: no fakes, no mocks.

Repositories (plain functions)::

    work = make_repo(tmp_path / "work", {"k8s/app.yaml": "..."})     # work tree + bare origin, pushed
    sha = commit(work, {"k8s/app.yaml": "v2", "old.yaml": None})    # None deletes a file
    push(work)                                                      # to its origin

``make_repo(path, files, branch="main", origin=None)`` puts the bare origin next to the work tree
(``<path>.git``) unless ``origin`` says where, e.g. ``server.root / "name.git"`` to serve it. A file
value may be :class:`Symlink` (a symbolic link) or :class:`Executable` (mode 100755). Identity and
signing are set per command, so the helpers work on a machine without any git configuration.

Servers (session-scoped fixtures; both bind 127.0.0.1 only and are stopped by pid at the end):

- ``git_http_server`` -> :class:`HttpGitServer`: lighttpd + ``git http-backend``. ``.url(name)`` is
  ``http://127.0.0.1:PORT/git/<name>.git`` behind Basic auth (``.username``/``.password`` for
  userpass, ``.token`` for user ``x-access-token``), ``.public_url(name)`` the same repository
  without auth. ``.create_repo(name, files)`` makes ``.root/<name>.git`` and returns a work tree
  that pushes to it. ``.add_user(user, password)`` adds or changes a login (read per request, no
  restart; ``add_user("x-access-token", "ghp_xxxxxxxxxxxx")`` makes that the accepted token);
  ``with server.stopped():`` takes it down for a while. ``.base_url`` is the authenticated prefix
  to point an ``insteadOf`` rewrite at; ``/git/<name>`` without ``.git`` is served too, so
  ``https://github.com/company/k8s-manifests`` rewritten to ``<base_url>`` finds
  ``.root/k8s-manifests.git``.
- ``git_ssh_server`` -> :class:`SshGitServer`: OpenSSH sshd with its own host key.
  ``.url(name)`` is ``ssh://<user>@127.0.0.1:PORT/<root>/<name>.git``; ``.client_key`` is the
  private key text (``.client_key_path`` the file), ``.known_hosts`` a correct line,
  ``.wrong_known_hosts()`` a line for some other key, ``with server.changed_host_key():`` serves
  with a different host key for a while.

The servers are shared by the whole session: give repositories names no other test uses (names
may contain ``/``, e.g. ``f"{unique}/k8s-manifests"``), and restore what you change.

Function-scoped helpers: ``slipway_env`` points SLIPWAY_HOME and SLIPWAY_CACHE at fresh temp
directories; ``git_config`` points GIT_CONFIG_GLOBAL at a temp file (``.insteadof(base, prefix)``
adds a URL rewrite) and ignores the system config.

To use the fixtures in another test directory, re-export them from that directory's conftest.py::

    from tests.gitservers import git_config, git_http_server, git_ssh_server, slipway_env  # noqa: F401
"""

from __future__ import annotations

import contextlib
import getpass
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = [
    "Executable",
    "FileValue",
    "GitConfig",
    "HttpGitServer",
    "SshGitServer",
    "Symlink",
    "commit",
    "free_port",
    "git",
    "git_config",
    "git_http_server",
    "git_ssh_server",
    "make_repo",
    "push",
    "slipway_env",
]

# Per-command settings so commits work whatever (or however little) git configuration exists.
_COMMIT_CONFIG = [
    "-c", "user.name=slipway tests",
    "-c", "user.email=tests@slipway.invalid",
    "-c", "commit.gpgsign=false",
    "-c", "core.hooksPath=/dev/null",
]  # fmt: skip

GIT_HTTP_BACKEND_CANDIDATES = ("/usr/lib/git-core/git-http-backend", "/usr/libexec/git-core/git-http-backend")


# -- repositories ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Symlink:
    """A file value for :func:`commit` / :func:`make_repo` that commits a symbolic link to ``target``."""

    target: str


@dataclass(frozen=True)
class Executable:
    """A file value for :func:`commit` / :func:`make_repo` that commits an executable file (mode 100755)."""

    content: str


FileValue = str | bytes | Symlink | Executable | None


def _require(name: str, package: str, candidates: tuple[str, ...] = ()) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    for c in candidates:
        if not found and os.access(c, os.X_OK):
            found = c
    if not found:
        pytest.fail(f"{name} is not installed: install the Debian package {package} (apt-get install {package})")
    return found


def git(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run git, fail loudly with its stderr, return its stdout (stripped)."""
    result = subprocess.run(
        [_require("git", "git"), *map(str, args)],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(map(str, args))} failed ({result.returncode}): {result.stderr}")
    return result.stdout.strip()


def _write(workdir: Path, files: Mapping[str, FileValue]) -> None:
    for rel, content in files.items():
        path = workdir / rel
        if content is None:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        if isinstance(content, Symlink):
            os.symlink(content.target, path)
        elif isinstance(content, Executable):
            path.write_text(content.content)
            path.chmod(0o755)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def commit(workdir: Path, files: Mapping[str, FileValue], message: str = "change") -> str:
    """Write (or, for ``None``, delete) files in the work tree, commit everything, return the new SHA."""
    _write(workdir, files)
    git("add", "-A", cwd=workdir)
    git(*_COMMIT_CONFIG, "commit", "--quiet", "--allow-empty", "-m", message, cwd=workdir)
    return git("rev-parse", "HEAD", cwd=workdir)


def push(workdir: Path, branch: str | None = None) -> None:
    """Push the work tree's current branch (or ``HEAD`` to ``branch``) to its origin, forcing."""
    target = branch or git("symbolic-ref", "--short", "HEAD", cwd=workdir)
    git(*_COMMIT_CONFIG, "push", "--quiet", "--force", "origin", f"HEAD:refs/heads/{target}", cwd=workdir)


def make_repo(path: Path, files: Mapping[str, FileValue], branch: str = "main", origin: Path | None = None) -> Path:
    """A work tree at ``path`` with ``files`` committed on ``branch`` and pushed to a bare origin.

    The origin is ``origin`` if given (e.g. ``server.root / "name.git"``), else ``<path>.git``
    next to the work tree. Returns the work tree.
    """
    path = Path(path)
    origin = Path(origin) if origin is not None else path.with_name(path.name + ".git")
    origin.parent.mkdir(parents=True, exist_ok=True)
    git("init", "--quiet", "--bare", f"--initial-branch={branch}", origin)
    git("init", "--quiet", f"--initial-branch={branch}", path)
    git("remote", "add", "origin", origin, cwd=path)
    commit(path, files, "initial")
    push(path)
    return path


def origin_of(workdir: Path) -> Path:
    """The bare repository a work tree made by :func:`make_repo` pushes to."""
    return Path(git("remote", "get-url", "origin", cwd=workdir))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    _stop(proc)
    raise RuntimeError(
        f"{what} did not listen on 127.0.0.1:{port} within {timeout}s: {log.read_text(errors='replace')}"
    )


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


# -- HTTP -----------------------------------------------------------------------------------------


class HttpGitServer:
    """lighttpd serving ``git http-backend`` for the bare repositories under ``root``."""

    def __init__(self, base: Path) -> None:
        self.lighttpd = _require("lighttpd", "lighttpd")
        self.backend = _require("git-http-backend", "git", GIT_HTTP_BACKEND_CANDIDATES)
        self.dir = base
        self.root = base / "repos"
        self.root.mkdir(parents=True)
        (base / "htdocs").mkdir()
        self.username = "slipway-user"
        self.password = "pw-" + secrets.token_hex(8)
        self.token = "tok-" + secrets.token_hex(12)
        self._users: dict[str, str] = {self.username: self.password, "x-access-token": self.token}
        self._write_users()
        self.port = free_port()
        self.log = base / "lighttpd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    # URLs -----------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/git/``: the authenticated prefix (what an insteadOf rewrite points at)."""
        return f"http://127.0.0.1:{self.port}/git/"

    @property
    def public_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/public/"

    def url(self, name: str) -> str:
        """The authenticated URL of repository ``name`` (``root/<name>.git``)."""
        return f"{self.base_url}{name}.git"

    def public_url(self, name: str) -> str:
        """The same repository, served without authentication."""
        return f"{self.public_base_url}{name}.git"

    # repositories and users -----------------------------------------------------------------------

    def create_repo(
        self, name: str, files: Mapping[str, FileValue], branch: str = "main", workdir: Path | None = None
    ) -> Path:
        """A served repository ``name`` with ``files`` on ``branch``; returns its work tree (push to update)."""
        return make_repo(workdir or self.dir / "work" / name, files, branch, origin=self.root / f"{name}.git")

    def add_user(self, username: str, password: str) -> None:
        """Accept another login (or change a password); lighttpd reads the file on every request."""
        self._users[username] = password
        if username == self.username:
            self.password = password
        if username == "x-access-token":
            self.token = password
        self._write_users()

    def _write_users(self) -> None:
        tmp = self.dir / "users.tmp"
        tmp.write_text("".join(f"{u}:{p}\n" for u, p in self._users.items()))
        tmp.replace(self.dir / "users")

    # process --------------------------------------------------------------------------------------

    def _config(self) -> str:
        q = _lighttpd_quote
        return f"""
server.bind = "127.0.0.1"
server.port = {self.port}
server.document-root = {q(self.dir / "htdocs")}
server.errorlog = {q(self.log)}
# lighttpd slows down wrong logins against guessing; tests try wrong logins on purpose
server.feature-flags = ("auth.delay-invalid-creds" => "disable")
server.modules = ("mod_auth", "mod_authn_file", "mod_alias", "mod_setenv", "mod_cgi")
alias.url = (
    "/git/" => {q(self.backend + "/")},
    "/public/" => {q(self.backend + "/")},
)
auth.backend = "plain"
auth.backend.plain.userfile = {q(self.dir / "users")}
$HTTP["url"] =~ "^/(git|public)/" {{
    cgi.assign = ("" => "")
    setenv.add-environment = (
        "GIT_PROJECT_ROOT" => {q(self.root)},
        "GIT_HTTP_EXPORT_ALL" => "1",
    )
}}
$HTTP["url"] =~ "^/git/" {{
    auth.require = ("" => ("method" => "basic", "realm" => "slipway-tests", "require" => "valid-user"))
}}
"""

    def start(self) -> None:
        conf = self.dir / "lighttpd.conf"
        conf.write_text(self._config())
        out = open(self.dir / "lighttpd.out", "ab")  # noqa: SIM115 - handed to the child process
        try:
            self.proc = subprocess.Popen(
                [self.lighttpd, "-D", "-f", str(conf)], stdout=out, stderr=out, stdin=subprocess.DEVNULL
            )
        finally:
            out.close()
        _wait_listening(self.port, self.proc, self.dir / "lighttpd.out", "lighttpd")

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """The server is down inside the block and back on the same port after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()


def _lighttpd_quote(value: object) -> str:
    text = str(value)
    if '"' in text or "\\" in text:
        raise ValueError(f"cannot put {text!r} into a lighttpd config")
    return f'"{text}"'


# -- SSH ------------------------------------------------------------------------------------------


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        [_require("ssh-keygen", "openssh-client"), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )


class SshGitServer:
    """OpenSSH sshd on 127.0.0.1 that lets the current user in with one generated client key."""

    def __init__(self, base: Path) -> None:
        self.sshd = _require("sshd", "openssh-server")
        _require("ssh", "openssh-client")
        self.dir = base
        self.root = base / "repos"
        self.root.mkdir(parents=True)
        self.user = getpass.getuser()
        self.port = free_port()
        self.log = base / "sshd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        _keygen(base / "host_key", "slipway-test-host")
        _keygen(base / "other_host_key", "slipway-test-other-host")
        _keygen(base / "client_key", "slipway-test-client")
        (base / "authorized_keys").write_text((base / "client_key.pub").read_text())
        self.host_key = base / "host_key"

    @property
    def client_key_path(self) -> Path:
        return self.dir / "client_key"

    @property
    def client_key(self) -> str:
        """The client's private key (OpenSSH format text) that the server accepts."""
        return self.client_key_path.read_text()

    def _known_hosts_line(self, key: Path) -> str:
        keytype, blob = Path(f"{key}.pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {keytype} {blob}"

    @property
    def known_hosts(self) -> str:
        """A correct known_hosts line for the server's (original) host key."""
        return self._known_hosts_line(self.dir / "host_key")

    def wrong_known_hosts(self) -> str:
        """A known_hosts line for this host and port with a key the server does not have."""
        return self._known_hosts_line(self.dir / "other_host_key")

    def url(self, name: str) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{self.root}/{name}.git"

    def create_repo(
        self, name: str, files: Mapping[str, FileValue], branch: str = "main", workdir: Path | None = None
    ) -> Path:
        """A served repository ``name`` with ``files`` on ``branch``; returns its work tree (push to update)."""
        return make_repo(workdir or self.dir / "work" / name, files, branch, origin=self.root / f"{name}.git")

    def _config(self) -> str:
        return f"""
ListenAddress 127.0.0.1:{self.port}
HostKey {self.host_key}
AuthorizedKeysFile {self.dir / "authorized_keys"}
PidFile {self.dir / "sshd.pid"}
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
AllowTcpForwarding no
X11Forwarding no
PermitTTY no
LogLevel VERBOSE
"""

    def start(self) -> None:
        if os.geteuid() == 0:
            # sshd's privilege separation directory, normally made by the Debian service
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        conf = self.dir / "sshd_config"
        conf.write_text(self._config())
        out = open(self.log, "ab")  # noqa: SIM115 - handed to the child process
        try:
            self.proc = subprocess.Popen(
                [self.sshd, "-D", "-e", "-f", str(conf)], stdout=out, stderr=out, stdin=subprocess.DEVNULL
            )
        finally:
            out.close()
        _wait_listening(self.port, self.proc, self.log, "sshd")

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None

    def restart(self, host_key: Path | None = None) -> None:
        """Restart on the same port, with ``host_key`` (a private key file) or the original one."""
        self.stop()
        self.host_key = host_key or self.dir / "host_key"
        self.start()

    @contextlib.contextmanager
    def changed_host_key(self) -> Iterator[None]:
        """The server presents a different host key inside the block (the original one after it)."""
        self.restart(self.dir / "other_host_key")
        try:
            yield
        finally:
            self.restart()


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def git_http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpGitServer]:
    """One lighttpd + git http-backend for the whole session (see :class:`HttpGitServer`)."""
    server = HttpGitServer(tmp_path_factory.mktemp("git-http"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def git_ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGitServer]:
    """One sshd for the whole session (see :class:`SshGitServer`)."""
    server = SshGitServer(tmp_path_factory.mktemp("git-ssh"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def slipway_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Fresh SLIPWAY_HOME and SLIPWAY_CACHE under tmp_path; returns {"home": ..., "cache": ...}."""
    dirs = {"home": tmp_path / "slipway-home", "cache": tmp_path / "slipway-cache"}
    for d in dirs.values():
        d.mkdir()
    monkeypatch.setenv("SLIPWAY_HOME", str(dirs["home"]))
    monkeypatch.setenv("SLIPWAY_CACHE", str(dirs["cache"]))
    return dirs


class GitConfig:
    """A global git config file of the test's own (GIT_CONFIG_GLOBAL); the system config is ignored."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()

    def set(self, key: str, value: str, *, add: bool = False) -> None:
        git("config", "--file", self.path, *(["--add"] if add else []), key, value)

    def insteadof(self, base: str, prefix: str) -> None:
        """URLs starting with ``prefix`` are fetched from ``base`` instead (``url.<base>.insteadOf``)."""
        self.set(f"url.{base}.insteadOf", prefix, add=True)


@pytest.fixture
def git_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitConfig:
    """Point GIT_CONFIG_GLOBAL at an empty file of this test's own and ignore the system config."""
    cfg = GitConfig(tmp_path / "gitconfig")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(cfg.path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return cfg
