"""A workflow's revision when it reads more than one commit: its source's, then each values repository's.

A Git workflow's revision is its commit; a chart's from a chart repository is
``<version>@sha256:<digest>`` (:mod:`slipway.render.chartsource`). Values files of other Git
repositories (``$<repository id>/<path>``, Argo CD's ``$values``) add ``;<repository id>@<commit>``
for each such repository, so a commit that changes them is a new revision of the workflow, a sync
records every commit it rendered, and a rollback renders the values as they were.
"""

from __future__ import annotations

from typing import Any

from .model import Workflow


def values_repositories(wf: Workflow) -> list[str]:
    """The ids of the Git repositories the workflow's values files come from, in order, once each."""
    out: list[str] = []
    for ref in wf.helm.values_files if wf.helm else []:
        if ref.startswith("$"):
            rid = ref[1:].partition("/")[0]
            if rid not in out:
                out.append(rid)
    return out


def compose(main: str, values: dict[str, str]) -> str:
    return main + "".join(f";{rid}@{sha}" for rid, sha in values.items())


def parse(revision: str) -> tuple[str, dict[str, str]]:
    """(the source's revision, {values repository id: commit})."""
    main, *rest = revision.split(";")
    values = {}
    for part in rest:
        rid, _, sha = part.partition("@")
        if rid and sha:
            values[rid] = sha
    return main, values


def followed_head(wf: Workflow, chart: bool, states: dict[str, Any]) -> tuple[str, tuple[int, ...]] | None:
    """The revision the controller should bring ``wf`` to, from what the checks of its repositories saw
    (``states``: id -> ``head``, ``heads`` by workflow for a chart repository, ``version``), and a
    version that changes with any of them; None until each of them has been checked."""
    main = states.get(wf.repository)
    if main is None or main.head is None:
        return None
    head = main.heads.get(wf.id) if chart else main.head
    if head is None:
        return None
    values: dict[str, str] = {}
    versions = [main.version]
    for rid in values_repositories(wf):
        other = states.get(rid)
        if other is None or other.head is None:
            return None
        values[rid] = other.head
        versions.append(other.version)
    return compose(head, values), tuple(versions)
