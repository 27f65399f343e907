"""Remote resources of a kustomization, found before ``kustomize build`` runs: it has no switch to refuse them.

kustomize fetches whatever a kustomization names that is not on disk (``https://host/x.yaml``,
``github.com/org/repo//path?ref=v1``) and any file field given as an http(s) URL; the same commit
would then render differently when the remote content changes, and a render could reach
addresses only slipway's network reaches. So every kustomization the build would read (the one
rendered and each local ``resources``/``bases``/``components``/``generators``/``transformers``/
``validators`` directory, nested) is read first:

- an entry of those lists that is a URL, or that is not a path of
  the repository and reads as kustomize's Git addresses (``github.com/org/repo//dir?ref=v1``,
  ``git@host:org/repo``), is remote; one that leads outside the repository is refused; a local
  path that is simply missing is left to kustomize's own error;
- a file field (patches, generators' files, ``crds``, ``configurations``, a chart's ``valuesFile``
  and ``additionalValuesFiles``...) given as a URL is remote;
- a ``helmCharts`` entry's ``repo`` must be a chart repository slipway may fetch from (registered
  with type helm, or listed in ``$SLIPWAY_HELM_REPOSITORIES``), like a chart's dependencies; so must
  the ``repo`` of a ``HelmChartInflationGenerator`` written in any file those lists name (a generator
  directory's resources are generator configurations too).

Remote entries are refused, naming the file and the entry, unless the engine allows them for the
workflow (an administrator's setting, ``$SLIPWAY_KUSTOMIZE_ALLOW_REMOTE``, never the workflow's own).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from ..errors import ManifestError
from ..paths import inside

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_TARGETS = ("resources", "bases", "components", "generators", "transformers", "validators")
_FILE_LISTS = ("crds", "configurations", "patchesStrategicMerge")
_CHART_FILES = ("valuesFile", "additionalValuesFiles")
_PATH_ITEMS = ("patches", "patchesJson6902", "replacements")
_GENERATORS = ("configMapGenerator", "secretGenerator")

REMOTE_HINT = (
    "remote resources are off: vendor the content into the repository, or have an administrator allow "
    "them for this workflow (SLIPWAY_KUSTOMIZE_ALLOW_REMOTE)"
)


def kustomization_file(directory: Path) -> Path | None:
    return next((directory / n for n in KUSTOMIZATION_FILES if (directory / n).is_file()), None)


def check(
    directory: Path,
    boundary: Path,
    where: str,
    *,
    allow_remote: bool,
    chart_allowed: Callable[[str], bool],
) -> None:
    """Refuse (ManifestError naming file and entry) anything the build of ``directory`` would fetch."""
    boundary = boundary.resolve()
    seen: set[Path] = set()
    stack = [directory.resolve()]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        path = kustomization_file(current)
        if path is None:
            continue  # a directory of plain files, or an error kustomize names itself
        shown = _shown(path, boundary)
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            problem = getattr(e, "problem", None) or type(e).__name__
            raise ManifestError(f"{where}: {shown}: cannot be read: {problem}") from None
        if not isinstance(doc, dict):
            continue  # kustomize refuses it with its own message
        for field, entry in _entries(doc, _TARGETS):
            target = Path(os.path.normpath(current / entry))
            if "://" not in entry and not inside(target, boundary):
                raise ManifestError(f"{where}: {shown}: {field} entry {entry!r} is outside the repository")
            if "://" in entry or (not target.exists() and _remote(entry)):
                if not allow_remote:
                    raise ManifestError(
                        f"{where}: {shown}: {field} entry {entry!r} is not in the repository, so kustomize would "
                        f"fetch it from the network; {REMOTE_HINT}"
                    )
                continue
            if target.is_dir():
                stack.append(target.resolve())
            elif target.is_file() and not allow_remote:  # plugin configurations, or resources a plugin dir builds
                _check_plugins(target, boundary, where, chart_allowed)
        if allow_remote:
            continue
        for field, entry in _files(doc):
            if _is_url(entry):
                raise ManifestError(
                    f"{where}: {shown}: {field} {entry!r} is a URL kustomize would fetch; {REMOTE_HINT}"
                )
        for index, chart in enumerate(_list(doc.get("helmCharts")), start=1):
            if isinstance(chart, dict):
                _check_chart(chart, f"{where}: {shown}: helmCharts[{index}]", chart_allowed)


def _check_chart(chart: dict[str, Any], named: str, chart_allowed: Callable[[str], bool]) -> None:
    """A chart kustomize inflates (``helmCharts`` entry or HelmChartInflationGenerator): repository and values."""
    repo = str(chart.get("repo") or "").strip()
    if repo and not chart_allowed(repo):
        raise ManifestError(
            f"{named} repo {repo!r} is not a chart repository slipway may fetch from; register it as a "
            "repository of type helm (or list it in SLIPWAY_HELM_REPOSITORIES)"
        )
    for field in _CHART_FILES:
        value = chart.get(field)
        for entry in [value] if isinstance(value, str) else _list(value):
            if isinstance(entry, str) and _is_url(entry.strip()):
                raise ManifestError(f"{named} {field} {entry.strip()!r} is a URL kustomize would fetch; {REMOTE_HINT}")


def _check_plugins(path: Path, boundary: Path, where: str, chart_allowed: Callable[[str], bool]) -> None:
    """A file the build reads: any builtin HelmChartInflationGenerator in it obeys the chart rules."""
    if not inside(path, boundary):
        return  # kustomize's own load restrictor refuses it
    shown = _shown(path, boundary)
    try:
        text = path.read_text(encoding="utf-8-sig")
        if "HelmChartInflationGenerator" not in text:
            return  # the common case: a plain resource, not parsed twice
        docs = list(yaml.safe_load_all(text))  # only top-level fields are read: aliases are never expanded
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        problem = getattr(e, "problem", None) or type(e).__name__
        raise ManifestError(f"{where}: {shown}: cannot be read: {problem}") from None
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "HelmChartInflationGenerator":
            name = (doc.get("metadata") or {}).get("name") if isinstance(doc.get("metadata"), dict) else None
            _check_chart(doc, f"{where}: {shown}: HelmChartInflationGenerator {str(name or '')!r}", chart_allowed)


def _entries(doc: dict[str, Any], fields: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    for field in fields:
        for entry in _list(doc.get(field)):
            if isinstance(entry, str):
                yield field, entry.strip()


def _files(doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    yield from _entries(doc, _FILE_LISTS)
    for field in _PATH_ITEMS:
        for item in _list(doc.get(field)):
            if isinstance(item, dict) and isinstance(item.get("path"), str):
                yield f"{field} path", item["path"]
    openapi = doc.get("openapi")
    if isinstance(openapi, dict) and isinstance(openapi.get("path"), str):
        yield "openapi path", openapi["path"]
    for field in _GENERATORS:
        for item in _list(doc.get(field)):
            if not isinstance(item, dict):
                continue
            for key in ("files", "envs"):
                for entry in _list(item.get(key)):
                    if isinstance(entry, str):
                        yield f"{field} {key}", entry.partition("=")[2] or entry
            if isinstance(item.get("env"), str):
                yield f"{field} env", item["env"]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# What kustomize would take for a Git repository when no such path exists: a scheme, an scp-like or
# shorthand address, a query, or a first segment that is a host name (github.com/org/repo).
_REMOTE = re.compile(
    r"^(git@|git::|gh:|ssh:)|\?(ref|version|timeout|submodules)=|^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+(:\d+)?/"
)


def _remote(entry: str) -> bool:
    return bool(_REMOTE.search(entry)) or "//" in entry


def _is_url(text: str) -> bool:
    return "://" in text or text.startswith("git@")


def _shown(path: Path, boundary: Path) -> str:
    try:
        return path.resolve().relative_to(boundary).as_posix()
    except ValueError:
        return path.name
