"""ReportLoanEvent: a case walked to settlement and to default, with a hand-computed ledger."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import grpc
import pytest
from colending.v1 import common_pb2, financing_pb2
from colending.v1 import partner_bank_service_pb2 as pb
from colending.v1.financing_pb2 import FinancingState as FS  # noqa: N817
from test_decision_api import acknowledged_case, approve, cny, decide, terms
from testkit import request_id

E = financing_pb2
D0 = date.today() - timedelta(days=30)


def day(offset: int) -> common_pb2.Date:
    d = D0 + timedelta(days=offset)
    return common_pb2.Date(year=d.year, month=d.month, day=d.day)


def fen(amount: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code="CNY", amount_minor=amount)


def report(api: Any, case_id: str, event: financing_pb2.LoanEvent, bank_id: str = "bank-a"):
    request = pb.ReportLoanEventRequest(request_id=request_id(), case_id=case_id, event=event)
    return api.as_bank(bank_id, "ReportLoanEvent", request)


def disbursed(amount_yuan: int = 300_000, offset: int = 0) -> financing_pb2.LoanEvent:
    return E.LoanEvent(
        type=E.LOAN_EVENT_TYPE_DISBURSED,
        event_date=day(offset),
        bank_loan_reference="LN-2026-0001",
        disbursed_amount=cny(amount_yuan),
    )


def repayment(principal: int, interest: int, offset: int) -> financing_pb2.LoanEvent:
    return E.LoanEvent(
        type=E.LOAN_EVENT_TYPE_REPAYMENT,
        event_date=day(offset),
        principal=fen(principal),
        interest=fen(interest),
    )


@pytest.fixture
def approved(api: Any) -> tuple[Any, str]:
    """bank-a approved RMB 300,000: fixed 60,000 at 500 ppm, revolving at 600 ppm, 70/30."""
    api.register("bank-a")
    api.register("bank-b")
    case_id, _ = acknowledged_case(api)
    decide(api, case_id, approve(terms(300_000, fixed_yuan=60_000, platform_bps=3000)))
    return api, case_id


def test_walk_to_settlement_with_a_hand_computed_ledger(approved: tuple[Any, str]) -> None:
    api, case_id = approved
    case = report(api, case_id, disbursed()).expect_ok().response.financing_case
    assert case.state == FS.FINANCING_STATE_DISBURSED
    assert case.ledger.principal_outstanding.amount_minor == 30_000_000

    # 10 days: 6,000,000 x 500 + 24,000,000 x 600 micro-fen a day = 17,400 fen a day.
    case = report(api, case_id, repayment(10_000_000, 174_000, 10)).expect_ok().response
    ledger = case.financing_case.ledger
    assert case.financing_case.state == FS.FINANCING_STATE_REPAYING
    assert ledger.interest_accrued.amount_minor == 174_000
    assert ledger.principal_outstanding.amount_minor == 20_000_000
    assert ledger.bank_share_repaid.amount_minor == 7_121_800  # 70 % of 10,174,000
    assert ledger.platform_share_repaid.amount_minor == 3_052_200

    # 5 more days on 6,000,000 fixed + 14,000,000 revolving: 11,400 fen a day.
    settled = report(api, case_id, E.LoanEvent(type=E.LOAN_EVENT_TYPE_SETTLED, event_date=day(15)))
    settled.expect(grpc.StatusCode.FAILED_PRECONDITION)
    assert "still outstanding" in settled.details
    report(api, case_id, repayment(20_000_000, 57_000, 15)).expect_ok()
    case = report(api, case_id, E.LoanEvent(type=E.LOAN_EVENT_TYPE_SETTLED, event_date=day(15)))
    final = case.expect_ok().response.financing_case
    assert final.state == FS.FINANCING_STATE_SETTLED
    assert final.ledger.principal_outstanding.amount_minor == 0
    assert final.ledger.interest_repaid.amount_minor == 231_000
    assert (
        final.ledger.bank_share_repaid.amount_minor
        + final.ledger.platform_share_repaid.amount_minor
        == 30_000_000 + 231_000
    )
    types = [e.loan_event.type for e in final.history if e.HasField("loan_event")]
    assert types == [
        E.LOAN_EVENT_TYPE_DISBURSED,
        E.LOAN_EVENT_TYPE_REPAYMENT,
        E.LOAN_EVENT_TYPE_REPAYMENT,
        E.LOAN_EVENT_TYPE_SETTLED,
    ]


def test_walk_to_default_and_write_off(approved: tuple[Any, str]) -> None:
    api, case_id = approved
    report(api, case_id, disbursed()).expect_ok()
    early = report(api, case_id, E.LoanEvent(type=E.LOAN_EVENT_TYPE_DEFAULT, event_date=day(40)))
    early.expect(grpc.StatusCode.INVALID_ARGUMENT)  # day 40 is in the future
    too_soon = report(api, case_id, E.LoanEvent(type=E.LOAN_EVENT_TYPE_DEFAULT, event_date=day(20)))
    too_soon.expect(grpc.StatusCode.FAILED_PRECONDITION)
    assert "DISBURSED" in too_soon.details
    overdue = E.LoanEvent(type=E.LOAN_EVENT_TYPE_OVERDUE, event_date=day(20), days_overdue=5)
    assert (
        report(api, case_id, overdue).expect_ok().response.financing_case.state
        == FS.FINANCING_STATE_OVERDUE
    )
    default = E.LoanEvent(type=E.LOAN_EVENT_TYPE_DEFAULT, event_date=day(25))
    assert (
        report(api, case_id, default).expect_ok().response.financing_case.state
        == FS.FINANCING_STATE_DEFAULTED
    )
    written_off = E.LoanEvent(type=E.LOAN_EVENT_TYPE_WRITTEN_OFF, event_date=day(28))
    case = report(api, case_id, written_off).expect_ok().response.financing_case
    assert case.state == FS.FINANCING_STATE_WRITTEN_OFF
    after = report(api, case_id, repayment(1, 0, 29))
    after.expect(grpc.StatusCode.FAILED_PRECONDITION)
    assert "WRITTEN_OFF" in after.details


def test_events_are_ordered_and_bounded_by_what_is_owed(approved: tuple[Any, str]) -> None:
    api, case_id = approved
    report(api, case_id, disbursed(offset=5)).expect_ok()
    result = report(api, case_id, repayment(1_000, 0, 4))
    result.expect_precondition("EVENT_OUT_OF_ORDER")
    report(api, case_id, repayment(30_000_001, 0, 6)).expect_precondition(
        "REPAYMENT_ABOVE_OUTSTANDING"
    )
    # One day of interest on the whole line is 17,400 fen; a fen more is refused.
    report(api, case_id, repayment(0, 17_401, 6)).expect_precondition("REPAYMENT_ABOVE_OUTSTANDING")
    report(api, case_id, repayment(0, 17_400, 6)).expect_ok()


def test_disbursement_needs_an_agreement_and_stays_within_it(api: Any) -> None:
    api.register("bank-a")
    case_id, _ = acknowledged_case(api)
    result = report(api, case_id, disbursed())
    result.expect(grpc.StatusCode.FAILED_PRECONDITION)
    assert "ACKNOWLEDGED" in result.details
    decide(api, case_id, approve(terms(200_000)))
    report(api, case_id, disbursed(200_001)).expect_precondition("DISBURSEMENT_ABOVE_TERMS")
    report(api, case_id, disbursed(200_000)).expect_ok()


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (E.LoanEvent(event_date=day(1)), "event.type"),
        (E.LoanEvent(type=E.LOAN_EVENT_TYPE_OVERDUE, days_overdue=3), "event.event_date"),
        (E.LoanEvent(type=E.LOAN_EVENT_TYPE_OVERDUE, event_date=day(1)), "event.days_overdue"),
        (
            E.LoanEvent(
                type=E.LOAN_EVENT_TYPE_DISBURSED, event_date=day(1), disbursed_amount=cny(10)
            ),
            "event.bank_loan_reference",
        ),
        (
            E.LoanEvent(
                type=E.LOAN_EVENT_TYPE_REPAYMENT,
                event_date=day(1),
                principal=common_pb2.Money(currency_code="USD", amount_minor=5),
            ),
            "event.principal.currency_code",
        ),
        (
            E.LoanEvent(
                type=E.LOAN_EVENT_TYPE_OVERDUE,
                event_date=day(1),
                days_overdue=2,
                principal=fen(5),
            ),
            "event.principal.amount_minor",
        ),
        (
            E.LoanEvent(
                type=E.LOAN_EVENT_TYPE_SETTLED,
                event_date=common_pb2.Date(year=2026, month=2, day=30),
            ),
            "event.event_date",
        ),
    ],
)
def test_bad_events_are_invalid_and_change_nothing(
    approved: tuple[Any, str], event: financing_pb2.LoanEvent, field: str
) -> None:
    api, case_id = approved
    before = api.row_counts()
    report(api, case_id, event).expect_invalid(field)
    assert api.row_counts() == before


def test_another_banks_case_is_not_found(approved: tuple[Any, str]) -> None:
    api, case_id = approved
    report(api, case_id, disbursed(), bank_id="bank-b").expect_not_found("financing case", case_id)


def test_a_collection_is_apportioned_by_the_gateway(api: Any) -> None:
    api.register("bank-a")
    case_id, offered = acknowledged_case(api)
    amount = min(offered, 300_000)
    decide(api, case_id, approve(terms(amount, product=common_pb2.PRODUCT_TYPE_REVOLVING_LINE)))
    report(api, case_id, disbursed(amount)).expect_ok()
    # 10 days on the whole line at 600 ppm a day, then 1,000 yuan of principal.
    interest = amount * 100 * 600 * 10 // 1_000_000
    collected = E.LoanEvent(
        type=E.LOAN_EVENT_TYPE_COLLECTION, event_date=day(10), amount=fen(interest + 100_000)
    )
    case = report(api, case_id, collected).expect_ok().response.financing_case
    recorded = case.history[-1].loan_event
    assert recorded.type == E.LOAN_EVENT_TYPE_COLLECTION
    assert (recorded.interest.amount_minor, recorded.principal.amount_minor) == (interest, 100_000)
    assert recorded.amount.amount_minor == interest + 100_000
    assert case.state == FS.FINANCING_STATE_REPAYING
    assert case.ledger.principal_outstanding.amount_minor == amount * 100 - 100_000
    # More than is owed: refused, and nothing is written.
    before = api.row_counts()
    too_much = E.LoanEvent(
        type=E.LOAN_EVENT_TYPE_COLLECTION, event_date=day(10), amount=fen(amount * 100)
    )
    report(api, case_id, too_much).expect_precondition("COLLECTION_ABOVE_OWED")
    assert api.row_counts() == before
    # A collection names its amount only.
    both = E.LoanEvent(
        type=E.LOAN_EVENT_TYPE_COLLECTION, event_date=day(10), amount=fen(5), principal=fen(5)
    )
    report(api, case_id, both).expect_invalid("event.principal.amount_minor")
