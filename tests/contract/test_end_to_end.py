"""The whole first path over real sockets and mutual TLS: the platform submits, a bank pulls
with the SDK, verifies the envelope against the published keys and acknowledges. SQLite and
PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from colending.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    financing_pb2,
    referral_pb2,
)
from testkit import ALL_SCOPES, in_days, merchant, request_id, running_gateway
from tlskit import Pki

from partners.sdk import BankClient, PlatformClient


def test_submit_pull_verify_acknowledge(data_dir: Path, database_url: str | None) -> None:
    pki = Pki.create(data_dir.parent / "pki")
    with (
        running_gateway(data_dir, database_url, tls=pki.gateway_files()) as running,
        pki.channel(running.target, "admin") as admin_channel,
        pki.channel(running.target, "platform") as platform_channel,
        pki.channel(running.target, "partner/bank-a") as bank_a_channel,
        pki.channel(running.target, "partner/bank-b") as bank_b_channel,
    ):
        admin = admin_service_pb2_grpc.AdminServiceStub(admin_channel)
        for bank_id in ("bank-a", "bank-b"):
            admin.RegisterPartner(
                admin_service_pb2.RegisterPartnerRequest(
                    request_id=request_id(), partner_id=bank_id, display_name=bank_id
                ),
                timeout=10,
            )
        platform = PlatformClient(channel=platform_channel)
        consent = platform.record_consent(
            platform_merchant_id="m-1001",
            bank_ids=["bank-a"],
            data_scopes=list(ALL_SCOPES),
            expires_at=in_days(90),
            evidence_reference="consent-form-sha256:ab12",
        )
        referral = platform.submit_referral(
            merchant=merchant(), consent_id=consent.consent_id, bank_ids=["bank-a"]
        )
        assert referral.state == referral_pb2.REFERRAL_STATE_ACTIVE
        [delivery] = referral.deliveries
        assert delivery.state == financing_pb2.FINANCING_STATE_REFERRED

        bank_a = BankClient(channel=bank_a_channel, bank_id="bank-a")
        page = bank_a.pull()
        [verified] = page.referrals
        assert verified.payload.referral_id == referral.referral_id
        assert verified.payload.bank_id == "bank-a"
        assert verified.payload.merchant.identity.platform_merchant_id == "m-1001"
        assert verified.payload.offer.total_limit.amount_minor > 0
        # The bytes the bank verified are the bytes the gateway stored and signed.
        assert verified.envelope.payload == delivery.envelope.payload

        case = bank_a.acknowledge(verified.payload.case_id, bank_reference="A-2026-0001")
        assert case.state == financing_pb2.FINANCING_STATE_ACKNOWLEDGED
        assert [e.to_state for e in case.history] == [
            financing_pb2.FINANCING_STATE_REFERRED,
            financing_pb2.FINANCING_STATE_DELIVERED,
            financing_pb2.FINANCING_STATE_ACKNOWLEDGED,
        ]
        # Acknowledged referrals are not pulled again; the other bank sees nothing.
        assert bank_a.pull(cursor="").referrals == []
        bank_b = BankClient(channel=bank_b_channel, bank_id="bank-b")
        assert bank_b.pull().referrals == []
        after = platform.get_referral(referral.referral_id)
        assert after.deliveries[0].bank_reference == "A-2026-0001"
        assert after.deliveries[0].state == financing_pb2.FINANCING_STATE_ACKNOWLEDGED


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_health_and_reflection_are_served(data_dir: Path, database_url: str | None) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    pki = Pki.create(data_dir.parent / "pki")
    with (
        running_gateway(data_dir, database_url, tls=pki.gateway_files()) as running,
        pki.channel(running.target, "partner/bank-a") as channel,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "colending.v1.ReferralService"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        [reply] = list(
            stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
        )
        names = {s.name for s in reply.list_services_response.service}
        assert {
            "colending.v1.ReferralService",
            "colending.v1.PartnerBankService",
            "colending.v1.BlacklistService",
            "colending.v1.AdminService",
        } <= names
