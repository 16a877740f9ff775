"""The Merkle log's hash store in the database, inside the caller's transaction.

An append writes its leaf hash and the subtree hashes it completes in the same transaction as
the change it logs, so a log entry and its effect commit or vanish together. Two writers that
race for one index collide on the primary key; on PostgreSQL a transaction-scoped advisory lock
makes them queue instead (SQLite's single writer already does).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, func, or_, text
from sqlmodel import Session, col, select

from gateway.signing.merkle import NodeKey
from gateway.store.tables import LogNodeRow

_LOG_APPEND_LOCK = 0x6C6F67  # any constant, distinct from the referral lock
# Built once: every check and checkpoint asks it.
_LAST_LEAF = select(func.max(LogNodeRow.idx)).where(LogNodeRow.level == 0)


class DatabaseHashStore:
    """A ``HashStore`` over the ``log_nodes`` table, bound to one session."""

    def __init__(self, *, session: Session) -> None:
        self._session = session

    def lock_for_append(self) -> None:
        """Serialise appenders across replicas until this transaction ends (PostgreSQL)."""
        if self._session.get_bind().dialect.name == "postgresql":
            self._session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOG_APPEND_LOCK}
            )

    def get(self, level: int, index: int) -> bytes:
        return self.get_many([(level, index)])[(level, index)]

    def get_many(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        if not keys:
            return {}
        wanted = set(keys)
        by_level: dict[int, list[int]] = {}
        for level, index in wanted:
            by_level.setdefault(level, []).append(index)
        # One "level = ? AND idx IN (...)" per level: a primary-key range each. A row-value
        # "(level, idx) IN (...)" reads the same rows, but SQLite plans it as a full scan.
        rows = self._session.exec(
            select(LogNodeRow).where(
                or_(
                    *(
                        and_(col(LogNodeRow.level) == level, col(LogNodeRow.idx).in_(indexes))
                        for level, indexes in by_level.items()
                    )
                )
            )
        )
        found = {(r.level, r.idx): r.hash for r in rows}
        missing = wanted - found.keys()
        if missing:
            level, index = min(missing)
            raise KeyError(f"no hash stored at level {level}, index {index}")
        return found

    def put(self, level: int, index: int, value: bytes) -> None:
        self.put_many([(level, index, value)])

    def put_many(self, entries: Sequence[tuple[int, int, bytes]]) -> None:
        for level, index, value in entries:
            if len(value) != 32:
                raise ValueError(f"hash at level {level}, index {index} is not 32 bytes")
            self._session.add(LogNodeRow(level=level, idx=index, hash=value))
        self._session.flush()

    def size(self) -> int:
        last = self._session.connection().execute(_LAST_LEAF).scalar_one()  # Core: no ORM work
        return 0 if last is None else int(last) + 1
