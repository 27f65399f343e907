"""``slipway sync --revision``: the tracked branch's commits, or what the workflow applied before
(issue 23, item 5). Anything else needs ``--off-branch``, the store owner's (admin's) override,
and the sync's record says so."""

from __future__ import annotations

import pytest
import yaml

from slipway.kube import Kube
from tests.gitservers import commit, git, push

from .conftest import Cli
from .test_cli import cm, setup_workflow

pytestmark = pytest.mark.cluster


def test_sync_revision_refuses_what_is_not_on_the_branch_unless_an_admin_says_so(
    cli: Cli, kube: Kube, namespace: str
) -> None:
    def files(v: str) -> dict[str, str]:
        return {"k8s/app.yaml": yaml.safe_dump(cm("app", namespace, v=v))}

    cms = kube.discovery.lookup("v1", "ConfigMap")

    def live() -> str:
        return str((kube.get(cms, namespace, "app") or {}).get("data", {}).get("v"))

    def ok(*args: str) -> None:
        r = cli(*args)
        assert r.returncode == 0, r.stdout + r.stderr

    work = setup_workflow(cli, namespace, files("1"))
    c1 = git("rev-parse", "HEAD", cwd=work)
    c2 = commit(work, files("2"))
    push(work)
    ok("sync", "app-wf", "--yes")
    assert live() == "2"
    ok("sync", "app-wf", "--yes", "--revision", c1)  # an older commit of the branch
    assert live() == "1"

    # A branch nobody merged, planned with `diff --revision` (which fetches it into the mirror).
    git("checkout", "--quiet", "-b", "feature", cwd=work)
    c3 = commit(work, files("3"))
    push(work, "feature")
    git("checkout", "--quiet", "main", cwd=work)
    assert cli("diff", "app-wf", "--revision", "feature").returncode == 1

    # c4 applied, c5 only planned; then both force-pushed away.
    c4 = commit(work, files("4"))
    push(work)
    ok("sync", "app-wf", "--yes")
    c5 = commit(work, files("5"))
    push(work)
    assert cli("diff", "app-wf").returncode == 1
    git("reset", "--quiet", "--hard", c2, cwd=work)
    commit(work, files("6"))
    push(work)

    for ref, sha in (("feature", c3), (c3, c3), (c5, c5)):
        r = cli("sync", "app-wf", "--yes", "--revision", ref)
        assert r.returncode == 2, r.stdout + r.stderr
        assert sha in r.stderr and 'not on branch "main"' in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert live() == "4"
    eng = cli.engine()
    try:
        assert {s.commit_hash for s in eng.store.history("app-wf")} == {c1, c2, c4}  # refusals start nothing
    finally:
        eng.store.close()

    ok("sync", "app-wf", "--yes", "--revision", c4)  # applied before: a rollback by revision
    assert live() == "4"

    r = cli("sync", "app-wf", "--yes", "--off-branch")
    assert r.returncode == 2 and "--revision" in r.stderr, r.stderr
    ok("sync", "app-wf", "--yes", "--revision", "feature", "--off-branch")
    assert live() == "3"
    eng = cli.engine()
    try:
        last = eng.store.history("app-wf", limit=1)[0]
    finally:
        eng.store.close()
    assert last.commit_hash == c3 and last.status == "succeeded"
    assert last.reason and 'not on branch "main"' in last.reason and "applied by admin user:" in last.reason
