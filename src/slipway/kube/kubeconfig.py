"""A kubeconfig read into what a connection needs: the server, a TLS context and how to authenticate.

slipway reads kubeconfigs itself, with the standard library only: what it needs is small (one
context of one file) and a command that talks to a cluster should not pay for a general-purpose
client library's import. Supported, as client-go reads them: ``certificate-authority(-data)``,
``insecure-skip-tls-verify``, ``tls-server-name``, client certificates (files or data),
``token``, ``tokenFile`` (read again when the server answers 401, as rotated service-account
tokens need), ``username``/``password``, and ``exec`` credential plugins
(``client.authentication.k8s.io`` v1, v1beta1, v1alpha1; the token is kept until its
``expirationTimestamp`` or a 401). ``auth-provider`` and ``proxy-url`` are refused with an error
that says so, never ignored. Credentials never appear in an error.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

EXEC_TIMEOUT = 60.0
EXEC_VERSIONS = (
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
    "client.authentication.k8s.io/v1alpha1",
)


class Auth:
    """How requests authenticate: a header to send, and a second chance after a 401."""

    def header(self) -> str | None:
        return None

    def refresh(self, sent: str | None) -> bool:
        """After a 401 to a request sent with ``sent``: True when there is a new header to try."""
        del sent
        return False


class Static(Auth):
    def __init__(self, value: str) -> None:
        self._value = value

    def header(self) -> str | None:
        return self._value


class TokenFile(Auth):
    """A bearer token read from a file, read again after a 401 (the kubelet rotates it)."""

    def __init__(self, path: Path, where: str) -> None:
        self._path, self._where = path, where
        self._lock = threading.Lock()
        self._value: str | None = None

    def _read(self) -> str:
        try:
            token = self._path.read_text().strip()
        except OSError as e:
            raise ConfigError(f"{self._where}: cannot read tokenFile {self._path}: {e.strerror or e}") from None
        return f"Bearer {token}"

    def header(self) -> str | None:
        with self._lock:
            if self._value is None:
                self._value = self._read()
            return self._value

    def refresh(self, sent: str | None) -> bool:
        with self._lock:
            self._value = self._read()
            return self._value != sent


class Exec(Auth):
    """A token from an exec credential plugin, kept until it expires or the server refuses it."""

    def __init__(self, spec: dict[str, Any], base: Path, where: str) -> None:
        self._where = where
        api_version = str(spec.get("apiVersion") or "")
        if api_version not in EXEC_VERSIONS:
            raise ConfigError(f"{where}: exec apiVersion {api_version!r} is not one of {', '.join(EXEC_VERSIONS)}")
        if spec.get("interactiveMode") == "Always":
            raise ConfigError(f"{where}: exec plugin needs a terminal (interactiveMode: Always); slipway runs without")
        command = str(spec.get("command") or "")
        if not command:
            raise ConfigError(f"{where}: exec has no command")
        if os.sep in command and not os.path.isabs(command):
            command = str(base / command)  # client-go: a relative path is relative to the kubeconfig
        self._argv = [command, *(str(a) for a in spec.get("args") or [])]
        self._env = {str(e.get("name")): str(e.get("value", "")) for e in spec.get("env") or [] if isinstance(e, dict)}
        self._info = json.dumps({"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": False}})
        self._lock = threading.Lock()
        self._value: str | None = None
        self._expires = 0.0

    def _run(self) -> None:
        env = {**os.environ, **self._env, "KUBERNETES_EXEC_INFO": self._info}
        name = Path(self._argv[0]).name
        try:
            proc = subprocess.run(
                self._argv, env=env, capture_output=True, stdin=subprocess.DEVNULL, timeout=EXEC_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ConfigError(f"{self._where}: exec plugin {name} could not run: {e}") from None
        if proc.returncode != 0:
            said = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["(nothing on stderr)"]
            raise ConfigError(f"{self._where}: exec plugin {name} failed (exit {proc.returncode}): {said[0][:300]}")
        try:
            status = json.loads(proc.stdout)["status"]
            token = str(status["token"])
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f"{self._where}: exec plugin {name} printed no ExecCredential with status.token "
                "(client certificates from exec plugins are not supported)"
            ) from None
        self._value = f"Bearer {token}"
        self._expires = _expiry(status.get("expirationTimestamp"))

    def header(self) -> str | None:
        with self._lock:
            if self._value is None or time.time() >= self._expires:
                self._run()
            return self._value

    def refresh(self, sent: str | None) -> bool:
        with self._lock:
            if self._value == sent:  # not already renewed by another thread
                self._run()
            return self._value != sent


def _expiry(stamp: Any) -> float:
    if not stamp:
        return float("inf")
    try:
        when = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0  # unreadable: ask the plugin again next time
    return when - 10.0  # renewed a little early: a request in flight should not carry a token that dies on the way


@dataclass(frozen=True)
class Target:
    """One context of a kubeconfig, ready to connect."""

    path: Path
    context: str
    server: str
    namespace: str | None
    tls: ssl.SSLContext | None  # None: plain http
    tls_server_name: str | None
    auth: Auth


def _named(doc: dict[str, Any], section: str, name: str, key: str, path: Path) -> dict[str, Any]:
    for entry in doc.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(key)
            return value if isinstance(value, dict) else {}
    raise ConfigError(f"kubeconfig {path}: no {key} named {name!r} in {section}")


def load(path: Path, context: str | None = None) -> Target:
    """Read ``path`` and resolve ``context`` (default: its current-context)."""
    import yaml

    try:
        doc = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as e:
        raise ConfigError(f"cannot read kubeconfig {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"kubeconfig {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"kubeconfig {path} is not a kubeconfig (no mapping at the top)")
    name = context or doc.get("current-context")
    if not name:
        raise ConfigError(f"kubeconfig {path} has no current context; name one")
    ctx = _named(doc, "contexts", str(name), "context", path)
    cluster = _named(doc, "clusters", str(ctx.get("cluster")), "cluster", path)
    user = _named(doc, "users", str(ctx.get("user")), "user", path) if ctx.get("user") else {}
    where = f"kubeconfig {path}, context {name!r}"
    server = str(cluster.get("server") or "").rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise ConfigError(f"{where}: cluster server {server!r} is not an http(s) URL")
    for unsupported in ("proxy-url",):
        if cluster.get(unsupported):
            raise ConfigError(f"{where}: {unsupported} is not supported")
    if user.get("auth-provider"):
        raise ConfigError(f"{where}: auth-provider is not supported (use an exec credential plugin)")
    tls = _tls(cluster, user, path.parent, where) if server.startswith("https://") else None
    return Target(
        path=path,
        context=str(name),
        server=server,
        namespace=ctx.get("namespace") or None,
        tls=tls,
        tls_server_name=cluster.get("tls-server-name") or None,
        auth=_auth(user, path.parent, where),
    )


def _file(base: Path, value: Any) -> str:
    p = Path(str(value)).expanduser()
    return str(p if p.is_absolute() else base / p)


def _data(section: dict[str, Any], key: str, where: str) -> bytes:
    try:
        return base64.b64decode(str(section[key]), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: {key} is not base64") from None


def _tls(cluster: dict[str, Any], user: dict[str, Any], base: Path, where: str) -> ssl.SSLContext:
    try:
        if cluster.get("insecure-skip-tls-verify"):
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif cluster.get("certificate-authority-data"):
            pem = _data(cluster, "certificate-authority-data", where).decode("ascii", "replace")
            ctx = ssl.create_default_context(cadata=pem)
        elif cluster.get("certificate-authority"):
            ctx = ssl.create_default_context(cafile=_file(base, cluster["certificate-authority"]))
        else:
            ctx = ssl.create_default_context()
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"{where}: cannot load the cluster's certificate authority: {e}") from None
    if user.get("client-certificate-data") or user.get("client-certificate"):
        _client_cert(ctx, user, base, where)
    return ctx


def _client_cert(ctx: ssl.SSLContext, user: dict[str, Any], base: Path, where: str) -> None:
    # The ssl module loads a certificate chain from files only: inline data goes to a private
    # directory for the moment of loading and is removed at once.
    tmp = None
    try:
        if user.get("client-certificate-data"):
            tmp = Path(tempfile.mkdtemp(prefix="slipway-tls-"))
            cert, key = tmp / "cert.pem", tmp / "key.pem"
            for target, field in ((cert, "client-certificate-data"), (key, "client-key-data")):
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(_data(user, field, where) if user.get(field) else b"")
            ctx.load_cert_chain(str(cert), str(key))
        else:
            key_file = user.get("client-key")
            if not key_file:
                raise ConfigError(f"{where}: client-certificate without client-key")
            ctx.load_cert_chain(_file(base, user["client-certificate"]), _file(base, key_file))
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"{where}: cannot load the client certificate and key: {e}") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _auth(user: dict[str, Any], base: Path, where: str) -> Auth:
    token_file = user.get("tokenFile") or user.get("token-file")
    if token_file:
        return TokenFile(Path(_file(base, token_file)), where)
    if user.get("token"):
        return Static(f"Bearer {user['token']}")
    if isinstance(user.get("exec"), dict):
        return Exec(user["exec"], base, where)
    if user.get("username") and user.get("password"):
        raw = f"{user['username']}:{user['password']}".encode()
        return Static("Basic " + base64.b64encode(raw).decode("ascii"))
    return Auth()


__all__ = ["Auth", "Exec", "Static", "Target", "TokenFile", "load"]
