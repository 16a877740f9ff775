"""Nothing acknowledged is lost through crashes. Two replicas on a private PostgreSQL, a steady
load of submissions (each to two push banks) and blacklist reports through a round-robin
channel over both, while: one replica at a time is killed with SIGKILL at random moments and
started again; a bank is down for a while; PostgreSQL itself crashes and restarts once.

Afterwards every referral whose SubmitReferral succeeded exists and reached each of its banks
exactly once after de-duplication (raw duplicates are reported in the run's summary), the
blacklist log verifies from the first checkpoint to the last, and no replica logged an
unexpected error. Set COLENDING_FAULT_SEED to replay a run's kill schedule.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from colending.v1 import (
    blacklist_service_pb2,
    blacklist_service_pb2_grpc,
    partner_bank_service_pb2,
    partner_bank_service_pb2_grpc,
    referral_service_pb2,
    referral_service_pb2_grpc,
)
from fault.clients import (
    StatusCounter,
    balanced_channel,
    blacklist_client,
    borrower,
    mock_bank,
    refer,
    register,
    report,
)
from fault.processes import PLATFORM, PrivatePostgres, health, replicas
from grpc_health.v1 import health_pb2
from testkit import bank, eventually

from gateway.domain.delivery import DeliveryState
from gateway.store import delivery_repository as outbox
from partners.mock import Script
from partners.sdk import LocalBlacklist, PlatformClient, RetryPolicy, RpcError

BANKS = ["bank-a", "bank-b"]
KILLS = 3
# Patient enough to ride out a replica restart; a database restart may still outlast it,
# and then the submission counts as failed (its outcome unknown to the platform).
PATIENT = RetryPolicy(max_attempts=8, initial_backoff=0.1, max_backoff=1.0)


class Load:
    """Submitters and a blacklist reporter calling until stopped, recording what succeeded."""

    def __init__(self, platform: PlatformClient, report_one: Callable[[int], int]) -> None:
        self.referrals: dict[str, int] = {}  # referral id -> merchant number
        self.failed_submissions: list[str] = []
        self.reports: dict[int, int] = {}  # borrower number -> log index
        self.failed_reports: list[str] = []
        self._platform = platform
        self._report = report_one
        self._numbers = itertools.count()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._submit, name=f"submitter-{n}") for n in range(2)
        ] + [threading.Thread(target=self._blacklist, name="reporter")]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _submit(self) -> None:
        while not self._stop.is_set():
            n = next(self._numbers)
            try:
                self.referrals[refer(self._platform, n, BANKS)] = n
            except RpcError as error:
                self.failed_submissions.append(error.code.name)
            self._stop.wait(0.05)  # steady, not flat out: the two cores run everything here

    def _blacklist(self) -> None:
        for k in itertools.count(1):
            if self._stop.wait(0.2):
                return
            try:
                self.reports[k] = self._report(k)
            except RpcError as error:
                self.failed_reports.append(error.code.name)


def _final_code(call: grpc.Call, consume: Callable[[], None]) -> Callable[[], str]:
    """Run ``consume`` (reading a stream) in a thread; the returned function gives the code the
    stream ended with, or '' while it is open."""
    ended: list[str] = []

    def run() -> None:
        try:
            consume()
            ended.append("OK")
        except grpc.RpcError:
            ended.append(call.code().name)

    threading.Thread(target=run, daemon=True).start()
    return lambda: ended[0] if ended else ""


def _restart_database(
    postgres: PrivatePostgres, targets: list[str], referral_id: str
) -> dict[str, str]:
    """Crash PostgreSQL, check what callers and streams see while it is down, start it again.
    Returns, per replica, the code a read got during the outage."""
    codes: dict[str, str] = {}
    channels = [grpc.insecure_channel(t) for t in targets]
    try:
        # Idle live streams on each replica, open before the crash.
        streams = []
        for channel in channels:
            referrals = partner_bank_service_pb2_grpc.PartnerBankServiceStub(
                channel
            ).StreamReferrals(
                partner_bank_service_pb2.StreamReferralsRequest(), metadata=bank("bank-idle")
            )
            streams.append(_final_code(referrals, lambda r=referrals: list(r)))  # type: ignore[misc]
            changes = blacklist_service_pb2_grpc.BlacklistServiceStub(channel).SyncBlacklist(
                blacklist_service_pb2.SyncBlacklistRequest(), metadata=bank("bank-idle")
            )
            streams.append(_final_code(changes, lambda c=changes: list(c)))  # type: ignore[misc]
        time.sleep(0.5)  # let them subscribe
        postgres.stop(mode="immediate")
        try:
            for target, channel in zip(targets, channels, strict=True):
                try:
                    referral_service_pb2_grpc.ReferralServiceStub(channel).GetReferral(
                        referral_service_pb2.GetReferralRequest(referral_id=referral_id),
                        metadata=PLATFORM,
                        timeout=15,
                    )
                    codes[target] = "OK"
                except grpc.RpcError as error:
                    codes[target] = error.code().name  # type: ignore[attr-defined]
            for target in targets:
                eventually(
                    lambda t=target: health(t) == health_pb2.HealthCheckResponse.NOT_SERVING,  # type: ignore[misc]
                    what=f"{target} to report NOT_SERVING",
                )
            for ended in streams:
                eventually(lambda e=ended: e() != "", what="live streams to end")  # type: ignore[misc]
                codes[f"stream {len(codes)}"] = ended()
        finally:
            postgres.start()
        for target in targets:
            eventually(
                lambda t=target: health(t) == health_pb2.HealthCheckResponse.SERVING,  # type: ignore[misc]
                timeout=30,
                what=f"{target} to recover",
            )
    finally:
        for channel in channels:
            channel.close()
    return codes


def test_nothing_acknowledged_is_lost_through_crashes(
    tmp_path: Path,
    private_postgres: PrivatePostgres,
    private_database_url: str,
    fault_report: list[str],
) -> None:
    seed = int(os.environ.get("COLENDING_FAULT_SEED", str(random.SystemRandom().randrange(10**6))))
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    statuses = StatusCounter()
    with replicas(data_dir, private_database_url, delivery_lease=6.0) as (gateway, pair):
        targets = [r.target for r in pair]
        banks = {b: mock_bank(gateway, b, Script()) for b in BANKS}
        with contextlib.ExitStack() as stack:
            for mock in banks.values():
                stack.callback(mock.stop)
            channel = stack.enter_context(balanced_channel(targets, interceptors=[statuses]))
            for bank_id, mock in banks.items():
                register(channel, bank_id, f"127.0.0.1:{mock.start()}")
            register(channel, "bank-idle")  # streams only; never referred
            platform = PlatformClient(channel=channel, caller="platform", retry=PATIENT)
            reporter = blacklist_client(channel, gateway, data_dir, "partner/bank-a", PATIENT)

            first = LocalBlacklist()
            with Load(platform, lambda k: report(reporter, k)) as load:
                eventually(lambda: len(load.reports) >= 2, what="the first reports")
                reporter.sync(first)  # the first checkpoint, verified
                # (a) SIGKILL one replica at a random moment, start it again; (c) meanwhile
                # bank-b is down for the first kills.
                banks["bank-b"].script.down = True
                for kill in range(KILLS):
                    time.sleep(rng.uniform(0.5, 3.0))
                    victim = rng.choice(pair)
                    victim.kill()
                    time.sleep(rng.uniform(0.0, 1.0))
                    victim.start()
                    if kill == 1:
                        banks["bank-b"].script.down = False
                # (b) PostgreSQL crashes and restarts once.
                outage = _restart_database(private_postgres, targets, next(iter(load.referrals)))
                time.sleep(2)  # load goes on after the recovery

            def undelivered() -> int:
                """Pushes the store has not seen through, and referrals a bank lacks."""
                with gateway.database.reading() as session:
                    pending = outbox.pending_count(session)
                return pending + sum(
                    referral_id not in received
                    for mock in banks.values()
                    for received in [{r.referral_id for r in mock.received()}]
                    for referral_id in load.referrals
                )

            eventually(lambda: undelivered() == 0, timeout=90, what="every delivery")
            raw_duplicates = {b: m.stats.duplicates for b, m in banks.items()}
            fault_report.append(
                f"crash test (seed {seed}): {len(load.referrals)} referrals acknowledged, "
                f"{len(load.failed_submissions)} submissions failed "
                f"({', '.join(sorted(set(load.failed_submissions))) or 'none'}), "
                f"{len(load.reports)} blacklist reports; raw duplicate deliveries "
                + ", ".join(f"{b} {n}" for b, n in raw_duplicates.items())
                + f"; replica starts {[r.starts for r in pair]}"
                + f"; status of every attempt {dict(statuses.codes)}"
            )
            print(fault_report[-1])

            # Every acknowledged referral exists, each of its pushes is recorded delivered with
            # the receipt the bank gave first, and no bank holds a referral the store lacks.
            for referral_id in load.referrals:
                stored = gateway.referrals.get_referral(referral_id)
                assert {c.bank_id for c in stored.cases} == set(BANKS)
                for case in stored.cases:
                    push = stored.pushes[case.case_id]
                    assert push.state is DeliveryState.DELIVERED, (referral_id, push)
                    assert push.bank_reference == banks[case.bank_id].reference_of(referral_id)
            for mock in banks.values():
                received = [r.referral_id for r in mock.received()]
                assert len(received) == len(set(received))
                for referral_id in received:
                    gateway.referrals.get_referral(referral_id)  # NotFound would fail the test
                assert mock.stats.rejected == 0, mock.stats.reasons

            # The log extends the first verified checkpoint to the last, and every report that
            # was acknowledged is in force in a copy verified from nothing.
            reporter.sync(first)
            fresh = LocalBlacklist()
            latest = reporter.sync(fresh).checkpoint
            assert latest is not None
            assert first.checkpoint is not None
            assert (latest.tree_size, latest.root_hash) == (
                first.checkpoint.tree_size,
                first.checkpoint.root_hash,
            )
            assert len(set(load.reports.values())) == len(load.reports)
            for k in load.reports:
                assert fresh.in_force(reporter.pseudonym(*borrower(k))), k

        # The outage answered UNAVAILABLE everywhere, never INTERNAL or UNKNOWN.
        assert set(outage.values()) == {"UNAVAILABLE"}, outage
        assert set(statuses.codes) <= {"OK", "UNAVAILABLE"}, statuses.codes
        assert set(load.failed_submissions) <= {"UNAVAILABLE"}
        assert set(load.failed_reports) <= {"UNAVAILABLE"}
        for replica in pair:  # an INTERNAL answer logs its traceback
            assert "Traceback" not in replica.log_text(), replica.log_tail(80)
