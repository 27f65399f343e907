"""Health of CustomResourceDefinitions: Established, or Degraded when their names are not accepted."""

from __future__ import annotations

from ..kube import Obj
from ..kube.objects import conditions
from .registry import DEGRADED, HEALTHY, PROGRESSING, Health, rule


@rule("apiextensions.k8s.io", "CustomResourceDefinition")
def crd(o: Obj) -> Health:
    conds = conditions(o)
    names = conds.get("NamesAccepted", {})
    if names.get("status") == "False":
        return Health(DEGRADED, names.get("message", "names not accepted"))
    if conds.get("Established", {}).get("status") == "True":
        return Health(HEALTHY, "established")
    return Health(PROGRESSING, "waiting to be established")
