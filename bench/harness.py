"""The gateway's hot paths against the physical limit: an empty-handler gRPC server, same run.

    python -m bench [--seconds 10] [--warmup 2] [--concurrency 32] [--clients 2]
                    [--entries 1000000] [--only submit_sqlite,check,...] [--quick]

Every server runs in its own process, so its CPU time and peak RSS are its own:

- the **baseline**: ``grpc.server`` with the gateway's thread pool size and channel options,
  serving the same method names with the same request types (parsed), whose handlers return an
  empty response at once (a stream yields empty messages until cancelled). It has no handler
  wrapper: no authentication, rate limit, metrics or log line. That is the limit Python gRPC
  sets on this machine, and every ratio below is against it, measured in the same run.
- the **gateway**: ``gateway.server.build_server`` on a fresh data directory (SQLite, WAL,
  ``synchronous=FULL``) or a fresh PostgreSQL schema (``synchronous_commit=on``), with its
  wrapper, logging a JSON line per RPC as ``serve`` does (into a file); the per-bank rate limit
  is off (the load is one bank at thousands of calls a second).

Load comes from ``--clients`` processes sharing ``--concurrency`` closed-loop caller threads,
started together; each caller calls back to back for ``--warmup`` then ``--seconds``. Every
status is checked, and a sample of answers is checked for content.

Scenarios (``--only`` picks some): ``submit_sqlite`` and ``submit_postgres`` (SubmitReferral of
one merchant to one bank, a new request id each call); ``check`` (CheckBorrowers of 1 and of
1,000 pseudonyms, half listed, against ``--entries`` blacklist entries bulk-loaded as
bench/blacklist.py does); ``pull`` (PullReferrals, pages of 50, and StreamReferrals from the
start, over the referrals ``submit_sqlite`` made); ``snapshot`` (SubmitTradeSnapshot of one
of 16 merchants with a disbursed loan, each call raising and signing one alert); ``push``
(submit-to-bank latency with push delivery to a mock bank, bench/delivery.py, in one process,
so no baseline ratio).

Results go to bench/results/bench.json (``--out`` elsewhere) and a table is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import os
import platform
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc
from colending.v1 import (
    admin_service_pb2,
    blacklist_service_pb2,
    common_pb2,
    consent_pb2,
    financing_pb2,
    monitoring_pb2,
    partner_bank_service_pb2,
    referral_service_pb2,
)

from gateway.observe import configure_logging, log_lines_from_a_thread
from gateway.server import MAX_MESSAGE_BYTES, ServerConfig, build_server, open_gateway

RESULTS = Path(__file__).parent / "results"
CALLER_KEY = "x-colending-caller"
SUBMIT_BANK = "bank-a"  # pulls and streams; no push endpoint
RPC_TIMEOUT = 120.0
PULL_PAGE = 50
STREAM_CALLERS = 2
SCENARIOS = ("submit_sqlite", "submit_postgres", "check", "pull", "push", "snapshot")
_SPAWN = multiprocessing.get_context("spawn")  # gRPC does not survive fork()

REFERRALS = "/colending.v1.ReferralService"
_ID_REQUESTS: dict[str, Any] = {
    "SubmitReferral": referral_service_pb2.SubmitReferralRequest,
    "SubmitTradeSnapshot": referral_service_pb2.SubmitTradeSnapshotRequest,
}
BANKS = "/colending.v1.PartnerBankService"
BLACKLIST = "/colending.v1.BlacklistService"


def _percentile(ordered: Sequence[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * q + 0.5) - 1))]


def _usage() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mib": usage.ru_maxrss / 1024}


# --- servers (each in its own process) ---------------------------------------------------------


def _server_options() -> list[tuple[str, Any]]:
    # As gateway.server.build_server sets them.
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 0),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
    ]


def _build_baseline(max_workers: int) -> tuple[grpc.Server, int]:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="baseline"),
        options=_server_options(),
    )

    def unary(request_type: Any, response_type: Any) -> grpc.RpcMethodHandler:
        empty = response_type()
        return grpc.unary_unary_rpc_method_handler(
            lambda request, context: empty,
            request_deserializer=request_type.FromString,
            response_serializer=response_type.SerializeToString,
        )

    def endless(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        empty = partner_bank_service_pb2.StreamReferralsResponse()
        while context.is_active():
            yield empty

    rs, pb, bl = referral_service_pb2, partner_bank_service_pb2, blacklist_service_pb2
    handlers = {
        "colending.v1.ReferralService": {
            "SubmitReferral": unary(rs.SubmitReferralRequest, rs.SubmitReferralResponse),
            "SubmitTradeSnapshot": unary(
                rs.SubmitTradeSnapshotRequest, rs.SubmitTradeSnapshotResponse
            ),
        },
        "colending.v1.PartnerBankService": {
            "PullReferrals": unary(pb.PullReferralsRequest, pb.PullReferralsResponse),
            "StreamReferrals": grpc.unary_stream_rpc_method_handler(
                endless,
                request_deserializer=pb.StreamReferralsRequest.FromString,
                response_serializer=pb.StreamReferralsResponse.SerializeToString,
            ),
        },
        "colending.v1.BlacklistService": {
            "CheckBorrowers": unary(bl.CheckBorrowersRequest, bl.CheckBorrowersResponse)
        },
    }
    server.add_generic_rpc_handlers(
        tuple(grpc.method_handlers_generic_handler(s, m) for s, m in handlers.items())
    )
    return server, server.add_insecure_port("127.0.0.1:0")


def _serve(spec: dict[str, Any], conn: Connection) -> None:
    """A server process: answers "usage" with its CPU time and peak RSS until "stop"."""
    logging_thread: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if spec["kind"] == "baseline":
        server, port = _build_baseline(ServerConfig(data_dir=Path()).max_workers)
    else:
        # Logging as `serve` does it: a JSON line per RPC, here into a file in the data
        # directory, so the bench pays for the line a production gateway writes.
        data_dir = Path(spec["data_dir"])
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        sys.stderr = open(data_dir / "server.log", "a")  # noqa: SIM115  (for the process's life)
        configure_logging(level=logging.INFO, style="json")
        logging_thread = log_lines_from_a_thread()
        config = ServerConfig(
            data_dir=Path(spec["data_dir"]),
            database_url=spec.get("database_url"),
            port=spec.get("port", 0),
            partner_rate=0,
            reuse_port=spec.get("reuse_port", False),
        )
        gateway = open_gateway(config)
        server, port = build_server(config, gateway=gateway)
    with logging_thread:
        server.start()
        conn.send({"port": port})
        while conn.recv() != "stop":
            conn.send(_usage())
        server.stop(grace=None).wait()
    conn.send(_usage())


class ServerProcess:
    def __init__(self, **spec: Any) -> None:
        self._conn, child = _SPAWN.Pipe()
        self._process = _SPAWN.Process(target=_serve, args=(spec, child), daemon=True)
        self._process.start()
        if not self._conn.poll(120):
            raise RuntimeError(f"{spec['kind']} server did not start")
        self.target = f"127.0.0.1:{self._conn.recv()['port']}"

    def usage(self) -> dict[str, float]:
        self._conn.send("usage")
        answer: dict[str, float] = self._conn.recv()
        return answer

    def stop(self) -> dict[str, float]:
        self._conn.send("stop")
        answer: dict[str, float] = self._conn.recv()
        self._process.join(30)
        return answer


class ServerGroup:
    """``processes`` gateway servers on one port (``serve --processes``): the first binds a free
    port, the others the same one, all with SO_REUSEPORT. Usage is their CPU summed and the
    largest peak RSS."""

    def __init__(self, processes: int, **spec: Any) -> None:
        first = ServerProcess(**spec, reuse_port=True)
        port = int(first.target.rsplit(":", 1)[1])
        self.members = [first] + [
            ServerProcess(**spec, reuse_port=True, port=port) for _ in range(processes - 1)
        ]
        self.target = first.target

    def usage(self) -> dict[str, float]:
        return _combined([m.usage() for m in self.members])

    def stop(self) -> dict[str, float]:
        return _combined([m.stop() for m in self.members])


def _combined(usages: list[dict[str, float]]) -> dict[str, float]:
    return {
        "cpu_s": sum(u["cpu_s"] for u in usages),
        "peak_rss_mib": max(u["peak_rss_mib"] for u in usages),
    }


# The gateway's server processes in this run (``--processes``); the baseline keeps one.
GATEWAY_PROCESSES = {"count": 1}


@contextmanager
def serving(**spec: Any) -> Iterator[ServerProcess | ServerGroup]:
    count = GATEWAY_PROCESSES["count"] if spec.get("kind") == "gateway" else 1
    server = ServerGroup(count, **spec) if count > 1 else ServerProcess(**spec)
    try:
        yield server
    finally:
        server.stop()


# --- load (client processes) -------------------------------------------------------------------


def _drive_unary(
    *,
    target: str,
    method: str,
    caller: str,
    requests: list[bytes],
    request_ids: bool,
    check: str,
    expected: list[int],
    threads: int,
    start_at: float,
    warmup: float,
    seconds: float,
    seed: int,
) -> dict[str, Any]:
    """Closed loop: ``threads`` callers, warm-up then measurement, on wall-clock marks shared
    by every client process. Returns raw latencies (seconds) for the parent to merge."""
    options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
    metadata = ((CALLER_KEY, caller),)
    measure_from = start_at + warmup
    deadline = measure_from + seconds
    latencies: list[list[float]] = [[] for _ in range(threads)]
    problems: list[str] = []
    with grpc.insecure_channel(target, options=options) as channel:
        call = channel.unary_unary(method)
        grpc.channel_ready_future(channel).result(timeout=30)

        def worker(k: int) -> None:
            rng = random.Random(seed * 1000 + k)
            # A message whose field 1 is request_id, as in every mutating request.
            template = _ID_REQUESTS[method.rsplit("/", 1)[-1]]() if request_ids else None
            mine = latencies[k]
            n = 0
            try:
                time.sleep(max(0.0, start_at - time.time()))
                # At least one measured call each, even when one call outlasts the window.
                while (now := time.time()) < deadline or not mine:
                    j = rng.randrange(len(requests))
                    request = requests[j]
                    if template is not None:  # a new submission each call: a fresh id
                        template.ParseFromString(request)
                        template.request_id = uuid.uuid4().hex
                        request = template.SerializeToString()
                    t0 = time.perf_counter()
                    answer = call(request, timeout=RPC_TIMEOUT, metadata=metadata)
                    elapsed = time.perf_counter() - t0
                    if now >= measure_from:
                        mine.append(elapsed)
                    n += 1
                    if n % 64 == 1 and (problem := _answer_problem(check, answer, expected, j)):
                        problems.append(problem)
            except Exception as exc:  # reported with the scenario
                problems.append(repr(exc))

        cpu0 = time.process_time()
        pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
    return {
        "latencies": [x for mine in latencies for x in mine],
        "problems": problems[:3],
        "client_cpu_s": time.process_time() - cpu0,
    }


def _answer_problem(check: str, answer: bytes, expected: list[int], j: int) -> str:
    if check == "submit":
        got = referral_service_pb2.SubmitReferralResponse.FromString(answer)
        if not got.referral.referral_id or len(got.referral.deliveries) != 1:
            return f"submit answered {got}"
    elif check == "check":
        response = blacklist_service_pb2.CheckBorrowersResponse.FromString(answer)
        hits = sum(not r.clear for r in response.results)
        if hits != expected[j]:
            return f"{hits} listed, expected {expected[j]}"
    elif check == "snapshot":
        got = referral_service_pb2.SubmitTradeSnapshotResponse.FromString(answer)
        if len(got.alerts) != 1:
            return f"a snapshot raised {len(got.alerts)} alerts, expected 1"
    elif check == "pull":
        page = partner_bank_service_pb2.PullReferralsResponse.FromString(answer)
        if len(page.referrals) != expected[0]:
            return f"a page of {len(page.referrals)}, expected {expected[0]}"
    return ""


def _drive_stream(
    *, target: str, caller: str, messages: int, start_at: float, seed: int
) -> dict[str, Any]:
    """One StreamReferrals from the start, read until ``messages`` referrals, then cancelled."""
    request = partner_bank_service_pb2.StreamReferralsRequest().SerializeToString()
    options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
    with grpc.insecure_channel(target, options=options) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        call = channel.unary_stream(f"{BANKS}/StreamReferrals")
        time.sleep(max(0.0, start_at - time.time()))
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        first = 0.0
        stream = call(request, timeout=RPC_TIMEOUT, metadata=((CALLER_KEY, caller),))
        got = 0
        for _ in stream:
            got += 1
            if got == 1:
                first = time.perf_counter() - t0
            if got == messages:
                break
        seconds = time.perf_counter() - t0
        stream.cancel()
    return {
        "messages": got,
        "seconds": seconds,
        "first_ms": first * 1e3,
        "client_cpu_s": time.process_time() - cpu0,
    }


class Load:
    """The client processes, kept for the whole run (a spawn costs about a second)."""

    def __init__(self, *, clients: int, concurrency: int, warmup: float, seconds: float) -> None:
        self.clients = clients
        self.concurrency = concurrency
        self.warmup = warmup
        self.seconds = seconds
        self._pool = futures.ProcessPoolExecutor(clients, mp_context=_SPAWN)
        # Start every worker now, so no scenario pays for it.
        list(self._pool.map(time.sleep, [0.0] * clients))

    def close(self) -> None:
        self._pool.shutdown()

    def unary(
        self,
        server: ServerProcess | ServerGroup,
        *,
        method: str,
        caller: str,
        requests: list[bytes],
        request_ids: bool = False,
        check: str = "",
        expected: Sequence[int] = (),
        concurrency: int | None = None,
    ) -> dict[str, Any]:
        callers = concurrency or self.concurrency
        processes = min(self.clients, callers)
        start_at = time.time() + 1.0
        jobs = [
            self._pool.submit(
                _drive_unary,
                target=server.target,
                method=method,
                caller=caller,
                requests=requests,
                request_ids=request_ids,
                check=check,
                expected=list(expected),
                threads=callers // processes + (k < callers % processes),
                start_at=start_at,
                warmup=self.warmup,
                seconds=self.seconds,
                seed=k,
            )
            for k in range(processes)
        ]
        # The server's CPU over the measured window only.
        time.sleep(max(0.0, start_at + self.warmup - time.time()))
        before = server.usage()
        time.sleep(max(0.0, start_at + self.warmup + self.seconds - time.time()))
        after = server.usage()
        parts = [job.result() for job in jobs]
        problems = [p for part in parts for p in part["problems"]]
        if problems:
            raise AssertionError(f"{method}: wrong answers, e.g. {problems[0]}")
        merged = sorted(x for part in parts for x in part["latencies"])
        if not merged:
            raise AssertionError(f"{method}: no call completed in the measured window")
        cpu = after["cpu_s"] - before["cpu_s"]
        return {
            "callers": callers,
            "calls": len(merged),
            "per_second": len(merged) / self.seconds,
            "p50_ms": statistics.median(merged) * 1e3,
            "p99_ms": _percentile(merged, 0.99) * 1e3,
            "p999_ms": _percentile(merged, 0.999) * 1e3,
            "max_ms": merged[-1] * 1e3,
            "server_cpu_s": cpu,
            "server_cpu_ms_per_call": cpu / len(merged) * 1e3,
            "server_peak_rss_mib": after["peak_rss_mib"],
            "client_cpu_s": sum(part["client_cpu_s"] for part in parts),
        }

    def stream(
        self, server: ServerProcess | ServerGroup, *, caller: str, messages: int
    ) -> dict[str, Any]:
        start_at = time.time() + 1.0
        jobs = [
            self._pool.submit(
                _drive_stream,
                target=server.target,
                caller=caller,
                messages=messages,
                start_at=start_at,
                seed=k,
            )
            for k in range(STREAM_CALLERS)
        ]
        time.sleep(max(0.0, start_at - time.time()))
        before = server.usage()
        parts = [job.result() for job in jobs]
        after = server.usage()
        if any(part["messages"] != messages for part in parts):
            raise AssertionError(f"stream: {[p['messages'] for p in parts]} of {messages}")
        seconds = max(part["seconds"] for part in parts)
        total = sum(part["messages"] for part in parts)
        return {
            "callers": STREAM_CALLERS,
            "messages": total,
            "per_second": total / seconds,
            "first_message_ms": max(part["first_ms"] for part in parts),
            "server_cpu_s": after["cpu_s"] - before["cpu_s"],
            "server_peak_rss_mib": after["peak_rss_mib"],
        }


# --- fixtures -----------------------------------------------------------------------------------


def _tests_on_path() -> None:
    tests = str(Path(__file__).resolve().parent.parent / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)


def _submit_requests(target: str, *, count: int) -> list[bytes]:
    """Register the bank, record ``count`` merchants' consents; one request (no id) each."""
    _tests_on_path()
    from testkit import ALL_SCOPES, merchant  # type: ignore[import-not-found]

    from partners.sdk import PlatformClient

    with grpc.insecure_channel(target) as channel:
        channel.unary_unary("/colending.v1.AdminService/RegisterPartner")(
            admin_service_pb2.RegisterPartnerRequest(
                request_id="bench-bank", partner_id=SUBMIT_BANK, display_name="Bank A"
            ).SerializeToString(),
            metadata=((CALLER_KEY, "admin"),),
            timeout=30,
        )
        client = PlatformClient(channel=channel, caller="platform")
        requests = []
        for n in range(count):
            profile = merchant(merchant_id=f"m-bench-{n}")
            consent = client.record_consent(
                platform_merchant_id=profile.identity.platform_merchant_id,
                bank_ids=[SUBMIT_BANK],
                data_scopes=list(ALL_SCOPES),
                expires_at=datetime.now(UTC) + timedelta(days=30),
                evidence_reference="bench",
            )
            request = referral_service_pb2.SubmitReferralRequest(
                merchant=profile, consent_id=consent.consent_id, bank_ids=[SUBMIT_BANK]
            )
            requests.append(request.SerializeToString())
    return requests


def _snapshot_requests(target: str, *, count: int) -> list[bytes]:
    """``count`` merchants with a disbursed loan at the bench bank and a MONITORING consent; one
    SubmitTradeSnapshot request (no id) each, which raises one signed alert."""
    _tests_on_path()
    from testkit import ALL_SCOPES, merchant  # type: ignore[import-not-found]

    from partners.sdk import BankClient, PlatformClient

    today = datetime.now(UTC).astimezone(timezone(timedelta(hours=8))).date()
    day = common_pb2.Date(year=today.year, month=today.month, day=today.day)
    requests = []
    with grpc.insecure_channel(target) as channel:
        platform_ = PlatformClient(channel=channel, caller="platform")
        bank = BankClient(channel=channel, bank_id=SUBMIT_BANK, caller=f"partner/{SUBMIT_BANK}")
        for n in range(count):
            profile = merchant(merchant_id=f"m-watch-{n}")
            merchant_id = profile.identity.platform_merchant_id
            common = {
                "platform_merchant_id": merchant_id,
                "bank_ids": [SUBMIT_BANK],
                "data_scopes": list(ALL_SCOPES),
                "expires_at": datetime.now(UTC) + timedelta(days=30),
                "evidence_reference": "bench",
            }
            consent = platform_.record_consent(**common)
            referral = platform_.submit_referral(
                merchant=profile, consent_id=consent.consent_id, bank_ids=[SUBMIT_BANK]
            )
            case_id = referral.deliveries[0].case_id
            offer = referral.deliveries[0].offer
            bank.acknowledge(case_id, bank_reference=f"B-{n}")
            bank.submit_decision(
                case_id,
                financing_pb2.Decision(
                    outcome=financing_pb2.DECISION_OUTCOME_APPROVE,
                    terms=financing_pb2.LoanTerms(
                        product=offer.product,
                        amount=offer.total_limit,
                        fixed_amount=offer.fixed_amount,
                        term_months=offer.term_months,
                        revolving_daily_rate_ppm=offer.revolving_daily_rate_ppm,
                        fixed_daily_rate_ppm=offer.fixed_daily_rate_ppm,
                        split=financing_pb2.FundingSplit(
                            bank_share_bps=7000, platform_share_bps=3000
                        ),
                    ),
                ),
            )
            bank.report_loan_event(
                case_id,
                financing_pb2.LoanEvent(
                    type=financing_pb2.LOAN_EVENT_TYPE_DISBURSED,
                    event_date=day,
                    bank_loan_reference=f"LN-{n}",
                    disbursed_amount=offer.total_limit,
                ),
            )
            watch = platform_.record_consent(
                **common, purpose=consent_pb2.CONSENT_PURPOSE_MONITORING
            )
            snapshot = monitoring_pb2.TradeSnapshot(
                platform_merchant_id=merchant_id,
                as_of=day,
                reputation=profile.reputation,
                store_restricted=True,  # one CRITICAL signal: every call signs one alert
            )
            request = referral_service_pb2.SubmitTradeSnapshotRequest(
                consent_id=watch.consent_id, snapshot=snapshot
            )
            requests.append(request.SerializeToString())
    return requests


def _load_blacklist(data_dir: str, entries: int) -> dict[str, Any]:
    """Runs in a child: the gateway's schema, keys and partners, then ``entries`` entries."""
    from bench import blacklist as bl
    from gateway.signing.network_key import open_network_key
    from gateway.store.db import sqlite_url

    config = ServerConfig(data_dir=Path(data_dir), port=0)
    gateway = open_gateway(config)
    bl._register_partners(gateway)
    key = open_network_key(config.data_dir / "network-key", create=False)
    load = bl.bulk_load(
        database_url=sqlite_url(config.data_dir),
        network_key=key,
        rules=gateway.blacklist.rules,
        entries=entries,
        chunk=50_000,
        tx_entries=250_000,
        proof_samples=1,
        seed=1,
    )
    rng = random.Random(1)
    check1 = bl._check_requests(key, entries=entries, batch=1, count=2000, rng=rng)
    check1000 = bl._check_requests(key, entries=entries, batch=1000, count=16, rng=rng)
    return {
        "seconds": load["seconds"],
        "entries": entries,
        "check1": check1,
        "check1000": check1000,
        "caller": f"partner/{bl.CHECK_BANK}",
    }


def _postgres_schema() -> tuple[str, Callable[[], None]] | str:
    """A URL on a fresh schema and its dropper, or why PostgreSQL cannot be used."""
    import psycopg

    base = os.environ.get(
        "COLENDING_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    libpq = base.replace("postgresql+psycopg://", "postgresql://", 1)
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(libpq, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]

    def drop() -> None:
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}", drop


# --- the run ------------------------------------------------------------------------------------


def _ratio(row: dict[str, Any], base: dict[str, Any]) -> None:
    row["throughput_ratio"] = row["per_second"] / base["per_second"]
    if "p50_ms" in row:
        row["p50_ratio"] = row["p50_ms"] / base["p50_ms"]


def run(options: argparse.Namespace) -> dict[str, Any]:
    chosen = set(options.only.split(",")) if options.only else set(SCENARIOS)
    if unknown := chosen - set(SCENARIOS):
        raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}")
    scenarios: dict[str, Any] = {}
    result: dict[str, Any] = {
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "grpc": grpc.__version__,
            "sqlite": sqlite3.sqlite_version,
            "load_average_at_start": os.getloadavg(),
        },
        "parameters": {
            "seconds": options.seconds,
            "warmup": options.warmup,
            "concurrency": options.concurrency,
            "clients": options.clients,
            "entries": options.entries,
            "gateway_processes": options.processes,
            "server_threads": ServerConfig(data_dir=Path()).max_workers,
        },
        "scenarios": scenarios,
    }
    load = Load(
        clients=options.clients,
        concurrency=options.concurrency,
        warmup=options.warmup,
        seconds=options.seconds,
    )
    merchants = 64
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp, serving(kind="baseline") as base:
            submit_requests: list[bytes] = []
            if chosen & {"submit_sqlite", "pull"}:
                with serving(kind="gateway", data_dir=f"{tmp}/sqlite") as gateway:
                    print("SubmitReferral, SQLite ...", flush=True)
                    submit_requests = _submit_requests(gateway.target, count=merchants)
                    submit = {
                        "method": f"{REFERRALS}/SubmitReferral",
                        "caller": "platform",
                        "requests": submit_requests,
                        "request_ids": True,
                    }
                    row = load.unary(gateway, **submit, check="submit")
                    scenarios["baseline_submit"] = load.unary(base, **submit)
                    _ratio(row, scenarios["baseline_submit"])
                    scenarios["submit_sqlite"] = row
                    if "pull" in chosen:
                        print("PullReferrals, StreamReferrals ...", flush=True)
                        _pull(load, base, gateway, scenarios)
            if "snapshot" in chosen:
                with serving(kind="gateway", data_dir=f"{tmp}/monitoring") as gateway:
                    print("SubmitTradeSnapshot, SQLite (setting up loans) ...", flush=True)
                    _submit_requests(gateway.target, count=0)  # registers the bank
                    snapshot = {
                        "method": f"{REFERRALS}/SubmitTradeSnapshot",
                        "caller": "platform",
                        "requests": _snapshot_requests(gateway.target, count=16),
                        "request_ids": True,
                    }
                    row = load.unary(gateway, **snapshot, check="snapshot")
                    scenarios["baseline_snapshot"] = load.unary(base, **snapshot)
                    _ratio(row, scenarios["baseline_snapshot"])
                    scenarios["snapshot"] = row
            if "submit_postgres" in chosen:
                print("SubmitReferral, PostgreSQL ...", flush=True)
                _submit_postgres(load, base, scenarios)
            if "check" in chosen:
                print(f"CheckBorrowers, {options.entries:,} entries (loading) ...", flush=True)
                _check(load, base, scenarios, data_dir=f"{tmp}/blacklist", entries=options.entries)
            result["baseline_server"] = base.usage()
        if "push" in chosen:
            print("push delivery ...", flush=True)
            scenarios["push"] = _push(seconds=options.seconds)
    finally:
        load.close()
    result["machine"]["load_average_at_end"] = os.getloadavg()
    return result


def _pull(
    load: Load, base: ServerProcess, gateway: ServerProcess | ServerGroup, scenarios: dict[str, Any]
) -> None:
    caller = f"partner/{SUBMIT_BANK}"
    made = int(scenarios["submit_sqlite"]["calls"])
    page = partner_bank_service_pb2.PullReferralsRequest(page_size=PULL_PAGE).SerializeToString()
    pull = {"method": f"{BANKS}/PullReferrals", "caller": caller, "requests": [page]}
    row = load.unary(gateway, **pull, check="pull", expected=[min(PULL_PAGE, made)])
    scenarios["baseline_pull"] = load.unary(base, **pull)
    _ratio(row, scenarios["baseline_pull"])
    row["referrals_per_second"] = row["per_second"] * min(PULL_PAGE, made)
    scenarios["pull"] = row
    messages = min(made, 20_000)
    stream = load.stream(gateway, caller=caller, messages=messages)
    scenarios["baseline_stream"] = load.stream(base, caller=caller, messages=messages)
    _ratio(stream, scenarios["baseline_stream"])
    scenarios["stream"] = stream


def _submit_postgres(load: Load, base: ServerProcess, scenarios: dict[str, Any]) -> None:
    schema = _postgres_schema()
    if isinstance(schema, str):
        scenarios["submit_postgres"] = {"skipped": f"PostgreSQL not reachable: {schema}"}
        return
    url, drop = schema
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp,
            serving(kind="gateway", data_dir=tmp, database_url=url) as gateway,
        ):
            submit = {
                "method": f"{REFERRALS}/SubmitReferral",
                "caller": "platform",
                "requests": _submit_requests(gateway.target, count=64),
                "request_ids": True,
            }
            row = load.unary(gateway, **submit, check="submit")
        if "baseline_submit" not in scenarios:
            scenarios["baseline_submit"] = load.unary(base, **submit)
        _ratio(row, scenarios["baseline_submit"])
        scenarios["submit_postgres"] = row
    finally:
        drop()


def _check(
    load: Load, base: ServerProcess, scenarios: dict[str, Any], *, data_dir: str, entries: int
) -> None:
    with futures.ProcessPoolExecutor(1, mp_context=_SPAWN) as loader:
        loaded = loader.submit(_load_blacklist, data_dir, entries).result()
    print(f"  loaded in {loaded['seconds']:.0f} s", flush=True)
    with serving(kind="gateway", data_dir=data_dir) as gateway:
        for name, (requests, hits) in (
            ("check_1", loaded["check1"]),
            ("check_1000", loaded["check1000"]),
        ):
            check = {
                "method": f"{BLACKLIST}/CheckBorrowers",
                "caller": loaded["caller"],
                "requests": requests,
            }
            row = load.unary(gateway, **check, check="check", expected=hits)
            scenarios[f"baseline_{name}"] = load.unary(base, **check)
            _ratio(row, scenarios[f"baseline_{name}"])
            row["entries"] = entries
            scenarios[name] = row
    scenarios["check_1000"]["borrowers_per_second"] = scenarios["check_1000"]["per_second"] * 1000


def _push(*, seconds: float) -> dict[str, Any]:
    from bench.delivery import run as delivery_run

    with futures.ProcessPoolExecutor(1, mp_context=_SPAWN) as child:
        return child.submit(
            delivery_run, banks=1, seconds=seconds, submitters=8, workers=4
        ).result()


# --- report -------------------------------------------------------------------------------------

_ROWS = (
    ("baseline_submit", "empty handler: SubmitReferral"),
    ("submit_sqlite", "SubmitReferral, SQLite"),
    ("submit_postgres", "SubmitReferral, PostgreSQL"),
    ("baseline_check_1", "empty handler: Check x1"),
    ("check_1", "CheckBorrowers x1"),
    ("baseline_check_1000", "empty handler: Check x1000"),
    ("check_1000", "CheckBorrowers x1000"),
    ("baseline_pull", "empty handler: PullReferrals"),
    ("pull", f"PullReferrals (pages of {PULL_PAGE})"),
    ("baseline_stream", "empty stream (msgs)"),
    ("stream", "StreamReferrals (msgs)"),
    ("baseline_snapshot", "empty handler: TradeSnapshot"),
    ("snapshot", "SubmitTradeSnapshot, SQLite"),
)


def report(result: dict[str, Any]) -> None:
    machine = result["machine"]
    print(
        f"\n{machine['cores']} cores, Python {machine['python']}, grpc {machine['grpc']}; "
        f"{result['parameters']['concurrency']} callers in {result['parameters']['clients']} "
        f"client processes, {result['parameters']['seconds']:g} s each; "
        f"{result['parameters'].get('gateway_processes', 1)} gateway process(es)"
    )
    head = f"{'scenario':<30}{'per s':>9}{'ratio':>7}{'p50 ms':>9}{'p99 ms':>9}{'p999 ms':>9}"
    print(head + f"{'CPU ms/call':>12}{'RSS MiB':>9}")
    for key, name in _ROWS:
        row = result["scenarios"].get(key)
        if row is None:
            continue
        if "skipped" in row:
            print(f"{name:<30}  skipped: {row['skipped']}")
            continue
        ratio = f"{row['throughput_ratio']:.2f}" if "throughput_ratio" in row else ""
        cells = [f"{row[k]:.1f}" if k in row else "" for k in ("p50_ms", "p99_ms", "p999_ms")]
        cpu = f"{row['server_cpu_ms_per_call']:.2f}" if "server_cpu_ms_per_call" in row else ""
        print(
            f"{name:<30}{row['per_second']:>9.0f}{ratio:>7}{cells[0]:>9}{cells[1]:>9}{cells[2]:>9}"
            f"{cpu:>12}{row['server_peak_rss_mib']:>9.0f}"
        )
    if push := result["scenarios"].get("push"):
        print(
            f"push delivery, 1 bank: {push['submits_per_second']} submits/s, submit->bank "
            f"p50 {push['submit_to_bank_p50_ms']} ms, p99 {push['submit_to_bank_p99_ms']} ms, "
            f"backlog {push['backlog_when_submits_stopped']}"
        )


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured, per scenario")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=32, help="caller threads in all")
    parser.add_argument("--clients", type=int, default=2, help="load generator processes")
    parser.add_argument("--entries", type=int, default=1_000_000, help="blacklist entries")
    parser.add_argument("--only", default="", help=f"comma-separated: {','.join(SCENARIOS)}")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench.json")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="gateway server processes sharing the port (serve --processes); the empty-handler "
        "baseline keeps one",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 1 s, 10,000 entries (unless given)"
    )
    options = parser.parse_args(argv)
    if options.quick:
        given = set(argv if argv is not None else sys.argv[1:])
        options.seconds = options.seconds if "--seconds" in given else 1.0
        options.warmup = options.warmup if "--warmup" in given else 0.3
        options.entries = options.entries if "--entries" in given else 10_000
    GATEWAY_PROCESSES["count"] = options.processes
    result = _rounded(run(options))
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(result, indent=2) + "\n")
    report(result)
    print(f"\nwritten to {options.out}")
