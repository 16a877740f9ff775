"""Overdue buckets at their day boundaries, and vintages by month of first payout."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.domain.financing import FinancingState
from gateway.domain.ledger import Ledger
from gateway.domain.portfolio import CaseFigures, tally

S = FinancingState


def case(
    days: int, *, state: FinancingState = S.OVERDUE, on: date = date(2026, 11, 3)
) -> CaseFigures:
    return CaseFigures(
        bank_id="bank-a",
        state=state,
        decided=True,
        agreed=True,
        ledger=Ledger(
            principal_disbursed_fen=100,
            revolving_outstanding_fen=100,
            disbursed_on=on,
            days_overdue=days,
        ),
    )


@pytest.mark.parametrize(("days", "bucket"), [(1, 0), (30, 0), (31, 1), (60, 1), (61, 2), (400, 2)])
def test_buckets_at_their_boundaries(days: int, bucket: int) -> None:
    stats = tally("bank-a", [case(days)])
    got = [stats.overdue_m1_fen, stats.overdue_m2_fen, stats.overdue_m3_plus_fen]
    assert got == [100 if i == bucket else 0 for i in range(3)]


def test_only_overdue_cases_are_bucketed_and_vintages_go_by_month() -> None:
    stats = tally(
        "bank-a",
        [
            case(45),
            case(45, state=S.REPAYING),  # cured: its old days no longer count
            case(0, state=S.DEFAULTED, on=date(2026, 10, 31)),
        ],
    )
    assert (stats.overdue_m1_fen, stats.overdue_m2_fen, stats.overdue_m3_plus_fen) == (0, 100, 0)
    assert [
        (v.month, v.loans, v.outstanding_fen, v.overdue_fen, v.defaulted_count)
        for v in stats.vintages
    ] == [
        ("2026-10", 1, 100, 0, 1),
        ("2026-11", 2, 200, 100, 0),
    ]
