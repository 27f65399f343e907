"""HTTP/1.1 to one API server: kept-open connections shared by threads, on the standard library.

Each request takes an idle connection (or opens one, at most ``max_connections`` at once), sends,
reads the whole answer and puts the connection back. A kept connection the server closed while it
was idle fails before any answer arrives; the request is then sent once more on a new connection
(almost always the server never saw it; the writes slipway sends are applies, deletes with
preconditions and creates that answer AlreadyExists, so a rare second arrival changes nothing). A 401 gives the kubeconfig's credentials one chance to renew (a rotated
token file, an expired exec token). Gzip answers are accepted (big LISTs of a remote cluster).

Why not a general HTTP library: the one slipway used cost a third of a command's start to its
first request in imports alone, and about twice the CPU per request, on a machine the API server
shares (docs/benchmarks.md).
"""

from __future__ import annotations

import http.client
import ssl
import threading
import zlib
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from .. import __version__
from .kubeconfig import Target

USER_AGENT = f"slipway/{__version__}"
_GONE = (
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    ConnectionError,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
)


class TransportError(Exception):
    """The server could not be reached, or the connection broke."""


class TransportTimeout(TransportError):
    """No answer within the timeout."""


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    content: bytes


class _Https(http.client.HTTPSConnection):
    """An HTTPS connection that checks the certificate against ``tls-server-name`` when one is set."""

    def __init__(self, host: str, port: int | None, *, context: ssl.SSLContext, timeout: float, name: str | None):
        super().__init__(host, port, timeout=timeout, context=context)
        self._tls_context, self._tls_name = context, name

    def connect(self) -> None:
        if self._tls_name is None:
            super().connect()
            return
        http.client.HTTPConnection.connect(self)
        self.sock = self._tls_context.wrap_socket(self.sock, server_hostname=self._tls_name)


class Transport:
    def __init__(self, target: Target, *, max_connections: int = 32, timeout: float = 30.0) -> None:
        parts = urlsplit(target.server)
        self._host = parts.hostname or ""
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._target = target
        self._timeout = timeout
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._closed = False

    def _open(self, timeout: float) -> http.client.HTTPConnection:
        t = self._target
        if t.tls is None:
            return http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        return _Https(self._host, self._port, context=t.tls, timeout=timeout, name=t.tls_server_name)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        target = self._prefix + path + (f"?{urlencode(params)}" if params else "")
        sent = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip", **(headers or {})}
        auth = self._target.auth
        for _ in range(2):
            credential = auth.header()
            if credential:
                sent["Authorization"] = credential
            resp = self._send(method, target, content, sent, timeout or self._timeout)
            if resp.status != 401 or not auth.refresh(credential):
                return resp
        return resp

    def _send(self, method: str, target: str, body: bytes | None, headers: dict[str, str], timeout: float) -> Response:
        with self._slots:
            for attempt in (0, 1):
                with self._lock:
                    conn = self._idle.pop() if self._idle and attempt == 0 else None
                reused = conn is not None
                if conn is None:
                    conn = self._open(timeout)
                elif conn.sock is not None:
                    conn.sock.settimeout(timeout)
                conn.timeout = timeout
                try:
                    resp = _exchange(conn, method, target, body, headers)
                    data = resp.read()
                except _GONE as e:
                    conn.close()
                    if reused:
                        continue  # most likely closed by the server while idle: send once more
                    raise TransportError(_describe(e)) from None
                except TimeoutError as e:
                    conn.close()
                    raise TransportTimeout(_describe(e)) from None
                except (OSError, http.client.HTTPException) as e:
                    conn.close()
                    raise TransportError(_describe(e)) from None
                if resp.getheader("content-encoding", "") == "gzip":
                    data = zlib.decompress(data, 16 + zlib.MAX_WBITS)
                if resp.will_close:
                    conn.close()
                else:
                    with self._lock:
                        if self._closed:
                            conn.close()
                        else:
                            self._idle.append(conn)
                return Response(resp.status, resp.getheader("content-type", ""), data)
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _exchange(
    conn: http.client.HTTPConnection, method: str, target: str, body: bytes | None, headers: dict[str, str]
) -> http.client.HTTPResponse:
    try:
        conn.request(method, target, body=body, headers=headers)
    except (OSError, http.client.HTTPException) as sending:
        if conn.sock is None:
            raise  # never connected: there is no answer to read
        # A server may answer before it has read the whole body and close (413 for a body over its
        # limit): its answer is the news, not the broken pipe.
        try:
            return conn.getresponse()
        except (OSError, http.client.HTTPException):
            raise sending from None
    return conn.getresponse()


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


__all__ = ["Response", "Transport", "TransportError", "TransportTimeout"]
