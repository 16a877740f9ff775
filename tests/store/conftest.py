"""Store fixtures: a migrated database on each backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store.db import Database, sqlite_url


@pytest.fixture
def database(data_dir: Path, database_url: str | None) -> Iterator[Database]:
    data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(url=database_url or sqlite_url(data_dir))
    db.create_schema()
    yield db
    db.dispose()
