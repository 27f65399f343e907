"""The two axes' pure parts: the words, the aggregate health, and the Workflow's conditions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from slipway import axes
from slipway.store.kubernetes.base import conditions


def obj(name: str, sync: str, health: str, message: str = "") -> dict[str, Any]:
    return {"group": "", "kind": "ConfigMap", "namespace": "ns", "name": name, "sync_status": sync,
            "health": {"status": health, "message": message}}  # fmt: skip


def test_the_workflow_is_as_healthy_as_its_worst_object_and_extras_do_not_count() -> None:
    assert axes.aggregate([]) == {"status": "Healthy", "message": ""}
    assert axes.aggregate([obj("a", "Synced", "Healthy"), obj("b", "Extra", "Degraded")])["status"] == "Healthy"
    worst = axes.aggregate([obj("a", "Synced", "Progressing", "rolling"), obj("b", "Missing", "Missing", "gone")])
    assert worst == {"status": "Missing", "message": "ConfigMap/ns/b: gone"}
    assert axes.aggregate([obj("a", "Synced", "Degraded"), obj("b", "Synced", "Whatever")])["status"] == "Unknown"


def test_the_words_every_text_front_prints() -> None:
    assert axes.sync_words(None) == "Unknown"
    assert axes.sync_words({"status": "Synced"}) == "Synced"
    out = {"status": "OutOfSync", "created": 2, "changed": 0, "missing": 1, "extra": 3}
    assert axes.sync_words(out) == "OutOfSync (2 created, 1 missing, 3 extra)"
    assert axes.short_age(None) == "never" and axes.short_age(90) == "2m" and axes.short_age(7200) == "2h"
    minute_later = datetime(2026, 1, 1, 0, 1, tzinfo=UTC).timestamp()
    assert axes.age("2026-01-01T00:00:00Z", at=minute_later) == 60.0 and axes.age("not a time") is None


def test_the_workflow_conditions_follow_the_axes() -> None:
    wf = {"metadata": {"generation": 1}}
    status = {"status": "synced", "message": "Sync completed",
              "assessment": {"sync_status": {"status": "OutOfSync", "missing": 1},
                             "health": {"status": "Missing", "message": "ConfigMap/ns/b: does not exist"}}}  # fmt: skip
    got = {c["type"]: c for c in conditions(status, wf) or []}
    assert (got["Synced"]["status"], got["Synced"]["reason"]) == ("False", "OutOfSync")
    assert (got["Healthy"]["status"], got["Healthy"]["reason"]) == ("False", "Missing")
    status["assessment"] = {"sync_status": {"status": "Synced"}, "health": {"status": "Progressing", "message": "x"}}
    got = {c["type"]: c for c in conditions(status, wf) or []}
    assert (got["Synced"]["status"], got["Healthy"]["status"], got["Healthy"]["reason"]) == (
        "True",
        "Unknown",
        "Progressing",
    )
