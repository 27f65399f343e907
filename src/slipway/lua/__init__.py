"""The Lua runtime: ``slipway run FILE.lua [FILE2.lua ...] [--param key=value ...]``.

Contract of :func:`run_script` (the CLI calls it and exits with what it returns)::

    run_script(paths, params=None, *, stdin=None, out=None, err=None,
               gitops_api=None, debug=None, wait_for_signal=None) -> int

- ``paths`` are run as ONE Lua 5.4 chunk (later files see the locals of earlier ones); every
  message and traceback names the original file and line. ``params`` (strings) are what each
  task command receives as its first argument.
- ``stdin``/``out``/``err`` default to ``sys.stdin``/``sys.stdout``/``sys.stderr`` as they are
  at call time. ``print``/``io.write`` go to ``out``; log lines (``HH:MM:SS LEVEL message``: the ``log``
  module, task and workflow progress, and the ``slipway`` Python logger) go to ``err``;
  ``io.read`` reads ``stdin`` (nil at end of input or when it is closed).
- ``gitops_api``: the object behind ``require("gitops")``, by default the :mod:`slipway.gitops`
  module; any object with the same functions works (tests inject one). When it has
  ``engine()``, executions are recorded through ``engine()`` for the ``ai`` module.
- ``debug``: show debug lines and tracebacks; by default from ``SLIPWAY_DEBUG``.
- Exit code: 0 when the chunk ran and every workflow and task succeeded; 1 when the chunk
  stopped on a Lua error (printed as ``error: FILE:LINE: message``) or any task, callback or
  workflow failed; 2 when a file cannot be read or the chunk does not compile.
- Auto-sync: when the script called ``gitops.start_auto_sync()`` and not ``stop_auto_sync()``,
  after its workflows ran ``run_script`` logs that the controller keeps running and how to stop
  it, then blocks until SIGINT or SIGTERM (its handlers are installed for the wait and restored
  after) or until the controller stops, calls ``stop_auto_sync()`` and returns the code above.
  ``wait_for_signal`` replaces that blocking wait (a callable returning a description of what
  ended it); an API object may offer ``auto_sync_running()`` to say whether its controller
  still runs. A script that fails has its controller stopped before ``run_script`` returns.

``docs/lua.md`` is the user's guide to the Lua API and the sandbox.
"""

from .runtime import run_script, wait_for_signal_default

__all__ = ["run_script", "wait_for_signal_default"]
