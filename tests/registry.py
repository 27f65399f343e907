"""A real OCI registry for tests: the CNCF distribution registry (``docker-registry``) on 127.0.0.1.

``oci_registry`` (session-scoped) -> :class:`Registry`: plain HTTP, htpasswd basic auth with
``.username``/``.password`` (a bcrypt hash made with the C library's ``crypt``). ``.push(files)``
packages a chart with the real Helm and pushes it with ``helm push`` after ``helm registry login
--password-stdin``; ``.url`` is ``oci://127.0.0.1:PORT/charts``. ``.requests()`` reads the
registry's access log, so a test can count blob downloads.
"""

from __future__ import annotations

import datetime
import importlib
import ipaddress
import json
import os
import secrets
import shutil
import ssl
import subprocess
import time
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import yaml

from slipway import tools
from tests.chartrepo import write_tree
from tests.gitservers import free_port


class Registry:
    def __init__(self, base: Path, tls: bool = False) -> None:
        self.dir = base
        self.tls = tls
        self.ca_file = base / "tls.crt"  # with tls: self-signed, its own CA
        self.username = "oci-user"
        self.password = "ocipw-" + secrets.token_hex(10)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = base / "registry.log"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"oci://{self.host}/charts"

    def start(self) -> None:
        binary = shutil.which("docker-registry")
        if binary is None:
            pytest.fail("docker-registry is not installed: run scripts/setup.sh")
        with warnings.catch_warnings():  # the registry takes bcrypt only; the C library's crypt makes it
            warnings.simplefilter("ignore", DeprecationWarning)
            crypt = importlib.import_module("crypt")
        hashed = crypt.crypt(self.password, crypt.mksalt(crypt.METHOD_BLOWFISH))
        (self.dir / "htpasswd").write_text(f"{self.username}:{hashed}\n")
        config = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "json", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": str(self.dir / "data")}},
            "http": {"addr": self.host, "secret": secrets.token_hex(16)},
            "auth": {"htpasswd": {"realm": "slipway-tests", "path": str(self.dir / "htpasswd")}},
        }
        if self.tls:
            _self_signed(self.ca_file, self.dir / "tls.key")
            config["http"]["tls"] = {"certificate": str(self.ca_file), "key": str(self.dir / "tls.key")}  # type: ignore[index]
        (self.dir / "config.yml").write_text(yaml.safe_dump(config))
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([binary, "serve", str(self.dir / "config.yml")], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                context = ssl.create_default_context(cafile=self.ca_file) if self.tls else None
                scheme = "https" if self.tls else "http"
                urllib.request.urlopen(f"{scheme}://{self.host}/v2/", timeout=1, context=context)
            except urllib.error.HTTPError as e:
                if e.code == 401:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                pytest.fail(f"docker-registry exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        pytest.fail("docker-registry did not start")

    def helm(self, *args: str | Path, stdin: str | None = None) -> str:
        binary = tools.built("helm")
        if binary is None:
            pytest.fail("helm is not built: run `slipway cluster build`")
        home = self.dir / "helm-home"
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_DATA_HOME": str(home / "data"),
        }
        proc = subprocess.run([str(binary), *map(str, args)], env=env, capture_output=True, text=True, timeout=120,
                              input=stdin)  # fmt: skip
        if proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(map(str, args))} failed: {proc.stderr}")
        return proc.stdout

    def login(self) -> None:
        tls = ["--ca-file", str(self.ca_file)] if self.tls else ["--insecure"]
        self.helm("registry", "login", self.host, "--username", self.username, "--password-stdin", *tls,
                  stdin=self.password)  # fmt: skip

    def push(self, files: Mapping[str, str], to: str = "charts") -> None:
        """Package the chart ``files`` and ``helm push`` it to ``oci://HOST/<to>``."""
        work = self.dir / "src" / secrets.token_hex(4)
        write_tree(work, files)
        out = self.dir / "pkg" / secrets.token_hex(4)
        out.mkdir(parents=True)
        self.helm("package", work, "--destination", out)
        (package,) = out.iterdir()
        self.login()
        tls = ["--ca-file", str(self.ca_file)] if self.tls else ["--plain-http"]
        self.helm("push", package, f"oci://{self.host}/{to}", *tls)
        shutil.rmtree(work)

    def requests(self) -> list[str]:
        """The request URIs the registry logged (its access log)."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            uri = entry.get("http.request.uri")
            if uri and entry.get("msg", "").startswith("response completed"):
                out.append(str(uri))
        return out

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _self_signed(cert_path: Path, key_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)


@pytest.fixture(scope="session")
def oci_registry_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """The registry over TLS, with a certificate of a CA the tests made (``.ca_file``)."""
    registry = Registry(tmp_path_factory.mktemp("oci-registry-tls"), tls=True)
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    registry = Registry(tmp_path_factory.mktemp("oci-registry"))
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()
