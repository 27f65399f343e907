"""A Jsonnet directory synced to the real cluster, with a top-level argument."""

from __future__ import annotations

from typing import Any

import pytest

from slipway.engine import Engine
from slipway.kube import Kube

from .conftest import Repo, add_workflow

pytestmark = pytest.mark.cluster

MAIN = """\
local k = import 'k.libsonnet';
function(name, replicas=1, env='dev') [
  k.deployment(name, replicas),
  {apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: name + '-settings'},
   data: {env: env, replicas: std.toString(replicas), team: std.extVar('team')}},
]
"""

LIB = """\
{
  deployment(name, replicas): {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: {name: name},
    spec: {
      replicas: replicas,
      selector: {matchLabels: {app: name}},
      template: {metadata: {labels: {app: name}},
                 spec: {containers: [{name: 'app', image: 'registry.invalid/app:1'}]}},
    },
  },
}
"""


def test_a_jsonnet_directory_with_top_level_arguments_syncs_and_stays_in_sync(
    engine: Engine, make_git: Any, kube: Kube, namespace: str
) -> None:
    git: Repo = make_git({"apps/web/main.jsonnet": MAIN, "lib/k.libsonnet": LIB})
    wf = add_workflow(
        engine, git, namespace, path="apps/web", id="jsonnet-web",
        jsonnet={"tlas": {"name": "web", "replicas": 2, "env": "prod"}, "ext_vars": {"team": "shop"}, "libs": ["lib"]},
        sync_policy={"auto_prune": True},
    )  # fmt: skip
    result = engine.sync(wf)
    assert result.status == "succeeded", result.message
    deploy = kube.get(kube.discovery.lookup("apps/v1", "Deployment"), namespace, "web") or {}
    assert deploy["spec"]["replicas"] == 2
    settings = kube.get(kube.discovery.lookup("v1", "ConfigMap"), namespace, "web-settings") or {}
    assert settings["data"] == {"env": "prod", "replicas": "2", "team": "shop"}
    assert engine.plan(wf).changes == []

    git.commit({"apps/web/main.jsonnet": MAIN.replace("k.deployment(name, replicas),", "")})
    result = engine.sync(wf)
    assert result.status == "succeeded", result.message
    assert kube.get(kube.discovery.lookup("apps/v1", "Deployment"), namespace, "web") is None  # pruned

    git.commit({"apps/web/main.jsonnet": MAIN.replace("std.toString(replicas)", "std.toString(replica)")})
    result = engine.sync(wf)
    assert result.status == "failed"
    assert "apps/web/main.jsonnet:5:" in result.message and "Unknown variable: replica" in result.message


def test_a_render_past_its_time_limit_names_the_repository_and_path_and_is_cancelled_with_its_caller(
    engine: Engine, make_git: Any, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import re
    import threading
    import time

    from slipway.errors import Cancelled, ManifestError

    monkeypatch.setenv("SLIPWAY_RENDER_TIMEOUT", "2s")
    git: Repo = make_git({"apps/loop/main.jsonnet": "local loop(n) = loop(n + 1) tailstrict;\nloop(0)\n"})
    wf = add_workflow(engine, git, namespace, path="apps/loop", id="jsonnet-loop")
    result = engine.sync(wf)
    assert result.status == "failed"
    assert re.search(r"repository \S+ at [0-9a-f]{12}: apps/loop \(jsonnet\): render exceeded the 2s time limit "
                     r"\(SLIPWAY_RENDER_TIMEOUT\)", result.message), result.message  # fmt: skip
    monkeypatch.setenv("SLIPWAY_RENDER_TIMEOUT", "10m")
    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()
    started = time.monotonic()
    with pytest.raises((Cancelled, ManifestError), match="render cancelled"):
        engine.plan(wf, cancel=cancel)
    assert time.monotonic() - started < 10
    from slipway.render import bounded

    assert bounded.live() == []
