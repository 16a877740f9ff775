"""Bank endpoints that misbehave: one that hangs, one that is not there, one that speaks
garbage. None stalls delivery to a healthy bank, none loses its task, each shows as a clear
attempt outcome; and a worker that dies mid-delivery hands its task over when its lease ends."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta
from pathlib import Path

from colending.v1 import delivery_pb2
from contract.harness import mock_bank, network
from testkit import dispatching, eventually

from gateway._transactions import utc_now
from gateway.domain.delivery import DeliveryPolicy
from gateway.store import delivery_repository as outbox
from partners.mock import Script

ST = delivery_pb2
IMPATIENT = DeliveryPolicy(
    call_timeout=timedelta(milliseconds=300),
    max_attempts=50,
    first_backoff=timedelta(milliseconds=5),
    max_backoff=timedelta(milliseconds=50),
    lease=timedelta(milliseconds=500),
)


def _garbage_server() -> tuple[int, threading.Event]:
    """A TCP port that answers every connection with bytes that are not HTTP/2, then closes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.0 418 I'm a teapot\r\n\r\n\x00\xff garbage")
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1], stop


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_misbehaving_banks_do_not_stall_a_healthy_one(
    data_dir: Path, database_url: str | None
) -> None:
    garbage_port, stop_garbage = _garbage_server()
    with network(data_dir, database_url, policy=IMPATIENT) as net:
        net.register("bank-gone", endpoint=f"127.0.0.1:{_closed_port()}")
        net.register("bank-junk", endpoint=f"127.0.0.1:{garbage_port}")
        with (
            mock_bank(net, "bank-slow", Script(delay_seconds=2.0)) as slow,
            mock_bank(net, "bank-ok", Script()) as healthy,
            dispatching(net.running.gateway, workers=2),
        ):
            banks = ["bank-slow", "bank-gone", "bank-junk", "bank-ok"]
            referral_ids = [net.refer(f"m-{n}", banks) for n in range(3)]
            # The healthy bank gets everything while the others keep failing.
            eventually(lambda: len(healthy.received()) == 3, timeout=10, what="healthy bank")

            def attempts(bank_id: str) -> list[delivery_pb2.DeliveryAttempt]:
                return [
                    a
                    for r in referral_ids
                    for p in net.pushes(r)
                    if p.bank_id == bank_id
                    for a in p.attempts
                ]

            for bank_id, code in (
                ("bank-slow", "DEADLINE_EXCEEDED"),
                ("bank-gone", "UNAVAILABLE"),
                ("bank-junk", "UNAVAILABLE"),
            ):
                eventually(
                    lambda b=bank_id, c=code: any(a.status_code == c for a in attempts(b)),  # type: ignore[misc]
                    what=f"a {code} attempt to {bank_id}",
                )
                # Transient every time: the tasks stay queued, none is lost or given up.
                assert {a.outcome for a in attempts(bank_id)} == {ST.DELIVERY_OUTCOME_RETRYABLE}
                states = {
                    p.state for r in referral_ids for p in net.pushes(r) if p.bank_id == bank_id
                }
                assert states == {ST.DELIVERY_STATE_PENDING}, (bank_id, states)
            assert slow.stats.pushes >= 1  # it was called, and hung past the deadline
    stop_garbage.set()


def test_a_dead_workers_task_is_taken_over_after_its_lease(
    data_dir: Path, database_url: str | None
) -> None:
    with (
        network(data_dir, database_url, policy=IMPATIENT) as net,
        mock_bank(net, "bank-a", Script()) as bank,
    ):
        referral_id = net.refer("m-1", ["bank-a"])
        gateway = net.running.gateway
        dispatcher = gateway.dispatcher
        assert dispatcher is not None
        # A worker claims the task and dies before calling the bank.
        with gateway.database.writing() as session:  # the test plays the dead worker directly
            now = utc_now()
            [claimed] = outbox.claim_due(
                session, now=now, lease_until=now + IMPATIENT.lease, worker="dead", limit=5
            )
        assert claimed.referral_id == referral_id
        assert dispatcher.run_once("survivor") == 0  # leased: nobody else may take it
        eventually(lambda: dispatcher.run_once("survivor") == 1, what="the lease to end")
        eventually(lambda: len(bank.received()) == 1, what="the delivery")
        [push] = net.pushes(referral_id)
        assert push.state == ST.DELIVERY_STATE_DELIVERED
        assert push.attempt_count == 1  # the dead worker's claim made no attempt
