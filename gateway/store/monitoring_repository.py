"""Rows and queries of post-loan monitoring: trade snapshots and the alerts they raise."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import func, text
from sqlmodel import Session, col, select

from gateway.domain.financing import COMMITTED
from gateway.domain.monitoring import Alert, Severity, StoredSnapshot, TradeSnapshot
from gateway.domain.referral import FinancingCase, SignedPayload
from gateway.store import codec
from gateway.store.repository import case_from_row
from gateway.store.tables import AlertRow, ConsentRow, FinancingCaseRow, TradeSnapshotRow

# Any constant (not the case lock's): orders alert inserts on PostgreSQL, see insert_alerts.
_ALERT_SEQUENCE_LOCK = 0x616C65727473


def lending_cases(session: Session, merchant_id: str) -> list[FinancingCase]:
    """The merchant's cases on which a bank has committed money: the ones monitoring serves."""
    rows = session.exec(
        select(FinancingCaseRow)
        .where(FinancingCaseRow.platform_merchant_id == merchant_id)
        .where(col(FinancingCaseRow.state).in_([s.value for s in COMMITTED]))
        .order_by(col(FinancingCaseRow.seq))
    ).all()
    return [case_from_row(r) for r in rows]


def latest_snapshot_date(session: Session, merchant_id: str) -> date | None:
    latest: date | None = session.exec(
        select(func.max(TradeSnapshotRow.as_of)).where(
            TradeSnapshotRow.platform_merchant_id == merchant_id
        )
    ).one()
    return latest


def insert_snapshot(session: Session, stored: StoredSnapshot) -> None:
    snapshot = stored.snapshot
    assert snapshot.as_of is not None
    session.add(
        TradeSnapshotRow(
            snapshot_id=stored.snapshot_id,
            platform_merchant_id=snapshot.platform_merchant_id,
            consent_id=stored.consent_id,
            bank_ids_json=json.dumps(list(stored.bank_ids)),
            as_of=snapshot.as_of,
            reputation_json=codec.dump_reputation(snapshot.reputation),
            store_restricted=snapshot.store_restricted,
            created_at=stored.created_at,
        )
    )


def get_snapshot(session: Session, snapshot_id: str) -> StoredSnapshot | None:
    row = session.exec(
        select(TradeSnapshotRow).where(TradeSnapshotRow.snapshot_id == snapshot_id)
    ).first()
    if row is None:
        return None
    return StoredSnapshot(
        snapshot_id=row.snapshot_id,
        consent_id=row.consent_id,
        bank_ids=tuple(json.loads(row.bank_ids_json)),
        snapshot=TradeSnapshot(
            platform_merchant_id=row.platform_merchant_id,
            as_of=row.as_of,
            reputation=codec.load_reputation(row.reputation_json),
            store_restricted=row.store_restricted,
        ),
        created_at=row.created_at,
    )


def insert_alerts(session: Session, alerts: Sequence[Alert]) -> None:
    # Banks page by seq; as for cases (repository.lock_referral_inserts), the lock makes seq order
    # commit order on PostgreSQL, so a cursor never skips an alert committed late.
    if alerts and session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ALERT_SEQUENCE_LOCK})
    for alert in alerts:
        session.add(
            AlertRow(
                alert_id=alert.alert_id,
                bank_id=alert.bank_id,
                platform_merchant_id=alert.platform_merchant_id,
                snapshot_id=alert.snapshot_id,
                severity=alert.severity.name,
                envelope_payload=alert.envelope.payload,
                envelope_type=alert.envelope.payload_type,
                envelope_signatures_json=codec.dump_signatures(alert.envelope),
                created_at=alert.created_at,
                expires_at=alert.expires_at,
            )
        )


def _alert_from_row(row: AlertRow) -> Alert:
    assert row.seq is not None
    return Alert(
        alert_id=row.alert_id,
        sequence=row.seq,
        bank_id=row.bank_id,
        platform_merchant_id=row.platform_merchant_id,
        snapshot_id=row.snapshot_id,
        severity=Severity[row.severity],
        envelope=SignedPayload(
            payload=row.envelope_payload,
            payload_type=row.envelope_type,
            signatures=codec.load_signatures(row.envelope_signatures_json),
        ),
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


def get_alert(session: Session, alert_id: str) -> Alert | None:
    row = session.exec(select(AlertRow).where(AlertRow.alert_id == alert_id)).first()
    return _alert_from_row(row) if row is not None else None


def alerts_for_snapshot(session: Session, snapshot_id: str) -> list[Alert]:
    rows = session.exec(
        select(AlertRow).where(AlertRow.snapshot_id == snapshot_id).order_by(col(AlertRow.seq))
    ).all()
    return [_alert_from_row(r) for r in rows]


def alerts_for_bank(
    session: Session, *, bank_id: str, after_seq: int, limit: int, now: datetime
) -> list[Alert]:
    """The bank's alerts after ``after_seq`` still in force at ``now``: not expired, and under a
    consent still ACTIVE (the outbox cancels the push of any other, so pulls skip them too)."""
    rows = session.exec(
        select(AlertRow)
        .join(TradeSnapshotRow, col(TradeSnapshotRow.snapshot_id) == col(AlertRow.snapshot_id))
        .join(ConsentRow, col(ConsentRow.consent_id) == col(TradeSnapshotRow.consent_id))
        .where(AlertRow.bank_id == bank_id)
        .where(col(AlertRow.seq) > after_seq)
        .where(col(AlertRow.expires_at) > now)
        .where(col(ConsentRow.revoked_at).is_(None))
        .where(col(ConsentRow.expires_at) > now)
        .order_by(col(AlertRow.seq))
        .limit(limit)
    ).all()
    return [_alert_from_row(r) for r in rows]
