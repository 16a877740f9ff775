"""Transactions every use case shares: idempotent writes, retries after lost races, and the
request-shape helpers that go with them. Nothing here knows about gRPC."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import TypeVar, cast

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from gateway.domain.partner import Partner, PartnerState
from gateway.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
    Unavailable,
)
from gateway.store import repository as repo
from gateway.store.blacklist_repository import ConcurrentEntryUpdate
from gateway.store.db import Database, is_transient
from gateway.store.group_commit import GroupCommit, Staged, write_staged

T = TypeVar("T")

# China has had no daylight saving since 1991, so a fixed UTC+8 is exact for business dates.
BUSINESS_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")
RACE_RETRIES = 3
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def utc_now() -> datetime:
    return datetime.now(UTC)


def business_date(moment: datetime) -> date:
    return moment.astimezone(BUSINESS_TZ).date()


@dataclass(frozen=True, slots=True, kw_only=True)
class Idempotency:
    """What every mutating call carries: who asks, for what, under which key, with what content."""

    caller: str
    method: str
    request_id: str
    fingerprint: str  # hex SHA-256 of the request's deterministic bytes without request_id


class Transactions:
    def __init__(self, *, database: Database, clock: Callable[[], datetime]) -> None:
        self._db = database
        self._clock = clock
        self._group = GroupCommit(database=database)

    def idempotent(
        self,
        idem: Idempotency,
        *,
        replay: Callable[[Session, str], T],
        act: Callable[[Session, datetime], tuple[str, T]],
        batched: bool = False,
    ) -> T:
        """Run ``act`` once per request id, in one transaction with the idempotency record.

        A repeat with the same content gets ``replay`` of the resource the first produced; a
        repeat with other content is ALREADY_EXISTS. The key is claimed before ``act`` runs, so
        a concurrent twin waits on it and then replays, and no side effect of ``act`` (such as
        a key rotation) happens twice. ``batched``: share the commit with concurrent callers
        (gateway.store.group_commit); only for ``act``s that take no lock out of a set order.
        """
        check_request_id(idem.request_id)

        def attempt(session: Session) -> T:
            prior = repo.find_idempotency(
                session, caller=idem.caller, method=idem.method, request_id=idem.request_id
            )
            if prior is not None:
                same_request_or_raise(idem, prior.fingerprint)
                return replay(session, prior.resource_id)
            now = self._clock()
            claim = repo.claim_idempotency(
                session,
                caller=idem.caller,
                method=idem.method,
                request_id=idem.request_id,
                fingerprint=idem.fingerprint,
                at=now,
            )
            claim.resource_id, result = act(session, now)
            return result

        return self.retrying(attempt, batched=batched)

    def retrying_staged(self, work: Callable[[Session], Staged[T]], *, batched: bool = False) -> T:
        """``retrying`` for a ``work`` that only stages its writes (gateway.store.group_commit),
        so it needs no savepoint of its own."""
        return cast("T", self.retrying(work, batched=batched, savepoint=False))

    def retrying(
        self, work: Callable[[Session], T], *, batched: bool = False, savepoint: bool = True
    ) -> T:
        """Run ``work`` in a write transaction, again from a fresh read if it lost a race.
        A ``Staged`` result is written before the commit (with its batch's, if ``batched``)."""
        for _ in range(RACE_RETRIES):
            try:
                if batched:
                    return self._group.run(work, savepoint=savepoint)
                with self._db.writing() as session:
                    (result,) = write_staged(session, [work(session)])
                    if isinstance(result, Exception):  # refused: rolled back
                        raise result
                    return cast("T", result)
            except (IntegrityError, repo.ConcurrentUpdate, ConcurrentEntryUpdate):
                continue
            except OperationalError as error:
                if _sqlstate(error) in _RETRYABLE_SQLSTATES:
                    continue
                # A statement's own error (a group-commit unit's, say) that the transaction's
                # mapping did not see: an outage or a cancelled query is still only "retry".
                if is_transient(error):
                    raise Unavailable("database unavailable; retry") from error
                raise
        raise Unavailable("the resource kept changing under concurrent requests; retry")

    def replayed(self, idem: Idempotency, replay: Callable[[Session, str], T]) -> T | None:
        """The earlier answer to this request id, if there is one (a cheap read-only check)."""
        with self._db.reading() as session:
            return replayed_in(session, idem, replay)


def replayed_in(
    session: Session, idem: Idempotency, replay: Callable[[Session, str], T]
) -> T | None:
    """``Transactions.replayed`` inside a read the caller already holds."""
    check_request_id(idem.request_id)
    prior = repo.find_idempotency(
        session, caller=idem.caller, method=idem.method, request_id=idem.request_id
    )
    if prior is None:
        return None
    same_request_or_raise(idem, prior.fingerprint)
    return replay(session, prior.resource_id)


# PostgreSQL's "try again" states: a deadlock victim, a serialisation failure.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def _sqlstate(error: OperationalError) -> str:
    return str(getattr(error.orig, "sqlstate", "") or "")


def require_active_partner(session: Session, bank_id: str, *, for_update: bool = False) -> Partner:
    """The calling bank, which must be registered (else PERMISSION_DENIED) and active."""
    partner = repo.get_partner(session, bank_id, for_update=for_update)
    refuse_unless_active(bank_id, None if partner is None else partner.state)
    assert partner is not None
    return partner


def require_active_caller(session: Session, bank_id: str) -> None:
    """The same check as ``require_active_partner``, for a read that needs nothing else of the
    bank (it reads one column instead of the row)."""
    refuse_unless_active(bank_id, repo.partner_state(session, bank_id))


def refuse_unless_active(bank_id: str, state: PartnerState | None) -> None:
    if state is None:
        raise PermissionDenied(f"partner/{bank_id} is not a registered partner")
    if state is not PartnerState.ACTIVE:
        raise FailedPrecondition.single(
            "PARTNER_SUSPENDED", f"partners/{bank_id}", "partner is suspended"
        )


def check_request_id(request_id: str) -> None:
    if not REQUEST_ID_PATTERN.fullmatch(request_id):
        raise InvalidArgument.single("request_id", "required: 1..128 characters of [A-Za-z0-9._:-]")


def same_request_or_raise(idem: Idempotency, fingerprint: str) -> None:
    if fingerprint != idem.fingerprint:
        raise AlreadyExists(
            "request",
            idem.request_id,
            f"request_id {idem.request_id!r} was already used for a different "
            f"{idem.method} request; use a new request_id for new content",
        )


def raise_all(
    shape_problems: Sequence[FieldViolation], rule_problems: Sequence[FieldViolation]
) -> None:
    """One INVALID_ARGUMENT with every problem: the request's shape (from conversion) and the
    rules, leaving out rule problems about a field whose shape was already wrong."""
    reported = [p.field for p in shape_problems]

    def covered(field: str) -> bool:
        return any(r == field or r.startswith((f"{field}[", f"{field}.")) for r in reported)

    problems = [*shape_problems, *(p for p in rule_problems if not covered(p.field))]
    if problems:
        raise InvalidArgument(problems)
