"""Group commit: concurrent write transactions share one commit, and so one fsync.

A caller hands its unit of work to ``GroupCommit.run`` and blocks. Whoever finds no batch
being written leads: it takes every unit waiting at that moment (no timer, so a lone caller is
not delayed), runs each in its own SAVEPOINT inside one write transaction, and commits once.
While it waits for the disk, the next callers queue up and form the next batch, which the
leader hands to the first of them. A unit that raises rolls back to its savepoint alone; every
caller gets its result or its exception only after its batch's commit (or the commit's error).

A unit may instead leave its writes to the end of the batch by returning ``Staged``: the rows
of every unit staged with the same ``write`` go to the database together, one statement per
table (executemany) instead of one per row per unit. A staged unit refused there is answered
alone; an error ``write`` raises fails the batch, as a failed commit does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlmodel import Session

from gateway.store.db import Database

T = TypeVar("T")

MAX_BATCH = 64  # bounds how long the first unit of a batch waits for the last


@dataclass(frozen=True, slots=True, kw_only=True)
class Staged(Generic[T]):
    """A unit's work left to the end of its batch: ``write(session, rows_of_each_unit)`` does
    the work of every unit of the batch staged with it (one statement per table for them all)
    and answers each unit, in order, with its result or, for one refused alone, an exception.
    An exception ``write`` raises fails the whole batch."""

    rows: Any
    write: Callable[[Session, Sequence[Any]], Sequence[T | Exception]]


def write_staged(session: Session, results: Sequence[object]) -> list[object]:
    """``results`` with every ``Staged`` one replaced by what its ``write`` answered."""
    out = list(results)
    by_write: dict[Any, list[tuple[int, Staged[Any]]]] = {}
    for i, result in enumerate(out):
        if isinstance(result, Staged):
            by_write.setdefault(result.write, []).append((i, result))
    for write, units in by_write.items():
        answers = write(session, [unit.rows for _, unit in units])
        for (i, _), answer in zip(units, answers, strict=True):
            out[i] = answer
    return out


class _Unit(Generic[T]):
    __slots__ = ("done", "error", "lead", "result", "savepoint", "wake", "work")

    def __init__(self, work: Callable[[Session], T], *, savepoint: bool) -> None:
        self.work = work
        self.savepoint = savepoint
        self.wake = threading.Event()
        self.lead = False  # this caller writes the next batch
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None


class GroupCommit:
    def __init__(self, *, database: Database, max_batch: int = MAX_BATCH) -> None:
        self._db = database
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._waiting: list[_Unit[Any]] = []
        self._writing = False

    def run(self, work: Callable[[Session], T], *, savepoint: bool = True) -> T:
        """``work(session)`` committed durably, sharing the commit with concurrent callers.
        ``savepoint`` False: ``work`` writes nothing itself (it returns ``Staged``), so it needs
        no savepoint of its own."""
        unit = _Unit(work, savepoint=savepoint)
        with self._lock:
            self._waiting.append(unit)
            if not self._writing:
                self._writing = unit.lead = True
        if not unit.lead:
            unit.wake.wait()
        if not unit.done:  # woken (or started) as the leader of the next batch
            self._write_next_batch()
        if unit.error is not None:
            raise unit.error
        return unit.result  # type: ignore[return-value]

    def _write_next_batch(self) -> None:
        with self._lock:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
        try:
            self._write(batch)
        finally:
            with self._lock:
                if self._waiting:
                    successor = self._waiting[0]
                    successor.lead = True
                    successor.wake.set()
                else:
                    self._writing = False
            for unit in batch:
                unit.done = True
                unit.wake.set()

    def _write(self, batch: list[_Unit[Any]]) -> None:
        try:
            with self._db.writing() as session:
                for unit in batch:
                    try:
                        # Releasing the savepoint flushes what the unit left pending, so an
                        # error there is the unit's own too, not its neighbours'.
                        if unit.savepoint:
                            with session.begin_nested():
                                unit.result = unit.work(session)
                        else:
                            unit.result = unit.work(session)
                    except Exception as error:
                        unit.result, unit.error = None, error
                ok = [unit for unit in batch if unit.error is None]
                results = write_staged(session, [u.result for u in ok])
                for unit, result in zip(ok, results, strict=True):
                    if isinstance(result, Exception):  # refused alone, wrote nothing
                        unit.result, unit.error = None, result
                    else:
                        unit.result = result
        except BaseException as error:
            # The commit (or the transaction around the savepoints) failed, or a unit raised
            # something no unit should (SystemExit...): nothing of this batch is on disk, so
            # every unit fails, each with that error. The leader's own unit re-raises it.
            for unit in batch:
                unit.result, unit.error = None, error
