"""Rows and queries of order financing: order batches and the orders in them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from gateway.domain.orders import (
    CLAIMING,
    OPEN,
    FinancedOrder,
    OrderBatch,
    OrderBatchState,
    OrderState,
    OverdueReason,
    PendingOrder,
    Sweep,
    TradeData,
    still_overdue,
)
from gateway.store import codec
from gateway.store.repository import lock_name
from gateway.store.tables import FinancedOrderRow, OrderBatchRow, TradeSnapshotRow


def claim_key(merchant_id: str, order_id: str) -> str:
    return f"{merchant_id}/{order_id}"


def insert_batch(session: Session, batch: OrderBatch) -> None:
    session.add(
        OrderBatchRow(
            batch_id=batch.batch_id,
            case_id=batch.case_id,
            bank_id=batch.bank_id,
            platform_merchant_id=batch.platform_merchant_id,
            consent_id=batch.consent_id,
            state=batch.state.value,
            decline_codes_json="[]",
            created_at=batch.created_at,
            expires_at=batch.expires_at,
        )
    )
    for position, financed in enumerate(batch.orders):
        order = financed.order
        assert order.expected_settlement_date is not None
        session.add(
            FinancedOrderRow(
                batch_id=batch.batch_id,
                position=position,
                case_id=batch.case_id,
                platform_merchant_id=batch.platform_merchant_id,
                order_id=order.order_id,
                claim_key=claim_key(batch.platform_merchant_id, order.order_id),
                order_value_fen=order.order_value_fen,
                advance_fen=order.advance_fen,
                expected_settlement_date=order.expected_settlement_date,
                state=financed.state.value,
                advance_outstanding_fen=financed.advance_outstanding_fen,
            )
        )


def claimed_order_ids(session: Session, merchant_id: str, order_ids: Iterable[str]) -> set[str]:
    """Which of ``order_ids`` the merchant already has in a batch that holds them."""
    keys = [claim_key(merchant_id, o) for o in order_ids]
    rows = session.exec(
        select(FinancedOrderRow.order_id).where(col(FinancedOrderRow.claim_key).in_(keys))
    ).all()
    return set(rows)


def open_order_value_fen(session: Session, merchant_id: str) -> int:
    """The value of the merchant's orders awaiting settlement, at every bank."""
    total: int | None = session.exec(
        select(func.sum(FinancedOrderRow.order_value_fen))
        .where(FinancedOrderRow.platform_merchant_id == merchant_id)
        .where(col(FinancedOrderRow.state).in_([s.value for s in OPEN]))
    ).one()
    return int(total or 0)


def pending_advance_fen(session: Session, case_id: str) -> int:
    """Advances asked by the case's batches still waiting for the bank."""
    total: int | None = session.exec(
        select(func.sum(FinancedOrderRow.advance_fen))
        .where(FinancedOrderRow.case_id == case_id)
        .where(FinancedOrderRow.state == OrderState.PENDING.value)
    ).one()
    return int(total or 0)


def get_batch(session: Session, batch_id: str, *, for_update: bool = False) -> OrderBatch | None:
    query = select(OrderBatchRow).where(OrderBatchRow.batch_id == batch_id)
    if for_update:
        query = query.with_for_update()
    row = session.exec(query).first()
    return None if row is None else _batch(session, row)


def list_batches(
    session: Session,
    *,
    bank_id: str,
    after_seq: int,
    limit: int,
    state: OrderBatchState | None,
    case_id: str = "",
) -> list[OrderBatch]:
    query = (
        select(OrderBatchRow)
        .where(OrderBatchRow.bank_id == bank_id)
        .where(col(OrderBatchRow.seq) > after_seq)
    )
    if case_id:
        query = query.where(OrderBatchRow.case_id == case_id)
    if state is not None:
        query = query.where(OrderBatchRow.state == state.value)
    rows = session.exec(query.order_by(col(OrderBatchRow.seq)).limit(limit)).all()
    return [_batch(session, r) for r in rows]


def case_orders(session: Session, case_id: str) -> list[FinancedOrder]:
    rows = session.exec(
        select(FinancedOrderRow)
        .where(FinancedOrderRow.case_id == case_id)
        .order_by(col(FinancedOrderRow.seq))
    ).all()
    return [_order(r) for r in rows]


def decide_batch(
    session: Session,
    batch: OrderBatch,
    *,
    to_state: OrderBatchState,
    at: datetime,
    decline_codes: Sequence[str] = (),
) -> None:
    """Approve, decline or expire a PENDING batch; its orders follow, and a batch that does not
    fund releases its orders' ids."""
    session.execute(
        update(OrderBatchRow)
        .where(col(OrderBatchRow.batch_id) == batch.batch_id)
        .values(state=to_state.value, decided_at=at, decline_codes_json=json.dumps(decline_codes))
    )
    order_state = {
        OrderBatchState.APPROVED: OrderState.FUNDED,
        OrderBatchState.DECLINED: OrderState.DECLINED,
        OrderBatchState.EXPIRED: OrderState.EXPIRED,
    }[to_state]
    values: dict[str, object] = {"state": order_state.value}
    if order_state not in CLAIMING:
        values["claim_key"] = None
    session.execute(
        update(FinancedOrderRow)
        .where(col(FinancedOrderRow.batch_id) == batch.batch_id)
        .values(**values)
    )


def update_order(
    session: Session,
    batch_id: str,
    order_id: str,
    *,
    state: OrderState,
    advance_outstanding_fen: int,
    overdue_reason: OverdueReason | None = None,
    sweep: Sweep | None = None,
) -> None:
    values: dict[str, object] = {
        "state": state.value,
        "advance_outstanding_fen": advance_outstanding_fen,
        "overdue_reason": overdue_reason.value if overdue_reason else None,
    }
    if sweep is not None:
        values["sweep_json"] = _dump_sweep(sweep)
    session.execute(
        update(FinancedOrderRow)
        .where(col(FinancedOrderRow.batch_id) == batch_id)
        .where(col(FinancedOrderRow.order_id) == order_id)
        .values(**values)
    )


def batches_due_to_expire(session: Session, *, now: datetime, limit: int) -> list[str]:
    rows = session.exec(
        select(OrderBatchRow.batch_id)
        .where(OrderBatchRow.state == OrderBatchState.PENDING.value)
        .where(col(OrderBatchRow.expires_at) <= now)
        .order_by(col(OrderBatchRow.seq))
        .limit(limit)
    ).all()
    return list(rows)


def cases_with_orders_past_due(session: Session, *, today: date, limit: int) -> list[str]:
    """Cases with a funded order whose expected settlement date is before ``today``."""
    rows = session.exec(
        select(FinancedOrderRow.case_id)
        .where(FinancedOrderRow.state == OrderState.FUNDED.value)
        .where(col(FinancedOrderRow.advance_outstanding_fen) > 0)
        .where(col(FinancedOrderRow.expected_settlement_date) < today)
        .group_by(col(FinancedOrderRow.case_id))
        .order_by(col(FinancedOrderRow.case_id))
        .limit(limit)
    ).all()
    return list(rows)


def _batch(session: Session, row: OrderBatchRow) -> OrderBatch:
    assert row.seq is not None
    orders = session.exec(
        select(FinancedOrderRow)
        .where(FinancedOrderRow.batch_id == row.batch_id)
        .order_by(col(FinancedOrderRow.position))
    ).all()
    return OrderBatch(
        batch_id=row.batch_id,
        sequence=row.seq,
        case_id=row.case_id,
        bank_id=row.bank_id,
        platform_merchant_id=row.platform_merchant_id,
        consent_id=row.consent_id,
        state=OrderBatchState(row.state),
        orders=tuple(_order(o) for o in orders),
        created_at=row.created_at,
        expires_at=row.expires_at,
        decided_at=row.decided_at,
        decline_reason_codes=tuple(json.loads(row.decline_codes_json)),
    )


def _order(row: FinancedOrderRow) -> FinancedOrder:
    return FinancedOrder(
        batch_id=row.batch_id,
        order=PendingOrder(
            order_id=row.order_id,
            order_value_fen=row.order_value_fen,
            advance_fen=row.advance_fen,
            expected_settlement_date=row.expected_settlement_date,
        ),
        state=OrderState(row.state),
        advance_outstanding_fen=row.advance_outstanding_fen,
        overdue_reason=OverdueReason(row.overdue_reason) if row.overdue_reason else None,
        sweep=_load_sweep(row.sweep_json) if row.sweep_json else None,
    )


def _dump_sweep(sweep: Sweep) -> str:
    return json.dumps(
        {
            "settled_fen": sweep.settled_fen,
            "interest_fen": sweep.interest_fen,
            "principal_fen": sweep.principal_fen,
            "bank_share_fen": sweep.bank_share_fen,
            "platform_share_fen": sweep.platform_share_fen,
            "to_merchant_fen": sweep.to_merchant_fen,
            "settlement_date": sweep.settlement_date.isoformat(),
        },
        sort_keys=True,
    )


def _load_sweep(text: str) -> Sweep:
    d = json.loads(text)
    d["settlement_date"] = date.fromisoformat(d["settlement_date"])
    return Sweep(**d)


def latest_trade(session: Session, merchant_id: str) -> TradeData | None:
    """The last month's GMV in the merchant's newest trade snapshot."""
    row = session.exec(
        select(TradeSnapshotRow)
        .where(TradeSnapshotRow.platform_merchant_id == merchant_id)
        .order_by(col(TradeSnapshotRow.as_of).desc(), col(TradeSnapshotRow.seq).desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    gmv = codec.load_reputation(row.reputation_json).monthly_gmv_fen
    return TradeData(as_of=row.as_of, last_month_gmv_fen=gmv[-1] if gmv else 0)


def lock_merchant(session: Session, merchant_id: str) -> None:
    """Serialise batch submissions of one merchant across its cases and replicas until this
    transaction ends: the trade-data check counts the merchant's open orders at every bank.
    (SQLite serialises every writer already.)"""
    lock_name(session, f"orders/{merchant_id}")


def expire_due_batches(session: Session, *, merchant_id: str, now: datetime) -> None:
    """Lapse the merchant's undecided batches past their time now, so their orders are free
    and their advances no longer count, without waiting for the sweep. Guarded on the state,
    so a batch decided meanwhile is left alone."""
    due = session.exec(
        select(OrderBatchRow.batch_id)
        .where(OrderBatchRow.platform_merchant_id == merchant_id)
        .where(OrderBatchRow.state == OrderBatchState.PENDING.value)
        .where(col(OrderBatchRow.expires_at) <= now)
    ).all()
    for batch_id in due:
        lapsed = session.execute(
            update(OrderBatchRow)
            .where(col(OrderBatchRow.batch_id) == batch_id)
            .where(col(OrderBatchRow.state) == OrderBatchState.PENDING.value)
            .values(state=OrderBatchState.EXPIRED.value, decided_at=now)
        )
        if lapsed.rowcount == 1:  # type: ignore[attr-defined]
            session.execute(
                update(FinancedOrderRow)
                .where(col(FinancedOrderRow.batch_id) == batch_id)
                .values(state=OrderState.EXPIRED.value, claim_key=None)
            )


def apply_direct_repayment(session: Session, case_id: str, principal_fen: int) -> bool:
    """Principal the bank collected directly pays the case's overdue orders first, oldest
    first, then its funded ones (one fully repaid becomes REPAID). Returns whether an order is
    still overdue with something owed."""
    orders = session.exec(
        select(FinancedOrderRow)
        .where(FinancedOrderRow.case_id == case_id)
        .where(col(FinancedOrderRow.state).in_([OrderState.OVERDUE.value, OrderState.FUNDED.value]))
        .where(col(FinancedOrderRow.advance_outstanding_fen) > 0)
        .order_by(col(FinancedOrderRow.seq))
    ).all()
    ordered = sorted(orders, key=lambda o: o.state != OrderState.OVERDUE.value)  # stable
    left = principal_fen
    for row in ordered:
        if left == 0:
            break
        paid = min(left, row.advance_outstanding_fen)
        left -= paid
        row.advance_outstanding_fen -= paid
        if row.advance_outstanding_fen == 0:  # repaid before its settlement, or after it fell due
            row.state = OrderState.REPAID.value
        session.add(row)
    session.flush()
    return case_still_overdue(session, case_id)


def case_still_overdue(session: Session, case_id: str) -> bool:
    """Whether an order of the case is overdue with some of its advance still owed."""
    return still_overdue(case_orders(session, case_id))
