"""Helm charts in OCI registries, spoken from Python: the distribution API's tag list, manifest and blob.

``oci://HOST[:PORT]/PATH`` holds chart ``NAME`` as the OCI repository ``PATH/NAME``; a chart
version is a tag, with ``+`` written ``_`` (OCI tags cannot hold ``+``; Helm's rule). A pull
reads the manifest (its sha256 is the chart's digest, checked against what the registry says and
against the digest asked for), takes the layer of Helm's chart media type and checks its sha256
too; the package is cached by that digest, so a chart is downloaded once.

Credentials go only in a header: HTTP Basic to the registry itself, or, when the registry answers
with a Bearer challenge, to its token service (on the same host, or over https) for a token that
is then sent. They never reach an argument, a file, a log or a message. ``plain_http`` (Helm's
``--plain-http``) speaks HTTP to a registry without TLS; ``ca_file`` trusts a private CA.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from ..errors import ManifestError

TIMEOUT = 30.0
MAX_MANIFEST = 4 * 1024 * 1024
MAX_CHART = 64 * 1024 * 1024
CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
_OLD_CHART_LAYER = "application/tar+gzip"
MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_PATH = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


def tag_of(version: str) -> str:
    return version.replace("+", "_")


def version_of(tag: str) -> str:
    return tag.replace("_", "+")


@dataclass(frozen=True)
class Access:
    """How to reach one registry: a login (username, password), plain HTTP, a CA file."""

    credentials: tuple[str, str] | None = None
    plain_http: bool = False
    ca_file: str | None = None


def split(url: str, name: str, what: str) -> tuple[str, str]:
    """``oci://host/path`` and a chart name -> (``host[:port]``, ``path/name``), checked."""
    parts = urlsplit(url.rstrip("/"))
    if parts.scheme != "oci" or not parts.hostname:
        raise ManifestError(f"{what}: {url!r} is not an oci://HOST/PATH reference")
    if parts.username or parts.password:
        raise ManifestError(f"{what}: the registry URL holds credentials; register the repository with them instead")
    path = "/".join(p for p in (parts.path.strip("/"), name) if p)
    if not _PATH.match(path):
        raise ManifestError(f"{what}: {path!r} is not a valid OCI repository name")
    return parts.netloc, path


class Client:
    """One registry host, as one render (or one check) talks to it: tokens are kept per scope."""

    def __init__(self, host: str, access: Access, what: str) -> None:
        self.host = host
        self.access = access
        self.what = what
        self.base = ("http" if access.plain_http else "https") + f"://{host}"
        self._tokens: dict[str, str] = {}
        context = ssl.create_default_context(cafile=access.ca_file) if access.ca_file else None
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoAuthRedirects())

    # -- the distribution API ------------------------------------------------------------------

    def tags(self, repository: str) -> list[str]:
        out: list[str] = []
        url: str | None = f"/v2/{repository}/tags/list?n=1000"
        for _ in range(100):  # pages (Link: <...>; rel="next")
            if url is None:
                break
            body, headers = self._get(url, repository, "application/json", MAX_MANIFEST)
            try:
                doc = json.loads(body)
            except ValueError:
                raise ManifestError(f"{self.what}: the registry's tag list is not JSON") from None
            out += [t for t in (doc.get("tags") or []) if isinstance(t, str)]
            link = re.match(r'^\s*<([^>]+)>\s*;\s*rel="?next"?', headers.get("Link") or "")
            url = link.group(1) if link else None
        return out

    def manifest(self, repository: str, reference: str) -> tuple[dict[str, Any], str]:
        """The manifest of a tag or digest and its digest (checked)."""
        body, headers = self._get(f"/v2/{repository}/manifests/{reference}", repository, MANIFEST_TYPES, MAX_MANIFEST)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        said = (headers.get("Docker-Content-Digest") or "").strip()
        if (said and said != digest) or (reference.startswith("sha256:") and reference != digest):
            raise ManifestError(f"{self.what}: the manifest's digest {digest[:19]}... is not the one expected")
        try:
            doc = json.loads(body)
        except ValueError:
            raise ManifestError(f"{self.what}: the registry's manifest is not JSON") from None
        if not isinstance(doc, dict):
            raise ManifestError(f"{self.what}: the registry's manifest is not an image manifest")
        return doc, digest

    def pull(self, repository: str, reference: str, cache: Path) -> tuple[Path, str]:
        """The chart package of a tag or manifest digest, from ``cache`` when there; and the manifest digest."""
        doc, digest = self.manifest(repository, reference)
        layers = [x for x in doc.get("layers") or [] if isinstance(x, dict)]
        layer = next((x for x in layers if x.get("mediaType") == CHART_LAYER), None)
        layer = layer or next((x for x in layers if x.get("mediaType") == _OLD_CHART_LAYER), None)
        if layer is None:
            raise ManifestError(f"{self.what}: {reference} is not a Helm chart (no layer of type {CHART_LAYER})")
        blob = str(layer.get("digest") or "")
        if not _DIGEST.match(blob):
            raise ManifestError(f"{self.what}: the chart layer's digest is not a sha256 digest")
        cached = cache / "oci" / f"{blob[7:]}.tgz"
        if cached.is_file() and hashlib.sha256(cached.read_bytes()).hexdigest() == blob[7:]:
            return cached, digest
        body, _ = self._get(f"/v2/{repository}/blobs/{blob}", repository, "*/*", MAX_CHART)
        if "sha256:" + hashlib.sha256(body).hexdigest() != blob:
            raise ManifestError(f"{self.what}: the chart layer's sha256 is not its digest {blob[:19]}...")
        cached.parent.mkdir(parents=True, exist_ok=True)
        part = cached.with_name(cached.name + ".part")
        part.write_bytes(body)
        part.replace(cached)
        return cached, digest

    # -- HTTP, with the registry's authentication ------------------------------------------------

    def _get(self, path: str, repository: str, accept: str, limit: int) -> tuple[bytes, Any]:
        url = urljoin(self.base, path)
        scope = f"repository:{repository}:pull"
        auth = self._tokens.get(scope)
        for attempt in range(2):
            request = urllib.request.Request(url, headers={"User-Agent": "slipway", "Accept": accept})
            if auth:
                request.add_unredirected_header("Authorization", auth)  # a blob redirect to storage gets none
            try:
                with self._opener.open(request, timeout=TIMEOUT) as response:
                    body: bytes = response.read(limit + 1)
                    if len(body) > limit:
                        raise ManifestError(f"{self.what}: larger than {limit >> 20} MiB")
                    return body, response.headers
            except urllib.error.HTTPError as e:
                challenge = e.headers.get("WWW-Authenticate", "") if e.headers else ""
                if e.code == 401 and attempt == 0 and challenge:
                    auth = self._authenticate(challenge, scope)
                    if auth:
                        self._tokens[scope] = auth
                        continue
                if e.code in (401, 403):
                    if self.access.credentials:
                        raise ManifestError(
                            f"{self.what}: the registry {self.host} refused the credentials of its registered "
                            f"repository (HTTP {e.code})"
                        ) from None
                    raise ManifestError(
                        f"{self.what}: the registry {self.host} needs credentials (HTTP {e.code}); register it as a "
                        "repository of type helm with them"
                    ) from None
                if e.code == 404:
                    raise ManifestError(f"{self.what}: the registry {self.host} has no {_shown(path)}") from None
                raise ManifestError(f"{self.what}: HTTP {e.code} from the registry {self.host}") from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                raise ManifestError(f"{self.what}: cannot reach the registry {self.host}: {_reason(e)}") from None
        raise ManifestError(f"{self.what}: the registry {self.host} refused access")

    def _authenticate(self, challenge: str, scope: str) -> str | None:
        scheme, _, rest = challenge.strip().partition(" ")
        creds = self.access.credentials
        basic = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode() if creds else None
        if scheme.lower() == "basic":
            return basic
        if scheme.lower() != "bearer":
            return None
        params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        realm = params.get("realm", "")
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        query = {
            "scope": params.get("scope") or scope,
            **({"service": params["service"]} if "service" in params else {}),
        }
        request = urllib.request.Request(realm + ("&" if "?" in realm else "?") + urlencode(query),
                                         headers={"User-Agent": "slipway"})  # fmt: skip
        # The login goes to the token service only on the registry's own host or over https.
        if basic and (parts.scheme == "https" or parts.netloc == self.host):
            request.add_unredirected_header("Authorization", basic)
        try:
            with self._opener.open(request, timeout=TIMEOUT) as response:
                doc = json.loads(response.read(MAX_MANIFEST))
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                return None  # the caller says whose credentials were refused
            raise ManifestError(f"{self.what}: HTTP {e.code} from the registry's token service") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
            raise ManifestError(f"{self.what}: cannot get a token from the registry: {_reason(e)}") from None
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        return f"Bearer {token}" if isinstance(token, str) and token else None


class _NoAuthRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects (a blob served from storage elsewhere) are followed over http(s) only; the
    Authorization header is never carried along (it is added unredirected)."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if urlsplit(newurl).scheme not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, "redirected away from http(s)", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _shown(path: str) -> str:
    m = re.match(r"^/v2/(.+)/(tags|manifests|blobs)/(?:list\?.*|(.+))$", path)
    if not m:
        return path
    return {"tags": f"chart {m[1]}", "manifests": f"{m[1]}:{m[3]}", "blobs": f"blob {m[3]} of {m[1]}"}[m[2]]


def _reason(e: BaseException) -> str:
    reason = getattr(e, "reason", None) or e
    if isinstance(reason, TimeoutError):
        return f"no answer within {TIMEOUT:.0f}s"
    if isinstance(reason, ssl.SSLError):
        return f"TLS: {reason.reason or reason} (a registry without TLS needs plain_http; a private CA, ca_file)"
    return str(reason.strerror if isinstance(reason, OSError) and reason.strerror else reason)
