"""A gateway on real sockets, in its production mode (mutual TLS with real certificates), with
the platform, the operator and mock banks around it: each party on its own channel with its own
client certificate, each mock bank serving its pushes over TLS to the gateway alone, and every
bank signing its decisions and loan events with the decision key it registered."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from colending.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    delivery_pb2,
    partner_pb2,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from testkit import (
    ALL_SCOPES,
    FAST_DELIVERY,
    RunningGateway,
    in_days,
    merchant,
    request_id,
    running_gateway,
)
from tlskit import Pki

from gateway.domain.delivery import DeliveryPolicy
from partners.mock import MockBank, Script
from partners.sdk import BankClient, PlatformClient, decision_key_bytes


@dataclass
class Network:
    running: RunningGateway
    pki: Pki
    _channels: dict[str, grpc.Channel] = field(default_factory=dict)
    _decision_keys: dict[str, Ed25519PrivateKey] = field(default_factory=dict)

    @property
    def platform(self) -> PlatformClient:
        return PlatformClient(channel=self.channel_for("platform"))

    @property
    def admin(self) -> admin_service_pb2_grpc.AdminServiceStub:
        return admin_service_pb2_grpc.AdminServiceStub(self.channel_for("admin"))

    def channel_for(self, identity: str) -> grpc.Channel:
        """A channel whose client certificate names ``identity``, closed with the network."""
        if identity not in self._channels:
            self._channels[identity] = self.pki.channel(self.running.target, identity)
        return self._channels[identity]

    def decision_key(self, bank_id: str) -> Ed25519PrivateKey:
        return self._decision_keys.setdefault(bank_id, Ed25519PrivateKey.generate())

    def bank_client(self, bank_id: str) -> BankClient:
        return BankClient(
            channel=self.channel_for(f"partner/{bank_id}"),
            bank_id=bank_id,
            decision_key=self.decision_key(bank_id),
        )

    def register(self, bank_id: str, *, endpoint: str = "", ordered: bool = False) -> None:
        policy = partner_pb2.EligibilityPolicy(ordered_delivery=ordered) if ordered else None
        self.admin.RegisterPartner(
            admin_service_pb2.RegisterPartnerRequest(
                request_id=request_id(),
                partner_id=bank_id,
                display_name=bank_id,
                endpoint=endpoint,
                policy=policy,
                decision_public_key=decision_key_bytes(self.decision_key(bank_id)),
            ),
            timeout=10,
        )

    def refer(self, merchant_id: str, bank_ids: list[str]) -> str:
        consent = self.platform.record_consent(
            platform_merchant_id=merchant_id,
            bank_ids=bank_ids,
            data_scopes=list(ALL_SCOPES),
            expires_at=in_days(90),
            evidence_reference=f"consent:{merchant_id}",
        )
        referral = self.platform.submit_referral(
            merchant=merchant(merchant_id=merchant_id),
            consent_id=consent.consent_id,
            bank_ids=bank_ids,
        )
        return referral.referral_id

    def pushes(self, referral_id: str) -> list[delivery_pb2.DeliveryTask]:
        return [d.push for d in self.platform.get_referral(referral_id).deliveries]

    def tasks(self, state: int = 0) -> list[delivery_pb2.DeliveryTask]:
        response = self.admin.ListDeliveryTasks(
            admin_service_pb2.ListDeliveryTasksRequest(state=state), timeout=10
        )
        return list(response.tasks)


@contextmanager
def network(
    data_dir: Path, database_url: str | None, *, policy: DeliveryPolicy = FAST_DELIVERY
) -> Iterator[Network]:
    pki = Pki.create(data_dir.parent / "pki")
    with running_gateway(
        data_dir, database_url, delivery_policy=policy, tls=pki.gateway_files()
    ) as running:
        net = Network(running=running, pki=pki)
        try:
            yield net
        finally:
            for channel in net._channels.values():
                channel.close()


@contextmanager
def mock_bank(net: Network, bank_id: str, script: Script, **register: bool) -> Iterator[MockBank]:
    client = net.bank_client(bank_id)
    bank = MockBank(
        bank_id=bank_id, verify=client.verify, verify_alert=client.verify_alert, script=script
    )
    port = bank.start(credentials=net.pki.receiver(bank_id))
    try:
        net.register(bank_id, endpoint=f"127.0.0.1:{port}", **register)
        yield bank
    finally:
        bank.stop()
