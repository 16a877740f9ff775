"""Alembic's entry point: migrate the engine the gateway handed over, against its models."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text
from sqlmodel import SQLModel

import gateway.store.tables  # noqa: F401  (registers every table on SQLModel.metadata)

# Any constant: on PostgreSQL, replicas starting together migrate one at a time.
_MIGRATION_LOCK = 0x6D69677261


def _migrate(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        # SQLite alters tables by copying them; batch mode does that for every migration.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


given: Connection | None = context.config.attributes.get("connection")
if given is not None:
    _migrate(given)  # inside the caller's transaction, which commits or rolls back
else:
    engine = context.config.attributes["engine"]
    if engine.dialect.name == "sqlite":
        # Take SQLite's write lock at BEGIN: a second process starting at the same moment
        # waits, then finds the schema at head, instead of failing with "database is locked".
        engine = engine.execution_options(sqlite_begin="IMMEDIATE")
    with engine.connect() as connection:
        _migrate(connection)
        connection.commit()
