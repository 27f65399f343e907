"""How a plan and a sync's result read on a terminal or in a CI log.

A plan prints as a summary table (action, kind, name, namespace, impact, wave), then the diffs of
updates — what a person reviews; creates and deletions are whole objects, shown with ``--diff``.
``--summary`` prints the table alone, ``--resource Kind/name`` one object's change. Everything is
built as plain lines and written at once (colour codes only on a terminal), so a plan of a thousand
changes prints in milliseconds.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from .output import colored, paint, wide

if TYPE_CHECKING:
    from ..plan.model import Plan
    from ..results import Change, SyncResult

IMPACT_STYLE = {"low": "dim", "medium": "yellow", "high": "bold red", "critical": "bold red"}
ACTION_STYLE = {"create": "green", "update": "yellow", "delete": "red"}
VIEWS = ("default", "summary", "full")
# Up to this many changes, the default view shows every diff; beyond it, the diffs of updates only.
SMALL_PLAN = 20
_HIGH = ("High-impact change detected: ", "Critical-impact change detected: ")


def split_resource(resource: str) -> tuple[str, str]:
    kind, _, name = resource.partition("/")
    return kind, name


def select(plan: Plan, resources: tuple[str, ...]) -> tuple[list[Change], list[Any]]:
    """The changes and conflicts of ``resources`` (``Kind/name``, kinds case-insensitive)."""
    wanted = {_key(r) for r in resources}
    changes = [c for c in plan.changes if _key(c.resource) in wanted]
    conflicts = [c for c in plan.conflicts if _key(c.resource) in wanted]
    return changes, conflicts


def _key(resource: str) -> tuple[str, str]:
    kind, name = split_resource(resource)
    return kind.lower(), name


def table(rows: list[list[str]], styles: list[list[str]], color: bool) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for row, style in zip(rows, styles, strict=True):
        cells = [paint(cell.ljust(w), s, color) for cell, w, s in zip(row, widths, style, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines


def plan_lines(plan: Plan, view: str = "default", resources: tuple[str, ...] = ()) -> list[str]:
    color = colored(sys.stdout)
    s = plan.summary()
    changes, conflicts = select(plan, resources) if resources else (plan.changes, plan.conflicts)
    at = f"at revision {plan.revision[:12]}" if plan.revision else "from a local directory"
    lines = [
        paint(plan.workflow_id, "bold", color) + f" {at}: {s['total_changes']} change(s) ("
        + paint(f"+{s['created_resources']}", "green", color) + " "
        + paint(f"~{s['updated_resources']}", "yellow", color) + " "
        + paint(f"-{s['deleted_resources']}", "red", color)
        + f"), {s['conflict_count']} conflict(s), {s['warning_count']} warning(s)"
    ]  # fmt: skip
    if resources:
        for r in resources:
            if not any(_key(c.resource) == _key(r) for c in [*changes, *conflicts]):
                lines.append(f"{r}: no change")
    if changes and not resources:
        lines.append("")
        lines += change_table(changes, color)
    everything = view == "full" or bool(resources) or len(changes) <= SMALL_PLAN
    shown = changes if everything else [c for c in changes if c.type == "update"]
    if view != "summary":
        for change in shown:
            lines.append("")
            lines += diff_lines(change, color)
        if len(shown) < len(changes):
            lines += ["", paint(f"{len(changes) - len(shown)} created or deleted object(s) not shown in full: "
                                "--diff shows them, --resource Kind/name one of them", "dim", color)]  # fmt: skip
    for c in conflicts:
        style = "yellow" if c.type == "out_of_sync" else "red"
        lines.append("")
        lines.append(paint(f"CONFLICT {c.type}", style, color) + f" {c.resource}: {c.description}")
        if view != "summary":
            lines += [f"  - {tip}" for tip in c.suggestions]
    if not resources:
        lines += _hooks(plan, color) + _warnings(plan, view, color)
        if not plan.changes and not plan.conflicts:
            lines.append(paint("No changes:", "green", color) + " the cluster matches Git.")
    return lines


def change_table(changes: list[Change], color: bool) -> list[str]:
    head = ["ACTION", "KIND", "NAME", "NAMESPACE", "IMPACT", "WAVE"]
    if wide():
        head += ["API VERSION", "DRIFT", "WHY"]
    rows, styles = [head], [["bold"] * len(head)]
    for c in changes:
        kind, name = split_resource(c.resource)
        row = [c.type, kind, name, c.namespace or "-", c.impact, str(c.wave)]
        style = [ACTION_STYLE.get(c.type, ""), "", "", "", IMPACT_STYLE.get(c.impact, ""), ""]
        if wide():
            row += [c.api_version, "yes" if c.drifted else "-", "; ".join(c.reasons)]
            style += ["", "yellow" if c.drifted else "", "dim"]
        rows.append(row)
        styles.append(style)
    return table(rows, styles, color)


def diff_lines(change: Change, color: bool) -> list[str]:
    out = []
    for line in change.diff.splitlines():
        style = ""
        if line.startswith("+") and not line.startswith("+++"):
            style = "green"
        elif line.startswith("-") and not line.startswith("---"):
            style = "red"
        elif line.startswith("~ Updating"):
            style = "yellow"
        elif line.startswith("@@"):
            style = "cyan"
        elif line.startswith(("+++", "---")):
            style = "bold"
        out.append(paint(line, style, color))
    return out


def _hooks(plan: Plan, color: bool) -> list[str]:
    seed = plan.to_seed()["hooks"] if plan.hooks else []
    if not seed:
        return []
    lines = ["", paint("hooks", "bold", color) + " (run in their phase, not part of what Git declares):"]
    for h in seed:
        if h["runs"]:
            policy = ", ".join(h["delete_policies"])
            lines.append(f"  {'/'.join(h['phases'])} wave {h['wave']}: {h['resource']} "
                         + paint(f"(delete policy {policy}; {h['source']})", "dim", color))  # fmt: skip
        else:
            lines.append(f"  never run by a sync: {h['resource']} " + paint(f"({h['note']})", "dim", color))
    return lines


def _warnings(plan: Plan, view: str, color: bool) -> list[str]:
    warnings = plan.warnings
    high = [w for w in warnings if w.startswith(_HIGH)]
    if view != "full" and len(high) > 3:
        # The table's IMPACT column already names each of them.
        warnings = [w for w in warnings if not w.startswith(_HIGH)] + [
            f"{len(high)} high- or critical-impact changes (see the IMPACT column)"
        ]
    if not warnings:
        return []
    return [""] + [paint("warning:", "yellow", color) + f" {w}" for w in warnings]


def print_plan(plan: Plan, view: str = "default", resources: tuple[str, ...] = ()) -> None:
    sys.stdout.write("\n".join(plan_lines(plan, view, resources)) + "\n")
    sys.stdout.flush()


def result_lines(result: SyncResult) -> list[str]:
    color = colored(sys.stdout)
    ok = result.status == "succeeded"
    m = result.metrics
    kind = "rollback" if result.kind == "rollback" else "sync"
    lines = [
        paint(f"{kind} {result.id} {result.status}", "green" if ok else "red", color)
        + f" in {m.duration}: {result.message}",
        f"  revision {(result.commit_hash or '-')[:12]}; processed {m.resources_processed}, "
        f"applied {m.resources_applied}, skipped {m.resources_skipped}, conflicts resolved {m.conflicts_resolved}",
    ]
    for h in result.hooks:
        if h.get("kind") == "resource":
            mark = "ok" if h["status"] == "Succeeded" else f"FAILED: {h['message']}"
            lines.append(f"  {h['phase']} hook {h['resource']}: {mark}")
        else:
            mark = "ok" if h["exit_code"] == 0 else "FAILED"
            lines.append(f"  {h['phase']}-sync hook {h['command']}: {mark}")
    bad = [h for h in result.health if h["status"] != "Healthy"]
    for h in bad[:10]:
        lines.append(f"  {paint(h['status'], 'yellow', color)} {h['resource']}: {h['message']}")
    if len(bad) > 10:
        lines.append(f"  ... and {len(bad) - 10} more not healthy")
    return lines


def print_result(result: SyncResult) -> None:
    sys.stdout.write("\n".join(result_lines(result)) + "\n")
    sys.stdout.flush()


__all__ = ["VIEWS", "plan_lines", "print_plan", "print_result", "result_lines", "select"]
