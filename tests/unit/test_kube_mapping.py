"""The one table between the model and the custom resources: complete, both ways, and the schemas built from it."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import pytest

from slipway.errors import ConfigError
from slipway.model import Credentials, Repository, Workflow
from slipway.render.options import HelmOptions, JsonnetOptions
from slipway.render.sops import Decryption
from slipway.render.substitute import PostBuild, SubstituteFrom
from slipway.store.kubernetes import crds, mapping


def model_paths(cls: type, prefix: str = "") -> set[str]:
    """Every field of a model dataclass and of the dataclasses inside it, as dotted model keys."""
    hints = typing.get_type_hints(cls, {**vars(__import__("slipway.model", fromlist=["x"])),
                                        "HelmOptions": HelmOptions, "JsonnetOptions": JsonnetOptions,
                                        "Decryption": Decryption, "PostBuild": PostBuild,
                                        "SubstituteFrom": SubstituteFrom})  # fmt: skip
    out = set()
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        out.add(key)
        inner = [a for a in typing.get_args(hints[f.name]) if dataclasses.is_dataclass(a)]
        if dataclasses.is_dataclass(hints[f.name]):
            inner = [hints[f.name]]
        for sub in inner:
            out |= model_paths(sub, key + ".")
    return out


def table_paths(fields: tuple[mapping.Field, ...], prefix: str = "") -> set[str]:
    out = set()
    for f in fields:
        out.add(prefix + f.model)
        out |= table_paths(f.children, prefix + f.model + ".")
    return out


def test_every_model_field_has_a_row() -> None:
    assert model_paths(Workflow) - {"id"} == table_paths(mapping.WORKFLOW)
    repository = {p for p in model_paths(Repository) if not p.startswith("credentials")} - {"id"}
    assert repository == table_paths(mapping.REPOSITORY)
    assert {f.name for f in dataclasses.fields(Credentials)} == set(mapping.CREDENTIAL_KEYS)


FULL: dict[str, Any] = {
    "id": "Web_App",
    "name": "Web application",
    "labels": {"team": "payments", "example.com/tier": "web"},
    "repository": "platform",
    "target_path": "apps/web",
    "auto_sync": True,
    "diff_preview": False,
    "rollback_on_failure": True,
    "sync_policy": {
        "auto_prune": True, "allow_empty": True, "create_namespace": True, "self_heal": True,
        "self_heal_interval": "30s", "recreate": True, "hook_timeout": "2m",
        "retry": {"limit": 7, "backoff": "linear", "max_duration": "10m"},
        "health_check": {"enabled": False, "timeout": "1m30s", "failure_mode": "rollback"},
        "pre_sync_hooks": ["echo pre"], "post_sync_hooks": ["echo post", "echo again"],
        "ignore_differences": [
            {"group": "apps", "kind": "Deployment", "json_pointers": ["/spec/replicas"]},
            {"kind": "*", "group": "*", "name": "web", "namespace": "web", "managed_fields_managers": ["hpa"]},
        ],
    },
    "destination": {"namespace": "web", "context": "prod", "kubeconfig_secret": "prod-cluster"},
    "history_limit": 20,
    "helm": {"release_name": "web", "values_files": ["values-prod.yaml"],
             "values": {"replica_count": 3, "image": {"tag": "1.4"}}, "skip_crds": True},
    "jsonnet": {"entry": "main.jsonnet", "tlas": {"env": "prod"}, "ext_vars": {"region": "eu"}, "libs": ["lib"]},
    "notify": {"url": "https://hooks.example.com/services/T0/SECRET", "events": ["failed", "succeeded"]},
    "decryption": {"provider": "sops", "keys": "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"},
    "post_build": {"substitute": {"ENV": "prod"},
                   "substitute_from": [{"kind": "Secret", "name": "vars", "optional": True}]},
}  # fmt: skip


def test_a_workflow_with_every_field_set_survives_the_round_trip() -> None:
    wf = Workflow.from_config(FULL)
    config = wf.to_config()
    config["notify"] = {**config["notify"], "url": "web-notify"}  # the store's Secret holds the URL
    config["decryption"] = {**config["decryption"], "keys": "web-keys"}  # and the keys
    spec = mapping.workflow_spec(config)
    assert "id" not in spec and spec["syncPolicy"]["retry"]["maxDuration"] == "10m"
    assert spec["helm"]["values"] == {"replica_count": 3, "image": {"tag": "1.4"}}  # values keep their own keys
    assert spec["jsonnet"]["extVars"] == {"region": "eu"}
    assert spec["syncPolicy"]["ignoreDifferences"][0] == {
        "kind": "Deployment", "group": "apps", "jsonPointers": ["/spec/replicas"]
    }  # fmt: skip
    assert spec["notify"] == {"urlSecretRef": {"name": "web-notify"}, "events": ["failed", "succeeded"]}
    assert "SECRET" not in str(spec)
    assert spec["decryption"] == {"provider": "sops", "secretRef": {"name": "web-keys"}}  # Flux's shape
    assert spec["postBuild"]["substituteFrom"] == [{"kind": "Secret", "name": "vars", "optional": True}]
    urls = {"web-notify": FULL["notify"]["url"], "web-keys": FULL["decryption"]["keys"]}
    assert Workflow.from_config(mapping.workflow_config("Web_App", spec, lambda ref: urls[ref["name"]])) == wf
    # Every field differs from its default here, so every row of the table was written.
    written = set()

    def walk(d: dict[str, Any], fields: tuple[mapping.Field, ...], prefix: str) -> None:
        for f in fields:
            if f.cr in d:
                written.add(prefix + f.model)
                if f.kind == "object":
                    walk(d[f.cr], f.children, prefix + f.model + ".")
                for item in d[f.cr] if f.kind == "objects" else ():
                    walk(item, f.children, prefix + f.model + ".")

    walk(spec, mapping.WORKFLOW, "")
    # A chart from a chart repository has no target_path: its fields round-trip on their own below.
    assert written == table_paths(mapping.WORKFLOW) - {"destination.kubeconfig", "chart", "chart_version"}
    charted = Workflow.from_config({"id": "c", "repository": "charts", "chart": "web", "chart_version": "^1.2"})
    spec = mapping.workflow_spec(charted.to_config())
    assert spec["chart"] == "web" and spec["chartVersion"] == "^1.2"
    assert Workflow.from_config(mapping.workflow_config("c", spec)) == charted


@pytest.mark.parametrize(
    "config",
    [
        {"id": "w", "repository": "r"},
        {"id": "w", "repository": "r", "helm": {}},
        {"id": "w", "repository": "r", "jsonnet": {}, "name": "w"},
        {"id": "w", "repository": "r", "destination": {"kubeconfig": "/etc/k.yaml"}, "sync_policy": {"retry": {}}},
    ],
)
def test_defaults_stay_out_of_the_spec_and_come_back(config: dict[str, Any]) -> None:
    wf = Workflow.from_config(config)
    spec = mapping.workflow_spec(wf.to_config())
    assert Workflow.from_config(mapping.workflow_config("w", spec)) == wf
    assert "name" not in spec and "syncPolicy" not in spec and "historyLimit" not in spec


def test_repositories_and_credentials_round_trip() -> None:
    repo = Repository.from_config({"id": "r", "url": "https://git.example.com/x.git", "branch": "dev",
                                   "poll_interval": "5m"})  # fmt: skip
    spec = mapping.repository_spec(repo.__dict__)
    assert spec == {"url": "https://git.example.com/x.git", "branch": "dev", "pollInterval": "5m", "type": "git"}
    assert Repository.from_config(mapping.repository_config("r", spec)) == repo
    for creds in (
        {"type": "token", "token": "t0k"},
        {"type": "token", "token": "t0k", "token_as_username": True},
        {"type": "userpass", "username": "u", "password": "p"},
        {"type": "ssh", "ssh_key": "KEY", "known_hosts": "host ssh-ed25519 AAAA"},
    ):
        parsed = Credentials.from_config(creds)
        data = mapping.credentials_data(parsed.to_dict())
        assert Credentials.from_config(mapping.credentials_config(data, "Secret s")) == parsed
        untyped = {k: v for k, v in data.items() if k != "type"}  # a Secret written by hand says no type
        assert Credentials.from_config(mapping.credentials_config(untyped, "Secret s")).type == parsed.type
    with pytest.raises(ConfigError, match="unknown key 'passwd'"):
        mapping.credentials_config({"passwd": "x"}, "Secret s")


def test_model_errors_are_told_in_the_resources_words() -> None:
    spec = {"repository": "r", "syncPolicy": {"retry": {"backoff": "sometimes"}}}
    with pytest.raises(ConfigError) as e:
        Workflow.from_config(mapping.workflow_config("w", spec))
    assert mapping.explain(e.value).startswith("spec.syncPolicy.retry.backoff: 'sometimes' is not one of")
    with pytest.raises(ConfigError) as e:
        Workflow.from_config(mapping.workflow_config("w", {"repository": "r", "syncPolicy": {"preSyncHooks": [1]}}))
    assert mapping.explain(e.value).startswith("spec.syncPolicy.preSyncHooks[1]: expected a string")


def test_the_schemas_cover_the_table() -> None:
    spec = crds.workflow_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]

    def props(schema: dict[str, Any], fields: tuple[mapping.Field, ...]) -> None:
        assert set(schema["properties"]) == {f.cr for f in fields}
        for f in fields:
            sub = schema["properties"][f.cr]
            if f.kind == "object":
                props(sub, f.children)
            elif f.kind == "duration":
                assert sub["pattern"] == mapping.DURATION_PATTERN
            elif f.kind == "data":
                assert sub["x-kubernetes-preserve-unknown-fields"] is True

    props(spec, mapping.WORKFLOW)
    assert spec["properties"]["syncPolicy"]["properties"]["retry"]["properties"]["backoff"]["enum"] == [
        "exponential", "linear", "fixed"]  # fmt: skip
    repo = crds.repository_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert set(repo["properties"]) == {f.cr for f in mapping.REPOSITORY} | {"credentials"}
    assert all(c["metadata"]["annotations"][crds.REVISION_ANNOTATION] == str(crds.CRD_REVISION) for c in crds.crds())


def test_the_duration_pattern_agrees_with_slipways_parser() -> None:
    import re

    from slipway.durations import parse_duration

    for text in ("0", "30s", "5m", "1h30m", "1.5s", "250ms", ".5s", "1h2m3s"):
        parse_duration(text)
        assert re.match(mapping.DURATION_PATTERN, text), text
    for text in ("", "5", "soon", "5 m", "-1s", "1d"):
        assert not re.match(mapping.DURATION_PATTERN, text), text
        with pytest.raises(ConfigError):
            parse_duration(text)
