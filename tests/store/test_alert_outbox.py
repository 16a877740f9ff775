"""Alert pushes share the referral outbox: an ordered bank's referrals keep their order among
themselves, and a pending alert push (a bank slow to take alerts) never holds them back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.domain.delivery import DeliveryKind, DeliveryState, DeliveryTask
from gateway.store import delivery_repository as outbox
from gateway.store.db import Database

NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def _task(task_id: str, kind: DeliveryKind, *, due: datetime = NOW) -> DeliveryTask:
    return DeliveryTask(
        task_id=task_id,
        sequence=0,
        referral_id="" if kind is DeliveryKind.ALERT else f"ref-{task_id}",
        case_id=f"{kind.value}-{task_id}",
        kind=kind,
        bank_id="bank-a",
        endpoint="127.0.0.1:1",
        ordered=kind is DeliveryKind.REFERRAL,
        state=DeliveryState.PENDING,
        attempt_count=0,
        next_attempt_at=due,
        created_at=NOW,
    )


def _claim(database: Database) -> list[str]:
    with database.writing() as session:
        tasks = outbox.claim_due(
            session, now=NOW, lease_until=NOW + timedelta(seconds=30), worker="w", limit=10
        )
    return [t.task_id for t in tasks]


def test_a_pending_alert_does_not_hold_back_an_ordered_banks_referrals(
    database: Database,
) -> None:
    with database.writing() as session:
        # The alert came first and is waiting for a retry an hour away.
        outbox.insert_task(session, _task("t1", DeliveryKind.ALERT, due=NOW + timedelta(hours=1)))
        outbox.insert_task(session, _task("t2", DeliveryKind.REFERRAL))
        outbox.insert_task(session, _task("t3", DeliveryKind.REFERRAL))
    # The first referral is due; the second waits behind it (ordered), not behind the alert.
    assert _claim(database) == ["t2"]
    with database.reading() as session:
        alert = outbox.get_task(session, "t1")
    assert alert is not None
    assert alert.kind is DeliveryKind.ALERT
    assert alert.case_id == "alert-t1"
