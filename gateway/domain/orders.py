"""Order financing (订单贷款): advances against a merchant's orders awaiting settlement, repaid
from the settlements themselves.

A bank approves an ORDER_LOAN case like any other (its amount is the line, its rate the
revolving rate). The platform then offers batches of pending orders against that line; the bank
decides each batch as a whole. Rules, in the order a batch meets them:

Shape (INVALID_ARGUMENT, by field): 1..100 orders with distinct ids of 1..64 characters of
``[A-Za-z0-9._:-]``; a positive order value and advance, the advance at most the value; an
expected settlement date after today and within 180 days.

Policy (FAILED_PRECONDITION, every one at once):

* ``ORDER_ALREADY_FINANCED``: an order id of the merchant is in a pending, funded, settled or
  overdue batch order already. A declined or expired batch releases its orders.
* ``ADVANCE_ABOVE_CAP``: an advance above the bank's share of the order value
  (``order_advance_cap_bps``, 80 % by default; the cap rounds down to the fen).
* ``ORDER_LINE_EXCEEDED``: the principal outstanding, plus the advances of pending batches, plus
  this batch, above the case's line.
* ``TRADE_DATA_MISSING`` / ``TRADE_DATA_STALE`` / ``ORDERS_ABOVE_TRADE``: the merchant's latest
  trade snapshot (SubmitTradeSnapshot) must exist, be at most 45 days old, and the value of its
  open orders (pending or funded) plus this batch must not exceed the last month's GMV in it:
  a merchant cannot have more awaiting settlement than it sells in a month.

Settlement sweep: a settlement pays the interest on its own order's advance first (from the day
it was paid out to the settlement date, rounded half up; the last open order of the case pays
all interest left, so nothing is stranded by rounding), then the order's advance; the two
together are split between the lenders by the case's split (the bank's share rounded down,
``money.split_by_bps``), and the rest goes to the merchant. A settlement too small for both, a
refund, or no settlement by the expected date leaves the order OVERDUE, and with it the case,
until the advance is repaid: by a late settlement, or to the bank directly (its REPAYMENT or
RECOVERED event pays overdue orders first, oldest first, then funded ones).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from gateway.domain.decision import reason_code_problems
from gateway.domain.money import BPS_WHOLE, format_fen
from gateway.errors import FieldViolation, PreconditionViolation

MAX_ORDERS_PER_BATCH = 100
MAX_SETTLEMENT_DAYS = 180
MAX_SNAPSHOT_AGE_DAYS = 45
MAX_ORDER_FEN = 10**12  # RMB 10 billion: far above any order, far below int64 overflow
ORDER_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class OrderBatchState(enum.Enum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"
    EXPIRED = "expired"


class OrderState(enum.Enum):
    PENDING = "pending"
    FUNDED = "funded"
    SETTLED = "settled"
    OVERDUE = "overdue"
    DECLINED = "declined"
    EXPIRED = "expired"
    REPAID = "repaid"  # overdue, then repaid to the bank directly


# Orders that hold their id: a second batch may not finance them.
CLAIMING = frozenset(
    {
        OrderState.PENDING,
        OrderState.FUNDED,
        OrderState.SETTLED,
        OrderState.OVERDUE,
        OrderState.REPAID,
    }
)
# Orders whose value still awaits settlement (the trade-data check counts them).
OPEN = frozenset({OrderState.PENDING, OrderState.FUNDED})


class OverdueReason(enum.Enum):
    REFUNDED = "refunded"
    SHORT_SETTLEMENT = "short_settlement"
    PAST_SETTLEMENT_DATE = "past_settlement_date"


class BatchOutcome(enum.Enum):
    APPROVE = "approve"
    DECLINE = "decline"


class SettlementOutcome(enum.Enum):
    SETTLED = "settled"
    REFUNDED = "refunded"


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingOrder:
    order_id: str
    order_value_fen: int
    advance_fen: int
    expected_settlement_date: date | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Sweep:
    settled_fen: int
    interest_fen: int
    principal_fen: int
    bank_share_fen: int
    platform_share_fen: int
    to_merchant_fen: int
    settlement_date: date


@dataclass(frozen=True, slots=True, kw_only=True)
class FinancedOrder:
    batch_id: str
    order: PendingOrder
    state: OrderState
    advance_outstanding_fen: int
    overdue_reason: OverdueReason | None = None
    sweep: Sweep | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderBatch:
    batch_id: str
    sequence: int
    case_id: str
    bank_id: str
    platform_merchant_id: str
    consent_id: str
    state: OrderBatchState
    orders: tuple[FinancedOrder, ...]
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None = None
    decline_reason_codes: tuple[str, ...] = ()

    @property
    def total_order_value_fen(self) -> int:
        return sum(o.order.order_value_fen for o in self.orders)

    @property
    def total_advance_fen(self) -> int:
        return sum(o.order.advance_fen for o in self.orders)

    def order(self, order_id: str) -> FinancedOrder | None:
        return next((o for o in self.orders if o.order.order_id == order_id), None)


def orders_problems(
    orders: Sequence[PendingOrder], *, today: date, prefix: str = "orders"
) -> list[FieldViolation]:
    """Every shape problem of a batch's orders, by request path."""
    if not 1 <= len(orders) <= MAX_ORDERS_PER_BATCH:
        return [FieldViolation(prefix, f"must hold 1..{MAX_ORDERS_PER_BATCH} orders")]
    problems = []
    seen: set[str] = set()
    latest = today + timedelta(days=MAX_SETTLEMENT_DAYS)
    for i, order in enumerate(orders):
        p = f"{prefix}[{i}]."
        if not ORDER_ID_PATTERN.fullmatch(order.order_id):
            problems.append(
                FieldViolation(f"{p}order_id", "required: 1..64 characters of [A-Za-z0-9._:-]")
            )
        elif order.order_id in seen:
            problems.append(FieldViolation(f"{p}order_id", f"duplicate order {order.order_id}"))
        seen.add(order.order_id)
        for name, value in (
            ("order_value", order.order_value_fen),
            ("advance", order.advance_fen),
        ):
            # Named by the Money field, so a bad currency (reported on .currency_code by the
            # conversion, with the amount left 0) is not reported twice.
            if not 0 < value <= MAX_ORDER_FEN:
                problems.append(FieldViolation(f"{p}{name}", "must be between 1 and 10^12 fen"))
        if 0 < order.order_value_fen < order.advance_fen:
            problems.append(FieldViolation(f"{p}advance", "must not exceed the order value"))
        settle = order.expected_settlement_date
        if settle is None:
            problems.append(FieldViolation(f"{p}expected_settlement_date", "required"))
        elif not today < settle <= latest:
            problems.append(
                FieldViolation(
                    f"{p}expected_settlement_date",
                    f"must be after today ({today.isoformat()}) and within "
                    f"{MAX_SETTLEMENT_DAYS} days ({latest.isoformat()})",
                )
            )
    return problems


def advance_cap_fen(order_value_fen: int, cap_bps: int) -> int:
    """The largest advance the bank's cap allows against one order (rounded down)."""
    return order_value_fen * cap_bps // BPS_WHOLE


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeData:
    """The merchant's latest trade snapshot, as the order checks need it."""

    as_of: date
    last_month_gmv_fen: int


def batch_refusals(
    orders: Sequence[PendingOrder],
    *,
    already_financed: frozenset[str],
    cap_bps: int,
    line_fen: int,
    drawn_or_pending_fen: int,
    open_order_value_fen: int,
    trade: TradeData | None,
    today: date,
    case_subject: str,
) -> list[PreconditionViolation]:
    """Every policy rule the batch breaks (the orders already shape-checked)."""
    refusals = []
    for i, order in enumerate(orders):
        if order.order_id in already_financed:
            refusals.append(
                PreconditionViolation(
                    "ORDER_ALREADY_FINANCED",
                    f"orders[{i}].order_id",
                    f"order {order.order_id} is already in a pending or funded batch; an order "
                    "is financed once",
                )
            )
        cap = advance_cap_fen(order.order_value_fen, cap_bps)
        if order.advance_fen > cap:
            refusals.append(
                PreconditionViolation(
                    "ADVANCE_ABOVE_CAP",
                    f"orders[{i}].advance",
                    f"advance {format_fen(order.advance_fen)} is above {cap_bps} bps of the "
                    f"order value ({format_fen(cap)})",
                )
            )
    advances = sum(o.advance_fen for o in orders)
    if drawn_or_pending_fen + advances > line_fen:
        refusals.append(
            PreconditionViolation(
                "ORDER_LINE_EXCEEDED",
                case_subject,
                f"advances {format_fen(advances)} on top of {format_fen(drawn_or_pending_fen)} "
                f"drawn or pending exceed the line of {format_fen(line_fen)}",
            )
        )
    value = sum(o.order_value_fen for o in orders)
    if trade is None:
        refusals.append(
            PreconditionViolation(
                "TRADE_DATA_MISSING",
                case_subject,
                "the merchant has no trade snapshot; submit one (SubmitTradeSnapshot) so the "
                "orders can be checked against its trade",
            )
        )
    elif (today - trade.as_of).days > MAX_SNAPSHOT_AGE_DAYS:
        refusals.append(
            PreconditionViolation(
                "TRADE_DATA_STALE",
                case_subject,
                f"the latest trade snapshot is as of {trade.as_of.isoformat()}, more than "
                f"{MAX_SNAPSHOT_AGE_DAYS} days ago",
            )
        )
    elif open_order_value_fen + value > trade.last_month_gmv_fen:
        refusals.append(
            PreconditionViolation(
                "ORDERS_ABOVE_TRADE",
                case_subject,
                f"orders worth {format_fen(value)} on top of {format_fen(open_order_value_fen)} "
                f"awaiting settlement exceed last month's GMV "
                f"({format_fen(trade.last_month_gmv_fen)} as of {trade.as_of.isoformat()})",
            )
        )
    return refusals


def settlement_problems(
    outcome: SettlementOutcome | None,
    *,
    settled_fen: int,
    settlement_date: date | None,
    latest_date: date,
) -> list[FieldViolation]:
    problems = []
    if outcome is None:
        problems.append(FieldViolation("outcome", "required"))
    field = "settled_amount"
    if outcome is SettlementOutcome.SETTLED and not 0 < settled_fen <= MAX_ORDER_FEN:
        problems.append(FieldViolation(field, "must be between 1 and 10^12 fen to settle"))
    elif outcome is SettlementOutcome.REFUNDED and settled_fen:
        problems.append(FieldViolation(field, "must be empty for a refund"))
    if settlement_date is None:
        problems.append(FieldViolation("settlement_date", "required"))
    elif settlement_date > latest_date:
        problems.append(
            FieldViolation("settlement_date", f"must not be after today ({latest_date})")
        )
    return problems


def batch_decision_problems(
    outcome: BatchOutcome | None, decline_reason_codes: tuple[str, ...]
) -> list[FieldViolation]:
    if outcome is None:
        return [FieldViolation("outcome", "required")]
    if outcome is BatchOutcome.DECLINE:
        return reason_code_problems(decline_reason_codes, field="decline_reason_codes")
    if decline_reason_codes:
        return [FieldViolation("decline_reason_codes", "only a decline has reason codes")]
    return []


def still_overdue(orders: Sequence[FinancedOrder]) -> bool:
    """Whether any order is overdue with some of its advance still owed: what keeps a case
    OVERDUE."""
    return any(o.state is OrderState.OVERDUE and o.advance_outstanding_fen > 0 for o in orders)


def past_due(order: FinancedOrder, today: date) -> bool:
    """A funded order, still owing, whose expected settlement date has gone by."""
    settle = order.order.expected_settlement_date
    return (
        order.state is OrderState.FUNDED
        and order.advance_outstanding_fen > 0
        and settle is not None
        and settle < today
    )


def days_overdue(orders: Sequence[FinancedOrder], today: date) -> int:
    """Days the oldest overdue order is past its due day (a refund is due the day it happens,
    so it counts as at least one day)."""
    days = [
        max(1, (today - o.order.expected_settlement_date).days)
        for o in orders
        if o.state is OrderState.OVERDUE
        and o.advance_outstanding_fen > 0
        and o.order.expected_settlement_date is not None
    ]
    return max(days, default=0)
