"""Pure parts of the plan stage: normalization, the subset check, masking, impact, the diff text."""

from pathlib import Path

from slipway.plan import impact, mask, textdiff
from slipway.plan.normalize import covers, normalize, secret_covers


def test_normalize_drops_server_bookkeeping() -> None:
    live = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "uid": "u", "resourceVersion": "1", "managedFields": [], "annotations": {},
                     "creationTimestamp": "t", "generation": 3},
        "data": {"a": "1"},
        "status": {"x": 1},
    }  # fmt: skip
    assert normalize(live) == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    assert "uid" in live["metadata"]  # the input is untouched


def test_covers_is_a_subset_check_with_quantities() -> None:
    live = {"spec": {"replicas": 2, "template": {"resources": {"cpu": "500m", "memory": "1Gi"}}, "extra": 1}}
    assert covers({"spec": {"replicas": 2, "template": {"resources": {"cpu": "0.5"}}}}, live)
    assert covers({"spec": {"template": {"resources": {"memory": "1024Mi"}}}}, live)
    assert not covers({"spec": {"replicas": 3}}, live)
    assert not covers({"spec": {"missing": "x"}}, live)
    assert not covers({"spec": {"replicas": True}}, {"spec": {"replicas": 1}})
    assert not covers({"l": [1, 2]}, {"l": [1, 2, 3]})


def test_secret_covers_understands_string_data() -> None:
    live = {"kind": "Secret", "data": {"password": "aHVudGVyMg=="}}
    assert secret_covers({"kind": "Secret", "stringData": {"password": "hunter2"}}, live)
    assert not secret_covers({"kind": "Secret", "stringData": {"password": "hunter3"}}, live)


def test_mask_distinguishes_changed_from_unchanged_and_hides_values() -> None:
    cur = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "annotations": {
        "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"a":"c2VjcmV0MQ=="}}'}},
           "data": {"a": "c2VjcmV0MQ==", "b": "c2FtZQ==", "gone": "eA=="}}  # fmt: skip
    des = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
           "stringData": {"a": "secret2", "new": "v"}, "data": {"b": "c2FtZQ=="}}  # fmt: skip
    c, d = mask.mask_pair(cur, des)
    assert c is not None and d is not None
    assert c["data"] == {"a": mask.MASK_OLD, "b": mask.MASK, "gone": mask.MASK_OLD}
    assert d["stringData"] == {"a": mask.MASK_NEW, "new": mask.MASK_NEW}
    assert d["data"] == {"b": mask.MASK}
    text = repr((c, d))
    for secret in ("c2VjcmV0MQ==", "secret2", "c2FtZQ==", "secret1"):
        assert secret not in text
    assert mask.mask_pair({"kind": "ConfigMap", "data": {"a": "1"}}, None)[0] == {
        "kind": "ConfigMap",
        "data": {"a": "1"},
    }


def test_scrub_removes_secret_values_from_messages() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "data": {"k": "c3VwZXJzZWNyZXQ="}}
    assert "supersecret" not in mask.scrub("bad value supersecret and c3VwZXJzZWNyZXQ=", [secret])


def test_impact_rules() -> None:
    def level(t: str, kind: str, cur: dict | None = None, des: dict | None = None, recreate: bool = False) -> str:
        return impact.assess(impact.Subject(t, kind, cur, des, recreate))[0]

    assert level("delete", "Namespace") == "critical"
    assert level("delete", "PersistentVolumeClaim") == "critical"
    assert level("delete", "Deployment") == "high"
    assert level("delete", "Service") == "high"
    assert level("update", "Deployment", {"spec": {"replicas": 2}}, {"spec": {"replicas": 0}}) == "high"
    assert level("update", "ClusterRole", {"rules": []}, {"rules": [{"verbs": ["*"]}]}) == "high"
    assert level("update", "Service", {"spec": {"a": 1}}, {"spec": {"a": 1}}, recreate=True) == "high"
    assert level("create", "Deployment") == "medium"
    assert level("update", "Ingress", {"spec": {"a": 1}}, {"spec": {"a": 2}}) == "medium"
    assert (
        level(
            "update",
            "Deployment",
            {"metadata": {"labels": {}}, "spec": {}},
            {"metadata": {"labels": {"a": "b"}}, "spec": {}},
        )
        == "low"
    )
    assert level("update", "ConfigMap", {"data": {"a": "1"}}, {"data": {"a": "2"}}) == "low"
    assert level("delete", "ConfigMap") == "medium"


def test_impact_table_in_docs_matches_the_rules() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "impact.md").read_text()
    assert impact.table_markdown() in doc


def test_diff_text_in_the_seed_style() -> None:
    create = textdiff.render_diff("create", "Deployment/web-app", None, {"spec": {"replicas": 3}})
    assert create.splitlines()[0] == "+ Creating Deployment/web-app with 3 replicas"
    update = textdiff.render_diff(
        "update", "Service/web-svc", {"spec": {"ports": [{"port": 80}]}}, {"spec": {"ports": [{"port": 8080}]}}
    )
    lines = update.splitlines()
    assert lines[0] == "~ Updating Service/web-svc:"
    assert lines[1] == "  spec.ports[0].port: 80 -> 8080"
    assert "-  - port: 80" in update and "+  - port: 8080" in update
    assert textdiff.render_diff("delete", "ConfigMap/old", {"data": {}}, None).startswith("- Deleting ConfigMap/old")


def test_a_whole_object_diff_is_what_difflib_writes() -> None:
    import difflib

    from slipway.plan.textdiff import _whole

    for before, after in [([], ["a"]), ([], ["a", "b", "c"]), (["a"], []), (["a", "b"], []), ([], [])]:
        expected = "\n".join(difflib.unified_diff(before, after, fromfile="F", tofile="T", lineterm="", n=3))
        assert _whole(before, after, "F", "T") == expected
