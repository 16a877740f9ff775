"""SQLModel tables. Ids are strings; ``seq`` integer keys give stable, gap-tolerant paging."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

# BIGINT on PostgreSQL, but INTEGER on SQLite, where only "INTEGER PRIMARY KEY" autoincrements.
SEQ = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both SQLite (which drops the zone) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime reached the database")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _time(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class PartnerRow(SQLModel, table=True):
    __tablename__ = "partners"

    partner_id: str = Field(primary_key=True, max_length=40)
    display_name: str = Field(max_length=200)
    endpoint: str = Field(default="", max_length=300)
    state: str = Field(max_length=16, index=True)
    policy_json: str = Field(sa_column=Column(Text, nullable=False))
    decision_public_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    suspension_reason: str = Field(default="", max_length=500)
    created_at: datetime = _time()
    updated_at: datetime = _time()


class ConsentRow(SQLModel, table=True):
    __tablename__ = "consents"

    consent_id: str = Field(primary_key=True, max_length=40)
    platform_merchant_id: str = Field(max_length=64, index=True)
    bank_ids_json: str = Field(sa_column=Column(Text, nullable=False))
    data_scopes_json: str = Field(sa_column=Column(Text, nullable=False))
    purpose: str = Field(max_length=32)
    granted_at: datetime = _time()
    expires_at: datetime = _time()
    evidence_reference: str = Field(max_length=256)
    revoked_at: datetime | None = _time(nullable=True)
    revocation_reason: str = Field(default="", max_length=500)


class ReferralRow(SQLModel, table=True):
    __tablename__ = "referrals"

    seq: int | None = Field(default=None, sa_column=Column(SEQ, primary_key=True))
    referral_id: str = Field(max_length=40, unique=True)
    platform_merchant_id: str = Field(max_length=64, index=True)
    consent_id: str = Field(max_length=40, index=True)
    assessment_json: str = Field(sa_column=Column(Text, nullable=False))
    state: str = Field(max_length=16)
    withdrawal_reason: str = Field(default="", max_length=500)
    created_at: datetime = _time()
    expires_at: datetime = _time()


class FinancingCaseRow(SQLModel, table=True):
    __tablename__ = "financing_cases"

    # The bank's cursor position: PullReferrals pages by (bank_id, seq).
    seq: int | None = Field(default=None, sa_column=Column(SEQ, primary_key=True))
    case_id: str = Field(max_length=40, unique=True)
    referral_id: str = Field(max_length=40, index=True)
    bank_id: str = Field(max_length=40, index=True)
    platform_merchant_id: str = Field(max_length=64, index=True)
    consent_id: str = Field(max_length=40)
    state: str = Field(max_length=24, index=True)
    envelope_payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    envelope_type: str = Field(max_length=100)
    envelope_signatures_json: str = Field(sa_column=Column(Text, nullable=False))
    offer_json: str = Field(sa_column=Column(Text, nullable=False))
    expires_at: datetime = _time()
    created_at: datetime = _time()
    updated_at: datetime = _time()
    delivered_at: datetime | None = _time(nullable=True)
    acknowledged_at: datetime | None = _time(nullable=True)
    bank_reference: str = Field(default="", max_length=128)
    decision_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    agreed_terms_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The bank's share of the agreed principal while the case is open: summed for its cap.
    bank_exposure_fen: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    ledger_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # HMAC pseudonym of the merchant's credit code: links blacklist entries to cases and stores.
    merchant_pseudonym: bytes = Field(sa_column=Column(LargeBinary, nullable=False, index=True))


class CaseEventRow(SQLModel, table=True):
    __tablename__ = "case_events"
    # A bank's nonce is used once, ever: the unique index is what refuses a replay that races.
    __table_args__ = (
        Index("ux_case_events_actor_evidence_nonce", "actor", "evidence_nonce", unique=True),
    )

    id: int | None = Field(default=None, sa_column=Column(SEQ, primary_key=True))
    case_id: str = Field(max_length=40, index=True)
    sequence: int
    from_state: str | None = Field(default=None, max_length=24)
    to_state: str = Field(max_length=24)
    recorded_at: datetime = _time()
    actor: str = Field(max_length=80)
    request_id: str = Field(default="", max_length=128)
    loan_event_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The bank's signed statement, as received (see gateway/evidence.py), and its nonce in hex.
    evidence_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    evidence_nonce: str | None = Field(default=None, max_length=128)


class IdempotencyRow(SQLModel, table=True):
    """One row per (caller, method, request_id): the fingerprint of the first request and the
    resource it produced, written in the same transaction as the effect."""

    __tablename__ = "idempotency_keys"

    caller: str = Field(primary_key=True, max_length=80)
    method: str = Field(primary_key=True, max_length=64)
    request_id: str = Field(primary_key=True, max_length=128)
    fingerprint: str = Field(max_length=64)
    resource_id: str = Field(max_length=64)
    created_at: datetime = _time()


class LogNodeRow(SQLModel, table=True):
    """One complete-subtree hash of the blacklist log's Merkle tree (level 0: leaf hashes)."""

    __tablename__ = "log_nodes"

    level: int = Field(primary_key=True)
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class BlacklistEntryRow(SQLModel, table=True):
    """An entry's current state; its history is in ``blacklist_changes``."""

    __tablename__ = "blacklist_entries"
    # Checks look up pseudonyms among entries in force: one index answers both conditions,
    # so the planner is never tempted by the (unselective) status index alone.
    __table_args__ = (Index("ix_blacklist_entries_pseudonym_status", "pseudonym", "status"),)

    entry_id: str = Field(primary_key=True, max_length=40)
    pseudonym: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    identifier_kind: str = Field(max_length=8)
    reporter_bank_id: str = Field(max_length=40, index=True)
    reason: str = Field(max_length=24)
    outstanding_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    default_date: date = Field(sa_column=Column(Date, nullable=False))
    evidence_case_id: str = Field(default="", max_length=40, index=True)
    reported_at: datetime = _time()
    expires_at: datetime | None = _time(nullable=True, index=True)
    status: str = Field(max_length=16, index=True)
    appeal_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Set while an appeal is open: the sweep finds lapsed appeals by it.
    appeal_deadline: datetime | None = _time(nullable=True, index=True)
    removal_reason: str = Field(default="", max_length=2100)
    updated_at: datetime = _time()


class BlacklistChangeRow(SQLModel, table=True):
    """One leaf of the blacklist log, the exact bytes hashed into ``log_nodes`` level 0."""

    __tablename__ = "blacklist_changes"

    log_index: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    entry_id: str = Field(max_length=40, index=True)
    change_type: str = Field(max_length=16)
    leaf: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    logged_at: datetime = _time()


class EnforcementEventRow(SQLModel, table=True):
    """The platform's feed of store restrictions; ``seq`` is the feed cursor."""

    __tablename__ = "enforcement_events"

    seq: int | None = Field(default=None, sa_column=Column(SEQ, primary_key=True))
    event_id: str = Field(max_length=40, unique=True)
    platform_merchant_id: str = Field(max_length=64, index=True)
    action: str = Field(max_length=24)
    reason: str = Field(max_length=300)
    blacklist_entry_id: str = Field(max_length=40, index=True)
    case_id: str = Field(default="", max_length=40)
    created_at: datetime = _time()


class DeliveryTaskRow(SQLModel, table=True):
    """The outbox: one push of one referral to one bank, written with the referral."""

    __tablename__ = "delivery_tasks"

    seq: int | None = Field(default=None, sa_column=Column(SEQ, primary_key=True))
    task_id: str = Field(max_length=40, unique=True)
    referral_id: str = Field(max_length=40, index=True)
    # The case pushed, or the alert for kind "alert" (see domain.delivery.DeliveryTask).
    case_id: str = Field(max_length=40, unique=True)
    kind: str = Field(default="referral", max_length=16)
    bank_id: str = Field(max_length=40, index=True)
    endpoint: str = Field(max_length=300)
    ordered: bool = Field(default=False)
    state: str = Field(max_length=16, index=True)
    attempt_count: int = Field(default=0)
    next_attempt_at: datetime = _time(index=True)
    lease_until: datetime | None = _time(nullable=True)
    leased_by: str = Field(default="", max_length=64)
    created_at: datetime = _time()
    delivered_at: datetime | None = _time(nullable=True)
    bank_reference: str = Field(default="", max_length=128)
    last_error: str = Field(default="", max_length=400)


class DeliveryAttemptRow(SQLModel, table=True):
    __tablename__ = "delivery_attempts"

    id: int | None = Field(default=None, sa_column=Column(SEQ, primary_key=True))
    task_id: str = Field(max_length=40, index=True)
    attempt: int
    started_at: datetime = _time()
    outcome: str = Field(max_length=16)
    status_code: str = Field(max_length=32)
    latency_micros: int = Field(sa_column=Column(BigInteger, nullable=False))
    detail: str = Field(default="", max_length=300)


class TradeSnapshotRow(SQLModel, table=True):
    """The platform's post-loan trade snapshots, kept as the evidence behind each alert."""

    __tablename__ = "trade_snapshots"
    __table_args__ = (Index("ix_trade_snapshots_merchant_as_of", "platform_merchant_id", "as_of"),)

    seq: int | None = Field(default=None, sa_column=Column(SEQ, primary_key=True))
    snapshot_id: str = Field(max_length=40, unique=True)
    platform_merchant_id: str = Field(max_length=64)
    consent_id: str = Field(max_length=40)
    # The banks lending to the merchant when it arrived: the ones it was checked for.
    bank_ids_json: str = Field(sa_column=Column(Text, nullable=False))
    as_of: date = Field(sa_column=Column(Date, nullable=False))
    reputation_json: str = Field(sa_column=Column(Text, nullable=False))
    store_restricted: bool = Field(default=False)
    created_at: datetime = _time()


class AlertRow(SQLModel, table=True):
    """Signed early-warning alerts; a bank pages through its own by ``seq``."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_bank_seq", "bank_id", "seq"),)

    seq: int | None = Field(default=None, sa_column=Column(SEQ, primary_key=True))
    alert_id: str = Field(max_length=40, unique=True)
    bank_id: str = Field(max_length=40)
    platform_merchant_id: str = Field(max_length=64, index=True)
    snapshot_id: str = Field(max_length=40, index=True)
    severity: str = Field(max_length=16)
    envelope_payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    envelope_type: str = Field(max_length=100)
    envelope_signatures_json: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = _time()
    expires_at: datetime = _time()


class OrderBatchRow(SQLModel, table=True):
    """Batches of pending orders offered to the bank of an ORDER_LOAN case."""

    __tablename__ = "order_batches"
    __table_args__ = (Index("ix_order_batches_bank_seq", "bank_id", "seq"),)

    seq: int | None = Field(default=None, sa_column=Column(SEQ, primary_key=True))
    batch_id: str = Field(max_length=40, unique=True)
    case_id: str = Field(max_length=40, index=True)
    bank_id: str = Field(max_length=40)
    platform_merchant_id: str = Field(max_length=64)
    consent_id: str = Field(max_length=40)
    state: str = Field(max_length=16, index=True)
    decline_codes_json: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = _time()
    expires_at: datetime = _time()
    decided_at: datetime | None = _time(nullable=True)


class FinancedOrderRow(SQLModel, table=True):
    """One order of a batch. ``claim_key`` ("merchant/order") is unique while the order holds
    its id, and NULL once its batch is declined or expires, so the database itself refuses an
    order financed twice, even by two batches racing at two banks."""

    __tablename__ = "financed_orders"
    __table_args__ = (
        Index("ix_financed_orders_batch_position", "batch_id", "position", unique=True),
        Index("ix_financed_orders_state_settle", "state", "expected_settlement_date"),
    )

    seq: int | None = Field(default=None, sa_column=Column(SEQ, primary_key=True))
    batch_id: str = Field(max_length=40)
    position: int
    case_id: str = Field(max_length=40, index=True)
    platform_merchant_id: str = Field(max_length=64, index=True)
    order_id: str = Field(max_length=64)
    claim_key: str | None = Field(default=None, max_length=130, unique=True, nullable=True)
    order_value_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    advance_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    expected_settlement_date: date = Field(sa_column=Column(Date, nullable=False))
    state: str = Field(max_length=16)
    overdue_reason: str | None = Field(default=None, max_length=24, nullable=True)
    advance_outstanding_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    sweep_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class ReconciliationStatementRow(SQLModel, table=True):
    """Signed day statements between a bank and the platform: one per bank and business date,
    made once; the latest date per bank is where its books are closed."""

    __tablename__ = "reconciliation_statements"
    __table_args__ = (
        Index("ux_reconciliation_statements_bank_date", "bank_id", "business_date", unique=True),
    )

    seq: int | None = Field(default=None, sa_column=Column(SEQ, primary_key=True))
    statement_id: str = Field(max_length=40, unique=True)
    bank_id: str = Field(max_length=40)
    business_date: date = Field(sa_column=Column(Date, nullable=False))
    envelope_payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    envelope_type: str = Field(max_length=100)
    envelope_signatures_json: str = Field(sa_column=Column(Text, nullable=False))
    line_count: int
    created_at: datetime = _time()


class ReconciliationDisputeRow(SQLModel, table=True):
    """A bank's dispute of one line of a statement, and how the platform or operator resolved
    it. At most one open dispute per statement line (``open_key`` is set only while open)."""

    __tablename__ = "reconciliation_disputes"
    __table_args__ = (
        Index("ix_reconciliation_disputes_bank", "bank_id", "seq"),
        Index("ux_reconciliation_disputes_open", "open_key", unique=True),
    )

    seq: int | None = Field(default=None, sa_column=Column(SEQ, primary_key=True))
    dispute_id: str = Field(max_length=40, unique=True)
    statement_id: str = Field(max_length=40)
    bank_id: str = Field(max_length=40)
    business_date: date = Field(sa_column=Column(Date, nullable=False))
    case_id: str = Field(max_length=40)
    disputed_fields_json: str = Field(sa_column=Column(Text, nullable=False))
    reason: str = Field(sa_column=Column(Text, nullable=False))
    state: str = Field(max_length=16)
    open_key: str | None = Field(default=None, max_length=100)
    filed_by: str = Field(max_length=60)
    filed_at: datetime = _time()
    resolution_note: str = Field(default="", sa_column=Column(Text, nullable=False))
    resolved_by: str = Field(default="", max_length=60)
    resolved_at: datetime | None = _time(nullable=True)
