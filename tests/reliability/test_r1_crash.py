"""R1 crash anywhere: kill -9 of the syncing process at random points, then the next sync converges.

Seeded trials of first syncs, prune syncs and rollbacks of a workflow of many objects. After each
kill: no sync is left ``running`` once a process opens the store again, no history row recorded
before the kill is lost or half-written, and the next sync brings the cluster to exactly what Git
declares — no object missing, none left over.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import yaml

from slipway.kube import Kube
from slipway.store import Store
from tests.gitservers import commit, make_repo, origin_of, push

from .conftest import Cli, size

SEED = 20261129


def objects(n: int, namespace: str, version: str) -> str:
    docs: list[dict[str, Any]] = []
    for i in range(n):
        md = {"name": f"obj-{i:04d}", "namespace": namespace}
        if i % 5 == 4:
            docs.append({"apiVersion": "v1", "kind": "Service", "metadata": md,
                         "spec": {"selector": {"app": md["name"]}, "ports": [{"port": 80}]}})  # fmt: skip
        else:
            docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": md, "data": {"v": version}})
    return yaml.safe_dump_all(docs)


def live_names(kube: Kube, namespace: str) -> set[str]:
    names = set()
    for kind in ("ConfigMap", "Service"):
        for obj in kube.list(kube.discovery.lookup("v1", kind), namespace, label_selector="slipway.dev/workflow=w"):
            names.add(obj["metadata"]["name"])
    return names


def rows(home: Path) -> dict[str, tuple[str, str | None]]:
    db = sqlite3.connect(home / "state.db")
    try:
        return {r[0]: (r[1], r[2]) for r in db.execute("SELECT id, status, end_time FROM syncs")}
    finally:
        db.close()


def test_r1_kill_anywhere_then_converge(cli: Cli, kube: Kube, namespace: str, tmp_path: Path, record: Any) -> None:
    n = size(60, 500)
    trials = size(4, 20)
    rng = random.Random(SEED)
    work = make_repo(tmp_path / "app", {"k8s/all.yaml": objects(n, namespace, "0")})
    assert cli("repo", "add", str(origin_of(work)), "--id", "r").returncode == 0
    assert cli("workflow", "create", "--id", "w", "--repository", "r", "--path", "k8s", "--namespace", namespace,
               "--prune", "--no-health").returncode == 0  # fmt: skip
    started = time.monotonic()
    assert cli("sync", "w", "--yes").returncode == 0
    full = time.monotonic() - started
    declared = {f"obj-{i:04d}" for i in range(n)}
    converged = 0
    kinds: list[str] = []
    for trial in range(trials):
        kind = ["create", "prune", "rollback", "update"][trial % 4]
        kinds.append(kind)
        if kind == "create":  # start from an empty namespace: every object new
            assert cli("workflow", "remove", "w", "--cascade", "--yes").returncode == 0
            assert cli("workflow", "create", "--id", "w", "--repository", "r", "--path", "k8s", "--namespace",
                       namespace, "--prune", "--no-health").returncode == 0  # fmt: skip
            args = ["sync", "w", "--yes"]
        elif kind == "prune":  # half of them leave Git
            keep = rng.sample(sorted(declared), len(declared) // 2) if len(declared) > n // 2 else sorted(declared)
            declared = set(keep) if len(declared) > n // 2 else {f"obj-{i:04d}" for i in range(n)}
            text = objects(n, namespace, str(trial))
            docs = [d for d in yaml.safe_load_all(text) if d["metadata"]["name"] in declared]
            commit(work, {"k8s/all.yaml": yaml.safe_dump_all(docs)})
            push(work)
            args = ["sync", "w", "--yes"]
        elif kind == "update":
            docs = [
                d for d in yaml.safe_load_all(objects(n, namespace, str(trial))) if d["metadata"]["name"] in declared
            ]
            commit(work, {"k8s/all.yaml": yaml.safe_dump_all(docs)})
            push(work)
            args = ["sync", "w", "--yes"]
        else:
            args = ["rollback", "w", "--reason", f"trial {trial}"]
        before = rows(cli.home)
        log = tmp_path / f"trial-{trial}.log"
        proc = cli.popen(*args, log=log)
        time.sleep(rng.uniform(0.3, max(0.5, full * 1.2)))  # from start-up to the last objects
        proc.kill()
        proc.wait()

        Store(home=cli.home).close()  # the next process to open the store notices the dead claim
        after = rows(cli.home)
        assert not [s for s, (status, _) in after.items() if status == "running"], after
        assert all(after[s][0] == before[s][0] or before[s][0] == "running" for s in before), "a row was lost"
        assert all(end is not None for _, end in after.values()), "a row was left half-written"
        r = cli("sync", "w", "--yes")
        assert r.returncode == 0, r.stdout + r.stderr
        history = json.loads(cli("-o", "json", "history", "w", "--limit", "1").stdout)
        expected = declared
        if live_names(kube, namespace) == expected and history[0]["status"] == "succeeded":
            converged += 1
        assert live_names(kube, namespace) == expected, f"trial {trial} ({kind}) did not converge"
    record("R1", f"kill -9 at random points of a {n}-object sync ({', '.join(sorted(set(kinds)))}), then the next sync",
           trials, converged, "make reliability  # tests/reliability/test_r1_crash.py", objects=n, seed=SEED)  # fmt: skip
