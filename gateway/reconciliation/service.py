"""Daily reconciliation: the signed statement of a closed business date between one bank and
the platform (rules in ``gateway.domain.reconciliation``). A statement is made on the first
request for its day, under the bank's partner-row lock, which the bank's loan events and the
platform's order settlements take too: so no event dated on or before the day can land after
the statement read the books (``BOOKS_CLOSED``), and every later request gets the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from sqlmodel import Session

from colending_core import RECONCILIATION_PAYLOAD_TYPE
from gateway._transactions import (
    Idempotency,
    Transactions,
    business_date,
    raise_all,
    require_active_caller,
    require_active_partner,
    utc_now,
)
from gateway.domain import paging
from gateway.domain.ids import new_id
from gateway.domain.paging import Page
from gateway.domain.partner import partner_id_problem
from gateway.domain.reconciliation import (
    Dispute,
    DisputeState,
    NetPayer,
    StatementLine,
    dispute_problems,
    net,
    resolution_problems,
    statement_lines,
    totals,
)
from gateway.domain.referral import SignedPayload
from gateway.errors import FailedPrecondition, FieldViolation, NotFound
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


class StatementCaseIds(Protocol):
    """The case ids of a signed statement's lines, read from its payload bytes."""

    def __call__(self, payload: bytes, /) -> Sequence[str]: ...


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
        statement_case_ids: StatementCaseIds,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = database
        self._keyring = keyring
        self._encode = encode_statement
        self._case_ids = statement_case_ids
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

    def file_dispute(
        self,
        *,
        idem: Idempotency,
        bank_id: str,
        day: date | None,
        case_id: str,
        disputed_fields: Sequence[str],
        reason: str,
        shape_problems: Sequence[FieldViolation] = (),
    ) -> Dispute:
        """The bank disputes its line for ``case_id`` on the statement of ``day``: the
        statement must exist and carry the line, and the line have no open dispute."""
        problems = [] if day is not None else [FieldViolation("business_date", "required")]
        problems += dispute_problems(
            case_id=case_id, disputed_fields=disputed_fields, reason=reason
        )
        raise_all(shape_problems, problems)
        assert day is not None

        def act(session: Session, now: datetime) -> tuple[str, Dispute]:
            require_active_partner(session, bank_id)
            statement = recon_repo.get_statement(session, bank_id, day)
            if statement is None:
                raise NotFound("reconciliation statement", f"{bank_id}/{day.isoformat()}")
            if case_id not in self._case_ids(statement.envelope.payload):
                raise FailedPrecondition.single(
                    "NOT_ON_STATEMENT",
                    "case_id",
                    f"{statement.statement_id} of {day.isoformat()} has no line for {case_id}",
                )
            if (
                open_one := recon_repo.open_dispute_of(session, statement.statement_id, case_id)
            ) is not None:
                raise FailedPrecondition.single(
                    "DISPUTE_OPEN",
                    f"reconciliationDisputes/{open_one.dispute_id}",
                    f"the line of {case_id} on {statement.statement_id} is already disputed; "
                    "wait for its resolution",
                )
            dispute = Dispute(
                dispute_id=new_id("dispute"),
                statement_id=statement.statement_id,
                bank_id=bank_id,
                business_date=day,
                case_id=case_id,
                disputed_fields=tuple(disputed_fields),
                reason=reason.strip(),
                state=DisputeState.OPEN,
                filed_by=f"partner/{bank_id}",
                filed_at=now,
            )
            recon_repo.insert_dispute(session, dispute)
            session.flush()
            return dispute.dispute_id, dispute

        return self._tx.idempotent(idem, replay=self._replay_dispute, act=act)

    def resolve_dispute(
        self,
        *,
        idem: Idempotency,
        actor: str,
        dispute_id: str,
        outcome: DisputeState | None,
        note: str,
        shape_problems: Sequence[FieldViolation] = (),
    ) -> Dispute:
        """The platform or the operator upholds (the line was wrong: correcting events follow
        on the next open day) or rejects (the line stands) an open dispute."""
        problems = [] if dispute_id else [FieldViolation("dispute_id", "required")]
        raise_all(shape_problems, problems + resolution_problems(outcome, note))
        assert outcome is not None

        def act(session: Session, now: datetime) -> tuple[str, Dispute]:
            dispute = recon_repo.get_dispute(session, dispute_id, for_update=True)
            if dispute is None:
                raise NotFound("reconciliation dispute", dispute_id)
            if dispute.state is not DisputeState.OPEN:
                raise FailedPrecondition.single(
                    "DISPUTE_RESOLVED",
                    f"reconciliationDisputes/{dispute_id}",
                    f"the dispute was already resolved ({dispute.state.name}) by "
                    f"{dispute.resolved_by}",
                )
            recon_repo.resolve_dispute(
                session, dispute_id, outcome=outcome, note=note.strip(), by=actor, at=now
            )
            session.flush()
            return dispute_id, self._replay_dispute(session, dispute_id)

        return self._tx.idempotent(idem, replay=self._replay_dispute, act=act)

    def list_disputes(
        self, *, bank_id: str | None, state: DisputeState | None, page_size: int, page_token: str
    ) -> Page[Dispute]:
        """Disputes in the order filed: a bank's own, or (``bank_id`` None) every bank's."""
        size = paging.page_size(page_size)
        after = paging.decode_int_token(page_token, "disputes") if page_token else 0
        with self._db.reading() as session:
            rows = recon_repo.list_disputes(
                session, bank_id=bank_id, state=state, after_seq=after, limit=size + 1
            )
        items = rows[:size]
        token = paging.encode_token("disputes", items[-1][0]) if len(rows) > size else ""
        return Page(items=[d for _, d in items], next_page_token=token)

    @staticmethod
    def _replay_dispute(session: Session, dispute_id: str) -> Dispute:
        dispute = recon_repo.get_dispute(session, dispute_id)
        assert dispute is not None
        return dispute
