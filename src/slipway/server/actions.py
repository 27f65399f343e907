"""Resource actions and the resource tree over the API (``/api/v1/workflows/{id}/...``).

Listing and running actions need the operator role, as a sync does; the tree is read-only (viewer).
An action runs only on an object the workflow owns (403 otherwise, from the engine), and its
record, with the calling token as the actor, is the answer: ``status`` says whether it succeeded.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from .auth import Operator, Principal, Viewer, actor
from .context import ApiError, Ctx

log = logging.getLogger("slipway.server")

router = APIRouter(prefix="/api/v1")


def _audit(who: Principal, what: str) -> None:
    log.info("%s: %s", actor(who), what)


@router.get("/workflows/{workflow_id}/actions", tags=["actions"], summary="The actions available on one owned object")
def list_actions(
    workflow_id: str,
    ctx: Ctx,
    who: Operator,
    resource: Annotated[str, Query(description="KIND/NAME, e.g. Deployment/web")],
    namespace: Annotated[str | None, Query(description="The object's namespace, when KIND/NAME is ambiguous")] = None,
) -> dict[str, Any]:
    return ctx.engine.actions(workflow_id, resource, namespace=namespace)


@router.post("/workflows/{workflow_id}/actions", tags=["actions"], summary="Run an action on one owned object")
def run_action(
    workflow_id: str,
    body: Annotated[
        dict[str, Any],
        Body(
            description='{"resource": "Deployment/web", "action": "scale", "params": {"replicas": "3"}, "namespace": ...}'
        ),
    ],
    ctx: Ctx,
    who: Operator,
) -> dict[str, Any]:
    unknown = sorted(set(body) - {"resource", "action", "params", "namespace"})
    if unknown:
        raise ApiError(400, f"{unknown[0]}: unknown key (known keys: action, namespace, params, resource)")
    resource, action, namespace = body.get("resource"), body.get("action"), body.get("namespace")
    params = body.get("params") or {}
    if not isinstance(resource, str) or not resource:
        raise ApiError(400, "resource: required, KIND/NAME (e.g. Deployment/web)")
    if not isinstance(action, str) or not action:
        raise ApiError(400, "action: required, the action's name (e.g. restart)")
    if namespace is not None and not isinstance(namespace, str):
        raise ApiError(400, "namespace: must be a string")
    if not isinstance(params, dict) or not all(
        isinstance(v, str | int) and not isinstance(v, bool) for v in params.values()
    ):
        raise ApiError(400, "params: must be a table of names to strings or whole numbers")
    result = ctx.engine.run_action(
        workflow_id, resource, action, {str(k): str(v) for k, v in params.items()}, namespace=namespace,
        actor=actor(who),
    )  # fmt: skip
    _audit(who, f"ran action {action} on {resource} of workflow {workflow_id}: {result.status}")
    return asdict(result)


@router.get(
    "/workflows/{workflow_id}/tree", tags=["actions"], summary="Owned objects with what controllers made from them"
)
def tree(
    workflow_id: str,
    ctx: Ctx,
    who: Viewer,
    events: Annotated[int, Query(ge=0, le=50, description="How many of each object's last Events")] = 5,
) -> dict[str, Any]:
    return {"workflow_id": workflow_id, "tree": ctx.engine.tree(workflow_id, events=events, cancel=ctx.cancel)}


__all__ = ["router"]
