"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL, and
a database the gateway cannot vouch for is refused with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from gateway.store import migrations
from gateway.store.db import Database, StaleSchema, sqlite_url


def _database(data_dir: Path, database_url: str | None) -> Database:
    data_dir.mkdir(parents=True, exist_ok=True)
    return Database(url=database_url or sqlite_url(data_dir))


def test_an_empty_database_migrates_to_exactly_the_models(
    data_dir: Path, database_url: str | None
) -> None:
    database = _database(data_dir, database_url)
    database.create_schema()
    assert migrations.current(database.engine) == migrations.head()
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    # A model changed without a migration shows here: add a revision in migrations/versions.
    assert differences == []


def test_migrations_go_down_and_up_again(data_dir: Path, database_url: str | None) -> None:
    database = _database(data_dir, database_url)
    database.create_schema()
    database.drop_schema()
    assert set(inspect(database.engine).get_table_names()) <= {"alembic_version"}
    database.create_schema()
    assert set(SQLModel.metadata.tables) <= set(inspect(database.engine).get_table_names())
    database.create_schema()  # a second start changes nothing
    assert migrations.current(database.engine) == migrations.head()


def test_a_database_from_a_newer_gateway_is_refused(
    data_dir: Path, database_url: str | None
) -> None:
    database = _database(data_dir, database_url)
    database.create_schema()
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    with pytest.raises(StaleSchema, match="newer gateway"):
        database.create_schema()


def test_an_unversioned_database_with_every_column_is_adopted(
    data_dir: Path, database_url: str | None
) -> None:
    """One with the first revision's schema and no version, as gateways before migrations made."""
    database = _database(data_dir, database_url)
    _unversioned_first_revision(database)
    database.create_schema()
    assert migrations.current(database.engine) == migrations.head()
    assert migrations.differences(database.engine) == []


def _unversioned_first_revision(database: Database) -> None:
    migrations.upgrade(database.engine, migrations.FIRST)
    with database.engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))


def test_an_unversioned_database_missing_an_index_is_refused(
    data_dir: Path, database_url: str | None
) -> None:
    database = _database(data_dir, database_url)
    _unversioned_first_revision(database)
    with database.engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_blacklist_entries_pseudonym_status"))
    # Refused, and left as it was: a second start refuses it again.
    for _ in range(2):
        with pytest.raises(StaleSchema, match="ix_blacklist_entries_pseudonym_status"):
            database.create_schema()
        assert migrations.current(database.engine) is None


def test_an_unversioned_database_missing_a_table_is_refused_every_time(
    data_dir: Path, database_url: str | None
) -> None:
    database = _database(data_dir, database_url)
    _unversioned_first_revision(database)
    with database.engine.begin() as connection:
        connection.execute(text("DROP TABLE case_events"))
    for _ in range(2):
        with pytest.raises(StaleSchema, match="older gateway"):
            database.create_schema()
        assert migrations.current(database.engine) is None
