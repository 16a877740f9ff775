"""Repayment schedules of a fixed loan (or a combined line's fixed part), chosen in the decision.

* Due dates: one a month on the disbursement's day of the month, or the month's last day when
  it has fewer days (a loan paid out on 31 January is due on 29 February in a leap year, then
  31 March). The first falls a month after the disbursement.
* Interest of an instalment: the principal outstanding over the period's actual days at the
  daily rate, ``principal x ppm x days / 10^6``, rounded half up to the fen (simple interest,
  as the ledger accrues it).
* ``INTEREST_FIRST`` (先息后本): interest each month, the whole principal with the last.
* ``EQUAL_PRINCIPAL`` (等额本金): the principal divided evenly, rounded down to the fen, the last
  instalment taking the remainder; interest on what is left.
* ``EQUAL_INSTALMENT`` (等额本息): a level payment ``A = P r (1+r)^n / ((1+r)^n - 1)`` at the
  nominal monthly rate ``r = 30 x daily rate`` (computed exactly, rounded half up to the fen);
  each month's principal is ``A`` less that month's actual-day interest (never below zero),
  and the last instalment repays what is left with its interest, absorbing every rounding.

Every figure is an integer number of fen and the principal parts always sum to the principal.

Days past due come from the schedule: the principal and the interest repaid cover the
instalments in order, each on its own, and the oldest one left uncovered is late from the day
after its due date. After a prepayment the ledger re-amortises what is left over the due dates
to come (``schedule_over``), numbered again from 1.
"""

from __future__ import annotations

import calendar
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from fractions import Fraction

from gateway.domain.money import PPM_WHOLE, simple_interest_fen

DAYS_PER_NOMINAL_MONTH = 30


class RepaymentMethod(enum.Enum):
    EQUAL_INSTALMENT = "equal_instalment"
    EQUAL_PRINCIPAL = "equal_principal"
    INTEREST_FIRST = "interest_first"


@dataclass(frozen=True, slots=True, kw_only=True)
class Instalment:
    number: int  # 1-based
    due_date: date
    principal_fen: int
    interest_fen: int
    principal_after_fen: int  # outstanding once this instalment is paid

    @property
    def total_fen(self) -> int:
        return self.principal_fen + self.interest_fen


def add_months(start: date, months: int) -> date:
    """``start`` plus ``months`` calendar months, on the same day or the month's last."""
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def due_dates(start: date, months: int) -> list[date]:
    # Each from the start, not from the previous one: 31 Jan -> 29 Feb -> 31 Mar, not 29 Mar.
    return [add_months(start, n) for n in range(1, months + 1)]


def level_payment_fen(principal_fen: int, daily_rate_ppm: int, months: int) -> int:
    """The equal instalment at the nominal monthly rate, exactly, rounded half up to the fen."""
    rate = Fraction(daily_rate_ppm * DAYS_PER_NOMINAL_MONTH, PPM_WHOLE)
    growth = (1 + rate) ** months
    exact = principal_fen * rate * growth / (growth - 1)
    return int(exact + Fraction(1, 2))  # positive: int() floors, so this is half up


def repayment_schedule(
    *,
    principal_fen: int,
    daily_rate_ppm: int,
    start: date,
    months: int,
    method: RepaymentMethod,
) -> list[Instalment]:
    """The instalments of ``principal_fen`` paid out on ``start`` over ``months`` months."""
    return list(
        schedule_over(
            principal_fen=principal_fen,
            daily_rate_ppm=daily_rate_ppm,
            start=start,
            dates=tuple(due_dates(start, months)),
            method=method,
        )
    )


def schedule_over(
    *,
    principal_fen: int,
    daily_rate_ppm: int,
    start: date,
    dates: tuple[date, ...],
    method: RepaymentMethod,
) -> tuple[Instalment, ...]:
    """The instalments of ``principal_fen``, outstanding from ``start``, due on ``dates``: a
    new loan's, or what is left after a prepayment re-amortised over the due dates after it."""
    months = len(dates)
    if principal_fen <= 0 or months == 0:
        return ()
    level = (
        level_payment_fen(principal_fen, daily_rate_ppm, months)
        if method is RepaymentMethod.EQUAL_INSTALMENT
        else 0
    )
    even = principal_fen // months
    outstanding = principal_fen
    previous = start
    instalments = []
    for number, due in enumerate(dates, start=1):
        interest = simple_interest_fen(outstanding, daily_rate_ppm, (due - previous).days)
        if number == months:
            principal = outstanding
        elif method is RepaymentMethod.INTEREST_FIRST:
            principal = 0
        elif method is RepaymentMethod.EQUAL_PRINCIPAL:
            principal = even
        else:
            principal = min(outstanding, max(0, level - interest))
        outstanding -= principal
        instalments.append(
            Instalment(
                number=number,
                due_date=due,
                principal_fen=principal,
                interest_fen=interest,
                principal_after_fen=outstanding,
            )
        )
        previous = due
    return tuple(instalments)


def days_past_due(
    instalments: Sequence[Instalment],
    *,
    principal_paid_fen: int,
    interest_paid_fen: int,
    today: date,
) -> int:
    """Days the oldest instalment not covered is past its due date on ``today``; 0 when nothing
    due is unpaid. An instalment is covered once the principal and the interest repaid of the
    scheduled part each reach what the instalments up to it ask (so interest paid beyond the
    schedule never stands in for principal). One due on D is one day late on D+1."""
    principal_due = interest_due = 0
    for instalment in instalments:
        principal_due += instalment.principal_fen
        interest_due += instalment.interest_fen
        if principal_paid_fen >= principal_due and interest_paid_fen >= interest_due:
            continue
        return max(0, (today - instalment.due_date).days)
    return 0


def overdue_principal_fen(
    instalments: Sequence[Instalment], *, principal_repaid_fen: int, on: date
) -> int:
    """Principal of the instalments due before ``on`` that ``principal_repaid_fen`` (the
    scheduled part's principal repaid) does not cover: what penalty interest accrues on."""
    due = sum(i.principal_fen for i in instalments if i.due_date < on)
    return max(0, due - principal_repaid_fen)
