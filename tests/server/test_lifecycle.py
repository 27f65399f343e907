"""The process: SIGTERM during a sync, TLS, and flags it cannot use."""

from __future__ import annotations

import datetime
import ipaddress
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.gitservers import free_port
from tests.manifests import configmap, dump

from .conftest import wait_until
from .test_api import setup_workflow

pytestmark = pytest.mark.cluster


def test_sigterm_during_a_sync_stops_it_at_a_safe_point_records_it_and_exits_0(
    start_server, tmp_path: Path, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    wf, _ = setup_workflow(
        server,
        tmp_path,
        namespace,
        {"k8s/app.yaml": dump(configmap("app"))},
        sync_policy={"pre_sync_hooks": ["sleep 60"]},
    )
    operator = server.client("operator")
    sync_id = operator.post(f"/api/v1/workflows/{wf}/sync").json()["id"]
    wait_until(lambda: operator.get(f"/api/v1/syncs/{sync_id}").json()["progress"]["hooks_run"] == 1, 30)
    started = time.monotonic()
    assert server.stop(signal.SIGTERM, timeout=30) == 0
    assert time.monotonic() - started < 15
    with pytest.raises(httpx.ConnectError):
        operator.get("/healthz")
    record = server.engine().history(wf)[0]
    assert record.id == sync_id and record.status == "failed" and "cancelled" in record.message
    log = server.log_text()
    assert "received SIGTERM" in log and "slipway server stopped" in log
    assert "Traceback" not in log


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def test_tls(start_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cert, key = self_signed(tmp_path)
    server = start_server(
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        scheme="https",
        verify=ssl.create_default_context(cafile=str(cert)),
    )
    r = server.client("viewer").get("/api/v1/whoami")
    assert r.status_code == 200 and r.json()["role"] == "viewer"
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)  # no plain HTTP on a TLS port


def test_flags_it_cannot_use_are_one_line_and_exit_2(start_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    running = start_server()
    busy = f"127.0.0.1:{running.port}"
    cert, _ = self_signed(tmp_path)
    free = f"127.0.0.1:{free_port()}"
    cases = [
        (["--listen", "nowhere"], "is not HOST:PORT"),
        (["--listen", busy], "cannot listen on 127.0.0.1"),
        (["--listen", free, "--tls-cert", str(cert)], "--tls-cert and --tls-key go together"),
        (["--listen", free, "--tls-cert", str(cert), "--tls-key", str(cert)], "cannot load them"),
        (["--listen", free, "--webhook-secret-file", str(tmp_path / "none")], "cannot read"),
    ]
    for args, message in cases:
        r = subprocess.run([sys.executable, "-m", "slipway", "server", *args], env=running.env, capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0], (args, r.stderr)
        assert "Traceback" not in r.stderr
    # the running one was not disturbed
    with socket.create_connection(("127.0.0.1", running.port), timeout=5):
        pass
