"""Whatever way the database goes away, a transaction fails with Unavailable (which callers see
as UNAVAILABLE, and may retry) and the next one after it comes back just works."""

from __future__ import annotations

import contextlib

import psycopg
import pytest
from fault.processes import PrivatePostgres
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from gateway.errors import Unavailable
from gateway.store.db import Database, PoolOptions

pytestmark = pytest.mark.postgres


def _terminate(url: str, pid: int) -> None:
    """What a database restart does to one connection: the server ends it."""
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def _pid(session: Session) -> int:
    return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _statement_after_the_loss(database: Database, url: str) -> None:
    with database.writing() as session:
        _terminate(url, _pid(session))
        session.execute(text("SELECT 1"))


def _loss_under_a_handled_savepoint(database: Database, url: str) -> None:
    with database.writing() as session:
        savepoint = session.begin_nested()
        _terminate(url, _pid(session))
        try:
            session.execute(text("SELECT 1"))
        except OperationalError:
            savepoint.rollback()


def _select_one(database: Database) -> None:
    with database.writing() as session:
        session.execute(text("SELECT 1"))


def _select_one_handling_errors(database: Database) -> None:
    """As group commit runs a unit: its errors stay inside."""
    with database.writing() as session, contextlib.suppress(OperationalError):
        session.execute(text("SELECT 1"))


def test_a_connection_lost_mid_transaction_is_unavailable(private_database_url: str) -> None:
    database = Database(url=private_database_url)
    with pytest.raises(Unavailable):
        _statement_after_the_loss(database, private_database_url)
    with database.reading() as session:  # the pool replaced the dead connection
        assert session.execute(text("SELECT 1")).scalar_one() == 1


def test_a_connection_lost_under_a_handled_savepoint_fails_the_commit_unavailable(
    private_database_url: str,
) -> None:
    """Group commit runs each request in a savepoint and keeps its error to itself; the lost
    connection then surfaces at COMMIT, as SQLAlchemy's PendingRollbackError."""
    database = Database(url=private_database_url)
    with pytest.raises(Unavailable):
        _loss_under_a_handled_savepoint(database, private_database_url)


def test_a_stopped_database_is_unavailable_until_it_is_back(
    private_postgres: PrivatePostgres, private_database_url: str
) -> None:
    database = Database(url=private_database_url, pool=PoolOptions(connect_timeout=2))
    with database.reading() as session:
        session.execute(text("SELECT 1"))  # a pooled connection, soon dead
    private_postgres.stop(mode="immediate")
    try:
        for _ in range(2):  # the dead pooled one, then a refused new one
            with pytest.raises(Unavailable):
                _select_one(database)
        with pytest.raises(Unavailable):
            _select_one_handling_errors(database)
    finally:
        private_postgres.start()
    with database.writing() as session:
        assert session.execute(text("SELECT 1")).scalar_one() == 1


def test_no_free_connection_in_time_is_unavailable(private_database_url: str) -> None:
    database = Database(url=private_database_url, pool=PoolOptions(size=1, overflow=0, timeout=0.2))
    with database.reading() as holding:
        holding.execute(text("SELECT 1"))  # the only connection, taken
        with pytest.raises(Unavailable, match="busy"):
            _select_one(database)
