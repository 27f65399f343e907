"""A sync that loses its claim stops: it applies nothing more and says it lost the workflow.

A sync is frozen (SIGSTOP: a long GC pause, a suspended VM) while its hook runs, past its claim
Lease; another machine unlocks the workflow and syncs a newer commit. Resumed (SIGCONT), the first
sync must not apply its older plan over the newer one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from slipway.kube import Kube
from tests.gitservers import commit, push
from tests.manifests import configmap, dump

from .conftest import Cli
from .test_claims import LEASE, blocking_workflow, history, sync_elsewhere, wait_for


def unlock_elsewhere(cli: Cli) -> subprocess.CompletedProcess[str]:
    argv = ["unshare", "--uts", "sh", "-c", 'hostname otherhost && exec "$@"', "sh",
            sys.executable, "-m", "slipway", "workflow", "unlock", "w"]  # fmt: skip
    return subprocess.run(argv, env=cli.env, cwd=cli.cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


@pytest.mark.parametrize("store_backend", ["kubernetes"], indirect=True)
@pytest.mark.cluster
def test_a_sync_that_lost_its_claim_applies_nothing_more(cli: Cli, kube: Kube, namespace: str, tmp_path: Path) -> None:
    block, started = blocking_workflow(cli, tmp_path, namespace)
    block.touch()
    log = tmp_path / "frozen.log"
    frozen = sync_elsewhere(cli, log, host="first-host")
    try:
        wait_for(started.exists, 60, f"the first sync to reach its hook ({log.read_text()})")
        first = cli.engine().store.workflow_state("w")["sync_id"]
        os.kill(frozen.pid, signal.SIGSTOP)  # the sync's own process only: its hook's shell runs on

        # Its Lease goes stale; another machine unlocks the workflow once it has watched it stale.
        def unlocked() -> bool:
            r = unlock_elsewhere(cli)
            return r.returncode == 0 and "unlocked" in r.stdout

        wait_for(unlocked, 10 * LEASE + 30, "the frozen sync's claim to be unlocked")
        block.unlink()
        work = tmp_path / "app"
        commit(work, {"k8s/a.yaml": dump(configmap("a", {"v": "2"}))})
        push(work)
        r = cli("sync", "w", "--yes")
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    code = frozen.wait(60)
    out = log.read_text()
    assert code != 0, out
    assert "lost its claim" in out, out
    cms = kube.discovery.lookup("v1", "ConfigMap")
    assert (kube.get(cms, namespace, "a") or {}).get("data") == {"v": "2"}, "the frozen sync applied its old plan"
    row = next(h for h in history(cli) if h["id"] == first)
    assert row["status"] in ("failed", "interrupted") and "lost its claim" in row["message"], row
