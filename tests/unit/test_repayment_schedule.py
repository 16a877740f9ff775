"""Repayment schedules computed by hand, for each method, over a leap February and a 31-day
March; due dates at month ends; and properties over any loan: the principal parts sum to the
principal, nothing is negative, and the balance runs down to zero on the last due date."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.decision import LoanTerms, terms_problems
from gateway.domain.schedule import (
    RepaymentMethod,
    add_months,
    days_past_due,
    due_dates,
    level_payment_fen,
    repayment_schedule,
)
from gateway.domain.scoring import ProductType

M = RepaymentMethod
JAN_31_2028 = date(2028, 1, 31)  # 2028 is a leap year: February has 29 days


def rows(method: M, principal: int) -> list[tuple[date, int, int, int]]:
    return [
        (i.due_date, i.principal_fen, i.interest_fen, i.principal_after_fen)
        for i in repayment_schedule(
            principal_fen=principal, daily_rate_ppm=500, start=JAN_31_2028, months=3, method=method
        )
    ]


def test_due_dates_keep_the_day_or_take_the_months_last() -> None:
    assert due_dates(JAN_31_2028, 4) == [
        date(2028, 2, 29),
        date(2028, 3, 31),
        date(2028, 4, 30),
        date(2028, 5, 31),
    ]
    assert add_months(date(2027, 1, 31), 1) == date(2027, 2, 28)
    assert add_months(date(2027, 11, 15), 3) == date(2028, 2, 15)


def test_interest_first() -> None:
    # 12,000 yuan at 500 ppm a day: 29, 31 and 30 days of 6 yuan a day.
    assert rows(M.INTEREST_FIRST, 1_200_000) == [
        (date(2028, 2, 29), 0, 17_400, 1_200_000),
        (date(2028, 3, 31), 0, 18_600, 1_200_000),
        (date(2028, 4, 30), 1_200_000, 18_000, 0),
    ]


def test_equal_principal() -> None:
    # 10,000 yuan in thirds (the last takes the odd fen); interest on what is left:
    # 1,000,000 x 500 x 29 / 10^6 = 14,500; 666,667 x 500 x 31 / 10^6 = 10,333.34 -> 10,333;
    # 333,334 x 500 x 30 / 10^6 = 5,000.01 -> 5,000.
    assert rows(M.EQUAL_PRINCIPAL, 1_000_000) == [
        (date(2028, 2, 29), 333_333, 14_500, 666_667),
        (date(2028, 3, 31), 333_333, 10_333, 333_334),
        (date(2028, 4, 30), 333_334, 5_000, 0),
    ]


def test_equal_instalment() -> None:
    # r = 30 x 500 ppm = 1.5 % a month; A = 1,000,000 x 0.015 x 1.015^3 / (1.015^3 - 1)
    # = 343,382.84 -> 343,383. Principal = A - the month's actual-day interest:
    # 343,383 - 14,500 = 328,883; 671,117 x 500 x 31 / 10^6 = 10,402.31 -> 10,402, so 332,981;
    # the last repays the 338,136 left with 5,072.04 -> 5,072 of interest.
    assert level_payment_fen(1_000_000, 500, 3) == 343_383
    assert rows(M.EQUAL_INSTALMENT, 1_000_000) == [
        (date(2028, 2, 29), 328_883, 14_500, 671_117),
        (date(2028, 3, 31), 332_981, 10_402, 338_136),
        (date(2028, 4, 30), 338_136, 5_072, 0),
    ]


@given(
    principal=st.integers(1, 10**11),
    rate=st.integers(1, 10_000),
    months=st.integers(1, 36),
    start=st.dates(min_value=date(2024, 1, 1), max_value=date(2032, 12, 31)),
    method=st.sampled_from(RepaymentMethod),
)
def test_any_schedule_repays_exactly_the_principal(
    principal: int, rate: int, months: int, start: date, method: RepaymentMethod
) -> None:
    schedule = repayment_schedule(
        principal_fen=principal, daily_rate_ppm=rate, start=start, months=months, method=method
    )
    assert len(schedule) == months
    assert sum(i.principal_fen for i in schedule) == principal
    assert all(i.principal_fen >= 0 and i.interest_fen >= 0 for i in schedule)
    assert schedule[-1].principal_after_fen == 0
    assert [i.number for i in schedule] == list(range(1, months + 1))
    left = principal
    for instalment in schedule:
        left -= instalment.principal_fen
        assert instalment.principal_after_fen == left


def _terms(product: ProductType, method: RepaymentMethod | None) -> LoanTerms:
    fixed = {ProductType.FIXED_LOAN: 300_000_00, ProductType.COMBINED: 60_000_00}.get(product, 0)
    return LoanTerms(
        product=product,
        amount_fen=300_000_00,
        fixed_amount_fen=fixed,
        term_months=12,
        revolving_daily_rate_ppm=0 if product is ProductType.FIXED_LOAN else 600,
        fixed_daily_rate_ppm=500 if fixed else 0,
        bank_share_bps=7000,
        platform_share_bps=3000,
        repayment_method=method,
    )


@pytest.mark.parametrize("product", [ProductType.FIXED_LOAN, ProductType.COMBINED])
def test_a_fixed_part_may_name_a_method(product: ProductType) -> None:
    assert terms_problems(_terms(product, M.EQUAL_PRINCIPAL), prefix="terms") == []


@pytest.mark.parametrize("product", [ProductType.REVOLVING_LINE, ProductType.ORDER_LOAN])
def test_a_line_without_a_fixed_part_may_not(product: ProductType) -> None:
    problems = terms_problems(_terms(product, M.EQUAL_PRINCIPAL), prefix="terms")
    assert [p.field for p in problems] == ["terms.repayment_method"]


def test_days_past_due_follow_the_oldest_uncovered_instalment() -> None:
    schedule = repayment_schedule(
        principal_fen=1_000_000,
        daily_rate_ppm=500,
        start=JAN_31_2028,
        months=3,
        method=M.EQUAL_PRINCIPAL,
    )
    first, second, _ = schedule
    feb_29, mar_31 = first.due_date, second.due_date

    def late(principal: int, interest: int, today: date) -> int:
        return days_past_due(
            schedule, principal_paid_fen=principal, interest_paid_fen=interest, today=today
        )

    assert late(0, 0, feb_29) == 0  # due today
    assert late(0, 0, date(2028, 3, 1)) == 1
    assert late(first.principal_fen - 1, first.interest_fen, date(2028, 3, 5)) == 5
    assert late(first.principal_fen, first.interest_fen - 1, date(2028, 3, 5)) == 5
    # Interest beyond the schedule does not stand in for principal.
    assert late(first.principal_fen - 1, first.total_fen, date(2028, 3, 5)) == 5
    assert late(first.principal_fen, first.interest_fen, date(2028, 3, 31)) == 0
    assert late(first.principal_fen, first.interest_fen, date(2028, 4, 2)) == 2
    principal = sum(i.principal_fen for i in schedule)
    interest = sum(i.interest_fen for i in schedule)
    assert late(principal, interest, date(2029, 1, 1)) == 0
    assert mar_31 == date(2028, 3, 31)
