"""Post-build substitution (Flux's postBuild) on rendered objects: defaults, escapes, a missing variable."""

from __future__ import annotations

import pytest

from slipway.errors import ConfigError, ManifestError
from slipway.render.base import Manifest
from slipway.render.substitute import PostBuild, SubstituteFrom, substitute_all, variables


def _cm(data: dict[str, str], annotations: dict[str, str] | None = None) -> Manifest:
    md: dict[str, object] = {"name": "settings"}
    if annotations:
        md["annotations"] = annotations
    return Manifest({"apiVersion": "v1", "kind": "ConfigMap", "metadata": md, "data": data}, "k8s/cm.yaml, document 1")


def test_variables_defaults_and_escapes_are_replaced_as_flux_does() -> None:
    m = _cm({"env": "${ENV}", "region": "${REGION:=eu-west-1}", "literal": "$${ENV}", "mixed": "a-${ENV}-b",
             "script": "echo ${not a var}"})  # fmt: skip
    [out] = substitute_all([m], {"ENV": "prod"})
    assert out.obj["data"] == {"env": "prod", "region": "eu-west-1", "literal": "${ENV}", "mixed": "a-prod-b",
                               "script": "echo ${not a var}"}  # fmt: skip
    assert m.obj["data"]["env"] == "${ENV}"  # the render's own object is not changed


def test_a_value_becomes_a_number_where_yaml_reads_one() -> None:
    d = Manifest({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"replicas": "${REPLICAS:=2}"}}, "k8s/web.yaml, document 1")  # fmt: skip
    [out] = substitute_all([d], {})
    assert out.obj["spec"]["replicas"] == 2
    [out] = substitute_all([d], {"REPLICAS": "5"})
    assert out.obj["spec"]["replicas"] == 5


def test_an_unset_variable_without_a_default_names_the_object_and_the_variable() -> None:
    with pytest.raises(ManifestError) as e:
        substitute_all([_cm({"a": "${MISSING}"})], {"OTHER": "s3cr3t-value"})
    assert "k8s/cm.yaml, document 1: ConfigMap/settings" in e.value.message
    assert "'MISSING'" in e.value.message
    assert "s3cr3t-value" not in str(e.value) + (e.value.hint or "")


def test_an_object_that_opts_out_is_left_as_it_is() -> None:
    m = _cm({"a": "${MISSING}"}, {"kustomize.toolkit.fluxcd.io/substitute": "disabled"})
    [out] = substitute_all([m], {})
    assert out.obj["data"] == {"a": "${MISSING}"}


def test_sources_in_order_then_the_inline_table_wins() -> None:
    post = PostBuild.from_config({
        "substitute": {"A": "inline"},
        "substitute_from": [{"kind": "ConfigMap", "name": "one"}, {"kind": "Secret", "name": "two"},
                            {"kind": "ConfigMap", "name": "gone", "optional": True}],
    })  # fmt: skip
    data = {"one": {"A": "one", "B": "one", "C": "one"}, "two": {"B": "two", "bad-name": "x"}}
    assert variables(post, lambda s: data.get(s.name)) == {"A": "inline", "B": "two", "C": "one"}
    post.substitute_from[2].optional = False
    with pytest.raises(ManifestError, match="ConfigMap gone does not exist"):
        variables(post, lambda s: data.get(s.name))


def test_flags_and_tables_are_checked() -> None:
    from slipway.cli.renderflags import post_build_table

    table = post_build_table({"substitute": ["A=1"], "substitute_from": ["secret/db-vars", "configmap/vars?"]})
    assert PostBuild.from_config(table) == PostBuild(
        {"A": "1"}, [SubstituteFrom("Secret", "db-vars", False), SubstituteFrom("ConfigMap", "vars", True)]
    )
    for bad in ("vars", "pod/x"):
        with pytest.raises(ConfigError, match="expected configmap/NAME or secret/NAME"):
            post_build_table({"substitute_from": [bad]})
    with pytest.raises(ConfigError, match="not a valid ConfigMap name"):
        PostBuild.from_config(post_build_table({"substitute_from": ["configmap/Not_Valid"]}))
    with pytest.raises(ConfigError, match="not a variable name"):
        PostBuild.from_config({"substitute": {"1abc": "x"}})
