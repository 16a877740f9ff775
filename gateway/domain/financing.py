"""The joint-financing state machine (DESIGN.md section 6).

One case per (referral, bank). Every state change goes through ``transition``, which refuses
anything not in ``TRANSITIONS`` and names the current state, so no code path can skip a step.
"""

from __future__ import annotations

import enum

from gateway.errors import FailedPrecondition


class FinancingState(enum.Enum):
    REFERRED = "referred"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    APPROVED = "approved"
    DECLINED = "declined"
    COUNTER_OFFERED = "counter_offered"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DISBURSED = "disbursed"
    REPAYING = "repaying"
    OVERDUE = "overdue"
    DEFAULTED = "defaulted"
    RECOVERED = "recovered"
    WRITTEN_OFF = "written_off"
    SETTLED = "settled"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


S = FinancingState
# States before a decision: the platform may still withdraw, and the referral may expire.
UNDECIDED = frozenset({S.REFERRED, S.DELIVERED, S.ACKNOWLEDGED})
# States in which a bank still has a referral to receive.
AWAITING_BANK = frozenset({S.REFERRED, S.DELIVERED})
# States whose agreed principal counts against the bank's exposure cap.
COMMITTED = frozenset({S.APPROVED, S.ACCEPTED, S.DISBURSED, S.REPAYING, S.OVERDUE, S.DEFAULTED})
# States the expiry sweep closes once the referral's validity has passed.
EXPIRABLE = UNDECIDED | {S.COUNTER_OFFERED}

TRANSITIONS: dict[FinancingState, frozenset[FinancingState]] = {
    S.REFERRED: frozenset({S.DELIVERED, S.ACKNOWLEDGED, S.WITHDRAWN, S.EXPIRED}),
    S.DELIVERED: frozenset({S.ACKNOWLEDGED, S.WITHDRAWN, S.EXPIRED}),
    S.ACKNOWLEDGED: frozenset({S.APPROVED, S.DECLINED, S.COUNTER_OFFERED, S.WITHDRAWN, S.EXPIRED}),
    S.APPROVED: frozenset({S.DISBURSED}),
    S.COUNTER_OFFERED: frozenset({S.ACCEPTED, S.REJECTED, S.EXPIRED}),
    S.ACCEPTED: frozenset({S.DISBURSED}),
    # DISBURSED to itself: an order loan's next batch paid out before any repayment.
    S.DISBURSED: frozenset({S.DISBURSED, S.REPAYING, S.OVERDUE, S.SETTLED}),
    S.REPAYING: frozenset({S.REPAYING, S.OVERDUE, S.SETTLED}),
    S.OVERDUE: frozenset({S.REPAYING, S.OVERDUE, S.DEFAULTED, S.SETTLED}),
    S.DEFAULTED: frozenset({S.RECOVERED, S.WRITTEN_OFF}),
    S.DECLINED: frozenset(),
    S.REJECTED: frozenset(),
    S.RECOVERED: frozenset(),
    S.WRITTEN_OFF: frozenset(),
    S.SETTLED: frozenset(),
    S.WITHDRAWN: frozenset(),
    S.EXPIRED: frozenset(),
}


def transition(case_id: str, current: FinancingState, target: FinancingState) -> FinancingState:
    """Return ``target`` if the move is legal, else raise FAILED_PRECONDITION naming ``current``."""
    if target not in TRANSITIONS[current]:
        raise FailedPrecondition.single(
            "ILLEGAL_TRANSITION",
            f"financingCases/{case_id}",
            f"case is {current.name}; it cannot move to {target.name}",
        )
    return target
