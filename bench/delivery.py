"""Push delivery: does it keep up with submissions, and how long from submit to bank?

For 1 and for 3 mock banks (each referral goes to every bank), submitters push referrals as fast
as the gateway takes them for a fixed time while the dispatcher delivers; then the dispatcher
drains. Reported per run: the submit rate, the delivery rate, the backlog when submissions stop
and how long it takes to drain, and submit-to-bank latency (from the start of SubmitReferral to
the bank's receipt of that referral: p50, p99). Delivery keeps up when the backlog stays near
zero. SQLite, same machine; the numbers are ratios of one another, not absolutes.

    python -m bench.delivery [--seconds 5] [--submitters 4] [--workers 4] [--banks 1,3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from colending.v1 import admin_service_pb2, admin_service_pb2_grpc

from gateway.domain.delivery import DeliveryPolicy
from gateway.sample import SampleMix, sample_merchants
from gateway.server import ServerConfig, build_server, open_gateway
from gateway.store import delivery_repository as outbox
from partners.mock import MockBank, Script
from partners.sdk import BankClient, FailedPreconditionError, PlatformClient

RESULTS = Path(__file__).parent / "results"
ALL_SCOPES = [1, 2, 3, 4]
POLICY = DeliveryPolicy(first_backoff=timedelta(milliseconds=20), max_backoff=timedelta(seconds=1))


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else 0.0


def run(*, banks: int, seconds: float, submitters: int, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp:
        config = ServerConfig(
            data_dir=Path(tmp) / "data", port=0, max_workers=16, delivery_policy=POLICY
        )
        gateway = open_gateway(config)
        server, port = build_server(config, gateway=gateway)
        server.start()
        target = f"127.0.0.1:{port}"
        channel = grpc.insecure_channel(target)
        admin = admin_service_pb2_grpc.AdminServiceStub(channel)
        bank_ids = [f"bank-{n}" for n in range(banks)]
        mocks = []
        for bank_id in bank_ids:
            client = BankClient(channel=channel, bank_id=bank_id, caller=f"partner/{bank_id}")
            mock = MockBank(bank_id=bank_id, verify=client.verify, script=Script())
            bank_port = mock.start()
            admin.RegisterPartner(
                admin_service_pb2.RegisterPartnerRequest(
                    request_id=f"register-{bank_id}",
                    partner_id=bank_id,
                    display_name=bank_id,
                    endpoint=f"127.0.0.1:{bank_port}",
                ),
                metadata=(("x-colending-caller", "admin"),),
                timeout=10,
            )
            mocks.append(mock)
        assert gateway.dispatcher is not None
        stop_delivery = threading.Event()
        dispatchers = gateway.dispatcher.start(stop_delivery, workers=workers, poll_interval=0.01)

        platform = PlatformClient(channel=channel, caller="platform")
        merchants = sample_merchants(
            4000,
            seed=5,
            as_of=datetime.now(UTC).date(),
            mix=SampleMix(ineligible_pct=0, risky_pct=0),
        )
        submitted_at: dict[str, float] = {}
        lock = threading.Lock()
        stop_submit = threading.Event()
        counter = iter(range(len(merchants)))

        def submitter() -> None:
            while not stop_submit.is_set():
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                profile = merchants[n]
                consent = platform.record_consent(
                    platform_merchant_id=profile.identity.platform_merchant_id,
                    bank_ids=bank_ids,
                    data_scopes=ALL_SCOPES,  # type: ignore[arg-type]
                    expires_at=datetime.now(UTC) + timedelta(days=30),
                    evidence_reference="bench",
                )
                started = time.time()
                try:
                    referral = platform.submit_referral(
                        merchant=profile, consent_id=consent.consent_id, bank_ids=bank_ids
                    )
                except FailedPreconditionError:
                    continue  # an ineligible sample: not part of the measurement
                with lock:
                    submitted_at[referral.referral_id] = started

        threads = [threading.Thread(target=submitter) for _ in range(submitters)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop_submit.set()
        for thread in threads:
            thread.join()
        submit_seconds = time.perf_counter() - began
        with gateway.database.reading() as session:  # the benchmark reads the outbox directly
            backlog = outbox.pending_count(session)
        drain_started = time.perf_counter()
        expected = len(submitted_at) * banks
        while sum(len(m.received()) for m in mocks) < expected:
            if time.perf_counter() - drain_started > 120:
                break
            time.sleep(0.01)
        drain_seconds = time.perf_counter() - drain_started
        delivered = sum(len(m.received()) for m in mocks)
        latencies = [
            (received_at.timestamp() - submitted_at[referral_id]) * 1e3
            for mock in mocks
            for referral_id, received_at in mock.receipt_times().items()
            if referral_id in submitted_at
        ]
        stop_delivery.set()
        for thread in dispatchers:
            thread.join()
        for mock in mocks:
            mock.stop()
        channel.close()
        server.stop(grace=None).wait()
    return {
        "banks": banks,
        "submitters": submitters,
        "delivery_workers": workers,
        "referrals_submitted": len(submitted_at),
        "submits_per_second": round(len(submitted_at) / submit_seconds, 1),
        "pushes_expected": expected,
        "pushes_delivered": delivered,
        "deliveries_per_second": round(delivered / (submit_seconds + drain_seconds), 1),
        "backlog_when_submits_stopped": backlog,
        "drain_seconds": round(drain_seconds, 2),
        "submit_to_bank_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "submit_to_bank_p99_ms": round(_percentile(latencies, 0.99), 1),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--submitters", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--banks", default="1,3", help="comma-separated bank counts")
    args = parser.parse_args(argv)
    runs = [
        run(banks=int(n), seconds=args.seconds, submitters=args.submitters, workers=args.workers)
        for n in args.banks.split(",")
    ]
    result = {"cores": os.cpu_count(), "seconds": args.seconds, "runs": runs}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "delivery.json").write_text(json.dumps(result, indent=2))
    print(f"cores: {os.cpu_count()}")
    print("banks  submits/s  deliveries/s  backlog  drain s  submit->bank p50 ms  p99 ms")
    for r in runs:
        print(
            f"{r['banks']:>5}  {r['submits_per_second']:>9}  {r['deliveries_per_second']:>12}  "
            f"{r['backlog_when_submits_stopped']:>7}  {r['drain_seconds']:>7}  "
            f"{r['submit_to_bank_p50_ms']:>19}  {r['submit_to_bank_p99_ms']:>6}"
        )


if __name__ == "__main__":
    main()
