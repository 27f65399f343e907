"""The Helm renderer with the real Helm and a real chart repository over HTTP on 127.0.0.1 (no cluster)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slipway.errors import ManifestError
from slipway.render import RenderContext, helm, needs_whole_repository, render
from slipway.render.options import HelmOptions, render_options
from tests.chartrepo import ChartRepo, write_tree
from tests.charts import labels_chart, web_chart


@pytest.fixture(scope="module")
def published(chart_repo: ChartRepo) -> ChartRepo:
    for version in ("1.0.0", "1.2.0", "2.0.0"):
        chart_repo.publish(labels_chart(version))
    return chart_repo


@pytest.fixture(autouse=True)
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """Every argv the renderer gives Helm, with a fresh render cache and chart cache per test."""
    monkeypatch.setenv("SLIPWAY_HELM_CACHE", str(tmp_path / "helm-cache"))
    helm.cache_clear()
    seen: list[list[str]] = []

    def record(argv: list[str], env: dict[str, str]) -> None:
        seen.append(argv)

    helm.on_run.append(record)
    yield seen
    helm.on_run.remove(record)


def ctx(repo: Path, *, creds: Any = None, namespace: str = "shop", **options: Any) -> RenderContext:
    return RenderContext(
        workflow_id="Web_App",
        namespace=namespace,
        repository_root=repo,
        options=render_options("Web_App", HelmOptions.from_config(options), None),
        cache_dir=Path(os.environ["SLIPWAY_HELM_CACHE"]),
        credentials=creds,
        # As the engine answers for chart repositories registered with type helm (test_chart_trust.py
        # shows what is refused otherwise): the test servers on this machine.
        chart_repository_allowed=lambda url: url.startswith("http://127.0.0.1:"),
    )


def by_name(manifests: list[Any]) -> dict[str, Any]:
    return {m.obj["metadata"].get("name") or m.obj["metadata"]["generateName"]: m for m in manifests}


def test_values_are_layered_and_every_object_names_its_template(tmp_path: Path, runs: list[list[str]]) -> None:
    repo = write_tree(tmp_path / "repo", {**web_chart("charts/web"), "envs/prod/extra.yaml": "color: green\n"})
    context = ctx(
        repo,
        values_files=["values-prod.yaml", "../../envs/prod/extra.yaml"],
        values={"greeting": "from-inline", "extra": {"a": [1, 2]}},
    )
    assert needs_whole_repository(repo / "charts/web", context)  # a values file outside the chart
    out = by_name(render(repo / "charts/web", label="charts/web", context=context))
    data = out["web-app-config"].obj["data"]
    # values.yaml < values-prod.yaml < extra.yaml < inline values
    assert (data["greeting"], data["replicas"], data["color"]) == ("from-inline", "2", "green")
    assert data["namespace"] == "shop"
    assert out["web-app-config"].source == "charts/web (helm), templates/config.yaml, document 1"
    assert out["web-app-test"].source == "charts/web (helm), templates/hooks.yaml, document 2"
    # Hooks stay in the output, annotations and generateName included.
    assert out["web-app-migrate-"].obj["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert out["web-app-test"].obj["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert out["gadgets.crds.slipway.test"].source == "charts/web (helm), crds/widgets.yaml, document 1"
    assert out["web-app"].obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "web-app"
    # The inline values reach Helm as a file, not on its command line.
    (argv,) = runs
    assert "from-inline" not in " ".join(argv) and argv.count("--values") == 3 and "--include-crds" in argv
    assert argv[1:3] == ["template", "web-app"] and argv[argv.index("--namespace") + 1] == "shop"


def test_skip_crds_and_capabilities_given_by_the_context(tmp_path: Path) -> None:
    repo = write_tree(tmp_path / "repo", web_chart("web"))
    context = ctx(repo, skip_crds=True)
    context.kube_version, context.api_versions = (
        "v1.31.4",
        ["widgets.slipway.test/v1", "widgets.slipway.test/v1/Widget"],
    )
    out = by_name(render(repo / "web", label="web", context=context))
    assert "gadgets.crds.slipway.test" not in out
    data = out["web-app-config"].obj["data"]
    assert (data["kube"], data["widget-kind"], data["widget-version"]) == ("v1.31.4", "true", "true")
    helm.cache_clear()
    plain = by_name(render(repo / "web", label="web", context=ctx(repo, skip_crds=True)))["web-app-config"]
    assert plain.obj["data"]["widget-kind"] == "false"  # Helm's defaults know no such API


def test_an_unchanged_chart_is_not_rendered_twice(tmp_path: Path, runs: list[list[str]]) -> None:
    repo = write_tree(tmp_path / "repo", web_chart("web"))
    first = render(repo / "web", label="web", context=ctx(repo))
    again = render(repo / "web", label="web", context=ctx(repo))
    assert len(runs) == 1 and [m.obj for m in again] == [m.obj for m in first]
    again[0].obj["metadata"]["name"] = "changed by a caller"  # the cache hands out fresh objects
    assert render(repo / "web", label="web", context=ctx(repo))[0].obj == first[0].obj
    (repo / "web/values.yaml").write_text("greeting: changed\nreplicas: 1\ncolor: red\n")
    render(repo / "web", label="web", context=ctx(repo))
    render(repo / "web", label="web", context=ctx(repo, values={"x": 1}))
    render(repo / "web", label="web", context=ctx(repo, namespace="other"))
    assert len(runs) == 4


def test_dependencies_vendored_local_and_from_an_authenticated_chart_repository(
    tmp_path: Path, published: ChartRepo, runs: list[list[str]]
) -> None:
    login = (published.username, published.password)
    files = web_chart("apps/web", published.url)
    files["apps/web/Chart.yaml"] += (
        "- name: common\n  version: ~0.3.0\n  repository: file://../../libs/common\n"
        "- name: vendored\n  version: 9.9.9\n"
    )
    files.update({f"libs/common/{k}": v for k, v in labels_chart("0.3.1").items()})
    files["libs/common/Chart.yaml"] = "apiVersion: v2\nname: common\nversion: 0.3.1\n"
    files.update({f"apps/web/charts/vendored/{k}": v for k, v in labels_chart("9.9.9").items()})
    files["apps/web/charts/vendored/Chart.yaml"] = "apiVersion: v2\nname: vendored\nversion: 9.9.9\n"
    repo = write_tree(tmp_path / "repo", files)
    downloads = published.downloads("labels-1.2.0.tgz")  # the repository serves the whole session
    context = ctx(repo, creds=lambda url: login if url.startswith(published.url) else None,
                  values={"labels": {"color": "green"}})  # fmt: skip
    out = render(repo / "apps/web", label="apps/web", context=context)
    labels = [m for m in out if m.obj["metadata"].get("name") == "web-app-labels"]
    # Three subcharts render a ConfigMap of that name: the repository's, the local and the vendored one.
    assert sorted(m.obj["data"]["version"] for m in labels) == ["0.3.1", "1.2.0", "9.9.9"]  # ^1.0.0 -> 1.2.0
    assert {m.source for m in labels} >= {"apps/web (helm), charts/labels/templates/cm.yaml, document 1"}
    assert next(m for m in labels if m.obj["data"]["version"] == "1.2.0").obj["data"]["color"] == "green"
    assert published.downloads("labels-1.2.0.tgz") == downloads + 1
    assert login[1] not in json.dumps(runs)
    # Another render (the render cache cleared) reads the index again but takes the package from the cache.
    helm.cache_clear()
    index_reads = published.downloads("index.yaml")
    render(repo / "apps/web", label="apps/web", context=context)
    assert published.downloads("labels-1.2.0.tgz") == downloads + 1
    assert published.downloads("index.yaml") == index_reads + 1
    cached = list((Path(os.environ["SLIPWAY_HELM_CACHE"]) / "charts").iterdir())
    assert [p.name.split("@")[0] for p in cached] == ["labels-1.2.0"]


def test_a_chart_lock_pins_the_version(tmp_path: Path, published: ChartRepo) -> None:
    files = web_chart("web", published.public_url)
    files["web/Chart.lock"] = (
        f"dependencies:\n- name: labels\n  repository: {published.public_url}\n  version: 1.0.0\n"
        "digest: sha256:0\ngenerated: '2026-01-01T00:00:00Z'\n"
    )
    repo = write_tree(tmp_path / "repo", files)
    out = by_name(render(repo / "web", label="web", context=ctx(repo)))
    assert out["web-app-labels"].obj["data"]["version"] == "1.0.0"


def test_helm_runs_with_directories_of_its_own_and_no_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slipway import settings

    monkeypatch.setenv("SLIPWAY_CACHE", str(settings.cache()))  # where the built Helm is, whatever HOME says
    user = tmp_path / "user"
    for var, sub in [("HOME", ""), ("HELM_CONFIG_HOME", "c"), ("HELM_CACHE_HOME", "k"), ("HELM_DATA_HOME", "d"),
                     ("HELM_REPOSITORY_CONFIG", "c/repositories.yaml"), ("HELM_PLUGINS", "p")]:  # fmt: skip
        monkeypatch.setenv(var, str(user / sub))
    (user / "c").mkdir(parents=True)
    (user / "kubeconfig").write_text("not: a kubeconfig\n")
    monkeypatch.setenv("KUBECONFIG", str(user / "kubeconfig"))
    monkeypatch.setenv("SECRET_OF_THE_USER", "do-not-pass")
    given: list[dict[str, str]] = []

    def record(argv: list[str], env: dict[str, str]) -> None:
        given.append(env)

    helm.on_run.append(record)
    try:
        repo = write_tree(tmp_path / "repo", web_chart("web"))
        assert render(repo / "web", label="web", context=ctx(repo))
    finally:
        helm.on_run.remove(record)
    (env,) = given
    assert "SECRET_OF_THE_USER" not in env and not Path(env["KUBECONFIG"]).exists()
    helm_dirs = {k: v for k, v in env.items() if k.startswith("HELM_") or k == "HOME"}
    assert len(helm_dirs) == 8 and not any(v.startswith(str(user)) for v in helm_dirs.values())
    assert not Path(env["HOME"]).exists()  # Helm's home is the render's own, removed after it
    assert sorted(p.name for p in user.rglob("*")) == ["c", "kubeconfig"]  # nothing of the user's was touched


def bad(files: dict[str, str], **options: Any) -> dict[str, Any]:
    return {"files": files, "options": options}


@pytest.mark.parametrize(
    "case,message",
    [
        (
            {"web/templates/config.yaml": "data:\n  x: {{ .Values.nothing.here }}\n"},
            r"^web \(helm\): template: templates/config.yaml:2:\d+: at <.Values.nothing.here>: nil pointer",
        ),
        (
            {"web/templates/config.yaml": "{{ fail \"replicas must be set\" }}\n"},
            r"^web \(helm\): execution error at \(templates/config.yaml:1:3\): replicas must be set$",
        ),
        (
            {"web/templates/config.yaml": "a: b\n  c: d\n"},
            r"^web \(helm\): YAML parse error on templates/config.yaml: .*line 2",
        ),
        ({"web/templates/config.yaml": "kind: ConfigMap\n"}, r"web \(helm\), templates/config.yaml, document 1: missing apiVersion"),
        ({"web/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\ndependencies:\n- name: x\n  version: 1.0.0\n  repository: file://../../elsewhere\n"},
         r"^web \(helm\): dependency x: file://../../elsewhere is outside the repository$"),
        ({"web/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\ndependencies:\n- name: x\n  version: 1.0.0\n  repository: oci://registry.invalid/charts\n"},
         r"^web \(helm\): Chart.yaml: dependency x from oci://registry.invalid/charts: not a chart repository slipway "
         "may fetch from"),
        ({"web/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\ndependencies:\n- name: x\n  version: 1.0.0\n  repository: '@stable'\n"},
         r"^web \(helm\): Chart.yaml: dependency x: repository '@stable' is a name from `helm repo add`"),
        ({"web/Chart.yaml": "name: [\n"}, r"^web \(helm\): Chart.yaml: invalid YAML"),
    ],
)  # fmt: skip
def test_bad_charts_name_the_chart_and_the_file(tmp_path: Path, case: dict[str, str], message: str) -> None:
    repo = write_tree(tmp_path / "repo", {**web_chart("web"), **case})
    with pytest.raises(ManifestError, match=message) as err:
        render(repo / "web", label="web", context=ctx(repo))
    assert str(tmp_path) not in str(err.value) and "/tmp/" not in str(err.value)


@pytest.mark.parametrize(
    "values_files,message",
    [
        (["values-staging.yaml"], r"^web \(helm\): values file values-staging.yaml: not found$"),
        (["../../outside.yaml"], r"^web \(helm\): values file ../../outside.yaml: outside the repository$"),
    ],
)
def test_values_files_must_exist_inside_the_repository(tmp_path: Path, values_files: list[str], message: str) -> None:
    (tmp_path / "outside.yaml").write_text("greeting: leaked\n")
    repo = write_tree(tmp_path / "repo", web_chart("web"))
    with pytest.raises(ManifestError, match=message):
        render(repo / "web", label="web", context=ctx(repo, values_files=values_files))


def test_chart_repository_failures_never_show_the_password(tmp_path: Path, published: ChartRepo) -> None:
    repo = write_tree(tmp_path / "repo", web_chart("web", published.url))
    wrong = "wrong-" + secrets.token_hex(8)
    at = rf"^web \(helm\): Chart.yaml: dependency labels from {published.url}: index.yaml: "
    with pytest.raises(ManifestError, match=at + r"the chart repository needs credentials \(HTTP 401\)"):
        render(repo / "web", label="web", context=ctx(repo))
    with pytest.raises(ManifestError, match=at + r"the chart repository refused the credentials") as err:
        render(repo / "web", label="web", context=ctx(repo, creds=lambda url: (published.username, wrong)))
    assert wrong not in str(err.value)
    # A package the index lists under another digest than it has.
    files = web_chart("web", published.public_url)
    files["web/Chart.yaml"] = files["web/Chart.yaml"].replace("^1.0.0", "1.0.0")
    repo = write_tree(tmp_path / "repo2", files)
    package = published.root / "labels-1.0.0.tgz"
    saved = package.read_bytes()
    shutil.copyfile(published.root / "labels-2.0.0.tgz", package)
    try:
        with pytest.raises(ManifestError, match=r"labels-1.0.0: the package's sha256 .* is not the index's"):
            render(repo / "web", label="web", context=ctx(repo))
    finally:
        package.write_bytes(saved)


def test_an_unreachable_chart_repository(tmp_path: Path) -> None:
    from tests.gitservers import free_port

    url = f"http://127.0.0.1:{free_port()}/charts"
    repo = write_tree(tmp_path / "repo", web_chart("web", url))
    with pytest.raises(ManifestError, match=rf"^web \(helm\): Chart.yaml: dependency labels from {url}: index.yaml: cannot reach the chart repository"):  # fmt: skip
        render(repo / "web", label="web", context=ctx(repo))
