"""Ways around the kustomize remote check: kustomizations reached through ``generators``/``transformers``/
``validators`` directories, a Helm chart's values files given as URLs, and a HelmChartInflationGenerator
written in a generator file. Each is refused, naming file and entry, before the server sees a request;
and when the machine allows it, kustomize runs without a network at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from slipway.errors import ManifestError
from slipway.render import RenderContext, kustomize, render
from tests.chartrepo import write_tree
from tests.render.webserver import Served

GEN = b"apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata:\n  name: injected\nliterals: [owned=yes]\n"
LOCAL_CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: local\ndata:\n  a: b\n"
CHART = "apiVersion: v2\nname: mini\nversion: 0.1.0\n"
TPL = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mini}\ndata: {v: {{ .Values.v | default "none" | quote }}}\n'
HINT = "remote resources are off"


@pytest.fixture
def served() -> Iterator[Served]:
    with Served() as s:
        s.files["/gen.yaml"] = GEN
        s.files["/values.yaml"] = b"v: from-the-network\n"
        yield s


def ctx(repo: Path) -> RenderContext:
    context = RenderContext(workflow_id="kust", repository_root=repo)
    context.allow_remote = False
    return context


def refused(repo: Path) -> str:
    with pytest.raises(ManifestError) as err:
        render(repo / "apps/k", label="apps/k", context=ctx(repo))
    return str(err.value)


@pytest.mark.parametrize("field", ["generators", "transformers", "validators"])
def test_a_kustomization_directory_named_as_a_plugin_is_checked(tmp_path: Path, served: Served, field: str) -> None:
    repo = write_tree(tmp_path / "repo", {
        "apps/k/kustomization.yaml": f"resources: [local.yaml]\n{field}: [sub]\n",
        "apps/k/local.yaml": LOCAL_CM,
        "apps/k/sub/kustomization.yaml": f"resources: [{served.url}/gen.yaml]\n",
    })  # fmt: skip
    assert refused(repo).startswith(
        f"apps/k (kustomize): apps/k/sub/kustomization.yaml: resources entry '{served.url}/gen.yaml' is not in the "
        "repository, so kustomize would fetch it"
    )
    assert served.requests == []


def test_a_plugin_directory_outside_the_repository_is_refused(tmp_path: Path) -> None:
    write_tree(tmp_path, {"outside/kustomization.yaml": "resources: []\n"})
    repo = write_tree(tmp_path / "repo", {"apps/k/kustomization.yaml": "generators: [../../../outside]\n"})
    assert refused(repo) == (
        "apps/k (kustomize): apps/k/kustomization.yaml: generators entry '../../../outside' is outside the repository"
    )


@pytest.mark.parametrize("field", ["valuesFile: {url}/values.yaml", "additionalValuesFiles: [{url}/values.yaml]"])
def test_a_helm_charts_values_file_given_as_a_url_is_refused(tmp_path: Path, served: Served, field: str) -> None:
    repo = write_tree(tmp_path / "repo", {
        "apps/k/kustomization.yaml": "helmCharts:\n- name: mini\n  " + field.replace("{url}", served.url) + "\n",
        "apps/k/charts/mini/Chart.yaml": CHART,
        "apps/k/charts/mini/templates/cm.yaml": TPL,
    })  # fmt: skip
    name = field.partition(":")[0]
    assert refused(repo).startswith(
        f"apps/k (kustomize): apps/k/kustomization.yaml: helmCharts[1] {name} '{served.url}/values.yaml' is a URL "
        f"kustomize would fetch; {HINT}"
    )
    assert served.requests == []


def test_a_helm_inflation_generator_in_a_generator_file_obeys_the_chart_repository_rule(
    tmp_path: Path, served: Served
) -> None:
    repo = write_tree(tmp_path / "repo", {
        # the comment only makes slipway pass --enable-helm; the chart is named in a generator file
        "apps/k/kustomization.yaml": "# helmCharts\ngenerators: [helm.yaml]\n",
        "apps/k/helm.yaml": LOCAL_CM + "---\n" + (
            "apiVersion: builtin\nkind: HelmChartInflationGenerator\nmetadata: {name: x}\n"
            f"name: mini\nversion: 0.1.0\nrepo: {served.url}/charts\nreleaseName: x\n"
        ),
    })  # fmt: skip
    assert refused(repo) == (
        f"apps/k (kustomize): apps/k/helm.yaml: HelmChartInflationGenerator 'x' repo '{served.url}/charts' is not a "
        "chart repository slipway may fetch from; register it as a repository of type helm (or list it in "
        "SLIPWAY_HELM_REPOSITORIES)"
    )
    assert served.requests == []


def test_without_remote_kustomize_runs_offline_when_the_machine_allows(
    tmp_path: Path, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: were the static check to miss a fetch, kustomize has no network to reach."""
    if not kustomize.offline_prefix():
        pytest.skip("this machine cannot make a network namespace: the static check is the only guard")
    monkeypatch.setattr(kustomize, "check", lambda *args, **kwargs: None)  # pretend it missed one
    repo = write_tree(tmp_path / "repo", {"apps/k/kustomization.yaml": f"resources: [{served.url}/gen.yaml]\n"})
    assert "kustomize build failed" in refused(repo)
    assert served.requests == []
