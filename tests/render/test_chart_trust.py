"""What a chart's dependencies may make slipway write and fetch: the real Helm, real HTTP servers on
loopback addresses (127.0.0.2 is another host to a client), and the file system checked after."""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
import tempfile
from pathlib import Path

import pytest
import yaml

from slipway.errors import ManifestError
from slipway.render import RenderContext, helm, render
from tests.chartrepo import ChartRepo, write_tree
from tests.charts import labels_chart, web_chart
from tests.render.webserver import Served


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Scratch directories under ``tmp_path`` too, so a write anywhere but the cache is seen."""
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.delenv("SLIPWAY_HELM_REPOSITORIES", raising=False)
    helm.cache_clear()
    return tmp_path


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if not p.is_dir()}


def context(repo: Path, cache: Path, registered: str | None = None) -> RenderContext:
    """``registered``: the URL of a chart repository the engine would say is registered with type helm."""
    ctx = RenderContext(workflow_id="web", namespace="shop", repository_root=repo, cache_dir=cache)
    if registered is not None:
        ctx.chart_repository_allowed = lambda url: url == registered or url.startswith(registered + "/")
    return ctx


def package(name: str, version: str) -> bytes:
    data = f"apiVersion: v2\nname: {name}\nversion: {version}\n".encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo(f"{name.rsplit('/', 1)[-1]}/Chart.yaml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def hostile_repository(served: Served, name: str, version: str) -> None:
    """An index listing a chart under ``name`` and ``version``, with a package whose digest matches."""
    body = package("x", "1.0.0")
    served.files["/x.tgz"] = body
    entry = {"name": name, "version": version, "urls": ["x.tgz"], "digest": hashlib.sha256(body).hexdigest()}
    index = {"apiVersion": "v1", "entries": {name: [entry]}}
    served.files["/index.yaml"] = yaml.safe_dump(index).encode()


@pytest.mark.parametrize(
    ("name", "version", "message"),
    [
        ("../../x", "1.0.0", r"dependency name '\.\./\.\./x' is not a valid chart name"),
        ("../../../../x", "1.0.0", r"dependency name '\.\./\.\./\.\./\.\./x' is not a valid chart name"),
        ("x", "../../../../x", r"dependency x: version '\.\./\.\./\.\./\.\./x'"),
        ("x/../../../../y", "1.0.0", r"is not a valid chart name"),
    ],
)
def test_a_dependency_name_or_version_that_leaves_the_cache_is_refused_and_writes_nothing(
    sandbox: Path, name: str, version: str, message: str
) -> None:
    cache = sandbox / "cache" / "slipway" / "helm"
    with Served() as served:
        hostile_repository(served, name, version)
        chart = f"apiVersion: v2\nname: web\nversion: 0.1.0\ndependencies:\n- name: {name}\n  version: {version!r}\n"
        chart += f"  repository: {served.url}\n"
        repo = write_tree(sandbox / "repo", {"web/Chart.yaml": chart, "web/templates/x.yaml": ""})
        before = files_under(sandbox)
        with pytest.raises(ManifestError) as err:
            render(repo / "web", label="web", context=context(repo, cache, served.url))
        written = files_under(sandbox) - before
        assert not [p for p in written if not p.is_relative_to(cache)], written
        assert list((sandbox / "tmp").iterdir()) == []  # every scratch directory removed
        assert re.search(message, str(err.value)), str(err.value)
        assert served.requests == []  # refused before anything was fetched


def labels_index(chart_repo: ChartRepo) -> bytes:
    """The shared chart repository's index with only labels 1.0.0, the release these tests copy: other
    tests of the session publish newer ones there."""
    index = yaml.safe_load((chart_repo.root / "index.yaml").read_bytes())
    index["entries"]["labels"] = [e for e in index["entries"]["labels"] if e["version"] == "1.0.0"]
    return yaml.safe_dump(index).encode()


def test_a_chart_repository_that_redirects_to_another_host_is_refused(sandbox: Path, chart_repo: ChartRepo) -> None:
    chart_repo.publish(labels_chart("1.0.0"))
    cache = sandbox / "cache"
    with Served("127.0.0.1") as front, Served("127.0.0.2") as elsewhere:
        for name in ("index.yaml", "labels-1.0.0.tgz"):
            body = labels_index(chart_repo) if name == "index.yaml" else (chart_repo.root / name).read_bytes()
            elsewhere.files[f"/{name}"] = body
            front.files[f"/same/{name}"] = body
        front.redirects["/index.yaml"] = f"{elsewhere.url}/index.yaml"
        repo = write_tree(sandbox / "repo", web_chart("web", front.url, hooks=False))
        with pytest.raises(ManifestError) as err:
            render(repo / "web", label="web", context=context(repo, cache, front.url))
        assert str(err.value) == (
            f"web (helm): Chart.yaml: dependency labels from {front.url}: index.yaml: refused: redirected to another "
            f"host ({elsewhere.url.removeprefix('http://')}), which slipway may not fetch from"
        )
        assert elsewhere.requests == []
        # A redirect on the repository's own host is followed as before.
        front.redirects["/same/index.yaml"] = f"{front.url}/same/index.yaml?followed"
        front.files["/same/index.yaml?followed"] = front.files["/same/index.yaml"]
        repo = write_tree(sandbox / "repo2", web_chart("web", f"{front.url}/same", hooks=False))
        names = {m.obj["metadata"]["name"] for m in render(repo / "web", label="web", context=context(repo, cache, front.url))}  # fmt: skip
        assert "web-labels" in names
        assert elsewhere.requests == []


def test_only_registered_or_listed_chart_repositories_are_fetched(
    sandbox: Path, chart_repo: ChartRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    chart_repo.publish(labels_chart("1.0.0"))
    cache = sandbox / "cache"
    with Served("127.0.0.1") as served, Served("127.0.0.2") as mirror:
        served.files["/index.yaml"] = labels_index(chart_repo)
        mirror.files["/labels-1.0.0.tgz"] = (chart_repo.root / "labels-1.0.0.tgz").read_bytes()
        repo = write_tree(sandbox / "repo", web_chart("web", served.url, hooks=False))
        with pytest.raises(ManifestError) as err:
            render(repo / "web", label="web", context=context(repo, cache))
        assert str(err.value) == (
            f"web (helm): Chart.yaml: dependency labels from {served.url}: not a chart repository slipway may fetch "
            "from; register it as a repository of type helm (or list it in SLIPWAY_HELM_REPOSITORIES)"
        )
        assert served.requests == []
        monkeypatch.setenv("SLIPWAY_HELM_REPOSITORIES", f"http://127.0.0.9/x, {served.url}")
        # The index sends the package to another host, which nobody listed.
        index = yaml.safe_load(served.files["/index.yaml"])
        for entry in index["entries"]["labels"]:
            entry["urls"] = [f"{mirror.url}/{entry['urls'][0]}"]
        served.files["/index.yaml"] = yaml.safe_dump(index).encode()
        with pytest.raises(ManifestError, match=r"the index names http://127\.0\.0\.2:\d+/labels-1\.0\.0\.tgz for "):
            render(repo / "web", label="web", context=context(repo, cache))
        assert served.requests == ["/index.yaml"] and mirror.requests == []
        monkeypatch.setenv("SLIPWAY_HELM_REPOSITORIES", f"{served.url} {mirror.url}")
        names = {m.obj["metadata"]["name"] for m in render(repo / "web", label="web", context=context(repo, cache))}  # fmt: skip
        assert "web-labels" in names and mirror.requests == ["/labels-1.0.0.tgz"]


def test_the_cache_is_written_inside_its_root_only(sandbox: Path) -> None:
    from slipway.render.charts import inside

    root = sandbox / "cache" / "charts"
    assert inside(root, root / "labels-1.0.0@ab.tgz", "at") == root / "labels-1.0.0@ab.tgz"
    for bad in ("../x.tgz", "../../x", "a/../../x"):
        with pytest.raises(ManifestError, match="refused to write"):
            inside(root, root / bad, "at")
    assert os.listdir(sandbox / "tmp") == []
