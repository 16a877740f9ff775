"""Versioned schema migrations (Alembic), run by ``colending-gateway db upgrade`` and at start.

The scripts live beside this file; :func:`upgrade` and :func:`current` drive them
programmatically on the gateway's own engine, so no ``alembic.ini`` or URL is needed. A new
model change ships with a new revision in ``versions/``: the test suite upgrades an empty
database and fails if the models and the migrated schema differ.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine
from sqlmodel import SQLModel

import gateway.store.tables  # noqa: F401  (registers every table on SQLModel.metadata)

SCRIPTS = Path(__file__).parent


def _config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


# The schema of gateways from before migrations: an unversioned database is adopted as this.
FIRST = "0001"


def head() -> str:
    """The newest revision this gateway knows."""
    revision = _scripts().get_current_head()
    assert revision is not None
    return revision


def known() -> set[str]:
    """Every revision this gateway has a script for."""
    return {script.revision for script in _scripts().walk_revisions()}


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def current(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def adopt(connection: Connection) -> list[str]:
    """Stamp a database made before migrations as the first revision, migrate it to head, and
    say how it then differs from the models, all in ``connection``'s transaction, which the
    caller rolls back unless the answer is empty."""
    config = _config()
    config.attributes["connection"] = connection
    command.stamp(config, FIRST)
    command.upgrade(config, "head")
    return differences(connection)


def differences(bind: Engine | Connection) -> list[str]:
    """How the database's schema differs from the models (empty: identical)."""
    if isinstance(bind, Engine):
        with bind.connect() as connection:
            return differences(connection)
    found = compare_metadata(MigrationContext.configure(bind), SQLModel.metadata)
    return [
        # ("add_column", schema, table, Column) names the column as "table.column".
        " ".join(str(part) for part in diff[:4] if part is not None)
        if isinstance(diff, tuple)
        else str(diff)
        for diff in found
    ]


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(_config(engine), revision)


def stamp(engine: Engine, revision: str = "head") -> None:
    command.stamp(_config(engine), revision)
