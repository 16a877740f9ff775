"""Servicing through the real services: a scheduled loan stamped with the bank's penalty rate
goes overdue, its penalty interest is collected first, it is prepaid in part (the schedule
GetFinancingCase returns is redone) and in full, and settles; a revolving line is drawn again
within what its ledger shows available. Each refusal names its rule and writes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import test_blacklist_api
from colending.v1 import common_pb2, financing_pb2
from test_arrears_api import case_of, due, scheduled_loan, to_day
from test_blacklist_api import Net
from test_decision_api import acknowledged_case, approve, decide, terms
from test_loan_event_api import disbursed, fen
from test_loan_event_api import report as loan_event

from gateway.domain.policy import EligibilityPolicy
from gateway.partners.convert import policy_to_proto

clock = test_blacklist_api.clock
gateway = test_blacklist_api.gateway
net = test_blacklist_api.net
E = financing_pb2


def on(net: Net, kind: int, **amounts: int) -> financing_pb2.LoanEvent:
    today = net.clock.today()
    return E.LoanEvent(
        type=kind,
        event_date=common_pb2.Date(year=today.year, month=today.month, day=today.day),
        **{name: fen(value) for name, value in amounts.items()},
    )


def test_overdue_penalty_first_then_prepaid_in_part_and_in_full(net: Net, gateway: Any) -> None:
    case_id, schedule = scheduled_loan(net, "m-3001")
    case = case_of(net, case_id)
    assert case.agreed_terms.penalty_rate_bps == 15_000  # the bank's policy, stamped
    to_day(net, due(schedule[0]) + timedelta(days=5))
    assert gateway.financing.sweep_arrears() == 1
    case = case_of(net, case_id)
    assert case.state == E.FINANCING_STATE_OVERDUE
    # Days 1..4 after the due date (the sweep's event closes the ledger on day 5).
    late_principal = schedule[0].principal.amount_minor
    rate = case.agreed_terms.fixed_daily_rate_ppm
    exact = late_principal * rate * 5_000 * 4  # the 0.5x above the contract rate
    assert case.ledger.penalty_accrued.amount_minor == (2 * exact + 10**10) // (2 * 10**10)

    # No prepayment while in arrears.
    before = net.api.row_counts()
    in_arrears = on(net, E.LOAN_EVENT_TYPE_PREPAYMENT, amount=10**6)
    loan_event(net.api, case_id, in_arrears).expect_precondition("ILLEGAL_TRANSITION")
    assert net.api.row_counts() == before

    # The arrears with their penalty and interest, penalty first.
    ledger = case.ledger
    owed = ledger.penalty_accrued.amount_minor + ledger.interest_accrued.amount_minor
    collected = on(net, E.LOAN_EVENT_TYPE_COLLECTION, amount=owed + late_principal)
    case = loan_event(net.api, case_id, collected).expect_ok().response.financing_case
    recorded = case.history[-1].loan_event
    assert recorded.penalty.amount_minor == ledger.penalty_accrued.amount_minor > 0
    assert recorded.principal.amount_minor == late_principal
    assert case.state == E.FINANCING_STATE_REPAYING
    assert case.ledger.penalty_repaid.amount_minor == recorded.penalty.amount_minor

    # A part prepayment the same day: no interest owed, so all of it prepays principal, and
    # the schedule is redone over the two due dates left.
    outstanding = case.ledger.principal_outstanding.amount_minor
    prepaid = on(net, E.LOAN_EVENT_TYPE_PREPAYMENT, amount=outstanding // 2)
    case = loan_event(net.api, case_id, prepaid).expect_ok().response.financing_case
    assert case.history[-1].loan_event.principal.amount_minor == outstanding // 2
    left = outstanding - outstanding // 2
    assert [due(i) for i in case.schedule] == [due(schedule[1]), due(schedule[2])]
    assert sum(i.principal.amount_minor for i in case.schedule) == left

    # More than is left is refused and writes nothing; all of it is a full prepayment.
    before = net.api.row_counts()
    loan_event(
        net.api, case_id, on(net, E.LOAN_EVENT_TYPE_PREPAYMENT, amount=left + 1)
    ).expect_precondition("PREPAYMENT_ABOVE_OUTSTANDING")
    assert net.api.row_counts() == before
    case = (
        loan_event(net.api, case_id, on(net, E.LOAN_EVENT_TYPE_PREPAYMENT, amount=left))
        .expect_ok()
        .response.financing_case
    )
    assert list(case.schedule) == []
    case = (
        loan_event(net.api, case_id, on(net, E.LOAN_EVENT_TYPE_SETTLED))
        .expect_ok()
        .response.financing_case
    )
    assert case.state == E.FINANCING_STATE_SETTLED


def test_a_revolving_line_is_drawn_again_within_what_is_available(net: Net) -> None:
    case_id, offered = acknowledged_case(net.api, "m-3002")
    limit = min(offered, 200_000)
    line = terms(limit, product=common_pb2.PRODUCT_TYPE_REVOLVING_LINE, term_months=6)
    decide(net.api, case_id, approve(line)).expect_ok()
    case = loan_event(net.api, case_id, disbursed(limit // 2)).expect_ok().response.financing_case
    assert case.ledger.available_limit.amount_minor == (limit - limit // 2) * 100
    assert case.ledger.HasField("maturity_date")
    available = case.ledger.available_limit.amount_minor

    before = net.api.row_counts()
    too_much = on(net, E.LOAN_EVENT_TYPE_DRAWDOWN, disbursed_amount=available + 1)
    loan_event(net.api, case_id, too_much).expect_precondition("DRAWDOWN_ABOVE_LIMIT")
    assert net.api.row_counts() == before
    nothing = on(net, E.LOAN_EVENT_TYPE_DRAWDOWN)
    loan_event(net.api, case_id, nothing).expect_invalid("event.disbursed_amount.amount_minor")

    drawn = on(net, E.LOAN_EVENT_TYPE_DRAWDOWN, disbursed_amount=available)
    case = loan_event(net.api, case_id, drawn).expect_ok().response.financing_case
    assert case.state == E.FINANCING_STATE_REPAYING
    assert case.ledger.available_limit.amount_minor == 0
    assert case.ledger.principal_outstanding.amount_minor == limit * 100


def test_a_policy_without_penalty_and_a_fixed_loan_without_a_line(net: Net) -> None:
    policy = policy_to_proto(EligibilityPolicy(penalty_rate_bps=10_000))  # no surcharge
    registered = net.api.register("bank-c", policy=policy)
    assert registered.policy.penalty_rate_bps == 10_000
    case_id, offered = acknowledged_case(net.api, "m-3003", "bank-c")
    loan = terms(min(offered, 120_000), product=common_pb2.PRODUCT_TYPE_FIXED_LOAN, term_months=3)
    loan.repayment_method = E.REPAYMENT_METHOD_EQUAL_INSTALMENT
    case = decide(net.api, case_id, approve(loan), "bank-c").expect_ok().response.financing_case
    assert case.agreed_terms.penalty_rate_bps == 10_000
    amount = loan.amount.amount_minor // 100
    loan_event(net.api, case_id, disbursed(amount), "bank-c").expect_ok()
    draw = on(net, E.LOAN_EVENT_TYPE_DRAWDOWN, disbursed_amount=100)
    loan_event(net.api, case_id, draw, "bank-c").expect_precondition("NO_REVOLVING_LIMIT")
    # A bank's own rate in its decision is kept; above 3x or below 1x is refused by field.
    case_id, offered = acknowledged_case(net.api, "m-3004", "bank-c")
    loan.penalty_rate_bps = 30_001
    decide(net.api, case_id, approve(loan), "bank-c").expect_invalid(
        "decision.terms.penalty_rate_bps"
    )
    loan.penalty_rate_bps = 9_999
    decide(net.api, case_id, approve(loan), "bank-c").expect_invalid(
        "decision.terms.penalty_rate_bps"
    )
    loan.penalty_rate_bps = 12_000
    case = decide(net.api, case_id, approve(loan), "bank-c").expect_ok().response.financing_case
    assert case.agreed_terms.penalty_rate_bps == 12_000
