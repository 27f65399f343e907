"""What an admin gave one object is never another's: credentials, grants and kubeconfig Secrets.

Whoever may write Repositories or Workflows in slipway's namespace (``kubectl``, or Git through an
app of apps) but not its Secrets or ConfigMaps tries to borrow what the admin gave someone else:
another repository's sealed token, sent to a URL of theirs (a real HTTP server on 127.0.0.1 that
asks for credentials and records what it gets); the shell hooks and kubeconfig file the admin
granted a workflow id, by deleting and declaring that Workflow again or by retargeting it; and a
kubeconfig Secret of the admin's. Each is refused with a clear Ready=False condition, and nothing
borrowed is ever used; what the admin binds explicitly still works.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from slipway.engine import Engine
from slipway.errors import ConfigError
from slipway.kube import Kube
from tests.kubestore import kubectl

from .test_replicas import kengine

pytestmark = pytest.mark.cluster
__all__ = ["kengine"]

TOKEN = "ghp_bindingtest1234567890abcdef"


class Capture:
    """An HTTP server that answers 401 asking for Basic credentials, and keeps every Authorization it got."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.headers.get("Authorization") or "")
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def leaked(self) -> bool:
        basic = [base64.b64decode(a.split(" ", 1)[1]).decode(errors="replace") for a in self.seen if " " in a]
        return any(TOKEN in a for a in self.seen + basic)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def condition(kube: Kube, namespace: str, kind: str, name: str) -> dict[str, Any]:
    obj = kube.get(kube.discovery.lookup("slipway.dev/v1alpha1", kind), namespace, name) or {}
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}.get("Ready") or {}


def apply(cluster: Any, namespace: str, text: str) -> None:
    kubectl(cluster.kubeconfig, "-n", namespace, "apply", "-f", "-", stdin=text)


def patch(cluster: Any, namespace: str, what: str, name: str, body: dict[str, Any]) -> None:
    kubectl(cluster.kubeconfig, "-n", namespace, "patch", what, name, "--type", "merge", "-p", json.dumps(body))


def test_a_repository_cannot_send_another_repositorys_credentials_anywhere(
    kengine: Engine, kube: Kube, cluster: Any, slipway_namespace: str
) -> None:
    capture = Capture()
    try:
        kengine.register_repository(
            {"id": "private", "url": "https://git.invalid/org/private.git",
             "credentials": {"type": "token", "token": TOKEN}}
        )  # fmt: skip
        # Someone who may write Repositories but not Secrets names the admin's sealed Secret for their URL.
        apply(cluster, slipway_namespace, f"""
apiVersion: slipway.dev/v1alpha1
kind: Repository
metadata: {{name: evil, namespace: {slipway_namespace}}}
spec:
  url: {capture.url}/evil.git
  credentials: {{type: token, secretRef: {{name: slipway-creds-private}}}}
""")  # fmt: skip
        error = ""
        try:
            kengine.source.fetch(kengine.store.get_repository("evil"))
        except Exception as e:  # refused (the fix), or the fetch failed after sending what it had
            error = str(e)
        assert not capture.leaked(), "another repository's token was sent to the borrower's URL"
        assert "credentials Secret slipway-creds-private is not this repository's" in error
        assert "evil" not in [r.id for r in kengine.repositories()]
        cond = condition(kube, slipway_namespace, "Repository", "evil")
        assert cond["status"] == "False" and cond["reason"] == "CredentialsRefused"
        assert "slipway-creds-private" in cond["message"] and TOKEN not in cond["message"]

        # The owner's own Repository moved by a non-admin to another host: its sealed token stays home.
        patch(
            cluster, slipway_namespace, "repositories.slipway.dev", "private", {"spec": {"url": f"{capture.url}/p.git"}}
        )
        with pytest.raises(ConfigError, match=r"registered for host 'git.invalid', not '127.0.0.1:\d+'"):
            kengine.source.fetch(kengine.store.get_repository("private"))
        assert not capture.leaked()
        # The admin moving it through slipway (credentials given again) is fine.
        kengine.register_repository(
            {"id": "private", "url": "https://git2.invalid/org/private.git",
             "credentials": {"type": "token", "token": TOKEN}}
        )  # fmt: skip
        assert kengine.store.get_repository("private").credentials is not None

        # A Secret the admin bound to a repository id explicitly may be shared by it.
        apply(cluster, slipway_namespace, f"""
apiVersion: v1
kind: Secret
metadata:
  name: team-creds
  namespace: {slipway_namespace}
  annotations: {{slipway.dev/repositories: "shared-a, shared-b"}}
stringData: {{token: {TOKEN}}}
---
apiVersion: slipway.dev/v1alpha1
kind: Repository
metadata: {{name: shared-b, namespace: {slipway_namespace}}}
spec: {{url: "https://git.invalid/b.git", credentials: {{type: token, secretRef: {{name: team-creds}}}}}}
""")  # fmt: skip
        shared = kengine.store.get_repository("shared-b").credentials
        assert shared is not None and shared.to_dict().get("token") == TOKEN
    finally:
        capture.close()


def test_the_admins_grant_stays_with_the_workflow_it_was_given_to(
    kengine: Engine, kube: Kube, cluster: Any, slipway_namespace: str
) -> None:
    kengine.register_repository({"id": "good", "url": "https://git.invalid/org/good.git"})
    kengine.register_repository({"id": "tenant", "url": "https://git.invalid/org/tenant.git"})
    granted = {"id": "web", "repository": "good", "target_path": "k8s",
               "destination": {"namespace": "web", "kubeconfig": "/etc/slipway/prod.kubeconfig"},
               "sync_policy": {"pre_sync_hooks": ["echo admin-hook"]}}  # fmt: skip
    kengine.create_workflow(granted)
    wf = kengine.store.get_workflow("web")
    assert wf.sync_policy.pre_sync_hooks == ["echo admin-hook"] and wf.destination.kubeconfig

    # Retargeted by whoever may edit Workflows: the grant does not follow, the workflow waits.
    patch(cluster, slipway_namespace, "workflows.slipway.dev", "web", {"spec": {"targetPath": "evil"}})
    with pytest.raises(ConfigError, match=r"spec.targetPath changed since slipway's admin granted"):
        kengine.store.get_workflow("web")
    assert "web" not in [w.id for w in kengine.workflows()]
    cond = condition(kube, slipway_namespace, "Workflow", "web")
    assert cond["status"] == "False" and cond["reason"] == "AdminOnly" and "targetPath" in cond["message"]
    patch(cluster, slipway_namespace, "workflows.slipway.dev", "web", {"spec": {"targetPath": "k8s"}})
    assert kengine.store.get_workflow("web").sync_policy.pre_sync_hooks == ["echo admin-hook"]

    # Its repository pointed elsewhere behind the admin's back: refused; moved by the admin: followed.
    patch(
        cluster, slipway_namespace, "repositories.slipway.dev", "good", {"spec": {"url": "https://evil.invalid/x.git"}}
    )
    with pytest.raises(ConfigError, match=r"the repository's URL changed"):
        kengine.store.get_workflow("web")
    kengine.register_repository({"id": "good", "url": "https://git.invalid/org/good.git"})  # the admin's URL again
    kengine.register_repository({"id": "good", "url": "https://git.invalid/org/moved.git"})
    assert kengine.store.get_workflow("web").destination.kubeconfig == "/etc/slipway/prod.kubeconfig"

    # Deleted behind slipway's back and declared again under the same id: not the granted Workflow.
    kubectl(cluster.kubeconfig, "-n", slipway_namespace, "delete", "workflows.slipway.dev", "web")
    apply(cluster, slipway_namespace, f"""
apiVersion: slipway.dev/v1alpha1
kind: Workflow
metadata: {{name: web, namespace: {slipway_namespace}}}
spec: {{repository: tenant, targetPath: evil, destination: {{namespace: web}}}}
""")  # fmt: skip
    with pytest.raises(ConfigError, match=r"the grant was given to another Workflow of that id"):
        kengine.store.get_workflow("web")
    assert "web" not in [w.id for w in kengine.workflows()]
    assert condition(kube, slipway_namespace, "Workflow", "web")["reason"] == "AdminOnly"
    # The admin declaring it through slipway grants it again.
    kengine.create_workflow(granted)
    assert kengine.store.get_workflow("web").sync_policy.pre_sync_hooks == ["echo admin-hook"]

    # A grant the admin wrote by hand is bound to the Workflow it first meets, and stays with it.
    patch(cluster, slipway_namespace, "configmap", "slipway-admin",
          {"data": {"workflow.hand": "postSyncHooks: ['echo by-hand']\n"}})  # fmt: skip
    declared = f"""
apiVersion: slipway.dev/v1alpha1
kind: Workflow
metadata: {{name: hand, namespace: {slipway_namespace}}}
spec: {{repository: good, targetPath: k8s, destination: {{namespace: web}}}}
"""
    apply(cluster, slipway_namespace, declared)
    assert kengine.store.get_workflow("hand").sync_policy.post_sync_hooks == ["echo by-hand"]
    kubectl(cluster.kubeconfig, "-n", slipway_namespace, "delete", "workflows.slipway.dev", "hand")
    apply(cluster, slipway_namespace, declared)
    with pytest.raises(ConfigError, match=r"the grant was given to another Workflow of that id"):
        kengine.store.get_workflow("hand")


def test_a_workflow_names_a_kubeconfig_secret_only_when_the_admin_granted_it(
    kengine: Engine, kube: Kube, cluster: Any, slipway_namespace: str
) -> None:
    kengine.register_repository({"id": "tenant", "url": "https://git.invalid/org/tenant.git"})
    text = cluster.kubeconfig.read_text()  # the admin's "prod" credentials
    apply(cluster, slipway_namespace, f"""
apiVersion: v1
kind: Secret
metadata: {{name: prod-kubeconfig, namespace: {slipway_namespace}}}
data: {{kubeconfig: {base64.b64encode(text.encode()).decode()}}}
---
apiVersion: slipway.dev/v1alpha1
kind: Workflow
metadata: {{name: tenant-app, namespace: {slipway_namespace}}}
spec: {{repository: tenant, targetPath: evil, destination: {{namespace: kube-system, kubeconfigSecret: prod-kubeconfig}}}}
""")  # fmt: skip
    with pytest.raises(ConfigError, match=r"spec.destination.kubeconfigSecret: Secret prod-kubeconfig lends"):
        kengine.kube_for(kengine.store.get_workflow("tenant-app"))
    assert "tenant-app" not in [w.id for w in kengine.workflows()]
    cond = condition(kube, slipway_namespace, "Workflow", "tenant-app")
    assert cond["reason"] == "AdminOnly" and "prod-kubeconfig" in cond["message"]

    # The admin's own workflow may use it; a tenant switching that workflow to it later may not.
    kengine.create_workflow({"id": "prod", "repository": "tenant", "target_path": "k8s",
                             "destination": {"namespace": "web", "kubeconfig_secret": "prod-kubeconfig"}})  # fmt: skip
    assert kengine.store.get_workflow("prod").destination.kubeconfig_secret == "prod-kubeconfig"
    kengine.create_workflow({"id": "plain", "repository": "tenant", "target_path": "k8s",
                             "destination": {"namespace": "web"}})  # fmt: skip
    patch(cluster, slipway_namespace, "workflows.slipway.dev", "plain",
          {"spec": {"destination": {"kubeconfigSecret": "prod-kubeconfig"}}})  # fmt: skip
    with pytest.raises(ConfigError, match=r"kubeconfigSecret: Secret prod-kubeconfig lends"):
        kengine.store.get_workflow("plain")
