"""The blacklist at scale: bulk load, checks and proofs against an empty gRPC baseline, a full sync.

    python -m bench blacklist [--entries 1000000] [--duration 5] [--warmup 1] [--threads 8]

1. A gateway starts on a fresh temporary data directory (SQLite). N ADDED entries, one per
   generated valid unified social credit code, are bulk-loaded straight into
   ``blacklist_entries``, ``blacklist_changes`` and ``log_nodes`` with executemany inserts
   (chunks of 50k, a few transactions) in a child process: rows and leaves come from the
   gateway's own code (``new_entry``, ``leaf_of``, the repository's row mapping) and the Merkle
   nodes from ``MerkleLog`` over a ``MemoryHashStore``. The running gateway's signed checkpoint
   must have the root computed while loading, and a sample of rows must re-encode to their
   stored leaves.
2. A client process (``--threads`` threads, one channel, fixed ``--duration``) drives over a real
   socket: the empty-handler baseline server (same process, thread pool and options as the
   gateway's server), CheckBorrowers with 1 and with 1,000 pseudonyms (half listed, half not),
   GetInclusionProof for random indexes and GetCheckpoint. Every answer is checked.
3. ``MerkleLog.inclusion_proof`` is also timed in-process, over the gateway's database and over
   the loader's ``MemoryHashStore``; the SQL behind checks and proofs is timed and explained.
4. A fresh process syncs all N changes with ``BlacklistClient.sync`` into a ``LocalBlacklist``
   whose root must equal the checkpoint's.
5. The gateway process's RSS (peak and current) is recorded after each phase; the load and the
   clients run in other processes so that it is the gateway's own.

Results go to bench/results/blacklist-<UTC timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import resource
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from colending.v1 import blacklist_pb2, blacklist_service_pb2
from sqlalchemy import Engine, event, insert
from sqlmodel import SQLModel

from colending_core import pseudonym, uscc_check_character, verify_inclusion
from gateway._transactions import BUSINESS_TZ, Idempotency, business_date, utc_now
from gateway.app import Gateway
from gateway.blacklist import convert
from gateway.domain.blacklist import (
    BlacklistRules,
    ChangeType,
    ListingReason,
    leaf_of,
    new_entry,
)
from gateway.domain.ids import new_id
from gateway.server import MAX_MESSAGE_BYTES, ServerConfig, build_server, open_gateway
from gateway.signing.merkle import MemoryHashStore, MerkleLog
from gateway.signing.network_key import open_network_key
from gateway.store import blacklist_repository as bl
from gateway.store.db import Database, sqlite_url
from gateway.store.log_store import DatabaseHashStore
from partners.sdk import BlacklistClient, IdentifierKind, LocalBlacklist, public_key_from_raw

RESULTS = Path(__file__).parent / "results"
CALLER_KEY = "x-colending-caller"
REPORTERS = ("bank-r1", "bank-r2", "bank-r3", "bank-r4")
CHECK_BANK = "bank-check"
SYNC_BANK = "bank-sync"
# Serials from here on are never loaded: their pseudonyms are valid borrowers with no entry.
MISS_SERIAL_BASE = 500_000_000
BASELINE_METHOD = "/bench.Empty/Call"
RPC_TIMEOUT = 300.0
_REASONS = tuple(ListingReason)
_SPAWN = multiprocessing.get_context("spawn")  # gRPC does not survive fork()


def uscc_of(serial: int) -> str:
    """A valid unified social credit code (Hangzhou company) with a 9-digit serial."""
    body = f"91330106{serial:09d}"
    return body + uscc_check_character(body)


def borrower_pseudonym(network_key: bytes, serial: int) -> bytes:
    return pseudonym(network_key, IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE, uscc_of(serial))


# --- memory -----------------------------------------------------------------------------------


def rss_mib() -> dict[str, float]:
    """This process's current RSS and peak RSS, in MiB.

    ``current_rss_mib`` is VmRSS and ``vm_hwm_mib`` VmHWM from /proc/self/status; ``peak_rss_mib``
    is getrusage's ru_maxrss. In a spawned child ru_maxrss starts at the parent's peak (Linux
    keeps it across fork and exec), so a child's own peak is VmHWM.
    """
    status: dict[str, float] = {}
    with open("/proc/self/status") as lines:
        for line in lines:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                status[name] = int(value.split()[0]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "current_rss_mib": round(status["VmRSS"], 1),
        "peak_rss_mib": round(peak, 1),
        "vm_hwm_mib": round(status["VmHWM"], 1),
    }


# --- bulk load (child process) -----------------------------------------------------------------


class _RecordingStore(MemoryHashStore):
    """A MemoryHashStore that also hands out the hashes written since the last drain."""

    def __init__(self) -> None:
        super().__init__()
        self._pending: list[tuple[int, int, bytes]] = []

    def put_many(self, entries: Sequence[tuple[int, int, bytes]]) -> None:
        super().put_many(entries)
        self._pending.extend(entries)

    def drain(self) -> list[tuple[int, int, bytes]]:
        drained, self._pending = self._pending, []
        return drained


def bulk_load(
    *,
    database_url: str,
    network_key: bytes,
    rules: BlacklistRules,
    entries: int,
    chunk: int,
    tx_entries: int,
    proof_samples: int,
    seed: int,
) -> dict[str, Any]:
    """Load ``entries`` ADDED changes as the gateway would have logged them; runs in a child."""
    started = time.perf_counter()
    database = Database(url=database_url)
    tables = SQLModel.metadata.tables
    entry_table = tables["blacklist_entries"]
    change_table = tables["blacklist_changes"]
    node_table = tables["log_nodes"]
    store = _RecordingStore()
    log = MerkleLog(store=store)
    now = utc_now()
    # One microsecond apart, all in the past: reported_at orders entries as real reports would.
    first_moment = now - timedelta(microseconds=entries + 1_000_000)
    today = business_date(now)
    generate_s = insert_s = 0.0
    transactions = 0
    rows = {"blacklist_entries": 0, "blacklist_changes": 0, "log_nodes": 0}

    for tx_start in range(0, entries, tx_entries):
        tx_end = min(entries, tx_start + tx_entries)
        with database.writing() as session:
            transactions += 1
            # A bigger page cache for this connection only; it changes no stored byte.
            session.connection().exec_driver_sql("PRAGMA cache_size=-262144")
            for start in range(tx_start, tx_end, chunk):
                t0 = time.perf_counter()
                entry_rows: list[dict[str, Any]] = []
                change_rows: list[dict[str, Any]] = []
                for i in range(start, min(tx_end, start + chunk)):
                    moment = first_moment + timedelta(microseconds=i)
                    # Within retention (5 years), so every entry is in force and not due.
                    default_date = today - timedelta(days=30 + i % 1500)
                    entry = new_entry(
                        entry_id=new_id("bl"),
                        pseudonym=borrower_pseudonym(network_key, i),
                        identifier_kind=IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE,
                        reporter_bank_id=REPORTERS[i % len(REPORTERS)],
                        reason=_REASONS[i % len(_REASONS)],
                        outstanding_fen=10_000 + (i * 7919) % 10**9,
                        default_date=default_date,
                        evidence_case_id="",
                        # As report_default without a case: the default date is the end.
                        default_ended_on=default_date,
                        now=moment,
                        rules=rules,
                        tz=BUSINESS_TZ,
                    )
                    leaf = leaf_of(
                        log_index=i, change_type=ChangeType.ADDED, entry=entry, logged_at=moment
                    )
                    appended = log.append(leaf)
                    assert appended == i
                    # The repository's own row mapping, as log_change stores a new entry.
                    entry_rows.append({**bl._entry_values(entry), "updated_at": moment})
                    change_rows.append(
                        {
                            "log_index": i,
                            "entry_id": entry.entry_id,
                            "change_type": ChangeType.ADDED.value,
                            "leaf": leaf,
                            "logged_at": moment,
                        }
                    )
                node_rows = [{"level": lv, "idx": ix, "hash": h} for lv, ix, h in store.drain()]
                t1 = time.perf_counter()
                session.execute(insert(entry_table), entry_rows)
                session.execute(insert(change_table), change_rows)
                session.execute(insert(node_table), node_rows)
                t2 = time.perf_counter()
                generate_s += t1 - t0
                insert_s += t2 - t1
                rows["blacklist_entries"] += len(entry_rows)
                rows["blacklist_changes"] += len(change_rows)
                rows["log_nodes"] += len(node_rows)
            commit_started = time.perf_counter()
        insert_s += time.perf_counter() - commit_started
    total_s = time.perf_counter() - started
    root = log.root()

    # The pure algorithm: inclusion proofs over the in-memory store.
    rng = random.Random(seed)
    indexes = [rng.randrange(entries) for _ in range(proof_samples)]
    t0 = time.perf_counter()
    for index in indexes:
        log.inclusion_proof(index, entries)
    memory_proof_us = (time.perf_counter() - t0) / len(indexes) * 1e6
    database.dispose()
    return {
        "entries": entries,
        "root_hash": root.hex(),
        "seconds": round(total_s, 2),
        "generate_seconds": round(generate_s, 2),
        "insert_and_commit_seconds": round(insert_s, 2),
        "entries_per_second": round(entries / total_s),
        "transactions": transactions,
        "chunk": chunk,
        "rows": rows,
        "memory_store_inclusion_proof_mean_us": round(memory_proof_us, 1),
        "memory_store_inclusion_proof_samples": len(indexes),
        "loader_process": rss_mib(),
    }


# --- load generation (client process) ----------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """Serialized requests to one method, and how to check each answer."""

    name: str
    method: str
    requests: list[bytes]
    check: str = "none"  # "none", "check" or "proof"
    expected_hits: list[int] = field(default_factory=list)  # per request ("check")
    root_hash: bytes = b""  # the checkpoint's root ("proof")


def _answer_problem(scenario: Scenario, position: int, request: bytes, answer: bytes) -> str:
    if scenario.check == "check":
        sent = blacklist_service_pb2.CheckBorrowersRequest.FromString(request)
        got = blacklist_service_pb2.CheckBorrowersResponse.FromString(answer)
        hits = sum(not r.clear for r in got.results)
        if len(got.results) != len(sent.borrowers) or hits != scenario.expected_hits[position]:
            return (
                f"{len(got.results)} results, {hits} listed; expected {len(sent.borrowers)}, "
                f"{scenario.expected_hits[position]} listed"
            )
    elif scenario.check == "proof":
        asked = blacklist_service_pb2.GetInclusionProofRequest.FromString(request)
        proof = blacklist_service_pb2.GetInclusionProofResponse.FromString(answer)
        if (proof.log_index, proof.tree_size) != (asked.log_index, asked.tree_size):
            return f"proof of leaf {proof.log_index}/{proof.tree_size}, asked {asked.log_index}"
        verify_inclusion(
            leaf=proof.leaf,
            index=proof.log_index,
            tree_size=proof.tree_size,
            proof=list(proof.hashes),
            root=scenario.root_hash,
        )
    return ""


def drive(
    *,
    target: str,
    caller: str,
    scenario: Scenario,
    threads: int,
    duration: float,
    warmup: float,
    seed: int,
) -> dict[str, Any]:
    """Closed loop: ``threads`` threads call back to back for ``duration`` s after ``warmup``."""
    metadata = ((CALLER_KEY, caller),)
    options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
    with grpc.insecure_channel(target, options=options) as channel:
        # bytes in, bytes out: no client codec
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(scenario.method)
        latencies: list[list[float]] = [[] for _ in range(threads)]
        ends = [0.0] * threads
        warm = [0] * threads
        problems: list[str] = []
        start = time.perf_counter() + warmup
        deadline = start + duration

        def worker(k: int) -> None:
            rng = random.Random(seed * 1000 + k)
            n = len(scenario.requests)
            try:
                while time.perf_counter() < start:
                    request = scenario.requests[rng.randrange(n)]
                    call(request, timeout=RPC_TIMEOUT, metadata=metadata)
                    warm[k] += 1
                mine = latencies[k]
                # At least one measured call each, even when a warm-up call outlasts the window.
                while (t0 := time.perf_counter()) < deadline or not mine:
                    j = rng.randrange(n)
                    answer = call(scenario.requests[j], timeout=RPC_TIMEOUT, metadata=metadata)
                    mine.append(time.perf_counter() - t0)
                    if problem := _answer_problem(scenario, j, scenario.requests[j], answer):
                        problems.append(problem)
            except Exception as exc:  # reported below, with the scenario's name
                problems.append(repr(exc))
            ends[k] = time.perf_counter()

        cpu0 = time.process_time()
        pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        client_cpu = time.process_time() - cpu0
    merged = sorted(x for mine in latencies for x in mine)
    elapsed = max(ends) - start
    if problems:
        raise AssertionError(f"{scenario.name}: {len(problems)} wrong answers, e.g. {problems[0]}")
    return {
        "calls": len(merged),
        "warmup_calls": sum(warm),
        "seconds": round(elapsed, 3),
        "per_second": len(merged) / elapsed,
        "p50_ms": statistics.median(merged) * 1e3,
        "p99_ms": _percentile(merged, 0.99) * 1e3,
        "mean_ms": statistics.fmean(merged) * 1e3,
        "max_ms": merged[-1] * 1e3,
        "client_cpu_seconds": round(client_cpu, 2),
    }


def _percentile(ordered: Sequence[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * q + 0.5) - 1))]


def sync_all(*, target: str, caller: str, log_keys: dict[str, bytes]) -> dict[str, Any]:
    """A new bank's first sync of the whole log into a fresh LocalBlacklist; runs in a child."""
    options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
    with grpc.insecure_channel(target, options=options) as channel:
        client = BlacklistClient(
            channel=channel,
            caller=caller,
            log_keys={keyid: public_key_from_raw(raw) for keyid, raw in log_keys.items()},
        )
        local = LocalBlacklist()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        summary = client.sync(local)
        seconds = time.perf_counter() - t0
        client_cpu = time.process_time() - cpu0
    assert summary.checkpoint is not None
    return {
        "applied": summary.applied,
        "seconds": round(seconds, 2),
        "changes_per_second": round(summary.applied / seconds),
        "reconnects": summary.reconnects,
        "local_size": local.size,
        "local_entries": len(local),
        "local_root_hash": local.root.hex(),
        "checkpoint_tree_size": summary.checkpoint.tree_size,
        "checkpoint_root_hash": summary.checkpoint.root_hash.hex(),
        "client_cpu_seconds": round(client_cpu, 2),
        "client_process": rss_mib(),
    }


# --- the gateway process -----------------------------------------------------------------------


def _empty(request: bytes, context: grpc.ServicerContext) -> bytes:
    return b""


def build_baseline(config: ServerConfig) -> tuple[grpc.Server, int]:
    """An empty-handler server with the gateway server's model (see gateway.server.build_server):
    the same thread pool size and channel options, in the same process."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="baseline"),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    handler = grpc.method_handlers_generic_handler(
        "bench.Empty", {"Call": grpc.unary_unary_rpc_method_handler(_empty)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"{config.host}:0")
    return server, port


def _idem(method: str) -> Idempotency:
    return Idempotency(
        caller="bench", method=method, request_id=str(uuid.uuid4()), fingerprint="bench"
    )


def _register_partners(gateway: Gateway) -> None:
    for bank_id in (*REPORTERS, CHECK_BANK, SYNC_BANK):
        gateway.partners.register_partner(
            idem=_idem("RegisterPartner"),
            partner_id=bank_id,
            display_name=f"Bench {bank_id}",
            endpoint="",
            policy=None,
            decision_public_key=b"",
        )


def _check_requests(
    network_key: bytes, *, entries: int, batch: int, count: int, rng: random.Random
) -> tuple[list[bytes], list[int]]:
    """``count`` requests of ``batch`` pseudonyms: half listed (hits), half not, shuffled."""
    requests, hits = [], []
    for r in range(count):
        listed = batch // 2 if batch > 1 else r % 2
        serials = [rng.randrange(entries) for _ in range(listed)] + [
            MISS_SERIAL_BASE + rng.randrange(10**8) for _ in range(batch - listed)
        ]
        rng.shuffle(serials)
        request = blacklist_service_pb2.CheckBorrowersRequest(
            borrowers=[
                blacklist_pb2.BorrowerIdentifier(pseudonym=borrower_pseudonym(network_key, s))
                for s in serials
            ]
        )
        requests.append(request.SerializeToString())
        hits.append(sum(1 for s in serials if s < entries))
    return requests, hits


@dataclass(slots=True)
class _Capture:
    """The SQL a block of repository calls sends, for EXPLAIN QUERY PLAN."""

    statements: list[tuple[str, Any]] = field(default_factory=list)
    on: bool = False


@contextmanager
def _capturing(engine: Engine) -> Iterator[_Capture]:
    capture = _Capture()

    def listener(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if capture.on and statement.lstrip().upper().startswith("SELECT"):
            capture.statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield capture
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def _timed(
    fn: Callable[[], object], *, budget: float, max_calls: int, min_calls: int = 3
) -> dict[str, Any]:
    """Call ``fn`` until ``budget`` seconds or ``max_calls`` pass (at least ``min_calls``)."""
    times: list[float] = []
    end = time.perf_counter() + budget
    while len(times) < max_calls and (len(times) < min_calls or time.perf_counter() < end):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return {
        "calls": len(times),
        "mean_ms": statistics.fmean(times) * 1e3,
        "p50_ms": statistics.median(times) * 1e3,
        "p99_ms": _percentile(times, 0.99) * 1e3,
    }


def _explain(engine: Engine, statement: str, parameters: Any) -> list[str]:
    with engine.connect() as conn:
        return [
            str(row[-1])
            for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        ]


def diagnose(
    *,
    database_url: str,
    network_key: bytes,
    entries: int,
    budget: float,
    seed: int,
) -> dict[str, Any]:
    """In the gateway process: the repository and Merkle calls behind checks and proofs, timed,
    with their query plans. Also re-encodes sampled rows to their leaves."""
    database = Database(url=database_url)
    engine = database.engine
    rng = random.Random(seed)
    out: dict[str, Any] = {}
    hit = borrower_pseudonym(network_key, rng.randrange(entries))
    batch = [borrower_pseudonym(network_key, s) for s in rng.sample(range(entries), 250)] + [
        borrower_pseudonym(network_key, MISS_SERIAL_BASE + rng.randrange(10**8)) for _ in range(250)
    ]
    proof_indexes = [rng.randrange(entries) for _ in range(10_000)]
    plans: dict[str, dict[str, Any]] = {}

    with _capturing(engine) as capture, database.reading() as session:
        store = DatabaseHashStore(session=session)
        log = MerkleLog(store=store)

        def plan_of(name: str, fn: Callable[[], object]) -> None:
            capture.statements.clear()
            capture.on = True
            fn()
            capture.on = False
            statement, parameters = capture.statements[-1]
            plans[name] = {
                "sql": " ".join(statement.split())[:400],
                "plan": _explain(engine, statement, parameters),
            }

        plan_of("log size (DatabaseHashStore.size)", store.size)
        plan_of(
            "proof hashes (DatabaseHashStore.get_many)",
            lambda: log.inclusion_proof(proof_indexes[0], entries),
        )
        plan_of(
            "check 1 pseudonym (in_force_by_pseudonym)",
            lambda: bl.in_force_by_pseudonym(session, [hit]),
        )
        plan_of(
            "check 500 pseudonyms (in_force_by_pseudonym, one chunk)",
            lambda: bl.in_force_by_pseudonym(session, batch),
        )
        plan_of("sync page (changes_from)", lambda: bl.changes_from(session, start=0, limit=500))
        found = bl.in_force_by_pseudonym(session, batch)
        assert sum(len(v) for v in found.values()) == 250, "every listed borrower is found"

        proofs = iter(proof_indexes)
        timings: dict[str, Any] = {
            "DatabaseHashStore.size": _timed(store.size, budget=budget, max_calls=2000),
            "MerkleLog.root (checkpoint root)": _timed(log.root, budget=budget, max_calls=200),
            "MerkleLog.inclusion_proof (database store)": _timed(
                lambda: log.inclusion_proof(next(proofs), entries), budget=budget, max_calls=2000
            ),
            "in_force_by_pseudonym x1": _timed(
                lambda: bl.in_force_by_pseudonym(session, [hit]), budget=budget, max_calls=2000
            ),
            "in_force_by_pseudonym x500": _timed(
                lambda: bl.in_force_by_pseudonym(session, batch), budget=budget, max_calls=200
            ),
        }

        # What the sync stream spends per change besides gRPC: the page read, the conversion.
        pages = iter([rng.randrange(max(1, entries - 500)) for _ in range(10_000)])
        page = bl.changes_from(session, start=0, limit=500)
        timings["changes_from, page of 500 (sync stream read)"] = _timed(
            lambda: bl.changes_from(session, start=next(pages), limit=500),
            budget=budget,
            max_calls=200,
        )
        timings["logged_change_to_proto x500 (sync stream encode)"] = _timed(
            lambda: [convert.logged_change_to_proto(c) for c in page],
            budget=budget,
            max_calls=200,
        )

        # The rows are what the gateway would have stored: each entry re-encodes to its leaf.
        sample = [rng.randrange(entries) for _ in range(200)]
        for index in sample:
            (change,) = bl.changes_from(session, start=index, limit=1)
            entry = bl.get_entry(session, change.entry_id)
            assert entry is not None
            assert change.log_index == index
            assert change.leaf == leaf_of(
                log_index=index,
                change_type=change.change_type,
                entry=entry,
                logged_at=change.logged_at,
            ), f"entry row {change.entry_id} does not re-encode to its leaf"
        out["rows_reencoded_to_leaf"] = len(sample)
    database.dispose()
    out["timings"] = _round(timings)
    out["plans"] = plans
    return out


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return value


def _file_mib(path: Path) -> float:
    return round(path.stat().st_size / 2**20, 1) if path.exists() else 0.0


def run(options: argparse.Namespace) -> dict[str, Any]:
    entries: int = options.entries
    rng = random.Random(options.seed)
    memory: dict[str, Any] = {}
    result: dict[str, Any] = {
        "scenario": "blacklist at scale, SQLite (WAL, synchronous=FULL)",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "grpc": grpc.__version__,
            "load_average_at_start": os.getloadavg(),
        },
        "parameters": {
            "entries": entries,
            "threads": options.threads,
            "duration_s": options.duration,
            "warmup_s": options.warmup,
            "chunk": options.chunk,
            "tx_entries": options.tx_entries,
            "seed": options.seed,
            "reports": options.reports,
        },
    }
    with tempfile.TemporaryDirectory(prefix="bench-blacklist-") as tmp:
        # Load generators are one bank at hundreds of calls a second: no per-partner limit.
        config = ServerConfig(data_dir=Path(tmp) / "data", port=0, partner_rate=0)
        gateway = open_gateway(config)
        _register_partners(gateway)
        server, port = build_server(config, gateway=gateway)
        baseline, baseline_port = build_baseline(config)
        server.start()
        baseline.start()
        target = f"{config.host}:{port}"
        network = gateway.blacklist
        key = open_network_key(config.data_dir / "network-key", create=False)
        database_url = sqlite_url(config.data_dir)
        log_keys = {k.keyid: k.public_key for k in network.log.published_keys()}
        memory["started"] = rss_mib()
        try:
            print(f"loading {entries:,} entries ...", flush=True)
            with futures.ProcessPoolExecutor(1, mp_context=_SPAWN) as loader:
                load = loader.submit(
                    bulk_load,
                    database_url=database_url,
                    network_key=key,
                    rules=network.rules,
                    entries=entries,
                    chunk=options.chunk,
                    tx_entries=options.tx_entries,
                    proof_samples=options.proof_samples,
                    seed=options.seed,
                ).result()
            db_file = config.data_dir / "gateway.db"
            load["database_mib"] = _file_mib(db_file)
            load["wal_mib"] = _file_mib(db_file.with_name("gateway.db-wal"))
            result["load"] = load
            print(
                f"loaded in {load['seconds']:.1f} s ({load['entries_per_second']:,} entries/s)",
                flush=True,
            )

            # The running gateway's signed checkpoint must be the root computed while loading.
            with grpc.insecure_channel(target) as channel:
                checker = BlacklistClient(
                    channel=channel,
                    caller=f"partner/{CHECK_BANK}",
                    log_keys={k: public_key_from_raw(v) for k, v in log_keys.items()},
                    timeout=RPC_TIMEOUT,
                )
                t0 = time.perf_counter()
                checkpoint = checker.checkpoint()
                first_checkpoint_s = time.perf_counter() - t0
            assert checkpoint.tree_size == entries, (checkpoint.tree_size, entries)
            assert checkpoint.root_hash.hex() == load["root_hash"], "loaded root != checkpoint"
            result["checkpoint"] = {
                "tree_size": checkpoint.tree_size,
                "root_hash": checkpoint.root_hash.hex(),
                "matches_loaded_root": True,
                "first_get_checkpoint_ms": round(first_checkpoint_s * 1e3, 2),
            }
            memory["after_load"] = rss_mib()

            print("in-process diagnostics ...", flush=True)
            result["in_process"] = diagnose(
                database_url=database_url,
                network_key=key,
                entries=entries,
                budget=min(options.duration, 5.0),
                seed=options.seed,
            )

            check1, hits1 = _check_requests(key, entries=entries, batch=1, count=2000, rng=rng)
            check1000, hits1000 = _check_requests(
                key, entries=entries, batch=1000, count=16, rng=rng
            )
            proof_requests = [
                blacklist_service_pb2.GetInclusionProofRequest(
                    log_index=rng.randrange(entries), tree_size=entries
                ).SerializeToString()
                for _ in range(5000)
            ]
            service = "/colending.v1.BlacklistService"
            scenarios = [
                Scenario(name="empty baseline", method=BASELINE_METHOD, requests=[b""]),
                Scenario(
                    name="CheckBorrowers x1",
                    method=f"{service}/CheckBorrowers",
                    requests=check1,
                    check="check",
                    expected_hits=hits1,
                ),
                Scenario(
                    name="CheckBorrowers x1000",
                    method=f"{service}/CheckBorrowers",
                    requests=check1000,
                    check="check",
                    expected_hits=hits1000,
                ),
                Scenario(
                    name="GetInclusionProof",
                    method=f"{service}/GetInclusionProof",
                    requests=proof_requests,
                    check="proof",
                    root_hash=checkpoint.root_hash,
                ),
                Scenario(
                    name="GetCheckpoint",
                    method=f"{service}/GetCheckpoint",
                    requests=[blacklist_service_pb2.GetCheckpointRequest().SerializeToString()],
                ),
            ]
            rows: dict[str, Any] = {}
            with futures.ProcessPoolExecutor(1, mp_context=_SPAWN) as clients:
                for scenario in scenarios:
                    print(f"driving {scenario.name} ...", flush=True)
                    server_cpu0 = time.process_time()
                    scenario_target = (
                        f"{config.host}:{baseline_port}"
                        if scenario.method == BASELINE_METHOD
                        else target
                    )
                    row = clients.submit(
                        drive,
                        target=scenario_target,
                        caller=f"partner/{CHECK_BANK}",
                        scenario=scenario,
                        threads=options.threads,
                        duration=options.duration,
                        warmup=options.warmup,
                        seed=options.seed,
                    ).result()
                    server_cpu = time.process_time() - server_cpu0
                    row["server_cpu_seconds"] = round(server_cpu, 2)
                    # The gateway process's CPU over warm-up and measurement, per call made.
                    made = row["calls"] + row["warmup_calls"]
                    row["server_cpu_ms_per_call"] = server_cpu / made * 1e3
                    row["load_average_1m_after"] = os.getloadavg()[0]
                    rows[scenario.name] = row
            base = rows["empty baseline"]
            for row in rows.values():
                row["throughput_ratio_to_baseline"] = row["per_second"] / base["per_second"]
                row["p50_ratio_to_baseline"] = row["p50_ms"] / base["p50_ms"]
            rows["CheckBorrowers x1000"]["pseudonyms_per_second"] = (
                rows["CheckBorrowers x1000"]["per_second"] * 1000
            )
            result["rpc"] = _round(rows)
            memory["after_rpc"] = rss_mib()

            print(f"syncing {entries:,} changes to a new bank ...", flush=True)
            server_cpu0 = time.process_time()
            with futures.ProcessPoolExecutor(1, mp_context=_SPAWN) as bank:
                sync = bank.submit(
                    sync_all, target=target, caller=f"partner/{SYNC_BANK}", log_keys=log_keys
                ).result()
            sync["server_cpu_seconds"] = round(time.process_time() - server_cpu0, 2)
            assert sync["applied"] == entries, sync
            assert sync["local_root_hash"] == checkpoint.root_hash.hex(), "synced root differs"
            assert sync["checkpoint_tree_size"] == entries
            sync["root_matches_checkpoint"] = True
            result["sync"] = sync
            memory["after_sync"] = rss_mib()
            if options.reports:
                print(f"{options.reports} ReportDefault calls, one at a time ...", flush=True)
                result["report_default"] = _report_defaults(target, entries, options.reports)
        finally:
            server.stop(grace=None).wait()
            baseline.stop(grace=None).wait()
    result["gateway_process_memory"] = memory
    result["machine"]["load_average_at_end"] = os.getloadavg()
    return result


def _report_defaults(target: str, entries: int, count: int) -> dict[str, Any]:
    """Sequential ReportDefault calls on the loaded log, split by the parity of the new index:
    an odd index completes subtrees, so its append first reads their left siblings."""
    by_parity: dict[str, list[float]] = {"even": [], "odd": []}
    with grpc.insecure_channel(target) as channel:
        reporter = BlacklistClient(
            channel=channel, caller=f"partner/{REPORTERS[0]}", timeout=RPC_TIMEOUT
        )
        for j in range(count):
            t0 = time.perf_counter()
            reporter.report_default(
                borrower=(IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE, uscc_of(900_000_000 + j)),
                reason=blacklist_pb2.BLACKLIST_REASON_FRAUD,
                outstanding_minor=1_000_000,
                default_date=business_date(utc_now()) - timedelta(days=30),
            )
            by_parity["odd" if (entries + j) % 2 else "even"].append(time.perf_counter() - t0)
    out: dict[str, Any] = {}
    for parity, times in by_parity.items():
        if times:
            out[f"{parity}_log_index"] = {
                "calls": len(times),
                "p50_ms": round(statistics.median(times) * 1e3, 2),
                "max_ms": round(max(times) * 1e3, 2),
            }
    return out


def report(result: dict[str, Any]) -> None:
    machine, load = result["machine"], result["load"]
    print()
    print(
        f"machine: {machine['cores']} cores (os.cpu_count()), Python {machine['python']}, "
        f"SQLite {machine['sqlite']}, grpcio {machine['grpc']}"
    )
    print(
        f"load: {load['entries']:,} entries in {load['seconds']:.1f} s "
        f"({load['entries_per_second']:,}/s; generate {load['generate_seconds']:.1f} s, "
        f"insert+commit {load['insert_and_commit_seconds']:.1f} s; "
        f"{load['transactions']} transactions); database {load['database_mib']} MiB; "
        f"root matches checkpoint"
    )
    params = result["parameters"]
    print(
        f"load average (1, 5, 15 min) at start {machine['load_average_at_start']}, "
        f"at end {tuple(round(x, 2) for x in machine['load_average_at_end'])}"
    )
    print(f"RPCs: {params['threads']} client threads, {params['duration_s']} s each")
    head = f"{'scenario':<24}{'calls':>8}{'per s':>10}{'p50 ms':>10}{'p99 ms':>10}"
    print(head + f"{'x base (tput)':>15}{'srv cpu ms/call':>17}")
    for name, row in result["rpc"].items():
        print(
            f"{name:<24}{row['calls']:>8}{row['per_second']:>10.1f}{row['p50_ms']:>10.2f}"
            f"{row['p99_ms']:>10.2f}{row['throughput_ratio_to_baseline']:>15.4f}"
            f"{row['server_cpu_ms_per_call']:>17.3f}"
        )
    timings = result["in_process"]["timings"]
    print("in-process (gateway database):")
    for name, row in timings.items():
        print(f"  {name:<58} mean {row['mean_ms']:>10.3f} ms  ({row['calls']} calls)")
    print(
        f"  MerkleLog.inclusion_proof over MemoryHashStore: "
        f"mean {load['memory_store_inclusion_proof_mean_us']:.1f} us"
    )
    print("query plans (EXPLAIN QUERY PLAN):")
    for name, row in result["in_process"]["plans"].items():
        print(f"  {name}: {' | '.join(row['plan'])}")
    sync = result["sync"]
    print(
        f"sync: {sync['applied']:,} changes in {sync['seconds']:.1f} s "
        f"({sync['changes_per_second']:,}/s), root matches checkpoint; "
        f"bank process peak RSS (VmHWM) {sync['client_process']['vm_hwm_mib']} MiB"
    )
    for parity, row in result.get("report_default", {}).items():
        print(
            f"ReportDefault at {parity}: p50 {row['p50_ms']} ms, max {row['max_ms']} ms "
            f"({row['calls']} calls, one at a time)"
        )
    print("gateway process RSS (MiB, current VmRSS / peak ru_maxrss):")
    for phase, row in result["gateway_process_memory"].items():
        print(f"  {phase:<12} {row['current_rss_mib']:>8} / {row['peak_rss_mib']}")
    print(f"loader process peak RSS (VmHWM): {load['loader_process']['vm_hwm_mib']} MiB")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench blacklist",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--entries", type=int, default=1_000_000, help="default %(default)s")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per RPC scenario")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each scenario")
    parser.add_argument("--threads", type=int, default=8, help="client threads (concurrency)")
    parser.add_argument("--chunk", type=int, default=50_000, help="rows per executemany")
    parser.add_argument("--tx-entries", type=int, default=250_000, help="entries per transaction")
    parser.add_argument("--proof-samples", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--reports", type=int, default=20, help="ReportDefault calls at the end (0: none)"
    )
    options = parser.parse_args(argv)
    if options.entries < 2:
        parser.error("--entries must be at least 2")
    result = run(options)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"blacklist-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    report(result)
    print(f"results: {path}")
