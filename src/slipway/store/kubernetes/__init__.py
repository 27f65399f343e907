"""The Kubernetes store: slipway's state in the cluster it deploys to, for replicas that share the work.

Everything the :class:`~slipway.store.protocol.StateStore` promises, kept as Kubernetes objects in
``SLIPWAY_NAMESPACE`` (default ``slipway-system``) through :class:`slipway.kube.Kube`, so a replica
needs no disk and survives losing its machine:

- :mod:`.config`: repositories and workflows as ``slipway.dev/v1alpha1`` custom resources (what
  ``kubectl apply`` writes too), credentials and notification URLs in Secrets, run state in each
  Workflow's status;
- :mod:`.claims`: the one-sync-per-workflow claim, a conditional write on that status, and
  :mod:`.liveness`: the Lease that proves its holder alive, judged by what this process saw;
- :mod:`.records`: each sync's record and objects in sealed Secrets, bounded by ``history_limit``;
- :mod:`.inventory`: what each workflow owns, in ConfigMaps its Workflow owns;
- :mod:`.executions`: the Lua ``ai`` module's task runs;
- :mod:`.tokens`: API tokens, a salted scrypt hash each (never the token), and an index of names;
- :mod:`.admin`: what only slipway's admin configures (shell hooks, a kubeconfig file), kept in
  a ConfigMap of its own and refused in a Workflow;
- :mod:`.replicas`: pushes for the controllers, the feed of syncs for every server, dashboard sessions;
- :mod:`.mapping` and :mod:`.crds`: the one table between model and resource, and the CRDs from it;
- :mod:`.install` and :mod:`.migrate`: ``slipway install`` and ``slipway migrate --to kubernetes``.

The instance id (a ConfigMap) and the encryption key (a Secret) are created once per namespace,
so every replica stamps the same id and opens what another sealed.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import ConfigError
from ...kube import Kube
from .base import unb64
from .claims import Claims
from .config import Config
from .executions import Executions
from .inventory import Inventory
from .names import CONFIGMAPS, SECRETS
from .records import Records
from .replicas import Replicas
from .tokens import Tokens

if TYPE_CHECKING:
    from ...shards import ShardElector


class KubernetesStore(Claims, Inventory, Records, Config, Executions, Tokens, Replicas):
    def __init__(self, kube: Kube | None = None, namespace: str | None = None) -> None:
        super().__init__(kube, namespace)
        self._kubeconfigs: dict[tuple[str, str], Path] = {}
        self._files_lock = threading.Lock()
        self._dir: Path | None = None
        self.recover_interrupted()

    def health_customizations(self) -> dict[str, dict[str, str]]:
        """The data of the ConfigMaps in slipway's namespace labelled ``slipway.dev/customizations``:
        Argo CD's ``argocd-cm`` health keys, read by :mod:`slipway.health.customizations`."""
        from ...settings import LABEL_CUSTOMIZATIONS

        found = self.kube.list(CONFIGMAPS, self.namespace, label_selector=LABEL_CUSTOMIZATIONS)
        return {f"{self.namespace}/{cm['metadata']['name']}": cm.get("data") or {} for cm in found}

    def kubeconfig_file(self, secret_name: str) -> Path:
        """The ``kubeconfig`` key of a Secret in slipway's namespace, as a private file (mode 0600) of
        this process; a new file when the Secret changes, so a new connection reads it."""
        secret = self.kube.get(SECRETS, self.namespace, secret_name)
        where = f"destination.kubeconfig_secret: Secret {secret_name} in namespace {self.namespace}"
        if secret is None:
            raise ConfigError(f"{where} does not exist")
        value = (secret.get("data") or {}).get("kubeconfig")
        if not value:
            raise ConfigError(f"{where} has no 'kubeconfig' key")
        key = (secret_name, str(secret["metadata"]["resourceVersion"]))
        with self._files_lock:
            path = self._kubeconfigs.get(key)
            if path is not None:
                return path
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix="slipway-kubeconfigs-"))
                atexit.register(shutil.rmtree, self._dir, True)
            path = self._dir / f"{secret_name}-{key[1]}.yaml"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(unb64(value))
            self._kubeconfigs[key] = path
            return path

    def elector(self, shards: int, identity: str | None = None) -> ShardElector:
        """A shard elector over this store's Leases, bound to its claims (see :mod:`slipway.shards`)."""
        from ...shards import ShardElector

        elector = ShardElector(self.kube, self.namespace, shards, identity)
        self.identity = elector.identity
        self.lease_for = elector.lease_for
        return elector


__all__ = ["KubernetesStore"]
