"""Submissions per second with one and with two replicas on PostgreSQL, and with one on SQLite.

Each replica is a real ``colending-gateway serve`` process (no push delivery: the bank pulls);
PostgreSQL is a private server started for the run (``initdb`` in a temporary directory, default
settings, so ``fsync`` and ``synchronous_commit`` are on). The load is ``--threads`` closed-loop
callers in this process on one round-robin channel over the replicas, each calling
SubmitReferral (one merchant, one bank, a new request id each call) for ``--warmup`` then
``--seconds``. The machine's core count is printed beside the figures: the load generator, the
replicas and PostgreSQL share those cores, so on a small machine a second replica adds little.

    python -m bench replicas [--seconds 10] [--warmup 2] [--threads 8]

Results go to bench/results/replicas.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fault.clients import balanced_channel, register  # type: ignore[import-not-found]
from fault.processes import PrivatePostgres, Replica  # type: ignore[import-not-found]
from testkit import ALL_SCOPES, in_days, merchant  # type: ignore[import-not-found]

from gateway.server import ServerConfig, open_gateway
from partners.sdk import PlatformClient, RetryPolicy, RpcError

RESULTS = Path(__file__).parent / "results"


def _load(targets: Sequence[str], *, threads: int, seconds: float, warmup: float) -> dict[str, Any]:
    channel = balanced_channel(targets)
    platform_client = PlatformClient(
        channel=channel, caller="platform", retry=RetryPolicy(max_attempts=1)
    )
    consent = platform_client.record_consent(
        platform_merchant_id="m-bench",
        bank_ids=["bank-a"],
        data_scopes=list(ALL_SCOPES),
        expires_at=in_days(90),
        evidence_reference="consent:bench",
    )
    profile = merchant(merchant_id="m-bench")
    start = time.perf_counter() + warmup
    end = start + seconds
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        while (began := time.perf_counter()) < end:
            try:
                platform_client.submit_referral(
                    merchant=profile,
                    consent_id=consent.consent_id,
                    bank_ids=["bank-a"],
                    request_id=f"bench-{uuid.uuid4()}",
                )
            except RpcError as error:
                with lock:
                    errors.append(error.code.name)
                continue
            if began >= start:
                with lock:
                    latencies.append(time.perf_counter() - began)

    workers = [threading.Thread(target=call) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    channel.close()
    latencies.sort()
    return {
        "calls": len(latencies),
        "per_second": len(latencies) / seconds,
        "p50_ms": statistics.median(latencies) * 1e3 if latencies else 0.0,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1e3 if latencies else 0.0,
        "errors": len(errors),
    }


def _scenario(
    name: str, database_url: str | None, replicas: int, work: Path, options: argparse.Namespace
) -> dict[str, Any]:
    data_dir = work / name / "data"
    gateway = open_gateway(ServerConfig(data_dir=data_dir, database_url=database_url))
    gateway.database.dispose()
    started = [
        Replica(
            name=f"{name}-{n}",
            data_dir=data_dir,
            database_url=database_url,
            log=work / f"{name}-{n}.log",
            delivery_workers=0,
        )
        for n in range(replicas)
    ]
    try:
        for replica in started:
            replica.start()
        register(balanced_channel([started[0].target]), "bank-a")  # pulls: no push work
        result = _load(
            [r.target for r in started],
            threads=options.threads,
            seconds=options.seconds,
            warmup=options.warmup,
        )
    finally:
        for replica in started:
            replica.stop()
    return {"scenario": name, "replicas": replicas, **result}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench replicas", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=8)
    options = parser.parse_args(argv)
    problem = PrivatePostgres.problem()
    if problem is not None:
        raise SystemExit(f"bench replicas: {problem}")
    cores = os.cpu_count()
    print(f"{cores} cores, Python {platform.python_version()}, {options.threads} caller threads")
    results = []
    postgres = PrivatePostgres.create()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
            work = Path(tmp)
            for name, url, count in (
                ("postgres-1", postgres.create_database("bench1"), 1),
                ("postgres-2", postgres.create_database("bench2"), 2),
                ("sqlite-1", None, 1),
            ):
                result = _scenario(name, url, count, work, options)
                results.append(result)
                print(
                    f"{name:<11} {result['per_second']:8.1f} submissions/s  "
                    f"p50 {result['p50_ms']:6.1f} ms  p99 {result['p99_ms']:7.1f} ms  "
                    f"errors {result['errors']}"
                )
    finally:
        postgres.destroy()
    by_name = {r["scenario"]: r["per_second"] for r in results}
    ratio = by_name["postgres-2"] / by_name["postgres-1"] if by_name["postgres-1"] else 0.0
    print(f"two replicas / one on PostgreSQL: {ratio:.2f} ({cores} cores)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "replicas.json").write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "cpu_count": cores,
                "python": platform.python_version(),
                "options": vars(options),
                "results": results,
                "two_over_one_postgres": ratio,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
