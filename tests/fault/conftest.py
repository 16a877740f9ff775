"""Fixtures of the fault tests: a private PostgreSQL server (the restart test must not restart
the shared one other tests use) and a place to report figures such as raw duplicate deliveries
at the end of the run."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from fault.processes import PrivatePostgres

IN_CI = os.environ.get("CI", "").lower() == "true"

_REPORTS: list[str] = []


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    problem = PrivatePostgres.problem()
    if problem is not None:
        message = f"{problem}: the fault tests need a PostgreSQL server of their own to restart"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    server = PrivatePostgres.create()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def private_database_url(private_postgres: PrivatePostgres) -> str:
    return private_postgres.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def fault_report() -> list[str]:
    """Lines to print in the run's summary (figures a passing test would otherwise hide)."""
    return _REPORTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _REPORTS:
        terminalreporter.section("fault tests")
        for line in _REPORTS:
            terminalreporter.write_line(line)
