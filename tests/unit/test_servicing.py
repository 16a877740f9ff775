"""Servicing rules, with figures computed by hand: a revolving line drawn again within its
limit and term, penalty interest on a schedule's overdue principal, and prepayment with the
schedule re-amortised."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.decision import LoanTerms
from gateway.domain.financing import FinancingState
from gateway.domain.ledger import (
    Ledger,
    LoanEvent,
    LoanEventType,
    accrue,
    apply_event,
    apportion,
    available_limit_fen,
    case_schedule,
    event_problems,
    prepay,
    recorded_effect,
)
from gateway.domain.policy import CollectionOrder, EligibilityPolicy, validate_policy
from gateway.domain.schedule import RepaymentMethod
from gateway.domain.scoring import ProductType
from gateway.errors import FailedPrecondition

E = LoanEventType
S = FinancingState
CASE = "c"

# RMB 12,000 over three months, equal principal, 500 ppm a day, paid out on 31 January of a
# leap year: due 29 February, 31 March, 30 April; late principal bears 1.5x in all, so 250 ppm a
# day of penalty interest above the 500 of contract interest.
PAID_OUT = date(2028, 1, 31)
FIXED = LoanTerms(
    product=ProductType.FIXED_LOAN,
    amount_fen=1_200_000,
    fixed_amount_fen=1_200_000,
    term_months=3,
    revolving_daily_rate_ppm=0,
    fixed_daily_rate_ppm=500,
    bank_share_bps=7000,
    platform_share_bps=3000,
    repayment_method=RepaymentMethod.EQUAL_PRINCIPAL,
    penalty_rate_bps=15_000,
)
LINE = LoanTerms(
    product=ProductType.REVOLVING_LINE,
    amount_fen=500_000,
    fixed_amount_fen=0,
    term_months=2,
    revolving_daily_rate_ppm=600,
    fixed_daily_rate_ppm=0,
    bank_share_bps=7000,
    platform_share_bps=3000,
)


def paid_out(terms: LoanTerms, amount: int) -> Ledger:
    event = LoanEvent(
        type=E.DISBURSED, event_date=PAID_OUT, bank_loan_reference="BL", disbursed_fen=amount
    )
    return recorded_effect(Ledger(), terms, event, case_id=CASE)


def refusal(exc: pytest.ExceptionInfo[FailedPrecondition]) -> str:
    [violation] = exc.value.violations
    assert violation.subject == f"financingCases/{CASE}"
    return violation.type


def run(
    terms: LoanTerms, ledger: Ledger, event: LoanEvent, state: S = S.REPAYING
) -> tuple[S, Ledger]:
    return apply_event(case_id=CASE, state=state, ledger=ledger, terms=terms, event=event)


# --- drawdowns ------------------------------------------------------------------------------


def test_a_line_is_drawn_again_within_its_limit_and_accrues_on_what_is_drawn() -> None:
    ledger = paid_out(LINE, 200_000)
    assert available_limit_fen(LINE, ledger) == 300_000
    draw = LoanEvent(type=E.DRAWDOWN, event_date=date(2028, 2, 10), disbursed_fen=300_000)
    state, ledger = run(LINE, ledger, draw, S.DISBURSED)
    assert state is S.REPAYING
    assert available_limit_fen(LINE, ledger) == 0
    # 10 days on 200,000 then 5 days on 500,000, at 600 ppm: 1,200 + 1,500 fen.
    assert accrue(ledger, LINE, date(2028, 2, 15)).interest_accrued_fen == 2_700
    more = LoanEvent(type=E.DRAWDOWN, event_date=date(2028, 2, 15), disbursed_fen=1)
    with pytest.raises(FailedPrecondition) as above:
        run(LINE, ledger, more)
    assert refusal(above) == "DRAWDOWN_ABOVE_LIMIT"
    # Repaid principal frees the limit again.
    repaid = LoanEvent(type=E.REPAYMENT, event_date=date(2028, 2, 15), principal_fen=100_000)
    _, ledger = run(LINE, ledger, repaid)
    assert available_limit_fen(LINE, ledger) == 100_000
    _, ledger = run(LINE, ledger, replace(more, disbursed_fen=100_000))
    assert ledger.principal_outstanding_fen == 500_000
    assert ledger.principal_disbursed_fen == 600_000


def test_no_drawdown_on_or_after_maturity_nor_on_a_fixed_loan_nor_in_arrears() -> None:
    ledger = paid_out(LINE, 100_000)
    matured = LoanEvent(type=E.DRAWDOWN, event_date=date(2028, 3, 31), disbursed_fen=1)
    with pytest.raises(FailedPrecondition) as late:
        run(LINE, ledger, matured)
    assert refusal(late) == "DRAWDOWN_AFTER_MATURITY"
    _, ok = run(LINE, ledger, replace(matured, event_date=date(2028, 3, 30)))
    assert ok.revolving_outstanding_fen == 100_001
    with pytest.raises(FailedPrecondition) as fixed:
        run(FIXED, paid_out(FIXED, 1_200_000), replace(matured, event_date=date(2028, 2, 1)))
    assert refusal(fixed) == "NO_REVOLVING_LIMIT"
    with pytest.raises(FailedPrecondition) as arrears:
        run(LINE, ledger, replace(matured, event_date=date(2028, 2, 1)), S.OVERDUE)
    assert refusal(arrears) == "ILLEGAL_TRANSITION"


def test_event_shapes_of_drawdown_prepayment_and_penalty() -> None:
    today = date(2030, 1, 1)
    [empty] = event_problems(LoanEvent(type=E.DRAWDOWN, event_date=today), today=today)
    assert empty.field == "event.disbursed_amount.amount_minor"
    [no_amount] = event_problems(LoanEvent(type=E.PREPAYMENT, event_date=today), today=today)
    assert no_amount.field == "event.amount.amount_minor"
    split = LoanEvent(type=E.PREPAYMENT, event_date=today, amount_fen=5, penalty_fen=5)
    [named] = event_problems(split, today=today)
    assert named.field == "event.penalty.amount_minor"
    penalty_only = LoanEvent(type=E.REPAYMENT, event_date=today, penalty_fen=5)
    assert event_problems(penalty_only, today=today) == []


# --- penalty interest -----------------------------------------------------------------------


def test_penalty_accrues_on_overdue_principal_from_the_day_after_its_due_date() -> None:
    ledger = paid_out(FIXED, 1_200_000)
    # The first 400,000 fen fall due on 29 February; 29 February itself is not late.
    assert accrue(ledger, FIXED, date(2028, 3, 1)).penalty_accrued_exact == 0
    # 1..4 March: 400,000 x 250 ppm x 4 days = 400 fen.
    on_5_march = accrue(ledger, FIXED, date(2028, 3, 5))
    assert on_5_march.penalty_accrued_fen == 400
    # 34 days of contract interest on 1,200,000 at 500 ppm, unchanged by the penalty.
    assert on_5_march.interest_accrued_fen == 20_400
    # From 1 April, 800,000 are late: 31 days x 400,000 + 10 days x 800,000, at 250 ppm.
    assert accrue(ledger, FIXED, date(2028, 4, 11)).penalty_accrued_fen == 3_100 + 2_000
    # Accrued one day at a time or all at once, the same.
    stepwise = ledger
    for day in range(1, 72):
        stepwise = accrue(stepwise, FIXED, PAID_OUT + timedelta(days=day))
    assert stepwise == accrue(ledger, FIXED, PAID_OUT + timedelta(days=71))


def test_no_penalty_without_a_rate_or_a_schedule() -> None:
    free = replace(FIXED, penalty_rate_bps=0)
    assert accrue(paid_out(free, 1_200_000), free, date(2028, 4, 1)).penalty_accrued_exact == 0
    unscheduled = replace(FIXED, repayment_method=None)
    late = accrue(paid_out(unscheduled, 1_200_000), unscheduled, date(2028, 4, 1))
    assert late.penalty_accrued_exact == 0


def test_a_collection_pays_penalty_first_or_last_by_the_banks_order() -> None:
    ledger = paid_out(FIXED, 1_200_000)
    payment = LoanEvent(type=E.COLLECTION, event_date=date(2028, 3, 5), amount_fen=30_000)
    first = apportion(
        payment, ledger=ledger, terms=FIXED, order=CollectionOrder.INTEREST_FIRST, case_id=CASE
    )
    assert (first.penalty_fen, first.interest_fen, first.principal_fen) == (400, 20_400, 9_200)
    whole = replace(payment, amount_fen=1_200_000 + 20_400 + 400)
    last = apportion(
        whole, ledger=ledger, terms=FIXED, order=CollectionOrder.PRINCIPAL_FIRST, case_id=CASE
    )
    assert (last.principal_fen, last.interest_fen, last.penalty_fen) == (1_200_000, 20_400, 400)
    _, after = run(FIXED, ledger, first)
    assert (after.penalty_repaid_fen, after.penalty_outstanding_fen) == (400, 0)
    # The shares of a payment with penalty sum to it.
    assert after.bank_share_repaid_fen + after.platform_share_repaid_fen == 30_000
    with pytest.raises(FailedPrecondition) as above:
        apportion(
            replace(payment, amount_fen=1_200_000 + 20_400 + 401),
            ledger=ledger,
            terms=FIXED,
            order=CollectionOrder.INTEREST_FIRST,
            case_id=CASE,
        )
    assert refusal(above) == "COLLECTION_ABOVE_OWED"


def test_penalty_repaid_above_what_accrued_is_refused_and_settling_needs_it_paid() -> None:
    ledger = paid_out(FIXED, 1_200_000)
    too_much = LoanEvent(type=E.REPAYMENT, event_date=date(2028, 3, 5), penalty_fen=401)
    with pytest.raises(FailedPrecondition) as above:
        run(FIXED, ledger, too_much)
    assert refusal(above) == "REPAYMENT_ABOVE_OUTSTANDING"
    everything_but_penalty = LoanEvent(
        type=E.REPAYMENT, event_date=date(2028, 3, 5), principal_fen=1_200_000, interest_fen=20_400
    )
    _, ledger = run(FIXED, ledger, everything_but_penalty)
    settle = LoanEvent(type=E.SETTLED, event_date=date(2028, 3, 5))
    with pytest.raises(FailedPrecondition) as unpaid:
        run(FIXED, ledger, settle)
    assert refusal(unpaid) == "NOT_REPAID"
    assert "400 fen penalty interest" in unpaid.value.violations[0].description
    _, ledger = run(FIXED, ledger, replace(too_much, penalty_fen=400))
    state, _ = run(FIXED, ledger, settle)
    assert state is S.SETTLED


# --- prepayment -----------------------------------------------------------------------------


def first_instalment_paid() -> Ledger:
    # 400,000 principal and 29 days on 1,200,000 at 500 ppm (17,400), on its due date.
    paid = LoanEvent(
        type=E.REPAYMENT, event_date=date(2028, 2, 29), principal_fen=400_000, interest_fen=17_400
    )
    return run(FIXED, paid_out(FIXED, 1_200_000), paid)[1]


def test_a_part_prepayment_re_amortises_what_is_left_over_the_due_dates_to_come() -> None:
    ledger = first_instalment_paid()
    # 10 days from 29 February on 800,000: 4,000 interest; the rest prepays principal.
    event = LoanEvent(type=E.PREPAYMENT, event_date=date(2028, 3, 10), amount_fen=404_000)
    recorded = prepay(event, ledger=ledger, terms=FIXED, case_id=CASE)
    assert (recorded.penalty_fen, recorded.interest_fen, recorded.principal_fen) == (
        0,
        4_000,
        400_000,
    )
    state, ledger = run(FIXED, ledger, recorded)
    assert state is S.REPAYING
    schedule = case_schedule(FIXED, ledger)
    # 400,000 over 31 March and 30 April: 200,000 each; interest on 400,000 for 21 days
    # (4,200), then on 200,000 for 30 days (3,000).
    assert [(i.due_date, i.principal_fen, i.interest_fen) for i in schedule] == [
        (date(2028, 3, 31), 200_000, 4_200),
        (date(2028, 4, 30), 200_000, 3_000),
    ]
    assert [i.number for i in schedule] == [1, 2]
    # Paying the new first instalment on time leaves nothing late: no penalty on 1 April.
    on_time = LoanEvent(
        type=E.REPAYMENT, event_date=date(2028, 3, 31), principal_fen=200_000, interest_fen=4_200
    )
    _, ledger = run(FIXED, ledger, on_time)
    assert accrue(ledger, FIXED, date(2028, 4, 20)).penalty_accrued_exact == 0


def test_a_full_prepayment_ends_the_schedule_and_the_loan_settles() -> None:
    ledger = first_instalment_paid()
    event = LoanEvent(type=E.PREPAYMENT, event_date=date(2028, 3, 10), amount_fen=804_000)
    _, ledger = run(FIXED, ledger, prepay(event, ledger=ledger, terms=FIXED, case_id=CASE))
    assert case_schedule(FIXED, ledger) == ()
    assert ledger.principal_outstanding_fen == 0
    state, _ = run(FIXED, ledger, LoanEvent(type=E.SETTLED, event_date=date(2028, 3, 10)))
    assert state is S.SETTLED


@pytest.mark.parametrize(
    ("terms", "on", "amount", "code"),
    [
        (replace(FIXED, repayment_method=None), date(2028, 3, 10), 404_000, "NOT_SCHEDULED"),
        (FIXED, date(2028, 3, 10), 4_000, "PREPAYMENT_BELOW_DUE"),
        (FIXED, date(2028, 3, 10), 804_001, "PREPAYMENT_ABOVE_OUTSTANDING"),
        (FIXED, date(2028, 4, 1), 500_000, "PREPAYMENT_IN_ARREARS"),
        # Due that day and unpaid: paid first, or the redone schedule would spread it.
        (FIXED, date(2028, 3, 31), 500_000, "PREPAYMENT_IN_ARREARS"),
        (FIXED, date(2028, 4, 30), 900_000, "NOTHING_TO_PREPAY"),
    ],
)
def test_prepayments_refused(terms: LoanTerms, on: date, amount: int, code: str) -> None:
    ledger = first_instalment_paid()
    event = LoanEvent(type=E.PREPAYMENT, event_date=on, amount_fen=amount)
    with pytest.raises(FailedPrecondition) as refused:
        prepay(event, ledger=ledger, terms=terms, case_id=CASE)
    assert refusal(refused) == code


def test_a_prepayment_of_a_combined_line_prepays_the_fixed_part_only() -> None:
    combined = replace(
        FIXED, product=ProductType.COMBINED, amount_fen=2_000_000, revolving_daily_rate_ppm=600
    )
    ledger = paid_out(combined, 2_000_000)
    event = LoanEvent(type=E.PREPAYMENT, event_date=date(2028, 2, 10), amount_fen=500_000)
    recorded = prepay(event, ledger=ledger, terms=combined, case_id=CASE)
    _, after = run(combined, ledger, recorded)
    assert after.revolving_outstanding_fen == 800_000
    assert after.fixed_outstanding_fen == 1_200_000 - recorded.principal_fen


def test_a_combined_line_in_arrears_on_its_fixed_part_is_not_drawn_again() -> None:
    combined = replace(
        FIXED, product=ProductType.COMBINED, amount_fen=2_000_000, revolving_daily_rate_ppm=600
    )
    ledger = paid_out(combined, 1_500_000)  # 300,000 of the revolving 800,000 left to draw
    draw = LoanEvent(type=E.DRAWDOWN, event_date=date(2028, 2, 29), disbursed_fen=100_000)
    _, drawn = run(combined, ledger, draw, S.DISBURSED)
    assert drawn.revolving_outstanding_fen == 400_000
    # 15 days after the first instalment fell due unpaid, before any sweep marked it OVERDUE.
    late = replace(draw, event_date=date(2028, 3, 15))
    with pytest.raises(FailedPrecondition) as arrears:
        run(combined, drawn, late)
    assert refusal(arrears) == "DRAWDOWN_IN_ARREARS"


def test_policy_penalty_rate_bounds() -> None:
    assert validate_policy(EligibilityPolicy(penalty_rate_bps=10_000)) == []
    assert validate_policy(EligibilityPolicy(penalty_rate_bps=30_000)) == []
    for rate in (0, 9_999, 30_001):
        [problem] = validate_policy(EligibilityPolicy(penalty_rate_bps=rate))
        assert problem.field == "policy.penalty_rate_bps"


@given(
    late_days=st.integers(0, 200),
    amount=st.integers(1, 1_400_000),
    order=st.sampled_from(CollectionOrder),
    bank_bps=st.integers(0, 10_000),
    method=st.sampled_from(RepaymentMethod),
    penalty_bps=st.integers(10_000, 30_000),
)
def test_any_collection_on_a_late_schedule_adds_up(
    late_days: int,
    amount: int,
    order: CollectionOrder,
    bank_bps: int,
    method: RepaymentMethod,
    penalty_bps: int,
) -> None:
    terms = replace(
        FIXED,
        bank_share_bps=bank_bps,
        platform_share_bps=10_000 - bank_bps,
        repayment_method=method,
        penalty_rate_bps=penalty_bps,
    )
    ledger = paid_out(terms, 1_200_000)
    event = LoanEvent(
        type=E.COLLECTION,
        event_date=date(2028, 2, 29) + timedelta(days=late_days),
        amount_fen=amount,
    )
    try:
        paid = apportion(event, ledger=ledger, terms=terms, order=order, case_id=CASE)
    except FailedPrecondition as refused:
        [violation] = refused.violations
        assert violation.type == "COLLECTION_ABOVE_OWED"
        return
    assert paid.principal_fen + paid.interest_fen + paid.penalty_fen == amount
    _, after = run(terms, ledger, paid, S.DISBURSED)
    assert after.bank_share_repaid_fen + after.platform_share_repaid_fen == amount
    assert after.bank_share_repaid_fen == amount * bank_bps // 10_000
    for name in (
        "penalty_outstanding_fen",
        "interest_outstanding_fen",
        "principal_outstanding_fen",
    ):
        assert getattr(after, name) >= 0
    if order is CollectionOrder.INTEREST_FIRST:  # penalty first, then interest
        assert paid.penalty_fen == min(
            amount, accrue(ledger, terms, event.event_date).penalty_outstanding_fen
        )
