"""Mutual TLS over real sockets: the client certificate, not metadata, says who calls."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from colending.v1 import admin_service_pb2, admin_service_pb2_grpc
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from testkit import request_id

from gateway.certs import _issue, init_ca, issue_client, issue_server
from gateway.server import ServerConfig, TlsFiles, build_server, open_gateway
from partners.sdk import BankClient


@dataclass
class Pki:
    ca: Path
    out: Path

    def credentials(
        self, identity: str | None, *, ca: Path | None = None
    ) -> grpc.ChannelCredentials:
        root = (ca or self.ca).joinpath("ca.pem").read_bytes()
        if identity is None:
            return grpc.ssl_channel_credentials(root_certificates=root)
        files = issue_client(self.ca, identity=identity, out=self.out)
        return grpc.ssl_channel_credentials(
            root_certificates=root,
            private_key=files.key.read_bytes(),
            certificate_chain=files.certificate.read_bytes(),
        )


@pytest.fixture
def tls_gateway(tmp_path: Path) -> Iterator[tuple[str, Pki]]:
    ca = tmp_path / "ca"
    init_ca(ca)
    server_files = issue_server(ca, hosts=["localhost", "127.0.0.1"], out=tmp_path / "server")
    config = ServerConfig(
        data_dir=tmp_path / "data",
        port=0,
        tls=TlsFiles(
            key=server_files.key,
            certificate=server_files.certificate,
            client_ca=ca / "ca.pem",
        ),
    )
    gateway = open_gateway(config)
    server, port = build_server(config, gateway=gateway)
    server.start()
    try:
        yield f"localhost:{port}", Pki(ca=ca, out=tmp_path / "clients")
    finally:
        server.stop(grace=None).wait()


def _register(channel: grpc.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> None:
    admin_service_pb2_grpc.AdminServiceStub(channel).RegisterPartner(
        admin_service_pb2.RegisterPartnerRequest(
            request_id=request_id(), partner_id="bank-a", display_name="Bank A"
        ),
        metadata=metadata,
        timeout=10,
    )


def test_the_certificate_names_the_caller(tls_gateway: tuple[str, Pki]) -> None:
    target, pki = tls_gateway
    with grpc.secure_channel(target, pki.credentials("admin")) as channel:
        _register(channel)  # no metadata needed: the certificate says "admin"
    with grpc.secure_channel(target, pki.credentials("platform")) as channel:
        # Metadata claiming to be the operator is ignored over TLS.
        with pytest.raises(grpc.RpcError) as refused:
            _register(channel, (("x-colending-caller", "admin"),))
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    bank = BankClient.connect(
        target, bank_id="bank-a", credentials=pki.credentials("partner/bank-a")
    )
    with bank:
        assert bank.pull().referrals == []
        assert bank.signing_keys()  # a bank's own calls work with its certificate


def test_no_certificate_no_call(tls_gateway: tuple[str, Pki]) -> None:
    """Without a client certificate the handshake fails: no metadata can stand in for one."""
    target, pki = tls_gateway
    with (
        grpc.secure_channel(target, pki.credentials(None)) as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        _register(channel, (("x-colending-caller", "admin"),))
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE


def test_a_certificate_without_an_identity_is_unauthenticated(
    tls_gateway: tuple[str, Pki], tmp_path: Path
) -> None:
    target, pki = tls_gateway
    # A client certificate the right CA signed, naming a DNS name rather than a caller.
    stray = _issue(
        pki.ca,
        common_name="example.test",
        names=[x509.DNSName("example.test")],
        usage=[ExtendedKeyUsageOID.CLIENT_AUTH],
        out=tmp_path / "stray",
        stem="stray",
    )
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(pki.ca / "ca.pem").read_bytes(),
        private_key=stray.key.read_bytes(),
        certificate_chain=stray.certificate.read_bytes(),
    )
    with (
        grpc.secure_channel(target, credentials) as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        _register(channel)
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "names no colending:// identity" in (refused.value.details() or "")


def test_a_certificate_from_another_ca_is_refused(
    tls_gateway: tuple[str, Pki], tmp_path: Path
) -> None:
    target, pki = tls_gateway
    rogue = tmp_path / "rogue-ca"
    init_ca(rogue)
    forged = issue_client(rogue, identity="admin", out=tmp_path / "rogue")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(pki.ca / "ca.pem").read_bytes(),
        private_key=forged.key.read_bytes(),
        certificate_chain=forged.certificate.read_bytes(),
    )
    with (
        grpc.secure_channel(target, credentials) as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        _register(channel)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE  # the handshake fails


def test_key_files_are_private(tmp_path: Path) -> None:
    files = init_ca(tmp_path / "ca")
    assert oct(files.key.stat().st_mode & 0o777) == "0o600"
    client = issue_client(tmp_path / "ca", identity="partner/bank-a", out=tmp_path / "c")
    assert oct(client.key.stat().st_mode & 0o777) == "0o600"


def test_a_certificate_naming_two_callers_names_none(tmp_path: Path) -> None:
    from gateway.certs import identity_of

    init_ca(tmp_path / "ca")
    two = _issue(
        tmp_path / "ca",
        common_name="confused",
        names=[
            x509.UniformResourceIdentifier("colending://partner/bank-a"),
            x509.UniformResourceIdentifier("colending://admin"),
        ],
        usage=[ExtendedKeyUsageOID.CLIENT_AUTH],
        out=tmp_path / "two",
        stem="two",
    )
    assert identity_of(two.certificate.read_bytes()) is None
    assert identity_of(b"not a certificate") is None
    one = issue_client(tmp_path / "ca", identity="partner/bank-a", out=tmp_path / "one")
    assert identity_of(one.certificate.read_bytes()) == "partner/bank-a"
