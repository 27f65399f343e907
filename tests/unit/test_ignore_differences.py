"""sync_policy.ignore_differences: validated like every policy, taken from Python and Lua alike, and
what it strips (the cluster tests show it with a second field manager and self-heal running)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from slipway import gitops
from slipway.engine import Engine
from slipway.errors import ConfigError
from slipway.lua import run_script
from slipway.model import SyncPolicy
from slipway.plan.ignore import Ignored, parse_pointer, strip_owned
from slipway.store import Store

RULE = {"group": "apps", "kind": "Deployment", "json_pointers": ["/spec/replicas"]}


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({**RULE, "jsonPointers": ["/x"]}, "sync_policy.ignore_differences[1].jsonPointers: unknown key"),
        ({"kind": "Deployment", "jq_path_expressions": [".spec"]}, "jq expressions are not supported"),
        ({"group": "apps", "json_pointers": ["/spec"]}, "ignore_differences[1].kind: required"),
        ({"kind": "Deployment"}, "give json_pointers or managed_fields_managers"),
        ({"kind": "Deployment", "json_pointers": ["spec/replicas"]}, "is not a JSON pointer"),
        ({"kind": "Deployment", "json_pointers": ["/spec//x"]}, "is not a JSON pointer"),
        ({"kind": "Deployment", "json_pointers": ["/a~2b"]}, "is not a JSON pointer"),
        ({"kind": "Deployment", "json_pointers": ["/metadata/name"]}, "the object's identity"),
        ({"kind": "Deployment", "managed_fields_managers": ["slipway"]}, "is not another field manager"),
        ({"kind": "Deployment", "json_pointers": "/spec/replicas"}, "json_pointers: expected"),
    ],
)
def test_bad_rules_are_errors_naming_the_key(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        SyncPolicy.from_config({"ignore_differences": [rule]})
    assert message in str(e.value)


def test_a_good_rule_round_trips() -> None:
    policy = SyncPolicy.from_config({"ignore_differences": [RULE, {"kind": "*", "managed_fields_managers": ["hpa"]}]})
    first, second = policy.ignore_differences
    assert first.matches("apps", "Deployment", "ns", "web") and not first.matches("", "Deployment", "ns", "web")
    assert second.matches("", "ConfigMap", "any", "x")
    from dataclasses import asdict

    again = SyncPolicy.from_config(asdict(policy))  # as a store keeps it: None for name and namespace
    assert again == policy


def test_pointers_and_managed_fields_strip_what_they_name() -> None:
    assert parse_pointer("/metadata/annotations/a~1b~0c") == ["metadata", "annotations", "a/b~c"]
    obj = {"spec": {"replicas": 3, "template": {"spec": {"containers": [
        {"name": "app", "image": "a:1", "resources": {"limits": {"cpu": "1"}}},
        {"name": "side", "image": "s:1"},
    ]}}}}  # fmt: skip
    tree = {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
        'k:{"name":"app"}': {".": {}, "f:name": {}, "f:resources": {"f:limits": {"f:cpu": {}}}},
    }}}}}  # fmt: skip
    strip_owned(obj, tree)
    containers = obj["spec"]["template"]["spec"]["containers"]
    assert "replicas" not in obj["spec"]
    assert containers[0] == {"name": "app", "image": "a:1", "resources": {"limits": {}}}  # the key stays
    assert containers[1] == {"name": "side", "image": "s:1"}


def test_what_slipway_alone_owns_is_sent_with_its_live_value() -> None:
    rules = SyncPolicy.from_config({"ignore_differences": [RULE]}).ignore_differences
    managed = [{"manager": "slipway", "operation": "Apply", "apiVersion": "apps/v1",
                "fieldsV1": {"f:spec": {"f:replicas": {}}}}]  # fmt: skip
    live = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w", "managedFields": managed},
            "spec": {"replicas": 4}}  # fmt: skip
    desired = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"}, "spec": {"replicas": 2}}
    assert Ignored(rules, live).desired(desired, live)["spec"] == {"replicas": 4}
    taken = {**live, "metadata": {"name": "w", "managedFields": [{**managed[0], "manager": "hpa"}]}}
    assert Ignored(rules, taken).desired(desired, taken)["spec"] == {}
    assert Ignored(rules, taken).view(live)["spec"] == {}


def test_python_and_lua_take_the_rules(tmp_path: Path) -> None:
    engine = Engine(Store(home=tmp_path / "home"))
    gitops.use_engine(engine)
    try:
        repo = gitops.register_repository(url="https://git.example.com/a.git", id="a")
        gitops.create_workflow(id="py", repository=repo, sync_policy={"ignore_differences": [RULE]})
        script = tmp_path / "wf.lua"
        script.write_text(
            'local gitops = require("gitops")\n'
            'gitops.create_workflow{id = "lua", repository = "a", sync_policy = {ignore_differences = {\n'
            '  {group = "apps", kind = "Deployment", json_pointers = {"/spec/replicas"}}}}}\n'
            'local id, err = gitops.create_workflow({id = "bad", repository = "a",\n'
            '  sync_policy = {ignore_differences = {{kind = "Deployment", jq_path_expressions = {".x"}}}}})\n'
            "print(tostring(err))\n"
        )
        out = io.StringIO()
        assert run_script([script], {}, out=out, err=io.StringIO(), stdin=io.StringIO("")) == 0
        assert "jq expressions are not supported" in out.getvalue()
        for wid in ("py", "lua"):
            (rule,) = engine.workflow(wid).sync_policy.ignore_differences
            assert rule.kind == "Deployment" and rule.json_pointers == ["/spec/replicas"]
    finally:
        gitops.use_engine(None)
        engine.store.close()
