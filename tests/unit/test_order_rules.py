"""Order financing's rules: the shape of a batch, the advance cap at its boundary, the line and
trade-data checks, and the settlement sweep's arithmetic (interest first, then the advance,
split by bps, the rest to the merchant) as properties over any amounts."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.decision import LoanTerms
from gateway.domain.ledger import (
    Ledger,
    LoanEvent,
    accrue,
    advance_orders,
    replay,
    sweep_settlement,
)
from gateway.domain.ledger import LoanEventType as E
from gateway.domain.money import BPS_WHOLE
from gateway.domain.orders import (
    FinancedOrder,
    OrderState,
    OverdueReason,
    PendingOrder,
    TradeData,
    advance_cap_fen,
    batch_refusals,
    days_overdue,
    orders_problems,
    past_due,
)
from gateway.domain.scoring import ProductType
from gateway.errors import FailedPrecondition

TODAY = date(2026, 12, 6)


def order(
    order_id: str = "O-1",
    value: int = 1_000_000,
    advance: int = 800_000,
    settle: date | None = TODAY + timedelta(days=10),
) -> PendingOrder:
    return PendingOrder(
        order_id=order_id,
        order_value_fen=value,
        advance_fen=advance,
        expected_settlement_date=settle,
    )


def line(amount_fen: int = 10_000_000, *, bank_bps: int = 7000, rate: int = 600) -> LoanTerms:
    return LoanTerms(
        product=ProductType.ORDER_LOAN,
        amount_fen=amount_fen,
        fixed_amount_fen=0,
        term_months=12,
        revolving_daily_rate_ppm=rate,
        fixed_daily_rate_ppm=0,
        bank_share_bps=bank_bps,
        platform_share_bps=BPS_WHOLE - bank_bps,
    )


def refusals(orders: list[PendingOrder], **overrides: object) -> set[str]:
    values: dict[str, object] = {
        "already_financed": frozenset(),
        "cap_bps": 8000,
        "line_fen": 10_000_000,
        "drawn_or_pending_fen": 0,
        "open_order_value_fen": 0,
        "trade": TradeData(as_of=TODAY, last_month_gmv_fen=40_000_000),
        "today": TODAY,
        "case_subject": "financingCases/c",
    }
    values.update(overrides)
    return {r.type for r in batch_refusals(orders, **values)}  # type: ignore[arg-type]


# --- shape ---------------------------------------------------------------------------------


def test_a_clean_batch_has_no_problems() -> None:
    assert orders_problems([order(), order("O-2")], today=TODAY) == []


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (order(order_id=""), "orders[0].order_id"),
        (order(order_id="has space"), "orders[0].order_id"),
        (order(order_id="x" * 65), "orders[0].order_id"),
        (order(value=0), "orders[0].order_value"),
        (order(advance=0), "orders[0].advance"),
        (order(value=10**12 + 1, advance=1), "orders[0].order_value"),
        (order(value=100, advance=101), "orders[0].advance"),
        (order(settle=None), "orders[0].expected_settlement_date"),
        (order(settle=TODAY), "orders[0].expected_settlement_date"),
        (order(settle=TODAY + timedelta(days=181)), "orders[0].expected_settlement_date"),
    ],
)
def test_each_bad_order_field_is_named(bad: PendingOrder, field: str) -> None:
    assert [p.field for p in orders_problems([bad], today=TODAY)] == [field]


def test_settlement_dates_at_the_edges_of_the_window_are_fine() -> None:
    edges = [
        order("A", settle=TODAY + timedelta(days=1)),
        order("B", settle=TODAY + timedelta(180)),
    ]
    assert orders_problems(edges, today=TODAY) == []


def test_a_batch_holds_one_to_a_hundred_distinct_orders() -> None:
    assert [p.field for p in orders_problems([], today=TODAY)] == ["orders"]
    many = [order(f"O-{i}") for i in range(101)]
    assert [p.field for p in orders_problems(many, today=TODAY)] == ["orders"]
    assert orders_problems(many[:100], today=TODAY) == []
    twice = orders_problems([order("O-1"), order("O-1")], today=TODAY)
    assert [p.field for p in twice] == ["orders[1].order_id"]


# --- policy --------------------------------------------------------------------------------


def test_the_advance_cap_rounds_down_and_is_inclusive() -> None:
    assert advance_cap_fen(1_000_001, 8000) == 800_000  # 800,000.8 rounds down
    assert refusals([order(value=1_000_001, advance=800_000)]) == set()
    assert refusals([order(value=1_000_001, advance=800_001)]) == {"ADVANCE_ABOVE_CAP"}
    assert refusals([order(advance=500_001)], cap_bps=5000) == {"ADVANCE_ABOVE_CAP"}


def test_the_line_counts_what_is_drawn_and_pending() -> None:
    batch = [order(advance=800_000)]
    assert refusals(batch, line_fen=800_000) == set()
    assert refusals(batch, line_fen=800_000, drawn_or_pending_fen=1) == {"ORDER_LINE_EXCEEDED"}


def test_orders_must_fit_in_a_month_of_the_merchants_trade() -> None:
    batch = [order(value=1_000_000)]
    month = TradeData(as_of=TODAY, last_month_gmv_fen=1_500_000)
    assert refusals(batch, trade=month, open_order_value_fen=500_000) == set()
    assert refusals(batch, trade=month, open_order_value_fen=500_001) == {"ORDERS_ABOVE_TRADE"}
    assert refusals(batch, trade=None) == {"TRADE_DATA_MISSING"}
    stale = TradeData(as_of=TODAY - timedelta(days=46), last_month_gmv_fen=10**9)
    assert refusals(batch, trade=stale) == {"TRADE_DATA_STALE"}
    fresh_enough = TradeData(as_of=TODAY - timedelta(days=45), last_month_gmv_fen=10**9)
    assert refusals(batch, trade=fresh_enough) == set()


def test_every_refusal_is_reported_at_once() -> None:
    batch = [order("O-1", advance=900_000), order("O-2")]
    found = refusals(batch, already_financed=frozenset({"O-2"}), line_fen=1, trade=None)
    assert found == {
        "ADVANCE_ABOVE_CAP",
        "ORDER_ALREADY_FINANCED",
        "ORDER_LINE_EXCEEDED",
        "TRADE_DATA_MISSING",
    }


# --- overdue -------------------------------------------------------------------------------


def test_past_due_and_days_overdue() -> None:
    funded = FinancedOrder(
        batch_id="b", order=order(settle=TODAY), state=OrderState.FUNDED, advance_outstanding_fen=1
    )
    assert not past_due(funded, TODAY)
    assert past_due(funded, TODAY + timedelta(days=1))
    late = FinancedOrder(
        batch_id="b",
        order=order(settle=TODAY - timedelta(days=4)),
        state=OrderState.OVERDUE,
        advance_outstanding_fen=1,
        overdue_reason=OverdueReason.PAST_SETTLEMENT_DATE,
    )
    refunded_early = FinancedOrder(
        batch_id="b",
        order=order(settle=TODAY + timedelta(days=9)),
        state=OrderState.OVERDUE,
        advance_outstanding_fen=1,
        overdue_reason=OverdueReason.REFUNDED,
    )
    assert days_overdue([late, refunded_early, funded], TODAY) == 4
    assert days_overdue([refunded_early], TODAY) == 1  # due the day it was refunded
    assert days_overdue([funded], TODAY) == 0


# --- ledger: advances and sweeps -----------------------------------------------------------


def test_advances_draw_on_the_line_and_accrue_from_their_day() -> None:
    terms = line(1_000_000)
    ledger = advance_orders(Ledger(), terms, advance_fen=600_000, on=TODAY, case_id="c")
    assert ledger.principal_outstanding_fen == ledger.principal_disbursed_fen == 600_000
    later = TODAY + timedelta(days=2)
    ledger = advance_orders(ledger, terms, advance_fen=400_000, on=later, case_id="c")
    assert ledger.principal_outstanding_fen == 1_000_000
    assert ledger.interest_accrued_micro == 600_000 * 600 * 2
    with pytest.raises(FailedPrecondition) as refused:
        advance_orders(ledger, terms, advance_fen=1, on=later, case_id="c")
    assert refused.value.violations[0].type == "ORDER_LINE_EXCEEDED"
    with pytest.raises(FailedPrecondition) as refused:
        advance_orders(ledger, line(10**9), advance_fen=1, on=TODAY, case_id="c")
    assert refused.value.violations[0].type == "EVENT_OUT_OF_ORDER"


def test_a_settlement_pays_interest_then_the_advance_and_the_rest_goes_to_the_merchant() -> None:
    terms = line(bank_bps=7000)
    ledger = advance_orders(Ledger(), terms, advance_fen=1_200_000, on=TODAY, case_id="c")
    # 7 days on 12,000 yuan at 600 ppm a day: 50.40 yuan of interest.
    on = TODAY + timedelta(days=7)
    # This order's own interest: 7 days on its 8,000 yuan, 33.60 yuan.
    after, swept = sweep_settlement(
        ledger,
        terms,
        settled_fen=1_000_000,
        advance_outstanding_fen=800_000,
        interest_due_fen=3_360,
        on=on,
        case_id="c",
    )
    assert (swept.interest_fen, swept.principal_fen) == (3_360, 800_000)
    assert swept.bank_share_fen == 803_360 * 7000 // BPS_WHOLE == 562_352
    assert swept.platform_share_fen == 241_008
    assert swept.to_merchant_fen == 196_640
    assert after.principal_outstanding_fen == 400_000
    assert after.interest_outstanding_fen == 5_040 - 3_360
    # The last open order pays all the interest left.
    _, last = sweep_settlement(
        ledger,
        terms,
        settled_fen=1_000_000,
        advance_outstanding_fen=800_000,
        interest_due_fen=None,
        on=on,
        case_id="c",
    )
    assert last.interest_fen == 5_040
    # Too small a settlement pays interest first and leaves the advance partly owed.
    _, short = sweep_settlement(
        ledger,
        terms,
        settled_fen=4_000,
        advance_outstanding_fen=800_000,
        interest_due_fen=3_360,
        on=on,
        case_id="c",
    )
    assert (short.interest_fen, short.principal_fen, short.to_merchant_fen) == (3_360, 640, 0)


@given(
    advance=st.integers(1, 10**10),
    drawn_extra=st.integers(0, 10**10),
    settled=st.integers(1, 10**11),
    days=st.integers(0, 400),
    bank_bps=st.integers(0, BPS_WHOLE),
    rate=st.integers(1, 10_000),
    due=st.none() | st.integers(0, 10**9),
)
def test_a_sweep_always_adds_up(
    advance: int,
    drawn_extra: int,
    settled: int,
    days: int,
    bank_bps: int,
    rate: int,
    due: int | None,
) -> None:
    terms = line(advance + drawn_extra, bank_bps=bank_bps, rate=rate)
    ledger = advance_orders(
        Ledger(), terms, advance_fen=advance + drawn_extra, on=TODAY, case_id="c"
    )
    on = TODAY + timedelta(days=days)
    owed_interest = accrue(ledger, terms, on).interest_outstanding_fen
    after, swept = sweep_settlement(
        ledger,
        terms,
        settled_fen=settled,
        advance_outstanding_fen=advance,
        interest_due_fen=due,
        on=on,
        case_id="c",
    )
    parts = (swept.interest_fen, swept.principal_fen, swept.to_merchant_fen)
    assert all(p >= 0 for p in parts)
    assert sum(parts) == settled
    assert (
        swept.bank_share_fen + swept.platform_share_fen == swept.interest_fen + swept.principal_fen
    )
    assert (
        swept.bank_share_fen == (swept.interest_fen + swept.principal_fen) * bank_bps // BPS_WHOLE
    )
    # Interest first: the advance is touched only once the interest is paid.
    assert swept.interest_fen == min(
        settled, owed_interest if due is None else min(due, owed_interest)
    )
    assert swept.principal_fen == min(settled - swept.interest_fen, advance)
    assert after.principal_outstanding_fen == advance + drawn_extra - swept.principal_fen
    assert after.interest_outstanding_fen == owed_interest - swept.interest_fen
    assert after.bank_share_repaid_fen == swept.bank_share_fen
    # The recorded events alone give the same ledger back.
    recorded = [
        LoanEvent(type=E.ORDER_ADVANCE, event_date=TODAY, disbursed_fen=advance + drawn_extra),
        LoanEvent(
            type=E.SETTLEMENT_SWEEP,
            event_date=on,
            principal_fen=swept.principal_fen,
            interest_fen=swept.interest_fen,
        ),
    ]
    assert replay(recorded, terms, case_id="c") == after
