"""Rows and queries of daily reconciliation: the cases' recorded loan events and the signed
statements, and disputes of their lines."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from gateway.domain.reconciliation import CaseRecord, Dispute, DisputeState
from gateway.domain.referral import SignedPayload
from gateway.store import codec
from gateway.store.tables import (
    CaseEventRow,
    FinancingCaseRow,
    ReconciliationDisputeRow,
    ReconciliationStatementRow,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredStatement:
    statement_id: str
    bank_id: str
    business_date: date
    envelope: SignedPayload
    line_count: int
    created_at: datetime


def case_records(session: Session, bank_id: str) -> list[CaseRecord]:
    """Every case of the bank with agreed terms, with its loan events in the order recorded."""
    cases = session.exec(
        select(FinancingCaseRow)
        .where(FinancingCaseRow.bank_id == bank_id)
        .where(col(FinancingCaseRow.agreed_terms_json).is_not(None))
        .order_by(col(FinancingCaseRow.case_id))
    ).all()
    if not cases:
        return []
    events: dict[str, list[str]] = {}
    rows = session.exec(
        select(CaseEventRow.case_id, CaseEventRow.loan_event_json)
        .join(FinancingCaseRow, col(FinancingCaseRow.case_id) == col(CaseEventRow.case_id))
        .where(FinancingCaseRow.bank_id == bank_id)
        .where(col(CaseEventRow.loan_event_json).is_not(None))
        .order_by(col(CaseEventRow.case_id), col(CaseEventRow.sequence))
    ).all()
    for case_id, text in rows:
        assert text is not None
        events.setdefault(case_id, []).append(text)
    records = []
    for case in cases:
        assert case.agreed_terms_json is not None
        records.append(
            CaseRecord(
                case_id=case.case_id,
                platform_merchant_id=case.platform_merchant_id,
                terms=codec.load_terms(case.agreed_terms_json),
                events=tuple(codec.load_loan_event(t) for t in events.get(case.case_id, [])),
            )
        )
    return records


def closed_through(session: Session, bank_id: str) -> date | None:
    """The latest business date with a statement for the bank: its books are closed to there."""
    latest: date | None = session.exec(
        select(func.max(ReconciliationStatementRow.business_date)).where(
            ReconciliationStatementRow.bank_id == bank_id
        )
    ).one()
    return latest


def get_statement(session: Session, bank_id: str, day: date) -> StoredStatement | None:
    row = session.exec(
        select(ReconciliationStatementRow)
        .where(ReconciliationStatementRow.bank_id == bank_id)
        .where(ReconciliationStatementRow.business_date == day)
    ).first()
    if row is None:
        return None
    return StoredStatement(
        statement_id=row.statement_id,
        bank_id=row.bank_id,
        business_date=row.business_date,
        envelope=SignedPayload(
            payload=row.envelope_payload,
            payload_type=row.envelope_type,
            signatures=codec.load_signatures(row.envelope_signatures_json),
        ),
        line_count=row.line_count,
        created_at=row.created_at,
    )


def insert_statement(session: Session, statement: StoredStatement) -> None:
    session.add(
        ReconciliationStatementRow(
            statement_id=statement.statement_id,
            bank_id=statement.bank_id,
            business_date=statement.business_date,
            envelope_payload=statement.envelope.payload,
            envelope_type=statement.envelope.payload_type,
            envelope_signatures_json=codec.dump_signatures(statement.envelope),
            line_count=statement.line_count,
            created_at=statement.created_at,
        )
    )


def _dispute(row: ReconciliationDisputeRow) -> Dispute:
    return Dispute(
        dispute_id=row.dispute_id,
        statement_id=row.statement_id,
        bank_id=row.bank_id,
        business_date=row.business_date,
        case_id=row.case_id,
        disputed_fields=tuple(json.loads(row.disputed_fields_json)),
        reason=row.reason,
        state=DisputeState(row.state),
        filed_by=row.filed_by,
        filed_at=row.filed_at,
        resolution_note=row.resolution_note,
        resolved_by=row.resolved_by,
        resolved_at=row.resolved_at,
    )


def open_key(statement_id: str, case_id: str) -> str:
    return f"{statement_id}/{case_id}"


def open_dispute_of(session: Session, statement_id: str, case_id: str) -> Dispute | None:
    row = session.exec(
        select(ReconciliationDisputeRow).where(
            ReconciliationDisputeRow.open_key == open_key(statement_id, case_id)
        )
    ).first()
    return None if row is None else _dispute(row)


def insert_dispute(session: Session, dispute: Dispute) -> None:
    session.add(
        ReconciliationDisputeRow(
            dispute_id=dispute.dispute_id,
            statement_id=dispute.statement_id,
            bank_id=dispute.bank_id,
            business_date=dispute.business_date,
            case_id=dispute.case_id,
            disputed_fields_json=json.dumps(list(dispute.disputed_fields)),
            reason=dispute.reason,
            state=dispute.state.value,
            open_key=open_key(dispute.statement_id, dispute.case_id),
            filed_by=dispute.filed_by,
            filed_at=dispute.filed_at,
        )
    )


def get_dispute(session: Session, dispute_id: str, *, for_update: bool = False) -> Dispute | None:
    query = select(ReconciliationDisputeRow).where(
        ReconciliationDisputeRow.dispute_id == dispute_id
    )
    row = session.exec(query.with_for_update() if for_update else query).first()
    return None if row is None else _dispute(row)


def resolve_dispute(
    session: Session, dispute_id: str, *, outcome: DisputeState, note: str, by: str, at: datetime
) -> None:
    row = session.exec(
        select(ReconciliationDisputeRow).where(ReconciliationDisputeRow.dispute_id == dispute_id)
    ).one()
    row.state, row.open_key = outcome.value, None
    row.resolution_note, row.resolved_by, row.resolved_at = note, by, at
    session.add(row)


def list_disputes(
    session: Session,
    *,
    bank_id: str | None,
    state: DisputeState | None,
    after_seq: int,
    limit: int,
) -> list[tuple[int, Dispute]]:
    """Disputes in the order filed, after ``after_seq``: (position, dispute)."""
    query = select(ReconciliationDisputeRow).where(col(ReconciliationDisputeRow.seq) > after_seq)
    if bank_id is not None:
        query = query.where(ReconciliationDisputeRow.bank_id == bank_id)
    if state is not None:
        query = query.where(ReconciliationDisputeRow.state == state.value)
    rows = session.exec(query.order_by(col(ReconciliationDisputeRow.seq)).limit(limit)).all()
    return [(row.seq or 0, _dispute(row)) for row in rows]
