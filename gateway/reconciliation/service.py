"""Daily reconciliation: the signed statement of a closed business date between one bank and
the platform (rules in ``gateway.domain.reconciliation``). A statement is made on the first
request for its day, under the bank's partner-row lock, which the bank's loan events and the
platform's order settlements take too: so no event dated on or before the day can land after
the statement read the books (``BOOKS_CLOSED``), and every later request gets the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from sqlmodel import Session

from colending_core import RECONCILIATION_PAYLOAD_TYPE
from gateway._transactions import (
    Transactions,
    business_date,
    raise_all,
    require_active_caller,
    utc_now,
)
from gateway.domain.ids import new_id
from gateway.domain.partner import partner_id_problem
from gateway.domain.reconciliation import NetPayer, StatementLine, net, statement_lines, totals
from gateway.domain.referral import SignedPayload
from gateway.errors import FailedPrecondition, FieldViolation
from gateway.partners.service import require_partner
from gateway.signing.keyring import KeyRing
from gateway.store import reconciliation_repository as recon_repo
from gateway.store.db import Database
from gateway.store.reconciliation_repository import StoredStatement


@dataclass(frozen=True, slots=True, kw_only=True)
class StatementPayload:
    """What a statement signs; the encoder adds the Merkle root of the lines."""

    statement_id: str
    bank_id: str
    business_date: date
    lines: tuple[StatementLine, ...]
    totals: StatementLine
    net_payer: NetPayer
    net_amount_fen: int
    issued_at: datetime


class StatementEncoder(Protocol):
    def __call__(self, payload: StatementPayload, /) -> bytes: ...


def refuse_if_books_closed(session: Session, bank_id: str, day: date, *, field: str) -> None:
    """No event may be dated on or before a day the bank's statement has closed. Call under
    the bank's partner-row lock, as the statement is made under it."""
    closed = recon_repo.closed_through(session, bank_id)
    if closed is not None and day <= closed:
        raise FailedPrecondition.single(
            "BOOKS_CLOSED",
            field,
            f"{day.isoformat()} is on or before {closed.isoformat()}, the last day of "
            f"{bank_id}'s books closed by a reconciliation statement; date it after",
        )


class Reconciliation:
    def __init__(
        self,
        *,
        database: Database,
        keyring: KeyRing,
        encode_statement: StatementEncoder,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = database
        self._keyring = keyring
        self._encode = encode_statement
        self._clock = clock
        self._tx = Transactions(database=database, clock=clock)

    def statement(
        self, *, bank_id: str, day: date | None, caller_bank: bool = False
    ) -> StoredStatement:
        """The statement of ``bank_id`` for ``day``, made now if it is the first request.
        ``caller_bank``: the bank itself asks, and must be active (the platform and the
        operator may read a suspended bank's)."""
        problems = []
        if not bank_id:
            problems.append(FieldViolation("bank_id", "required"))
        elif (problem := partner_id_problem(bank_id)) is not None:
            problems.append(FieldViolation("bank_id", problem))
        if day is None:
            problems.append(FieldViolation("business_date", "required"))
        raise_all((), problems)
        assert day is not None
        today = business_date(self._clock())
        if day >= today:
            raise FailedPrecondition.single(
                "DAY_NOT_CLOSED",
                "business_date",
                f"{day.isoformat()} is not over yet (today is {today.isoformat()} in China); "
                "a statement closes a past day",
            )
        with self._db.reading() as session:
            if caller_bank:
                require_active_caller(session, bank_id)
            else:
                require_partner(session, bank_id)
            if (stored := recon_repo.get_statement(session, bank_id, day)) is not None:
                return stored

        def make(session: Session) -> StoredStatement:
            # The lock every dated write of this bank takes: the books stand still meanwhile.
            require_partner(session, bank_id, for_update=True)
            if (stored := recon_repo.get_statement(session, bank_id, day)) is not None:
                return stored  # another request made it first
            lines = statement_lines(recon_repo.case_records(session, bank_id), day)
            total = totals(lines)
            payer, amount = net(total)
            now = self._clock()
            payload = StatementPayload(
                statement_id=new_id("recon"),
                bank_id=bank_id,
                business_date=day,
                lines=tuple(lines),
                totals=total,
                net_payer=payer,
                net_amount_fen=amount,
                issued_at=now,
            )
            envelope = self._keyring.sign(
                self._encode(payload), payload_type=RECONCILIATION_PAYLOAD_TYPE
            )
            stored = StoredStatement(
                statement_id=payload.statement_id,
                bank_id=bank_id,
                business_date=day,
                envelope=SignedPayload(
                    payload=envelope.payload,
                    payload_type=envelope.payload_type,
                    signatures=tuple((s.keyid, s.sig) for s in envelope.signatures),
                ),
                line_count=len(lines),
                created_at=now,
            )
            recon_repo.insert_statement(session, stored)
            session.flush()
            return stored

        return self._tx.retrying(make)
