"""The objects the benchmarks apply, and the real Git repositories that hold them.

A workload is N objects spread evenly over four kinds — ConfigMap, Secret, Service and a
Deployment of one replica — grouped four to a file as one small "app" (``apps/app-0000.yaml``:
``app-0000-cm``, ``app-0000-secret``, ``app-0000-svc``, ``app-0000``). The manifests carry no
namespace: slipway defaults it from the workflow's destination, kubectl gets ``-n``, and the
bare loop puts it in the URL and the body. Repositories are made with the ``git`` command
(a work tree and a bare origin on disk), exactly as a user's would be.
"""

from __future__ import annotations

import base64
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

KINDS = ("ConfigMap", "Secret", "Service", "Deployment")
IMAGE = "registry.invalid/bench-app:1"

# Per-command settings so commits work whatever (or however little) git configuration exists.
_GIT_CONFIG = [
    "-c", "user.name=slipway bench",
    "-c", "user.email=bench@slipway.invalid",
    "-c", "commit.gpgsign=false",
    "-c", "core.hooksPath=/dev/null",
]  # fmt: skip


def configmap(name: str, rev: str = "1") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": name.rsplit("-", 1)[0]}},
        "data": {"rev": rev, "greeting": f"hello from {name}", "settings.ini": "[main]\nworkers = 4\nlog = info\n"},
    }


def secret(name: str, rev: str = "1") -> Obj:
    def b64(s: str) -> str:
        return base64.b64encode(s.encode()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {"app": name.rsplit("-", 1)[0]}},
        "type": "Opaque",
        "data": {"username": b64("bench"), "password": b64(f"not-a-secret-{name}-{rev}")},
    }


def service(name: str, app: str, port: int = 80) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": port, "targetPort": 8080}]},
    }


def deployment(name: str, image: str = IMAGE) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "ports": [{"containerPort": 8080}],
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                        }
                    ]
                },
            },
        },
    }


def app_objects(app: str, count: int = 4, rev: str = "1") -> list[Obj]:
    """The first ``count`` (1..4) objects of one app, one of each kind in KINDS order."""
    objs = [configmap(f"{app}-cm", rev), secret(f"{app}-secret", rev), service(f"{app}-svc", app), deployment(app)]
    return objs[:count]


def changed(obj: Obj, rev: str) -> Obj:
    """The same object with one meaningful change, as a commit would make it."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    if kind == "ConfigMap":
        return configmap(name, rev)
    if kind == "Secret":
        return secret(name, rev)
    if kind == "Service":
        out = service(name, obj["spec"]["selector"]["app"])
        out["metadata"].setdefault("annotations", {})["bench.slipway.dev/rev"] = rev
        return out
    return deployment(name, image=f"registry.invalid/bench-app:{rev}")


@dataclass
class Workload:
    """N objects as files: ``{relative path: [objects]}``."""

    files: dict[str, list[Obj]]

    @classmethod
    def mixed(cls, n: int, prefix: str = "apps", app: str = "app") -> Workload:
        """N objects, evenly over the four kinds, four to a file."""
        files: dict[str, list[Obj]] = {}
        apps, rest = divmod(n, 4)
        for i in range(apps + (1 if rest else 0)):
            name = f"{app}-{i:04d}"
            files[f"{prefix}/{name}.yaml"] = app_objects(name, 4 if i < apps else rest)
        return cls(files)

    @property
    def objects(self) -> list[Obj]:
        return [o for objs in self.files.values() for o in objs]

    def count(self) -> dict[str, int]:
        out = dict.fromkeys(KINDS, 0)
        for o in self.objects:
            out[o["kind"]] += 1
        return out

    def change(self, k: int, rev: str) -> list[str]:
        """Change ``k`` objects spread over the files and kinds; returns the paths touched."""
        paths = sorted(self.files)
        touched: list[str] = []
        if not paths:
            return touched
        step = max(1, len(paths) // max(1, k))
        for j in range(k):
            path = paths[(j * step) % len(paths)]
            objs = self.files[path]
            idx = j % len(objs)
            objs[idx] = changed(objs[idx], rev)
            touched.append(path)
        return touched

    def texts(self, paths: list[str] | None = None) -> dict[str, str]:
        return {p: dump(self.files[p]) for p in (paths if paths is not None else self.files)}


def dump(objs: list[Obj]) -> str:
    return yaml.safe_dump_all(objs, sort_keys=False)


# -- Git -------------------------------------------------------------------------------------------


def git(*args: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run(
        ["git", *map(str, args)],
        cwd=cwd,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(map(str, args))} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout.strip()


@dataclass
class GitRepo:
    """A work tree and its bare origin on disk; ``url`` is what slipway registers."""

    work: Path
    origin: Path

    @property
    def url(self) -> str:
        return str(self.origin)

    @classmethod
    def create(cls, path: Path, files: dict[str, str], branch: str = "main") -> GitRepo:
        origin = path.with_name(path.name + ".git")
        git("init", "--quiet", "--bare", f"--initial-branch={branch}", origin)
        git("init", "--quiet", f"--initial-branch={branch}", path)
        git("remote", "add", "origin", origin, cwd=path)
        repo = cls(path, origin)
        repo.commit(files, "initial")
        return repo

    def head(self) -> str:
        return git("rev-parse", "HEAD", cwd=self.work)

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        """Write ``files``, commit them and push to the origin; the new commit's SHA."""
        for rel, text in files.items():
            p = self.work / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        git("add", "-A", cwd=self.work)
        git(*_GIT_CONFIG, "commit", "--quiet", "--allow-empty", "-m", message, cwd=self.work)
        branch = git("symbolic-ref", "--short", "HEAD", cwd=self.work)
        git(*_GIT_CONFIG, "push", "--quiet", "--force", "origin", f"HEAD:refs/heads/{branch}", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)


__all__ = ["KINDS", "GitRepo", "Workload", "app_objects", "changed", "dump", "git"]
