"""The admin's ConfigMap ``slipway-admin`` (kubernetes store): what a Workflow may not carry, and
how a grant is read, with errors that name the ConfigMap and the key."""

from __future__ import annotations

import pytest

from slipway.errors import ConfigError
from slipway.model import Workflow
from slipway.store.kubernetes import admin, mapping


def test_a_workflow_config_splits_into_a_spec_without_hooks_and_a_grant_that_restores_them() -> None:
    wf = Workflow.from_config({
        "id": "web", "repository": "r", "destination": {"namespace": "web", "kubeconfig": "/etc/k.yaml"},
        "sync_policy": {"pre_sync_hooks": ["echo pre"], "post_sync_hooks": ["echo post"], "auto_prune": True},
    })  # fmt: skip
    config, grant = admin.split(wf.to_config())
    spec = mapping.workflow_spec(config)
    assert spec["syncPolicy"] == {"autoPrune": True} and spec["destination"] == {"namespace": "web"}
    assert grant == {"preSyncHooks": ["echo pre"], "postSyncHooks": ["echo post"], "kubeconfig": "/etc/k.yaml"}
    admin.refuse_in_spec(spec, "web", "ns")  # what slipway writes is never refused
    cm = {"data": {admin.key("web"): admin.grant_text(grant)}}
    back = Workflow.from_record(admin.merge(mapping.workflow_config("web", spec), admin.grant_of(cm, "web", "ns")))
    assert back == wf


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"syncPolicy": {"preSyncHooks": ["id"]}}, "spec.syncPolicy.preSyncHooks"),
        ({"syncPolicy": {"postSyncHooks": ["id"]}}, "spec.syncPolicy.postSyncHooks"),
        ({"destination": {"kubeconfig": "/root/.kube/config"}}, "spec.destination.kubeconfig"),
    ],
)
def test_a_spec_that_carries_what_only_the_admin_configures_is_refused(spec: dict, field: str) -> None:
    with pytest.raises(admin.AdminOnly) as e:
        admin.refuse_in_spec({"repository": "r", **spec}, "web", "slipway-system")
    assert e.value.message.startswith(f"{field}: ")
    assert "ConfigMap slipway-admin of namespace slipway-system (key workflow.web)" in e.value.message


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("preSyncHooks: [", "not valid YAML"),
        ("- echo", "expected a mapping"),
        ("preHooks: [echo]", "unknown key 'preHooks'"),
        ("preSyncHooks: echo", "preSyncHooks must be a list of shell commands"),
        ("kubeconfig: [a]", "kubeconfig must be a path"),
    ],
)
def test_a_bad_grant_is_an_error_naming_the_configmap_and_key(text: str, said: str) -> None:
    with pytest.raises(ConfigError) as e:
        admin.grant_of({"data": {"workflow.web": text}}, "web", "ns")
    assert e.value.message.startswith("ConfigMap slipway-admin of namespace ns, key workflow.web: ")
    assert said in e.value.message
