"""The workflow's helm and jsonnet tables, chart repositories in the store, and the CLI flags for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipway.cli.renderflags import helm_table, jsonnet_table
from slipway.engine import Engine
from slipway.errors import ConfigError
from slipway.model import Repository, Workflow
from slipway.render.options import render_options
from slipway.source import GitSource
from slipway.store import Store


def test_helm_and_jsonnet_tables_survive_the_state_store(tmp_path: Path) -> None:
    store = Store(home=tmp_path)
    store.put_repository(Repository.from_config({"id": "r", "url": "https://git.example.org/k8s.git"}))
    wf = Workflow.from_config(
        {
            "id": "Web_App",
            "repository": "r",
            "helm": {"values_files": ["values-prod.yaml"], "values": {"a": {"b": [1, "x"]}}, "skip_crds": True},
            "jsonnet": {"entry": "main.jsonnet", "tlas": {"n": 3}, "libs": {1: "vendor"}},  # a Lua array
        }
    )
    store.put_workflow(wf)
    back = store.get_workflow("Web_App")
    assert back == wf
    opts = render_options(back.id, back.helm, back.jsonnet)
    assert opts["helm"]["release_name"] == "web-app"  # the workflow id, made a valid release name
    assert opts["helm"]["values"] == {"a": {"b": [1, "x"]}} and opts["jsonnet"]["libs"] == ["vendor"]
    assert render_options("w", None, None)["jsonnet"] is None


@pytest.mark.parametrize(
    "config,message",
    [
        ({"helm": {"valuez": {}}}, r"helm.valuez: unknown key \(did you mean 'values'\?\)"),
        ({"helm": {"values_files": "a.yaml"}}, r"helm.values_files: expected a list"),
        ({"helm": {"values_files": ["/etc/passwd"]}}, r"helm.values_files\[1\]: '/etc/passwd' must be a relative path"),
        ({"helm": {"release_name": "Web_App"}}, r"helm.release_name: 'Web_App' is not a valid Helm release name"),
        ({"helm": {"values": {1: "x"}}}, r"helm.values: has a key of type int"),
        ({"helm": {"skip_crds": "yes"}}, r"helm.skip_crds: expected a boolean"),
        ({"helm": []}, r"helm: expected a table"),
        ({"jsonnet": {"entry": "../x.jsonnet"}}, r"jsonnet.entry: '../x.jsonnet' must be a .jsonnet file"),
        ({"jsonnet": {"tla": {}}}, r"jsonnet.tla: unknown key \(did you mean 'tlas'\?\)"),
    ],
)
def test_bad_tables_name_the_key(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Workflow.from_config({"repository": "r", **config})


@pytest.mark.parametrize(
    "config,message",
    [
        ({"url": "git@host:charts.git", "type": "helm"}, r"url: .* is not an http\(s\) or oci:// URL"),
        ({"url": "https://charts.example.org", "type": "helm", "branch": "main"}, r"branch: a Helm chart repository"),
        ({"url": "https://charts.example.org", "type": "oci"}, r"type: 'oci' is not one of git, helm"),
        (
            {"url": "https://charts.example.org", "type": "helm", "credentials": {"type": "ssh", "ssh_key": "k"}},
            r"credentials.type: a Helm chart repository takes userpass or token credentials",
        ),
    ],
)
def test_chart_repository_errors(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Repository.from_config(config)


def test_chart_credentials_come_from_the_longest_registered_helm_prefix(tmp_path: Path) -> None:
    eng = Engine(Store(home=tmp_path), GitSource(cache_dir=tmp_path / "git", home=tmp_path))
    login = {"type": "userpass", "username": "u"}
    eng.register_repository({"id": "git", "url": "https://charts.example.org/git-lookalike",
                             "credentials": {**login, "password": "git-pw"}})  # fmt: skip
    eng.register_repository({"id": "all", "type": "helm", "url": "https://charts.example.org/",
                             "credentials": {**login, "password": "all-pw"}})  # fmt: skip
    eng.register_repository({"id": "team", "type": "helm", "url": "https://charts.example.org/team",
                             "credentials": {"type": "token", "token": "team-token"}})  # fmt: skip
    eng.register_repository({"id": "open", "type": "helm", "url": "https://charts.example.org/open"})
    assert eng.chart_credentials("https://charts.example.org/team/stable") == ("x-access-token", "team-token")
    assert eng.chart_credentials("https://charts.example.org/teams") == ("u", "all-pw")  # a path boundary
    assert eng.chart_credentials("https://charts.example.org/git-lookalike") == ("u", "all-pw")  # only type helm
    assert eng.chart_credentials("https://charts.example.org/open/x") is None
    assert eng.chart_credentials("https://elsewhere.example.org/team") is None
    assert eng.repository("team").public() == {
        "id": "team", "type": "helm", "url": "https://charts.example.org/team", "branch": "main",
        "poll_interval": "30s", "credentials": {"type": "token", "username": "x-access-token"},
    }  # fmt: skip
    with pytest.raises(ConfigError, match=r"chart: required for a workflow of repository team, a Helm chart"):
        eng.create_workflow({"id": "w", "repository": "team"})
    eng.create_workflow({"id": "w", "repository": "git"})
    with pytest.raises(ConfigError, match=r"type: repository git is read by workflow\(s\) w"):
        eng.register_repository({"id": "git", "type": "helm", "url": "https://charts.example.org/x"})
    eng.store.close()


def test_cli_flags_make_the_tables() -> None:
    opts = {
        "helm_release_name": "web",
        "helm_values_file": ("values.yaml", "values-prod.yaml"),
        "helm_values_json": '{"image": {"tag": "1.0"}, "replicas": 1}',
        "helm_set": ("image.tag=1.1", "replicas=3", "debug=true", "name=a,b", "empty=", "zip=007", "off=null"),
        "helm_skip_crds": True,
    }
    assert helm_table(opts) == {
        "release_name": "web",
        "values_files": ["values.yaml", "values-prod.yaml"],
        "skip_crds": True,
        "values": {
            "image": {"tag": "1.1"},
            "replicas": 3,
            "debug": True,
            "name": "a,b",
            "empty": "",
            "zip": "007",
            "off": None,
        },
    }
    assert helm_table({}) is None and jsonnet_table({}) is None
    assert jsonnet_table(
        {"jsonnet_entry": "main.jsonnet", "jsonnet_tla": ("name=web",), "jsonnet_tla_json": ("replicas=3",),
         "jsonnet_ext_var": ("env=prod",), "jsonnet_lib": ("vendor",)}
    ) == {"entry": "main.jsonnet", "tlas": {"name": "web", "replicas": 3}, "ext_vars": {"env": "prod"},
          "libs": ["vendor"]}  # fmt: skip
    with pytest.raises(ConfigError, match=r"--helm-set: expected NAME=VALUE, got 'novalue'"):
        helm_table({"helm_set": ("novalue",)})
    with pytest.raises(ConfigError, match=r"--helm-set a.b: a is already set to a value"):
        helm_table({"helm_set": ("a=1", "a.b=2")})
    with pytest.raises(ConfigError, match=r"--helm-values-json: expected a JSON object"):
        helm_table({"helm_values_json": "[1]"})
