"""An operator syncs the tracked branch, not any commit the mirror happens to hold (issue 23, item 5).

Real git over HTTP on loopback, the real server and API server: a commit force-pushed away and a
commit only on another branch (fetched into the mirror as ``diff --revision`` fetches it) are
refused to an operator with 403 and nothing applies; an older commit of the branch and a commit
this workflow applied before (a rollback by revision, even after a force-push) still sync; an
admin may sync off the branch, and the record says so.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from slipway.kube import Kube
from tests.gitservers import HttpGitServer, commit, git, push
from tests.manifests import configmap, dump

from .test_api import finish

pytestmark = pytest.mark.cluster


def app(v: str) -> dict[str, str]:
    return {"k8s/app.yaml": dump(configmap("app", {"v": v}))}


def test_an_operator_may_sync_only_the_branch_and_what_the_workflow_applied(  # type: ignore[no-untyped-def]
    start_server, git_http_server: HttpGitServer, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    server = start_server()
    name = f"trust-{secrets.token_hex(4)}"
    work = git_http_server.create_repo(name, app("1"), workdir=tmp_path / "work")
    c1 = git("rev-parse", "HEAD", cwd=work)
    admin, operator = server.client("admin"), server.client("operator")
    r = admin.post("/api/v1/repositories", json={"id": f"r-{name}", "url": git_http_server.public_url(name)})
    assert r.status_code == 201, r.text
    r = admin.post("/api/v1/workflows", json={"id": f"w-{name}", "repository": f"r-{name}", "target_path": "k8s",
                                               "destination": {"namespace": namespace}})  # fmt: skip
    assert r.status_code == 201, r.text
    wf = r.json()["id"]
    cms = kube.discovery.lookup("v1", "ConfigMap")

    def live() -> str:
        return str((kube.get(cms, namespace, "app") or {}).get("data", {}).get("v"))

    def sync(client: Any, revision: str) -> Any:
        return client.post(f"/api/v1/workflows/{wf}/sync", json={"revision": revision})

    c2 = commit(work, app("2"))
    push(work)
    assert finish(server, operator.post(f"/api/v1/workflows/{wf}/sync").json()["id"])["status"] == "succeeded"
    assert live() == "2"

    # An older commit of the branch: an operator may.
    r = sync(operator, c1)
    assert r.status_code == 202, r.text
    assert finish(server, r.json()["id"])["status"] == "succeeded" and live() == "1"

    # c4 applied, then force-pushed away; c5 fetched (a diff of the head), never applied, pushed away too.
    c4 = commit(work, app("4"))
    push(work)
    assert finish(server, sync(operator, c4).json()["id"])["status"] == "succeeded" and live() == "4"
    c5 = commit(work, app("5"))
    push(work)
    assert operator.get(f"/api/v1/workflows/{wf}/diff").json()["revision"] == c5
    git("reset", "--quiet", "--hard", c2, cwd=work)
    commit(work, app("6"))
    push(work)

    # c3 only on an unreviewed branch, fetched into the server's mirror the way `diff --revision` does.
    git("checkout", "--quiet", "-b", "feature", cwd=work)
    c3 = commit(work, app("3"))
    push(work, "feature")
    git("checkout", "--quiet", "main", cwd=work)
    eng = server.engine()
    try:
        assert eng.resolve_revision(wf, "feature") == c3
    finally:
        eng.store.close()

    for off in (c5, c3):
        r = sync(operator, off)
        assert r.status_code == 403, r.text
        assert off in r.json()["error"] and 'branch "main"' in r.json()["error"], r.json()
        assert live() == "4"
    history = admin.get(f"/api/v1/workflows/{wf}/history").json()
    assert {h["commit_hash"] for h in history} == {c1, c2, c4}  # the refusals started nothing

    # A revision this workflow applied before is a rollback: allowed, though no longer on the branch.
    r = sync(operator, c4)
    assert r.status_code == 202, r.text
    done = finish(server, r.json()["id"])
    assert done["status"] == "succeeded" and live() == "4" and not done["result"]["reason"]

    # An admin may sync off the branch; the record says that it was off the branch, and who.
    r = sync(admin, c3)
    assert r.status_code == 202, r.text
    done = finish(server, r.json()["id"])
    assert done["status"] == "succeeded" and live() == "3", done
    reason = done["result"]["reason"]
    assert 'not on branch "main"' in reason and "admin token:admin-" in reason, reason
    assert done["result"]["commit_hash"] == c3
