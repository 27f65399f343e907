"""Task executions (the Lua ``ai`` module's record): one sealed Secret per task, its latest runs only.

A task's executions are a list, newest first, kept to :data:`KEEP` entries (what a prediction
reads, with room to spare), sealed like sync records since a script may put anything in
``details``. Appending is a conditional write, retried on conflict, so two processes recording
at once both land.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ...errors import SlipwayError
from ...kube.client import KubeAlreadyExists, KubeConflict
from . import names
from .base import ATTEMPTS, Base, b64, unb64
from .names import SECRETS

KEEP = 500


class Executions(Base):
    def _rows(self, task_name: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        obj = self.kube.get(SECRETS, self.namespace, names.executions_name(task_name))
        if obj is None:
            return None, []
        blob = (obj.get("data") or {}).get("rows")
        rows = self.unseal(unb64(blob), f"executions of {task_name}") if blob else []
        return obj, [r for r in rows if r.get("task_name") == task_name]

    def _write_rows(self, name: str, obj: dict[str, Any] | None, rows: list[dict[str, Any]]) -> None:
        """Write the sealed rows on the condition that nobody wrote them since ``obj`` was read."""
        data = {"rows": b64(self.seal(rows))}
        if obj is None:
            self.kube.create(SECRETS, {
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": name, "namespace": self.namespace,
                             "labels": names.managed(**{names.LABEL_RECORD: "executions"})},
                "data": data,
            })  # fmt: skip
        else:
            obj["data"] = data
            self.kube.replace(SECRETS, obj)

    def record_execution(
        self, task_name: str, command: str, success: bool, duration: float | None, message: str, details: Any
    ) -> None:
        name = names.executions_name(task_name)
        for _ in range(ATTEMPTS):
            obj, rows = self._rows(task_name)
            row = {
                "id": (rows[0]["id"] + 1) if rows else 1,
                "task_name": task_name,
                "command": command,
                "success": int(success),
                "duration": duration,
                "message": message,
                "details": json.dumps(details, default=str),
                "at": time.time(),
            }
            try:
                self._write_rows(name, obj, [row, *rows][:KEEP])
                return
            except (KubeConflict, KubeAlreadyExists):
                continue
        raise SlipwayError(f"executions of {task_name}: kept changing while being recorded")

    def executions(self, task_name: str, limit: int = 200) -> list[dict[str, Any]]:
        return self._rows(task_name)[1][:limit]

    def task_names(self) -> list[str]:
        """Every task with executions (for a migration's check)."""
        out: list[str] = []
        selector = names.selector(**{names.LABEL_RECORD: "executions"})
        for obj in self.kube.list(SECRETS, self.namespace, label_selector=selector):
            blob = (obj.get("data") or {}).get("rows")
            if blob:
                rows = self.unseal(unb64(blob), obj["metadata"]["name"])
                out += sorted({str(r.get("task_name")) for r in rows})
        return out

    def import_executions(self, task_name: str, rows: list[dict[str, Any]]) -> int:
        """Merge rows of another store in (a migration), each once; returns how many were new."""
        name = names.executions_name(task_name)

        def key(r: dict[str, Any]) -> tuple[Any, ...]:
            return (round(float(r.get("at") or 0), 6), r.get("command"), r.get("message"), r.get("success"))

        for _ in range(ATTEMPTS):
            obj, current = self._rows(task_name)
            seen = {key(r) for r in current}
            new = [dict(r, task_name=task_name) for r in rows if key(r) not in seen]
            if not new:
                return 0
            merged = sorted([*current, *new], key=lambda r: -float(r.get("at") or 0))[:KEEP]
            for i, row in enumerate(reversed(merged), start=1):
                row["id"] = i
            try:
                self._write_rows(name, obj, merged)
                return len(new)
            except (KubeConflict, KubeAlreadyExists):
                continue
        raise SlipwayError(f"executions of {task_name}: kept changing while being copied")
