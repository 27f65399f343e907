"""Resource actions (Argo CD's ``actions/discovery.lua`` and ``actions/<name>/action.lua``) and the
resource tree: :mod:`.scripts` finds and runs scripts in a bounded child process (:mod:`.sandbox`),
:mod:`.service` is what the engine runs (only on what a workflow owns, on the record), :mod:`.tree`
nests the live objects controllers made under the objects a workflow owns."""

from __future__ import annotations

from .scripts import Action, ActionError, Param

__all__ = ["Action", "ActionError", "Param"]
