"""``slipway server``: one always-on process with the auto-sync controller and an HTTP API.

Built on FastAPI and uvicorn. One module per part: :mod:`.app` (the app factory, probes, the
request guard, the process), :mod:`.auth` (bearer tokens, roles, slowing down guessers),
:mod:`.api` (repositories, workflows, diffs, history, resources, tokens), :mod:`.runs` (syncs and
rollbacks started over HTTP and followed by id), :mod:`.events` (Server-Sent Events),
:mod:`.webhooks` (push webhooks), :mod:`.metrics` (Prometheus), :mod:`.sources` (branch heads and
fetch errors), :mod:`.notifications` (outgoing webhooks) and :mod:`.ui` (the web dashboard at ``/``).
It is a front: it calls the engine and nothing else.

Nothing is imported here, so ``slipway controller`` can use :mod:`.notifications` without
loading the web stack.
"""
