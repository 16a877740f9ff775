"""Submissions per second on SQLite from one client, against a no-op baseline in the same run.

The baseline is a gRPC health check on the same server (same thread pool, same process, same
channel): what Python gRPC costs with no work behind it. The ratio is what the gateway's
validate-score-sign-persist path costs on top. Results go to bench/results/submit.json.

    python -m bench [--seconds 10] [--warmup 2]

``python -m bench blacklist [--entries N] ...`` runs the blacklist benchmark instead
(bench/blacklist.py), ``python -m bench delivery [--seconds 5] ...`` the push-delivery
benchmark (bench/delivery.py), and ``python -m bench replicas ...`` submissions with one and two
replicas on PostgreSQL and one on SQLite (bench/replicas.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from colending.v1 import admin_service_pb2, admin_service_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.server import ServerConfig, build_server, open_gateway
from partners.sdk import PlatformClient

# The benchmark submits the same realistic merchant the tests use.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from testkit import ALL_SCOPES, merchant  # type: ignore[import-not-found]

RESULTS = Path(__file__).parent / "results"


def _measure(call: Callable[[], object], *, seconds: float, warmup: float) -> dict[str, float]:
    end_warmup = time.perf_counter() + warmup
    while time.perf_counter() < end_warmup:
        call()
    latencies = []
    cpu0 = time.process_time()
    start = time.perf_counter()
    deadline = start + seconds
    while (now := time.perf_counter()) < deadline:
        call()
        latencies.append(time.perf_counter() - now)
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "calls": len(latencies),
        "per_second": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1e3,
        "process_cpu_seconds": time.process_time() - cpu0,
    }


def main() -> None:
    if sys.argv[1:2] == ["blacklist"]:
        from bench.blacklist import main as blacklist_main

        blacklist_main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["delivery"]:
        from bench.delivery import main as delivery_main

        delivery_main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["replicas"]:
        from bench.replicas import main as replicas_main

        replicas_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        config = ServerConfig(data_dir=Path(tmp) / "data", port=0)
        gateway = open_gateway(config)
        server, port = build_server(config, gateway=gateway)
        server.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                admin_service_pb2_grpc.AdminServiceStub(channel).RegisterPartner(
                    admin_service_pb2.RegisterPartnerRequest(
                        request_id="bench-bank", partner_id="bank-a", display_name="Bank A"
                    ),
                    metadata=(("x-colending-caller", "admin"),),
                )
                platform_client = PlatformClient(channel=channel, caller="platform")
                consent = platform_client.record_consent(
                    platform_merchant_id="m-bench",
                    bank_ids=["bank-a"],
                    data_scopes=list(ALL_SCOPES),
                    expires_at=datetime.now(UTC) + timedelta(days=30),
                    evidence_reference="bench",
                )
                profile = merchant(merchant_id="m-bench")
                health = health_pb2_grpc.HealthStub(channel)

                def noop() -> object:
                    return health.Check(health_pb2.HealthCheckRequest(), timeout=10)  # type: ignore[attr-defined]

                def submit() -> object:
                    return platform_client.submit_referral(
                        merchant=profile,
                        consent_id=consent.consent_id,
                        bank_ids=["bank-a"],
                        request_id=str(uuid.uuid4()),
                    )

                baseline = _measure(noop, seconds=options.seconds, warmup=options.warmup)
                submits = _measure(submit, seconds=options.seconds, warmup=options.warmup)
        finally:
            server.stop(grace=None).wait()

    result = {
        "scenario": "SubmitReferral, SQLite (WAL, synchronous=FULL), 1 client, 1 bank",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "baseline_noop": baseline,
        "submit": submits,
        "ratio_submit_to_baseline": submits["per_second"] / baseline["per_second"],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "submit.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'scenario':<28}{'per s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, row in (("no-op baseline", baseline), ("SubmitReferral (SQLite)", submits)):
        print(f"{name:<28}{row['per_second']:>10.0f}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}")
    print(f"ratio submit / baseline: {result['ratio_submit_to_baseline']:.3f}")


if __name__ == "__main__":
    main()
