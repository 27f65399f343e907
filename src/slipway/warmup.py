"""A connection to a workflow's cluster opened ahead of need.

A front that is about to plan or sync asks for it first: the connection and the cluster's API map
are read in a thread while Git and the render run, so the plan finds them ready. What goes wrong
here is left for the plan to meet and report.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import SlipwayError

if TYPE_CHECKING:
    from .kube import Kube
    from .model import Workflow
    from .store import StateStore

log = logging.getLogger("slipway.engine")


def warm_up(store: StateStore, kube_for: Callable[[Workflow], Kube], workflow_id: str) -> None:
    try:
        wf = store.get_workflow(workflow_id)
    except SlipwayError:
        return

    def connect() -> None:
        try:
            kube_for(wf).discovery.ensure()
        except Exception as e:  # the plan meets it again, and says so
            log.debug("warming up the connection for workflow %s: %s", wf.id, e)

    threading.Thread(target=connect, name="slipway-warm-up", daemon=True).start()
