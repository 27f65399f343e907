"""The failure prediction of the ``ai`` module, over a real state store (SQLite in a tmp home)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from slipway import insight
from slipway.errors import ConfigError
from slipway.model import Repository, Workflow
from slipway.results import SyncResult
from slipway.store import Store


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    home = tmp_path / "home"
    monkeypatch.setenv("SLIPWAY_HOME", str(home))
    s = Store()
    yield s
    s.close()


def _record(store: Store, task: str, outcomes: str, *, command: str = "deploy", message: str = "boom") -> None:
    """Record runs oldest first: ``outcomes`` is a string of 'o' (success) and 'x' (failure)."""
    for c in outcomes:
        ok = c == "o"
        store.record_execution(task, command, ok, 10.0, "" if ok else message, {})


def _sync(store: Store, workflow_id: str, status: str, message: str, n: int) -> None:
    try:
        store.get_repository("repo")
    except Exception:
        store.put_repository(Repository("repo", "https://git.example.com/k8s.git"))
    try:
        store.get_workflow(workflow_id)
    except Exception:
        store.put_workflow(Workflow(workflow_id, workflow_id, "repo"))
    result = SyncResult(f"sync-{workflow_id}-{n}", workflow_id, "running", f"2024-01-15T10:{n:02d}:00Z", None, "")
    store.start_sync(result)
    result.status = status
    result.message = message
    store.finish_sync(result, workflow_status="synced" if status == "succeeded" else "failed", status_message=message)


def test_no_history_gives_the_prior_and_says_so(store: Store) -> None:
    p = insight.predict_from_store(store, "fresh", "kubectl apply")
    assert p.failure_probability == pytest.approx(insight.PRIOR_MEAN)
    assert p.executions == 0 and p.syncs == 0
    assert len(p.recommendations) == 1
    assert p.recommendations[0].startswith("no history yet for task 'fresh'")


def test_more_failures_give_a_higher_probability(store: Store) -> None:
    _record(store, "mostly_failing", "oxxx")
    _record(store, "mostly_fine", "ooox")
    _record(store, "always_fine", "oooo")
    bad = insight.predict_from_store(store, "mostly_failing", "deploy").failure_probability
    meh = insight.predict_from_store(store, "mostly_fine", "deploy").failure_probability
    good = insight.predict_from_store(store, "always_fine", "deploy").failure_probability
    assert 0.0 <= good < meh < bad <= 1.0
    assert good < insight.PRIOR_MEAN < bad


def test_recent_failures_count_more_than_old_ones(store: Store) -> None:
    _record(store, "got_worse", "o" * 5 + "x" * 5)
    _record(store, "got_better", "x" * 5 + "o" * 5)
    worse = insight.predict_from_store(store, "got_worse", "deploy")
    better = insight.predict_from_store(store, "got_better", "deploy")
    assert worse.failure_probability > better.failure_probability
    assert any(r.startswith("failures are rising: 5 of the last 5") for r in worse.recommendations)
    assert any(r.startswith("failures are falling: 0 of the last 5") for r in better.recommendations)


def test_runs_of_the_same_command_weigh_more(store: Store) -> None:
    _record(store, "deploy", "xxxx", command="helm upgrade")
    _record(store, "deploy", "oooo", command="kubectl apply")
    helm = insight.predict_from_store(store, "deploy", "helm upgrade")
    kubectl = insight.predict_from_store(store, "deploy", "kubectl apply")
    assert helm.failure_probability > kubectl.failure_probability
    assert helm.command_failure_rate == 1.0 and kubectl.command_failure_rate == 0.0
    other = insight.predict_from_store(store, "deploy", "make deploy")
    assert other.command_failure_rate is None
    assert any("no recorded run of 'deploy' used this command" in r for r in other.recommendations)


def test_recommendations_quote_real_failure_messages_and_streaks(store: Store) -> None:
    _record(store, "web", "oo")
    _record(store, "web", "xx", message="Deployment/web: ImagePullBackOff on registry.example.com/web:1.2")
    _record(store, "web", "x", message="timed out after 30s (at deploy.lua:12)")
    p = insight.predict_from_store(store, "web", "deploy")
    text = "\n".join(p.recommendations)
    assert "timed out after 30s (at deploy.lua:12)" in text
    assert "ImagePullBackOff on registry.example.com/web:1.2" in text
    assert "2x in the last 5 runs" in text
    assert "the last 3 runs of 'web' failed in a row" in text
    assert p.failure_probability >= 0.5
    assert any(r.startswith("high risk") for r in p.recommendations)


def test_a_slow_last_run_is_pointed_out(store: Store) -> None:
    for d in (10.0, 11.0, 9.0, 10.0):
        store.record_execution("slow", "deploy", True, d, "", {})
    store.record_execution("slow", "deploy", True, 100.0, "", {})
    p = insight.predict_from_store(store, "slow", "deploy")
    assert any(r.startswith("the last run took 1m40.0s, 10.0x the median of 10.0s") for r in p.recommendations)


def test_sync_history_feeds_the_estimate_and_ties_to_a_named_workflow(store: Store) -> None:
    for n in range(4):
        _sync(store, "payments", "failed", "apply Deployment/pay: admission webhook denied the request", n)
        _sync(store, "frontend", "succeeded", "Sync completed successfully", 10 + n)
    everything = insight.predict_from_store(store, "never_ran", "kubectl apply")
    assert everything.syncs == 8
    assert everything.workflows == ["frontend", "payments"]
    tied_bad = insight.predict_from_store(store, "never_ran", "kubectl apply", ["payments"])
    tied_good = insight.predict_from_store(store, "never_ran", "kubectl apply", ["frontend"])
    assert tied_bad.workflows == ["payments"] and tied_good.workflows == ["frontend"]
    assert tied_bad.failure_probability > everything.failure_probability > tied_good.failure_probability
    text = "\n".join(tied_bad.recommendations)
    assert "4 of the last 4 syncs of payments failed" in text
    assert "admission webhook denied the request" in text
    assert "no recorded runs of task 'never_ran' yet" in text
    # A mention must be a whole id: "payments-v2" is not "payments".
    assert insight.predict_from_store(store, "never_ran", None, ["payments-v2"]).workflows == ["frontend", "payments"]


def test_the_same_history_gives_the_same_answer(store: Store) -> None:
    _record(store, "t", "oxoxx")
    a = insight.predict_from_store(store, "t", "deploy")
    b = insight.predict_from_store(store, "t", "deploy")
    assert a.failure_probability == b.failure_probability


def test_all_successes_say_so(store: Store) -> None:
    _record(store, "calm", "ooo")
    p = insight.predict_from_store(store, "calm", "deploy")
    assert p.recommendations == ["no failures in the last 3 recorded run(s) of 'calm' (median duration 10.0s)"]


def test_record_validates_and_keeps_details(store: Store) -> None:
    insight.record(
        store,
        {
            "task_name": "ai_gitops_deploy",
            "command": "kubectl apply -f manifests/",
            "success": False,
            "execution_time": "1m30s",
            "message": "sync failed",
            "ai_prediction_used": True,
            "predicted_failure_probability": 0.25,
        },
    )
    (row,) = store.executions("ai_gitops_deploy")
    assert row["duration"] == 90.0 and row["success"] == 0 and row["message"] == "sync failed"
    assert json.loads(row["details"]) == {"ai_prediction_used": True, "predicted_failure_probability": 0.25}
    with pytest.raises(ConfigError, match="task_name: required"):
        insight.record(store, {"success": True})
    with pytest.raises(ConfigError, match="success: required"):
        insight.record(store, {"task_name": "x"})
    with pytest.raises(ConfigError, match="execution_time"):
        insight.record(store, {"task_name": "x", "success": True, "execution_time": "soon"})


def test_parse_execution_time() -> None:
    assert insight.parse_execution_time("30s") == 30.0
    assert insight.parse_execution_time(2) == 2.0
    assert insight.parse_execution_time(None) is None
    with pytest.raises(ConfigError):
        insight.parse_execution_time(True)
    with pytest.raises(ConfigError):
        insight.parse_execution_time(-1)
