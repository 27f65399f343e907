"""Failure prediction for the Lua ``ai`` module, from what slipway has recorded.

The estimate is a smoothed, recency-weighted failure rate. Evidence is the task's recorded
executions (newest first; a run of the same command counts double) and the recent syncs of the
workflows involved (each counts half), every item weighted by ``0.5 ** (rank / 10)`` so the last
ten runs matter most; a Beta prior worth two runs at 20% keeps "no history" at 20% and one
failure from meaning certainty. Recommendations quote the data behind the number: the latest
failure messages, failure streaks, the trend, slow runs against the median, failing syncs.
Nothing here is random or constant: the same history gives the same answer. ``docs/ai.md``
describes the method for users.
"""

from __future__ import annotations

import re
import sqlite3
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .durations import format_duration, parse_duration
from .errors import ConfigError, SlipwayError

if TYPE_CHECKING:
    from .store import StateStore as Store

PRIOR_MEAN = 0.2  # what we assume about a task we have never seen run
PRIOR_WEIGHT = 2.0  # ... worth this many runs of evidence
HALF_LIFE = 10.0  # a run this many runs older counts half as much
SAME_COMMAND_WEIGHT = 2.0  # a run of the very command asked about counts this much
SYNC_WEIGHT = 0.5  # a sync of the workflow counts this much
MAX_EXECUTIONS = 200
MAX_SYNCS = 50
MAX_MESSAGE = 200


@dataclass(frozen=True)
class Execution:
    success: bool
    duration: float | None
    message: str = ""
    command: str = ""
    at: float = 0.0

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Execution:
        duration = row.get("duration")
        return cls(
            success=bool(row.get("success")),
            duration=float(duration) if duration is not None else None,
            message=str(row.get("message") or ""),
            command=str(row.get("command") or ""),
            at=float(row.get("at") or 0.0),
        )


@dataclass(frozen=True)
class SyncOutcome:
    workflow_id: str
    succeeded: bool
    message: str = ""
    start_time: str = ""


@dataclass
class Prediction:
    failure_probability: float
    recommendations: list[str]
    executions: int = 0
    syncs: int = 0
    task_failure_rate: float | None = None
    command_failure_rate: float | None = None
    sync_failure_rate: float | None = None
    workflows: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "failure_probability": self.failure_probability,
            "recommendations": list(self.recommendations),
            "executions": self.executions,
            "syncs": self.syncs,
            "task_failure_rate": self.task_failure_rate,
            "command_failure_rate": self.command_failure_rate,
            "sync_failure_rate": self.sync_failure_rate,
            "workflows": list(self.workflows),
        }


def weight(rank: int) -> float:
    """How much the ``rank``-th newest item counts (the newest has rank 0)."""
    return float(0.5 ** (rank / HALF_LIFE))


def _weighted_rate(outcomes: Sequence[bool]) -> float | None:
    """The recency-weighted share of failures (``False``) among outcomes, newest first."""
    if not outcomes:
        return None
    total = sum(weight(i) for i in range(len(outcomes)))
    return sum(weight(i) for i, ok in enumerate(outcomes) if not ok) / total


def predict(
    task_name: str,
    command: str | None,
    executions: Sequence[Execution],
    syncs: Sequence[SyncOutcome] = (),
    *,
    now: float | None = None,
) -> Prediction:
    """The failure probability of running ``task_name`` (``command``) now, and why.

    ``executions`` and ``syncs`` are newest first.
    """
    now = time.time() if now is None else now
    failed_num = PRIOR_MEAN * PRIOR_WEIGHT
    total = PRIOR_WEIGHT
    for rank, ex in enumerate(executions):
        w = weight(rank) * (SAME_COMMAND_WEIGHT if command and ex.command == command else 1.0)
        total += w
        failed_num += 0.0 if ex.success else w
    for rank, sync in enumerate(syncs):
        w = weight(rank) * SYNC_WEIGHT
        total += w
        failed_num += 0.0 if sync.succeeded else w
    probability = min(1.0, max(0.0, failed_num / total))

    same = [ex.success for ex in executions if command and ex.command == command]
    prediction = Prediction(
        failure_probability=round(probability, 4),
        recommendations=[],
        executions=len(executions),
        syncs=len(syncs),
        task_failure_rate=_round(_weighted_rate([ex.success for ex in executions])),
        command_failure_rate=_round(_weighted_rate(same)),
        sync_failure_rate=_round(_weighted_rate([s.succeeded for s in syncs])),
        workflows=sorted({s.workflow_id for s in syncs}),
    )
    prediction.recommendations = _recommend(task_name, command, executions, syncs, prediction, now)
    return prediction


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _pct(p: float) -> str:
    return f"{p * 100:.0f}%"


def _short(message: str) -> str:
    message = " ".join(message.split())
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 5:
        return "just now"
    if seconds < 60:
        return f"{seconds:.0f}s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m ago"
    if seconds < 86400:
        return f"{seconds / 3600:.0f}h ago"
    return f"{seconds / 86400:.0f}d ago"


def _recommend(
    task_name: str,
    command: str | None,
    executions: Sequence[Execution],
    syncs: Sequence[SyncOutcome],
    p: Prediction,
    now: float,
) -> list[str]:
    out: list[str] = []
    if not executions and not syncs:
        return [
            f"no history yet for task '{task_name}': {_pct(p.failure_probability)} is the starting estimate; "
            "every run of the task is recorded, so the next predictions will come from real outcomes"
        ]
    if not executions:
        out.append(
            f"no recorded runs of task '{task_name}' yet: the estimate comes from the {len(syncs)} latest "
            f"sync(s) of {', '.join(p.workflows)}"
        )
    elif command and p.command_failure_rate is None:
        out.append(
            f"no recorded run of '{task_name}' used this command yet; the estimate uses its other "
            f"{len(executions)} run(s)"
        )

    # A streak of failures from the newest run on is the strongest signal there is.
    streak = 0
    for ex in executions:
        if ex.success:
            break
        streak += 1
    if streak >= 2:
        out.append(f"the last {streak} runs of '{task_name}' failed in a row: fix the cause before running it again")

    failures = [ex for ex in executions[:10] if not ex.success]
    counts: dict[str, int] = {}
    latest: dict[str, Execution] = {}
    for ex in failures:
        text = _short(ex.message) or "(no message recorded)"
        counts[text] = counts.get(text, 0) + 1
        latest.setdefault(text, ex)
    for text, ex in list(latest.items())[:3]:
        times = f"{counts[text]}x in the last {min(10, len(executions))} runs" if counts[text] > 1 else "once"
        when = f", last {_ago(now - ex.at)}" if ex.at else ""
        out.append(f"recent failure ({times}{when}): {text}")

    if len(executions) >= 6:
        half = min(5, len(executions) // 2)
        recent = executions[:half]
        before = executions[half : 2 * half]
        r_fail = sum(not ex.success for ex in recent)
        b_fail = sum(not ex.success for ex in before)
        if r_fail / len(recent) - b_fail / len(before) >= 0.2:
            out.append(
                f"failures are rising: {r_fail} of the last {len(recent)} runs failed, "
                f"against {b_fail} of the {len(before)} before"
            )
        elif b_fail / len(before) - r_fail / len(recent) >= 0.2:
            out.append(
                f"failures are falling: {r_fail} of the last {len(recent)} runs failed, "
                f"against {b_fail} of the {len(before)} before"
            )

    durations = [ex.duration for ex in executions if ex.duration is not None]
    if len(durations) >= 3:
        median = statistics.median(durations)
        last = executions[0].duration
        if last is not None and median > 0 and last > 2 * median and last - median >= 1.0:
            out.append(
                f"the last run took {format_duration(last)}, {last / median:.1f}x the median of "
                f"{format_duration(median)}: look for slow rollouts or health checks close to their timeout"
            )
        ok_d = [ex.duration for ex in executions if ex.success and ex.duration is not None]
        bad_d = [ex.duration for ex in executions if not ex.success and ex.duration is not None]
        if ok_d and bad_d:
            ok_m, bad_m = statistics.median(ok_d), statistics.median(bad_d)
            if ok_m > 0 and bad_m > 2 * ok_m and bad_m - ok_m >= 1.0:
                out.append(
                    f"failed runs take longer (median {format_duration(bad_m)} against {format_duration(ok_m)} "
                    "for successful ones): the failures may be timeouts"
                )

    failed_syncs = [s for s in syncs if not s.succeeded]
    if failed_syncs:
        newest = failed_syncs[0]
        detail = f": {_short(newest.message)}" if newest.message else ""
        lead = "the latest sync" if not syncs[0].succeeded else "a recent sync"
        out.append(
            f"{len(failed_syncs)} of the last {len(syncs)} syncs of {', '.join(p.workflows)} failed; "
            f"{lead} ({newest.workflow_id}{', ' + newest.start_time if newest.start_time else ''}) said{detail}"
        )

    if p.failure_probability >= 0.5:
        out.append(
            f"high risk ({_pct(p.failure_probability)}): preview the changes (gitops.preview_changes) "
            "and deploy once the failures above are understood"
        )
    if not out:
        ok_runs = sum(ex.success for ex in executions)
        text = f"no failures in the last {ok_runs} recorded run(s) of '{task_name}'"
        if durations:
            text += f" (median duration {format_duration(statistics.median(durations))})"
        if syncs:
            text += f" nor in the last {len(syncs)} sync(s) of {', '.join(p.workflows)}"
        out.append(text)
    return out


# -- the state store side ---------------------------------------------------------------------------


def _mentions(ident: str, texts: Iterable[str]) -> bool:
    pattern = re.compile(rf"(?<![\w.-]){re.escape(ident)}(?![\w.-])")
    return any(pattern.search(t) for t in texts)


def sync_outcomes(store: Store, context: Iterable[str] = ()) -> list[SyncOutcome]:
    """The newest finished syncs and rollbacks: of the workflows named in ``context`` if any
    (a command or parameters that mention a workflow id), else of every workflow."""
    texts = [t for t in context if t]
    ids = [wf.id for wf in store.list_workflows()]
    chosen = [i for i in ids if _mentions(i, texts)] or ids
    outcomes: list[tuple[str, SyncOutcome]] = []
    for wid in chosen:
        for s in store.history(wid, limit=MAX_SYNCS):
            if s.status == "running" or s.kind == "action":
                continue
            outcomes.append((s.start_time, SyncOutcome(wid, s.status == "succeeded", s.message, s.start_time)))
    outcomes.sort(key=lambda item: item[0], reverse=True)
    return [o for _, o in outcomes[:MAX_SYNCS]]


def predict_from_store(
    store: Store | None, task_name: str, command: str | None = None, context: Iterable[str] = ()
) -> Prediction:
    """:func:`predict` over the executions and syncs recorded in ``store``."""
    if store is None:
        return predict(task_name, command, [], [])
    rows = store.executions(task_name, limit=MAX_EXECUTIONS)
    executions = [Execution.from_row(r) for r in rows]
    syncs = sync_outcomes(store, [command or "", *context])
    return predict(task_name, command, executions, syncs)


def parse_execution_time(value: Any) -> float | None:
    """Seconds from ``"30s"``-style durations or plain numbers; None when not given."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f'execution_time: expected a duration such as "30s" or seconds, got {value!r}')
    if isinstance(value, (int, float)):
        if value < 0:
            raise ConfigError(f"execution_time: {value!r} is negative")
        return float(value)
    return parse_duration(value, key="execution_time")


def validate(fields: Mapping[str, Any]) -> tuple[str, bool, str, str, float | None, dict[str, Any]]:
    """The fields of ``ai.record_execution{...}`` checked and split into the store's columns.

    ``task_name`` and ``success`` are required; ``command``, ``message`` and ``execution_time``
    have their own columns; every other field is kept as details.
    """
    if not isinstance(fields, Mapping):
        raise ConfigError(f"record_execution: expected a table of fields, got {type(fields).__name__}")
    data = dict(fields)
    task_name = data.pop("task_name", None)
    if not isinstance(task_name, str) or not task_name:
        raise ConfigError("task_name: required (the name of the task that ran)")
    success = data.pop("success", None)
    if not isinstance(success, bool):
        raise ConfigError(f"success: required, true or false (got {success!r})")
    command = data.pop("command", "") or ""
    if not isinstance(command, str):
        raise ConfigError(f"command: expected a string, got {type(command).__name__}")
    message = data.pop("message", "") or ""
    if not isinstance(message, str):
        message = str(message)
    duration = parse_execution_time(data.pop("execution_time", None))
    return task_name, success, command, message, duration, data


def record(store: Store, fields: Mapping[str, Any]) -> None:
    """Record one execution from the fields of ``ai.record_execution{...}`` (see :func:`validate`)."""
    task_name, success, command, message, duration, details = validate(fields)
    try:
        store.record_execution(task_name, command, success, duration, message, details)
    except sqlite3.Error as e:
        raise SlipwayError(f"record_execution: the state store refused the record: {e}") from e


__all__ = [
    "Execution",
    "Prediction",
    "SyncOutcome",
    "parse_execution_time",
    "predict",
    "predict_from_store",
    "record",
    "sync_outcomes",
    "validate",
]
