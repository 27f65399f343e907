"""The demo: slipway end to end on the local cluster, through its command line.

Starts the local control plane, makes a Git repository with a small application, then shows what
a user does: diff, sync, status; a commit; diff and sync again; a rollback; history. Every step
is a real `slipway` command against a real API server. It ends with a token and the one command
that opens the web dashboard on the demo's workflow. Safe to run again: it starts from a fresh
state store, repository and namespace each time, and leaves the cluster running for you to look
around (`slipway cluster down` stops it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SLIPWAY = [sys.executable, "-m", "slipway"]
NAMESPACE = "slipway-demo"


def cache() -> Path:
    return Path(os.environ.get("SLIPWAY_CACHE") or "~/.cache/slipway").expanduser()


def banner(text: str) -> None:
    print(f"\n\033[1;36m== {text}\033[0m", flush=True)


def run(*args: str, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[bytes]:
    print(f"\033[2m$ slipway {' '.join(args)}\033[0m", flush=True)
    proc = subprocess.run([*SLIPWAY, *args], env=env, check=False)
    if proc.returncode not in ok:
        sys.exit(f"demo: `slipway {' '.join(args)}` exited with {proc.returncode}")
    return proc


def git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=slipway demo", "-c", "user.email=demo@slipway.invalid", "-c",
         "commit.gpgsign=false", *args],
        cwd=cwd, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def app(replicas: int, greeting: str) -> str:
    labels = {"app": "hello"}
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hello-config"}, "data": {"greeting": greeting}},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "hello"},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "hello"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "hello", "image": "registry.example/hello:1.0"}]},
                },
            },
        },
    ]
    return yaml.safe_dump_all(docs, sort_keys=False)


def main() -> None:
    demo = cache() / "demo"
    home, origin, work = demo / "home", demo / "hello.git", demo / "work"
    for path in (home, origin, work):
        shutil.rmtree(path, ignore_errors=True)
    home.mkdir(parents=True)

    banner("Start the local Kubernetes control plane (built once from source, cached)")
    up = subprocess.run([*SLIPWAY, "cluster", "up"], check=True, capture_output=True, text=True)
    kubeconfig = up.stdout.strip()
    print(f"kubeconfig: {kubeconfig}")
    env = {**os.environ, "SLIPWAY_HOME": str(home), "KUBECONFIG": kubeconfig}
    from slipway.cluster import build

    # A clean namespace, so the demo tells the same story every time.
    subprocess.run(
        [str(build.binary("kubectl")), "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true",
         "--timeout=120s"],
        env=env, check=False, stdout=subprocess.DEVNULL,
    )  # fmt: skip

    banner("A Git repository with an application: Namespace, ConfigMap, Service, Deployment")
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(origin)], check=True)
    subprocess.run(["git", "clone", "--quiet", str(origin), str(work)], check=True, stderr=subprocess.DEVNULL)
    (work / "deploy").mkdir()
    (work / "deploy" / "hello.yaml").write_text(app(2, "hello"))
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "hello v1", cwd=work)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    print(f"repository: {origin} (branch main, path deploy/)")

    banner("Register the repository and a workflow")
    run("repo", "add", str(origin), "--id", "hello-repo", env=env)
    run("workflow", "create", "--id", "hello", "--name", "Hello app", "--repository", "hello-repo",
        "--path", "deploy", "--namespace", NAMESPACE, "--prune", "--rollback-on-failure",
        "--health-timeout", "2m", env=env)  # fmt: skip

    banner("What would a sync change? (exit code 1: changes pending)")
    run("diff", "hello", env=env, ok=(1,))

    banner("Sync: server-side apply in order, then wait for the rollout to be healthy")
    run("sync", "hello", "--yes", env=env)
    run("workflow", "status", "hello", env=env)

    banner("A change in Git: three replicas and a new greeting")
    (work / "deploy" / "hello.yaml").write_text(app(3, "hello, world"))
    git("commit", "--quiet", "-am", "hello v2: scale out, new greeting", cwd=work)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    run("diff", "hello", env=env, ok=(1,))
    run("sync", "hello", "--yes", env=env)

    banner("Roll back to the previous successful sync")
    run("rollback", "hello", "--reason", "demo: the new greeting was premature", env=env)
    run("diff", "hello", env=env, ok=(1,))  # Git is ahead again: the rollback holds until a new commit

    banner("History and status")
    run("history", "hello", env=env)
    run("workflow", "status", "hello", env=env)

    banner("The dashboard")
    made = subprocess.run(
        [*SLIPWAY, "-o", "json", "token", "create", "demo", "--role", "operator"],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    token = json.loads(made.stdout)["token"]
    print(f"A token with the operator role, shown this once: {token}")
    print("Serve the dashboard (Ctrl-C stops it):")
    print(f"\n    KUBECONFIG={kubeconfig} SLIPWAY_HOME={home} .venv/bin/slipway server --listen 127.0.0.1:8420\n")
    print("then open http://127.0.0.1:8420/workflows/hello and log in with the token.")

    banner("Done")
    print(f"The cluster keeps running. Try: KUBECONFIG={kubeconfig} SLIPWAY_HOME={home} slipway workflow list")
    print("Stop it with: .venv/bin/slipway cluster down")


if __name__ == "__main__":
    main()
