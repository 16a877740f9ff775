"""Group commit: callers waiting together share one commit; a failing unit rolls back alone; a
failed commit fails every unit of its batch; nobody is answered before its batch commits; units
that stage their writes are written by one call for the batch."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from gateway._transactions import Transactions
from gateway.errors import Unavailable
from gateway.store import repository as repo
from gateway.store.db import Database
from gateway.store.group_commit import GroupCommit, Staged


class Refused(Exception):
    pass


class Fatal(BaseException):
    """What no unit should raise (like SystemExit): it must not pass for success anywhere."""


def claim(request_id: str) -> Callable[[Session], str]:
    def work(session: Session) -> str:
        repo.claim_idempotency(
            session,
            caller="test",
            method="Test",
            request_id=request_id,
            fingerprint="f",
            at=datetime.now(UTC),
        )
        session.flush()
        return request_id

    return work


def claimed(database: Database, request_id: str) -> bool:
    with database.reading() as session:
        found = repo.find_idempotency(session, caller="test", method="Test", request_id=request_id)
    return found is not None


def commits(database: Database) -> list[int]:
    counted = [0]

    @event.listens_for(database.engine, "commit")
    def _count(connection: Any) -> None:
        counted[0] += 1

    return counted


def run_batch(
    group: GroupCommit, units: dict[str, Callable[[Session], str]]
) -> dict[str, str | BaseException]:
    """The first unit holds the write until every other caller is queued behind it, so the
    others form exactly one batch (no sleeps: the gate opens when the queue is full)."""
    gate = threading.Event()
    outcomes: dict[str, str | BaseException] = {}

    def first(session: Session) -> str:
        gate.wait()
        return claim("first")(session)

    def call(name: str, work: Callable[[Session], str]) -> None:
        try:
            outcomes[name] = group.run(work)
        except BaseException as error:
            outcomes[name] = error

    leader = threading.Thread(target=call, args=("first", first))
    leader.start()
    while not group._writing:
        threading.Event().wait(0.001)
    followers = [threading.Thread(target=call, args=item) for item in units.items()]
    for thread in followers:
        thread.start()
    while len(group._waiting) < len(units):
        threading.Event().wait(0.001)
    for name in units:
        assert name not in outcomes  # nobody answered before the batch commits
    gate.set()
    for thread in (leader, *followers):
        thread.join()
    return outcomes


def test_waiting_callers_share_one_commit(database: Database) -> None:
    group = GroupCommit(database=database)
    counted = commits(database)
    outcomes = run_batch(group, {f"r{i}": claim(f"r{i}") for i in range(10)})
    assert outcomes == {"first": "first", **{f"r{i}": f"r{i}" for i in range(10)}}
    assert counted[0] == 2  # the leader's own batch, then the ten that queued behind it
    assert all(claimed(database, f"r{i}") for i in range(10))


def test_a_failing_unit_rolls_back_alone(database: Database) -> None:
    def refused(session: Session) -> str:
        claim("refused")(session)
        raise Refused("no")

    group = GroupCommit(database=database)
    outcomes = run_batch(group, {"a": claim("a"), "refused": refused, "b": claim("b")})
    assert isinstance(outcomes["refused"], Refused)
    assert (outcomes["a"], outcomes["b"]) == ("a", "b")
    assert (claimed(database, "a"), claimed(database, "b")) == (True, True)
    assert not claimed(database, "refused")


def test_a_unit_that_breaks_a_constraint_rolls_back_alone(database: Database) -> None:
    group = GroupCommit(database=database)
    assert group.run(claim("taken")) == "taken"
    outcomes = run_batch(group, {"dup": claim("taken"), "c": claim("c")})
    assert isinstance(outcomes["dup"], Exception)
    assert outcomes["c"] == "c"
    assert claimed(database, "c")


def test_a_failed_commit_fails_the_whole_batch(database: Database) -> None:
    group = GroupCommit(database=database)
    failing = [True]

    @event.listens_for(database.engine, "commit")
    def _fail(connection: Any) -> None:
        if failing[0]:
            failing[0] = False
            raise Refused("disk full")

    outcomes = run_batch(group, {})
    assert isinstance(outcomes["first"], Refused)
    assert not claimed(database, "first")
    assert group.run(claim("after")) == "after"  # the next batch is not affected


def test_an_error_a_unit_leaves_pending_is_its_own(database: Database) -> None:
    """A duplicate the unit never flushed fails at its savepoint's release: that unit alone."""
    group = GroupCommit(database=database)
    assert group.run(claim("taken")) == "taken"

    def unflushed(session: Session) -> str:
        repo.claim_idempotency(
            session,
            caller="test",
            method="Test",
            request_id="taken",
            fingerprint="f",
            at=datetime.now(UTC),
        )
        return "unflushed"

    outcomes = run_batch(group, {"a": claim("a"), "dup": unflushed, "c": claim("c")})
    assert isinstance(outcomes["dup"], Exception)
    assert (outcomes["a"], outcomes["c"]) == ("a", "c")
    assert claimed(database, "a")
    assert claimed(database, "c")


def test_a_unit_raising_beyond_exception_fails_its_whole_batch(database: Database) -> None:
    def fatal(session: Session) -> str:
        raise Fatal

    group = GroupCommit(database=database)
    outcomes = run_batch(group, {"a": claim("a"), "fatal": fatal, "c": claim("c")})
    assert all(isinstance(outcomes[name], Fatal) for name in ("a", "fatal", "c")), outcomes
    assert not claimed(database, "a")
    assert not claimed(database, "c")
    assert group.run(claim("after")) == "after"


class _Cancelled(Exception):
    sqlstate = "57014"  # query_canceled: a statement_timeout, or an operator's cancel


def test_a_transient_error_inside_a_unit_is_unavailable(database: Database) -> None:
    """A unit keeps its own errors, so the transaction's mapping never sees them; the retry
    loop still answers UNAVAILABLE for an outage or a cancelled statement, not INTERNAL."""

    def cancelled(session: Session) -> str:
        raise OperationalError("SELECT 1", {}, _Cancelled("canceling statement"))

    tx = Transactions(database=database, clock=lambda: datetime.now(UTC))
    with pytest.raises(Unavailable):
        tx.retrying(cancelled, batched=True)


Write = Callable[[Session, Sequence[str]], list[str | Exception]]


def claims_writer(calls: list[list[str]]) -> Write:
    """A staged write that claims each row's request id, refusing those named "refuse-..."."""

    def write(session: Session, rows: Sequence[str]) -> list[str | Exception]:
        calls.append(list(rows))
        for row in rows:
            if not row.startswith("refuse"):
                claim(row)(session)
        return [Refused(row) if row.startswith("refuse") else row for row in rows]

    return write


def staged(request_id: str, write: Write) -> Callable[[Session], Any]:
    return lambda session: Staged(rows=request_id, write=write)


def test_staged_units_are_written_by_one_write_for_the_batch(database: Database) -> None:
    group = GroupCommit(database=database)
    calls: list[list[str]] = []
    write = claims_writer(calls)
    outcomes = run_batch(
        group, {name: staged(name, write) for name in ("s1", "refuse-1", "s2", "s3")}
    )
    assert calls == [["s1", "refuse-1", "s2", "s3"]]  # one call for every staged unit
    assert (outcomes["s1"], outcomes["s2"], outcomes["s3"]) == ("s1", "s2", "s3")
    assert isinstance(outcomes["refuse-1"], Refused)  # refused alone
    assert all(claimed(database, name) for name in ("first", "s1", "s2", "s3"))
    assert not claimed(database, "refuse-1")


def test_a_staged_write_that_raises_fails_its_whole_batch(database: Database) -> None:
    def failing(session: Session, rows: Sequence[str]) -> list[str | Exception]:
        raise Refused("the write failed")

    group = GroupCommit(database=database)
    outcomes = run_batch(
        group,
        {
            "plain": claim("plain"),
            "staged": lambda session: Staged(rows="staged", write=failing),
        },
    )
    assert outcomes["first"] == "first"  # the leader's own batch, before the others queued
    assert all(isinstance(outcomes[name], Refused) for name in ("plain", "staged"))
    assert not claimed(database, "plain")


def test_a_staged_unit_outside_a_batch_is_written_or_refused(database: Database) -> None:
    transactions = Transactions(database=database, clock=lambda: datetime.now(UTC))
    calls: list[list[str]] = []
    write = claims_writer(calls)
    assert transactions.retrying_staged(staged("alone", write)) == "alone"
    with pytest.raises(Refused):
        transactions.retrying_staged(staged("refuse-alone", write))
    assert calls == [["alone"], ["refuse-alone"]]
    assert claimed(database, "alone")
    assert not claimed(database, "refuse-alone")
