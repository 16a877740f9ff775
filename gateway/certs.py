"""A development certificate authority for mutual TLS, and the identity a certificate carries.

``colending-gateway certs init`` makes the CA in ``data/certs``; ``certs issue`` makes a client
certificate whose URI SAN names the caller (``colending://partner/bank-a``,
``colending://platform``, ``colending://admin``); ``certs server`` makes the gateway's own. Keys
are P-256 (every TLS stack a bank runs accepts them), written 0600. Production operators bring
their own CA: the gateway only needs its CA certificate, its server key and certificate, and
client certificates with the same URI SAN form.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

URI_SCHEME = "colending://"
CA_DAYS = 3650
LEAF_DAYS = 365
# The name in the gateway's own certificate. It is no caller: the gateway refuses it as one.
GATEWAY = "gateway"


class CertificateError(Exception):
    """A certificate or key file is missing, unreadable or does not say who it is."""


@dataclass(frozen=True, slots=True)
class IssuedFiles:
    key: Path
    certificate: Path


def init_ca(directory: Path, *, name: str = "colending development CA") -> IssuedFiles:
    """Create the CA (refuses to overwrite one)."""
    key_path, cert_path = directory / "ca.key", directory / "ca.pem"
    if cert_path.exists() or key_path.exists():
        raise CertificateError(f"a CA already exists in {directory}; remove it to start over")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return IssuedFiles(key=key_path, certificate=cert_path)


def issue_client(directory: Path, *, identity: str, out: Path) -> IssuedFiles:
    """A client certificate for ``identity`` ("partner/<id>", "platform" or "admin")."""
    return _issue(
        directory,
        common_name=identity,
        names=[x509.UniformResourceIdentifier(URI_SCHEME + identity)],
        usage=[ExtendedKeyUsageOID.CLIENT_AUTH],
        out=out,
        stem=identity.replace("/", "-"),
    )


def issue_server(
    directory: Path,
    *,
    hosts: list[str],
    out: Path,
    stem: str = "server",
    identity: str | None = GATEWAY,
) -> IssuedFiles:
    """A server certificate for ``hosts`` (names or IP addresses): by default the gateway's,
    which it also presents as a client when it pushes to a bank (hence both key usages and the
    ``colending://gateway`` name a bank's receiver checks). A bank's receiver passes
    ``identity=None``."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    if identity is not None:
        names.append(x509.UniformResourceIdentifier(URI_SCHEME + identity))
    return _issue(
        directory,
        common_name=hosts[0],
        names=names,
        usage=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        out=out,
        stem=stem,
    )


def identity_of(pem: bytes) -> str | None:
    """The caller a client certificate names in its ``colending://`` URI SAN, if any."""
    try:
        certificate = x509.load_pem_x509_certificate(pem)
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        uris = names.value.get_values_for_type(x509.UniformResourceIdentifier)
    except Exception:  # any certificate we cannot read names nobody
        return None
    identities = [u.removeprefix(URI_SCHEME) for u in uris if u.startswith(URI_SCHEME)]
    # Exactly one: a certificate naming two callers (its CA's mistake) names none.
    return identities[0] if len(identities) == 1 else None


def _issue(
    directory: Path,
    *,
    common_name: str,
    names: list[x509.GeneralName],
    usage: list[x509.ObjectIdentifier],
    out: Path,
    stem: str,
) -> IssuedFiles:
    try:
        ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    except FileNotFoundError:
        raise CertificateError(f"no CA in {directory}: run `certs init` first") from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{directory / 'ca.key'} is not a P-256 key")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=LEAF_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = IssuedFiles(key=out / f"{stem}.key", certificate=out / f"{stem}.pem")
    _write_key(files.key, key)
    files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return files


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)  # the mode of open() applies only to a file it creates
        f.write(pem)
