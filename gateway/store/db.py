"""Engines and transactions: SQLite (WAL, durable commits) by default, PostgreSQL by URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, PendingRollbackError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import Session

from gateway.errors import Unavailable
from gateway.store import migrations
from gateway.store import tables as _tables  # noqa: F401  (registers the tables)

SQLITE_BUSY_TIMEOUT_MS = 10_000


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'gateway.db'}"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, issue BEGIN, so writers can ask for IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: an acknowledged write survives power loss, not only a process crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the lock up front; a deferred read-then-write could fail with
        # SQLITE_BUSY halfway instead of waiting its turn.
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


class StaleSchema(Exception):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolOptions:
    """One process's PostgreSQL connections (SQLite ignores them). Replicas each have their
    own pool, so the server's max_connections must cover replicas * (size + overflow)."""

    size: int = 10  # kept open
    overflow: int = 10  # opened beyond ``size`` under load, closed again when returned
    timeout: float = 10.0  # seconds to wait for a free connection, then UNAVAILABLE
    connect_timeout: int = 5  # seconds to open one (libpq waits forever by default)


class Database:
    """Owns the engine; hands out read and write transactions."""

    def __init__(
        self,
        *,
        url: str,
        pool: PoolOptions = PoolOptions(),  # frozen, so sharing the default is safe
        echo: bool = False,
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # Pre-ping: after a database restart, pooled connections are dead; each is found out
        # and replaced at checkout instead of failing the next request. A SQLite file has no
        # server to restart, and the ping was a tenth of a one-borrower check.
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": not self.is_sqlite}
        if self.is_sqlite:
            # Keep a connection per thread that may want one (RPC workers, delivery, sweeps):
            # past the pool, each checkout opened a new connection and set its pragmas again.
            kwargs.update(pool_size=pool.size + pool.overflow, max_overflow=pool.overflow)
        else:
            kwargs.update(
                pool_size=pool.size,
                max_overflow=pool.overflow,
                pool_timeout=pool.timeout,
                connect_args={"connect_timeout": pool.connect_timeout},
            )
        self.engine = create_engine(url, **kwargs)
        self._write_engine: Engine
        if self.is_sqlite:
            _configure_sqlite(self.engine)
            self._write_engine = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        else:
            self._write_engine = self.engine

    def create_schema(self) -> None:
        """Bring the database to this gateway's schema: migrate it up to the head revision
        (from nothing, for a new one). Refuses a database it cannot vouch for."""
        revision = migrations.current(self.engine)
        tables = set(inspect(self.engine).get_table_names()) - {"alembic_version"}
        if revision is None and tables:
            self._adopt()
        elif revision is not None and revision not in migrations.known():
            raise StaleSchema(
                f"the database is at schema revision {revision!r}, which this gateway does not "
                "know: it was migrated by a newer gateway. Run that version (or newer)."
            )
        migrations.upgrade(self.engine)

    def _adopt(self) -> None:
        """A database made before migrations existed has the first revision's schema: stamp it
        so and migrate it, keeping the result only if it then matches the models exactly
        (tables, columns and indexes). One transaction, so a refused database is left as it
        was and refused again next time."""
        try:
            with self._write_engine.begin() as connection:
                if differences := migrations.adopt(connection):
                    raise StaleSchema(
                        f"the database differs from this gateway's schema ({differences[0]}"
                        f"{f' and {len(differences) - 1} more' if len(differences) > 1 else ''}"
                        "): it was made by an older gateway. Start with a fresh data directory "
                        "(or database)."
                    )
        except DBAPIError as exc:
            raise StaleSchema(
                f"the database could not be migrated ({exc.orig}): it was made by an older "
                "gateway. Start with a fresh data directory (or database)."
            ) from exc

    def drop_schema(self) -> None:
        migrations.downgrade(self.engine, "base")

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._session(self.engine) as session:
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A transaction that commits when the block ends and rolls back if it raises."""
        with self._session(self._write_engine) as session:
            yield session

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A read transaction in SQLAlchemy Core, for a hot path that needs no ORM objects (it
        costs about half what ``reading`` does)."""
        with _translated_errors(), self.engine.connect() as connection:
            yield connection

    @contextmanager
    def _session(self, engine: Engine) -> Iterator[Session]:
        with (
            _translated_errors(),
            Session(engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            # Connect now, not at the first statement: a database that is down fails the
            # transaction here, as Unavailable, even if the block handles its own errors
            # (group commit keeps each unit's error to that unit).
            session.connection()
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def _translated_errors() -> Iterator[None]:
    """The database's "cannot work now" errors as ``Unavailable``, so the caller retries."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        # Also at COMMIT: the write may or may not have landed, and the caller's retry with
        # the same request id finds out (replays it or makes it).
        if exc.connection_invalidated or is_transient(exc):
            raise Unavailable("database unavailable; retry") from exc
        raise
    except PoolTimeout as exc:
        raise Unavailable("all database connections are busy; retry") from exc
    except PendingRollbackError as exc:
        # The connection died under a statement whose error was handled inside the block
        # (a savepoint's), and COMMIT finds it gone.
        if exc.code == _CONNECTION_LOST_IN_TRANSACTION:
            raise Unavailable("database unavailable; retry") from exc
        raise


# PostgreSQL SQLSTATE classes that say "the server cannot work now", not "this request is
# wrong": connection exception, insufficient resources, operator intervention (shutdown,
# restart, cancel), system error.
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "58"})
_SQLITE_BUSY = frozenset({"SQLITE_BUSY", "SQLITE_LOCKED"})
# SQLAlchemy's code for "can't reconnect until invalid transaction is rolled back".
_CONNECTION_LOST_IN_TRANSACTION = "8s2b"


def is_transient(exc: DBAPIError) -> bool:
    """A database error worth a retry later. Deadlocks and serialisation failures are not here:
    ``Transactions.retrying`` retries those at once."""
    error = exc.orig
    if (name := getattr(error, "sqlite_errorname", None)) is not None:
        return name in _SQLITE_BUSY
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate is None:  # psycopg raises no SQLSTATE when there is no server to send one
        return True
    return str(sqlstate)[:2] in _TRANSIENT_SQLSTATE_CLASSES
