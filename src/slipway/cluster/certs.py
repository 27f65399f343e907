"""The local cluster's PKI: one CA, the API server's serving certificate, client certificates.

ECDSA P-256 keys keep generation instant. Client certificates carry the identity Kubernetes'
default RBAC already knows (``system:masters`` for the admin, ``system:kube-controller-manager``,
``system:kube-scheduler``), so no bootstrap RBAC is needed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALID = dt.timedelta(days=3650)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def write_pki(d: Path) -> None:
    """Create every key and certificate the cluster needs under ``d``."""
    d.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = _key()
    ca_name = _name("slipway-local-ca")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALID)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(d / "ca.key", ca_key)
    _write_cert(d / "ca.crt", ca)

    def issue(name: str, subject: x509.Name, usage: list[x509.ObjectIdentifier], sans: list[x509.GeneralName]) -> None:
        key = _key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + _VALID)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        _write_key(d / f"{name}.key", key)
        _write_cert(d / f"{name}.crt", builder.sign(ca_key, hashes.SHA256()))

    dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"]
    issue(
        "apiserver",
        _name("kube-apiserver"),
        [ExtendedKeyUsageOID.SERVER_AUTH],
        [x509.DNSName(n) for n in dns]
        + [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
        ],
    )
    client = [ExtendedKeyUsageOID.CLIENT_AUTH]
    issue("admin", _name("slipway-admin", "system:masters"), client, [])
    issue("controller-manager", _name("system:kube-controller-manager"), client, [])
    issue("scheduler", _name("system:kube-scheduler"), client, [])
    # The service account token signing pair.
    sa = _key()
    _write_key(d / "sa.key", sa)
    (d / "sa.pub").write_bytes(
        sa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def kubeconfig(server: str, certs: Path, user: str, context: str = "slipway-local") -> str:
    """A kubeconfig using the client certificate ``certs/<user>.crt``, with absolute file paths."""
    return f"""apiVersion: v1
kind: Config
clusters:
- name: {context}
  cluster:
    server: {server}
    certificate-authority: {certs / "ca.crt"}
users:
- name: {user}
  user:
    client-certificate: {certs / (user + ".crt")}
    client-key: {certs / (user + ".key")}
contexts:
- name: {context}
  context:
    cluster: {context}
    user: {user}
    namespace: default
current-context: {context}
"""
