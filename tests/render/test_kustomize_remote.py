"""kustomize's remote resources: refused before the real kustomize runs (the server sees no request),
in every kustomization the build would read, unless the engine allows them for the workflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipway.errors import ManifestError
from slipway.render import RenderContext, render
from tests.chartrepo import write_tree
from tests.render.webserver import Served

REMOTE_CM = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-the-network\ndata:\n  a: b\n"
LOCAL_CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: local\ndata:\n  a: b\n"
HINT = (
    "remote resources are off: vendor the content into the repository, or have an administrator allow them for "
    "this workflow (SLIPWAY_KUSTOMIZE_ALLOW_REMOTE)"
)


@pytest.fixture
def served() -> Served:
    with Served() as s:
        s.files["/x.yaml"] = REMOTE_CM
        yield s


def ctx(repo: Path, allow_remote: bool = False) -> RenderContext:
    context = RenderContext(workflow_id="kust", repository_root=repo)
    context.allow_remote = allow_remote  # the engine's decision (an administrator's setting)
    return context


def test_a_remote_resource_is_refused_by_default_and_fetched_when_allowed(tmp_path: Path, served: Served) -> None:
    kustomization = f"resources:\n- local.yaml\n- {served.url}/x.yaml\n"
    repo = write_tree(tmp_path / "repo", {"apps/k/kustomization.yaml": kustomization, "apps/k/local.yaml": LOCAL_CM})
    with pytest.raises(ManifestError) as err:
        render(repo / "apps/k", label="apps/k", context=ctx(repo))
    assert str(err.value) == (
        f"apps/k (kustomize): apps/k/kustomization.yaml: resources entry '{served.url}/x.yaml' is not in the "
        f"repository, so kustomize would fetch it from the network; {HINT}"
    )
    assert served.requests == []
    out = render(repo / "apps/k", label="apps/k", context=ctx(repo, allow_remote=True))
    assert sorted(m.obj["metadata"]["name"] for m in out) == ["from-the-network", "local"]
    assert served.requests == ["/x.yaml"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (  # a remote entry in a base the overlay reaches
            {
                "apps/overlay/kustomization.yaml": "resources:\n- ../base\nnamePrefix: p-\n",
                "apps/base/kustomization.yaml": "resources:\n- cm.yaml\n- {url}/x.yaml\n",
                "apps/base/cm.yaml": LOCAL_CM,
            },
            "apps/base/kustomization.yaml: resources entry '{url}/x.yaml' is not in the repository",
        ),
        (  # a component, nested twice
            {
                "apps/overlay/kustomization.yaml": "resources:\n- ../mid\n",
                "apps/mid/kustomization.yaml": "resources:\n- cm.yaml\ncomponents:\n- ../comp\n",
                "apps/mid/cm.yaml": LOCAL_CM,
                "apps/comp/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
                "resources:\n- {url}/x.yaml\n",
            },
            "apps/comp/kustomization.yaml: resources entry '{url}/x.yaml' is not in the repository",
        ),
        (  # a Git repository as kustomize names them
            {"apps/overlay/kustomization.yaml": "resources:\n- github.com/example/config//base?ref=v1\n"},
            "apps/overlay/kustomization.yaml: resources entry 'github.com/example/config//base?ref=v1' is not in "
            "the repository",
        ),
        (  # a patch file given as a URL
            {
                "apps/overlay/kustomization.yaml": "resources:\n- cm.yaml\npatches:\n- path: {url}/x.yaml\n",
                "apps/overlay/cm.yaml": LOCAL_CM,
            },
            "apps/overlay/kustomization.yaml: patches path '{url}/x.yaml' is a URL kustomize would fetch",
        ),
        (  # a base outside the repository
            {"apps/overlay/kustomization.yaml": "resources:\n- ../../..\n"},
            "apps/overlay/kustomization.yaml: resources entry '../../..' is outside the repository",
        ),
    ],
)
def test_every_kustomization_the_build_reads_is_checked(
    tmp_path: Path, served: Served, files: dict[str, str], message: str
) -> None:
    repo = write_tree(tmp_path / "repo", {k: v.replace("{url}", served.url) for k, v in files.items()})
    with pytest.raises(ManifestError) as err:
        render(repo / "apps/overlay", label="apps/overlay", context=ctx(repo))
    assert str(err.value).startswith("apps/overlay (kustomize): " + message.replace("{url}", served.url))
    assert served.requests == []


def test_helm_charts_of_a_kustomization_come_only_from_allowed_chart_repositories(tmp_path: Path) -> None:
    kustomization = "helmCharts:\n- name: labels\n  repo: http://127.0.0.1:9/charts\n  version: 1.0.0\n"
    repo = write_tree(tmp_path / "repo", {"apps/k/kustomization.yaml": kustomization})
    with pytest.raises(ManifestError) as err:
        render(repo / "apps/k", label="apps/k", context=ctx(repo))
    assert str(err.value) == (
        "apps/k (kustomize): apps/k/kustomization.yaml: helmCharts[1] repo 'http://127.0.0.1:9/charts' is not a "
        "chart repository slipway may fetch from; register it as a repository of type helm (or list it in "
        "SLIPWAY_HELM_REPOSITORIES)"
    )
