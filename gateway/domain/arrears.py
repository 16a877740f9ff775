"""Arrears of a scheduled loan, from its repayment schedule rather than only from what a bank
reports: days past due, the OVERDUE events that record them (on entering arrears and on each
new bucket, M1/M2/M3+), and the DEFAULT the gateway declares at the bank's policy day count
(90 by default), the same day for both lenders.

The principal and interest repaid of the scheduled part cover the instalments in order
(``ledger.days_in_arrears``, ``schedule.days_past_due``).
"""

from __future__ import annotations

from datetime import date

from gateway.domain.decision import LoanTerms
from gateway.domain.financing import FinancingState
from gateway.domain.ledger import Ledger, LoanEvent, LoanEventType, days_in_arrears
from gateway.domain.portfolio import bucket

S = FinancingState
# Loans the schedule can put into arrears or default.
IN_ARREARS_SCOPE = frozenset({S.DISBURSED, S.REPAYING, S.OVERDUE})


def arrears_events(
    *,
    state: FinancingState,
    terms: LoanTerms,
    ledger: Ledger,
    today: date,
    default_after_days: int,
    first_open_day: date | None = None,
) -> list[LoanEvent]:
    """The events the gateway records for the loan today: none while it is current or its
    bucket is unchanged; an OVERDUE with the days past due on entering arrears or a new
    bucket; and a DEFAULT once the days reach ``default_after_days``."""
    if state not in IN_ARREARS_SCOPE:
        return []
    days = days_in_arrears(terms, ledger, today)
    if days == 0:
        return []
    # Events are ordered per case, and closed books take none: never date one before the
    # case's last event or the bank's first open day.
    on = max(d for d in (today, ledger.accrued_through, first_open_day) if d is not None)
    events = []
    if state is not S.OVERDUE or bucket(days) != bucket(ledger.days_overdue):
        events.append(LoanEvent(type=LoanEventType.OVERDUE, event_date=on, days_overdue=days))
    if days >= default_after_days:  # from OVERDUE, which the event above ensures
        events.append(LoanEvent(type=LoanEventType.DEFAULT, event_date=on))
    return events
