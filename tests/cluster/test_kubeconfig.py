"""slipway's own kubeconfig reader and connection pool against the real API server: inline
certificates, rotated token files, exec plugins, tls-server-name, kept connections the other
side closed, gzip answers, and the kubeconfigs it refuses with a clear error."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import zlib
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipway.errors import ConfigError, KubeForbidden, KubeTransientError
from slipway.kube import Kube
from slipway.kube import transport as transport_module
from tests.reliability.relay import cut, relay

ADMIN = "slipway-admin"  # the local cluster's admin certificate
REVIEW = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


def whoami(kube: Kube) -> str:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    doc = kube.request("POST", REVIEW, action="review", what="self", body=body)
    return str(doc["status"]["userInfo"]["username"])


def admin_doc(cluster: Any) -> dict[str, Any]:
    doc = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    base = Path(cluster.kubeconfig).parent
    for section, key in (("clusters", "cluster"), ("users", "user")):
        for entry in doc[section]:
            for field in ("certificate-authority", "client-certificate", "client-key"):
                if field in entry[key]:
                    entry[key][field] = str((base / entry[key][field]).resolve())
    return doc


def write(doc: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def token_for(cluster: Any, kube: Kube, namespace: str, name: str = "reader") -> str:
    sa = kube.discovery.lookup("v1", "ServiceAccount")
    kube.apply(sa, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}},
               field_manager="tests")  # fmt: skip
    req = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "metadata": {"name": name,
           "namespace": namespace}, "spec": {"expirationSeconds": 600}}  # fmt: skip
    return str(kube.create(sa, req, subresource="token")["status"]["token"])


def with_user(cluster: Any, user: dict[str, Any], path: Path, **cluster_fields: Any) -> Path:
    doc = admin_doc(cluster)
    doc["users"][0]["user"] = user
    doc["clusters"][0]["cluster"].update(cluster_fields)
    return write(doc, path)


def test_inline_certificates_connect_and_leave_no_key_on_disk(
    cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = admin_doc(cluster)
    c, u = doc["clusters"][0]["cluster"], doc["users"][0]["user"]
    for section, field in ((c, "certificate-authority"), (u, "client-certificate"), (u, "client-key")):
        section[f"{field}-data"] = base64.b64encode(Path(section.pop(field)).read_bytes()).decode()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    with closing(Kube(write(doc, tmp_path / "inline.kubeconfig"))) as kube:
        assert whoami(kube) == ADMIN
    assert list(scratch.iterdir()) == []  # the key was written only for the moment of loading it


def test_a_rotated_token_file_is_read_again_after_a_401(
    cluster: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("not-a-token")
    with closing(Kube(with_user(cluster, {"tokenFile": str(token_file)}, tmp_path / "tf.kubeconfig"))) as client:
        with pytest.raises(KubeForbidden) as refused:
            whoami(client)
        assert "not-a-token" not in str(refused.value)
        token_file.write_text(token_for(cluster, kube, namespace))  # the kubelet rotates the file
        assert whoami(client) == f"system:serviceaccount:{namespace}:reader"


PLUGIN = """
import json, os, sys
from pathlib import Path
here = Path(sys.argv[1])
with open(here / "calls", "a") as f:
    f.write(os.environ.get("KUBERNETES_EXEC_INFO", "") + "\\n")
if (here / "fail").exists():
    print("the identity provider is down", file=sys.stderr)
    sys.exit(3)
status = {"token": (here / "token").read_text().strip()}
if (here / "expires").exists():
    status["expirationTimestamp"] = (here / "expires").read_text().strip()
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": status}))
"""


def exec_user(plugin_dir: Path) -> dict[str, Any]:
    (plugin_dir / "plugin.py").write_text(PLUGIN)
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
                     "args": [str(plugin_dir / "plugin.py"), str(plugin_dir)], "interactiveMode": "Never"}}  # fmt: skip


def calls(plugin_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (plugin_dir / "calls").read_text().splitlines()]


def test_an_exec_plugin_token_is_kept_until_it_expires_or_is_refused(
    cluster: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "token").write_text(token_for(cluster, kube, namespace))
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    (plugin / "expires").write_text(later.strftime("%Y-%m-%dT%H:%M:%SZ"))
    with closing(Kube(with_user(cluster, exec_user(plugin), tmp_path / "exec.kubeconfig"))) as client:
        for _ in range(3):
            assert whoami(client) == f"system:serviceaccount:{namespace}:reader"
        assert len(calls(plugin)) == 1  # kept while valid
        assert calls(plugin)[0]["spec"] == {"interactive": False}
        # An expiry in the past (or one that comes soon) makes the next request ask again.
        (plugin / "expires").write_text("2000-01-01T00:00:00Z")
        with closing(Kube(with_user(cluster, exec_user(plugin), tmp_path / "exec2.kubeconfig"))) as client2:
            whoami(client2)
            whoami(client2)
        assert len(calls(plugin)) == 3  # asked again for each request
        # The server refuses a token (revoked): the plugin is asked once more, and its new token works.
        (plugin / "expires").unlink()
        with closing(Kube(with_user(cluster, exec_user(plugin), tmp_path / "exec3.kubeconfig"))) as client3:
            (plugin / "token").write_text("revoked")
            with pytest.raises(KubeForbidden):
                whoami(client3)
            assert len(calls(plugin)) == 5  # the first try, and the one renewal after the 401
            (plugin / "token").write_text(token_for(cluster, kube, namespace))
            assert whoami(client3) == f"system:serviceaccount:{namespace}:reader"
            assert len(calls(plugin)) == 6  # the kept token was refused, so renewed once


def test_a_failing_exec_plugin_is_a_clear_error_without_the_token(
    cluster: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    token = token_for(cluster, kube, namespace)
    (plugin / "token").write_text(token)
    (plugin / "fail").write_text("")
    path = with_user(cluster, exec_user(plugin), tmp_path / "exec.kubeconfig")
    with closing(Kube(path)) as client, pytest.raises(ConfigError) as failed:
        whoami(client)
    text = str(failed.value)
    assert "exec plugin" in text and "exit 3" in text and "the identity provider is down" in text
    assert str(tmp_path / "exec.kubeconfig") in text
    assert token not in text


def test_tls_server_name_is_the_name_the_certificate_is_checked_against(cluster: Any, tmp_path: Path) -> None:
    doc = admin_doc(cluster)
    doc["clusters"][0]["cluster"]["tls-server-name"] = "kubernetes.default.svc"
    with closing(Kube(write(doc, tmp_path / "named.kubeconfig"))) as kube:
        assert whoami(kube) == ADMIN
    doc["clusters"][0]["cluster"]["tls-server-name"] = "someone-else.example"
    wrong = write(doc, tmp_path / "wrong.kubeconfig")
    with closing(Kube(wrong)) as kube, pytest.raises(KubeTransientError, match=r"someone-else\.example"):
        whoami(kube)


def test_a_kept_connection_the_server_closed_is_replaced(cluster: Any, tmp_path: Path) -> None:
    doc = admin_doc(cluster)
    live: list[socket.socket] = []
    with relay(cluster.ports["apiserver"], 0.0, live=live) as port:
        doc["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
        with closing(Kube(write(doc, tmp_path / "relayed.kubeconfig"))) as kube:
            assert whoami(kube) == ADMIN
            cut(live)  # the idle connection is closed from the other side, as a load balancer does
            assert whoami(kube) == ADMIN
            assert kube.counts["POST"] == 2  # each request counted once: the resend is the transport's


def test_a_large_list_arrives_gzipped_and_is_read(kube: Kube, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cm = kube.discovery.lookup("v1", "ConfigMap")
    for i in range(60):
        kube.apply(cm, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"big-{i}",
                   "namespace": namespace}, "data": {"blob": os.urandom(3000).hex()}}, field_manager="tests")  # fmt: skip
    inflated: list[int] = []
    real = zlib.decompress

    def spy(data: bytes, wbits: int = zlib.MAX_WBITS, bufsize: int = zlib.DEF_BUF_SIZE) -> bytes:
        out = real(data, wbits, bufsize)
        inflated.append(len(out))
        return out

    monkeypatch.setattr(transport_module.zlib, "decompress", spy)
    items = kube.list(cm, namespace)
    assert sorted(i["metadata"]["name"] for i in items if i["metadata"]["name"].startswith("big-")) == sorted(
        f"big-{i}" for i in range(60)
    )
    assert inflated and max(inflated) > 300_000  # the server compressed it; we read it whole


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["users"][0]["user"].update({"auth-provider": {"name": "gcp"}}), "auth-provider is not supported"),
        (lambda d: d["clusters"][0]["cluster"].update({"proxy-url": "http://proxy:3128"}), "proxy-url is not supported"),
        (lambda d: d.update({"current-context": "nowhere"}), "no context named 'nowhere'"),
        (lambda d: d["clusters"][0]["cluster"].update({"server": "127.0.0.1:6443"}), "is not an http(s) URL"),
        (lambda d: d["users"][0].update({"user": {"client-certificate-data": "%%%", "client-key-data": "x"}}),
         "client-certificate-data is not base64"),
        (lambda d: d["users"][0].update({"user": {"exec": {"apiVersion": "v9", "command": "x"}}}),
         "exec apiVersion 'v9' is not one of"),
    ],
)  # fmt: skip
def test_a_kubeconfig_slipway_cannot_use_is_refused_by_name(
    cluster: Any, tmp_path: Path, change: Any, expected: str
) -> None:
    doc = admin_doc(cluster)
    change(doc)
    path = write(doc, tmp_path / "bad.kubeconfig")
    with pytest.raises(ConfigError) as refused:
        Kube(path)
    assert expected in str(refused.value)
    assert str(path) in str(refused.value)


def test_the_command_line_reports_a_bad_kubeconfig_without_a_traceback(
    cluster: Any, tmp_path: Path, slipway_home: Path, make_git: Any, namespace: str
) -> None:
    doc = admin_doc(cluster)
    doc["users"][0]["user"] = {"auth-provider": {"name": "oidc", "config": {"id-token": "secret-id-token"}}}
    path = write(doc, tmp_path / "oidc.kubeconfig")
    repo = make_git({"k8s/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"})
    env = {**os.environ, "SLIPWAY_HOME": str(slipway_home)}

    def slipway(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "slipway", *args], capture_output=True, text=True, env=env,
                              timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip

    assert slipway("repo", "add", repo.url, "--id", "r").returncode == 0
    made = slipway("workflow", "create", "--id", "w", "--repository", "r", "--path", "k8s", "--namespace", namespace,
                   "--kubeconfig", str(path))  # fmt: skip
    assert made.returncode == 0, made.stderr
    proc = slipway("diff", "w")
    assert proc.returncode == 2, proc.stderr
    assert "auth-provider is not supported" in proc.stderr and str(path) in proc.stderr
    assert "Traceback" not in proc.stderr and "secret-id-token" not in proc.stderr + proc.stdout


def test_an_api_server_that_is_not_there_is_a_transient_error_naming_it(cluster: Any, tmp_path: Path) -> None:
    doc = admin_doc(cluster)
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # closed again when the block ends: nobody listens there
    doc["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    nowhere = write(doc, tmp_path / "nowhere.kubeconfig")
    with (
        closing(Kube(nowhere)) as kube,
        pytest.raises(KubeTransientError, match=rf"cannot reach API server https://127\.0\.0\.1:{port}"),
    ):
        whoami(kube)
