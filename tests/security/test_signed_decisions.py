"""Signed decisions over mutual TLS: a bank's registered key speaks for it, and a tampered,
replayed, stale, wrongly signed or unsigned decision is refused with its exact code and leaves
every table as it was."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import sqlalchemy
from colending.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    common_pb2,
    financing_pb2,
    partner_bank_service_pb2,
    partner_bank_service_pb2_grpc,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from testkit import ALL_SCOPES, in_days, merchant, refused_unchanged, request_id, running_gateway
from tlskit import Pki

from gateway.store.db import sqlite_url
from partners.sdk import BankClient, PlatformClient, decision_key_bytes, sign_decision

pb = partner_bank_service_pb2
BANK_KEY = Ed25519PrivateKey.generate()
DECLINE = financing_pb2.Decision(
    outcome=financing_pb2.DECISION_OUTCOME_DECLINE, decline_reason_codes=["INSUFFICIENT_HISTORY"]
)


@dataclass
class Network:
    bank: partner_bank_service_pb2_grpc.PartnerBankServiceStub  # bank-a, over its certificate
    client: BankClient  # bank-a's SDK client, signing with BANK_KEY
    cases: list[str]  # bank-a's acknowledged cases
    engine: sqlalchemy.Engine

    def refused(self, code: grpc.StatusCode, call: Callable[[], object]) -> str:
        return str(refused_unchanged(self.engine, code, call).details())

    def decide(
        self, case_id: str, envelope: common_pb2.Envelope | None, *, plain: bool = True
    ) -> object:
        """SubmitDecision with the signed statement and, if ``plain``, the unsigned copy."""
        request = pb.SubmitDecisionRequest(request_id=request_id(), case_id=case_id)
        if plain:
            request.decision.CopyFrom(DECLINE)
        if envelope is not None:
            request.signed_decision.CopyFrom(envelope)
        return self.bank.SubmitDecision(request, timeout=10)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    root = tmp_path_factory.mktemp("signed")
    pki = Pki.create(root / "pki")
    with running_gateway(root / "data", tls=pki.gateway_files()) as running:
        admin = admin_service_pb2_grpc.AdminServiceStub(pki.channel(running.target, "admin"))
        admin.RegisterPartner(
            admin_service_pb2.RegisterPartnerRequest(
                request_id=request_id(),
                partner_id="bank-a",
                display_name="Bank A",
                decision_public_key=decision_key_bytes(BANK_KEY),
            ),
            timeout=10,
        )
        platform = PlatformClient(channel=pki.channel(running.target, "platform"))
        channel = pki.channel(running.target, "partner/bank-a")
        client = BankClient(channel=channel, bank_id="bank-a", decision_key=BANK_KEY)
        for n in range(3):
            consent = platform.record_consent(
                platform_merchant_id=f"m-{n}",
                bank_ids=["bank-a"],
                data_scopes=list(ALL_SCOPES),
                expires_at=in_days(90),
                evidence_reference=f"consent:m-{n}",
            )
            platform.submit_referral(
                merchant=merchant(merchant_id=f"m-{n}"),
                consent_id=consent.consent_id,
                bank_ids=["bank-a"],
            )
        cases = [r.case_id for r in client.pull().referrals]
        for case_id in cases:
            client.acknowledge(case_id, bank_reference=case_id[-6:])
        yield Network(
            bank=partner_bank_service_pb2_grpc.PartnerBankServiceStub(channel),
            client=client,
            cases=cases,
            engine=sqlalchemy.create_engine(sqlite_url(running.data_dir)),
        )


def signed(case_id: str, **kw: Any) -> common_pb2.Envelope:
    kw.setdefault("private_key", BANK_KEY)
    return sign_decision(DECLINE, case_id=case_id, bank_id="bank-a", **kw)


def test_the_sdk_signs_and_a_replay_is_already_exists(net: Network) -> None:
    envelope = signed(net.cases[0])
    net.decide(net.cases[0], envelope)
    net.refused(grpc.StatusCode.ALREADY_EXISTS, lambda: net.decide(net.cases[0], envelope))
    # The SDK signs by itself when it holds the key.
    case = net.client.submit_decision(net.cases[1], DECLINE, request_id="decide-once")
    assert case.state == financing_pb2.FINANCING_STATE_DECLINED
    assert case.history[-1].evidence_public_key == decision_key_bytes(BANK_KEY)
    # Called again with the request id (a lost reply), it signs afresh and gets the first answer.
    assert net.client.submit_decision(net.cases[1], DECLINE, request_id="decide-once") == case


def test_a_tampered_decision_is_invalid(net: Network) -> None:
    envelope = signed(net.cases[2])
    statement = financing_pb2.DecisionStatement.FromString(envelope.payload)
    statement.decision.outcome = financing_pb2.DECISION_OUTCOME_APPROVE
    envelope.payload = statement.SerializeToString()
    details = net.refused(
        grpc.StatusCode.INVALID_ARGUMENT, lambda: net.decide(net.cases[2], envelope, plain=False)
    )
    assert "does not verify" in details


def test_a_stale_decision_is_invalid(net: Network) -> None:
    old = datetime.now(UTC) - timedelta(minutes=10)
    envelope = signed(net.cases[2], signed_at=old)
    details = net.refused(
        grpc.StatusCode.INVALID_ARGUMENT, lambda: net.decide(net.cases[2], envelope)
    )
    assert "signed_at" in details


def test_a_decision_signed_by_another_key_is_invalid(net: Network) -> None:
    envelope = signed(net.cases[2], private_key=Ed25519PrivateKey.generate())
    details = net.refused(
        grpc.StatusCode.INVALID_ARGUMENT, lambda: net.decide(net.cases[2], envelope)
    )
    assert "registered decision key" in details


def test_an_unsigned_decision_from_a_signing_bank_is_invalid(net: Network) -> None:
    details = net.refused(grpc.StatusCode.INVALID_ARGUMENT, lambda: net.decide(net.cases[2], None))
    assert "signed_decision" in details
