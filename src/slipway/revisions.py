"""Which commits a person may sync: the tracked branch's, and what this workflow applied before.

A GitOps workflow deploys its branch. An explicit revision (``sync --revision``, the API's
``{"revision": ...}``) is accepted when the branch's head, fetched just now, reaches it (an older
commit of the branch), or when this workflow applied it before (a rollback by revision, even
after a force-push took it off the branch). Anything else — a commit force-pushed away, one only
on another branch that ``diff --revision`` fetched into the mirror — is refused (NotPermitted: the
API's 403) unless the caller is an admin, and then the sync's record says so in its ``reason``.
Automatic triggers only ever sync the head the controller read from the branch, or what is live.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import NotPermitted
from .model import Repository, Workflow
from .retry import with_retry

if TYPE_CHECKING:
    from .source import GitSource
    from .store import StateStore

log = logging.getLogger("slipway.sync")


def admit(
    source: GitSource,
    store: StateStore,
    wf: Workflow,
    repo: Repository,
    revision: str,
    *,
    admin: bool,
    actor: str | None,
    cancel: threading.Event | None = None,
) -> tuple[str, str | None]:
    """The commit to sync for ``revision``, and the reason to record when only an admin could; or
    NotPermitted, naming the revision and the branch, when the caller may not sync it."""
    sha, reachable = with_retry(
        lambda: source.on_branch(repo, revision), wf.sync_policy.retry, what=f"fetch {repo.id}", cancel=cancel
    )
    if reachable and sha is not None:
        return sha, None
    if sha is not None and any(s.commit_hash == sha and s.status == "succeeded" for s in store.history(wf.id)):
        return sha, None  # applied by this workflow before: rolling back to it is no new code
    named = revision if sha is None or sha == revision else f"{revision} ({sha[:12]})"
    where = f'branch "{repo.branch}" of repository {repo.id}'
    if not admin:
        raise NotPermitted(
            f"workflow {wf.id}: revision {named} is not on {where}, and this workflow never applied it; "
            "only an admin may sync it",
            hint="sync a commit of the branch, or ask an admin",
        )
    if sha is None:
        return revision, None  # not in the mirror at all: the fetch names it in its own error
    reason = f'revision {sha[:12]} is not on branch "{repo.branch}": applied by admin {actor or "(unnamed)"}'
    log.warning("workflow %s: %s", wf.id, reason)
    return sha, reason


def admit_composite(
    source: GitSource,
    store: StateStore,
    wf: Workflow,
    repo: Repository,
    revision: str,
    *,
    admin: bool,
    actor: str | None,
    chart_revision: Callable[[str], str],
) -> tuple[str, str | None]:
    """:func:`admit` for a workflow whose revision is more than one commit (:mod:`.workflowrev`): a chart
    version (a version alone, or ``<version>@sha256:<digest>``) inside the workflow's range, and each
    values repository's commit on its branch; or what this workflow applied before. ``chart_revision``
    names an exact chart version's revision."""
    from .render.semver import Constraint, SemverError, Version
    from .workflowrev import compose, parse

    if any(s.commit_hash == revision and s.status == "succeeded" for s in store.history(wf.id)):
        return revision, None
    main, values = parse(revision)
    outside: list[str] = []
    if repo.type == "helm":
        main = main if "@" in main else chart_revision(main.lstrip("v"))
        version = main.partition("@")[0]
        try:
            inside = Constraint(wf.chart_version or "*").check(Version.parse(version))
        except SemverError:
            inside = False
        if not inside:
            outside.append(f"chart version {version} is outside the range {wf.chart_version or '*'!r}")
    else:
        sha, reachable = source.on_branch(repo, main)
        if not reachable:
            outside.append(f'revision {main[:12]} is not on branch "{repo.branch}" of repository {repo.id}')
        main = sha or main
    for rid, commit in list(values.items()):
        other = store.get_repository(rid)
        sha, reachable = source.on_branch(other, commit)
        if not reachable:
            outside.append(f'values revision {commit[:12]} is not on branch "{other.branch}" of repository {rid}')
        values[rid] = sha or commit
    revision = compose(main, values)
    if not outside:
        return revision, None
    if not admin:
        raise NotPermitted(
            f"workflow {wf.id}: {'; '.join(outside)}, and this workflow never applied it; only an admin may sync it",
            hint="sync a release in the workflow's range (or a commit of the branch), or ask an admin",
        )
    reason = f"{'; '.join(outside)}: applied by admin {actor or '(unnamed)'}"
    log.warning("workflow %s: %s", wf.id, reason)
    return revision, reason


def local_admin(store: StateStore) -> bool:
    """Whether the OS user running this process is the admin of ``store`` (the CLI's admin): the
    owner of a local store's directory, or root; for a store in the cluster, anyone whose
    kubeconfig lets them write its records, as they could change them directly anyway."""
    home = getattr(store, "home", None)
    if not isinstance(home, Path):
        return True
    owner = home.stat().st_uid if home.exists() else os.geteuid()
    return os.geteuid() in (0, owner)
