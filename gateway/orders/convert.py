"""Protobuf <-> domain conversion of pending orders, order batches and settlement sweeps."""

from __future__ import annotations

from colending.v1 import orders_pb2

from gateway.api.convert import (
    amount_or_zero,
    date_from_proto,
    date_to_proto,
    inverse_of,
    money,
    timestamp,
)
from gateway.domain.orders import (
    BatchOutcome,
    FinancedOrder,
    OrderBatch,
    OrderBatchState,
    OrderState,
    OverdueReason,
    PendingOrder,
    SettlementOutcome,
    Sweep,
)
from gateway.errors import FieldViolation

BATCH_STATES = {
    getattr(orders_pb2, f"ORDER_BATCH_STATE_{state.name}"): state for state in OrderBatchState
}
ORDER_STATE_NUMBERS = {
    state: getattr(orders_pb2, f"ORDER_STATE_{state.name}") for state in OrderState
}
OVERDUE_REASON_NUMBERS = {
    reason: getattr(orders_pb2, f"OVERDUE_REASON_{reason.name}") for reason in OverdueReason
}
BATCH_OUTCOMES = {
    orders_pb2.ORDER_BATCH_OUTCOME_APPROVE: BatchOutcome.APPROVE,
    orders_pb2.ORDER_BATCH_OUTCOME_DECLINE: BatchOutcome.DECLINE,
}
SETTLEMENT_OUTCOMES = {
    orders_pb2.SETTLEMENT_OUTCOME_SETTLED: SettlementOutcome.SETTLED,
    orders_pb2.SETTLEMENT_OUTCOME_REFUNDED: SettlementOutcome.REFUNDED,
}
BATCH_STATE_NUMBERS = inverse_of(BATCH_STATES)


def pending_order_from_proto(
    message: orders_pb2.PendingOrder, field: str, problems: list[FieldViolation]
) -> PendingOrder:
    return PendingOrder(
        order_id=message.order_id,
        order_value_fen=amount_or_zero(message.order_value, f"{field}.order_value", problems),
        advance_fen=amount_or_zero(message.advance, f"{field}.advance", problems),
        expected_settlement_date=date_from_proto(
            message.expected_settlement_date, f"{field}.expected_settlement_date", problems
        ),
    )


def pending_order_to_proto(order: PendingOrder) -> orders_pb2.PendingOrder:
    return orders_pb2.PendingOrder(
        order_id=order.order_id,
        order_value=money(order.order_value_fen),
        advance=money(order.advance_fen),
        expected_settlement_date=date_to_proto(order.expected_settlement_date),
    )


def _sweep_to_proto(sweep: Sweep | None) -> orders_pb2.SettlementSweep | None:
    if sweep is None:
        return None
    return orders_pb2.SettlementSweep(
        settled_amount=money(sweep.settled_fen),
        interest=money(sweep.interest_fen),
        principal=money(sweep.principal_fen),
        bank_share=money(sweep.bank_share_fen),
        platform_share=money(sweep.platform_share_fen),
        to_merchant=money(sweep.to_merchant_fen),
        settlement_date=date_to_proto(sweep.settlement_date),
    )


def _order_to_proto(order: FinancedOrder) -> orders_pb2.FinancedOrder:
    return orders_pb2.FinancedOrder(
        order=pending_order_to_proto(order.order),
        state=ORDER_STATE_NUMBERS[order.state],
        overdue_reason=OVERDUE_REASON_NUMBERS[order.overdue_reason]
        if order.overdue_reason
        else orders_pb2.OVERDUE_REASON_UNSPECIFIED,
        sweep=_sweep_to_proto(order.sweep),
        advance_outstanding=money(order.advance_outstanding_fen),
    )


def batch_to_proto(batch: OrderBatch, cursor: str = "") -> orders_pb2.OrderBatch:
    return orders_pb2.OrderBatch(
        batch_id=batch.batch_id,
        case_id=batch.case_id,
        bank_id=batch.bank_id,
        platform_merchant_id=batch.platform_merchant_id,
        state=BATCH_STATE_NUMBERS[batch.state],
        orders=[_order_to_proto(o) for o in batch.orders],
        total_order_value=money(batch.total_order_value_fen),
        total_advance=money(batch.total_advance_fen),
        decline_reason_codes=batch.decline_reason_codes,
        created_at=timestamp(batch.created_at),
        decided_at=timestamp(batch.decided_at),
        cursor=cursor,
        expires_at=timestamp(batch.expires_at),
    )
