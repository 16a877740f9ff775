"""The platform, the operator and the banks as clients of several replicas."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import grpc
from colending.v1 import admin_service_pb2, admin_service_pb2_grpc, blacklist_pb2
from testkit import ADMIN, ALL_SCOPES, in_days, merchant, request_id, uscc

from colending_core import public_key_from_raw
from gateway.app import Gateway
from partners.mock import MockBank, Script
from partners.sdk import (
    BlacklistClient,
    IdentifierKind,
    PlatformClient,
    RetryPolicy,
    verify_referral,
)

BORROWER_REGION = "110105"  # Beijing; the merchants are in Hangzhou, so no borrower is one


def balanced_channel(targets: Sequence[str], *, interceptors: Sequence[Any] = ()) -> grpc.Channel:
    """One channel over every replica, as a client behind a load balancer sees them: calls go
    round robin to the replicas that answer, and a restarted one is found again quickly."""
    channel = grpc.insecure_channel(
        "ipv4:" + ",".join(targets),
        options=[
            ("grpc.lb_policy_name", "round_robin"),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 500),
        ],
    )
    return grpc.intercept_channel(channel, *interceptors) if interceptors else channel


class StatusCounter(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Counts the status code of every attempt, the SDK's retries included."""

    def __init__(self) -> None:
        self.codes: Counter[str] = Counter()
        self._lock = threading.Lock()

    def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        outcome = continuation(details, request)
        code = outcome.code()
        with self._lock:
            self.codes[code.name if code is not None else "OK"] += 1
        return outcome


def mock_bank(gateway: Gateway, bank_id: str, script: Script) -> MockBank:
    """A mock bank that trusts the gateway's published keys, pinned (it needs no channel)."""
    keys = {k.keyid: public_key_from_raw(k.public_key) for k in gateway.referrals.published_keys()}
    return MockBank(
        bank_id=bank_id,
        verify=lambda envelope: verify_referral(envelope, trusted_keys=keys, bank_id=bank_id),
        script=script,
    )


def register(channel: grpc.Channel, bank_id: str, endpoint: str = "") -> None:
    admin_service_pb2_grpc.AdminServiceStub(channel).RegisterPartner(
        admin_service_pb2.RegisterPartnerRequest(
            request_id=request_id(), partner_id=bank_id, display_name=bank_id, endpoint=endpoint
        ),
        metadata=ADMIN,
        timeout=10,
    )


def refer(platform: PlatformClient, n: int, bank_ids: Sequence[str]) -> str:
    """Consent and referral of merchant ``n``; request ids derive from ``n``, so a retry after
    a lost answer replays instead of duplicating."""
    merchant_id = f"m-{n}"
    consent = platform.record_consent(
        platform_merchant_id=merchant_id,
        bank_ids=bank_ids,
        data_scopes=list(ALL_SCOPES),
        expires_at=in_days(90),
        evidence_reference=f"consent:{merchant_id}",
        request_id=f"consent-{n}",
    )
    referral = platform.submit_referral(
        merchant=merchant(merchant_id=merchant_id),
        consent_id=consent.consent_id,
        bank_ids=bank_ids,
        request_id=f"submit-{n}",
    )
    return referral.referral_id


def blacklist_client(
    channel: grpc.Channel,
    gateway: Gateway,
    data_dir: Path,
    caller: str,
    retry: RetryPolicy | None = None,
) -> BlacklistClient:
    """A bank's client with the network key and log keys it got out of band."""
    network_key = bytes.fromhex((data_dir / "network-key" / "network.key").read_text().strip())
    log_keys = {
        k.keyid: public_key_from_raw(k.public_key) for k in gateway.blacklist.log.published_keys()
    }
    return BlacklistClient(
        channel=channel, caller=caller, network_key=network_key, log_keys=log_keys, retry=retry
    )


def borrower(k: int) -> tuple[IdentifierKind, str]:
    return IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE, uscc("91" + BORROWER_REGION + f"{k:09d}")


def report(client: BlacklistClient, k: int) -> int:
    """Report borrower ``k`` as defaulted; returns its change's log index."""
    response = client.report_default(
        borrower=borrower(k),
        reason=blacklist_pb2.BLACKLIST_REASON_FRAUD,
        outstanding_minor=12_345_00,
        default_date=date(2026, 3, 1),
        request_id=f"report-{k}",
    )
    return int(response.log_index)
