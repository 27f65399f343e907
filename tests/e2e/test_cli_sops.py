"""The CLI's flags for SOPS keys and post-build substitution: keys from an environment variable or a file,
never from argv, never shown; variables from flags and from a ConfigMap of the destination."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from slipway.kube import Kube
from tests.cluster.test_sops import SECRET, age_key, encrypt

from .conftest import Cli
from .test_cli import setup_workflow

pytestmark = pytest.mark.cluster


def test_decryption_keys_and_substitution_from_the_command_line(
    cli: Cli, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    identity, recipient = age_key(tmp_path, "team")
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  env: ${ENV}\n  region: ${REGION}\n"
    setup_workflow(cli, namespace, {"k8s/db.yaml": encrypt(tmp_path, SECRET, age=recipient), "k8s/cm.yaml": cm})
    kube.apply(kube.discovery.lookup("v1", "ConfigMap"), {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "vars", "namespace": namespace}, "data": {"REGION": "eu"}},
               field_manager="tests")  # fmt: skip

    diff = cli("-o", "json", "diff", "app-wf")
    assert diff.returncode == 1, diff.stderr  # the plan was computed: it has a conflict
    (conflict,) = json.loads(diff.stdout)["conflicts"]
    assert conflict["type"] == "validation" and conflict["resource"] == "file k8s/db.yaml"
    assert conflict["description"].startswith("k8s/db.yaml: is encrypted with SOPS and the workflow has no decryption")
    r = cli("sync", "app-wf", "--yes")
    assert r.returncode == 2 and "nothing was applied" in r.stdout + r.stderr

    env_cli = Cli({**cli.env, "SOPS_KEYS": identity}, cli.home, cli.cwd)
    r = env_cli("workflow", "set", "app-wf", "--decryption-key-env", "SOPS_KEYS", "--substitute", "ENV=prod",
                "--substitute-from", "configmap/vars")  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = cli("sync", "app-wf", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    secret = kube.get(kube.discovery.lookup("v1", "Secret"), namespace, "db") or {}
    assert base64.b64decode(secret["data"]["password"]).decode() == "hunter2-plaintext-7Qx"
    settings = kube.get(kube.discovery.lookup("v1", "ConfigMap"), namespace, "settings") or {}
    assert settings["data"] == {"env": "prod", "region": "eu"}

    shown = cli("-o", "json", "workflow", "show", "app-wf")
    config = json.loads(shown.stdout)
    assert config["decryption"] == {"provider": "sops", "keys": "1 age identity(ies), 0 PGP key(s) (sealed)"}
    assert config["post_build"]["substitute"] == {"ENV": "prod"}

    keyfile = tmp_path / "keys.txt"
    other, _ = age_key(tmp_path, "other")
    keyfile.write_text(other + "\n")
    r = cli("workflow", "set", "app-wf", "--decryption-key-file", str(keyfile))
    assert r.returncode == 0, r.stderr
    r = cli("sync", "app-wf", "--yes")
    assert r.returncode != 0 and "none of the workflow's decryption keys can decrypt it" in r.stdout + r.stderr

    r = cli("workflow", "set", "app-wf", "--decryption-key-file", str(tmp_path / "k8s-missing"))
    assert r.returncode != 0 and "is not a file" in r.stderr
    logs = "".join(p.read_text(errors="replace") for p in cli.home.rglob("*.log"))
    for secret_text in (identity, other, "hunter2-plaintext-7Qx"):
        body = secret_text.removeprefix("AGE-SECRET-KEY-")
        assert body not in shown.stdout + r.stdout + r.stderr + logs
        assert body.encode() not in b"".join(p.read_bytes() for p in cli.home.glob("state.db*"))
