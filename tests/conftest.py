"""Fixtures shared by every suite: database backends (SQLite always, PostgreSQL when it is
there, and always under CI) and a Gateway (the capability services) on a temporary data
directory."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import psycopg
import pytest
from testkit import postgres_url

from gateway.app import Gateway
from gateway.server import ServerConfig, open_gateway

IN_CI = os.environ.get("CI", "").lower() == "true"


@cache
def _postgres_problem() -> str | None:
    try:
        with psycopg.connect(_libpq_url(postgres_url()), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


def _libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    problem = _postgres_problem()
    if problem is not None:
        message = (
            f"PostgreSQL is not reachable at {postgres_url()} ({problem}). Start it, or point "
            "COLENDING_TEST_POSTGRES_URL at one, to run the PostgreSQL tests."
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    schema = f"t_{uuid.uuid4().hex[:16]}"
    base = postgres_url()
    with psycopg.connect(_libpq_url(base), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(_libpq_url(base), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None means the embedded default (SQLite in the data directory)."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def gateway(data_dir: Path, database_url: str | None) -> Iterator[Gateway]:
    return open_gateway(ServerConfig(data_dir=data_dir, database_url=database_url))
