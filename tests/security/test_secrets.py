"""Secrets stay secret: every private key the gateway or its CA writes is mode 0600, and no
private key, nor the network key, reaches a log line or an error message, whatever the calls."""

from __future__ import annotations

import base64
import logging
import os
import stat
from pathlib import Path

import grpc
import pytest
from colending.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    partner_bank_service_pb2,
    partner_bank_service_pb2_grpc,
)
from cryptography.hazmat.primitives import serialization
from testkit import ALL_SCOPES, in_days, merchant, request_id, running_gateway
from tlskit import Pki

from gateway.certs import issue_client
from gateway.server import ServerConfig, open_gateway
from gateway.signing.keyring import KeyRing
from partners.sdk import BankClient, PlatformClient


def _private_key_files(root: Path) -> list[Path]:
    """Referral and log signing keys (``*.pem`` holding a private key), the network key, and
    every TLS key (``*.key``)."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".key" or b"PRIVATE KEY" in path.read_bytes():
            found.append(path)
    return sorted(found)


def test_every_private_key_file_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    open_gateway(ServerConfig(data_dir=data))
    KeyRing.open(data / "keys").rotate()  # two referral signing keys
    pki = Pki.create(data / "certs")
    pki.credentials("partner/bank-a")
    pki.receiver("bank-a")
    # Re-issuing over an existing, too-open key file tightens it rather than keeping its mode.
    loose = data / "certs" / "clients" / "admin.key"
    loose.parent.mkdir(parents=True, exist_ok=True)
    loose.write_bytes(b"old")
    os.chmod(loose, 0o644)
    issue_client(data / "certs" / "ca", identity="admin", out=loose.parent)

    keys = _private_key_files(data)
    names = {p.relative_to(data).parts[0] for p in keys}
    assert names == {"keys", "log-keys", "network-key", "certs"}
    assert len([p for p in keys if p.parts[-2] == "keys"]) == 2
    assert {p.name for p in keys if "certs" in p.parts} >= {
        "ca.key",
        "server.key",
        "partner-bank-a.key",
        "bank-a.key",
        "admin.key",
    }
    modes = {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in keys}
    assert set(modes.values()) == {"0o600"}, modes


def _secrets(data: Path) -> list[str]:
    """Every private key as it could leak: PEM body lines, raw bytes in hex and base64, and the
    network key."""
    found = []
    for path in _private_key_files(data):
        content = path.read_bytes()
        if path.name == "network.key":
            found.append(content.decode().strip())
            continue
        if path.parent.name in ("keys", "log-keys") or path.suffix == ".key":
            if b"PRIVATE KEY" not in content:
                continue
            found += [
                line
                for line in content.decode().splitlines()
                if line and not line.startswith("-----")
            ]
            key = serialization.load_pem_private_key(content, None)
            raw = key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            found += [raw.hex(), raw[-32:].hex(), base64.b64encode(raw[-32:]).decode()]
    return found


def test_no_private_key_reaches_a_log_line_or_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pki = Pki.create(tmp_path / "pki")
    errors: list[str] = []
    with running_gateway(tmp_path / "data", tls=pki.gateway_files()) as running:
        target = running.target
        admin = admin_service_pb2_grpc.AdminServiceStub(pki.channel(target, "admin"))
        admin.RegisterPartner(
            admin_service_pb2.RegisterPartnerRequest(
                request_id=request_id(), partner_id="bank-a", display_name="Bank A"
            ),
            timeout=10,
        )
        admin.RotateSigningKey(
            admin_service_pb2.RotateSigningKeyRequest(request_id=request_id()), timeout=10
        )
        platform = PlatformClient(channel=pki.channel(target, "platform"))
        consent = platform.record_consent(
            platform_merchant_id="m-1",
            bank_ids=["bank-a"],
            data_scopes=list(ALL_SCOPES),
            expires_at=in_days(90),
            evidence_reference="consent:m-1",
        )
        platform.submit_referral(
            merchant=merchant(merchant_id="m-1"), consent_id=consent.consent_id, bank_ids=["bank-a"]
        )
        bank = BankClient(channel=pki.channel(target, "partner/bank-a"), bank_id="bank-a")
        [referral] = bank.pull().referrals
        bank.acknowledge(referral.case_id, bank_reference="A-1")
        stub = partner_bank_service_pb2_grpc.PartnerBankServiceStub(
            pki.channel(target, "partner/bank-a")
        )
        for call in (
            lambda: stub.GetFinancingCase(
                partner_bank_service_pb2.GetFinancingCaseRequest(case_id="case_missing"),
                timeout=10,
            ),
            lambda: stub.AcknowledgeReferral(
                partner_bank_service_pb2.AcknowledgeReferralRequest(request_id="bad id!"),
                timeout=10,
            ),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                call()
            errors.append(refused.value.details() or "")
        data_dir = running.data_dir
    secrets = _secrets(data_dir) + _secrets(pki.root)
    assert len(secrets) > 10  # signing, log and network keys, and the TLS keys, were found
    text = caplog.text + "\n".join(errors)
    assert "RotateSigningKey OK" in caplog.text  # the calls were logged...
    assert [s for s in secrets if s in text] == []  # ...and no key with them
