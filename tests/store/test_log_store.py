"""The Merkle log over the database gives the same roots and proofs as the reference tree,
on SQLite and PostgreSQL, and a rolled-back append leaves no trace."""

from __future__ import annotations

from pathlib import Path

import pytest

from colending_core import root_from_leaves, verify_consistency, verify_inclusion
from gateway.signing.merkle import MemoryHashStore, MerkleLog
from gateway.store.db import Database, sqlite_url
from gateway.store.log_store import DatabaseHashStore


@pytest.fixture
def database(data_dir: Path, database_url: str | None) -> Database:
    data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(url=database_url or sqlite_url(data_dir))
    db.create_schema()
    return db


def leaves(n: int) -> list[bytes]:
    return [f"change-{i}".encode() for i in range(n)]


def test_database_log_matches_the_reference(database: Database) -> None:
    memory = MerkleLog(store=MemoryHashStore())
    for i, leaf in enumerate(leaves(21)):
        # One transaction per append, as the blacklist will do.
        with database.writing() as session:
            store = DatabaseHashStore(session=session)
            store.lock_for_append()
            assert MerkleLog(store=store).append(leaf) == i
        memory.append(leaf)
    with database.reading() as session:
        log = MerkleLog(store=DatabaseHashStore(session=session))
        assert log.size == 21
        for size in range(1, 22):
            assert log.root(size) == root_from_leaves(leaves(size)) == memory.root(size)
        for index in (0, 7, 20):
            verify_inclusion(
                leaf=leaves(21)[index],
                index=index,
                tree_size=21,
                proof=log.inclusion_proof(index, 21),
                root=log.root(21),
            )
        verify_consistency(
            first_size=8,
            second_size=21,
            first_root=log.root(8),
            second_root=log.root(21),
            proof=log.consistency_proof(8, 21),
        )


def test_rolled_back_append_leaves_nothing(database: Database) -> None:
    with database.writing() as session:
        MerkleLog(store=DatabaseHashStore(session=session)).append(b"kept")

    class Abort(Exception):
        pass

    def append_then_fail() -> None:
        with database.writing() as session:
            MerkleLog(store=DatabaseHashStore(session=session)).append(b"dropped")
            raise Abort

    with pytest.raises(Abort):
        append_then_fail()
    with database.reading() as session:
        log = MerkleLog(store=DatabaseHashStore(session=session))
        assert log.size == 1
        assert log.root() == root_from_leaves([b"kept"])


def test_missing_hashes_are_a_key_error(database: Database) -> None:
    with database.reading() as session:
        store = DatabaseHashStore(session=session)
        assert store.size() == 0
        with pytest.raises(KeyError, match="level 0, index 3"):
            store.get(0, 3)
