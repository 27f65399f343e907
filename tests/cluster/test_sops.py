"""SOPS files made by the real sops and age, decrypted at render time and synced to the real cluster.

Every encrypted file here is produced by the ``sops`` binary slipway builds (and ``age-keygen``),
exactly as a team would commit it. The key must leak nowhere: the store's bytes, the sync's
result and records, the plan, the logs and what the test printed are all searched for it and for
the decrypted values.
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from slipway import tools
from slipway.engine import Engine
from slipway.kube import Kube
from slipway.render.base import RenderContext
from slipway.render.sops import Decryption, decrypt

from .conftest import BOTH_BACKENDS, Repo, add_workflow

pytestmark = pytest.mark.cluster

PASSWORD = "hunter2-plaintext-7Qx"
TOKEN = "api-token-plaintext-9Kz"
CHART_SECRET = "chart-secret-plaintext-3Lm"


def age_key(tmp: Path, name: str) -> tuple[str, str]:
    """(identity, recipient) made by age-keygen."""
    path = tmp / f"{name}.txt"
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    identity = next(ln for ln in path.read_text().splitlines() if ln.startswith("AGE-SECRET-KEY-"))
    recipient = subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True)
    return identity, recipient.stdout.strip()


def encrypt(tmp: Path, text: str, *, age: str | None = None, pgp: str | None = None, gnupg: Path | None = None,
            regex: str | None = "^(data|stringData)$", kind: str = "yaml") -> str:  # fmt: skip
    """``text`` encrypted by the real sops (for an age recipient or a PGP fingerprint)."""
    src = tmp / f"plain.{kind}"
    src.write_text(text)
    argv = [tools.find("sops"), "--encrypt", "--input-type", kind, "--output-type", kind]
    argv += ["--age", age] if age else ["--pgp", str(pgp)]
    if regex:
        argv += ["--encrypted-regex", regex]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp)}
    if gnupg is not None:
        env["GNUPGHOME"] = str(gnupg)
    out = subprocess.run([*argv, str(src)], check=True, capture_output=True, text=True, cwd=tmp, env=env)
    src.unlink()
    return out.stdout


SECRET = f"""\
apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: {PASSWORD}
"""
PLAIN_CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\ndata:\n  a: b\n"
KUSTOMIZATION = "resources:\n  - token.enc.yaml\n"
TOKEN_SECRET = f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: api\ntype: Opaque\nstringData:\n  token: {TOKEN}\n"
CHART = "apiVersion: v2\nname: app\nversion: 0.1.0\n"
CHART_TEMPLATE = """\
apiVersion: v1
kind: Secret
metadata:
  name: chart-secret
stringData:
  value: {{ .Values.secret | quote }}
"""


def _files(tmp: Path, recipient: str) -> dict[str, str]:
    return {
        "k8s/db-secret.yaml": encrypt(tmp, SECRET, age=recipient),  # a plain manifest
        "k8s/plain.yaml": PLAIN_CM,
        "k8s/api/kustomization.yaml": KUSTOMIZATION,  # a kustomize input
        "k8s/api/token.enc.yaml": encrypt(tmp, TOKEN_SECRET, age=recipient),
        "k8s/chart/Chart.yaml": CHART,  # a Helm values file
        "k8s/chart/templates/secret.yaml": CHART_TEMPLATE,
        "k8s/chart/secrets.yaml": encrypt(tmp, f"secret: {CHART_SECRET}\n", age=recipient, regex=None),
    }


def _secret_value(kube: Kube, namespace: str, name: str, key: str) -> str | None:
    obj = kube.get(kube.discovery.lookup("v1", "Secret"), namespace, name)
    return base64.b64decode(obj["data"][key]).decode() if obj else None


@BOTH_BACKENDS
def test_sops_files_in_manifests_kustomize_and_helm_values_decrypt_and_nothing_leaks(
    engine: Engine, make_git: Any, kube: Kube, namespace: str, tmp_path: Path, slipway_home: Path,
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    from slipway.render import bounded

    argvs: list[list[str]] = []
    real_run = bounded.run

    def spy(argv: list[str], **kwargs: Any) -> Any:  # every program a render runs, as it is run
        argvs.append(list(argv))
        return real_run(argv, **kwargs)

    monkeypatch.setattr(bounded, "run", spy)
    identity, recipient = age_key(tmp_path, "team")
    git: Repo = make_git(_files(tmp_path, recipient))
    wf = add_workflow(engine, git, namespace, id="sops-web", helm={"values_files": ["secrets.yaml"]},
                      decryption={"provider": "sops", "keys": f"# team key\n{identity}\n"})  # fmt: skip
    result = engine.sync(wf)
    assert result.status == "succeeded", result.message
    assert _secret_value(kube, namespace, "db", "password") == PASSWORD
    assert _secret_value(kube, namespace, "api", "token") == TOKEN
    assert _secret_value(kube, namespace, "chart-secret", "value") == CHART_SECRET
    plan = engine.plan(wf)
    assert plan.changes == []

    # A change of a secret value shows in a diff only masked.
    git.commit({"k8s/db-secret.yaml": encrypt(tmp_path, SECRET.replace(PASSWORD, PASSWORD + "-2"), age=recipient)})
    diff = engine.plan(wf)
    assert [c.resource for c in diff.changes] == ["Secret/db"]
    result2 = engine.sync(wf)
    assert result2.status == "succeeded", result2.message

    shown = repr(engine.workflow(wf).public())
    assert identity not in shown and "1 age identity" in shown
    seen = [
        repr(result),
        repr(result2),
        *(repr(c.to_seed()) + c.diff for c in [*plan.changes, *diff.changes]),
        repr(engine.history(wf)),
        shown,
        caplog.text,
    ]
    seen += list(capfd.readouterr())
    seen += [repr(engine.sync_record(sync.id)) for sync in engine.history(wf)]
    assert any("--decrypt" in argv for argv in argvs)  # sops ran, and saw its key only in its environment
    seen += [" ".join(argv) for argv in argvs]
    if request.node.callspec.params["store_backend"] == "sqlite":
        seen.append(b"".join(p.read_bytes() for p in slipway_home.glob("state.db*")).decode("latin-1"))
    else:
        from tests.kubestore import decoded_secrets, everything_in

        kubeconfig = request.getfixturevalue("cluster").kubeconfig
        store_ns = engine.store.namespace  # type: ignore[attr-defined]
        raw = everything_in(kubeconfig, store_ns) + decoded_secrets(kubeconfig, store_ns)
        assert "sops-web" in raw  # the search does see the store's objects
        seen.append(raw)
    everything = "\n".join(seen)
    body = identity.removeprefix("AGE-SECRET-KEY-")
    for leaked in (PASSWORD, TOKEN, CHART_SECRET, body, body.lower()):
        assert leaked not in everything, f"{leaked[:8]}... leaked"
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("slipway-sops-*"))  # scratch keys removed


def test_a_wrong_key_no_key_and_a_tampered_file_are_refused_naming_the_file_and_nothing_is_applied(
    engine: Engine, make_git: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    identity, recipient = age_key(tmp_path, "team")
    other, _ = age_key(tmp_path, "other")
    encrypted = encrypt(tmp_path, SECRET, age=recipient)
    git: Repo = make_git({"k8s/a-plain.yaml": PLAIN_CM, "k8s/db-secret.yaml": encrypted})
    cm = kube.discovery.lookup("v1", "ConfigMap")

    wrong = add_workflow(engine, git, namespace, id="sops-wrong", decryption={"keys": other})
    plan = engine.plan(wrong)
    [conflict] = plan.conflicts
    assert (conflict.type, conflict.resource, plan.changes) == ("validation", "file k8s/db-secret.yaml", [])
    assert conflict.description.startswith("k8s/db-secret.yaml: cannot be decrypted: none of the workflow's")
    result = engine.sync(wrong)
    assert result.status == "failed" and "nothing was applied" in result.message
    [local] = engine.plan_local(wrong, git.work / "k8s").conflicts  # diff --local: the same conflict
    assert local.resource == "file k8s/db-secret.yaml" and local.type == "validation"
    assert "k8s/db-secret.yaml: cannot be decrypted: none of the workflow's decryption keys can decrypt it" in (
        result.message
    )

    none = add_workflow(engine, git, namespace, id="sops-none")
    result = engine.sync(none)
    assert result.status == "failed"
    assert "k8s/db-secret.yaml: is encrypted with SOPS and the workflow has no decryption keys" in result.message

    right = add_workflow(engine, git, namespace, id="sops-right", decryption={"keys": identity})
    git.commit({"k8s/db-secret.yaml": encrypted.replace("name: db", "name: dc")})  # not encrypted, but in the MAC
    result = engine.sync(right)
    assert result.status == "failed"
    assert "k8s/db-secret.yaml: cannot be decrypted: its MAC does not match its content" in result.message
    assert "MAC mismatch" not in result.message  # sops' own text quotes the MACs

    assert kube.get(cm, namespace, "plain") is None  # nothing of the path was applied
    assert _secret_value(kube, namespace, "db", "password") is None
    assert _secret_value(kube, namespace, "dc", "password") is None
    assert PASSWORD not in repr(engine.history(right))


def test_an_armored_pgp_key_decrypts_in_a_sync_and_on_its_own(
    engine: Engine, make_git: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    gnupg = tmp_path / "gnupg"
    gnupg.mkdir(mode=0o700)
    env = {"PATH": os.environ["PATH"], "GNUPGHOME": str(gnupg)}
    gpg = ["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""]
    subprocess.run([*gpg, "--quick-gen-key", "team@example.com", "rsa2048", "encrypt,sign", "never"],
                   check=True, capture_output=True, env=env)  # fmt: skip
    listing = subprocess.run(["gpg", "--batch", "--with-colons", "--list-secret-keys"], check=True,
                             capture_output=True, text=True, env=env).stdout  # fmt: skip
    fingerprint = next(ln.split(":")[9] for ln in listing.splitlines() if ln.startswith("fpr:"))
    armored = subprocess.run([*gpg, "--armor", "--export-secret-keys", fingerprint], check=True,
                             capture_output=True, text=True, env=env).stdout  # fmt: skip
    git: Repo = make_git({"k8s/db-secret.yaml": encrypt(tmp_path, SECRET, pgp=fingerprint, gnupg=gnupg)})
    subprocess.run(["gpgconf", "--kill", "all"], env=env, check=False)
    wf = add_workflow(engine, git, namespace, id="sops-pgp", decryption={"keys": armored})
    result = engine.sync(wf)
    assert result.status == "succeeded", result.message
    assert _secret_value(kube, namespace, "db", "password") == PASSWORD
    encrypted = tmp_path / "db.yaml"
    encrypted.write_text(encrypt(tmp_path, SECRET, pgp=fingerprint, gnupg=gnupg))
    subprocess.run(["gpgconf", "--kill", "all"], env=env, check=False)
    plain = decrypt(encrypted, "db.yaml", Decryption.from_config({"keys": armored}), RenderContext())
    assert PASSWORD in plain.decode()


@pytest.mark.parametrize("store_backend", ["kubernetes"], indirect=True)
def test_on_the_kubernetes_store_the_keys_are_a_sealed_secret_or_one_written_as_fluxs(
    engine: Engine, make_git: Any, kube: Kube, namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from slipway.store.kubernetes.names import WORKFLOWS
    from tests.kubestore import everything_in

    identity, recipient = age_key(tmp_path, "team")
    git: Repo = make_git({"k8s/db-secret.yaml": encrypt(tmp_path, SECRET, age=recipient)})
    wf = add_workflow(engine, git, namespace, id="sops-kube", decryption={"keys": identity})
    store_ns = engine.store.namespace  # type: ignore[attr-defined]
    spec = (kube.get(WORKFLOWS, store_ns, wf) or {})["spec"]
    assert spec["decryption"] == {"provider": "sops", "secretRef": {"name": "slipway-decryption-sops-kube"}}
    kubeconfig = request.getfixturevalue("cluster").kubeconfig
    assert identity.removeprefix("AGE-SECRET-KEY-") not in everything_in(kubeconfig, store_ns)  # sealed

    # A Secret written by hand, as a Flux user has it: every *.agekey entry is an identity.
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sops-keys", "namespace": store_ns},
              "stringData": {"team.agekey": identity, "README": "not a key"}}  # fmt: skip
    kube.apply(kube.discovery.lookup("v1", "Secret"), secret, field_manager="tests")
    obj = kube.get(WORKFLOWS, store_ns, wf) or {}
    obj["spec"]["decryption"] = {"provider": "sops", "secretRef": {"name": "sops-keys"}}
    kube.replace(WORKFLOWS, obj)
    assert engine.workflow(wf).decryption.keys.strip() == identity  # type: ignore[union-attr]
    result = engine.sync(wf)
    assert result.status == "succeeded", result.message
    assert _secret_value(kube, namespace, "db", "password") == PASSWORD


def test_files_outside_the_path_decrypt_when_read_and_another_teams_files_are_left_alone(
    engine: Engine, make_git: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    identity, recipient = age_key(tmp_path, "team")
    _, other_recipient = age_key(tmp_path, "other-team")
    files = {
        "k8s/overlay/kustomization.yaml": "resources:\n  - ../../base\n",
        "base/kustomization.yaml": "resources:\n  - db.enc.yaml\n",
        "base/db.enc.yaml": encrypt(tmp_path, SECRET, age=recipient),
        "other-team/secret.yaml": encrypt(tmp_path, TOKEN_SECRET, age=other_recipient),  # not ours to read
    }
    git: Repo = make_git(files)
    wf = add_workflow(engine, git, namespace, id="sops-base", decryption={"keys": identity})
    result = engine.sync(wf)
    assert result.status == "succeeded", result.message
    assert _secret_value(kube, namespace, "db", "password") == PASSWORD

    # The base is now encrypted for the other team only: the object the overlay reads stays encrypted.
    git.commit({"base/db.enc.yaml": encrypt(tmp_path, SECRET.replace("name: db", "name: db2"), age=other_recipient)})
    [conflict] = engine.plan(wf).conflicts
    assert conflict.type == "validation" and conflict.resource.startswith("file k8s/overlay (kustomize)")
    assert "is still encrypted with SOPS" in conflict.description
    assert _secret_value(kube, namespace, "db2", "password") is None
