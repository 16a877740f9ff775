"""Refusals over real sockets with real certificates, each with its exact status code, and the
database unchanged after every one: an expired certificate, the gateway's own certificate used
as a caller, a suspended bank, one bank at another's case, each role at another's service, an
oversized message; and a bank's receiver refusing a push from anyone but the gateway."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy
from colending.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    bank_receiver_service_pb2,
    bank_receiver_service_pb2_grpc,
    blacklist_pb2,
    blacklist_service_pb2,
    blacklist_service_pb2_grpc,
    common_pb2,
    financing_pb2,
    partner_bank_service_pb2,
    partner_bank_service_pb2_grpc,
    referral_service_pb2,
    referral_service_pb2_grpc,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from testkit import (
    ALL_SCOPES,
    RunningGateway,
    in_days,
    merchant,
    refused_unchanged,
    request_id,
    running_gateway,
)
from tlskit import Pki

from gateway.server import MAX_MESSAGE_BYTES
from gateway.store.db import sqlite_url
from partners.mock import MockBank
from partners.sdk import BankClient, PlatformClient
from partners.sdk.tls import client_credentials

pb = partner_bank_service_pb2
FS = financing_pb2


@dataclass
class Gateway:
    running: RunningGateway
    pki: Pki
    case_b: str  # bank-b's acknowledged case
    engine: sqlalchemy.Engine

    def stub(self, identity: str, stub: Callable[[grpc.Channel], Any]) -> Any:
        return stub(self.pki.channel(self.running.target, identity))

    def bank(self, bank_id: str) -> partner_bank_service_pb2_grpc.PartnerBankServiceStub:
        return self.stub(f"partner/{bank_id}", partner_bank_service_pb2_grpc.PartnerBankServiceStub)

    def refused(self, code: grpc.StatusCode, call: Callable[[], object]) -> grpc.RpcError:
        return refused_unchanged(self.engine, code, call)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Banks a, b and c (c suspended), and one referral to bank-b, which acknowledged it."""
    root = tmp_path_factory.mktemp("refusals")
    pki = Pki.create(root / "pki")
    with running_gateway(root / "data", tls=pki.gateway_files()) as running:
        target = running.target
        admin = admin_service_pb2_grpc.AdminServiceStub(pki.channel(target, "admin"))
        for bank_id in ("bank-a", "bank-b", "bank-c"):
            admin.RegisterPartner(
                admin_service_pb2.RegisterPartnerRequest(
                    request_id=request_id(), partner_id=bank_id, display_name=bank_id
                ),
                timeout=10,
            )
        admin.SuspendPartner(
            admin_service_pb2.SuspendPartnerRequest(
                request_id=request_id(), partner_id="bank-c", reason="contract ended"
            ),
            timeout=10,
        )
        platform = PlatformClient(channel=pki.channel(target, "platform"))
        consent = platform.record_consent(
            platform_merchant_id="m-1",
            bank_ids=["bank-b"],
            data_scopes=list(ALL_SCOPES),
            expires_at=in_days(90),
            evidence_reference="consent:m-1",
        )
        platform.submit_referral(
            merchant=merchant(merchant_id="m-1"), consent_id=consent.consent_id, bank_ids=["bank-b"]
        )
        bank_b = BankClient(channel=pki.channel(target, "partner/bank-b"), bank_id="bank-b")
        [referral] = bank_b.pull().referrals
        bank_b.acknowledge(referral.case_id, bank_reference="B-1")
        engine = sqlalchemy.create_engine(sqlite_url(running.data_dir))
        yield Gateway(running=running, pki=pki, case_b=referral.case_id, engine=engine)
        engine.dispose()


def _expired_client_certificate(pki: Pki, out: Path) -> grpc.ChannelCredentials:
    """A certificate the right CA signed for bank-a, valid only until yesterday."""
    return _client_certificate(
        pki, out, uris=["colending://partner/bank-a"], expired=True, stem="expired"
    )


def _client_certificate(
    pki: Pki, out: Path, *, uris: list[str], expired: bool = False, stem: str
) -> grpc.ChannelCredentials:
    """A client certificate the right CA signed, naming ``uris``, built by hand (the CLI only
    issues well-formed ones)."""
    ca_key = serialization.load_pem_private_key((pki.root / "ca" / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "partner/bank-a")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=30))
        .not_valid_after(now + timedelta(days=-1 if expired else 1))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (out / f"{stem}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return client_credentials(ca=pki.ca, certificate=out / f"{stem}.pem", key=out / f"{stem}.key")


def test_an_expired_certificate_fails_the_handshake(gateway: Gateway, tmp_path: Path) -> None:
    credentials = _expired_client_certificate(gateway.pki, tmp_path)
    with grpc.secure_channel(gateway.running.target, credentials) as channel:
        bank = partner_bank_service_pb2_grpc.PartnerBankServiceStub(channel)
        gateway.refused(
            grpc.StatusCode.UNAVAILABLE,  # no handshake, so no call: gRPC says UNAVAILABLE
            lambda: bank.GetFinancingCase(
                pb.GetFinancingCaseRequest(case_id=gateway.case_b), timeout=10
            ),
        )


def test_the_gateways_own_certificate_names_no_caller(gateway: Gateway) -> None:
    """The gateway presents its certificate when it pushes; it must not work as a caller."""
    files = gateway.pki.gateway_files()
    credentials = client_credentials(
        ca=files.client_ca, certificate=files.certificate, key=files.key
    )
    with grpc.secure_channel(gateway.running.target, credentials) as channel:
        admin = admin_service_pb2_grpc.AdminServiceStub(channel)
        gateway.refused(
            grpc.StatusCode.UNAUTHENTICATED,
            lambda: admin.SuspendPartner(
                admin_service_pb2.SuspendPartnerRequest(
                    request_id=request_id(), partner_id="bank-a", reason="forged"
                ),
                timeout=10,
            ),
        )


def test_a_suspended_bank_is_refused_with_its_reason(gateway: Gateway) -> None:
    """A valid certificate of a suspended bank: FAILED_PRECONDITION naming PARTNER_SUSPENDED
    (as in development mode), on its own service and on the blacklist."""
    bank_c = gateway.bank("bank-c")
    error = gateway.refused(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: bank_c.PullReferrals(pb.PullReferralsRequest(), timeout=10),
    )
    assert "suspended" in (error.details() or "")
    blacklist = gateway.stub("partner/bank-c", blacklist_service_pb2_grpc.BlacklistServiceStub)
    gateway.refused(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: blacklist.ReportDefault(
            blacklist_service_pb2.ReportDefaultRequest(
                request_id=request_id(),
                borrower=blacklist_pb2.RawIdentifier(
                    kind=blacklist_pb2.IDENTIFIER_KIND_UNIFIED_SOCIAL_CREDIT_CODE,
                    value=merchant(merchant_id="m-1").identity.unified_social_credit_code,
                ),
                reason=blacklist_pb2.BLACKLIST_REASON_FRAUD,
                outstanding=common_pb2.Money(currency_code="CNY", amount_minor=100),
                default_date=common_pb2.Date(year=2026, month=3, day=1),
            ),
            timeout=10,
        ),
    )


def test_bank_a_finds_nothing_of_bank_bs_case(gateway: Gateway) -> None:
    """Reading, acknowledging, deciding on or reporting for another bank's case is NOT_FOUND,
    exactly as for a case that does not exist, so case ids cannot be probed."""
    bank_a = gateway.bank("bank-a")
    case = gateway.case_b
    today = datetime.now(UTC).date()
    date = common_pb2.Date(year=today.year, month=today.month, day=today.day)
    calls: dict[str, Callable[[], object]] = {
        "read": lambda: bank_a.GetFinancingCase(
            pb.GetFinancingCaseRequest(case_id=case), timeout=10
        ),
        "acknowledge": lambda: bank_a.AcknowledgeReferral(
            pb.AcknowledgeReferralRequest(
                request_id=request_id(), case_id=case, bank_reference="A-1"
            ),
            timeout=10,
        ),
        "decide": lambda: bank_a.SubmitDecision(
            pb.SubmitDecisionRequest(
                request_id=request_id(),
                case_id=case,
                decision=FS.Decision(
                    outcome=FS.DECISION_OUTCOME_DECLINE, decline_reason_codes=["RISK_APPETITE"]
                ),
            ),
            timeout=10,
        ),
        "report": lambda: bank_a.ReportLoanEvent(
            pb.ReportLoanEventRequest(
                request_id=request_id(),
                case_id=case,
                event=FS.LoanEvent(
                    type=FS.LOAN_EVENT_TYPE_OVERDUE, event_date=date, days_overdue=5
                ),
            ),
            timeout=10,
        ),
    }
    for what, call in calls.items():
        error = gateway.refused(grpc.StatusCode.NOT_FOUND, call)
        assert case in (error.details() or ""), what
    missing = gateway.refused(
        grpc.StatusCode.NOT_FOUND,
        lambda: bank_a.GetFinancingCase(
            pb.GetFinancingCaseRequest(case_id="case_missing"), timeout=10
        ),
    )
    assert (
        missing.details().replace("case_missing", case)
        == gateway.refused(  # type: ignore[union-attr]
            grpc.StatusCode.NOT_FOUND, calls["read"]
        ).details()
    )
    listed = bank_a.ListFinancingCases(pb.ListFinancingCasesRequest(), timeout=10)
    assert list(listed.financing_cases) == []
    # bank-b itself still reads it: the refusals were about the caller, not the case.
    assert (
        gateway.bank("bank-b")
        .GetFinancingCase(pb.GetFinancingCaseRequest(case_id=case), timeout=10)
        .financing_case.state
        == FS.FINANCING_STATE_ACKNOWLEDGED
    )


def test_each_role_is_refused_anothers_service(gateway: Gateway) -> None:
    # The platform reads a case (its signed evidence), but decides nothing for a bank.
    platform_as_bank = gateway.stub(
        "platform", partner_bank_service_pb2_grpc.PartnerBankServiceStub
    )
    gateway.refused(
        grpc.StatusCode.PERMISSION_DENIED,
        lambda: platform_as_bank.SubmitDecision(
            pb.SubmitDecisionRequest(
                request_id=request_id(),
                case_id=gateway.case_b,
                decision=FS.Decision(
                    outcome=FS.DECISION_OUTCOME_DECLINE, decline_reason_codes=["RISK_APPETITE"]
                ),
            ),
            timeout=10,
        ),
    )
    bank_as_platform = gateway.stub("partner/bank-b", referral_service_pb2_grpc.ReferralServiceStub)
    gateway.refused(
        grpc.StatusCode.PERMISSION_DENIED,
        lambda: bank_as_platform.SubmitReferral(
            referral_service_pb2.SubmitReferralRequest(
                request_id=request_id(), merchant=merchant(merchant_id="m-2"), bank_ids=["bank-b"]
            ),
            timeout=10,
        ),
    )
    for identity in ("partner/bank-b", "platform"):
        admin = gateway.stub(identity, admin_service_pb2_grpc.AdminServiceStub)
        error = gateway.refused(
            grpc.StatusCode.PERMISSION_DENIED,
            lambda admin=admin: admin.SuspendPartner(
                admin_service_pb2.SuspendPartnerRequest(
                    request_id=request_id(), partner_id="bank-a", reason="not mine to do"
                ),
                timeout=10,
            ),
        )
        assert f"{identity} may not call colending.v1.AdminService" in (error.details() or "")


def test_an_oversized_message_is_refused_before_it_is_read(gateway: Gateway) -> None:
    profile = merchant(merchant_id="m-big")
    profile.identity.legal_name = "x" * MAX_MESSAGE_BYTES
    platform = gateway.stub("platform", referral_service_pb2_grpc.ReferralServiceStub)
    gateway.refused(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        lambda: platform.SubmitReferral(
            referral_service_pb2.SubmitReferralRequest(
                request_id=request_id(), merchant=profile, bank_ids=["bank-b"]
            ),
            timeout=30,
        ),
    )


def test_a_receiver_answers_only_the_gateways_certificate(gateway: Gateway, tmp_path: Path) -> None:
    """A bank's push receiver over mutual TLS: another bank's valid certificate is refused, and
    so is one naming the gateway and a bank at once (a CA's mistake names nobody)."""
    bank = MockBank(bank_id="bank-b", verify=lambda envelope: pytest.fail("never verified"))
    port = bank.start(credentials=gateway.pki.receiver("bank-b"))
    both = _client_certificate(
        gateway.pki,
        tmp_path,
        uris=["colending://partner/bank-a", "colending://gateway"],
        stem="both",
    )
    try:
        for credentials in (gateway.pki.credentials("partner/bank-a"), both):
            with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
                receiver = bank_receiver_service_pb2_grpc.BankReceiverServiceStub(channel)
                with pytest.raises(grpc.RpcError) as refused:
                    receiver.DeliverReferral(
                        bank_receiver_service_pb2.DeliverReferralRequest(
                            referral_id="r", case_id="c"
                        ),
                        timeout=10,
                    )
            assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert bank.stats.pushes == 0
    finally:
        bank.stop()
