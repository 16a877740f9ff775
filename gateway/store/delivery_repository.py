"""The delivery outbox in the caller's session: write, claim with a lease, record, re-queue."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, insert, or_, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from gateway.domain.delivery import (
    AttemptOutcome,
    DeliveryAttempt,
    DeliveryKind,
    DeliveryState,
    DeliveryTask,
)
from gateway.store.tables import DeliveryAttemptRow, DeliveryTaskRow

ATTEMPTS_SHOWN = 20


class LeaseLost(Exception):
    """The task's lease expired and another worker took it; this worker's result is dropped."""


def insert_task(session: Session, task: DeliveryTask) -> None:
    session.add(DeliveryTaskRow(**_task_values(task)))


_TASKS = DeliveryTaskRow.__table__  # type: ignore[attr-defined]
_INSERT_TASK = insert(DeliveryTaskRow).returning(
    _TASKS.c.task_id, _TASKS.c.seq, sort_by_parameter_order=True
)


def insert_tasks(session: Session, tasks: Sequence[DeliveryTask]) -> dict[str, int]:
    """Insert new tasks in one statement; each one's sequence, by task id."""
    if not tasks:
        return {}
    rows = session.connection().execute(_INSERT_TASK, [_task_values(t) for t in tasks])
    return {task_id: seq for task_id, seq in rows}


def _task_values(task: DeliveryTask) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "referral_id": task.referral_id,
        "case_id": task.case_id,
        "kind": task.kind.value,
        "bank_id": task.bank_id,
        "endpoint": task.endpoint,
        "ordered": task.ordered,
        "state": task.state.value,
        "attempt_count": task.attempt_count,
        "next_attempt_at": task.next_attempt_at,
        "lease_until": None,
        "leased_by": "",
        "created_at": task.created_at,
        "delivered_at": task.delivered_at,
        "bank_reference": task.bank_reference,
        "last_error": task.last_error,
    }


def claim_due(
    session: Session, *, now: datetime, lease_until: datetime, worker: str, limit: int
) -> list[DeliveryTask]:
    """Lease up to ``limit`` due tasks to ``worker``.

    A task is due when it is pending, its time has come and nobody holds a live lease on it.
    For a bank that asked for ordered delivery only its oldest pending task is ever due, so it
    receives referrals in submission order. On PostgreSQL ``SKIP LOCKED`` lets replicas claim
    side by side without waiting on each other's rows; SQLite has one writer anyway.
    """
    earlier = aliased(DeliveryTaskRow)
    query = (
        select(DeliveryTaskRow)
        .where(
            DeliveryTaskRow.state == DeliveryState.PENDING.value,
            col(DeliveryTaskRow.next_attempt_at) <= now,
            or_(col(DeliveryTaskRow.lease_until).is_(None), col(DeliveryTaskRow.lease_until) < now),
            or_(
                col(DeliveryTaskRow.ordered).is_(False),
                ~exists().where(
                    and_(
                        col(earlier.bank_id) == col(DeliveryTaskRow.bank_id),
                        col(earlier.state) == DeliveryState.PENDING.value,
                        # Only referrals keep an order; an alert never holds one back.
                        col(earlier.kind) == DeliveryKind.REFERRAL.value,
                        col(earlier.seq) < col(DeliveryTaskRow.seq),
                    )
                ),
            ),
        )
        .order_by(col(DeliveryTaskRow.seq))
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=DeliveryTaskRow)
    rows = list(session.exec(query))
    for row in rows:
        row.lease_until = lease_until
        row.leased_by = worker
        session.add(row)
    session.flush()
    return [_task(row, ()) for row in rows]


def record_attempt(
    session: Session,
    *,
    task: DeliveryTask,
    worker: str,
    attempt: DeliveryAttempt,
    state: DeliveryState,
    next_attempt_at: datetime,
    last_error: str = "",
    delivered_at: datetime | None = None,
    bank_reference: str = "",
) -> None:
    """Store one attempt and the task's new state, if ``worker`` still holds the lease."""
    result = session.execute(
        update(DeliveryTaskRow)
        .where(
            col(DeliveryTaskRow.task_id) == task.task_id,
            col(DeliveryTaskRow.leased_by) == worker,
            col(DeliveryTaskRow.state) == DeliveryState.PENDING.value,
        )
        .values(
            state=state.value,
            attempt_count=col(DeliveryTaskRow.attempt_count) + 1,
            next_attempt_at=next_attempt_at,
            lease_until=None,
            leased_by="",
            last_error=last_error[:400],
            delivered_at=delivered_at,
            bank_reference=bank_reference[:128],
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost(task.task_id)
    session.add(
        DeliveryAttemptRow(
            task_id=task.task_id,
            attempt=attempt.attempt,
            started_at=attempt.started_at,
            outcome=attempt.outcome.value,
            status_code=attempt.status_code,
            latency_micros=attempt.latency_micros,
            detail=attempt.detail[:300],
        )
    )


def cancel(session: Session, *, task: DeliveryTask, worker: str, reason: str) -> None:
    session.execute(
        update(DeliveryTaskRow)
        .where(
            col(DeliveryTaskRow.task_id) == task.task_id, col(DeliveryTaskRow.leased_by) == worker
        )
        .values(
            state=DeliveryState.CANCELLED.value, lease_until=None, leased_by="", last_error=reason
        )
    )


def get_task(session: Session, task_id: str, *, for_update: bool = False) -> DeliveryTask | None:
    query = select(DeliveryTaskRow).where(DeliveryTaskRow.task_id == task_id)
    if for_update:
        query = query.with_for_update()
    row = session.exec(query).first()
    return None if row is None else _task(row, _attempts(session, [row.task_id])[row.task_id])


def tasks_for_cases(session: Session, case_ids: Sequence[str]) -> dict[str, DeliveryTask]:
    rows = list(
        session.exec(select(DeliveryTaskRow).where(col(DeliveryTaskRow.case_id).in_(case_ids)))
    )
    attempts = _attempts(session, [r.task_id for r in rows])
    return {r.case_id: _task(r, attempts[r.task_id]) for r in rows}


def list_tasks(
    session: Session, *, after: int, limit: int, state: DeliveryState | None, bank_id: str
) -> list[DeliveryTask]:
    query = select(DeliveryTaskRow).where(col(DeliveryTaskRow.seq) > after)
    if state is not None:
        query = query.where(DeliveryTaskRow.state == state.value)
    if bank_id:
        query = query.where(DeliveryTaskRow.bank_id == bank_id)
    rows = list(session.exec(query.order_by(col(DeliveryTaskRow.seq)).limit(limit)))
    attempts = _attempts(session, [r.task_id for r in rows])
    return [_task(r, attempts[r.task_id]) for r in rows]


def requeue(session: Session, *, task_id: str, now: datetime) -> bool:
    """Dead letter -> pending, due now, attempts counted afresh; False if not dead-lettered."""
    result = session.execute(
        update(DeliveryTaskRow)
        .where(
            col(DeliveryTaskRow.task_id) == task_id,
            col(DeliveryTaskRow.state) == DeliveryState.DEAD_LETTERED.value,
        )
        .values(
            state=DeliveryState.PENDING.value,
            attempt_count=0,
            next_attempt_at=now,
            created_at=now,  # the age limit counts from the re-queue
            lease_until=None,
            leased_by="",
        )
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def pending_count(session: Session) -> int:
    query = select(func.count()).select_from(DeliveryTaskRow)
    return int(session.exec(query.where(DeliveryTaskRow.state == "pending")).one())


def _attempts(session: Session, task_ids: Sequence[str]) -> dict[str, tuple[DeliveryAttempt, ...]]:
    found: dict[str, list[DeliveryAttempt]] = {t: [] for t in task_ids}
    if not task_ids:
        return {}
    rows = session.exec(
        select(DeliveryAttemptRow)
        .where(col(DeliveryAttemptRow.task_id).in_(list(task_ids)))
        .order_by(col(DeliveryAttemptRow.id))
    )
    for r in rows:
        found[r.task_id].append(
            DeliveryAttempt(
                attempt=r.attempt,
                started_at=r.started_at,
                outcome=AttemptOutcome(r.outcome),
                status_code=r.status_code,
                latency_micros=r.latency_micros,
                detail=r.detail,
            )
        )
    return {t: tuple(a[-ATTEMPTS_SHOWN:]) for t, a in found.items()}


def _task(row: DeliveryTaskRow, attempts: tuple[DeliveryAttempt, ...]) -> DeliveryTask:
    assert row.seq is not None
    return DeliveryTask(
        task_id=row.task_id,
        sequence=row.seq,
        referral_id=row.referral_id,
        case_id=row.case_id,
        bank_id=row.bank_id,
        endpoint=row.endpoint,
        ordered=row.ordered,
        state=DeliveryState(row.state),
        attempt_count=row.attempt_count,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        bank_reference=row.bank_reference,
        last_error=row.last_error,
        attempts=attempts,
        kind=DeliveryKind(row.kind),
    )
