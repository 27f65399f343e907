"""A chart straight from a chart repository as a workflow's source, and chart dependencies from OCI.

A workflow whose repository is of type helm names a chart and a version range (Helm's ranges;
an exact version pins it). :func:`resolve` picks the newest version in range -- from the
repository's ``index.yaml`` over HTTP, or from the tag list of ``oci://HOST/PATH/NAME`` (tags
with ``_`` for ``+``) -- and names it ``<version>@sha256:<digest>``: the index's digest of the
package, or the OCI manifest's. That is the workflow's revision, as a commit is a Git
workflow's: a new release inside the range is a new revision. :func:`pull` brings exactly that
revision (an OCI pull by digest; an HTTP package checked against the digest) and unpacks it.

Everything goes through :class:`.charts.Fetcher`: the same trust (registered or listed
repositories only), the same credentials lookup, the same cache by digest.
"""

from __future__ import annotations

import hashlib
import re
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ManifestError
from . import oci
from .semver import Constraint, SemverError, Version

if TYPE_CHECKING:
    from .charts import Fetcher

_REVISION = re.compile(r"^(?P<version>[^@;\s]+)@(?P<digest>sha256:[0-9a-f]{64})$")


def check_range(text: str) -> str:
    """``text`` if it is a version range Helm takes; a SemverError otherwise."""
    Constraint(text)
    return text


def split_revision(revision: str, what: str) -> tuple[str, str]:
    m = _REVISION.match(revision)
    if not m:
        raise ManifestError(f"{what}: {revision!r} is not a chart revision (<version>@sha256:<digest>)")
    return m["version"], m["digest"]


def _best(constraint: Constraint, versions: list[str], what: str, name: str) -> str:
    best = constraint.best(versions)
    if best is None:
        shown = ", ".join(sorted(set(versions), key=_key, reverse=True)[:5]) or "no versions"
        raise ManifestError(f"{what}: chart {name}: no version matches {constraint.text!r} (it has {shown})")
    return best


def _key(text: str) -> Version:
    try:
        return Version.parse(text)
    except SemverError:
        return Version(0, 0, 0, "0")


def _allowed(fetcher: Fetcher, url: str, what: str) -> None:
    from .charts import repository_allowed

    if not repository_allowed(url, fetcher.allowed):
        raise ManifestError(
            f"{what}: not a chart repository slipway may fetch from; register it as a repository of type helm "
            "(or list it in SLIPWAY_HELM_REPOSITORIES)"
        )


def _client(fetcher: Fetcher, url: str, name: str, what: str) -> tuple[oci.Client, str]:
    host, repository = oci.split(url, name, what)
    _allowed(fetcher, url.rstrip("/"), what)
    access = fetcher.access(url) if fetcher.access else oci.Access()
    if access.credentials is None and fetcher.credentials:
        access = oci.Access(fetcher.credentials(url.rstrip("/")), access.plain_http, access.ca_file)
    return oci.Client(host, access, what), repository


def oci_versions(client: oci.Client, repository: str) -> list[str]:
    out = []
    for tag in client.tags(repository):
        version = oci.version_of(tag)
        try:
            Version.parse(version)
        except SemverError:
            continue  # "latest" and the like are no chart versions
        out.append(version)
    return out


def resolve(fetcher: Fetcher, url: str, name: str, range_text: str, what: str) -> str:
    """The revision ``<version>@sha256:<digest>`` of the newest ``name`` in ``range_text`` at ``url``."""
    try:
        constraint = Constraint(range_text)
    except SemverError as e:
        raise ManifestError(f"{what}: chart_version {range_text!r}: {e}") from None
    if url.startswith("oci://"):
        client, repository = _client(fetcher, url, name, what)
        version = _best(constraint, oci_versions(client, repository), what, name)
        _, digest = client.manifest(repository, oci.tag_of(version))
        return f"{version}@{digest}"
    entries = fetcher.entries(url.rstrip("/"), name, what)
    version = _best(constraint, list(entries), what, name)
    digest = str(entries[version].get("digest") or "").lower()
    if not re.match(r"^[0-9a-f]{64}$", digest):
        # No digest in the index: the package's own, downloaded once for this render.
        package, _ = fetcher.fetch(url, name, Constraint(version), version, what)
        digest = hashlib.sha256(package.read_bytes()).hexdigest()
    return f"{version}@sha256:{digest}"


def pull(fetcher: Fetcher, url: str, name: str, revision: str, dest: Path, what: str) -> Path:
    """The chart of ``revision`` unpacked under ``dest``; its directory."""
    version, digest = split_revision(revision, what)
    if url.startswith("oci://"):
        client, repository = _client(fetcher, url, name, what)
        package, _ = client.pull(repository, digest, fetcher.cache_dir)
    else:
        package, _ = fetcher.fetch(url, name, Constraint(version), version, what)
        actual = "sha256:" + hashlib.sha256(package.read_bytes()).hexdigest()
        if actual != digest:
            raise ManifestError(
                f"{what}: chart {name} {version} is no longer the package of revision {revision[:32]}... "
                "(the repository republished it)"
            )
    return unpack(package, dest, name, what)


def unpack(package: Path, dest: Path, name: str, what: str) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(package, mode="r:gz") as tar:
            tar.extractall(dest, filter="data")  # nothing outside dest, no links out, no devices
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ManifestError(f"{what}: chart {name}: the package cannot be unpacked: {e}") from None
    top = [p for p in dest.iterdir() if p.is_dir() and (p / "Chart.yaml").is_file()]
    if len(top) != 1:
        raise ManifestError(f"{what}: chart {name}: the package holds no single chart directory")
    return top[0]


def oci_dependency(
    fetcher: Fetcher, url: str, name: str, constraint: Constraint, locked: str | None, what: str
) -> tuple[Path, str]:
    """A dependency from ``oci://``: the version picked as Helm picks it (the lock's, else the newest in
    range), pulled by its tag, checked by digest and cached by it; (package, version)."""
    client, repository = _client(fetcher, url, name, f"{what} from {url}")
    versions = oci_versions(client, repository)
    pinned = locked if locked in versions and constraint.check(_key(locked)) else None
    version = pinned or _best(constraint, versions, f"{what} from {url}", name)
    package, _ = client.pull(repository, oci.tag_of(version), fetcher.cache_dir)
    return package, version
