"""Repayment schedules through the real servicers: a fixed loan approved with a repayment
method carries its schedule from the disbursement on, in GetFinancingCase; a method on a line
without a fixed part is refused, naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from colending.v1 import common_pb2, financing_pb2
from colending.v1 import partner_bank_service_pb2 as pb
from test_decision_api import acknowledged_case, approve, decide, terms
from test_loan_event_api import D0, day, disbursed
from test_loan_event_api import report as loan_event

from gateway.domain.schedule import RepaymentMethod, repayment_schedule

E = financing_pb2


@pytest.fixture
def banks(api: Any) -> Any:
    api.register("bank-a")
    return api


def test_a_fixed_loans_schedule_from_its_disbursement(banks: Any) -> None:
    case_id, offered = acknowledged_case(banks)
    amount = min(offered, 200_000) // 1000 * 1000
    loan = terms(amount, product=common_pb2.PRODUCT_TYPE_FIXED_LOAN, term_months=6)
    loan.repayment_method = E.REPAYMENT_METHOD_EQUAL_PRINCIPAL
    approved = decide(banks, case_id, approve(loan)).expect_ok().response.financing_case
    assert approved.agreed_terms.repayment_method == E.REPAYMENT_METHOD_EQUAL_PRINCIPAL
    assert list(approved.schedule) == []  # nothing is due before the money goes out

    case = loan_event(banks, case_id, disbursed(amount, offset=0)).expect_ok().response
    schedule = case.financing_case.schedule
    expected = repayment_schedule(
        principal_fen=amount * 100,
        daily_rate_ppm=500,
        start=D0,
        months=6,
        method=RepaymentMethod.EQUAL_PRINCIPAL,
    )
    assert [(i.number, i.principal.amount_minor, i.interest.amount_minor) for i in schedule] == [
        (i.number, i.principal_fen, i.interest_fen) for i in expected
    ]
    assert schedule[0].due_date != day(0)
    assert sum(i.principal.amount_minor for i in schedule) == amount * 100
    assert schedule[-1].principal_after.amount_minor == 0
    got = banks.as_bank("bank-a", "GetFinancingCase", pb.GetFinancingCaseRequest(case_id=case_id))
    assert list(got.expect_ok().response.financing_case.schedule) == list(schedule)


def test_a_method_needs_a_fixed_part(banks: Any) -> None:
    case_id, offered = acknowledged_case(banks)
    line = terms(min(offered, 200_000), product=common_pb2.PRODUCT_TYPE_REVOLVING_LINE)
    line.repayment_method = E.REPAYMENT_METHOD_INTEREST_FIRST
    decide(banks, case_id, approve(line)).expect_invalid("decision.terms.repayment_method")
    line.repayment_method = 9
    decide(banks, case_id, approve(line)).expect_invalid("decision.terms.repayment_method")
