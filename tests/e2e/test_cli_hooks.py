"""`slipway sync` through the real command, in every output format, on plans with resource hooks, sync
waves, prunes and conflicts — on a terminal and without one (CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest
import yaml

from slipway.kube import Kube
from tests.gitservers import commit, push

from .conftest import Cli
from .test_cli import cm, setup_workflow

pytestmark = pytest.mark.cluster

BROKEN = ("internal error", "Traceback", "KeyError")


def hooked(namespace: str, extra: tuple[dict[str, Any], ...] = (), *, old: bool = True, v: str = "1") -> str:
    """A PreSync Job, a Sync hook, a PostSync hook, objects in three waves, and one to prune later."""
    job = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "migrate", "namespace": namespace, "annotations": {"helm.sh/hook": "pre-install,pre-upgrade"}},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                                                          "containers": [{"name": "m", "image": "registry.invalid/m"}]}}},
    }  # fmt: skip
    smoke = cm("smoke", namespace, ok="yes")
    smoke["metadata"]["annotations"] = {"argocd.argoproj.io/hook": "PostSync"}
    during = cm("during", namespace, ok="yes")
    during["metadata"]["annotations"] = {"argocd.argoproj.io/hook": "Sync", "argocd.argoproj.io/sync-wave": "1"}
    objs = [smoke, job, during]
    for wave in (-1, 0, 1):
        obj = cm(f"w{wave}", namespace, v=v)
        obj["metadata"]["annotations"] = {"argocd.argoproj.io/sync-wave": str(wave)}
        objs.append(obj)
    if old:
        objs.append(cm("old", namespace, v="1"))
    return yaml.safe_dump_all([*objs, *extra])


def clean(r: subprocess.CompletedProcess[str]) -> None:
    for text in BROKEN:
        assert text not in r.stderr and text not in r.stdout, (r.stdout, r.stderr)


def on_terminal(cli: Cli, *args: str) -> tuple[int, str]:
    """Run the command with stdin, stdout and stderr on a pseudo-terminal, as a person runs it (who
    answers yes when asked)."""
    import pty
    import select

    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "slipway", *args], env={**cli.env, "NO_COLOR": "1"},
                            cwd=cli.cwd, stdin=secondary, stdout=secondary, stderr=secondary)  # fmt: skip
    os.close(secondary)
    seen, answered = b"", False
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the command ended and closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            if not answered and b"Apply these changes?" in seen:
                os.write(primary, b"y\n")
                answered = True
        if proc.poll() is not None and not ready:
            break
    os.close(primary)
    return proc.wait(30), seen.decode(errors="replace")


def test_sync_prints_hooks_waves_prunes_and_conflicts_in_every_format(cli: Cli, kube: Kube, namespace: str) -> None:
    work = setup_workflow(cli, namespace, {"k8s/a.yaml": hooked(namespace)}, "--prune")

    # Text, without a terminal (CI): the plan lists the hooks, progress names each phase's hooks.
    text = cli("sync", "app-wf", "--yes")
    clean(text)
    assert text.returncode == 0, (text.stdout, text.stderr)
    # The plan lists hooks by phase (PreSync, Sync, PostSync), whatever their waves and file order.
    listed = [text.stdout.index(f"  {h}") for h in ("PreSync wave 0: Job/migrate", "Sync wave 1: ConfigMap/during",
                                                    "PostSync wave 0: ConfigMap/smoke")]  # fmt: skip
    assert listed == sorted(listed), text.stdout
    assert "running PreSync hooks of wave 0: Job/migrate" in text.stderr, text.stderr
    assert "PreSync hook Job/migrate: Succeeded" in text.stderr, text.stderr
    for line in ("PreSync hook Job/migrate: ok", "Sync hook ConfigMap/during: ok", "PostSync hook ConfigMap/smoke: ok"):
        assert line in text.stdout, (line, text.stdout)

    # JSON: an update in a wave and a prune, with every hook's outcome in the record.
    commit(work, {"k8s/a.yaml": hooked(namespace, old=False, v="2")})
    push(work)
    as_json = cli("-o", "json", "sync", "app-wf", "--yes")
    clean(as_json)
    assert as_json.returncode == 0, as_json.stderr
    record = json.loads(as_json.stdout)
    assert record["status"] == "succeeded"
    assert {(c["type"], c["resource"]) for c in record["changes"]} >= {("delete", "ConfigMap/old"),
                                                                       ("update", "ConfigMap/w1")}  # fmt: skip
    assert [(h["phase"], h["resource"], h["status"]) for h in record["hooks"]] == [
        ("PreSync", "Job/migrate", "Succeeded"), ("Sync", "ConfigMap/during", "Succeeded"),
        ("PostSync", "ConfigMap/smoke", "Succeeded"),
    ]  # fmt: skip

    # YAML: the same record, readable by a YAML parser.
    commit(work, {"k8s/a.yaml": hooked(namespace, old=False, v="3")})
    push(work)
    as_yaml = cli("sync", "app-wf", "--yes", "-o", "yaml")
    clean(as_yaml)
    assert as_yaml.returncode == 0, as_yaml.stderr
    assert yaml.safe_load(as_yaml.stdout)["status"] == "succeeded"

    # On a terminal: the plan, a progress bar and the hooks' lines, then the result.
    commit(work, {"k8s/a.yaml": hooked(namespace, old=False, v="4")})
    push(work)
    code, seen = on_terminal(cli, "sync", "app-wf")  # asks, then applies the very plan it showed
    for broken in BROKEN:
        assert broken not in seen, seen
    assert code == 0, seen
    assert "Apply these changes?" in seen and "\r\x1b[K" in seen  # asked, then drew its status line
    assert "PreSync hook Job/migrate: ok" in seen and "succeeded" in seen

    # Conflicts: a hook named like an object made by hand refuses the sync, in every format.
    by_hand = cm("extra", namespace, mine="yes")
    info = kube.discovery.lookup("v1", "ConfigMap")
    made = kube.apply(info, by_hand, field_manager="kubectl")
    hook = cm("extra", namespace, from_git="yes")
    hook["metadata"]["annotations"] = {"argocd.argoproj.io/hook": "PreSync"}
    commit(work, {"k8s/a.yaml": hooked(namespace, (hook,), old=False, v="5")})
    push(work)
    refused = cli("sync", "app-wf", "--yes")
    clean(refused)
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert "CONFLICT resource_exists ConfigMap/extra" in refused.stdout
    assert "nothing was applied" in refused.stderr
    for fmt, load in (("json", json.loads), ("yaml", yaml.safe_load)):
        r = cli("sync", "app-wf", "--yes", "-o", fmt)
        clean(r)
        assert r.returncode == 2, r.stderr
        assert load(r.stdout)["status"] == "refused" and "refused" in load(r.stdout)["message"]
    code, seen = on_terminal(cli, "sync", "app-wf", "--yes")
    assert code == 2 and "CONFLICT resource_exists ConfigMap/extra" in seen, seen
    for broken in BROKEN:
        assert broken not in seen, seen
    diff = json.loads(cli("diff", "app-wf", "-o", "json").stdout)
    assert [(c["type"], c["resource"]) for c in diff["conflicts"]] == [("resource_exists", "ConfigMap/extra")]
    assert [(h["phases"], h["resource"]) for h in diff["hooks"]] == [
        (["PreSync"], "ConfigMap/extra"), (["PreSync"], "Job/migrate"), (["Sync"], "ConfigMap/during"),
        (["PostSync"], "ConfigMap/smoke"),
    ]  # fmt: skip
    assert kube.get(info, namespace, "extra") == made  # untouched by every attempt
