"""One small HTTP client for Git servers, shared by every in-process ref check: connections kept open.

The standard library's ``http.client``, not the HTTP library the Kubernetes client uses: this
package only needs a GET and a POST with keep-alive, and keeping the two apart keeps the rule that
only ``slipway.kube`` talks to Kubernetes easy to check. Idle connections are kept per scheme,
host, port and TLS settings; a kept connection the server has closed meanwhile is replaced once.
Redirects are not followed (git's own rules for them are left to git).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import http.client
    import ssl

MAX_BODY = 16 * 1024 * 1024
MAX_IDLE = 8

Tls = tuple[str | None, str | None, bool]  # CA file, CA directory, verify
Key = tuple[str, str, int, Tls]


class Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[Key, list[http.client.HTTPConnection]] = {}
        self._contexts: dict[Tls, ssl.SSLContext] = {}

    def _context(self, tls: Tls) -> ssl.SSLContext:
        with self._lock:
            ctx = self._contexts.get(tls)
            if ctx is None:
                import ssl

                ca_file, ca_path, verify = tls
                ctx = ssl.create_default_context(cafile=ca_file, capath=ca_path)
                if not verify:
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                self._contexts[tls] = ctx
            return ctx

    def _connect(self, key: Key, timeout: float) -> http.client.HTTPConnection:
        import http.client  # loaded on the first check, not by every command

        scheme, host, port, tls = key
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=self._context(tls))
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float, tls: Tls
    ) -> tuple[int, dict[str, str], bytes]:
        """One request; (status, headers with lower-case names, body). OSError on a transport failure."""
        parts = urlsplit(url)
        scheme = parts.scheme
        key: Key = (scheme, parts.hostname or "", parts.port or (443 if scheme == "https" else 80), tls)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        import http.client

        for attempt in (0, 1):
            with self._lock:
                idle = self._idle.get(key) or []
                conn = idle.pop() if idle and attempt == 0 else None
            reused = conn is not None
            conn = conn or self._connect(key, timeout)
            conn.timeout = timeout
            try:
                conn.request(method, target, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read(MAX_BODY + 1)
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                if reused:
                    continue  # the server closed a kept connection: once more on a new one
                raise OSError(f"{type(e).__name__} talking to {key[1]}:{key[2]}") from None
            if len(data) > MAX_BODY:
                conn.close()
                raise OSError("answer too large")
            if resp.will_close:
                conn.close()
            else:
                with self._lock:
                    bucket = self._idle.setdefault(key, [])
                    if len(bucket) < MAX_IDLE:
                        bucket.append(conn)
                    else:
                        conn.close()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        raise OSError("no answer")

    def close(self) -> None:
        with self._lock:
            conns = [c for bucket in self._idle.values() for c in bucket]
            self._idle.clear()
        for c in conns:
            c.close()


__all__ = ["Pool"]
