"""The blacklist network over real sockets and mutual TLS, driven with the SDK: banks report,
the platform appeals, every bank syncs a verified copy, and a log rewritten behind the
gateway's back is caught. SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from colending.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    blacklist_pb2,
)
from sqlalchemy import delete, update
from sqlmodel import select
from testkit import RunningGateway, request_id, running_gateway, uscc
from tlskit import Pki

from gateway.signing.merkle import MemoryHashStore, MerkleLog
from gateway.store.db import Database, sqlite_url
from gateway.store.tables import BlacklistChangeRow, LogNodeRow
from partners.sdk import (
    BlacklistClient,
    IdentifierKind,
    LeafChange,
    LocalBlacklist,
    LogConsistencyError,
    decode_leaf,
    public_key_from_raw,
)

USCC = IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE
BORROWERS = [uscc(f"9133010600000000{i}") for i in range(4)]


@dataclass
class Network:
    running: RunningGateway
    pki: Pki


@contextmanager
def network(data_dir: Path, database_url: str | None) -> Iterator[Network]:
    pki = Pki.create(data_dir.parent / "pki")
    with running_gateway(data_dir, database_url, tls=pki.gateway_files()) as running:
        with pki.channel(running.target, "admin") as channel:
            admin = admin_service_pb2_grpc.AdminServiceStub(channel)
            for bank_id in ("bank-a", "bank-b", "bank-c"):
                admin.RegisterPartner(
                    admin_service_pb2.RegisterPartnerRequest(
                        request_id=request_id(), partner_id=bank_id, display_name=bank_id
                    ),
                    timeout=10,
                )
        yield Network(running=running, pki=pki)


def client(net: Network, caller: str) -> BlacklistClient:
    """A client as a bank configures it: network key and log keys received out of band."""
    running = net.running
    network_key = bytes.fromhex(
        (running.data_dir / "network-key" / "network.key").read_text().strip()
    )
    log_keys = {
        k.keyid: public_key_from_raw(k.public_key)
        for k in running.gateway.blacklist.log.published_keys()
    }
    return BlacklistClient.connect(
        running.target,
        credentials=net.pki.credentials(caller),
        network_key=network_key,
        log_keys=log_keys,
    )


def report(bank: BlacklistClient, borrower: str) -> int:
    response = bank.report_default(
        borrower=(USCC, borrower),
        reason=blacklist_pb2.BLACKLIST_REASON_FRAUD,
        outstanding_minor=12_345_00,
        default_date=date(2026, 3, 1),
    )
    return response.log_index


def test_every_bank_holds_the_same_verified_list(
    data_dir: Path, database_url: str | None, tmp_path: Path
) -> None:
    with (
        network(data_dir, database_url) as net,
        client(net, "partner/bank-a") as bank_a,
        client(net, "partner/bank-b") as bank_b,
        client(net, "platform") as platform,
    ):
        indexes = [report(bank_a, b) for b in BORROWERS[:3]]
        assert indexes == [0, 1, 2]
        # The platform disputes the second entry for its merchant; the reporter grants it.
        [second] = bank_a.check([(USCC, BORROWERS[1])])[0].entries
        platform.file_appeal(second.entry_id, grounds="repaid in full on 2026-03-20")
        bank_a.resolve_appeal(
            second.entry_id,
            outcome=blacklist_pb2.APPEAL_OUTCOME_REMOVED,
            reason="repayment confirmed",
        )

        copy_b = LocalBlacklist()
        summary = bank_b.sync(copy_b)
        assert summary.applied == 5  # three reports, one appeal, one removal
        assert summary.checkpoint is not None
        assert summary.checkpoint.tree_size == 5
        assert [len(copy_b.in_force(bank_b.pseudonym(USCC, b))) for b in BORROWERS] == [
            1,
            0,
            1,
            0,
        ]
        removed = copy_b.entries[second.entry_id]
        assert removed.status == "removed"
        assert removed.appeal is not None
        assert removed.appeal.outcome == "removed"

        # Saved, reloaded, and brought up to date: only the new change is fetched, and the new
        # checkpoint is proved to extend the saved one.
        path = tmp_path / "bank-b.blacklist.json"
        copy_b.save(path)
        new_index = report(bank_a, BORROWERS[3])
        reloaded = LocalBlacklist.load(path)
        again = bank_b.sync(reloaded)
        assert again.applied == 1
        assert reloaded.size == 6

        # Another bank, syncing from nothing, ends with the same root: one list for everyone.
        copy_a = LocalBlacklist()
        bank_a.sync(copy_a)
        assert copy_a.root == reloaded.root
        assert copy_a.entries == reloaded.entries

        # Any single change can be proved against the signed checkpoint.
        checkpoint = bank_b.checkpoint()
        leaf = bank_b.prove_inclusion(new_index, checkpoint)
        assert decode_leaf(leaf).entry.pseudonym == bank_b.pseudonym(USCC, BORROWERS[3])

        # Raw identifiers are turned into pseudonyms on the bank's side before the check.
        results = bank_b.check([(USCC, b.lower()) for b in BORROWERS])
        assert [r.clear for r in results] == [False, True, False, False]
        assert results[0].tree_size == 6


def test_a_following_bank_sees_a_new_entry_live(data_dir: Path, database_url: str | None) -> None:
    with (
        network(data_dir, database_url) as net,
        client(net, "partner/bank-a") as bank_a,
        client(net, "partner/bank-c") as bank_c,
    ):
        report(bank_a, BORROWERS[0])
        seen: list[LeafChange] = []
        arrived = threading.Event()
        stop = threading.Event()

        def on_change(change: LeafChange) -> None:
            seen.append(change)
            if change.log_index == 1:
                arrived.set()

        copy = LocalBlacklist()
        follower = threading.Thread(
            target=bank_c.sync,
            args=(copy,),
            kwargs={"follow": True, "on_change": on_change, "stop": stop},
        )
        follower.start()
        try:
            report(bank_a, BORROWERS[1])
            assert arrived.wait(10), "the live change never reached the follower"
        finally:
            stop.set()
            follower.join(10)
        assert not follower.is_alive()
        assert [c.log_index for c in seen] == [0, 1]


def _database(net: Network, database_url: str | None) -> Database:
    return Database(url=database_url or sqlite_url(net.running.data_dir))


def _rewrite_leaf(database: Database, log_index: int) -> None:
    """What a dishonest operator would do: change a stored change in place."""
    with database.writing() as session:
        row = session.get(BlacklistChangeRow, log_index)
        assert row is not None
        forged = row.leaf.replace(b'"reporter":"bank-a"', b'"reporter":"bank-b"')
        assert forged != row.leaf
        session.execute(
            update(BlacklistChangeRow)
            .where(BlacklistChangeRow.log_index == log_index)  # type: ignore[arg-type]
            .values(leaf=forged)
        )


def _rebuild_tree(database: Database) -> None:
    """...and, more thoroughly, recompute every Merkle node so the tree matches the forgery."""
    with database.writing() as session:
        leaves = [
            r.leaf
            for r in session.exec(select(BlacklistChangeRow).order_by(BlacklistChangeRow.log_index))  # type: ignore[arg-type]
        ]
        store = MemoryHashStore()
        log = MerkleLog(store=store)
        for leaf in leaves:
            log.append(leaf)
        nodes = [
            {"level": level, "idx": index, "hash": store.get(level, index)}
            for level in range(64)
            for index in range(len(leaves) >> level)
        ]
        session.execute(delete(LogNodeRow))
        session.execute(LogNodeRow.__table__.insert(), nodes)  # type: ignore[attr-defined]


def test_a_rewritten_leaf_is_caught_by_a_fresh_copy(
    data_dir: Path, database_url: str | None
) -> None:
    with (
        network(data_dir, database_url) as net,
        client(net, "partner/bank-a") as bank_a,
        client(net, "partner/bank-b") as bank_b,
    ):
        for borrower in BORROWERS[:3]:
            report(bank_a, borrower)
        _rewrite_leaf(_database(net, database_url), 1)
        # The leaf served no longer hashes to the tree the checkpoint signs.
        with pytest.raises(LogConsistencyError, match="rewritten"):
            bank_b.sync(LocalBlacklist())


def test_a_rewritten_history_is_caught_by_the_consistency_check(
    data_dir: Path, database_url: str | None
) -> None:
    with (
        network(data_dir, database_url) as net,
        client(net, "partner/bank-a") as bank_a,
        client(net, "partner/bank-b") as bank_b,
    ):
        for borrower in BORROWERS[:3]:
            report(bank_a, borrower)
        copy = LocalBlacklist()
        bank_b.sync(copy)
        database = _database(net, database_url)
        _rewrite_leaf(database, 1)
        _rebuild_tree(database)  # now leaves, nodes and fresh checkpoints all agree...
        report(bank_a, BORROWERS[3])
        # ...but the new tree does not extend the one this bank already verified.
        with pytest.raises(LogConsistencyError):
            bank_b.sync(copy)
        assert copy.size == 3  # nothing from the forged log was applied
