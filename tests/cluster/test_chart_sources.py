"""Charts straight from chart repositories (HTTP and OCI), values from Git, OCI dependencies.

Real parts on loopback: the HTTP chart repository of tests/chartrepo.py serving several releases,
the CNCF distribution registry with basic auth (tests/registry.py, charts pushed by ``helm push``),
Git repositories on disk, the real cluster.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slipway.controller import Controller
from slipway.engine import Engine
from slipway.errors import ConfigError, ManifestError, NotPermitted, SlipwayError
from slipway.kube import Kube
from slipway.render import helm
from tests.chartrepo import ChartRepo, write_tree
from tests.chartrepo import helm as chart_repo_helm
from tests.registry import Registry

from .conftest import Repo

pytestmark = pytest.mark.cluster

REVISION = re.compile(r"^(?P<version>[^@;]+)@sha256:[0-9a-f]{64}$")


def configmap(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    return kube.get(kube.discovery.lookup("v1", "ConfigMap"), namespace, name)


def chart(name: str, version: str) -> dict[str, str]:
    return {
        "Chart.yaml": f"apiVersion: v2\nname: {name}\nversion: {version}\n",
        "values.yaml": "color: blue\n",
        "templates/cm.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\n"
            "data:\n  version: {{ .Chart.Version | quote }}\n  color: {{ .Values.color | quote }}\n"
        ),
    }


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPWAY_HELM_CACHE", str(tmp_path / "helm-cache"))
    helm.cache_clear()


def wait_until(check: Callable[[], Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not true after {timeout}s")


def chart_workflow(engine: Engine, repo_id: str, name: str, version: str, namespace: str, **more: Any) -> str:
    return engine.create_workflow({
        "id": f"{name}-wf", "repository": repo_id, "chart": name, "chart_version": version,
        "destination": {"namespace": namespace}, "sync_policy": {"health_check": {"timeout": "60s"}}, **more,
    }).id  # fmt: skip


def test_a_chart_from_an_http_repository_follows_its_range(
    engine: Engine, kube: Kube, namespace: str, chart_repo: ChartRepo
) -> None:
    name = f"ranged{secrets.token_hex(3)}"
    for version in ("1.0.0", "1.2.0", "2.0.0"):
        chart_repo.publish(chart(name, version))
    repo = engine.register_repository({
        "id": f"charts-{name}", "type": "helm", "url": chart_repo.url, "poll_interval": "1s",
        "credentials": {"type": "userpass", "username": chart_repo.username, "password": chart_repo.password},
    }).id  # fmt: skip
    wf = chart_workflow(engine, repo, name, "^1.0.0", namespace)
    result = engine.sync(wf)
    assert result.status == "succeeded", result.message
    m = REVISION.match(result.commit_hash or "")
    assert m and m["version"] == "1.2.0", result.commit_hash
    assert (configmap(kube, namespace, f"{name}-wf-cm") or {})["data"] == {"version": "1.2.0", "color": "blue"}
    assert engine.plan(wf).changes == []

    # A new release inside the range is a pending change like a new commit; one outside is not.
    chart_repo.publish(chart(name, "2.1.0"))
    assert engine.plan(wf).changes == []
    chart_repo.publish(chart(name, "1.3.0"))
    plan = engine.plan(wf)
    assert [c.resource for c in plan.changes] == [f"ConfigMap/{name}-wf-cm"]
    assert plan.revision is not None and plan.revision.startswith("1.3.0@sha256:")

    # The controller sees it at the repository's poll interval and syncs it.
    engine.update_workflow(wf, {"auto_sync": True})
    ctl = Controller(engine, tick=0.1)
    ctl.start()
    try:
        wait_until(lambda: (configmap(kube, namespace, f"{name}-wf-cm") or {}).get("data", {}).get("version")
                   == "1.3.0", 30)  # fmt: skip
    finally:
        ctl.stop(10)
    assert str(engine.live_state(wf)["applied_revision"]).startswith("1.3.0@sha256:")

    # An explicit version: inside the range as a person may sync it; outside, only an admin.
    engine.update_workflow(wf, {"auto_sync": False})
    back = engine.sync(wf, revision="1.0.0")
    assert back.status == "succeeded" and str(back.commit_hash).startswith("1.0.0@sha256:"), back.message
    with pytest.raises(NotPermitted, match=r"chart version 2.1.0 is outside the range '\^1.0.0'"):
        engine.sync(wf, revision="2.1.0")
    assert (configmap(kube, namespace, f"{name}-wf-cm") or {})["data"]["version"] == "1.0.0"


def test_an_exact_version_pins_the_chart_and_bad_input_is_refused(
    engine: Engine, namespace: str, chart_repo: ChartRepo
) -> None:
    name = f"pinned{secrets.token_hex(3)}"
    for version in ("1.0.0", "1.1.0"):
        chart_repo.publish(chart(name, version))
    repo = engine.register_repository({"id": f"charts-{name}", "type": "helm", "url": chart_repo.public_url}).id
    wf = chart_workflow(engine, repo, name, "1.0.0", namespace)
    assert str(engine.plan(wf).revision).startswith("1.0.0@sha256:")
    assert engine.resolve_revision(wf, "1.1.0").startswith("1.1.0@sha256:")  # diff --revision 1.1.0
    nothing = chart_workflow(engine, repo, name, ">=5", namespace, id="nothing")
    with pytest.raises(ManifestError, match=rf"chart {name}.*no version matches '>=5' \(it has 1.1.0, 1.0.0\)"):
        engine.plan(nothing)
    pinned = engine.sync(wf)
    assert pinned.status == "succeeded", pinned.message

    # The repository republishes 1.0.0 as another package: that revision is refused, never applied.
    package = chart_repo.root / f"{name}-1.0.0.tgz"
    other = chart_repo.dir / "other"
    write_tree(other / name, {**chart(name, "1.0.0"), "values.yaml": "color: red\n"})
    chart_repo_helm("package", other / name, "--destination", chart_repo.root, home=chart_repo.dir / "helm-home")
    chart_repo_helm("repo", "index", chart_repo.root, home=chart_repo.dir / "helm-home")
    assert package.is_file()
    helm.cache_clear()
    with pytest.raises(ManifestError, match=rf"chart {name} 1.0.0 is no longer the package of revision"):
        engine.render(engine.workflow(wf), engine.repository(repo), str(pinned.commit_hash))
    assert str(engine.plan(wf).revision) != pinned.commit_hash  # the new package is a new revision
    with pytest.raises(ConfigError, match=r"chart_version: '\^1\.x\.\+' .*not a version range"):
        chart_workflow(engine, repo, name, "^1.x.+", namespace, id="bad-range")
    git = engine.register_repository({"id": "plain-git", "url": "https://example.invalid/x.git"}).id
    with pytest.raises(ConfigError, match=r"chart: .*repository plain-git is a Git repository"):
        chart_workflow(engine, git, name, "1.0.0", namespace, id="chart-of-git")
    with pytest.raises(ConfigError, match=r"chart: required .*repository charts-pinned"):
        engine.create_workflow({"id": "no-chart", "repository": repo, "destination": {"namespace": namespace}})


def test_a_chart_from_an_oci_registry_with_basic_auth(
    engine: Engine, kube: Kube, namespace: str, oci_registry: Registry
) -> None:
    oci = oci_registry
    name = f"oci{secrets.token_hex(3)}"
    for version in ("0.1.0", "0.2.0+build.7", "1.0.0"):
        oci.push(chart(name, version))
    url = oci.url
    with pytest.raises(ConfigError, match="plain_http"):
        engine.register_repository({"id": "oci-https-only", "type": "helm", "url": "http://x", "plain_http": True})
    repo = engine.register_repository({
        "id": f"oci-{name}", "type": "helm", "url": url, "plain_http": True,
        "credentials": {"type": "userpass", "username": oci.username, "password": oci.password},
    }).id  # fmt: skip
    wf = chart_workflow(engine, repo, name, "<1.0.0", namespace)
    seen: list[str] = []

    def record(argv: list[str], env: dict[str, str]) -> None:
        seen.extend([*argv, *env.values()])

    helm.on_run.append(record)
    try:
        result = engine.sync(wf)
    finally:
        helm.on_run.remove(record)
    assert seen and not any(oci.password in x for x in seen)
    assert result.status == "succeeded", result.message
    m = REVISION.match(result.commit_hash or "")
    assert m and m["version"] == "0.2.0+build.7", result.commit_hash  # tag 0.2.0_build.7, as Helm stores it
    assert (configmap(kube, namespace, f"{name}-wf-cm") or {})["data"]["version"] == "0.2.0+build.7"

    # Wrong credentials: a clear error naming the registry, and the password nowhere.
    engine.register_repository({
        "id": f"oci-{name}", "type": "helm", "url": url, "plain_http": True,
        "credentials": {"type": "userpass", "username": oci.username, "password": "wrong-" + oci.password},
    })  # fmt: skip
    helm.cache_clear()
    with pytest.raises(SlipwayError) as failed:
        engine.plan(wf)
    text = str(failed.value) + str(getattr(failed.value, "hint", ""))
    assert "refused the credentials" in text and oci.host in text
    assert oci.password not in text


def test_an_oci_registry_over_tls_with_a_private_ca(engine: Engine, namespace: str, oci_registry_tls: Registry) -> None:
    oci = oci_registry_tls
    name = f"tls{secrets.token_hex(3)}"
    oci.push(chart(name, "0.3.0"))
    creds = {"type": "userpass", "username": oci.username, "password": oci.password}
    repo = engine.register_repository({"id": "oci-tls", "type": "helm", "url": oci.url, "credentials": creds}).id
    wf = chart_workflow(engine, repo, name, "0.x", namespace)
    with pytest.raises(ManifestError, match=r"cannot reach the registry 127\.0\.0\.1:\d+: TLS: .*ca_file"):
        engine.plan(wf)
    engine.register_repository({"id": "oci-tls", "type": "helm", "url": oci.url, "credentials": creds,
                                "ca_file": str(oci.ca_file)})  # fmt: skip
    plan = engine.plan(wf)
    assert str(plan.revision).startswith("0.3.0@sha256:")
    assert [c.resource for c in plan.changes] == [f"ConfigMap/{name}-wf-cm"]


def test_oci_chart_dependencies_use_the_registered_credentials_and_are_cached_by_digest(
    engine: Engine, kube: Kube, namespace: str, oci_registry: Registry, make_git: Any
) -> None:
    oci = oci_registry
    dep = f"ocidep{secrets.token_hex(3)}"
    oci.push(chart(dep, "3.1.0"))
    oci.push(chart(dep, "3.2.0"))
    git: Repo = make_git({
        "app/Chart.yaml": (f"apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n- name: {dep}\n"
                           f"  version: ~3.1.0\n  repository: {oci.url}\n"),
        "app/templates/x.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-x\ndata:\n  a: b\n",
    })  # fmt: skip
    repo_id = engine.register_repository({"url": git.url}).id
    wf = engine.create_workflow({"id": "ocideps", "repository": repo_id, "target_path": "app",
                                 "destination": {"namespace": namespace}}).id  # fmt: skip
    with pytest.raises(ManifestError, match=r"not a chart repository slipway may fetch from"):
        engine.plan(wf)
    engine.register_repository({
        "id": "oci-deps", "type": "helm", "url": oci.url, "plain_http": True,
        "credentials": {"type": "userpass", "username": oci.username, "password": oci.password},
    })  # fmt: skip
    result = engine.sync(wf)
    assert result.status == "succeeded", result.message
    assert (configmap(kube, namespace, "ocideps-cm") or {})["data"]["version"] == "3.1.0"
    blobs = [r for r in oci.requests() if "/blobs/sha256:" in r and f"/{dep}/" in r]
    helm.cache_clear()  # a new render: the package comes from the cache, by its digest
    assert engine.plan(wf).changes == []
    assert [r for r in oci.requests() if "/blobs/sha256:" in r and f"/{dep}/" in r] == blobs


def test_values_from_another_git_repository_are_part_of_the_revision(
    engine: Engine, kube: Kube, namespace: str, chart_repo: ChartRepo, make_git: Any
) -> None:
    name = f"valued{secrets.token_hex(3)}"
    chart_repo.publish(chart(name, "1.0.0"))
    values: Repo = make_git({"envs/prod.yaml": "color: green\n"})
    vals = engine.register_repository({"id": f"vals-{name}", "url": values.url}).id
    repo = engine.register_repository({"id": f"charts-{name}", "type": "helm", "url": chart_repo.public_url}).id
    with pytest.raises(ConfigError, match=r"helm.values_files\[1\]: .*\$<repository id>/<path>"):
        chart_workflow(engine, repo, name, "1.x", namespace, id="bad-ref", helm={"values_files": ["$/x.yaml"]})
    missing = chart_workflow(engine, repo, name, "1.x", namespace, id="missing-ref",
                             helm={"values_files": [f"${vals}/envs/none.yaml"]})  # fmt: skip
    with pytest.raises(SlipwayError, match=rf"values file \${vals}/envs/none.yaml: .*envs/none.yaml"):
        engine.plan(missing)
    wf = chart_workflow(engine, repo, name, "1.x", namespace, helm={"values_files": [f"${vals}/envs/prod.yaml"]})
    result = engine.sync(wf)
    assert result.status == "succeeded", result.message
    first = str(result.commit_hash)
    assert re.match(rf"^1\.0\.0@sha256:[0-9a-f]{{64}};{vals}@[0-9a-f]{{40}}$", first), first
    assert (configmap(kube, namespace, f"{name}-wf-cm") or {})["data"]["color"] == "green"

    sha = values.commit({"envs/prod.yaml": "color: purple\n"})
    plan = engine.plan(wf)
    assert plan.revision == first.split(";")[0] + f";{vals}@{sha}"
    assert [c.resource for c in plan.changes] == [f"ConfigMap/{name}-wf-cm"]
    assert engine.sync(wf).status == "succeeded"
    assert (configmap(kube, namespace, f"{name}-wf-cm") or {})["data"]["color"] == "purple"

    # Rolled back to the first revision: the values as they were then, from their own commit.
    rb = engine.rollback(wf, to=result.id)
    assert rb.status == "succeeded", rb.message
    assert (configmap(kube, namespace, f"{name}-wf-cm") or {})["data"]["color"] == "green"


def test_values_from_git_for_a_chart_in_git(engine: Engine, kube: Kube, namespace: str, make_git: Any) -> None:
    values: Repo = make_git({"prod.yaml": "color: teal\n"})
    vals = engine.register_repository({"id": "vals-git", "url": values.url}).id
    app: Repo = make_git({f"app/{k}": v for k, v in chart("app", "0.1.0").items()})
    repo_id = engine.register_repository({"id": "app-git", "url": app.url}).id
    wf = engine.create_workflow({"id": "gitvals", "repository": repo_id, "target_path": "app",
                                 "destination": {"namespace": namespace},
                                 "helm": {"values_files": [f"${vals}/prod.yaml"]}}).id  # fmt: skip
    result = engine.sync(wf)
    assert result.status == "succeeded", result.message
    assert re.match(rf"^[0-9a-f]{{40}};{vals}@[0-9a-f]{{40}}$", str(result.commit_hash))
    assert (configmap(kube, namespace, "gitvals-cm") or {})["data"]["color"] == "teal"

    # The controller follows the values repository too: a commit there is a change of the workflow.
    engine.register_repository({"id": vals, "url": values.url, "poll_interval": "1s"})
    engine.update_workflow(wf, {"auto_sync": True})
    ctl = Controller(engine, tick=0.1)
    ctl.start()
    try:
        values.commit({"prod.yaml": "color: olive\n"})
        wait_until(lambda: (configmap(kube, namespace, "gitvals-cm") or {})["data"]["color"] == "olive", 30)
    finally:
        ctl.stop(10)
