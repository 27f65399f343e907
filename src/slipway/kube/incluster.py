"""Running inside a pod: the service account's token, CA and namespace, as the kubelet lays them out.

A pod gets ``KUBERNETES_SERVICE_HOST`` and ``KUBERNETES_SERVICE_PORT`` in its environment and
``token``, ``ca.crt`` and ``namespace`` under ``/var/run/secrets/kubernetes.io/serviceaccount``
(``SLIPWAY_SERVICEACCOUNT_DIR`` points elsewhere). slipway turns them into a kubeconfig of its own
that names those files rather than copying them: the token is a file the kubelet rotates
(bound tokens live about an hour), and :mod:`.kubeconfig` reads a ``tokenFile`` again when the server
answers 401, as client-go does. The kubeconfig holds paths only, never the token itself, so hooks
and every other part of slipway that takes a kubeconfig work in a pod unchanged.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

import yaml

from ..errors import ConfigError

DEFAULT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")

_lock = threading.Lock()
_written: dict[tuple[str, str, str], Path] = {}


def service_account_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("SLIPWAY_SERVICEACCOUNT_DIR") or DEFAULT_DIR)


def available(env: Mapping[str, str] | None = None) -> bool:
    """True in a pod: the API server's address is in the environment and the token is mounted."""
    env = os.environ if env is None else env
    return bool(env.get("KUBERNETES_SERVICE_HOST") and env.get("KUBERNETES_SERVICE_PORT")) and (
        (service_account_dir(env) / "token").is_file()
    )


def namespace(env: Mapping[str, str] | None = None) -> str | None:
    """The pod's namespace, when slipway runs in one."""
    path = service_account_dir(env) / "namespace"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def kubeconfig(env: Mapping[str, str] | None = None) -> Path:
    """A kubeconfig (paths only) for the in-cluster service account; written once per process."""
    env = os.environ if env is None else env
    sa = service_account_dir(env).resolve()
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ConfigError("in-cluster configuration: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set")
    for name in ("token", "ca.crt"):
        if not (sa / name).is_file():
            raise ConfigError(f"in-cluster configuration: {sa / name} is missing (no service account token mounted?)")
    if ":" in host:
        host = f"[{host}]"  # IPv6
    key = (str(sa), host, port)
    with _lock:
        path = _written.get(key)
        if path is not None and path.exists():
            return path
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "in-cluster", "cluster": {"server": f"https://{host}:{port}",
                                                            "certificate-authority": str(sa / "ca.crt")}}],
            "users": [{"name": "service-account", "user": {"tokenFile": str(sa / "token")}}],
            "contexts": [{"name": "in-cluster", "context": {"cluster": "in-cluster", "user": "service-account",
                                                            "namespace": namespace(env) or "default"}}],
            "current-context": "in-cluster",
        }  # fmt: skip
        directory = Path(tempfile.mkdtemp(prefix="slipway-incluster-"))
        atexit.register(shutil.rmtree, directory, True)
        path = directory / "kubeconfig"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            yaml.safe_dump(doc, out, sort_keys=False)
        _written[key] = path
        return path
