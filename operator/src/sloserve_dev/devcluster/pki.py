"""Certificates for a throw-away control plane: one CA, a serving cert, an admin client cert.

Client-certificate auth with RBAC is what real clusters use, so the operator's RBAC and its
kubeconfig loading are exercised exactly as in production (no insecure port, no token hacks).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=7)
ADMIN_USER = "sloserve-admin"
ADMIN_GROUP = "system:masters"
# The apiserver's in-cluster service IP is the first address of --service-cluster-ip-range.
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = "10.0.0.1"

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files that the control-plane flags and the kubeconfig refer to."""

    ca_cert: Path
    ca_key: Path
    apiserver_cert: Path
    apiserver_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path

    @classmethod
    def in_dir(cls, directory: Path) -> Pki:
        return cls(
            ca_cert=directory / "ca.crt",
            ca_key=directory / "ca.key",
            apiserver_cert=directory / "apiserver.crt",
            apiserver_key=directory / "apiserver.key",
            admin_cert=directory / "admin.crt",
            admin_key=directory / "admin.key",
            sa_key=directory / "sa.key",
            sa_pub=directory / "sa.pub",
        )


def _new_key() -> PrivateKey:
    # P-256 keys: generating four RSA-2048 keys costs ~1 s of scarce CPU per session.
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _sign(
    subject: x509.Name,
    key: PrivateKey,
    issuer: tuple[x509.Certificate, PrivateKey] | None,
    *,
    is_ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _write_key(path: Path, key: PrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_pki(directory: Path) -> Pki:
    """Write a fresh CA, apiserver serving cert, admin client cert and service-account keys."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki.in_dir(directory)
    ca_key = _new_key()
    ca = _sign(_name("sloserve-testenv-ca"), ca_key, None, is_ca=True)
    _write_cert(pki.ca_cert, ca)
    _write_key(pki.ca_key, ca_key)

    server_key = _new_key()
    sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes.default.svc"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address(KUBERNETES_SERVICE_IP)),
    ]
    server = _sign(
        _name("kube-apiserver"),
        server_key,
        (ca, ca_key),
        sans=sans,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
    )
    _write_cert(pki.apiserver_cert, server)
    _write_key(pki.apiserver_key, server_key)

    admin_key = _new_key()
    admin = _sign(
        _name(ADMIN_USER, (ADMIN_GROUP,)),
        admin_key,
        (ca, ca_key),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    _write_cert(pki.admin_cert, admin)
    _write_key(pki.admin_key, admin_key)

    sa_key = _new_key()
    _write_key(pki.sa_key, sa_key)
    pki.sa_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki
