"""Push delivery of referrals (and early-warning alerts) to banks: the outbox task, its
attempts, and the retry rules.

A task is written with its referral in one transaction (the transactional outbox), so a
referral the platform was told about is never lost on its way to the bank, and a referral that
was refused never reaches one. Delivery is at least once: a bank de-duplicates by referral id
and answers a repeat with its first receipt, which closes the task.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from tenacity import RetryCallState, Retrying, wait_exponential_jitter


class DeliveryState(enum.Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD_LETTERED = "dead_lettered"
    CANCELLED = "cancelled"


class DeliveryKind(enum.Enum):
    REFERRAL = "referral"  # DeliverReferral of a case's envelope
    ALERT = "alert"  # DeliverAlert of an early-warning alert


class AttemptOutcome(enum.Enum):
    DELIVERED = "delivered"
    RETRYABLE = "retryable"
    FINAL = "final"


# The bank is briefly unable to answer; anything else it says is its final word on this
# referral (INVALID_ARGUMENT: the envelope did not verify; FAILED_PRECONDITION: it will not
# take it), and repeating it would only repeat the refusal.
RETRYABLE_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"})


def outcome_of(status_code: str) -> AttemptOutcome:
    if status_code == "OK":
        return AttemptOutcome.DELIVERED
    if status_code in RETRYABLE_CODES:
        return AttemptOutcome.RETRYABLE
    return AttemptOutcome.FINAL


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryPolicy:
    """How hard the gateway tries. Defaults suit banks that are down for minutes, not days."""

    call_timeout: timedelta = timedelta(seconds=5)
    max_attempts: int = 12
    max_age: timedelta = timedelta(hours=24)
    first_backoff: timedelta = timedelta(seconds=1)
    max_backoff: timedelta = timedelta(minutes=5)
    lease: timedelta = timedelta(seconds=30)  # a worker that dies frees its tasks after this

    def backoff(self, attempts: int) -> timedelta:
        """Wait before attempt ``attempts + 1``: exponential from ``first_backoff``, capped,
        plus up to ``first_backoff`` of jitter so a recovering bank is not hit by every task at
        once."""
        first = self.first_backoff.total_seconds()
        wait = wait_exponential_jitter(
            multiplier=first, max=self.max_backoff.total_seconds(), jitter=first
        )
        state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
        state.attempt_number = max(attempts, 1)
        return timedelta(seconds=wait(state))


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryAttempt:
    attempt: int
    started_at: datetime
    outcome: AttemptOutcome
    status_code: str
    latency_micros: int
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryTask:
    task_id: str
    sequence: int  # submission order: ordered banks receive in this order
    referral_id: str  # empty for an alert
    # The case pushed, or for an ALERT task the alert's id: unique either way, so the database
    # refuses a second task for one thing.
    case_id: str
    bank_id: str
    endpoint: str
    ordered: bool
    state: DeliveryState
    attempt_count: int
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None = None
    bank_reference: str = ""
    last_error: str = ""
    attempts: tuple[DeliveryAttempt, ...] = ()
    kind: DeliveryKind = DeliveryKind.REFERRAL


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    bank_reference: str
    received_at: datetime | None
    duplicate: bool


def after_attempt(
    task: DeliveryTask,
    *,
    outcome: AttemptOutcome,
    error: str,
    now: datetime,
    policy: DeliveryPolicy,
) -> tuple[DeliveryState, datetime, str]:
    """``(state, next_attempt_at, last_error)`` once an attempt that was not a receipt ends."""
    attempts = task.attempt_count + 1
    if outcome is AttemptOutcome.FINAL:
        return DeliveryState.DEAD_LETTERED, now, f"refused by the bank: {error}"
    if attempts >= policy.max_attempts:
        return DeliveryState.DEAD_LETTERED, now, f"gave up after {attempts} attempts: {error}"
    if now - task.created_at >= policy.max_age:
        return DeliveryState.DEAD_LETTERED, now, f"gave up after {policy.max_age}: {error}"
    return DeliveryState.PENDING, now + policy.backoff(attempts), error
