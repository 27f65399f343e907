"""The one filter behind the API's workflow list and the dashboard's overview (slipway.filters)."""

from __future__ import annotations

import pytest

from slipway import filters
from slipway.errors import ConfigError
from slipway.model import Workflow


def row(**kw: object) -> dict[str, object]:
    base = {"id": "web", "name": "Web", "repository": "platform", "path": "apps/web", "namespace": "web",
            "cluster": "in-cluster", "labels": {"team": "payments", "tier": "web"},
            "sync_status": {"status": "OutOfSync"}, "health": {"status": "Degraded"}}  # fmt: skip
    return {**base, **kw}


def test_words_are_argo_cds_and_anything_else_is_an_error_naming_the_key() -> None:
    f = filters.parse([("sync", "outofsync"), ("health", "Degraded"), ("live", "true"), ("namespace", "")])
    assert f.sync == ["OutOfSync"] and f.health == ["Degraded"] and f.namespace == []
    with pytest.raises(ConfigError, match=r"^health: 'Broken' is not one of Healthy, Suspended"):
        filters.parse([("health", "Broken")])
    with pytest.raises(ConfigError, match=r"^label: '=x' names no label"):
        filters.parse([("label", "=x")])


def test_repeated_keys_match_any_labels_match_all() -> None:
    assert filters.matches(row(), filters.parse([("health", "Healthy"), ("health", "Degraded")]))
    assert filters.matches(row(), filters.parse([("label", "team=payments,tier")]))
    assert not filters.matches(row(), filters.parse([("label", "team=payments"), ("label", "tier=db")]))
    assert not filters.matches(row(labels={}), filters.parse([("label", "team")]))
    assert filters.matches(row(), filters.parse([("q", "APPS/WE")]))
    assert not filters.matches(row(sync_status=None), filters.parse([("sync", "OutOfSync")]))  # not computed: Unknown
    assert filters.matches(row(sync_status=None), filters.parse([("sync", "Unknown")]))


def test_cluster_is_where_the_workflow_applies() -> None:
    assert filters.cluster_of({}) == "in-cluster"
    assert filters.cluster_of({"context": "prod"}) == "prod"
    assert filters.cluster_of({"kubeconfig": "/etc/k.yaml", "context": "prod"}) == "/etc/k.yaml:prod"
    assert filters.cluster_of({"kubeconfig_secret": "far"}) == "secret/far"


def test_labels_are_kubernetes_labels() -> None:
    wf = Workflow.from_config({"id": "w", "repository": "r", "labels": {"team": "a", "example.com/tier": "web"}})
    assert wf.labels == {"example.com/tier": "web", "team": "a"}
    for bad in ({"bad key": "a"}, {"team": "no spaces"}, {"team": 3}):
        with pytest.raises(ConfigError, match=r"^labels"):
            Workflow.from_config({"id": "w", "repository": "r", "labels": bad})
