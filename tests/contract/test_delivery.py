"""Push delivery and streaming over real sockets, against mock banks: a flaky bank gets every
referral once after retries, a down bank's referrals are dead-lettered and re-queued, a bank that
cannot verify refuses for good, an ordered bank gets submission order, and a streaming bank
resumes from its cursor. SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from colending.v1 import admin_service_pb2, delivery_pb2, financing_pb2
from contract.harness import mock_bank, network
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from testkit import ADMIN, FAST_DELIVERY, dispatching, eventually, request_id

from partners.mock import MockBank, Script
from partners.sdk import key_id, verify_referral

ST = delivery_pb2
# The flaky bank's coin is seeded. With seed 6 its first 8 successes come among 15 tosses, so no
# referral can meet more than 7 failures whatever the interleaving, well under the 12 attempts a
# task gets: the test shows retries without ever depending on luck.
SEED = 6


def test_a_flaky_bank_gets_every_referral_once(data_dir: Path, database_url: str | None) -> None:
    with (
        network(data_dir, database_url) as net,
        mock_bank(net, "bank-a", Script(unavailable_per_mille=500, seed=SEED)) as bank,
        dispatching(net.running.gateway),
    ):
        referral_ids = [net.refer(f"m-{n}", ["bank-a"]) for n in range(8)]
        eventually(lambda: len(bank.received()) == 8, what="eight distinct referrals")
        eventually(
            lambda: all(
                p.state == ST.DELIVERY_STATE_DELIVERED for r in referral_ids for p in net.pushes(r)
            ),
            what="every task closed by a receipt",
        )
        assert {r.referral_id for r in bank.received()} == set(referral_ids)
        assert bank.stats.unavailable > 0  # the script did fail some calls...
        pushes = [p for r in referral_ids for p in net.pushes(r)]
        retried = [p for p in pushes if p.attempt_count > 1]
        assert retried  # ...and they were retried
        for push in pushes:
            assert push.bank_reference == bank.reference_of(push.referral_id)
            assert push.attempts[-1].status_code == "OK"
            assert push.attempts[-1].outcome == ST.DELIVERY_OUTCOME_DELIVERED
            assert all(a.status_code == "UNAVAILABLE" for a in push.attempts[:-1])
            assert [a.attempt for a in push.attempts] == list(range(1, push.attempt_count + 1))
        cases = [net.platform.get_referral(r).deliveries[0] for r in referral_ids]
        assert {c.state for c in cases} == {financing_pb2.FINANCING_STATE_DELIVERED}


def test_a_down_bank_is_dead_lettered_then_requeued(
    data_dir: Path, database_url: str | None
) -> None:
    with (
        network(data_dir, database_url) as net,
        mock_bank(net, "bank-a", Script(down=True)) as bank,
        dispatching(net.running.gateway),
    ):
        referral_id = net.refer("m-1", ["bank-a"])
        eventually(lambda: net.tasks(ST.DELIVERY_STATE_DEAD_LETTERED) != [], what="a dead letter")
        [dead] = net.tasks(ST.DELIVERY_STATE_DEAD_LETTERED)
        assert dead.referral_id == referral_id
        assert dead.attempt_count == FAST_DELIVERY.max_attempts
        assert "gave up after 12 attempts" in dead.last_error
        assert bank.received() == []

        bank.script.down = False  # the bank is back; the operator re-queues the dead letter
        requeued = net.admin.RequeueDelivery(
            admin_service_pb2.RequeueDeliveryRequest(request_id=request_id(), task_id=dead.task_id),
            metadata=ADMIN,
            timeout=10,
        ).task
        assert requeued.state == ST.DELIVERY_STATE_PENDING
        assert requeued.attempt_count == 0
        eventually(lambda: len(bank.received()) == 1, what="the re-queued delivery")
        eventually(
            lambda: net.pushes(referral_id)[0].state == ST.DELIVERY_STATE_DELIVERED,
            what="the receipt",
        )
        # A delivered task is not a dead letter: re-queueing it is refused.
        with pytest.raises(grpc.RpcError) as refused:
            net.admin.RequeueDelivery(
                admin_service_pb2.RequeueDeliveryRequest(
                    request_id=request_id(), task_id=dead.task_id
                ),
                metadata=ADMIN,
                timeout=10,
            )
        assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION


def test_a_bank_that_cannot_verify_refuses_for_good(
    data_dir: Path, database_url: str | None
) -> None:
    stranger = Ed25519PrivateKey.generate().public_key()

    with network(data_dir, database_url) as net:
        # This bank trusts only a key the gateway never signed with.
        bank = MockBank(
            bank_id="bank-a",
            verify=lambda envelope: verify_referral(
                envelope, trusted_keys={key_id(stranger): stranger}, bank_id="bank-a"
            ),
        )
        port = bank.start(credentials=net.pki.receiver("bank-a"))
        try:
            net.register("bank-a", endpoint=f"127.0.0.1:{port}")
            with dispatching(net.running.gateway):
                referral_id = net.refer("m-1", ["bank-a"])
                eventually(
                    lambda: net.pushes(referral_id)[0].state == ST.DELIVERY_STATE_DEAD_LETTERED,
                    what="a final refusal",
                )
            [push] = net.pushes(referral_id)
            assert push.attempt_count == 1  # INVALID_ARGUMENT is final: never retried
            assert push.attempts[0].status_code == "INVALID_ARGUMENT"
            assert push.attempts[0].outcome == ST.DELIVERY_OUTCOME_FINAL
            assert "refused by the bank" in push.last_error
            assert bank.stats.rejected == 1
        finally:
            bank.stop()


def test_an_ordered_bank_receives_in_submission_order(
    data_dir: Path, database_url: str | None
) -> None:
    with (
        network(data_dir, database_url) as net,
        mock_bank(net, "bank-a", Script(unavailable_per_mille=400, seed=3), ordered=True) as bank,
    ):
        referral_ids = [net.refer(f"m-{n}", ["bank-a"]) for n in range(6)]
        with dispatching(net.running.gateway, workers=3):
            eventually(lambda: len(bank.received()) == 6, what="six referrals")
        assert [r.referral_id for r in bank.received()] == referral_ids


def test_a_streaming_bank_follows_live_and_resumes_from_its_cursor(
    data_dir: Path, database_url: str | None
) -> None:
    with network(data_dir, database_url) as net:
        net.register("bank-b")  # no endpoint: it streams
        first = net.refer("m-1", ["bank-b"])
        bank = net.bank_client("bank-b")
        stream = bank.stream()
        referral, cursor = next(stream)
        assert referral.referral_id == first
        second = net.refer("m-2", ["bank-b"])  # submitted while the stream is open
        referral, cursor = next(stream)
        assert referral.referral_id == second
        stream.close()  # the bank disconnects

        third = net.refer("m-3", ["bank-b"])
        resumed = bank.stream(cursor=cursor)
        referral, _ = next(resumed)
        assert referral.referral_id == third  # nothing missed, nothing repeated
        resumed.close()
        # Streamed referrals count as delivered.
        delivery = net.platform.get_referral(first).deliveries[0]
        assert delivery.state == financing_pb2.FINANCING_STATE_DELIVERED
        assert delivery.push.state == ST.DELIVERY_STATE_NOT_PUSHED


def test_a_push_stops_when_consent_is_revoked_or_the_bank_suspended(
    data_dir: Path, database_url: str | None
) -> None:
    # Retries a second apart: the consent is revoked between two attempts, never after the
    # task has already used them all up.
    patient = replace(
        FAST_DELIVERY, first_backoff=timedelta(seconds=1), max_backoff=timedelta(seconds=1)
    )
    with (
        network(data_dir, database_url, policy=patient) as net,
        mock_bank(net, "bank-a", Script(down=True)) as bank,
        dispatching(net.running.gateway),
    ):
        referral_id = net.refer("m-1", ["bank-a"])
        consent_id = net.platform.get_referral(referral_id).consent_id
        eventually(lambda: net.pushes(referral_id)[0].attempt_count >= 1, what="a first try")
        net.platform.revoke_consent(consent_id, reason="the merchant withdrew consent")
        bank.script.down = False
        eventually(
            lambda: net.pushes(referral_id)[0].state == ST.DELIVERY_STATE_CANCELLED,
            what="the push to be cancelled",
        )
        assert "consent is REVOKED" in net.pushes(referral_id)[0].last_error
        assert bank.received() == []  # the merchant's data never left after revocation
