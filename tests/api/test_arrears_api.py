"""Arrears from the repayment schedule through the real services: the sweep puts a scheduled
loan past due into OVERDUE with the days the schedule says, records each new bucket once, and
at the bank's policy day count declares the default (listing the borrower) for both lenders;
a loan repaid on schedule is left alone."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import test_blacklist_api
from colending.v1 import common_pb2, financing_pb2
from colending.v1 import partner_bank_service_pb2 as pb
from test_blacklist_api import Net
from test_decision_api import acknowledged_case, approve, decide, terms
from test_loan_event_api import disbursed, fen
from test_loan_event_api import report as loan_event

from gateway.domain.policy import EligibilityPolicy
from gateway.partners.convert import policy_to_proto
from gateway.store import blacklist_repository as bl

clock = test_blacklist_api.clock
gateway = test_blacklist_api.gateway
net = test_blacklist_api.net
E = financing_pb2


def scheduled_loan(net: Net, merchant_id: str) -> tuple[str, Any]:
    """A 3-month equal-principal fixed loan paid out 30 days ago: (case id, its schedule)."""
    case_id, offered = acknowledged_case(net.api, merchant_id)
    loan = terms(min(offered, 120_000), product=common_pb2.PRODUCT_TYPE_FIXED_LOAN, term_months=3)
    loan.repayment_method = E.REPAYMENT_METHOD_EQUAL_PRINCIPAL
    decide(net.api, case_id, approve(loan)).expect_ok()
    amount = loan.amount.amount_minor // 100
    case = loan_event(net.api, case_id, disbursed(amount)).expect_ok().response.financing_case
    return case_id, case.schedule


def due(instalment: Any) -> date:
    d = instalment.due_date
    return date(d.year, d.month, d.day)


def to_day(net: Net, day: date) -> None:
    net.clock.advance(days=(day - net.clock.today()).days)


def case_of(net: Net, case_id: str) -> Any:
    request = pb.GetFinancingCaseRequest(case_id=case_id)
    return (
        net.api.as_bank("bank-a", "GetFinancingCase", request).expect_ok().response.financing_case
    )


def test_a_loan_falls_into_arrears_by_its_schedule_and_defaults_at_90_days(
    net: Net, gateway: Any
) -> None:
    case_id, schedule = scheduled_loan(net, "m-1001")
    first = due(schedule[0])
    to_day(net, first)
    assert gateway.financing.sweep_arrears() == 0  # due today: not late yet
    to_day(net, first + timedelta(days=5))
    assert gateway.financing.sweep_arrears() == 1
    case = case_of(net, case_id)
    assert case.state == E.FINANCING_STATE_OVERDUE
    step = case.history[-1]
    assert (step.actor, step.loan_event.type, step.loan_event.days_overdue) == (
        "gateway",
        E.LOAN_EVENT_TYPE_OVERDUE,
        5,
    )
    assert gateway.financing.sweep_arrears() == 0  # same bucket: nothing new to record
    to_day(net, first + timedelta(days=31))
    assert gateway.financing.sweep_arrears() == 1
    assert case_of(net, case_id).history[-1].loan_event.days_overdue == 31  # into M2
    to_day(net, first + timedelta(days=90))
    assert gateway.financing.sweep_arrears() == 1
    case = case_of(net, case_id)
    assert case.state == E.FINANCING_STATE_DEFAULTED
    assert [s.loan_event.type for s in case.history[-2:]] == [
        E.LOAN_EVENT_TYPE_OVERDUE,
        E.LOAN_EVENT_TYPE_DEFAULT,
    ]
    assert case.history[-2].loan_event.days_overdue == 90
    with net.api.database.reading() as session:
        assert bl.in_force_for_case(session, case_id) is not None  # listed for every bank
    assert gateway.financing.sweep_arrears() == 0


def test_a_loan_repaid_on_schedule_stays_current(net: Net, gateway: Any) -> None:
    case_id, schedule = scheduled_loan(net, "m-1002")
    first = due(schedule[0])
    to_day(net, first)
    paid = E.LoanEvent(
        type=E.LOAN_EVENT_TYPE_REPAYMENT,
        event_date=schedule[0].due_date,
        principal=fen(schedule[0].principal.amount_minor),
        interest=fen(schedule[0].interest.amount_minor),
    )
    loan_event(net.api, case_id, paid).expect_ok()
    to_day(net, first + timedelta(days=20))
    assert gateway.financing.sweep_arrears() == 0
    assert case_of(net, case_id).state == E.FINANCING_STATE_REPAYING
    # One fen short of the second instalment is still late.
    second = due(schedule[1])
    short = E.LoanEvent(
        type=E.LOAN_EVENT_TYPE_REPAYMENT,
        event_date=schedule[1].due_date,
        principal=fen(schedule[1].principal.amount_minor - 1),
        interest=fen(schedule[1].interest.amount_minor),
    )
    to_day(net, second)
    loan_event(net.api, case_id, short).expect_ok()
    to_day(net, second + timedelta(days=1))
    assert gateway.financing.sweep_arrears() == 1
    assert case_of(net, case_id).history[-1].loan_event.days_overdue == 1


def test_a_banks_own_default_day_count(net: Net, gateway: Any) -> None:
    policy = policy_to_proto(EligibilityPolicy(default_after_days=10))
    assert net.api.register("bank-c", policy=policy).policy.default_after_days == 10
    case_id, offered = acknowledged_case(net.api, "m-1003", "bank-c")
    loan = terms(min(offered, 120_000), product=common_pb2.PRODUCT_TYPE_FIXED_LOAN, term_months=3)
    loan.repayment_method = E.REPAYMENT_METHOD_INTEREST_FIRST
    decide(net.api, case_id, approve(loan), "bank-c").expect_ok()
    amount = loan.amount.amount_minor // 100
    schedule = (
        loan_event(net.api, case_id, disbursed(amount), "bank-c")
        .expect_ok()
        .response.financing_case.schedule
    )
    to_day(net, due(schedule[0]) + timedelta(days=10))
    assert gateway.financing.sweep_arrears() == 1
    request = pb.GetFinancingCaseRequest(case_id=case_id)
    case = net.api.as_bank("bank-c", "GetFinancingCase", request).expect_ok().response
    assert case.financing_case.state == E.FINANCING_STATE_DEFAULTED
