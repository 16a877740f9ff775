"""Loan events and each case's ledger: pure, integer arithmetic, replayable from the events.

The drawn principal sits in two buckets, as in the B2B credit line: the fixed part (paid out
first, up to the agreed fixed amount) and the revolving part (the rest). Interest accrues by
the day as simple interest on what is drawn: each day adds ``outstanding x daily rate (ppm)``
in millionths of a fen, rounded to fen only when shown, so no rounding drifts over a year.
Principal repayments reduce the revolving bucket first (repay any time) and then the fixed
one. Every repayment is split between the lenders by the agreed split (the bank's share
rounded down, the platform taking the remainder), so the two shares always sum to it.

A revolving line is drawn again (DRAWDOWN) any day before it matures, within its revolving
limit; what is drawn accrues interest from that day.

A scheduled fixed part (``schedule``) also accrues penalty interest (罚息): overdue principal,
that of the instalments due before the day that the fixed part's principal repaid does not
cover, bears ``LoanTerms.penalty_rate_bps`` of the contract rate in all (15000: 1.5x, the rate
plus 50 %); it keeps accruing contract interest like all principal, and the penalty is the
surcharge above it, kept exactly (10^-10 fen) and rounded half up only when shown.

A PREPAYMENT, once every instalment due up to its day is paid, pays the penalty and interest
owed and prepays principal with the rest; the fixed part's schedule is then re-amortised, by
the same method, from that day over the due dates after it (the term is kept, the instalments
shrink).
"""

from __future__ import annotations

import enum
import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta

from gateway.domain.decision import LoanTerms
from gateway.domain.financing import FinancingState
from gateway.domain.money import BPS_WHOLE, PPM_WHOLE, format_fen, split_by_bps
from gateway.domain.policy import CollectionOrder
from gateway.domain.schedule import (
    Instalment,
    add_months,
    days_past_due,
    due_dates,
    overdue_principal_fen,
    schedule_over,
)
from gateway.domain.scoring import ProductType
from gateway.errors import FailedPrecondition, FieldViolation

S = FinancingState
ONE_DAY = timedelta(days=1)
MAX_AMOUNT_FEN = 10**14
MAX_DAYS_OVERDUE = 10_000
PENALTY_UNITS_PER_FEN = PPM_WHOLE * BPS_WHOLE  # overdue fen x rate ppm x penalty bps


class LoanEventType(enum.Enum):
    DISBURSED = "disbursed"
    REPAYMENT = "repayment"
    OVERDUE = "overdue"
    DEFAULT = "default"
    RECOVERED = "recovered"
    WRITTEN_OFF = "written_off"
    SETTLED = "settled"
    # Recorded by the gateway from order batches and settlements, never reported by a bank.
    ORDER_ADVANCE = "order_advance"
    SETTLEMENT_SWEEP = "settlement_sweep"
    # A bank's payment of one amount, apportioned by the gateway (``apportion``).
    COLLECTION = "collection"
    # A revolving line drawn again within its limit.
    DRAWDOWN = "drawdown"
    # A scheduled loan repaid early, in part or in full (``prepay``); the schedule is redone.
    PREPAYMENT = "prepayment"


GATEWAY_RECORDED = frozenset({LoanEventType.ORDER_ADVANCE, LoanEventType.SETTLEMENT_SWEEP})
# Reported as one amount, which the gateway applies to what is owed.
APPORTIONED = frozenset({LoanEventType.COLLECTION, LoanEventType.PREPAYMENT})
# Reported with the amount paid out.
DRAWS = frozenset({LoanEventType.DISBURSED, LoanEventType.DRAWDOWN})


@dataclass(frozen=True, slots=True, kw_only=True)
class LoanEvent:
    type: LoanEventType | None
    event_date: date | None
    bank_loan_reference: str = ""
    disbursed_fen: int = 0
    principal_fen: int = 0
    interest_fen: int = 0
    days_overdue: int = 0
    amount_fen: int = 0  # COLLECTION, PREPAYMENT: the payment, before apportioning
    penalty_fen: int = 0  # penalty interest repaid


@dataclass(frozen=True, slots=True, kw_only=True)
class Ledger:
    principal_disbursed_fen: int = 0
    fixed_outstanding_fen: int = 0
    revolving_outstanding_fen: int = 0
    interest_accrued_micro: int = 0  # millionths of a fen
    principal_repaid_fen: int = 0
    interest_repaid_fen: int = 0
    bank_share_repaid_fen: int = 0
    platform_share_repaid_fen: int = 0
    accrued_through: date | None = None  # interest counted up to (not including) this day
    bank_loan_reference: str = ""
    disbursed_on: date | None = None  # the day the loan was first paid out (its vintage)
    days_overdue: int = 0  # as of the last OVERDUE event (read while the case is OVERDUE)
    drawn_again_fen: int = 0  # of principal_disbursed_fen, by DRAWDOWN events
    penalty_accrued_exact: int = 0  # 10^-10 fen (PENALTY_UNITS_PER_FEN)
    penalty_repaid_fen: int = 0
    # The last prepayment: the fixed part's schedule runs from that day on what it left, and
    # only interest repaid after it pays the new instalments.
    rescheduled_on: date | None = None
    rescheduled_principal_fen: int = 0
    interest_repaid_before_reschedule_fen: int = 0

    @property
    def principal_outstanding_fen(self) -> int:
        return self.fixed_outstanding_fen + self.revolving_outstanding_fen

    @property
    def interest_accrued_fen(self) -> int:
        return (self.interest_accrued_micro + PPM_WHOLE // 2) // PPM_WHOLE  # half up

    @property
    def interest_outstanding_fen(self) -> int:
        return max(0, self.interest_accrued_fen - self.interest_repaid_fen)

    @property
    def penalty_accrued_fen(self) -> int:
        return (self.penalty_accrued_exact + PENALTY_UNITS_PER_FEN // 2) // PENALTY_UNITS_PER_FEN

    @property
    def penalty_outstanding_fen(self) -> int:
        return max(0, self.penalty_accrued_fen - self.penalty_repaid_fen)


# Which event may follow which state, and where it leads.
EVENT_TRANSITIONS: dict[LoanEventType, tuple[frozenset[FinancingState], FinancingState]] = {
    LoanEventType.DISBURSED: (frozenset({S.APPROVED, S.ACCEPTED}), S.DISBURSED),
    LoanEventType.REPAYMENT: (frozenset({S.DISBURSED, S.REPAYING, S.OVERDUE}), S.REPAYING),
    LoanEventType.COLLECTION: (frozenset({S.DISBURSED, S.REPAYING, S.OVERDUE}), S.REPAYING),
    LoanEventType.OVERDUE: (frozenset({S.DISBURSED, S.REPAYING, S.OVERDUE}), S.OVERDUE),
    LoanEventType.DEFAULT: (frozenset({S.OVERDUE}), S.DEFAULTED),
    LoanEventType.RECOVERED: (frozenset({S.DEFAULTED}), S.RECOVERED),
    LoanEventType.WRITTEN_OFF: (frozenset({S.DEFAULTED}), S.WRITTEN_OFF),
    LoanEventType.SETTLED: (frozenset({S.DISBURSED, S.REPAYING, S.OVERDUE}), S.SETTLED),
    # A line in arrears is not drawn again, and a loan in arrears is not prepaid: the overdue
    # instalments are paid first.
    LoanEventType.DRAWDOWN: (frozenset({S.DISBURSED, S.REPAYING}), S.REPAYING),
    LoanEventType.PREPAYMENT: (frozenset({S.DISBURSED, S.REPAYING}), S.REPAYING),
}


def event_problems(event: LoanEvent, *, today: date, prefix: str = "event") -> list[FieldViolation]:
    """Shape rules of one event, by request path."""
    p = f"{prefix}."
    problems = []
    if event.type is None:
        problems.append(FieldViolation(f"{p}type", "required"))
    elif event.type in GATEWAY_RECORDED:
        return [
            FieldViolation(
                f"{p}type",
                f"{event.type.name} is recorded by the gateway from DecideOrderBatch and "
                "ReportOrderSettlement; a bank does not report it",
            )
        ]
    if event.event_date is None:
        problems.append(FieldViolation(f"{p}event_date", "required"))
    elif event.event_date > today:
        problems.append(
            FieldViolation(f"{p}event_date", f"must not be after today ({today.isoformat()})")
        )
    repaid = event.type in (LoanEventType.REPAYMENT, LoanEventType.RECOVERED)
    amounts = {
        "disbursed_amount": (event.disbursed_fen, event.type in DRAWS),
        "principal": (event.principal_fen, repaid),
        "interest": (event.interest_fen, repaid),
        "penalty": (event.penalty_fen, repaid),
        "amount": (event.amount_fen, event.type in APPORTIONED),
    }
    for name, (value, allowed) in amounts.items():
        field = f"{p}{name}.amount_minor"
        if not allowed and value:
            problems.append(FieldViolation(field, f"must be empty for a {_name(event)} event"))
        elif not 0 <= value <= MAX_AMOUNT_FEN:
            problems.append(FieldViolation(field, "must be between 0 and 10^14 fen"))
    if event.type in DRAWS and event.disbursed_fen <= 0:
        problems.append(FieldViolation(f"{p}disbursed_amount.amount_minor", "must be positive"))
    if event.type is LoanEventType.DISBURSED:
        if not event.bank_loan_reference.strip():
            problems.append(FieldViolation(f"{p}bank_loan_reference", "required to disburse"))
        elif len(event.bank_loan_reference) > 128:
            problems.append(
                FieldViolation(f"{p}bank_loan_reference", "must be at most 128 characters")
            )
    elif event.bank_loan_reference:
        problems.append(
            FieldViolation(f"{p}bank_loan_reference", "only a disbursement carries one")
        )
    if repaid and not (event.principal_fen or event.interest_fen or event.penalty_fen):
        problems.append(
            FieldViolation(f"{p}principal", "principal, interest or penalty must be positive")
        )
    if event.type in APPORTIONED and event.amount_fen <= 0:
        problems.append(FieldViolation(f"{p}amount.amount_minor", "must be positive"))
    if event.type is LoanEventType.OVERDUE:
        if not 1 <= event.days_overdue <= MAX_DAYS_OVERDUE:
            problems.append(
                FieldViolation(f"{p}days_overdue", f"must be between 1 and {MAX_DAYS_OVERDUE}")
            )
    elif event.days_overdue:
        problems.append(FieldViolation(f"{p}days_overdue", "only an OVERDUE event has days"))
    return problems


def _name(event: LoanEvent) -> str:
    return event.type.name if event.type else "typeless"


def accrue(ledger: Ledger, terms: LoanTerms, through: date) -> Ledger:
    """Interest and penalty interest for each day from ``accrued_through`` up to (not
    including) ``through``."""
    if ledger.accrued_through is None or through <= ledger.accrued_through:
        return ledger
    days = (through - ledger.accrued_through).days
    daily_micro = (
        ledger.fixed_outstanding_fen * terms.fixed_daily_rate_ppm
        + ledger.revolving_outstanding_fen * terms.revolving_daily_rate_ppm
    )
    return replace(
        ledger,
        interest_accrued_micro=ledger.interest_accrued_micro + daily_micro * days,
        penalty_accrued_exact=ledger.penalty_accrued_exact
        + _penalty_exact(ledger, terms, ledger.accrued_through, through),
        accrued_through=through,
    )


def _penalty_exact(ledger: Ledger, terms: LoanTerms, start: date, end: date) -> int:
    """Penalty interest for the days ``start`` .. ``end`` (excluded), in 10^-10 fen. What is
    overdue only grows the day after a due date, so the period is cut there."""
    if terms.penalty_rate_bps <= BPS_WHOLE:
        return 0
    schedule = case_schedule(terms, ledger)
    if not schedule:
        return 0
    repaid = scheduled_principal_repaid_fen(terms, ledger)
    # The overdue principal keeps accruing contract interest; the penalty is the surcharge.
    rate = terms.fixed_daily_rate_ppm * (terms.penalty_rate_bps - BPS_WHOLE)
    cuts = sorted({i.due_date + ONE_DAY for i in schedule} | {start, end})
    edges = [d for d in cuts if start <= d <= end]
    total = 0
    for first, after in itertools.pairwise(edges):
        overdue = overdue_principal_fen(schedule, principal_repaid_fen=repaid, on=first)
        total += overdue * rate * (after - first).days
    return total


def case_schedule(terms: LoanTerms | None, ledger: Ledger | None) -> tuple[Instalment, ...]:
    """The fixed part's schedule, when the terms name a method: from its disbursement, or
    after a prepayment what it left re-amortised over the due dates after it."""
    if terms is None or terms.repayment_method is None:
        return ()
    if ledger is None or ledger.disbursed_on is None:
        return ()
    if ledger.rescheduled_on is None:
        return _schedule(terms, ledger.disbursed_on, _fixed_disbursed_fen(terms, ledger), None)
    return _schedule(
        terms, ledger.disbursed_on, ledger.rescheduled_principal_fen, ledger.rescheduled_on
    )


@functools.lru_cache(maxsize=4096)  # every accrual of a replay asks for its case's schedule
def _schedule(
    terms: LoanTerms, paid_out: date, principal_fen: int, rescheduled_on: date | None
) -> tuple[Instalment, ...]:
    assert terms.repayment_method is not None
    dates = tuple(due_dates(paid_out, terms.term_months))
    if rescheduled_on is not None:
        dates = tuple(d for d in dates if d > rescheduled_on)
    return schedule_over(
        principal_fen=principal_fen,
        daily_rate_ppm=terms.fixed_daily_rate_ppm,
        start=rescheduled_on or paid_out,
        dates=dates,
        method=terms.repayment_method,
    )


def _fixed_disbursed_fen(terms: LoanTerms, ledger: Ledger) -> int:
    return min(ledger.principal_disbursed_fen - ledger.drawn_again_fen, terms.fixed_amount_fen)


def scheduled_principal_repaid_fen(terms: LoanTerms, ledger: Ledger) -> int:
    """The fixed part's principal repaid since its schedule began (or was last redone)."""
    basis = (
        _fixed_disbursed_fen(terms, ledger)
        if ledger.rescheduled_on is None
        else ledger.rescheduled_principal_fen
    )
    return basis - ledger.fixed_outstanding_fen


def scheduled_interest_repaid_fen(ledger: Ledger) -> int:
    """Interest repaid since the schedule began (or was last redone); for a combined line its
    revolving interest counts too, as the ledger does not split interest by part."""
    return ledger.interest_repaid_fen - ledger.interest_repaid_before_reschedule_fen


def days_in_arrears(terms: LoanTerms, ledger: Ledger, today: date) -> int:
    """Days past due on ``today`` of the oldest instalment what was repaid does not cover."""
    return days_past_due(
        case_schedule(terms, ledger),
        principal_paid_fen=scheduled_principal_repaid_fen(terms, ledger),
        interest_paid_fen=scheduled_interest_repaid_fen(ledger),
        today=today,
    )


def maturity_date(terms: LoanTerms, ledger: Ledger) -> date | None:
    """The day the loan's term ends (its last due date), once it is paid out."""
    if ledger.disbursed_on is None:
        return None
    return add_months(ledger.disbursed_on, terms.term_months)


def available_limit_fen(terms: LoanTerms, ledger: Ledger) -> int:
    """What the line can still be drawn: the revolving limit (the whole line for an order
    loan) less what is drawn on it."""
    if terms.product is ProductType.ORDER_LOAN:
        return max(0, terms.amount_fen - ledger.principal_outstanding_fen)
    return max(0, terms.amount_fen - terms.fixed_amount_fen - ledger.revolving_outstanding_fen)


def apply_event(
    *,
    case_id: str,
    state: FinancingState,
    ledger: Ledger,
    terms: LoanTerms,
    event: LoanEvent,
) -> tuple[FinancingState, Ledger]:
    """The case's next state and ledger after ``event`` (already shape-checked)."""
    assert event.type is not None
    assert event.event_date is not None
    subject = f"financingCases/{case_id}"
    if event.type in DRAWS and terms.product is ProductType.ORDER_LOAN:
        raise FailedPrecondition.single(
            "ORDER_LOAN_PAID_PER_BATCH",
            subject,
            "an ORDER_LOAN is paid out one approved order batch at a time (DecideOrderBatch), "
            f"not by a {event.type.name} event",
        )
    target = admissible(case_id=case_id, state=state, ledger=ledger, event=event)
    if event.type is LoanEventType.DISBURSED and event.disbursed_fen > terms.amount_fen:
        raise FailedPrecondition.single(
            "DISBURSEMENT_ABOVE_TERMS",
            subject,
            f"disbursed {event.disbursed_fen} fen, the agreed amount is {terms.amount_fen}",
        )
    if event.type is LoanEventType.DRAWDOWN:
        _refuse_drawdown(ledger, terms, event, subject)
    ledger = recorded_effect(ledger, terms, event, case_id=case_id)
    if event.type is LoanEventType.SETTLED and (
        ledger.principal_outstanding_fen
        or ledger.interest_outstanding_fen
        or ledger.penalty_outstanding_fen
    ):
        raise FailedPrecondition.single(
            "NOT_REPAID",
            subject,
            f"cannot settle: {ledger.principal_outstanding_fen} fen principal, "
            f"{ledger.interest_outstanding_fen} fen interest and "
            f"{ledger.penalty_outstanding_fen} fen penalty interest are still outstanding",
        )
    return target, ledger


def admissible(
    *, case_id: str, state: FinancingState, ledger: Ledger, event: LoanEvent
) -> FinancingState:
    """Where the event takes the case: ILLEGAL_TRANSITION if its state takes no such event,
    EVENT_OUT_OF_ORDER if dated before the case's last one. Checked before apportioning."""
    assert event.type is not None
    assert event.event_date is not None
    allowed, target = EVENT_TRANSITIONS[event.type]
    if state not in allowed:
        raise FailedPrecondition.single(
            "ILLEGAL_TRANSITION",
            f"financingCases/{case_id}",
            f"case is {state.name}; a {event.type.name} event needs one of "
            f"{', '.join(sorted(s.name for s in allowed))}",
        )
    _refuse_out_of_order(ledger, event.event_date, f"financingCases/{case_id}")
    return target


def _refuse_drawdown(ledger: Ledger, terms: LoanTerms, event: LoanEvent, subject: str) -> None:
    assert event.event_date is not None
    if terms.amount_fen == terms.fixed_amount_fen:
        raise FailedPrecondition.single(
            "NO_REVOLVING_LIMIT",
            subject,
            f"a {terms.product.name if terms.product else 'loan'} has no revolving part to draw",
        )
    if days_in_arrears(terms, ledger, event.event_date):
        raise FailedPrecondition.single(
            "DRAWDOWN_IN_ARREARS",
            subject,
            "an instalment of the fixed part is past due; the line is drawn again once it is paid",
        )
    matures = maturity_date(terms, ledger)
    if matures is None:  # a ledger kept before payout dates were (a loan of before drawdowns)
        raise FailedPrecondition.single(
            "MATURITY_UNKNOWN", subject, "the loan's payout date is not on record; no drawdown"
        )
    if event.event_date >= matures:
        raise FailedPrecondition.single(
            "DRAWDOWN_AFTER_MATURITY",
            subject,
            f"the line matured on {matures.isoformat()}; it is no longer drawn",
        )
    available = available_limit_fen(terms, ledger)
    if event.disbursed_fen > available:
        raise FailedPrecondition.single(
            "DRAWDOWN_ABOVE_LIMIT",
            subject,
            f"drawing {format_fen(event.disbursed_fen)} is more than the "
            f"{format_fen(available)} available on the revolving limit",
        )


def recorded_effect(ledger: Ledger, terms: LoanTerms, event: LoanEvent, *, case_id: str) -> Ledger:
    """What one event does to the ledger: interest accrued up to its day, then its amounts.
    The one place amounts move, so replaying a case's recorded events gives its ledger again
    (``replay``); the checks of who may do what are the callers'."""
    assert event.event_date is not None
    on = event.event_date
    ledger = accrue(ledger, terms, on)
    if event.type is LoanEventType.DISBURSED:
        fixed = min(event.disbursed_fen, terms.fixed_amount_fen)
        return replace(
            ledger,
            principal_disbursed_fen=event.disbursed_fen,
            fixed_outstanding_fen=fixed,
            revolving_outstanding_fen=event.disbursed_fen - fixed,
            accrued_through=on,
            bank_loan_reference=event.bank_loan_reference.strip(),
            disbursed_on=on,
        )
    if event.type is LoanEventType.ORDER_ADVANCE:
        return replace(
            ledger,
            principal_disbursed_fen=ledger.principal_disbursed_fen + event.disbursed_fen,
            revolving_outstanding_fen=ledger.revolving_outstanding_fen + event.disbursed_fen,
            accrued_through=ledger.accrued_through or on,
            disbursed_on=ledger.disbursed_on or on,
        )
    if event.type is LoanEventType.DRAWDOWN:
        return replace(
            ledger,
            principal_disbursed_fen=ledger.principal_disbursed_fen + event.disbursed_fen,
            revolving_outstanding_fen=ledger.revolving_outstanding_fen + event.disbursed_fen,
            drawn_again_fen=ledger.drawn_again_fen + event.disbursed_fen,
        )
    if event.type is LoanEventType.OVERDUE:
        return replace(ledger, days_overdue=event.days_overdue)
    if event.type in COLLECTIONS:
        ledger = _repay(ledger, terms, event, f"financingCases/{case_id}")
    if event.type is LoanEventType.PREPAYMENT:
        return replace(
            ledger,
            rescheduled_on=on,
            rescheduled_principal_fen=ledger.fixed_outstanding_fen,
            interest_repaid_before_reschedule_fen=ledger.interest_repaid_fen,
        )
    return ledger


# Events that pay money back to the lenders.
COLLECTIONS = frozenset(
    {
        LoanEventType.REPAYMENT,
        LoanEventType.RECOVERED,
        LoanEventType.SETTLEMENT_SWEEP,
        LoanEventType.COLLECTION,
        LoanEventType.PREPAYMENT,
    }
)


def apportion(
    event: LoanEvent,
    *,
    ledger: Ledger,
    terms: LoanTerms,
    order: CollectionOrder,
    case_id: str,
) -> LoanEvent:
    """A COLLECTION with its amount applied in ``order`` to what is owed on its day (penalty
    interest and interest accrued and unpaid, principal outstanding); the result records the
    principal, interest and penalty it paid, which ``recorded_effect`` then splits by the
    agreed split, the bank's share rounded down, like any repayment. More than is owed is
    refused."""
    assert event.event_date is not None
    owed = accrue(ledger, terms, event.event_date)
    penalty_owed = owed.penalty_outstanding_fen
    interest_owed, principal_owed = owed.interest_outstanding_fen, owed.principal_outstanding_fen
    if event.amount_fen > penalty_owed + interest_owed + principal_owed:
        raise FailedPrecondition.single(
            "COLLECTION_ABOVE_OWED",
            f"financingCases/{case_id}",
            f"collected {format_fen(event.amount_fen)} is more than the "
            f"{format_fen(principal_owed)} principal, {format_fen(interest_owed)} interest and "
            f"{format_fen(penalty_owed)} penalty interest owed",
        )
    parts = {"penalty": penalty_owed, "interest": interest_owed, "principal": principal_owed}
    names = ("penalty", "interest", "principal")
    if order is CollectionOrder.PRINCIPAL_FIRST:
        names = names[::-1]
    left, paid = event.amount_fen, {}
    for name in names:
        paid[name] = min(left, parts[name])
        left -= paid[name]
    return replace(
        event,
        principal_fen=paid["principal"],
        interest_fen=paid["interest"],
        penalty_fen=paid["penalty"],
    )


def prepay(event: LoanEvent, *, ledger: Ledger, terms: LoanTerms, case_id: str) -> LoanEvent:
    """A PREPAYMENT of a scheduled loan: its amount pays the penalty interest and interest owed
    on its day and prepays the rest of the fixed part's principal (the revolving part of a
    combined line is repaid at will, by REPAYMENT). The result records what it paid."""
    assert event.event_date is not None
    subject = f"financingCases/{case_id}"
    if terms.repayment_method is None:
        raise FailedPrecondition.single(
            "NOT_SCHEDULED",
            subject,
            "the loan has no repayment schedule to prepay; repay it at will with REPAYMENT",
        )
    owed = accrue(ledger, terms, event.event_date)
    schedule = case_schedule(terms, owed)
    if not schedule or event.event_date >= schedule[-1].due_date:
        raise FailedPrecondition.single(
            "NOTHING_TO_PREPAY",
            subject,
            "the schedule has no instalment left to fall due; repay with REPAYMENT",
        )
    # As of the day after: an instalment due that day is paid before the prepayment, else the
    # re-amortisation (over the due dates after it) would spread it over the later ones.
    if days_in_arrears(terms, owed, event.event_date + ONE_DAY):
        raise FailedPrecondition.single(
            "PREPAYMENT_IN_ARREARS",
            subject,
            "an instalment due on or before the prepayment's day is unpaid; pay it "
            "(REPAYMENT or COLLECTION) before prepaying",
        )
    charges = owed.penalty_outstanding_fen + owed.interest_outstanding_fen
    principal = event.amount_fen - charges
    if principal <= 0:
        raise FailedPrecondition.single(
            "PREPAYMENT_BELOW_DUE",
            subject,
            f"prepaid {format_fen(event.amount_fen)} does not go beyond the "
            f"{format_fen(charges)} interest and penalty interest owed; a prepayment pays "
            "those and then principal",
        )
    if principal > owed.fixed_outstanding_fen:
        raise FailedPrecondition.single(
            "PREPAYMENT_ABOVE_OUTSTANDING",
            subject,
            f"prepaid principal {format_fen(principal)} is more than the fixed part's "
            f"{format_fen(owed.fixed_outstanding_fen)} outstanding",
        )
    return replace(
        event,
        principal_fen=principal,
        interest_fen=owed.interest_outstanding_fen,
        penalty_fen=owed.penalty_outstanding_fen,
    )


def replay(events: Sequence[LoanEvent], terms: LoanTerms, *, case_id: str) -> Ledger:
    """The ledger of a case from its recorded events, oldest first."""
    ledger = Ledger()
    for event in events:
        ledger = recorded_effect(ledger, terms, event, case_id=case_id)
    return ledger


def _repay(ledger: Ledger, terms: LoanTerms, event: LoanEvent, subject: str) -> Ledger:
    if event.principal_fen > ledger.principal_outstanding_fen:
        raise FailedPrecondition.single(
            "REPAYMENT_ABOVE_OUTSTANDING",
            subject,
            f"principal {event.principal_fen} fen is more than the "
            f"{ledger.principal_outstanding_fen} fen outstanding",
        )
    if event.interest_fen > ledger.interest_outstanding_fen:
        raise FailedPrecondition.single(
            "REPAYMENT_ABOVE_OUTSTANDING",
            subject,
            f"interest {event.interest_fen} fen is more than the "
            f"{ledger.interest_outstanding_fen} fen accrued and unpaid",
        )
    if event.penalty_fen > ledger.penalty_outstanding_fen:
        raise FailedPrecondition.single(
            "REPAYMENT_ABOVE_OUTSTANDING",
            subject,
            f"penalty {event.penalty_fen} fen is more than the "
            f"{ledger.penalty_outstanding_fen} fen penalty interest accrued and unpaid",
        )
    # A prepayment prepays the scheduled fixed part; any other repayment the revolving first.
    from_revolving = (
        0
        if event.type is LoanEventType.PREPAYMENT
        else min(event.principal_fen, ledger.revolving_outstanding_fen)
    )
    total = event.principal_fen + event.interest_fen + event.penalty_fen
    bank_share, platform_share = split_by_bps(total, terms.bank_share_bps)
    return replace(
        ledger,
        penalty_repaid_fen=ledger.penalty_repaid_fen + event.penalty_fen,
        revolving_outstanding_fen=ledger.revolving_outstanding_fen - from_revolving,
        fixed_outstanding_fen=ledger.fixed_outstanding_fen - (event.principal_fen - from_revolving),
        principal_repaid_fen=ledger.principal_repaid_fen + event.principal_fen,
        interest_repaid_fen=ledger.interest_repaid_fen + event.interest_fen,
        bank_share_repaid_fen=ledger.bank_share_repaid_fen + bank_share,
        platform_share_repaid_fen=ledger.platform_share_repaid_fen + platform_share,
    )


def _refuse_out_of_order(ledger: Ledger, on: date, subject: str) -> None:
    if ledger.accrued_through is not None and on < ledger.accrued_through:
        raise FailedPrecondition.single(
            "EVENT_OUT_OF_ORDER",
            subject,
            f"event date {on.isoformat()} is before the case's last event "
            f"({ledger.accrued_through.isoformat()}); events are ordered per case",
        )


def advance_orders(
    ledger: Ledger, terms: LoanTerms, *, advance_fen: int, on: date, case_id: str
) -> Ledger:
    """An ORDER_LOAN's approved batch paid out: ``advance_fen`` more drawn on the line."""
    subject = f"financingCases/{case_id}"
    _refuse_out_of_order(ledger, on, subject)
    after = ledger.principal_outstanding_fen + advance_fen
    if after > terms.amount_fen:
        raise FailedPrecondition.single(
            "ORDER_LINE_EXCEEDED",
            subject,
            f"drawn principal would be {format_fen(after)}, above the line of "
            f"{format_fen(terms.amount_fen)}",
        )
    event = LoanEvent(type=LoanEventType.ORDER_ADVANCE, event_date=on, disbursed_fen=advance_fen)
    return recorded_effect(ledger, terms, event, case_id=case_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class SweptAmounts:
    interest_fen: int
    principal_fen: int
    bank_share_fen: int
    platform_share_fen: int
    to_merchant_fen: int


def sweep_settlement(
    ledger: Ledger,
    terms: LoanTerms,
    *,
    settled_fen: int,
    advance_outstanding_fen: int,
    interest_due_fen: int | None,
    on: date,
    case_id: str,
) -> tuple[Ledger, SweptAmounts]:
    """An order's settlement of ``settled_fen``, booked on ``on``, pays the interest due on the
    order first (``interest_due_fen``, never more than the case's unpaid interest; None: all
    of it, for the last open order), then the order's advance; both are split by the agreed
    split and the rest is the merchant's. The shares and the rest always sum to the settlement.
    """
    subject = f"financingCases/{case_id}"
    _refuse_out_of_order(ledger, on, subject)
    ledger = accrue(ledger, terms, on)
    owed = ledger.interest_outstanding_fen
    interest = min(settled_fen, owed if interest_due_fen is None else min(interest_due_fen, owed))
    principal = min(
        settled_fen - interest, advance_outstanding_fen, ledger.principal_outstanding_fen
    )
    if interest or principal:
        event = LoanEvent(
            type=LoanEventType.SETTLEMENT_SWEEP,
            event_date=on,
            principal_fen=principal,
            interest_fen=interest,
        )
        ledger = recorded_effect(ledger, terms, event, case_id=case_id)
    bank, platform = split_by_bps(interest + principal, terms.bank_share_bps)
    return ledger, SweptAmounts(
        interest_fen=interest,
        principal_fen=principal,
        bank_share_fen=bank,
        platform_share_fen=platform,
        to_merchant_fen=settled_fen - interest - principal,
    )
