"""Action scripts without a cluster: the sandbox's Lua 5.1, what it refuses, how a result becomes a patch,
and where a kind's scripts are found (wildcards, precedence over the built-ins)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipway.actions.scripts import BUILTIN, ActionError, actions_dir, discover, run_lua, search_path
from slipway.actions.service import merge_patch, paths, resolve
from slipway.errors import ConfigError, NotPermitted
from slipway.kube.objects import ObjectRef


def _script(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "action.lua"
    p.write_text(text)
    return p


def test_a_result_keeps_empty_lists_and_whole_numbers(tmp_path: Path) -> None:
    obj = {"metadata": {"name": "web", "labels": {}}, "spec": {"replicas": 2, "template": {"spec": {
        "containers": [{"name": "app", "args": [], "env": [{"name": "A", "value": "1"}]}]}}}}  # fmt: skip
    out = run_lua(_script(tmp_path, "obj.spec.replicas = obj.spec.replicas + 1\nreturn obj"), "action", obj)
    assert out["spec"]["replicas"] == 3 and isinstance(out["spec"]["replicas"], int)
    assert out["spec"]["template"] == obj["spec"]["template"]  # args: [] stays a list, not {}
    assert merge_patch(obj, out) == {"spec": {"replicas": 3}}


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('return require("io").open("/etc/passwd")', "module 'io' is not available"),
        ('return os.execute("true")', "a nil value"),
        ('return loadstring("return 1")()', "a nil value"),
        ("return dofile('/etc/passwd')", "a nil value"),
        ("return (", "does not compile"),
        ('error("no way")', "no way"),
        ("local x = 1", "returned nothing"),
    ],
)
def test_the_sandbox_refuses_and_names_the_script(tmp_path: Path, text: str, said: str) -> None:
    with pytest.raises(ActionError, match=said) as e:
        run_lua(_script(tmp_path, text), "action", {"metadata": {"name": "x"}})
    assert "action.lua" in str(e.value) and "nothing was changed" in str(e.value)


def test_merge_patch_and_the_paths_history_keeps() -> None:
    old = {"spec": {"paused": True, "replicas": 1, "template": {"metadata": {"labels": {"a": "b"}}}}}
    new = {"spec": {"replicas": 1, "template": {"metadata": {"labels": {"a": "b"}, "annotations": {"x": "1"}}}}}
    patch = merge_patch(old, new)
    assert patch == {"spec": {"paused": None, "template": {"metadata": {"annotations": {"x": "1"}}}}}
    assert paths(patch) == ["spec.paused", "spec.template.metadata.annotations.x"]
    assert merge_patch(old, old) is None


def test_where_scripts_are_found(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    for where in ("_.example.io/_/actions", "apps/Deployment/actions", "core/ConfigMap/actions"):
        (mine / where).mkdir(parents=True)
        (mine / where / "discovery.lua").write_text("return {}")
    dirs = search_path((mine,))
    assert dirs[-1] == BUILTIN
    assert actions_dir("db.example.io", "Cluster", dirs) == mine / "_.example.io/_/actions"
    assert actions_dir("example.io.evil", "Cluster", dirs) is None
    assert actions_dir("apps", "Deployment", dirs) == mine / "apps/Deployment/actions"  # before the built-in
    assert actions_dir("apps", "StatefulSet", dirs) == BUILTIN / "apps/StatefulSet/actions"
    assert actions_dir("", "ConfigMap", dirs) == mine / "core/ConfigMap/actions"
    assert actions_dir("", "Secret", dirs) is None
    offered = discover("apps", "StatefulSet", {"spec": {"replicas": 4}}, dirs)
    assert [(a.name, [p.default for p in a.params]) for a in offered] == [("restart", []), ("scale", ["4"])]


def test_resolving_an_object_of_the_inventory() -> None:
    inv = {ObjectRef("apps", "Deployment", "a", "web"): "apps/v1", ObjectRef("apps", "Deployment", "b", "web"): "apps/v1",
           ObjectRef("", "ConfigMap", "a", "web"): "v1"}  # fmt: skip
    assert resolve("wf", inv, "configmap/web") == ObjectRef("", "ConfigMap", "a", "web")
    assert resolve("wf", inv, "deployment.apps/web", "b") == ObjectRef("apps", "Deployment", "b", "web")
    with pytest.raises(ConfigError, match="more than one"):
        resolve("wf", inv, "Deployment/web")
    with pytest.raises(NotPermitted, match="does not own Deployment/api"):
        resolve("wf", inv, "Deployment/api")
    with pytest.raises(NotPermitted):
        resolve("wf", inv, "deployment.batch/web")
    with pytest.raises(ConfigError, match="KIND/NAME"):
        resolve("wf", inv, "web")
