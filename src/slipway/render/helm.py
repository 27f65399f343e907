"""Helm: a directory holding a ``Chart.yaml`` is rendered with the real ``helm template``.

The chart is copied to a scratch directory and its dependencies made present there
(:mod:`.charts`), so Helm runs with no network and no cluster: the destination's version and
every group/version and group/version/Kind it serves come from slipway's discovery
(``--kube-version``, ``--api-versions``), the release is the workflow's (``--namespace`` is its
destination), CRDs are included unless ``skip_crds``. Values files (relative to the chart, never
outside the repository) are applied in order, the inline ``values`` table last, from a file.
Helm's config, cache and data directories are the scratch directory's own, so it never reads or
writes the user's, and its environment carries no credential and no kubeconfig. Helm runs bounded
in time and memory like every render (:mod:`.bounded`).

A render is cached in memory by what it depends on: the chart's files and its ``file://``
dependencies', the values files, the options and the destination's capabilities, so a resync
of an unchanged chart does not run Helm again. Objects keep their file as Helm names it
(``templates/deploy.yaml``) in their source; hooks stay in the output with their annotations.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import settings, tools
from ..errors import BuildError, ManifestError
from . import bounded
from .base import Manifest, RenderContext, objects_from, parse_yaml
from .charts import Fetcher, dependencies, local_sources, metadata

CACHE_SIZE = 64

# Called with helm's argv and environment before each run: lets tests count runs and see what Helm is given.
on_run: list[Callable[[list[str], dict[str, str]], None]] = []

_cache: OrderedDict[str, tuple[str, str]] = OrderedDict()  # key -> (helm's output, chart name)
_cache_lock = threading.Lock()


def is_chart(directory: Path) -> bool:
    return (directory / "Chart.yaml").is_file()


class Helm:
    name = "helm"

    def claims(self, directory: Path, context: RenderContext) -> bool:
        return is_chart(directory)

    def needs_repository(self, directory: Path, context: RenderContext) -> bool:
        where = f"{directory.name} (helm)"
        if any(str(d.get("repository") or "").startswith("file://") for d in dependencies(directory, where)):
            return True
        return any(_escapes(directory, f) for f in _options(context)["values_files"])

    def render(self, directory: Path, display: str, context: RenderContext) -> list[Manifest]:
        where = f"{display} (helm)"
        opts = _options(context)
        boundary = context.repository_root or directory
        values_files = [_values_file(directory, f, boundary, where, context) for f in opts["values_files"]]
        sources = local_sources(directory, boundary, where)
        try:
            binary = tools.find("helm")
        except BuildError as e:
            raise ManifestError(f"{where}: {e.message}") from None
        kube_version, api_versions = context.capabilities()
        key = _key(binary, boundary, sources, values_files, opts, context.namespace, kube_version, api_versions)
        with _cache_lock:
            hit = _cache.get(key)
            if hit is not None:
                _cache.move_to_end(key)
        if hit is None:
            hit = _run(binary, directory, boundary, values_files, opts, context, kube_version, api_versions, where)
            with _cache_lock:
                _cache[key] = hit
                while len(_cache) > CACHE_SIZE:
                    _cache.popitem(last=False)
        return _manifests(hit[0], hit[1], where)


def _options(context: RenderContext) -> dict[str, Any]:
    helm = dict((context.options or {}).get("helm") or {})
    helm.setdefault("release_name", None)
    helm.setdefault("values_files", [])
    helm.setdefault("values", {})
    helm.setdefault("skip_crds", False)
    if not helm["release_name"]:
        from .options import release_name

        helm["release_name"] = release_name(context.workflow_id or "release")
    return helm


def _escapes(chart: Path, rel: str) -> bool:
    return os.path.normpath(rel).startswith("..") or os.path.isabs(rel)


def _values_file(chart: Path, rel: str, boundary: Path, where: str, context: RenderContext) -> Path:
    if rel.startswith("$"):  # Argo CD's $values: a file of another registered Git repository
        ref = context.values_refs.get(rel)
        if ref is None or not ref.is_file():
            raise ManifestError(f"{where}: values file {rel}: not read from its repository")
        return ref
    path = Path(os.path.normpath(chart / rel))
    try:
        path.resolve().relative_to(boundary.resolve())
    except ValueError:
        raise ManifestError(f"{where}: values file {rel}: outside the repository") from None
    if not path.is_file():
        raise ManifestError(f"{where}: values file {rel}: not found")
    return path


def _tree_digest(h: Any, root: Path, label: str) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file() and ".git" not in path.relative_to(root).parts:
            h.update(f"{label}/{path.relative_to(root).as_posix()}\0".encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())


def _key(
    binary: str,
    boundary: Path,
    sources: list[Path],
    values_files: list[Path],
    opts: dict[str, Any],
    namespace: str,
    kube_version: str | None,
    api_versions: list[str],
) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([binary, tools.HELM_VERSION, opts, namespace, kube_version, sorted(api_versions)]).encode())
    for src in sources:
        _tree_digest(h, src, os.path.relpath(src, boundary))
    for vf in values_files:
        h.update(f"values:{os.path.relpath(vf, boundary)}\0".encode())
        h.update(hashlib.sha256(vf.read_bytes()).digest())
    return h.hexdigest()


def _env(home: Path) -> dict[str, str]:
    """Helm's environment: its own directories, no kubeconfig, nothing of the user's."""
    dirs = {
        "HELM_CONFIG_HOME": home / "config",
        "HELM_CACHE_HOME": home / "cache",
        "HELM_DATA_HOME": home / "data",
        "HELM_REPOSITORY_CONFIG": home / "config" / "repositories.yaml",
        "HELM_REPOSITORY_CACHE": home / "cache" / "repository",
        "HELM_REGISTRY_CONFIG": home / "config" / "registry" / "config.json",
        "HELM_PLUGINS": home / "plugins",
        "KUBECONFIG": home / "no-kubeconfig",  # does not exist: Helm has no cluster to reach
        "HOME": home,
    }
    env = {k: str(v) for k, v in dirs.items()}
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    env["LANG"] = "C.UTF-8"
    return env


def _run(
    helm: str,
    chart: Path,
    boundary: Path,
    values_files: list[Path],
    opts: dict[str, Any],
    context: RenderContext,
    kube_version: str | None,
    api_versions: list[str],
    where: str,
) -> tuple[str, str]:
    name = str(metadata(chart, where)["name"])
    scratch = Path(tempfile.mkdtemp(prefix="slipway-helm-"))
    try:
        work = scratch / "chart"
        shutil.copytree(chart, work, symlinks=False, ignore=shutil.ignore_patterns(".git"))
        fetcher = Fetcher(context.cache_dir or settings.helm_cache(), context.credentials, _mkdir(scratch / "dl"),
                          context.chart_repository_allowed, context.chart_access)  # fmt: skip
        fetcher.prepare(work, chart, boundary, where)
        argv = [helm, "template", opts["release_name"], str(work), "--namespace", context.namespace]
        argv.append("--skip-crds" if opts["skip_crds"] else "--include-crds")
        if kube_version:
            argv += ["--kube-version", kube_version]
        if api_versions:
            argv += ["--api-versions", ",".join(api_versions)]
        for vf in values_files:
            argv += ["--values", str(vf)]
        if opts["values"]:
            inline = scratch / "inline-values.yaml"
            inline.write_text(json.dumps(opts["values"]))  # JSON is YAML; a file keeps values out of argv
            argv += ["--values", str(inline)]
        env = _env(_mkdir(scratch / "home"))
        for hook in list(on_run):
            hook(list(argv), dict(env))
        limits, deadline = context.bounds()
        proc = bounded.run(argv, where=where, limits=limits, deadline=deadline, cancel=context.cancel,
                           env=env, cwd=scratch)  # fmt: skip
        if proc.returncode != 0:
            raise ManifestError(f"{where}: {_clean(proc.stderr, name, scratch, chart, boundary)}")
        return proc.stdout.decode("utf-8", "replace"), name
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _clean(stderr: str, name: str, scratch: Path, chart: Path, boundary: Path) -> str:
    """Helm's error as one line about the chart's own files: no scratch paths, no chart-name prefixes."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("WARNING:", "Use --debug flag"))] or lines or ["helm failed"]
    text = ""
    for ln in lines:
        text += ("" if not text else " " if text.endswith(":") else "; ") + ln.removeprefix("Error: ")
    text = text.replace(str(scratch / "chart") + "/", "").replace(str(scratch / "chart"), ".")
    text = text.replace(str(boundary) + "/", "").replace(str(scratch) + "/", "")
    text = re.sub(r'executing "[^"]*" at', "at", text)
    text = re.sub(rf"(?<![\w/.-]){re.escape(name)}/((?:charts/[^/\s]+/)*(?:templates|crds)/)", r"\1", text)
    return text[:1000]


_SOURCE = re.compile(r"^# Source: (.+?)\s*$", re.MULTILINE)
_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)


def _manifests(output: str, name: str, where: str) -> list[Manifest]:
    """Helm's documents, each with the chart file it came from (``templates/deploy.yaml, document 2``)."""
    out: list[Manifest] = []
    counts: dict[str, int] = {}
    source = "output"
    for chunk in _SEPARATOR.split(output):
        m = _SOURCE.search(chunk)
        if m:
            source = m.group(1).removeprefix(f"{name}/")
        if not chunk.strip() or all(ln.startswith("#") or not ln.strip() for ln in chunk.splitlines()):
            continue
        counts[source] = counts.get(source, 0) + 1
        display = f"{where}, {source}"
        docs = parse_yaml(chunk, display)
        for manifest in objects_from(docs, display):
            manifest.source = manifest.source.replace(
                f"{display}, document 1", f"{display}, document {counts[source]}", 1
            )
            out.append(manifest)
    return out


def cache_clear() -> None:
    """Forget every cached render (tests, or a caller that wants Helm to run again)."""
    with _cache_lock:
        _cache.clear()
