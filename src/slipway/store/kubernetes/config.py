"""Repositories and workflows as custom resources, their credentials as Secrets, run state in status.

A Repository or Workflow written here or with ``kubectl apply`` (or synced from Git by another
workflow) is the same thing: the store reads the cluster every time, so whatever is declared is
what runs. A spec the schema let through but the model refuses is never fatal: that workflow is
left out of :meth:`list_workflows` and its status says why (condition Ready=False), and asking for
it by id is a clear error naming the object. Credentials live only in Secrets, their values
sealed with the store's key when slipway writes them (a Secret written by hand, with plain values,
works too). Shell hooks and a kubeconfig file are never in a spec: they are the admin's, in the
ConfigMap ``slipway-admin`` (:mod:`.admin`), and a Workflow that carries them is refused.

Whoever may write a Repository may not thereby borrow another's credentials: a Repository uses
only slipway's own credentials Secret for its id, or a Secret the admin bound to it (annotation
``slipway.dev/repositories``, a comma-separated list of ids, as Argo CD's repo-creds are the
admin's); and credentials slipway sealed are sent only to the host they were registered for.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from typing import Any
from urllib.parse import urlsplit

from ...errors import ConfigError, KubeNotFound, NotFoundError, SyncInProgress
from ...kube import Obj
from ...kube.client import KubeAlreadyExists, KubeConflict
from ...kube.objects import conditions as conditions_of
from ...model import Repository, Workflow
from . import admin, mapping, names
from .base import ATTEMPTS, Base, b64, merge_conditions, object_id, unb64
from .names import CONFIGMAPS, REPOSITORIES, SECRETS, WORKFLOWS

SEALED = "slipway.dev/sealed"
ALLOWED = "slipway.dev/repositories"  # on a Secret an admin wrote: the repository ids that may use it
HOST = "slipway.dev/host"  # on sealed credentials: the host they were registered for


class CredentialsRefused(ConfigError):
    """A Repository names credentials it may not use."""


def url_host(url: str) -> str:
    """The host (and port) a Git or chart URL sends credentials to; '' for a local path."""
    if "://" in url:
        parts = urlsplit(url)
        return (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    scp = re.match(r"^(?:[^@/]+@)?([^:/]+):", url)  # git@host:org/repo.git
    return scp.group(1).lower() if scp else ""


class Config(Base):
    # -- repositories ------------------------------------------------------------------------------

    def put_repository(self, repo: Repository) -> None:
        name = names.kname(repo.id)
        old = self.kube.get(REPOSITORIES, self.namespace, name)
        old_url = (old.get("spec") or {}).get("url") if old is not None and object_id(old) == repo.id else None
        spec = mapping.repository_spec({k: v for k, v in repo.__dict__.items() if k != "credentials"})
        annotations: dict[str, str] = {}
        if repo.credentials is not None:
            secret = names.credentials_name(repo.id)
            labels = {names.LABEL_RECORD: "credentials", names.LABEL_REPOSITORY: repo.id}
            data = mapping.credentials_data(repo.credentials.to_dict())
            written = self._put_sealed(secret, labels, data, f"repository {repo.id}", {HOST: url_host(repo.url)})
            spec["credentials"] = {"type": repo.credentials.type, "secretRef": {"name": secret}}
            # Not generation: a new password alone must still tell the controller to read again.
            annotations[names.ANNOTATION_CREDENTIALS] = str(written["metadata"]["resourceVersion"])
        self._put_object(REPOSITORIES, "Repository", repo.id, name, spec, annotations)
        if repo.credentials is None:
            self.kube.delete(SECRETS, self.namespace, names.credentials_name(repo.id))
        if old_url and old_url != repo.url:
            self._rebind_url(repo.id, old_url, repo.url)

    def _put_sealed(
        self, name: str, labels: dict[str, str], data: dict[str, str], what: str, notes: dict[str, str] | None = None
    ) -> Obj:
        """A Secret of slipway's whose values are sealed with the store's key (credentials, a notification URL)."""
        obj: Obj = {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": self.namespace, "annotations": {SEALED: "true", **(notes or {})},
                         "labels": names.managed(**labels)},
            "data": {k: b64(self._fernet.encrypt(v.encode())) for k, v in data.items()},
        }  # fmt: skip
        for _ in range(ATTEMPTS):
            live = self.kube.get(SECRETS, self.namespace, name)
            if live is None:
                return self._create_or_replace(SECRETS, obj)
            obj["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
            try:
                return self.kube.replace(SECRETS, obj)
            except KubeConflict:
                continue
        raise ConfigError(f"{what}: its Secret {name} kept changing")

    def _create_or_replace(self, info: Any, obj: Obj) -> Obj:
        try:
            return self.kube.create(info, obj)
        except KubeAlreadyExists:
            live = self.kube.get(info, self.namespace, obj["metadata"]["name"])
            obj["metadata"]["resourceVersion"] = (live or {}).get("metadata", {}).get("resourceVersion")
            return self.kube.replace(info, obj)

    def _put_object(
        self, info: Any, kind: str, object_id_: str, name: str, spec: dict[str, Any], annotations: dict[str, str]
    ) -> Obj:
        """Create the object, or replace its spec whole (another's labels and annotations stay)."""
        for _ in range(ATTEMPTS):
            live = self.kube.get(info, self.namespace, name)
            if live is not None and object_id(live) != object_id_:
                raise ConfigError(f"{kind.lower()} {object_id_}: {kind} {name} in namespace {self.namespace} "
                                  f"already stands for {object_id(live)!r}")  # fmt: skip
            if live is None:
                obj = {
                    "apiVersion": names.API_VERSION, "kind": kind,
                    "metadata": {"name": name, "namespace": self.namespace, "annotations": annotations,
                                 "labels": names.managed(**{names.LABEL_ID: object_id_})},
                    "spec": spec,
                }  # fmt: skip
                try:
                    return self.kube.create(info, obj)
                except KubeAlreadyExists:
                    continue  # someone created it first: replace it then
            live["spec"] = spec
            live["metadata"]["annotations"] = {**(live["metadata"].get("annotations") or {}), **annotations}
            live.pop("status", None)
            try:
                return self.kube.replace(info, live)
            except KubeConflict:
                continue
        raise ConfigError(f"{kind.lower()} {object_id_}: {kind} {name} kept changing while it was written")

    def _repository_of(self, obj: Obj, secrets: dict[str, Obj] | None = None) -> Repository:
        rid = object_id(obj)
        spec = obj.get("spec") or {}
        where = f"repository {rid} (Repository {obj['metadata']['name']} in namespace {self.namespace})"
        config = mapping.repository_config(rid, spec)
        creds = spec.get("credentials")
        if isinstance(creds, dict):
            secret_name = str((creds.get("secretRef") or {}).get("name") or "")
            secret = (secrets or {}).get(secret_name) or self.kube.get(SECRETS, self.namespace, secret_name)
            if secret is None:
                raise ConfigError(f"{where}: its credentials Secret {secret_name!r} does not exist")
            self._may_use(rid, str(spec.get("url") or ""), secret, where)
            config["credentials"] = self._credentials(secret, f"{where}: Secret {secret_name}")
            if creds.get("type"):
                config["credentials"]["type"] = creds["type"]
        try:
            return Repository.from_config(config)
        except ConfigError as e:
            raise ConfigError(f"{where}: {mapping.explain(e, mapping.REPOSITORY)}") from None

    def _may_use(self, rid: str, url: str, secret: Obj, where: str) -> None:
        """Refuse credentials that are another repository's, or that were registered for another host."""
        name = secret["metadata"]["name"]
        notes = secret["metadata"].get("annotations") or {}
        allowed = {x.strip() for x in str(notes.get(ALLOWED) or "").split(",")}
        if name != names.credentials_name(rid) and rid not in allowed:
            raise CredentialsRefused(
                f"{where}: credentials Secret {name} is not this repository's: a Repository uses only "
                f"{names.credentials_name(rid)} or a Secret slipway's admin annotated {ALLOWED} with {rid!r}"
            )
        if HOST in notes and notes[HOST] != url_host(url):
            raise CredentialsRefused(
                f"{where}: credentials Secret {name} was registered for host {notes[HOST] or '(local)'!r}, not "
                f"{url_host(url) or '(local)'!r}; register the repository again with its credentials to move them"
            )

    def _rebind_url(self, repo_id: str, old_url: str, new_url: str) -> None:
        """The admin moved a repository: grants bound to it (at its old URL) follow it."""
        for _ in range(ATTEMPTS):
            live = self._grants()
            data = dict((live or {}).get("data") or {})
            changed = False
            for k in [k for k in data if k.startswith(admin.KEY_PREFIX)]:
                doc = admin.document(live, k[len(admin.KEY_PREFIX) :])
                bound = (doc or {}).get(admin.BOUND)
                if (
                    doc
                    and isinstance(bound, dict)
                    and bound.get("repository") == repo_id
                    and bound.get("url") == old_url
                ):
                    data[k] = admin.grant_text({**doc, admin.BOUND: {**bound, "url": new_url}})
                    changed = True
            if live is None or not changed:
                return
            live["data"] = data
            with contextlib.suppress(KubeConflict):
                self.kube.replace(CONFIGMAPS, live)
                return
        raise ConfigError(f"repository {repo_id}: ConfigMap {admin.CONFIGMAP} kept changing while it was written")

    def _credentials(self, secret: Obj, where: str) -> dict[str, Any]:
        return mapping.credentials_config(self._secret_data(secret, where), where)

    def _secret_data(self, secret: Obj, where: str) -> dict[str, str]:
        """A Secret's values: opened with the store's key when slipway sealed them, as they are when
        a person wrote them."""
        sealed = (secret["metadata"].get("annotations") or {}).get(SEALED) == "true"
        data: dict[str, str] = {}
        for key, value in (secret.get("data") or {}).items():
            raw = unb64(value)
            if sealed:
                from cryptography.fernet import InvalidToken

                try:
                    raw = self._fernet.decrypt(raw)
                except InvalidToken:
                    raise ConfigError(f"{where}: cannot be decrypted with this store's key; register it "
                                      "again") from None  # fmt: skip
            data[key] = raw.decode()
        for key, value in (secret.get("stringData") or {}).items():
            data[key] = str(value)
        return data

    def get_repository(self, repo_id: str) -> Repository:
        obj = self.kube.get(REPOSITORIES, self.namespace, names.kname(repo_id))
        if obj is None or object_id(obj) != repo_id:
            raise NotFoundError(f"repository {repo_id!r} is not registered")
        return self._repository_of(obj)

    def list_repositories(self) -> list[Repository]:
        objs = _ordered(self.kube.list(REPOSITORIES, self.namespace))
        sealed = {s["metadata"]["name"]: s for s in self.kube.list(
            SECRETS, self.namespace, label_selector=names.selector(**{names.LABEL_RECORD: "credentials"}))}  # fmt: skip
        out = []
        for obj in objs:
            try:
                out.append(self._repository_of(obj, sealed))
            except ConfigError as e:
                self._report(
                    REPOSITORIES, obj, str(e), type(e).__name__ if isinstance(e, CredentialsRefused) else "InvalidSpec"
                )
        return out

    def delete_repository(self, repo_id: str) -> None:
        users = [object_id(w) for w in self.kube.list(WORKFLOWS, self.namespace)
                 if (w.get("spec") or {}).get("repository") == repo_id]  # fmt: skip
        if users:
            raise ConfigError(f"repository {repo_id!r} is used by workflow(s) {', '.join(users)}; remove them first")
        obj = self.kube.get(REPOSITORIES, self.namespace, names.kname(repo_id))
        if obj is None or object_id(obj) != repo_id:
            raise NotFoundError(f"repository {repo_id!r} is not registered")
        self.kube.delete(REPOSITORIES, self.namespace, obj["metadata"]["name"], uid=obj["metadata"]["uid"])
        self.kube.delete(SECRETS, self.namespace, names.credentials_name(repo_id))

    # -- workflows ---------------------------------------------------------------------------------

    def put_workflow(self, wf: Workflow) -> None:
        if self.kube.get(REPOSITORIES, self.namespace, names.kname(wf.repository)) is None:
            raise NotFoundError(f"workflow {wf.id}: repository {wf.repository!r} is not registered")
        # Hooks and a local kubeconfig go to the admin's ConfigMap, never the spec. A new workflow's
        # grant is written first as pending (the Workflow waits), then bound to the object written.
        config, grant = admin.split(wf.to_config())
        pending = bool(grant) and self.workflow_obj_or_none(wf.id) is None
        if pending:
            self._put_grant(wf.id, {**grant, admin.BOUND: admin.PENDING})
        annotations: dict[str, str] = {}
        secret = names.notify_name(wf.id)
        if wf.notify is not None:
            # The URL may hold a token: a sealed Secret keeps it, the spec only names that Secret.
            labels = {names.LABEL_RECORD: "notify", names.LABEL_WORKFLOW: wf.id}
            written = self._put_sealed(secret, labels, {"url": wf.notify.url}, f"workflow {wf.id}")
            config["notify"] = {**config["notify"], "url": secret}
            annotations[names.ANNOTATION_NOTIFY] = str(written["metadata"]["resourceVersion"])
        keys_secret = names.decryption_name(wf.id)
        if wf.decryption is not None:
            # Private keys: a sealed Secret keeps them, the spec names it (Flux's decryption.secretRef).
            labels = {names.LABEL_RECORD: "decryption", names.LABEL_WORKFLOW: wf.id}
            written = self._put_sealed(keys_secret, labels, {"keys": wf.decryption.keys}, f"workflow {wf.id}")
            config["decryption"] = {**config["decryption"], "keys": keys_secret}
            annotations[names.ANNOTATION_DECRYPTION] = str(written["metadata"]["resourceVersion"])
        spec = mapping.workflow_spec(config)
        try:
            written = self._put_object(WORKFLOWS, "Workflow", wf.id, names.kname(wf.id), spec, annotations)
        except ConfigError:
            if pending:
                self._put_grant(wf.id, {})
            raise
        self._seen[wf.id] = written
        bound = admin.binding(written, self._repository_url(wf.repository))
        self._put_grant(wf.id, {**grant, admin.BOUND: bound} if grant else {})
        if wf.notify is None:
            self.kube.delete(SECRETS, self.namespace, secret)
        if wf.decryption is None:
            self.kube.delete(SECRETS, self.namespace, keys_secret)
        self._accepted(wf.id)

    def _put_grant(self, workflow_id: str, grant: dict[str, Any], expect: str | None = None) -> None:
        """Set (or, with nothing to grant, remove) a workflow's key in the admin's ConfigMap (only
        while it still reads ``expect``, when given)."""
        key = admin.key(workflow_id)
        value = admin.grant_text(grant) if grant else None
        for _ in range(ATTEMPTS):
            live = self.kube.get(CONFIGMAPS, self.namespace, admin.CONFIGMAP)
            data = dict((live or {}).get("data") or {})
            if data.get(key) == value or (expect is not None and data.get(key) != expect):
                return
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
            try:
                if live is None:
                    self.kube.create(CONFIGMAPS, {
                        "apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": admin.CONFIGMAP, "namespace": self.namespace, "labels": names.managed()},
                        "data": data,
                    })  # fmt: skip
                else:
                    live["data"] = data
                    self.kube.replace(CONFIGMAPS, live)
                return
            except (KubeAlreadyExists, KubeConflict):
                continue
        raise ConfigError(f"workflow {workflow_id}: ConfigMap {admin.CONFIGMAP} kept changing while it was written")

    def _grants(self) -> Obj | None:
        return self.kube.get(CONFIGMAPS, self.namespace, admin.CONFIGMAP)

    def _repository_url(self, repo_id: Any) -> str | None:
        obj = self.kube.get(REPOSITORIES, self.namespace, names.kname(str(repo_id))) if repo_id else None
        return str((obj.get("spec") or {}).get("url")) if obj is not None and object_id(obj) == repo_id else None

    def _check_grant(self, obj: Obj, grants: Obj | None, where: str) -> None:
        """Refuse (:class:`admin.AdminOnly`) a grant given to another Workflow, or to this one before an
        edit, and a kubeconfig Secret no grant names; bind a hand-written grant to the Workflow it meets."""
        wid = object_id(obj)
        doc = admin.document(grants, wid)
        spec = obj.get("spec") or {}
        if doc is not None:
            url = self._repository_url(spec.get("repository"))
            if admin.BOUND not in doc:
                if url is None:
                    raise admin.AdminOnly(f"{where}: its grant is bound once its repository is registered")
                text = ((grants or {}).get("data") or {}).get(admin.key(wid))
                self._put_grant(wid, {**doc, admin.BOUND: admin.binding(obj, url)}, expect=text)
            else:
                admin.check(doc, obj, url, where)
        secret = (spec.get("destination") or {}).get("kubeconfigSecret")
        if secret and (doc or {}).get(admin.SECRET_KEY) != secret:
            raise admin.AdminOnly(
                f"{where}: spec.destination.kubeconfigSecret: Secret {secret} lends a cluster's credentials; "
                f"only slipway's admin lets a workflow use one (kubeconfigSecret: {secret} in ConfigMap "
                f"{admin.CONFIGMAP} of namespace {self.namespace}, key {admin.key(wid)})"
            )

    def _accepted(self, workflow_id: str) -> None:
        """Say on the status that this generation of the spec is valid (and the run state's defaults)."""

        def mutate(obj: Obj, status: dict[str, Any]) -> dict[str, Any] | None:
            generation = obj["metadata"].get("generation")
            ready = conditions_of({"status": status}).get("Ready") or {}
            if status.get("observedGeneration") == generation and ready.get("status") == "True":
                return None
            patch: dict[str, Any] = {"observedGeneration": generation}
            if not status.get("status"):
                patch["status"] = "active"
            current = conditions_of({"status": status})
            cond = merge_conditions(current, {"Ready": ("True", "Valid", "")}, generation)
            if cond is not None:
                patch["conditions"] = cond
            return patch

        self.update_status(workflow_id, mutate)

    def _workflow_of(self, obj: Obj, secrets: dict[str, Obj] | None = None, grants: Obj | None = None) -> Workflow:
        """The workflow a Workflow declares, with what the admin's ConfigMap grants it (``grants``:
        that ConfigMap as read for a list; read here when None)."""
        wid = object_id(obj)
        where = f"workflow {wid} (Workflow {obj['metadata']['name']} in namespace {self.namespace})"

        def secret_value(ref: dict[str, Any]) -> str:
            name, key = str(ref.get("name") or ""), str(ref.get("key") or "")
            where = f"Secret {name} (named in spec)"
            secret = (secrets or {}).get(name) or self.kube.get(SECRETS, self.namespace, name)
            if secret is None:
                raise ConfigError(f"{where} does not exist in namespace {self.namespace}")
            data = self._secret_data(secret, where)
            if not key:
                # Decryption keys as Flux keeps them: every *.agekey and *.asc entry (or slipway's 'keys').
                flux = [v for k, v in sorted(data.items()) if k == "keys" or k.endswith((".agekey", ".asc"))]
                if "url" not in data and flux:
                    return "\n".join(flux)
                key = "url"
            if key not in data:
                raise ConfigError(f"{where} has no {key!r} key")
            return data[key]

        try:
            admin.refuse_in_spec(obj.get("spec") or {}, wid, self.namespace)
        except admin.AdminOnly as e:
            raise admin.AdminOnly(f"{where}: {e.message}") from None
        grants = grants if grants is not None else self._grants()
        self._check_grant(obj, grants, where)
        try:
            config = mapping.workflow_config(wid, obj.get("spec") or {}, secret_value)
            grant = admin.grant_of(grants, wid, self.namespace)
            return Workflow.from_record(admin.merge(config, grant))
        except ConfigError as e:
            raise ConfigError(f"{where}: {mapping.explain(e)}") from None

    def get_workflow(self, workflow_id: str) -> Workflow:
        return self._workflow_of(self.workflow_obj(workflow_id))

    def list_workflows(self) -> list[Workflow]:
        out = []
        objs = _ordered(self.kube.list(WORKFLOWS, self.namespace))
        repos = {object_id(r) for r in self.kube.list_metadata(REPOSITORIES, self.namespace)} if objs else set()
        notify: dict[str, Obj] = {}
        if any((o.get("spec") or {}).get("notify") for o in objs):
            selector = names.selector(**{names.LABEL_RECORD: "notify"})
            notify = {
                s["metadata"]["name"]: s for s in self.kube.list(SECRETS, self.namespace, label_selector=selector)
            }
        grants = (self._grants() or {}) if objs else {}
        for obj in objs:
            try:
                wf = self._workflow_of(obj, notify, grants)
            except ConfigError as e:
                self._report(WORKFLOWS, obj, str(e), "AdminOnly" if isinstance(e, admin.AdminOnly) else "InvalidSpec")
                continue
            out.append(wf)
            if wf.repository not in repos:
                # Declared with kubectl before (or without) its Repository: listed, and told why it waits.
                why = f"workflow {wf.id}: repository {wf.repository!r} is not registered"
                self._report(WORKFLOWS, obj, why, "RepositoryNotFound")
                continue
            status = obj.get("status") or {}
            ready = conditions_of(obj).get("Ready") or {}
            if status.get("observedGeneration") != obj["metadata"].get("generation") or ready.get("status") != "True":
                with contextlib.suppress(NotFoundError):
                    self._accepted(wf.id)
        return out

    def _report(self, info: Any, obj: Obj, message: str, reason: str = "InvalidSpec") -> None:
        """An object slipway cannot use: Ready=False with why, written once per generation and message."""
        meta = obj["metadata"]
        current = conditions_of(obj)
        generation = meta.get("generation")
        cond = merge_conditions(current, {"Ready": ("False", reason, message)}, generation)
        if cond is None and (obj.get("status") or {}).get("observedGeneration") == generation:
            return
        body = {"metadata": {"resourceVersion": meta["resourceVersion"]},
                "status": {"observedGeneration": generation, "conditions": cond or list(current.values())}}  # fmt: skip
        with contextlib.suppress(KubeConflict, KubeNotFound):  # changed meanwhile: the next read reports it again
            self.kube.patch_merge(info, self.namespace, meta["name"], body, subresource="status")

    def config_version(self) -> tuple[Any, ...]:
        """A digest of every Repository and Workflow's identity, spec generation and credentials
        version (and its notification URL's): it moves on any change of configuration, never on run state."""
        digest = hashlib.sha256()
        for info in (REPOSITORIES, WORKFLOWS):
            for item in sorted(self.kube.list_metadata(info, self.namespace), key=lambda o: o["metadata"]["name"]):
                meta = item["metadata"]
                annotations = meta.get("annotations") or {}
                secrets = (
                    annotations.get(names.ANNOTATION_CREDENTIALS, "")
                    + "/"
                    + annotations.get(names.ANNOTATION_NOTIFY, "")
                    + "/"
                    + annotations.get(names.ANNOTATION_DECRYPTION, "")
                )
                digest.update(
                    f"{info.kind}|{meta['name']}|{meta.get('uid')}|{meta.get('generation')}|{secrets}\n".encode()
                )
        grants = self._grants()  # a hook the admin grants or takes back is configuration too
        digest.update(f"grants|{(grants or {}).get('metadata', {}).get('resourceVersion')}\n".encode())
        return (digest.hexdigest(),)

    def remove_workflow(self, workflow_id: str) -> None:
        for _ in range(ATTEMPTS):
            obj = self.workflow_obj(workflow_id)
            claim = (obj.get("status") or {}).get("claim") or {}
            if claim.get("owner") and self.claim_alive(claim, wait=True):
                raise SyncInProgress(f"workflow {workflow_id} is syncing; remove it when the sync ends")
            meta = obj["metadata"]
            try:
                self.kube.delete(WORKFLOWS, self.namespace, meta["name"], resource_version=meta["resourceVersion"])
            except KubeConflict:
                continue  # claimed or changed since we looked
            self._seen.pop(workflow_id, None)
            self._put_grant(workflow_id, {})
            # Its inventory goes with it (its owner reference would let the garbage collector do it,
            # later); its history stays, keyed by the uid of a Workflow that no longer exists.
            self.forget_inventory(str(meta["uid"]))
            self.kube.delete(SECRETS, self.namespace, names.notify_name(workflow_id))
            self.kube.delete(SECRETS, self.namespace, names.decryption_name(workflow_id))
            return
        raise SyncInProgress(f"workflow {workflow_id} kept changing; try again")

    # -- run state ---------------------------------------------------------------------------------

    def workflow_state(self, workflow_id: str) -> dict[str, Any]:
        status = self.workflow_obj(workflow_id).get("status") or {}
        claim = status.get("claim") or {}
        out = {key: status.get(field) for key, field in mapping.STATE.items()}
        out["status"] = out["status"] or "active"
        out["status_message"] = out["status_message"] or ""
        out["sync_owner"] = claim.get("owner") or None
        out["sync_id"] = claim.get("syncId") or None
        return out

    def set_workflow_state(self, workflow_id: str, **fields: Any) -> None:
        assert set(fields) <= set(mapping.STATE), fields
        patch = {mapping.STATE[k]: v for k, v in fields.items()}
        self.update_status(workflow_id, lambda obj, status: dict(patch))


def _ordered(objs: list[Obj]) -> list[Obj]:
    return sorted(objs, key=lambda o: (o["metadata"].get("creationTimestamp") or "", o["metadata"]["name"]))
