"""Per-partner limits over real sockets: a bank past its budget gets RESOURCE_EXHAUSTED with a
RetryInfo, other banks and the platform are not affected, and the budget refills; a bank holds
only so many live streams."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from colending.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    blacklist_service_pb2,
    blacklist_service_pb2_grpc,
    partner_bank_service_pb2,
    partner_bank_service_pb2_grpc,
)
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from testkit import ADMIN, request_id

from gateway.api.limits import RateLimiter, StreamSlots
from gateway.errors import ResourceExhausted
from gateway.server import ServerConfig, build_server, open_gateway


def test_the_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2, burst=3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [None, None, None]
    wait = limiter.take("a")
    assert wait == pytest.approx(0.5)
    assert limiter.take("b") is None  # every key has its own bucket
    now[0] += 0.5
    assert limiter.take("a") is None
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(rate=0, burst=1)


def test_a_bank_over_its_budget_is_told_when_to_come_back(tmp_path: Path) -> None:
    with _serving_two_banks(tmp_path, partner_rate=1, partner_burst=3) as channel:
        admin = admin_service_pb2_grpc.AdminServiceStub(channel)
        bank = partner_bank_service_pb2_grpc.PartnerBankServiceStub(channel)

        def keys(bank_id: str) -> None:
            bank.GetSigningKeys(
                partner_bank_service_pb2.GetSigningKeysRequest(),
                metadata=(("x-colending-caller", f"partner/{bank_id}"),),
                timeout=10,
            )

        for _ in range(3):
            keys("bank-a")
        with pytest.raises(grpc.RpcError) as limited:
            keys("bank-a")
        error = limited.value
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "partner/bank-a is over its limit of 1 calls a second" in (error.details() or "")
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
        assert status is not None
        [detail] = status.details
        retry = error_details_pb2.RetryInfo()
        assert detail.Unpack(retry)
        assert 0 < retry.retry_delay.ToTimedelta().total_seconds() <= 1
        keys("bank-b")  # another bank has its own budget
        for _ in range(5):  # the operator is not limited
            admin.ListPartners(admin_service_pb2.ListPartnersRequest(), metadata=ADMIN)
        time.sleep(1.05)
        keys("bank-a")  # refilled


def test_stream_slots_bound_each_caller_and_all_callers() -> None:
    slots = StreamSlots(limit=3, per_caller=2)
    with slots.hold("partner/bank-a"), slots.hold("partner/bank-a"):
        with (
            pytest.raises(ResourceExhausted, match="partner/bank-a already has 2 live streams"),
            slots.hold("partner/bank-a"),
        ):
            pass
        with (
            slots.hold("partner/bank-b"),
            pytest.raises(ResourceExhausted, match="all 3 stream slots are in use"),
            slots.hold("partner/bank-c"),
        ):
            pass
    with slots.hold("partner/bank-a"), slots.hold("partner/bank-a"):
        pass  # released slots are free again
    with pytest.raises(ValueError, match="per_caller"):
        StreamSlots(limit=2, per_caller=3)


def test_a_bank_may_hold_only_so_many_live_streams(tmp_path: Path) -> None:
    """Over a real socket: a bank's third live stream is refused, another bank's first is not."""
    with _serving_two_banks(tmp_path, max_streams=4, streams_per_caller=2) as channel:
        stub = blacklist_service_pb2_grpc.BlacklistServiceStub(channel)

        def follow(bank_id: str) -> grpc.Future:  # type: ignore[type-arg]
            stream = stub.SyncBlacklist(
                blacklist_service_pb2.SyncBlacklistRequest(from_log_index=0),
                metadata=(("x-colending-caller", f"partner/{bank_id}"),),
                timeout=30,
            )
            # The first answer (a checkpoint of the empty log) means the slot is held.
            assert next(stream).HasField("checkpoint")
            return stream

        held = [follow("bank-a"), follow("bank-a")]
        with pytest.raises(grpc.RpcError) as refused:
            follow("bank-a")
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "partner/bank-a already has 2 live streams" in (refused.value.details() or "")
        held.append(follow("bank-b"))  # another bank is not affected
        for stream in held:
            stream.cancel()


@contextmanager
def _serving_two_banks(tmp_path: Path, **limits: int) -> Iterator[grpc.Channel]:
    """A gateway with ``limits`` on a real socket, bank-a and bank-b registered; its channel."""
    config = ServerConfig(data_dir=tmp_path / "data", port=0, **limits)
    gateway = open_gateway(config)
    server, port = build_server(config, gateway=gateway)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            admin = admin_service_pb2_grpc.AdminServiceStub(channel)
            for bank_id in ("bank-a", "bank-b"):
                admin.RegisterPartner(
                    admin_service_pb2.RegisterPartnerRequest(
                        request_id=request_id(), partner_id=bank_id, display_name=bank_id
                    ),
                    metadata=ADMIN,
                    timeout=10,
                )
            yield channel
    finally:
        server.stop(grace=None).wait()
