"""Post-build substitution (Flux's postBuild) on the real cluster: values from the workflow, a ConfigMap and
a Secret of the destination namespace; defaults, escapes, opt-out; a missing variable applies nothing."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest

from slipway.engine import Engine
from slipway.kube import Kube

from .conftest import Repo, add_workflow

pytestmark = pytest.mark.cluster

SECRET_VALUE = "db-pass-from-secret-5Rt"

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-${ENV}
spec:
  replicas: ${REPLICAS:=2}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: "registry.invalid/web:${TAG}"}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  region: ${REGION}
  literal: $${ENV}
  fallback: ${UNSET:=none}
---
apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: ${DB_PASSWORD}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: script
  annotations:
    kustomize.toolkit.fluxcd.io/substitute: disabled
data:
  run.sh: echo ${HOME}
"""


def test_variables_from_the_workflow_a_configmap_and_a_secret_are_substituted(
    engine: Engine, make_git: Any, kube: Kube, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cm_info, secret_info = kube.discovery.lookup("v1", "ConfigMap"), kube.discovery.lookup("v1", "Secret")
    kube.apply(cm_info, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "vars", "namespace": namespace},
                         "data": {"REGION": "eu-west-1", "TAG": "from-configmap"}}, field_manager="tests")  # fmt: skip
    kube.apply(secret_info, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-vars", "namespace": namespace},
                             "stringData": {"DB_PASSWORD": SECRET_VALUE}}, field_manager="tests")  # fmt: skip
    git: Repo = make_git({"k8s/app.yaml": APP})
    wf = add_workflow(engine, git, namespace, id="subst", post_build={
        "substitute": {"ENV": "prod", "TAG": "1.4"},  # wins over the ConfigMap's TAG
        "substitute_from": [{"kind": "ConfigMap", "name": "vars"}, {"kind": "Secret", "name": "db-vars"},
                            {"kind": "ConfigMap", "name": "not-there", "optional": True}],
    })  # fmt: skip
    result = engine.sync(wf)
    assert result.status == "succeeded", result.message
    deploy = kube.get(kube.discovery.lookup("apps/v1", "Deployment"), namespace, "web-prod") or {}
    assert deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.invalid/web:1.4"
    settings = kube.get(cm_info, namespace, "settings") or {}
    assert settings["data"] == {"region": "eu-west-1", "literal": "${ENV}", "fallback": "none"}
    assert (kube.get(cm_info, namespace, "script") or {})["data"] == {"run.sh": "echo ${HOME}"}
    db = kube.get(secret_info, namespace, "db") or {}
    assert base64.b64decode(db["data"]["password"]).decode() == SECRET_VALUE
    assert engine.plan(wf).changes == []
    assert SECRET_VALUE not in caplog.text + repr(result) + repr(engine.history(wf))


def test_an_unset_variable_without_a_default_names_the_object_and_nothing_is_applied(
    engine: Engine, make_git: Any, kube: Kube, namespace: str
) -> None:
    git: Repo = make_git({"k8s/app.yaml": APP})
    wf = add_workflow(engine, git, namespace, id="subst-missing",
                      post_build={"substitute": {"ENV": "prod", "TAG": "1", "DB_PASSWORD": "x"}})  # fmt: skip
    result = engine.sync(wf)
    assert result.status == "failed"
    assert "k8s/app.yaml, document 2: ConfigMap/settings: variable 'REGION' is not set and has no default" in (
        result.message
    )
    assert kube.get(kube.discovery.lookup("apps/v1", "Deployment"), namespace, "web-prod") is None

    missing = add_workflow(engine, git, namespace, id="subst-no-source",
                           post_build={"substitute_from": [{"kind": "Secret", "name": "absent"}]})  # fmt: skip
    result = engine.sync(missing)
    assert result.status == "failed"
    assert "Secret absent does not exist" in result.message
