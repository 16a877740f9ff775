"""Two `colending-gateway serve` processes on one PostgreSQL: either answers any call, a live
stream on one sees writes made through the other (by polling, within STREAM_POLL_SECONDS), the
blacklist log stays one log when both append at once, and a replica killed while it holds an
outbox task hands that task over when its lease ends."""

from __future__ import annotations

import contextlib
import threading
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from colending.v1 import (
    blacklist_service_pb2,
    blacklist_service_pb2_grpc,
    partner_bank_service_pb2,
    partner_bank_service_pb2_grpc,
)
from fault.clients import blacklist_client, mock_bank, refer, register, report
from fault.processes import replicas
from testkit import bank, eventually

from gateway.domain.delivery import DeliveryState, DeliveryTask
from partners.mock import Script
from partners.sdk import LocalBlacklist, PlatformClient

pytestmark = pytest.mark.postgres


def test_each_replica_answers_and_streams_see_the_others_writes(
    tmp_path: Path, postgres_schema_url: str
) -> None:
    data_dir = tmp_path / "data"
    with (
        replicas(data_dir, postgres_schema_url) as (gateway, (a, b)),
        grpc.insecure_channel(a.target) as to_a,
        grpc.insecure_channel(b.target) as to_b,
    ):
        register(to_a, "bank-s")  # no endpoint: it streams
        register(to_b, "bank-r")  # reports defaults
        # A stream on B, writes through A: only B's polling can show them.
        referrals = partner_bank_service_pb2_grpc.PartnerBankServiceStub(to_b).StreamReferrals(
            partner_bank_service_pb2.StreamReferralsRequest(), metadata=bank("bank-s"), timeout=60
        )
        changes = blacklist_service_pb2_grpc.BlacklistServiceStub(to_a).SyncBlacklist(
            blacklist_service_pb2.SyncBlacklistRequest(), metadata=bank("bank-r"), timeout=60
        )
        streamed: list[str] = []
        logged: list[int] = []

        def follow_referrals() -> None:
            with contextlib.suppress(grpc.RpcError):  # cancelled at the end
                for item in referrals:
                    streamed.append(item.referral.referral_id)

        def follow_log() -> None:
            with contextlib.suppress(grpc.RpcError):
                for item in changes:
                    if item.WhichOneof("item") == "change":
                        logged.append(item.change.log_index)

        threads = [threading.Thread(target=f) for f in (follow_referrals, follow_log)]
        for thread in threads:
            thread.start()
        try:
            platform = PlatformClient(channel=to_a, caller="platform")
            referral_ids = [refer(platform, n, ["bank-s"]) for n in range(3)]
            eventually(lambda: len(streamed) == 3, what="B's stream to show A's referrals")
            assert streamed == referral_ids
            # Any replica answers about any referral.
            on_b = PlatformClient(channel=to_b, caller="platform")
            assert [on_b.get_referral(r).referral_id for r in referral_ids] == referral_ids

            index = report(blacklist_client(to_b, gateway, data_dir, "partner/bank-r"), 1)
            eventually(lambda: logged == [index], what="A's sync stream to show B's report")
        finally:
            referrals.cancel()
            changes.cancel()
            for thread in threads:
                thread.join()


def test_two_replicas_appending_at_once_make_one_verifiable_log(
    tmp_path: Path, postgres_schema_url: str
) -> None:
    data_dir = tmp_path / "data"
    per_replica = 15
    with replicas(data_dir, postgres_schema_url) as (gateway, (a, b)):
        channels = [grpc.insecure_channel(r.target) for r in (a, b)]
        try:
            register(channels[0], "bank-r")
            clients = [blacklist_client(c, gateway, data_dir, "partner/bank-r") for c in channels]
            # Both replicas at once, several calls in flight on each.
            with futures.ThreadPoolExecutor(max_workers=8) as pool:
                indexes = list(
                    pool.map(
                        lambda k: report(clients[k % 2], k),
                        range(2 * per_replica),
                    )
                )
            assert sorted(indexes) == list(range(2 * per_replica))  # one leaf per index
            local = LocalBlacklist()
            summary = clients[1].sync(local)  # verifies the root against a signed checkpoint
            assert summary.checkpoint is not None
            assert summary.checkpoint.tree_size == 2 * per_replica
            assert len(local.entries) == 2 * per_replica
        finally:
            for channel in channels:
                channel.close()


def test_a_killed_replicas_outbox_task_is_taken_over_after_its_lease(
    tmp_path: Path, postgres_schema_url: str
) -> None:
    data_dir = tmp_path / "data"
    with replicas(data_dir, postgres_schema_url, count=1) as (gateway, (a,)):
        with grpc.insecure_channel(a.target) as to_a:
            # The bank sits on each push for 3 s, so the replica dies mid-call.
            slow = mock_bank(gateway, "bank-p", Script(delay_seconds=3.0))
            port = slow.start()
            register(to_a, "bank-p", f"127.0.0.1:{port}")
            referral_id = refer(PlatformClient(channel=to_a, caller="platform"), 1, ["bank-p"])
            eventually(lambda: slow.stats.pushes == 1, what="the first push")
        a.kill()
        try:
            [case] = gateway.referrals.get_referral(referral_id).cases

            def task() -> DeliveryTask:
                return gateway.referrals.get_referral(referral_id).pushes[case.case_id]

            with replicas(data_dir, postgres_schema_url, count=1):
                eventually(
                    lambda: task().state is DeliveryState.DELIVERED,
                    timeout=30,
                    what="another replica to take the task over",
                )
            # The dead replica's call reached the bank but was never recorded: one attempt on
            # record, two pushes seen, one referral kept.
            assert task().attempt_count == 1
            assert slow.stats.pushes == 2
            assert slow.stats.duplicates == 1
            assert [r.referral_id for r in slow.received()] == [referral_id]
        finally:
            slow.stop()
