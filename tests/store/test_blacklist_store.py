"""The blacklist on real databases: concurrent reports never fork the log, and the log in the
database is exactly the leaves it serves."""

from __future__ import annotations

import threading
import uuid
from datetime import date
from pathlib import Path

from sqlmodel import select
from testkit import uscc

from colending_core import IdentifierKind, root_from_leaves
from gateway._transactions import Idempotency
from gateway.app import Gateway
from gateway.domain.blacklist import AppealOutcome, BlacklistRules, ListingReason
from gateway.errors import FailedPrecondition
from gateway.server import ServerConfig, open_gateway
from gateway.signing.merkle import MerkleLog
from gateway.store.log_store import DatabaseHashStore
from gateway.store.tables import BlacklistChangeRow

THREADS = 6
REPORTS_EACH = 5


def idem(caller: str, method: str) -> Idempotency:
    return Idempotency(caller=caller, method=method, request_id=str(uuid.uuid4()), fingerprint="f")


def test_concurrent_reports_append_one_leaf_per_index(gateway: Gateway) -> None:
    for bank_id in ("bank-a", "bank-b"):
        gateway.partners.register_partner(
            idem=idem("admin", "RegisterPartner"),
            partner_id=bank_id,
            display_name=bank_id,
            endpoint="",
            policy=None,
            decision_public_key=b"",
        )
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def reporter(n: int) -> None:
        start.wait()
        try:
            for i in range(REPORTS_EACH):
                gateway.blacklist.report_default(
                    idem=idem(f"partner/bank-{'ab'[n % 2]}", "ReportDefault"),
                    reporter_bank_id=f"bank-{'ab'[n % 2]}",
                    kind=IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE,
                    raw_identifier=uscc(f"91330106{n:04d}{i:05d}"),
                    reason=ListingReason.FRAUD,
                    outstanding_fen=100,
                    default_date=date(2026, 1, 2),
                    evidence_case_id="",
                )
        except BaseException as error:  # surfaced below, with the thread's failure
            errors.append(error)

    threads = [threading.Thread(target=reporter, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

    total = THREADS * REPORTS_EACH
    with gateway.database.reading() as session:  # the test reads storage directly on purpose
        rows = session.exec(select(BlacklistChangeRow).order_by(BlacklistChangeRow.log_index))  # type: ignore[arg-type]
        leaves = [(r.log_index, r.leaf) for r in rows]
        log = MerkleLog(store=DatabaseHashStore(session=session))
        assert log.size == total
        root = log.root()
    assert [index for index, _ in leaves] == list(range(total))  # no gap, no fork
    # The tree the gateway signs is the tree of exactly the leaves it serves.
    assert root == root_from_leaves([leaf for _, leaf in leaves])
    assert gateway.blacklist.log.checkpoint().checkpoint.root_hash == root


def test_the_sweep_and_appeal_answers_never_deadlock(
    data_dir: Path, database_url: str | None
) -> None:
    """Every blacklist writer takes its locks in one order (case, log, entries): a sweep over
    many entries and answers to single appeals, racing, all finish."""
    config = ServerConfig(
        data_dir=data_dir, database_url=database_url, blacklist_rules=BlacklistRules(appeal_days=0)
    )
    gateway = open_gateway(config)
    gateway.partners.register_partner(
        idem=idem("admin", "RegisterPartner"),
        partner_id="bank-a",
        display_name="bank-a",
        endpoint="",
        policy=None,
        decision_public_key=b"",
    )
    entries = []
    for n in range(16):
        change = gateway.blacklist.report_default(
            idem=idem("partner/bank-a", "ReportDefault"),
            reporter_bank_id="bank-a",
            kind=IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE,
            raw_identifier=uscc(f"9133010699{n:07d}"),
            reason=ListingReason.FRAUD,
            outstanding_fen=100,
            default_date=date(2026, 1, 2),
            evidence_case_id="",
        )
        gateway.blacklist.file_appeal(
            idem=idem("platform", "FileAppeal"),
            filed_by="platform",
            entry_id=change.entry.entry_id,
            grounds="paid",
        )
        entries.append(change.entry.entry_id)  # each appeal is due at once (0 days)

    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def sweep() -> None:
        start.wait()
        try:
            gateway.blacklist.sweep(batch=4)
        except BaseException as error:
            errors.append(error)

    def answer(order: list[str]) -> None:
        start.wait()
        for entry_id in order:
            try:
                gateway.blacklist.resolve_appeal(
                    idem=idem("admin", "ResolveAppeal"),
                    resolved_by="admin",
                    resolver_bank_id=None,
                    entry_id=entry_id,
                    outcome=AppealOutcome.UPHELD,
                    reason="checked",
                )
            except FailedPrecondition:
                pass  # the sweep decided it first: a clear answer, not a deadlock
            except BaseException as error:
                errors.append(error)

    threads = [
        threading.Thread(target=sweep),
        threading.Thread(target=answer, args=(entries[::-1],)),
        threading.Thread(target=answer, args=(entries[::2],)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with gateway.database.reading() as session:  # the test reads storage directly on purpose
        log = MerkleLog(store=DatabaseHashStore(session=session))
        rows = session.exec(select(BlacklistChangeRow).order_by(BlacklistChangeRow.log_index))  # type: ignore[arg-type]
        leaves = [r.leaf for r in rows]
        assert log.root() == root_from_leaves(leaves)
    # 16 reports, 16 appeals, then one decision per entry.
    assert len(leaves) == 48
