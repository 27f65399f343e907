"""Build the local control plane's binaries from the Go module proxy, once, cached by version.

Each component is a tiny wrapper Go module written under ``$SLIPWAY_CACHE/build/<name>-<version>``:
Kubernetes needs one because its own go.mod points the k8s.io staging modules at ``./staging``
(we replace each with its published ``v0.<minor>.<patch>``), etcd because its main module has
replace directives (we call ``etcdmain.Main`` from our own ``main``). kwok, kustomize and sops
install as they are. Binaries land in ``$SLIPWAY_CACHE/bin/<name>-<version>/`` and a ``.complete`` marker is
written last, so an interrupted build is never mistaken for a finished one.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .. import settings
from ..errors import BuildError
from ..tools import HELM_VERSION, KUBERNETES_VERSION, KUSTOMIZE_VERSION, SOPS_VERSION, built_dir

ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"

# The k8s.io modules k8s.io/kubernetes requires at v0.0.0 and points at ./staging.
_STAGING = [
    "api", "apiextensions-apiserver", "apimachinery", "apiserver", "cli-runtime", "client-go",
    "cloud-provider", "cluster-bootstrap", "code-generator", "component-base", "component-helpers",
    "controller-manager", "cri-api", "cri-client", "cri-streaming", "csi-translation-lib",
    "dynamic-resource-allocation", "endpointslice", "externaljwt", "kms", "kube-aggregator",
    "kube-controller-manager", "kube-proxy", "kube-scheduler", "kubectl", "kubelet", "metrics",
    "mount-utils", "pod-security-admission", "sample-apiserver", "streaming",
]  # fmt: skip

KUBE_BINARIES = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"]


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    binaries: list[str]
    files: Callable[[str], dict[str, str]] = field(repr=False)
    commands: Callable[[str, Path], list[list[str]]] = field(repr=False)
    # Runs after the binaries are built, with the staging dir and the build environment.
    post: Callable[[str, Path, dict[str, str]], None] | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"


def _kube_files(version: str) -> dict[str, str]:
    staging_version = "v0." + version.split(".", 1)[1]
    replaces = "\n".join(f"\tk8s.io/{m} => k8s.io/{m} {staging_version}" for m in _STAGING)
    imports = "\n".join(f'\t_ "k8s.io/kubernetes/cmd/{b}"' for b in KUBE_BINARIES)
    return {
        "go.mod": (
            "module slipway.dev/build/kubernetes\n\ngo 1.26.0\n\n"
            f"require k8s.io/kubernetes {version}\n\nreplace (\n{replaces}\n)\n"
        ),
        # Build-tagged away: only here so `go mod tidy` records every package the binaries need.
        "tools.go": f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n",
    }


def _kube_commands(version: str, out: Path) -> list[list[str]]:
    major, minor = version.lstrip("v").split(".")[:2]
    pkg = "k8s.io/component-base/version"
    ldflags = (
        f"-s -w -X {pkg}.gitVersion={version} -X {pkg}.gitMajor={major} -X {pkg}.gitMinor={minor} "
        f"-X {pkg}.gitTreeState=clean -X {pkg}.buildDate=1970-01-01T00:00:00Z"
    )
    targets = [f"k8s.io/kubernetes/cmd/{b}" for b in KUBE_BINARIES]
    return [
        ["go", "mod", "tidy"],
        ["go", "build", "-trimpath", f"-ldflags={ldflags}", "-o", str(out) + "/", *targets],
    ]


def _etcd_files(version: str) -> dict[str, str]:
    return {
        "go.mod": f"module slipway.dev/build/etcd\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 {version}\n",
        "main.go": (
            'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\n'
            "func main() { etcdmain.Main(os.Args) }\n"
        ),
    }


def _etcd_commands(version: str, out: Path) -> list[list[str]]:
    return [
        ["go", "mod", "tidy"],
        ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(out / "etcd"), "."],
    ]


def _install(pkg: str) -> Callable[[str, Path], list[list[str]]]:
    def commands(version: str, out: Path) -> list[list[str]]:
        return [["go", "install", "-trimpath", "-ldflags=-s -w", f"{pkg}@{version}"]]

    return commands


def _helm_commands(version: str, out: Path) -> list[list[str]]:
    # Helm reports (and templates see, as .Capabilities.HelmVersion) the version stamped here.
    major = version.split(".", 1)[0]
    ldflags = f"-s -w -X helm.sh/helm/{major}/internal/version.version={version}"
    return [["go", "install", "-trimpath", f"-ldflags={ldflags}", f"helm.sh/helm/{major}/cmd/helm@{version}"]]


KWOK_STAGES = [
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
]


def _kwok_stages(version: str, out: Path, env: dict[str, str]) -> None:
    """kwok simulates nothing without stages: keep its own fast node and pod stages beside the binary."""
    modcache = subprocess.run(
        ["go", "env", "GOMODCACHE"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    source = Path(modcache) / f"sigs.k8s.io/kwok@{version}" / "kustomize" / "stage"
    (out / "stages").mkdir()
    for rel in KWOK_STAGES:
        shutil.copyfile(source / rel, out / "stages" / Path(rel).name)


COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in [
        Component("kubernetes", KUBERNETES_VERSION, KUBE_BINARIES, _kube_files, _kube_commands),
        Component("etcd", ETCD_VERSION, ["etcd"], _etcd_files, _etcd_commands),
        Component("kwok", KWOK_VERSION, ["kwok"], lambda v: {}, _install("sigs.k8s.io/kwok/cmd/kwok"), _kwok_stages),
        Component("helm", HELM_VERSION, ["helm"], lambda v: {}, _helm_commands),
        Component(
            "kustomize",
            KUSTOMIZE_VERSION,
            ["kustomize"],
            lambda v: {},
            _install("sigs.k8s.io/kustomize/kustomize/v5"),
        ),
        # Decrypts SOPS files at render time, and makes the encrypted files the tests read.
        Component("sops", SOPS_VERSION, ["sops"], lambda v: {}, _install("github.com/getsops/sops/v3/cmd/sops")),
    ]
}


def bin_dir(component: Component) -> Path:
    return built_dir(component.name, component.version)


def is_built(component: Component) -> bool:
    return (bin_dir(component) / ".complete").exists()


def binary(name: str) -> Path:
    """Path of a built binary by its name (``kube-apiserver``, ``etcd``, ``kustomize``...)."""
    for component in COMPONENTS.values():
        if name in component.binaries:
            return bin_dir(component) / name
    raise KeyError(name)


def build(component: Component, log: Callable[[str], None] = lambda _: None) -> float:
    """Build one component unless the cache holds it; returns the seconds spent (0 when cached).

    Two builds of one component at once (two checkouts running their setup) take turns on a lock
    file: the second finds the first one's result instead of clobbering its staging directory.
    """
    if is_built(component):
        return 0.0
    lock_path = settings.cache() / "build" / f"{component.key}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        if not _try_lock(lock):
            log(f"waiting for another build of {component.name} {component.version} to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if is_built(component):
            return 0.0
        return _build_locked(component, log)


def _try_lock(lock: IO[str]) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _build_locked(component: Component, log: Callable[[str], None]) -> float:
    go = shutil.which("go")
    work = settings.cache() / "build" / component.key
    work.mkdir(parents=True, exist_ok=True)
    logfile = work / "build.log"
    if go is None:
        raise BuildError(
            f"cannot build {component.name} {component.version}: the Go toolchain (go) is not on PATH",
            hint=f"install Go >= 1.26, then run again; log: {logfile}",
        )
    staging = bin_dir(component).with_name(component.key + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, text in component.files(component.version).items():
        (work / name).write_text(text)
    env = dict(os.environ, GOTOOLCHAIN="local", CGO_ENABLED="0", GOBIN=str(staging), GOFLAGS="-buildvcs=false")
    log(f"building {component.name} {component.version} (log: {logfile})")
    started = time.monotonic()
    with logfile.open("w") as out:
        for argv in component.commands(component.version, staging):
            out.write(f"$ {' '.join(argv)}\n")
            out.flush()
            rc = subprocess.call(argv, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
            if rc != 0:
                raise BuildError(f"building {component.name} {component.version} failed; see {logfile}")
    for name in component.binaries:
        if not (staging / name).is_file():
            raise BuildError(f"building {component.name} produced no {name}; see {logfile}")
    if component.post is not None:
        try:
            component.post(component.version, staging, env)
        except (OSError, subprocess.CalledProcessError) as e:
            raise BuildError(f"building {component.name} {component.version} failed: {e}; see {logfile}") from None
    (staging / ".complete").write_text(component.version + "\n")
    target = bin_dir(component)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return time.monotonic() - started


def build_all(log: Callable[[str], None] = lambda _: None) -> dict[str, float]:
    return {name: build(c, log) for name, c in COMPONENTS.items()}
