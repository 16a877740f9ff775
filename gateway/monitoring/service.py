"""Post-loan monitoring: the platform's trade snapshot of a borrower checked against its
MONITORING consent, turned into early-warning signals under each lending bank's thresholds,
signed per bank as a DSSE alert and stored with the snapshot and its pushes (the outbox, for
banks with a receiver endpoint) in one transaction; banks also pull and stream their alerts.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlmodel import Session

from colending_core import ALERT_PAYLOAD_TYPE
from gateway._transactions import (
    Idempotency,
    Transactions,
    business_date,
    raise_all,
    replayed_in,
    require_active_caller,
    utc_now,
)
from gateway.blacklist.service import BlacklistNetwork
from gateway.delivery.dispatcher import Dispatcher
from gateway.domain import paging
from gateway.domain.consent import ConsentPurpose, ConsentState, coverage_problems
from gateway.domain.delivery import DeliveryKind, DeliveryState, DeliveryTask
from gateway.domain.ids import new_id
from gateway.domain.merchant import DataScope
from gateway.domain.monitoring import (
    Alert,
    AlertPayload,
    StoredSnapshot,
    TradeSnapshot,
    alert_severity,
    early_warning_signals,
    snapshot_problems,
)
from gateway.domain.partner import PartnerState
from gateway.domain.referral import NONCE_BYTES, SignedPayload
from gateway.errors import (
    FailedPrecondition,
    FieldViolation,
    NotFound,
    PreconditionViolation,
    Unavailable,
)
from gateway.signing.keyring import KeyRing
from gateway.store import delivery_repository as outbox
from gateway.store import monitoring_repository as monitoring_repo
from gateway.store import repository as repo
from gateway.store.db import Database


class AlertEncoder(Protocol):
    def __call__(self, payload: AlertPayload, /) -> bytes: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotOutcome:
    """What a snapshot raised: the banks it was checked for and the alerts some of them got."""

    snapshot_id: str
    bank_ids: tuple[str, ...]
    alerts: tuple[Alert, ...]


class Monitoring:
    def __init__(
        self,
        *,
        database: Database,
        keyring: KeyRing,
        encode_alert: AlertEncoder,
        blacklist: BlacklistNetwork,
        clock: Callable[[], datetime] = utc_now,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        self._db = database
        self._dispatcher = dispatcher
        self._keyring = keyring
        self._encode_alert = encode_alert
        self._blacklist = blacklist
        self._clock = clock
        self._tx = Transactions(database=database, clock=clock)
        # Wakes local alert streams once a snapshot's alerts commit.
        self._alerts_written = threading.Condition()

    def submit_trade_snapshot(
        self,
        *,
        idem: Idempotency,
        consent_id: str,
        snapshot: TradeSnapshot,
        shape_problems: Sequence[FieldViolation] = (),
    ) -> SnapshotOutcome:
        now = self._clock()
        merchant_id = snapshot.platform_merchant_id
        with self._db.reading() as session:
            if (earlier := replayed_in(session, idem, _load_outcome)) is not None:
                return earlier
            problems = snapshot_problems(
                snapshot, today=business_date(now), field_prefix="snapshot"
            )
            if not consent_id:
                problems.append(FieldViolation("consent_id", "required"))
            raise_all(shape_problems, problems)
            consent = repo.get_consent(session, consent_id)
            cases = monitoring_repo.lending_cases(session, merchant_id)
            # A suspended bank gets nothing, as for referrals (its alerts would only be held).
            partners = {
                bank_id: partner
                for bank_id, partner in repo.get_partners(
                    session, sorted({c.bank_id for c in cases})
                ).items()
                if partner.state is PartnerState.ACTIVE
            }
            latest = monitoring_repo.latest_snapshot_date(session, merchant_id)
            listed = {
                entry.entry_id: entry
                for pseudonym in {c.merchant_pseudonym for c in cases}
                for entry in self._blacklist.in_force_in(session, pseudonym)
            }
        if consent is None:
            raise NotFound("consent", consent_id)
        assert snapshot.as_of is not None
        as_of = snapshot.as_of

        bank_ids = tuple(partners)
        suspended = {c.bank_id for c in cases} - set(partners)
        refusals: list[PreconditionViolation] = []
        if not cases:
            refusals.append(
                PreconditionViolation(
                    "NO_OPEN_CASE",
                    f"merchants/{merchant_id}",
                    "the merchant has no loan with a partner bank (no case approved, accepted, "
                    "disbursed, repaying, overdue or defaulted) to monitor",
                )
            )
        for bank_id in bank_ids:
            refusals += coverage_problems(
                consent,
                merchant_id=merchant_id,
                bank_id=bank_id,
                now=now,
                purpose=ConsentPurpose.MONITORING,
            )
        if DataScope.TRANSACTION_REPUTATION not in consent.data_scopes:
            refusals.append(
                PreconditionViolation(
                    "CONSENT_SCOPE",
                    f"consents/{consent_id}",
                    "consent does not cover TRANSACTION_REPUTATION, which a snapshot shares",
                )
            )
        if latest is not None and snapshot.as_of < latest:
            refusals.append(
                PreconditionViolation(
                    "SNAPSHOT_OUT_OF_ORDER",
                    "snapshot.as_of",
                    f"the merchant already has a snapshot as of {latest.isoformat()}; "
                    f"{snapshot.as_of.isoformat()} is older",
                )
            )
        if refusals:
            unique = list(dict.fromkeys(refusals))
            raise FailedPrecondition(
                unique,
                message="snapshot refused: "
                + "; ".join(f"{r.subject}: {r.description}" for r in unique),
            )

        # Rules and signatures outside the write transaction, as for referrals.
        snapshot_id = new_id("snap")
        alerts = []
        for bank_id in bank_ids:
            policy = partners[bank_id].policy
            signals = early_warning_signals(
                snapshot,
                policy.monitoring,
                defaults_elsewhere=sum(e.reporter_bank_id != bank_id for e in listed.values()),
            )
            if not signals:
                continue
            payload = AlertPayload(
                alert_id=new_id("alert"),
                bank_id=bank_id,
                case_ids=tuple(c.case_id for c in cases if c.bank_id == bank_id),
                platform_merchant_id=merchant_id,
                snapshot_id=snapshot_id,
                snapshot_as_of=snapshot.as_of,
                severity=alert_severity(signals),
                signals=tuple(signals),
                issued_at=now,
                expires_at=now + timedelta(days=policy.referral_ttl_days),
                nonce=secrets.token_bytes(NONCE_BYTES),
            )
            envelope = self._keyring.sign(
                self._encode_alert(payload), payload_type=ALERT_PAYLOAD_TYPE
            )
            alerts.append(
                Alert(
                    alert_id=payload.alert_id,
                    sequence=0,  # assigned by the database
                    bank_id=bank_id,
                    platform_merchant_id=merchant_id,
                    snapshot_id=snapshot_id,
                    severity=payload.severity,
                    envelope=SignedPayload(
                        payload=envelope.payload,
                        payload_type=envelope.payload_type,
                        signatures=tuple((s.keyid, s.sig) for s in envelope.signatures),
                    ),
                    created_at=now,
                    expires_at=payload.expires_at,
                )
            )
        stored = StoredSnapshot(
            snapshot_id=snapshot_id,
            consent_id=consent_id,
            bank_ids=bank_ids,
            snapshot=snapshot,
            created_at=now,
        )

        def act(session: Session, at: datetime) -> tuple[str, SnapshotOutcome]:
            # One snapshot of a merchant at a time, whatever consent it comes under, so the
            # order and lending checks below see every other snapshot committed.
            repo.lock_name(session, f"snapshots/{merchant_id}")
            lending_now = {c.bank_id for c in monitoring_repo.lending_cases(session, merchant_id)}
            if lending_now - suspended != set(bank_ids):  # a loan began or ended meanwhile
                raise Unavailable(
                    "the merchant's loans changed while the snapshot was checked; retry"
                )
            # The consent may have been revoked while we signed; the lock holds it until commit.
            current = repo.get_consent(session, consent_id, for_update=True)
            if current is None or current.state(at) is not ConsentState.ACTIVE:
                raise FailedPrecondition.single(
                    "CONSENT_NOT_LIVE",
                    f"consents/{consent_id}",
                    "consent stopped being ACTIVE while the snapshot was being checked",
                )
            newest = monitoring_repo.latest_snapshot_date(session, merchant_id)
            if newest is not None and as_of < newest:  # a newer one won the race
                raise FailedPrecondition.single(
                    "SNAPSHOT_OUT_OF_ORDER",
                    "snapshot.as_of",
                    f"a snapshot as of {newest.isoformat()} was stored meanwhile",
                )
            monitoring_repo.insert_snapshot(session, stored)
            monitoring_repo.insert_alerts(session, alerts)
            for alert in alerts:
                endpoint = partners[alert.bank_id].endpoint
                if endpoint:  # the bank takes pushes; others pull or stream
                    outbox.insert_task(
                        session,
                        DeliveryTask(
                            task_id=new_id("dlv"),
                            sequence=0,  # assigned by the database
                            referral_id="",
                            case_id=alert.alert_id,
                            kind=DeliveryKind.ALERT,
                            bank_id=alert.bank_id,
                            endpoint=endpoint,
                            ordered=False,  # an alert must not wait behind a bank's referrals
                            state=DeliveryState.PENDING,
                            attempt_count=0,
                            next_attempt_at=at,
                            created_at=at,
                        ),
                    )
            session.flush()
            return snapshot_id, _load_outcome(session, snapshot_id)

        # Group commit on SQLite only: on PostgreSQL a batch would hold each unit's row locks,
        # taken FOR UPDATE here, until its last unit commits, and two replicas' batches would
        # deadlock on them (submissions batch there because their locks are shared).
        outcome = self._tx.idempotent(
            idem, replay=_load_outcome, act=act, batched=self._db.is_sqlite
        )
        if outcome.alerts:
            self.wake_alert_streams()
            if self._dispatcher is not None:
                self._dispatcher.notify()
        return outcome

    def wake_alert_streams(self) -> None:
        """Every live stream waiting in ``wait_for_alerts`` looks again now."""
        with self._alerts_written:
            self._alerts_written.notify_all()

    def wait_for_alerts(self, timeout: float) -> None:
        """Block until alerts commit here or ``timeout`` seconds pass (live streams)."""
        with self._alerts_written:
            self._alerts_written.wait(timeout)

    def pull_alerts(self, *, bank_id: str, cursor: str, page_size: int) -> tuple[list[Alert], str]:
        """The bank's alerts after ``cursor``, oldest first, and the cursor after the page.

        Alerts never change once signed, so a pull only reads: the cursor is the bank's own
        record of what it has seen. An alert past its expiry or whose consent ended is left
        out, as its push is cancelled.
        """
        size = paging.page_size(page_size)
        after = paging.decode_int_token(cursor, "alerts", field="cursor") if cursor else 0
        with self._db.reading() as session:
            require_active_caller(session, bank_id)
            alerts = monitoring_repo.alerts_for_bank(
                session, bank_id=bank_id, after_seq=after, limit=size, now=self._clock()
            )
        return alerts, self.cursor_after(alerts[-1]) if alerts else cursor

    @staticmethod
    def cursor_after(alert: Alert) -> str:
        return paging.encode_token("alerts", alert.sequence)


def _load_outcome(session: Session, snapshot_id: str) -> SnapshotOutcome:
    stored = monitoring_repo.get_snapshot(session, snapshot_id)
    if stored is None:
        raise NotFound("trade snapshot", snapshot_id)
    return SnapshotOutcome(
        snapshot_id=snapshot_id,
        bank_ids=stored.bank_ids,
        alerts=tuple(monitoring_repo.alerts_for_snapshot(session, snapshot_id)),
    )
