"""Shared builders for tests: realistic merchants, partners and a running gateway."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import sqlalchemy
from colending.v1 import common_pb2, consent_pb2, merchant_pb2

from colending_core import uscc_check_character
from gateway.app import Gateway
from gateway.blacklist import BlacklistNetwork
from gateway.domain.delivery import DeliveryPolicy
from gateway.server import ServerConfig, TlsFiles, build_server, open_gateway
from gateway.signing.keyring import KeyRing
from gateway.signing.network_key import open_network_key
from gateway.store.db import Database


def serial_of(merchant_id: str) -> str:
    """Nine digits of organisation code per merchant: different merchants, different codes,
    so one merchant's blacklisting never refuses another's referral."""
    return f"{int(hashlib.sha256(merchant_id.encode()).hexdigest(), 16) % 10**9:09d}"


# A Hangzhou (330106) company registered 2019; the check character is computed, not typed.
USCC_BODY = "91330106" + serial_of("m-1001")
HANGZHOU_USCC = USCC_BODY + uscc_check_character(USCC_BODY)
CALLER_KEY = "x-colending-caller"
PLATFORM = ((CALLER_KEY, "platform"),)
ADMIN = ((CALLER_KEY, "admin"),)


def bank(bank_id: str) -> tuple[tuple[str, str], ...]:
    return ((CALLER_KEY, f"partner/{bank_id}"),)


def request_id() -> str:
    return f"test-{uuid.uuid4()}"


def uscc(body17: str) -> str:
    return body17 + uscc_check_character(body17)


def merchant(
    *,
    merchant_id: str = "m-1001",
    region_code: str = "330106",
    registered: tuple[int, int, int] = (2019, 3, 15),
    tier: int = merchant_pb2.MEMBERSHIP_TIER_GOLD_SUPPLIER,
    monthly_gmv_yuan: int = 400_000,
    months: int = 12,
    dispute_rate_bps: int = 40,
) -> merchant_pb2.MerchantProfile:
    """A healthy merchant the default policy accepts; override one thing per test."""
    code = uscc("91" + region_code + serial_of(merchant_id))  # positions 3-8: the region
    return merchant_pb2.MerchantProfile(
        identity=merchant_pb2.MerchantIdentity(
            platform_merchant_id=merchant_id,
            legal_name="杭州示例贸易有限公司",
            unified_social_credit_code=code,
        ),
        qualification=merchant_pb2.Qualification(
            membership_tier=tier,
            paid_member_since=common_pb2.Date(year=2020, month=1, day=1)
            if tier != merchant_pb2.MEMBERSHIP_TIER_FREE
            else None,
            business_registration_date=common_pb2.Date(
                year=registered[0], month=registered[1], day=registered[2]
            ),
            region_code=region_code,
        ),
        reputation=merchant_pb2.TransactionReputation(
            monthly_gmv_fen=[monthly_gmv_yuan * 100] * months,
            order_count=4_800,
            distinct_buyer_count=1_900,
            positive_feedback_bps=9_850,
            dispute_rate_bps=dispute_rate_bps,
            refund_rate_bps=120,
            on_time_shipment_bps=9_700,
            prior_loans_repaid=2,
            prior_loans_overdue=0,
        ),
        verification=merchant_pb2.Verification(
            business_license_verified=True,
            legal_representative_verified=True,
            bank_account_verified=True,
        ),
    )


ALL_SCOPES = (
    consent_pb2.DATA_SCOPE_IDENTITY,
    consent_pb2.DATA_SCOPE_QUALIFICATION,
    consent_pb2.DATA_SCOPE_TRANSACTION_REPUTATION,
    consent_pb2.DATA_SCOPE_VERIFICATION,
)


def in_days(days: int) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def postgres_url() -> str:
    return os.environ.get(
        "COLENDING_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )


@dataclass
class RunningGateway:
    gateway: Gateway
    port: int
    data_dir: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextmanager
def running_gateway(
    data_dir: Path,
    database_url: str | None = None,
    *,
    delivery_policy: DeliveryPolicy | None = None,
    tls: TlsFiles | None = None,
) -> Iterator[RunningGateway]:
    """A real server on a free loopback port (mutual TLS with ``tls``), stopped at the end."""
    config = ServerConfig(
        data_dir=data_dir,
        database_url=database_url,
        port=0,
        max_workers=8,
        delivery_policy=delivery_policy or DeliveryPolicy(),
        tls=tls,
    )
    gateway = open_gateway(config)
    server, port = build_server(config, gateway=gateway)
    server.start()
    try:
        yield RunningGateway(gateway=gateway, port=port, data_dir=data_dir)
    finally:
        server.stop(grace=None).wait()


# Retries in milliseconds, so a test sees a dozen attempts in well under a second.
FAST_DELIVERY = DeliveryPolicy(
    call_timeout=timedelta(seconds=2),
    max_attempts=12,
    first_backoff=timedelta(milliseconds=5),
    max_backoff=timedelta(milliseconds=50),
    lease=timedelta(seconds=5),
)


@contextmanager
def dispatching(gateway: Gateway, *, workers: int = 2) -> Iterator[None]:
    """The gateway's push-delivery workers, as ``serve`` runs them, stopped at the end."""
    assert gateway.dispatcher is not None
    with gateway.dispatcher.running(workers=workers, poll_interval=0.02):
        yield


def eventually(check: Callable[[], bool], *, timeout: float = 15.0, what: str = "") -> None:
    """Wait until ``check()`` holds (background work over real sockets), or fail saying what."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
        time.sleep(0.02)


def channel(target: str) -> grpc.Channel:
    return grpc.insecure_channel(target)


def blacklist_network(
    data_dir: Path, database: Database, clock: Callable[[], datetime] | None = None
) -> BlacklistNetwork:
    """The blacklist side of a gateway built by hand (tests that inject a clock or encoder)."""
    return BlacklistNetwork(
        database=database,
        log_keyring=KeyRing.open(data_dir / "log-keys", **({"clock": clock} if clock else {})),
        network_key=open_network_key(data_dir / "network-key"),
        **({"clock": clock} if clock else {}),
    )


def table_dump(engine: sqlalchemy.Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, in a stable order: equal before and after a refused call."""
    tables = sqlalchemy.inspect(engine).get_table_names()
    with engine.connect() as connection:
        return {
            t: sorted(
                map(tuple, connection.execute(sqlalchemy.text(f'SELECT * FROM "{t}"'))),
                key=repr,
            )
            for t in tables
        }


def refused_unchanged(
    engine: sqlalchemy.Engine, code: grpc.StatusCode, call: Callable[[], object]
) -> grpc.RpcError:
    """``call`` fails with exactly ``code`` and leaves every table as it was."""
    import pytest  # here, so the benchmark can import testkit without pytest

    before = table_dump(engine)
    with pytest.raises(grpc.RpcError) as refused:
        call()
    assert refused.value.code() is code, refused.value.details()
    assert table_dump(engine) == before
    return refused.value
