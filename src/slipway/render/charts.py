"""Chart dependencies, made present before ``helm template`` runs: Helm itself never goes on the network.

For every dependency of a chart's ``Chart.yaml`` (or ``requirements.yaml`` of an apiVersion v1
chart), in a working copy of the chart:

- already under ``charts/`` (a directory or ``<name>-<version>.tgz``): used as it is;
- ``file://<path>``: the chart at that path, relative to the chart and inside the repository,
  is copied in (its own dependencies prepared the same way);
- ``http(s)://<repository>``: the repository's ``index.yaml`` is read, the version picked as
  Helm picks it (the ``Chart.lock`` version when there is one, else the highest that satisfies the
  range), and the package downloaded once into ``<cache>/charts/<name>-<version>-<digest>.tgz``,
  checked against the index's sha256 digest;
- ``oci://<registry>/<path>``: the same pick among the chart's tags, pulled and checked by digest
  and cached by it (:mod:`.chartsource`, :mod:`.oci`).

Credentials for a chart repository come from a lookup the engine gives (registered repositories
of type ``helm`` whose URL prefixes the chart repository's); they go in an HTTP header only, and
only to the repository's own host, never into an argument, a file Helm reads, or a message.
Downloads use the standard library's HTTP client, for http(s) only.

Trust: a chart repository (and the host a package's URL names) must be one slipway may fetch from,
a registered repository of type ``helm`` or a prefix listed in ``$SLIPWAY_HELM_REPOSITORIES``; a
redirect to another host is refused unless that host is allowed too. A dependency's name, version and digest are checked as Helm
checks them before any becomes part of a path, and every path written is checked to be inside its
root (the cache, the chart's ``charts/``).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import os
import re
import shutil
import ssl
import tarfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import yaml

from .. import settings
from ..errors import ManifestError
from .oci import Access
from .semver import Constraint, SemverError, Version

Credentials = Callable[[str], "tuple[str, str] | None"]  # chart repository URL -> (username, password)

MAX_INDEX = 64 * 1024 * 1024
MAX_CHART = 64 * 1024 * 1024
TIMEOUT = 30.0

# As Helm checks them (chart names; an alias takes no dot): nothing that can leave a directory.
_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
_ALIAS = re.compile(r"^[a-zA-Z0-9_-]+$")
_VERSION_TEXT = re.compile(r"^v?[0-9A-Za-z.+-]+$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def read_yaml(path: Path, where: str) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except OSError as e:
        raise ManifestError(f"{where}: cannot read {path.name}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ManifestError(f"{where}: {path.name}: invalid YAML{at}: {problem}") from None


def metadata(chart: Path, where: str) -> dict[str, Any]:
    doc = read_yaml(chart / "Chart.yaml", where)
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str) or not doc["name"]:
        raise ManifestError(f"{where}: Chart.yaml has no name")
    return doc


def dependencies(chart: Path, where: str) -> list[dict[str, Any]]:
    """The chart's declared dependencies (Chart.yaml, or requirements.yaml for apiVersion v1)."""
    meta = metadata(chart, where)
    deps = meta.get("dependencies")
    if deps is None and (chart / "requirements.yaml").is_file():
        deps = (read_yaml(chart / "requirements.yaml", where) or {}).get("dependencies")
    if deps is None:
        return []
    if not isinstance(deps, list) or not all(isinstance(d, dict) and isinstance(d.get("name"), str) for d in deps):
        raise ManifestError(f"{where}: Chart.yaml: dependencies must be a list of tables, each with a name")
    for dep in deps:
        name, alias = dep["name"], dep.get("alias")
        if not _NAME.match(name) or name in (".", ".."):
            raise ManifestError(
                f"{where}: Chart.yaml: dependency name {name!r} is not a valid chart name (letters, digits, '.', '_' "
                "and '-' only)"
            )
        if alias is not None and (not isinstance(alias, str) or not _ALIAS.match(alias)):
            raise ManifestError(f"{where}: Chart.yaml: dependency {name}: alias {alias!r} is not a valid name")
    return deps


def repository_allowed(url: str, allowed: Callable[[str], bool] | None) -> bool:
    """True when slipway may fetch from the chart repository ``url``: ``allowed`` (the engine's: a
    registered repository of type helm) says so, or a prefix in ``$SLIPWAY_HELM_REPOSITORIES`` holds it."""
    url = url.rstrip("/")
    if allowed is not None and allowed(url):
        return True
    return any(url == base or url.startswith(base + "/") for base in settings.helm_repositories())


def inside(root: Path, path: Path, at: str) -> Path:
    """``path`` when it is inside ``root``; a ManifestError otherwise (nothing is written out of a root)."""
    try:
        Path(os.path.normpath(path)).relative_to(os.path.normpath(root))
    except ValueError:
        raise ManifestError(f"{at}: refused to write {path.name!r} outside its directory") from None
    return path


def _locked(chart: Path, where: str) -> dict[tuple[str, str], str]:
    for name in ("Chart.lock", "requirements.lock"):
        if (chart / name).is_file():
            doc = read_yaml(chart / name, where) or {}
            return {
                (str(d.get("name")), str(d.get("repository") or "").rstrip("/")): str(d.get("version"))
                for d in doc.get("dependencies") or []
                if isinstance(d, dict)
            }
    return {}


def _vendored(chart: Path, name: str) -> bool:
    charts = chart / "charts"
    if not charts.is_dir():
        return False
    for entry in charts.iterdir():
        if entry.is_dir() and (entry / "Chart.yaml").is_file():
            try:
                if (yaml.safe_load((entry / "Chart.yaml").read_text()) or {}).get("name") == name:
                    return True
            except (OSError, yaml.YAMLError):
                continue
        elif entry.name.endswith(".tgz") and entry.name.startswith(f"{name}-"):
            try:
                Version.parse(entry.name[len(name) + 1 : -4])
                return True
            except SemverError:
                continue
    return False


def local_path(chart: Path, repository: str, boundary: Path, at: str) -> Path:
    """The directory a ``file://`` dependency points at; refused outside ``boundary`` (the repository)."""
    rel = repository[len("file://") :]
    target = Path(os.path.normpath(chart / rel)) if not rel.startswith("/") else Path(rel)
    try:
        target.resolve().relative_to(boundary.resolve())
    except ValueError:
        raise ManifestError(f"{at}: {repository} is outside the repository") from None
    if not (target / "Chart.yaml").is_file():
        raise ManifestError(f"{at}: {repository} holds no Chart.yaml")
    return target


def local_sources(chart: Path, boundary: Path, where: str, seen: frozenset[Path] = frozenset()) -> list[Path]:
    """The chart directory and every ``file://`` dependency's, recursively: what a render reads from Git."""
    out = [chart]
    for dep in dependencies(chart, where):
        repo = str(dep.get("repository") or "")
        if repo.startswith("file://") and not _vendored(chart, dep["name"]):
            at = f"{where}: dependency {dep['name']}"
            target = local_path(chart, repo, boundary, at)
            if target.resolve() in seen:
                raise ManifestError(f"{at}: {repo} depends on itself")
            out += local_sources(target, boundary, where, seen | {chart.resolve()})
    return out


class Fetcher:
    """Dependencies of one render: chart repository indexes are read once per render."""

    def __init__(
        self,
        cache_dir: Path,
        credentials: Credentials | None,
        scratch: Path,
        allowed: Callable[[str], bool] | None = None,
        access: Callable[[str], Access] | None = None,
    ) -> None:
        self.cache_dir = cache_dir
        self.access = access  # oci:// URL -> how to reach its registry (login, plain HTTP, CA)
        self.credentials = credentials
        self.allowed = allowed  # chart repository URL -> may be fetched from (see repository_allowed)
        self.scratch = scratch  # removed with the render's work directory
        self._indexes: dict[str, dict[str, Any]] = {}

    def prepare(self, work: Path, source: Path, boundary: Path, where: str, depth: int = 0) -> None:
        """Make the chart copy ``work`` (copied from ``source``) hold every dependency under ``charts/``."""
        if depth > 16:
            raise ManifestError(f"{where}: file:// dependencies nested more than 16 deep")
        locked = _locked(source, where)
        declared_in = "Chart.yaml" if "dependencies" in metadata(source, where) else "requirements.yaml"
        for dep in dependencies(source, where):
            name, repo = dep["name"], str(dep.get("repository") or "").strip()
            at = f"{where}: {declared_in}: dependency {name}"
            if _vendored(work, name):
                continue
            constraint = self._constraint(dep, at)
            if not repo:
                raise ManifestError(f"{at}: not under charts/, and no repository is given")
            (work / "charts").mkdir(exist_ok=True)
            if repo.startswith("file://"):
                target = local_path(source, repo, boundary, at)
                version = str(metadata(target, at).get("version", ""))
                if not _satisfies(constraint, version):
                    raise ManifestError(f"{at}: {repo} is version {version}, not {dep.get('version')}")
                copy = inside(work / "charts", work / "charts" / name, at)
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(target, copy, symlinks=False, ignore=shutil.ignore_patterns(".git"))
                self.prepare(copy, target, boundary, f"{where}, dependency {name}", depth + 1)
            elif repo.startswith(("http://", "https://")):
                package, version = self.fetch(repo, name, constraint, locked.get((name, repo.rstrip("/"))), at)
                shutil.copyfile(package, inside(work / "charts", work / "charts" / f"{name}-{version}.tgz", at))
            elif repo.startswith("oci://"):
                from .chartsource import oci_dependency

                package, version = oci_dependency(
                    self, repo, name, constraint, locked.get((name, repo.rstrip("/"))), at
                )
                shutil.copyfile(package, inside(work / "charts", work / "charts" / f"{name}-{version}.tgz", at))
            else:
                raise ManifestError(
                    f"{at}: repository {repo!r} is a name from `helm repo add`; give the chart repository's URL "
                    "(its credentials come from a registered repository of type helm)"
                )

    @staticmethod
    def _constraint(dep: dict[str, Any], at: str) -> Constraint:
        text = str(dep.get("version") or "")
        try:
            return Constraint(text)
        except SemverError as e:
            raise ManifestError(f"{at}: version {text!r}: {e}") from None

    # -- chart repositories -----------------------------------------------------------------------

    def fetch(self, repo: str, name: str, constraint: Constraint, locked: str | None, where: str) -> tuple[Path, str]:
        """The package of ``name`` from ``repo`` and its version, downloaded unless the cache holds it."""
        repo = repo.rstrip("/")
        if urlsplit(repo).username or urlsplit(repo).password:
            raise ManifestError(
                f"{where}: the chart repository URL holds credentials; register the repository with type helm "
                "and its credentials instead"
            )
        what = f"{where} from {repo}"
        by_version = self.entries(repo, name, what)
        version = locked if locked in by_version and _satisfies(constraint, locked) else None
        version = version or constraint.best(list(by_version))
        if version is None:
            shown = ", ".join(sorted(by_version, key=_version_key, reverse=True)[:5])
            raise ManifestError(f"{what}: no version matches {constraint.text!r} (it has {shown})")
        entry = by_version[version]
        urls = entry.get("urls") or []
        if not urls or not isinstance(urls[0], str):
            raise ManifestError(f"{what}: the index gives no URL for version {version}")
        url = urljoin(repo + "/", urls[0])
        if _origin(url) != _origin(repo) and not repository_allowed(url, self.allowed):
            raise ManifestError(
                f"{what}: the index names {_redact(url)} for version {version}, on another host slipway may not "
                "fetch from; list that host in SLIPWAY_HELM_REPOSITORIES or register it as a repository of type helm"
            )
        if not _VERSION_TEXT.match(version):
            raise ManifestError(f"{what}: version {version!r} is not a chart version")
        digest = str(entry.get("digest") or "").lower()
        if digest and not _DIGEST.match(digest):
            raise ManifestError(f"{what}: the index's digest for version {version} is not a sha256 digest")
        if digest:
            charts = self.cache_dir / "charts"
            cached = inside(charts, charts / f"{name}-{version}@{digest[:32]}.tgz", what)
            with _lock(str(cached)):
                if not cached.is_file():
                    self._download(repo, url, cached, digest, f"{what}: {name}-{version}")
            return cached, version
        # Without a digest there is nothing to check a cached copy against: fetch it for this render only.
        tmp = inside(self.scratch, self.scratch / f"{name}-{version}@{len(list(self.scratch.iterdir()))}.tgz", what)
        self._download(repo, url, tmp, "", f"{what}: {name}-{version}")
        return tmp, version

    def entries(self, repo: str, name: str, what: str) -> dict[str, dict[str, Any]]:
        """The index's entries of chart ``name`` by version (a chart repository slipway may fetch from)."""
        if not repository_allowed(repo, self.allowed):
            raise ManifestError(
                f"{what}: not a chart repository slipway may fetch from; register it as a repository of type helm "
                "(or list it in SLIPWAY_HELM_REPOSITORIES)"
            )
        index = self._index(repo, what)
        entries = [e for e in (index.get("entries") or {}).get(name) or [] if isinstance(e, dict)]
        if not entries:
            raise ManifestError(f"{what}: the chart repository has no chart {name}")
        return {str(e.get("version")): e for e in entries}

    def _index(self, repo: str, what: str) -> dict[str, Any]:
        if repo not in self._indexes:
            body = self._get(repo, repo + "/index.yaml", MAX_INDEX, f"{what}: index.yaml")
            try:
                doc = yaml.load(body, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            except yaml.YAMLError:
                raise ManifestError(f"{what}: index.yaml is not valid YAML") from None
            if not isinstance(doc, dict):
                raise ManifestError(f"{what}: index.yaml is not a chart repository index")
            self._indexes[repo] = doc
        return self._indexes[repo]

    def _download(self, repo: str, url: str, dest: Path, digest: str, what: str) -> None:
        body = self._get(repo, url, MAX_CHART, what)
        actual = hashlib.sha256(body).hexdigest()
        if digest and actual != digest:
            raise ManifestError(f"{what}: the package's sha256 {actual[:16]}... is not the index's {digest[:16]}...")
        try:
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
                tar.getmembers()
        except (tarfile.TarError, OSError, EOFError):
            raise ManifestError(f"{what}: the download is not a chart package (.tgz)") from None
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + f".{os.getpid()}.part")
        part.write_bytes(body)
        part.replace(dest)

    def _get(self, repo: str, url: str, limit: int, what: str) -> bytes:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ManifestError(f"{what}: {_redact(url)} is not an http(s) URL")
        creds = self.credentials(repo) if self.credentials else None
        auth = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode() if creds else None
        handlers: list[Any] = [_Redirects(_origin(repo), auth, self.allowed)]
        ca_file = self.access(repo).ca_file if self.access else None
        if ca_file:  # a registered repository's private CA
            handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca_file)))
        opener = urllib.request.build_opener(*handlers)
        request = urllib.request.Request(url, headers={"User-Agent": "slipway"})
        if auth and _origin(url) == _origin(repo):
            # Like Helm without --pass-credentials: the password goes only to the repository's own host.
            request.add_unredirected_header("Authorization", auth)
        try:
            with opener.open(request, timeout=TIMEOUT) as response:
                body: bytes = response.read(limit + 1)
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                if creds:
                    raise ManifestError(
                        f"{what}: the chart repository refused the credentials of its registered repository "
                        f"(HTTP {e.code})"
                    ) from None
                raise ManifestError(
                    f"{what}: the chart repository needs credentials (HTTP {e.code}); register it as a "
                    "repository of type helm with them"
                ) from None
            if 300 <= e.code < 400 and e.msg:
                raise ManifestError(f"{what}: refused: {e.msg}") from None
            raise ManifestError(f"{what}: HTTP {e.code} from {_redact(url)}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", None) or e
            if isinstance(reason, TimeoutError):
                raise ManifestError(f"{what}: the chart repository did not answer within {TIMEOUT:.0f}s") from None
            text = str(reason.strerror if isinstance(reason, OSError) and reason.strerror else reason)
            text = text.replace(creds[1], "***") if creds else text
            raise ManifestError(f"{what}: cannot reach the chart repository: {text}") from None
        if len(body) > limit:
            raise ManifestError(f"{what}: larger than {limit // (1024 * 1024)} MiB")
        return body


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects on the same host (http to https allowed) or to an allowed repository, and no other;
    the login goes only to the repository's own host."""

    def __init__(self, origin: tuple[str, str], auth: str | None, allowed: Callable[[str], bool] | None) -> None:
        self.origin = origin
        self.auth = auth
        self.allowed = allowed

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if urlsplit(newurl).scheme not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, "redirected away from http(s)", headers, fp)
        if not _same_host(req.full_url, newurl) and not repository_allowed(newurl, self.allowed):
            # Another host is another server: the repository's own address must not lead slipway to it.
            raise urllib.error.HTTPError(
                newurl,
                code,
                f"redirected to another host ({_host(newurl)}), which slipway may not fetch from",
                headers,
                fp,
            )
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and self.auth and _origin(newurl) == self.origin:
            new.add_unredirected_header("Authorization", self.auth)
        return new


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower() + f":{parts.port or ''}"


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _host(url: str) -> str:
    parts = urlsplit(url)
    return (parts.hostname or "").lower() + (f":{parts.port}" if parts.port else "")


def _same_host(old: str, new: str) -> bool:
    a, b = urlsplit(old), urlsplit(new)
    if (a.hostname or "").lower() != (b.hostname or "").lower():
        return False
    if a.scheme == "https" and b.scheme != "https":
        return False  # never downgraded
    return (a.port or _DEFAULT_PORTS.get(a.scheme)) == (b.port or _DEFAULT_PORTS.get(b.scheme)) or (
        a.port is None and b.port is None
    )


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.username or parts.password:
        return parts._replace(netloc=parts.hostname or "").geturl()
    return url


def _satisfies(constraint: Constraint, version: str | None) -> bool:
    try:
        return version is not None and constraint.check(Version.parse(version))
    except SemverError:
        return False


def _version_key(text: str) -> Version:
    try:
        return Version.parse(text)
    except SemverError:
        return Version(0, 0, 0, "0")
