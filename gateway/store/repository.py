"""Row <-> domain conversion and the queries the gateway needs. Functions take a Session so
the caller decides the transaction."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, text, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row
from sqlmodel import Session, col, select

from gateway.domain.consent import Consent, ConsentPurpose
from gateway.domain.evidence import Evidence
from gateway.domain.financing import AWAITING_BANK, COMMITTED, FinancingState
from gateway.domain.ledger import LoanEvent
from gateway.domain.merchant import DataScope
from gateway.domain.partner import Partner, PartnerState
from gateway.domain.portfolio import CaseFigures
from gateway.domain.referral import (
    CaseEvent,
    FinancingCase,
    Referral,
    ReferralState,
    SignedPayload,
)
from gateway.store import codec
from gateway.store.tables import (
    CaseEventRow,
    ConsentRow,
    FinancingCaseRow,
    IdempotencyRow,
    PartnerRow,
    ReferralRow,
)

# --- partners -------------------------------------------------------------------------------


def partner_from_row(row: PartnerRow) -> Partner:
    return Partner(
        partner_id=row.partner_id,
        display_name=row.display_name,
        endpoint=row.endpoint,
        state=PartnerState(row.state),
        policy=codec.load_policy(row.policy_json),
        decision_public_key=row.decision_public_key,
        created_at=row.created_at,
        updated_at=row.updated_at,
        suspension_reason=row.suspension_reason,
    )


def partner_row(partner: Partner) -> PartnerRow:
    return PartnerRow(
        partner_id=partner.partner_id,
        display_name=partner.display_name,
        endpoint=partner.endpoint,
        state=partner.state.value,
        policy_json=codec.dump_policy(partner.policy),
        decision_public_key=partner.decision_public_key,
        suspension_reason=partner.suspension_reason,
        created_at=partner.created_at,
        updated_at=partner.updated_at,
    )


def get_partner(session: Session, partner_id: str, *, for_update: bool = False) -> Partner | None:
    """``for_update`` locks the row (PostgreSQL) so a read-modify-write cannot lose a change
    made concurrently, such as a suspension; SQLite's write lock already serialises writers."""
    row = session.get(PartnerRow, partner_id, with_for_update=for_update)
    return partner_from_row(row) if row else None


_PARTNER_STATE = select(PartnerRow.state).where(PartnerRow.partner_id == bindparam("partner_id"))


def all_partners(session: Session) -> dict[str, Partner]:
    """Every partner, by id (a small table: one row per bank)."""
    return {row.partner_id: partner_from_row(row) for row in session.exec(select(PartnerRow))}


def partner_state(session: Session, partner_id: str) -> PartnerState | None:
    """Only the state: what a read-only call needs of its caller, without loading the row."""
    # Core, not the ORM: there is no object to build, and the ORM's per-statement work was
    # most of this lookup's cost.
    state = (
        session.connection()
        .execute(_PARTNER_STATE, {"partner_id": partner_id})
        .scalar_one_or_none()
    )
    return None if state is None else PartnerState(state)


def get_partners(session: Session, partner_ids: Sequence[str]) -> dict[str, Partner]:
    query = select(PartnerRow).where(col(PartnerRow.partner_id).in_(partner_ids))
    return {row.partner_id: partner_from_row(row) for row in session.exec(query)}


# The submission path's statements, built once: building a statement costs more than running
# it (about 300 us against 50 us here), and each is then a hit in the compiled cache.
_PARTNER_STATES_FOR_SHARE = (
    sa_select(col(PartnerRow.partner_id), col(PartnerRow.state), col(PartnerRow.updated_at))
    .where(col(PartnerRow.partner_id).in_(bindparam("partner_ids", expanding=True)))
    .order_by(col(PartnerRow.partner_id))
    .with_for_update(read=True)
)


def partner_states_for_share(
    session: Session, partner_ids: Sequence[str]
) -> dict[str, tuple[PartnerState, datetime]]:
    """The partners' states and last change times, read-locked (PostgreSQL) until the
    transaction ends: a suspension or a policy change waits for it."""
    rows = session.connection().execute(
        _PARTNER_STATES_FOR_SHARE, {"partner_ids": list(partner_ids)}
    )
    return {partner_id: (PartnerState(state), updated_at) for partner_id, state, updated_at in rows}


def save_partner(session: Session, partner: Partner) -> None:
    session.merge(partner_row(partner))


def list_partners(
    session: Session, *, after_id: str, limit: int, state: PartnerState | None
) -> list[Partner]:
    query = select(PartnerRow).where(col(PartnerRow.partner_id) > after_id)
    if state is not None:
        query = query.where(PartnerRow.state == state.value)
    rows = session.exec(query.order_by(col(PartnerRow.partner_id)).limit(limit))
    return [partner_from_row(r) for r in rows]


# --- consents -------------------------------------------------------------------------------


def consent_from_row(row: ConsentRow | Row[Any]) -> Consent:
    return Consent(
        consent_id=row.consent_id,
        platform_merchant_id=row.platform_merchant_id,
        bank_ids=tuple(json.loads(row.bank_ids_json)),
        data_scopes=frozenset(DataScope(s) for s in json.loads(row.data_scopes_json)),
        purpose=ConsentPurpose(row.purpose),
        granted_at=row.granted_at,
        expires_at=row.expires_at,
        evidence_reference=row.evidence_reference,
        revoked_at=row.revoked_at,
        revocation_reason=row.revocation_reason,
    )


def save_consent(session: Session, consent: Consent) -> None:
    session.merge(
        ConsentRow(
            consent_id=consent.consent_id,
            platform_merchant_id=consent.platform_merchant_id,
            bank_ids_json=json.dumps(list(consent.bank_ids)),
            data_scopes_json=json.dumps(sorted(s.value for s in consent.data_scopes)),
            purpose=consent.purpose.value,
            granted_at=consent.granted_at,
            expires_at=consent.expires_at,
            evidence_reference=consent.evidence_reference,
            revoked_at=consent.revoked_at,
            revocation_reason=consent.revocation_reason,
        )
    )


def get_consent(session: Session, consent_id: str, *, for_update: bool = False) -> Consent | None:
    row = session.get(ConsentRow, consent_id, with_for_update=for_update)
    return consent_from_row(row) if row else None


_CONSENT = sa_select(ConsentRow.__table__).where(  # type: ignore[attr-defined]
    col(ConsentRow.consent_id) == bindparam("consent_id")
)


def consent_by_id(connection: Connection, consent_id: str) -> Consent | None:
    """``get_consent`` in SQLAlchemy Core, for the submission path."""
    row = connection.execute(_CONSENT, {"consent_id": consent_id}).one_or_none()
    return None if row is None else consent_from_row(row)


_CONSENT_WINDOWS_FOR_SHARE = (
    sa_select(col(ConsentRow.consent_id), col(ConsentRow.expires_at), col(ConsentRow.revoked_at))
    .where(col(ConsentRow.consent_id).in_(bindparam("consent_ids", expanding=True)))
    .order_by(col(ConsentRow.consent_id))
    .with_for_update(read=True)
)


def consent_windows_for_share(
    session: Session, consent_ids: Sequence[str]
) -> dict[str, tuple[datetime, datetime | None]]:
    """Each consent's expiry and revocation times, by id, read-locked (PostgreSQL) as above."""
    rows = session.connection().execute(
        _CONSENT_WINDOWS_FOR_SHARE, {"consent_ids": list(consent_ids)}
    )
    return {consent_id: (expires_at, revoked_at) for consent_id, expires_at, revoked_at in rows}


# --- referrals and cases --------------------------------------------------------------------


def case_from_row(row: FinancingCaseRow) -> FinancingCase:
    assert row.seq is not None
    return FinancingCase(
        case_id=row.case_id,
        sequence=row.seq,
        referral_id=row.referral_id,
        bank_id=row.bank_id,
        platform_merchant_id=row.platform_merchant_id,
        consent_id=row.consent_id,
        state=FinancingState(row.state),
        envelope=SignedPayload(
            payload=row.envelope_payload,
            payload_type=row.envelope_type,
            signatures=codec.load_signatures(row.envelope_signatures_json),
        ),
        offer=codec.load_offer(row.offer_json),
        expires_at=row.expires_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        delivered_at=row.delivered_at,
        acknowledged_at=row.acknowledged_at,
        bank_reference=row.bank_reference,
        decision=codec.load_decision(row.decision_json) if row.decision_json else None,
        agreed_terms=codec.load_terms(row.agreed_terms_json) if row.agreed_terms_json else None,
        ledger=codec.load_ledger(row.ledger_json) if row.ledger_json else None,
        merchant_pseudonym=row.merchant_pseudonym,
    )


_CASES = FinancingCaseRow.__table__  # type: ignore[attr-defined]
# Any constant: the key of the advisory lock that orders referral inserts on PostgreSQL.
_CASE_SEQUENCE_LOCK = 0x636F6C656E64


_INSERT_REFERRAL = insert(ReferralRow)
_INSERT_CASE = insert(FinancingCaseRow).returning(
    _CASES.c.case_id, _CASES.c.seq, sort_by_parameter_order=True
)
_INSERT_EVENT = insert(CaseEventRow)


def lock_referral_inserts(session: Session) -> None:
    """Hold, until this transaction ends, the lock that orders referral inserts (PostgreSQL).

    Banks page by case seq. On PostgreSQL a sequence value is taken at INSERT but seen at
    COMMIT, so two overlapping inserts could commit out of order and a cursor would skip the
    lower one for good; under this lock seq order is commit order. (SQLite's single writer
    already serialises them.)"""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CASE_SEQUENCE_LOCK})


def insert_referrals(session: Session, referrals: Sequence[Referral]) -> dict[str, int]:
    """Insert referrals with their cases and each case's first event: one statement per table
    for them all, under ``lock_referral_inserts`` (the caller takes it). Returns each case's
    sequence, by case id."""
    connection = session.connection()
    connection.execute(
        _INSERT_REFERRAL,
        [
            {
                "referral_id": r.referral_id,
                "platform_merchant_id": r.platform_merchant_id,
                "consent_id": r.consent_id,
                "assessment_json": codec.dump_assessment(r.assessment),
                "state": r.state.value,
                "withdrawal_reason": r.withdrawal_reason,
                "created_at": r.created_at,
                "expires_at": r.expires_at,
            }
            for r in referrals
        ],
    )
    cases = [case for r in referrals for case in r.cases]
    sequences = connection.execute(
        _INSERT_CASE,
        [
            {
                "case_id": case.case_id,
                "referral_id": case.referral_id,
                "bank_id": case.bank_id,
                "platform_merchant_id": case.platform_merchant_id,
                "consent_id": case.consent_id,
                "state": case.state.value,
                "envelope_payload": case.envelope.payload,
                "envelope_type": case.envelope.payload_type,
                "envelope_signatures_json": codec.dump_signatures(case.envelope),
                "offer_json": codec.dump_offer(case.offer),
                "merchant_pseudonym": case.merchant_pseudonym,
                "expires_at": case.expires_at,
                "created_at": case.created_at,
                "updated_at": case.updated_at,
                "bank_reference": case.bank_reference,
                "bank_exposure_fen": 0,
            }
            for case in cases
        ],
    )
    by_case: dict[str, int] = {case_id: seq for case_id, seq in sequences}
    connection.execute(
        _INSERT_EVENT,
        [
            {
                "case_id": case.case_id,
                "sequence": 1,
                "from_state": None,
                "to_state": case.state.value,
                "recorded_at": case.created_at,
                "actor": "platform",
                "request_id": "",
                "loan_event_json": None,
                "evidence_json": None,
                "evidence_nonce": None,
            }
            for case in cases
        ],
    )
    return by_case


def _referral_from_rows(row: ReferralRow, cases: Sequence[FinancingCaseRow]) -> Referral:
    return Referral(
        referral_id=row.referral_id,
        platform_merchant_id=row.platform_merchant_id,
        consent_id=row.consent_id,
        assessment=codec.load_assessment(row.assessment_json),
        state=ReferralState(row.state),
        created_at=row.created_at,
        expires_at=row.expires_at,
        withdrawal_reason=row.withdrawal_reason,
        cases=tuple(case_from_row(c) for c in sorted(cases, key=lambda c: c.seq or 0)),
    )


def get_referral(session: Session, referral_id: str) -> Referral | None:
    row = session.exec(select(ReferralRow).where(ReferralRow.referral_id == referral_id)).first()
    if row is None:
        return None
    cases = session.exec(
        select(FinancingCaseRow).where(FinancingCaseRow.referral_id == referral_id)
    ).all()
    return _referral_from_rows(row, cases)


def list_referrals(
    session: Session,
    *,
    before_seq: int | None,
    limit: int,
    merchant_id: str,
    state: ReferralState | None,
) -> list[tuple[int, Referral]]:
    """Newest first, strictly before ``before_seq``; returns (seq, referral) pairs."""
    query = select(ReferralRow)
    if before_seq is not None:
        query = query.where(col(ReferralRow.seq) < before_seq)
    if merchant_id:
        query = query.where(ReferralRow.platform_merchant_id == merchant_id)
    if state is not None:
        query = query.where(ReferralRow.state == state.value)
    rows = session.exec(query.order_by(col(ReferralRow.seq).desc()).limit(limit)).all()
    if not rows:
        return []
    case_rows = session.exec(
        select(FinancingCaseRow).where(
            col(FinancingCaseRow.referral_id).in_([r.referral_id for r in rows])
        )
    ).all()
    by_referral: dict[str, list[FinancingCaseRow]] = {}
    for c in case_rows:
        by_referral.setdefault(c.referral_id, []).append(c)
    result = []
    for row in rows:
        assert row.seq is not None
        result.append((row.seq, _referral_from_rows(row, by_referral.get(row.referral_id, []))))
    return result


def mark_referral_withdrawn(session: Session, referral_id: str, reason: str) -> None:
    session.execute(
        update(ReferralRow)
        .where(col(ReferralRow.referral_id) == referral_id)
        .values(state=ReferralState.WITHDRAWN.value, withdrawal_reason=reason)
    )


def get_case(session: Session, case_id: str, *, for_update: bool = False) -> FinancingCase | None:
    query = select(FinancingCaseRow).where(FinancingCaseRow.case_id == case_id)
    if for_update:
        query = query.with_for_update()
    row = session.exec(query).first()
    return case_from_row(row) if row else None


def pending_cases_for_bank(
    session: Session,
    *,
    bank_id: str,
    after_seq: int,
    limit: int,
    now: datetime,
    lock: bool = True,
) -> list[FinancingCase]:
    """Cases the bank has still to acknowledge, after a cursor, whose consent is still live."""
    query = (
        select(FinancingCaseRow)
        .join(ConsentRow, col(ConsentRow.consent_id) == col(FinancingCaseRow.consent_id))
        .where(
            FinancingCaseRow.bank_id == bank_id,
            col(FinancingCaseRow.seq) > after_seq,
            col(FinancingCaseRow.state).in_([s.value for s in AWAITING_BANK]),
            col(FinancingCaseRow.expires_at) > now,
            col(ConsentRow.revoked_at).is_(None),
            col(ConsentRow.expires_at) > now,
        )
        .order_by(col(FinancingCaseRow.seq))
        .limit(limit)
    )
    if lock:
        # A second poller of the same bank waits, then sees the rows as the first left them
        # (delivered, still unacknowledged): at least once, and never skipped.
        query = query.with_for_update(of=FinancingCaseRow)
    return [case_from_row(r) for r in session.exec(query)]


def list_cases(
    session: Session,
    *,
    bank_id: str,
    after_seq: int,
    limit: int,
    state: FinancingState | None,
    merchant_id: str,
) -> list[FinancingCase]:
    query = select(FinancingCaseRow).where(
        FinancingCaseRow.bank_id == bank_id, col(FinancingCaseRow.seq) > after_seq
    )
    if state is not None:
        query = query.where(FinancingCaseRow.state == state.value)
    if merchant_id:
        query = query.where(FinancingCaseRow.platform_merchant_id == merchant_id)
    rows = session.exec(query.order_by(col(FinancingCaseRow.seq)).limit(limit))
    return [case_from_row(r) for r in rows]


def committed_exposure(session: Session, bank_id: str) -> int:
    """The bank's share of principal on its approved, accepted and disbursed open cases."""
    total = session.exec(
        select(func.coalesce(func.sum(FinancingCaseRow.bank_exposure_fen), 0)).where(
            FinancingCaseRow.bank_id == bank_id,
            col(FinancingCaseRow.state).in_([s.value for s in COMMITTED]),
        )
    ).one()
    return int(total)


def case_figures(session: Session, *, bank_id: str) -> list[CaseFigures]:
    """The columns portfolio statistics need, for one bank or (empty id) every bank."""
    # Plain SQLAlchemy: SQLModel's typed select() stops at four columns.
    query = sa_select(
        col(FinancingCaseRow.bank_id),
        col(FinancingCaseRow.state),
        col(FinancingCaseRow.decision_json),
        col(FinancingCaseRow.agreed_terms_json),
        col(FinancingCaseRow.ledger_json),
    )
    if bank_id:
        query = query.where(col(FinancingCaseRow.bank_id) == bank_id)
    return [
        CaseFigures(
            bank_id=bank,
            state=FinancingState(state),
            decided=decision is not None,
            agreed=agreed is not None,
            ledger=codec.load_ledger(ledger) if ledger else None,
        )
        for bank, state, decision, agreed, ledger in session.execute(query)
    ]


def open_loans(
    session: Session, *, states: frozenset[FinancingState], after_seq: int, limit: int
) -> list[FinancingCase]:
    """Cases in ``states`` with agreed terms, by sequence (the arrears sweep pages through)."""
    query = (
        select(FinancingCaseRow)
        .where(
            col(FinancingCaseRow.state).in_([s.value for s in states]),
            col(FinancingCaseRow.agreed_terms_json).is_not(None),
            col(FinancingCaseRow.seq) > after_seq,
        )
        .order_by(col(FinancingCaseRow.seq))
        .limit(limit)
    )
    return [case_from_row(r) for r in session.exec(query)]


def due_for_expiry(
    session: Session, *, states: frozenset[FinancingState], now: datetime, limit: int
) -> list[FinancingCase]:
    query = (
        select(FinancingCaseRow)
        .where(
            col(FinancingCaseRow.state).in_([s.value for s in states]),
            col(FinancingCaseRow.expires_at) <= now,
        )
        .order_by(col(FinancingCaseRow.seq))
        .limit(limit)
    )
    return [case_from_row(r) for r in session.exec(query)]


def update_case(
    session: Session,
    case: FinancingCase,
    *,
    to_state: FinancingState,
    at: datetime,
    actor: str,
    request_id: str,
    loan_event: LoanEvent | None = None,
    evidence: Evidence | None = None,
    **values: object,
) -> None:
    """Move one case, guarded on its current state so a concurrent move cannot be lost."""
    result = session.execute(
        update(FinancingCaseRow)
        .where(
            col(FinancingCaseRow.case_id) == case.case_id,
            col(FinancingCaseRow.state) == case.state.value,
        )
        .values(state=to_state.value, updated_at=at, **values)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise ConcurrentUpdate(case.case_id)
    add_case_event(
        session,
        case_id=case.case_id,
        sequence=_next_event_sequence(session, case.case_id),
        from_state=case.state,
        to_state=to_state,
        at=at,
        actor=actor,
        request_id=request_id,
        loan_event=loan_event,
        evidence=evidence,
    )


class ConcurrentUpdate(Exception):
    """Another transaction changed the case first; the caller retries from a fresh read."""


def _next_event_sequence(session: Session, case_id: str) -> int:
    last = session.exec(
        select(CaseEventRow.sequence)
        .where(CaseEventRow.case_id == case_id)
        .order_by(col(CaseEventRow.sequence).desc())
        .limit(1)
    ).first()
    return (last or 0) + 1


def add_case_event(
    session: Session,
    *,
    case_id: str,
    sequence: int,
    from_state: FinancingState | None,
    to_state: FinancingState,
    at: datetime,
    actor: str,
    request_id: str,
    loan_event: LoanEvent | None = None,
    evidence: Evidence | None = None,
) -> None:
    session.add(
        CaseEventRow(
            case_id=case_id,
            sequence=sequence,
            from_state=from_state.value if from_state else None,
            to_state=to_state.value,
            recorded_at=at,
            actor=actor,
            request_id=request_id,
            loan_event_json=codec.dump_loan_event(loan_event) if loan_event else None,
            evidence_json=codec.dump_evidence(evidence) if evidence else None,
            evidence_nonce=evidence.nonce.hex() if evidence else None,
        )
    )


def find_nonce_use(session: Session, *, bank_id: str, nonce: bytes) -> str | None:
    """The case on which this bank already used this nonce, if it did."""
    return session.exec(
        select(CaseEventRow.case_id).where(
            CaseEventRow.actor == f"partner/{bank_id}",
            CaseEventRow.evidence_nonce == nonce.hex(),
        )
    ).first()


def case_history(session: Session, case_id: str) -> list[CaseEvent]:
    rows = session.exec(
        select(CaseEventRow)
        .where(CaseEventRow.case_id == case_id)
        .order_by(col(CaseEventRow.sequence))
    )
    return [
        CaseEvent(
            sequence=r.sequence,
            from_state=FinancingState(r.from_state) if r.from_state else None,
            to_state=FinancingState(r.to_state),
            recorded_at=r.recorded_at,
            actor=r.actor,
            request_id=r.request_id,
            loan_event=codec.load_loan_event(r.loan_event_json) if r.loan_event_json else None,
            evidence=codec.load_evidence(r.evidence_json, nonce=bytes.fromhex(r.evidence_nonce))
            if r.evidence_json and r.evidence_nonce
            else None,
        )
        for r in rows
    ]


# --- idempotency ----------------------------------------------------------------------------


def find_idempotency(
    session: Session, *, caller: str, method: str, request_id: str
) -> IdempotencyRow | None:
    return session.get(IdempotencyRow, (caller, method, request_id))


def claim_idempotency(
    session: Session,
    *,
    caller: str,
    method: str,
    request_id: str,
    fingerprint: str,
    at: datetime,
) -> IdempotencyRow:
    """Insert the key now (flushed), so a concurrent twin blocks on it and then replays."""
    row = IdempotencyRow(
        caller=caller,
        method=method,
        request_id=request_id,
        fingerprint=fingerprint,
        resource_id="",
        created_at=at,
    )
    session.add(row)
    session.flush()
    return row


def _claim(dialect_insert: Any) -> Any:
    keys = _IDEMPOTENCY.c
    return (
        dialect_insert(IdempotencyRow)
        .values({name: bindparam(name) for name in _CLAIM_COLUMNS})
        .on_conflict_do_nothing()
        .returning(keys.caller, keys.method, keys.request_id)
    )


_IDEMPOTENCY = IdempotencyRow.__table__  # type: ignore[attr-defined]
_CLAIM_COLUMNS = ("caller", "method", "request_id", "fingerprint", "resource_id", "created_at")
_CLAIMS = {"sqlite": _claim(sqlite.insert), "postgresql": _claim(postgresql.insert)}


def claim_idempotency_keys(
    session: Session, claims: Sequence[dict[str, Any]]
) -> set[tuple[str, str, str]]:
    """Insert the keys (``_CLAIM_COLUMNS`` each) not there already, in one statement; returns
    the (caller, method, request_id) of those inserted. Those left out are repeats. On
    PostgreSQL a twin still in flight is waited for: its commit makes this one a repeat, its
    rollback leaves the key to this one."""
    if not claims:
        return set()
    connection = session.connection()
    rows = connection.execute(_CLAIMS[connection.dialect.name], list(claims))
    return {(caller, method, request_id) for caller, method, request_id in rows}


def lock_name(session: Session, name: str) -> None:
    """Hold a lock named ``name`` across replicas until this transaction ends (PostgreSQL; SQLite
    serialises every writer already)."""
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.sha256(name.encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
