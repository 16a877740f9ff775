"""Day statements replayed from a case's events: over any run of days, each day's closing is
the next day's opening, the daily interest adds up to the ledger's, the collections and
payouts add up to the ledger's, and the two lenders' shares always sum to the amounts."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.decision import LoanTerms
from gateway.domain.ledger import LoanEvent, LoanEventType, accrue, replay
from gateway.domain.money import BPS_WHOLE
from gateway.domain.reconciliation import CaseRecord, NetPayer, day_line, net, totals
from gateway.domain.scoring import ProductType

START = date(2028, 2, 25)  # across a leap day


def terms(amount: int, bank_bps: int) -> LoanTerms:
    return LoanTerms(
        product=ProductType.REVOLVING_LINE,
        amount_fen=amount,
        fixed_amount_fen=0,
        term_months=12,
        revolving_daily_rate_ppm=600,
        fixed_daily_rate_ppm=0,
        bank_share_bps=bank_bps,
        platform_share_bps=BPS_WHOLE - bank_bps,
    )


@given(
    amount=st.integers(1, 10**9),
    bank_bps=st.integers(0, BPS_WHOLE),
    repayments=st.lists(st.tuples(st.integers(0, 9), st.integers(1, 100)), max_size=6),
)
def test_days_chain_and_add_up_to_the_ledger(
    amount: int, bank_bps: int, repayments: list[tuple[int, int]]
) -> None:
    agreed = terms(amount, bank_bps)
    events = [
        LoanEvent(
            type=LoanEventType.DISBURSED,
            event_date=START,
            bank_loan_reference="BL",
            disbursed_fen=amount,
        )
    ]
    outstanding = amount
    day = START
    for gap, percent in sorted(repayments):
        day = max(day, START + timedelta(days=gap))
        principal = outstanding * percent // 100
        if principal == 0:
            continue
        outstanding -= principal
        events.append(
            LoanEvent(type=LoanEventType.REPAYMENT, event_date=day, principal_fen=principal)
        )
    record = CaseRecord(case_id="c", platform_merchant_id="m", terms=agreed, events=tuple(events))
    days = [START + timedelta(days=n) for n in range(12)]
    lines = [day_line(record, d) for d in days]
    assert all(line is not None for line in lines) or outstanding == 0
    present = [line for line in lines if line is not None]
    for before, after in itertools.pairwise(present):
        assert before.closing_principal_fen == after.opening_principal_fen
    ledger = accrue(replay(events, agreed, case_id="c"), agreed, days[-1] + timedelta(days=1))
    total = totals(present)
    assert total.interest_accrued_fen == ledger.interest_accrued_fen
    assert total.drawn_fen == ledger.principal_disbursed_fen
    assert total.principal_collected_fen == ledger.principal_repaid_fen
    assert total.bank_share_collected_fen == ledger.bank_share_repaid_fen
    for line in present:
        assert line.bank_funded_fen + line.platform_funded_fen == line.drawn_fen
        collected = line.principal_collected_fen + line.interest_collected_fen
        assert line.bank_share_collected_fen + line.platform_share_collected_fen == collected
        assert line.collected_by_bank_fen == collected  # no sweeps here: the bank collects all
        assert line.bank_owes_platform_fen == line.platform_share_collected_fen
        assert line.platform_owes_bank_fen == line.platform_funded_fen
    payer, amount_owed = net(total)
    difference = total.platform_owes_bank_fen - total.bank_owes_platform_fen
    assert amount_owed == abs(difference)
    assert payer is (
        NetPayer.PLATFORM if difference > 0 else NetPayer.BANK if difference < 0 else NetPayer.NONE
    )


def test_a_day_without_balance_or_movement_has_no_line() -> None:
    record = CaseRecord(case_id="c", platform_merchant_id="m", terms=terms(100, 7000), events=())
    assert day_line(record, START) is None
