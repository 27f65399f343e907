"""How the CLI shows a workflow's two axes (sync status, health) and its last operation.

One set of words for ``workflow status``, ``workflow get`` and ``workflow list``, the same the API,
the dashboard, ``kubectl get workflows`` and the metrics use (computed by :mod:`slipway.axes`; the words are in :mod:`slipway.results`).
"""

from __future__ import annotations

from typing import Any

from ..results import short_age, sync_words
from .output import paint

SYNC_STYLE = {"Synced": "green", "OutOfSync": "yellow", "Unknown": "dim"}
HEALTH_STYLE = {"Healthy": "green", "Progressing": "cyan", "Degraded": "red", "Missing": "yellow",
                "Suspended": "dim", "Unknown": "dim"}  # fmt: skip
PHASE_STYLE = {"Succeeded": "green", "Failed": "red", "Running": "cyan", "Refused": "yellow"}


def sync_text(sync: dict[str, Any], color: bool) -> str:
    return paint(sync_words(sync), SYNC_STYLE.get(sync.get("status", ""), ""), color)


def health_text(health: dict[str, Any], color: bool) -> str:
    return paint(str(health.get("status") or "Unknown"), HEALTH_STYLE.get(health.get("status", ""), ""), color)


def summary_lines(row: dict[str, Any], color: bool) -> list[str]:
    """Sync status, health and the last operation, a line each."""
    sync, health, op = row["sync_status"], row["health"], row.get("operation")
    against = f" against {sync['revision'][:12]}" if sync.get("revision") else ""
    why = f" ({sync['message']})" if sync.get("message") else ""
    lines = [f"sync status: {sync_text(sync, color)}{against}{why}"]
    lines.append(
        f"health:      {health_text(health, color)}" + (f" ({health['message']})" if health.get("message") else "")
    )
    if op:
        phase = paint(op["phase"], PHASE_STYLE.get(op["phase"], ""), color)
        rev = f" at {op['revision'][:12]}" if op.get("revision") else ""
        lines.append(
            f"operation:   {op['kind']} {op['sync_id']}{rev}: {phase}, {op.get('finished_at') or op['started_at']}"
        )
        if op.get("message"):
            lines.append(f"             {op['message']}")
    else:
        lines.append("operation:   none yet")
    return lines


def list_cells(row: dict[str, Any]) -> tuple[str, str, str]:
    """(SYNC, HEALTH, AGE) of a ``workflow list`` row."""
    return (
        sync_words(row["sync_status"]),
        str(row["health"].get("status") or "Unknown"),
        short_age(row.get("assessed_age")),
    )


def object_rows(objects: list[dict[str, Any]]) -> list[list[str]]:
    head = ["GROUP", "KIND", "NAMESPACE", "NAME", "SYNC", "HEALTH", "MESSAGE"]
    rows = [head]
    for o in objects:
        rows.append([o["group"] or "-", o["kind"], o["namespace"] or "-", o["name"], o["sync_status"],
                     o["health"]["status"], o["health"].get("message") or ""])  # fmt: skip
    return rows


def hook_rows(hooks: list[dict[str, Any]]) -> list[list[str]]:
    head = ["PHASE", "HOOK", "STATUS", "MESSAGE"]
    rows = [head]
    for h in hooks:
        status = h.get("status") or ("Succeeded" if h.get("exit_code") == 0 else "Failed")
        message = str(h.get("message") or "").strip().splitlines()
        rows.append([str(h.get("phase") or "-"), str(h.get("resource") or h.get("command") or "-"), str(status),
                     message[0] if message else ""])  # fmt: skip
    return rows


__all__ = ["hook_rows", "list_cells", "object_rows", "summary_lines"]
