"""Protobuf <-> domain conversion of push-delivery tasks and their attempts."""

from __future__ import annotations

from colending.v1 import delivery_pb2

from gateway.api.convert import inverse_of, timestamp
from gateway.domain.delivery import AttemptOutcome, DeliveryKind, DeliveryState, DeliveryTask

DELIVERY_STATES = {
    getattr(delivery_pb2, f"DELIVERY_STATE_{state.name}"): state for state in DeliveryState
}
DELIVERY_STATE_NUMBERS = inverse_of(DELIVERY_STATES)
DELIVERY_OUTCOME_NUMBERS = {
    outcome: getattr(delivery_pb2, f"DELIVERY_OUTCOME_{outcome.name}") for outcome in AttemptOutcome
}


def delivery_task_to_proto(task: DeliveryTask) -> delivery_pb2.DeliveryTask:
    alert = task.kind is DeliveryKind.ALERT
    return delivery_pb2.DeliveryTask(
        task_id=task.task_id,
        referral_id=task.referral_id,
        case_id="" if alert else task.case_id,
        alert_id=task.case_id if alert else "",
        bank_id=task.bank_id,
        state=DELIVERY_STATE_NUMBERS[task.state],
        attempt_count=task.attempt_count,
        next_attempt_at=timestamp(task.next_attempt_at)
        if task.state is DeliveryState.PENDING
        else None,
        created_at=timestamp(task.created_at),
        delivered_at=timestamp(task.delivered_at),
        bank_reference=task.bank_reference,
        last_error=task.last_error,
        attempts=[
            delivery_pb2.DeliveryAttempt(
                attempt=a.attempt,
                started_at=timestamp(a.started_at),
                outcome=DELIVERY_OUTCOME_NUMBERS[a.outcome],
                status_code=a.status_code,
                latency_micros=a.latency_micros,
                detail=a.detail,
            )
            for a in task.attempts
        ],
    )
