"""The JSON API under ``/api/v1``: repositories, workflows, diffs, history, resources and tokens.

Every answer has the shape of the table the rest of slipway already prints for the same thing:
a workflow's status is the seed's ``get_workflow_status`` table, a diff is the seed's
``generate_diff`` table, a sync is the recorded ``SyncResult``. Bodies are the configuration
tables the engine takes everywhere else (``Repository.from_config``, ``Workflow.from_config``), so
a bad key is the same one-line error as in Python, Lua or the CLI, as a 400. Credentials and
notification URLs are never in an answer (``public()``); an API token only in the answer that
made it. Every route that plans (diff, resources) plans for an operator only; a viewer reads
the plan last computed (:mod:`.plans`). Routes are plain functions: FastAPI runs them in its thread pool, so a diff that takes
seconds against the cluster never holds up the event loop.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse

from ..errors import ConfigError, NotFoundError
from .auth import Admin, Operator, Principal, Viewer, actor
from .context import ApiError, Context, Ctx
from .plans import PLANS, planned

log = logging.getLogger("slipway.server")

router = APIRouter(prefix="/api/v1")

ConfigBody = Annotated[
    dict[str, Any], Body(description="The configuration table, as register_repository / create_workflow take it")
]


def _audit(who: Principal, what: str) -> None:
    log.info("%s: %s", actor(who), what)


# -- who am I ---------------------------------------------------------------------------------------


@router.get("/whoami", tags=["tokens"], summary="The calling token's name and role")
def whoami(who: Viewer) -> dict[str, Any]:
    return {"name": who.name, "role": who.role}


# -- repositories -----------------------------------------------------------------------------------


@router.get("/repositories", tags=["repositories"], summary="Every registered repository")
def list_repositories(ctx: Ctx, who: Viewer) -> list[dict[str, Any]]:
    return [r.public() for r in ctx.engine.repositories()]


@router.post("/repositories", tags=["repositories"], status_code=201, summary="Register (or update) a repository")
def add_repository(body: ConfigBody, ctx: Ctx, who: Admin) -> JSONResponse:
    existed = isinstance(body.get("id"), str) and _repository_exists(ctx, body["id"])
    repo = ctx.engine.register_repository(body)
    _audit(who, f"{'updated' if existed else 'registered'} repository {repo.id}")
    return JSONResponse(repo.public(), status_code=200 if existed else 201)


def _repository_exists(ctx: Context, repo_id: str) -> bool:
    try:
        ctx.engine.repository(repo_id)
    except NotFoundError:
        return False
    return True


@router.get("/repositories/{repo_id}", tags=["repositories"], summary="One repository")
def get_repository(repo_id: str, ctx: Ctx, who: Viewer) -> dict[str, Any]:
    return ctx.engine.repository(repo_id).public()


@router.delete("/repositories/{repo_id}", tags=["repositories"], summary="Remove a repository no workflow uses")
def delete_repository(repo_id: str, ctx: Ctx, who: Admin) -> dict[str, Any]:
    try:
        ctx.engine.remove_repository(repo_id)
    except ConfigError as e:  # still used by a workflow
        raise ApiError(409, e.message) from None
    _audit(who, f"removed repository {repo_id}")
    return {"id": repo_id, "removed": True}


# -- workflows --------------------------------------------------------------------------------------


@router.get("/workflows", tags=["workflows"], summary="Every workflow's status table (filtered as asked)")
def list_workflows(
    request: Request,
    ctx: Ctx,
    who: Viewer,
    live: Annotated[
        bool,
        Query(
            description="Add each workflow's live_state, and its sync_status, health and operation as last "
            "computed (assessed_at, assessed_age: when; GET /workflows/{id} computes them now)"
        ),
    ] = False,
    sync: Annotated[list[str] | None, Query(description="Synced, OutOfSync or Unknown (repeat: any of)")] = None,
    health: Annotated[list[str] | None, Query(description="Healthy, Progressing, Degraded... (repeat: any of)")] = None,
    namespace: Annotated[list[str] | None, Query(description="The destination namespace (repeat: any of)")] = None,
    cluster: Annotated[list[str] | None, Query(description="in-cluster, or the kubeconfig/context (repeat)")] = None,
    label: Annotated[list[str] | None, Query(description="key=value, or key (repeat: all of)")] = None,
    repository: Annotated[list[str] | None, Query(description="The repository id (repeat: any of)")] = None,
    q: Annotated[str | None, Query(description="Text in the id, name, repository, path or namespace")] = None,
) -> list[dict[str, Any]]:
    """Each row is the status table plus ``path``, ``namespace``, ``cluster`` and ``labels``; with a
    sync or health filter the axes as last computed are in it too. One filter (:mod:`slipway.filters`)
    serves this list and the dashboard's overview."""
    del sync, health, namespace, cluster, label, repository, q  # documented here, read as one query below
    try:
        return ctx.engine.workflow_rows(request.query_params.multi_items(), live=live)
    except ConfigError as e:
        raise ApiError(400, str(e)) from None


@router.post("/workflows", tags=["workflows"], status_code=201, summary="Create a workflow")
def create_workflow(body: ConfigBody, ctx: Ctx, who: Admin) -> dict[str, Any]:
    if isinstance(body.get("id"), str) and ctx.engine.workflow_exists(body["id"]):
        raise ApiError(
            409, f"workflow {body['id']} already exists; change it with PATCH /api/v1/workflows/{body['id']}"
        )
    wf = ctx.engine.create_workflow(body, exists_ok=False)
    _audit(who, f"created workflow {wf.id}")
    return wf.public()


@router.get("/workflows/{workflow_id}", tags=["workflows"], summary="A workflow's status table, config and live state")
def get_workflow(workflow_id: str, ctx: Ctx, who: Viewer) -> dict[str, Any]:
    """The status table with sync_status and health computed now for an operator or above (a plan,
    nothing applied; with each object's own sync status and health), as last computed for a viewer
    (never a fetch, render or dry-run on a viewer's behalf), the last operation, the config and the
    live state."""
    status = ctx.engine.report(workflow_id, live=who.allows(PLANS))
    return {
        **status,
        "config": ctx.engine.workflow(workflow_id).public(),
        "live_state": ctx.engine.live_state(workflow_id),
    }


@router.patch("/workflows/{workflow_id}", tags=["workflows"], summary="Change only the settings given")
def update_workflow(
    workflow_id: str,
    body: Annotated[dict[str, Any], Body(description="The settings to change; nested tables are merged")],
    ctx: Ctx,
    who: Admin,
) -> dict[str, Any]:
    if not body:
        raise ApiError(400, "nothing to change: give at least one setting")
    old, new = ctx.engine.update_workflow(workflow_id, body)
    ctx.plans.forget(workflow_id)
    changed = _changed(old.public(), new.public())
    _audit(who, f"changed workflow {workflow_id}: {', '.join(changed) or 'nothing'}")
    return {"workflow": new.public(), "changed": changed}


def _changed(before: Any, after: Any, prefix: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[str] = []
        for key in sorted(set(before) | set(after)):
            out += _changed(before.get(key), after.get(key), f"{prefix}.{key}" if prefix else key)
        return out
    return [] if before == after else [prefix]


@router.delete("/workflows/{workflow_id}", tags=["workflows"], summary="Remove a workflow (its history stays)")
def delete_workflow(
    workflow_id: str,
    ctx: Ctx,
    who: Admin,
    cascade: Annotated[bool, Query(description="First delete what the workflow owns in the cluster")] = False,
) -> dict[str, Any]:
    ctx.plans.forget(workflow_id)
    if not cascade:
        ctx.engine.remove_workflow(workflow_id)
        _audit(who, f"removed workflow {workflow_id}")
        return {"id": workflow_id, "removed": True, "cascade": False}
    result = ctx.engine.remove_workflow(workflow_id, cascade=True, cancel=ctx.cancel, actor=actor(who))
    assert result is not None
    removed = result.status == "succeeded"
    _audit(who, f"removed workflow {workflow_id} with cascade: {result.status}")
    return {"id": workflow_id, "removed": removed, "cascade": True, "result": asdict(result)}


@router.post(
    "/workflows/{workflow_id}/unlock",
    tags=["workflows"],
    summary="Release a sync's claim whose process is gone but cannot be seen gone; 409 while it is alive",
)
def unlock_workflow(workflow_id: str, ctx: Ctx, who: Admin) -> dict[str, Any]:
    answer = ctx.engine.unlock_workflow(workflow_id)
    if answer["unlocked"]:
        _audit(who, f"unlocked workflow {workflow_id}: sync {answer['sync_id']} ({answer['holder']}) interrupted")
    return answer


@router.get(
    "/workflows/{workflow_id}/diff",
    tags=["workflows"],
    summary="What a sync would change now (operator); for a viewer, the diff an operator last computed",
)
def diff(workflow_id: str, ctx: Ctx, who: Viewer) -> dict[str, Any]:
    computed = planned(ctx, workflow_id, who)
    plan = computed.plan
    # The seed's table, plus what a client needs to sync exactly this plan (expected_plan).
    return {**plan.to_seed(), "revision": plan.revision, "fingerprint": plan.fingerprint(), "computed": computed.meta()}


@router.get("/workflows/{workflow_id}/history", tags=["workflows"], summary="Syncs and rollbacks, newest first")
def history(
    workflow_id: str,
    ctx: Ctx,
    who: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> list[dict[str, Any]]:
    return [asdict(r) for r in ctx.engine.history(workflow_id, limit)]


@router.get(
    "/workflows/{workflow_id}/resources",
    tags=["workflows"],
    summary="Every object the workflow declares or owns, with its sync state and health (planned now for an "
    "operator; for a viewer, as an operator last computed)",
)
def resources(
    workflow_id: str,
    ctx: Ctx,
    who: Viewer,
    manifests: Annotated[
        bool, Query(description="Add each object's live and desired YAML (Secret values masked)")
    ] = False,
) -> dict[str, Any]:
    computed = planned(ctx, workflow_id, who)
    rows = ctx.engine.resources_of(computed.plan, manifests=manifests)
    return {"workflow_id": workflow_id, "resources": rows, "computed": computed.meta()}


@router.post("/workflows/{workflow_id}/auto-sync", tags=["workflows"], summary="Turn a workflow's auto-sync on or off")
def set_auto_sync(
    workflow_id: str,
    body: Annotated[dict[str, Any], Body(description='{"enabled": true | false}')],
    ctx: Ctx,
    who: Operator,
) -> dict[str, Any]:
    unknown = sorted(set(body) - {"enabled"})
    if unknown:
        raise ApiError(400, f"{unknown[0]}: unknown key (known keys: enabled)")
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        raise ApiError(400, "enabled: required, true or false")
    old, new = ctx.engine.update_workflow(workflow_id, {"auto_sync": enabled})
    if old.auto_sync != new.auto_sync:
        _audit(who, f"turned auto-sync of workflow {workflow_id} {'on' if enabled else 'off'}")
    return {"id": workflow_id, "auto_sync": new.auto_sync, "changed": old.auto_sync != new.auto_sync}


# -- tokens -----------------------------------------------------------------------------------------


@router.get("/tokens", tags=["tokens"], summary="Every API token (never a secret)")
def list_tokens(ctx: Ctx, who: Admin) -> list[dict[str, Any]]:
    return [t.public() for t in ctx.engine.tokens()]


@router.post("/tokens", tags=["tokens"], status_code=201, summary="Make a token; the only answer that shows it")
def create_token(
    body: Annotated[dict[str, Any], Body(description='{"name": ..., "role": "viewer" | "operator" | "admin"}')],
    ctx: Ctx,
    who: Admin,
) -> JSONResponse:
    unknown = sorted(set(body) - {"name", "role"})
    if unknown:
        raise ApiError(400, f"{unknown[0]}: unknown key (known keys: name, role)")
    token, secret = ctx.engine.create_token(body.get("name"), body.get("role"), created_by=actor(who))  # type: ignore[arg-type]
    _audit(who, f"created token {token.name} ({token.role})")
    return JSONResponse({"token": secret, **token.public()}, status_code=201, headers={"Cache-Control": "no-store"})


@router.delete("/tokens/{name}", tags=["tokens"], summary="Revoke a token")
def revoke_token(name: str, ctx: Ctx, who: Admin) -> dict[str, Any]:
    ctx.engine.revoke_token(name)
    _audit(who, f"revoked token {name}")
    return {"name": name, "revoked": True}


__all__ = ["router"]
