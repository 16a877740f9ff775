"""Order financing: the platform offers batches of a merchant's pending orders against an
ORDER_LOAN case's line, the bank approves (the advances are paid out, drawn on the line) or
declines each batch, and the platform reports each funded order's settlement, which repays
interest and the advance (SETTLEMENT_SWEEP), or its refund, which makes it overdue. The sweep
loop expires undecided batches and makes orders unsettled past their date overdue.

Rules are in ``gateway.domain.orders``. Locks are always taken case first, then batch (the
rows of its orders follow), so the sweep, a decision and a settlement never deadlock; a
settlement takes the bank's partner row before them, as loan events and reconciliation do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import partial

from sqlmodel import Session

from gateway._transactions import (
    BUSINESS_TZ,
    Idempotency,
    Transactions,
    business_date,
    raise_all,
    require_active_partner,
    utc_now,
)
from gateway.domain import paging
from gateway.domain.consent import coverage_problems
from gateway.domain.financing import FinancingState
from gateway.domain.ids import new_id
from gateway.domain.ledger import (
    Ledger,
    LoanEvent,
    LoanEventType,
    advance_orders,
    apply_event,
    sweep_settlement,
)
from gateway.domain.merchant import DataScope
from gateway.domain.money import simple_interest_fen, split_by_bps
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
    batch_decision_problems,
    batch_refusals,
    days_overdue,
    orders_problems,
    past_due,
    settlement_problems,
    still_overdue,
)
from gateway.domain.paging import Page
from gateway.domain.referral import FinancingCase
from gateway.domain.scoring import ProductType
from gateway.errors import (
    FailedPrecondition,
    FieldViolation,
    NotFound,
    PreconditionViolation,
)
from gateway.financing.cases import CaseDetail, case_detail, move_case
from gateway.partners.service import require_partner
from gateway.store import codec
from gateway.store import order_repository as orders_repo
from gateway.store import reconciliation_repository as recon_repo
from gateway.store import repository as repo
from gateway.store.db import Database

log = logging.getLogger(__name__)
S = FinancingState
# A case whose line a new batch may draw on. An overdue one may not: collect first.
DRAWABLE = frozenset({S.APPROVED, S.ACCEPTED, S.DISBURSED, S.REPAYING})
# A case a settlement or an overdue order may still move.
REPAYABLE = frozenset({S.DISBURSED, S.REPAYING, S.OVERDUE})


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchAndCase:
    batch: OrderBatch
    case: CaseDetail


class OrderFinancing:
    def __init__(self, *, database: Database, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = database
        self._clock = clock
        self._tx = Transactions(database=database, clock=clock)

    def submit_order_batch(
        self,
        *,
        idem: Idempotency,
        case_id: str,
        consent_id: str,
        orders: Sequence[PendingOrder],
        shape_problems: Sequence[FieldViolation] = (),
    ) -> OrderBatch:
        today = business_date(self._clock())
        problems = [] if case_id else [FieldViolation("case_id", "required")]
        if not consent_id:
            problems.append(FieldViolation("consent_id", "required"))
        problems += orders_problems(orders, today=today)
        raise_all(shape_problems, problems)

        def act(session: Session, now: datetime) -> tuple[str, OrderBatch]:
            # The case lock serialises the batches drawing on one line.
            case = repo.get_case(session, case_id, for_update=True)
            if case is None:
                raise NotFound("financing case", case_id)
            consent = repo.get_consent(session, consent_id)
            if consent is None:
                raise NotFound("consent", consent_id)
            partner = require_active_partner(session, case.bank_id)
            subject = f"financingCases/{case_id}"
            # The merchant's open orders at every bank are checked against its trade: one
            # submission of the merchant's at a time, and lapsed batches free their orders now.
            orders_repo.lock_merchant(session, case.platform_merchant_id)
            orders_repo.expire_due_batches(session, merchant_id=case.platform_merchant_id, now=now)
            terms = case.agreed_terms
            if terms is None or terms.product is not ProductType.ORDER_LOAN:
                product = terms.product.name if terms and terms.product else "none agreed"
                raise FailedPrecondition.single(
                    "NOT_ORDER_LOAN",
                    subject,
                    f"case product is {product}; orders are financed on an ORDER_LOAN case",
                )
            refusals: list[PreconditionViolation] = []
            if case.state not in DRAWABLE:
                refusals.append(
                    PreconditionViolation(
                        "CASE_NOT_DRAWABLE",
                        subject,
                        f"case is {case.state.name}; a batch needs one of "
                        f"{', '.join(sorted(s.name for s in DRAWABLE))}",
                    )
                )
            merchant_id = case.platform_merchant_id
            refusals += coverage_problems(
                consent, merchant_id=merchant_id, bank_id=case.bank_id, now=now
            )
            if DataScope.TRANSACTION_REPUTATION not in consent.data_scopes:
                refusals.append(
                    PreconditionViolation(
                        "CONSENT_SCOPE",
                        f"consents/{consent_id}",
                        "consent does not cover TRANSACTION_REPUTATION, which orders are",
                    )
                )
            ledger = case.ledger or Ledger()
            refusals += batch_refusals(
                orders,
                already_financed=frozenset(
                    orders_repo.claimed_order_ids(
                        session, merchant_id, (o.order_id for o in orders)
                    )
                ),
                cap_bps=partner.policy.order_advance_cap_bps,
                line_fen=terms.amount_fen,
                drawn_or_pending_fen=ledger.principal_outstanding_fen
                + orders_repo.pending_advance_fen(session, case_id),
                open_order_value_fen=orders_repo.open_order_value_fen(session, merchant_id),
                trade=orders_repo.latest_trade(session, merchant_id),
                today=business_date(now),
                case_subject=subject,
            )
            if refusals:
                raise FailedPrecondition(refusals)
            earliest = min(o.expected_settlement_date for o in orders if o.expected_settlement_date)
            batch_id = new_id("obat")
            batch = OrderBatch(
                batch_id=batch_id,
                sequence=0,  # assigned by the database
                case_id=case_id,
                bank_id=case.bank_id,
                platform_merchant_id=merchant_id,
                consent_id=consent_id,
                state=OrderBatchState.PENDING,
                orders=tuple(
                    FinancedOrder(
                        batch_id=batch_id,
                        order=o,
                        state=OrderState.PENDING,
                        advance_outstanding_fen=0,
                    )
                    for o in orders
                ),
                created_at=now,
                # Undecided, it lapses with the bank's referral validity, and in any case
                # before its first order is due to settle (which nothing then would repay).
                expires_at=min(
                    now + timedelta(days=partner.policy.referral_ttl_days),
                    datetime.combine(earliest, time(0), BUSINESS_TZ),
                ),
            )
            # A twin batch at another bank claiming the same order fails this insert on the
            # unique claim key; the retry then reads its claim and refuses.
            orders_repo.insert_batch(session, batch)
            session.flush()
            return batch_id, _load_batch(session, batch_id)

        return self._tx.idempotent(idem, replay=_load_batch, act=act)

    def decide_order_batch(
        self,
        *,
        idem: Idempotency,
        bank_id: str,
        batch_id: str,
        outcome: BatchOutcome | None,
        decline_reason_codes: tuple[str, ...],
        shape_problems: Sequence[FieldViolation] = (),
    ) -> BatchAndCase:
        problems = [] if batch_id else [FieldViolation("batch_id", "required")]
        problems += batch_decision_problems(outcome, decline_reason_codes)
        raise_all(shape_problems, problems)

        def act(session: Session, now: datetime) -> tuple[str, BatchAndCase]:
            require_active_partner(session, bank_id)
            # The partner row first, as every dated write of the bank takes it: a statement
            # cannot close the day while this approval books its advance.
            case, batch = self._lock_case_and_batch(
                session, batch_id, bank_id=bank_id, lock_partner=True
            )
            if batch.state is not OrderBatchState.PENDING:
                raise FailedPrecondition.single(
                    "BATCH_DECIDED", f"orderBatches/{batch_id}", f"batch is {batch.state.name}"
                )
            if batch.expires_at <= now:
                raise FailedPrecondition.single(
                    "BATCH_EXPIRED",
                    f"orderBatches/{batch_id}",
                    f"batch expired at {batch.expires_at.isoformat()}",
                )
            if outcome is BatchOutcome.DECLINE:
                orders_repo.decide_batch(
                    session,
                    batch,
                    to_state=OrderBatchState.DECLINED,
                    at=now,
                    decline_codes=decline_reason_codes,
                )
                return batch_id, _load_batch_and_case(session, batch_id)
            terms = case.agreed_terms
            assert terms is not None
            if case.state not in DRAWABLE:
                raise FailedPrecondition.single(
                    "CASE_NOT_DRAWABLE",
                    f"financingCases/{case.case_id}",
                    f"case is {case.state.name}; approve a batch on one of "
                    f"{', '.join(sorted(s.name for s in DRAWABLE))}",
                )
            on = _booking_date(
                case, business_date(now), after=_first_open_day(session, case.bank_id)
            )
            ledger = advance_orders(
                case.ledger or Ledger(),
                terms,
                advance_fen=batch.total_advance_fen,
                on=on,
                case_id=case.case_id,
            )
            orders_repo.decide_batch(session, batch, to_state=OrderBatchState.APPROVED, at=now)
            for financed in batch.orders:
                orders_repo.update_order(
                    session,
                    batch_id,
                    financed.order.order_id,
                    state=OrderState.FUNDED,
                    advance_outstanding_fen=financed.order.advance_fen,
                )
            _move(
                session,
                case,
                to_state=S.DISBURSED if case.state in (S.APPROVED, S.ACCEPTED) else case.state,
                now=now,
                actor=f"partner/{bank_id}",
                request_id=idem.request_id,
                event=LoanEvent(
                    type=LoanEventType.ORDER_ADVANCE,
                    event_date=on,
                    disbursed_fen=batch.total_advance_fen,
                ),
                ledger=ledger,
            )
            return batch_id, _load_batch_and_case(session, batch_id)

        return self._tx.idempotent(idem, replay=_load_batch_and_case, act=act)

    def report_order_settlement(
        self,
        *,
        idem: Idempotency,
        batch_id: str,
        order_id: str,
        outcome: SettlementOutcome | None,
        settled_fen: int,
        settlement_date: date | None,
        shape_problems: Sequence[FieldViolation] = (),
    ) -> BatchAndCase:
        problems = [] if batch_id else [FieldViolation("batch_id", "required")]
        if not order_id:
            problems.append(FieldViolation("order_id", "required"))
        # The platform keeps China's business date, which is this clock's.
        problems += settlement_problems(
            outcome,
            settled_fen=settled_fen,
            settlement_date=settlement_date,
            latest_date=business_date(self._clock()),
        )
        raise_all(shape_problems, problems)
        assert settlement_date is not None

        def act(session: Session, now: datetime) -> tuple[str, BatchAndCase]:
            # The bank's partner row first: the lock its reconciliation statement takes.
            case, batch = self._lock_case_and_batch(session, batch_id, lock_partner=True)
            subject = f"orderBatches/{batch_id}/orders/{order_id}"
            financed = batch.order(order_id)
            if financed is None:
                raise NotFound("order", f"{batch_id}/{order_id}")
            late = (
                financed.state is OrderState.OVERDUE
                and financed.overdue_reason is OverdueReason.PAST_SETTLEMENT_DATE
            )
            if not (financed.state is OrderState.FUNDED or late):
                why = f" ({financed.overdue_reason.name})" if financed.overdue_reason else ""
                raise FailedPrecondition.single(
                    "ORDER_NOT_OUTSTANDING",
                    subject,
                    f"order is {financed.state.name}{why}; only a FUNDED order, or one overdue "
                    "past its settlement date, can settle or be refunded",
                )
            if case.state not in REPAYABLE:
                raise FailedPrecondition.single(
                    "ILLEGAL_TRANSITION",
                    f"financingCases/{case.case_id}",
                    f"case is {case.state.name}; a settlement needs one of "
                    f"{', '.join(sorted(s.name for s in REPAYABLE))}",
                )
            assert batch.decided_at is not None
            funded_on = business_date(batch.decided_at)
            if settlement_date < funded_on:
                raise FailedPrecondition.single(
                    "SETTLEMENT_BEFORE_ADVANCE",
                    subject,
                    f"settlement date {settlement_date.isoformat()} is before the advance "
                    f"({funded_on.isoformat()})",
                )
            terms = case.agreed_terms
            assert terms is not None
            # Reports come late and out of order: one dated before the case's last event or
            # in closed books is booked on the case's next open day (the order keeps its date).
            booked = _booking_date(
                case, settlement_date, after=_first_open_day(session, case.bank_id)
            )
            if outcome is SettlementOutcome.REFUNDED:
                orders_repo.update_order(
                    session,
                    batch_id,
                    order_id,
                    state=OrderState.OVERDUE,
                    advance_outstanding_fen=financed.advance_outstanding_fen,
                    overdue_reason=OverdueReason.REFUNDED,
                )
                self._mark_overdue(
                    session, case, on=booked, now=now, request_id=idem.request_id, actor=idem.caller
                )
                return batch_id, _load_batch_and_case(session, batch_id)
            others = [
                o
                for o in orders_repo.case_orders(session, case.case_id)
                if not (o.batch_id == batch_id and o.order.order_id == order_id)
            ]
            last_open = not any(
                o.state in (OrderState.FUNDED, OrderState.OVERDUE) and o.advance_outstanding_fen
                for o in others
            )
            ledger, swept = sweep_settlement(
                case.ledger or Ledger(),
                terms,
                settled_fen=settled_fen,
                advance_outstanding_fen=financed.advance_outstanding_fen,
                # Its own advance's interest; the last open order clears the case's rest.
                interest_due_fen=None
                if last_open
                else simple_interest_fen(
                    financed.advance_outstanding_fen,
                    terms.revolving_daily_rate_ppm,
                    (settlement_date - funded_on).days,
                ),
                on=booked,
                case_id=case.case_id,
            )
            left = financed.advance_outstanding_fen - swept.principal_fen
            orders_repo.update_order(
                session,
                batch_id,
                order_id,
                state=OrderState.SETTLED if left == 0 else OrderState.OVERDUE,
                advance_outstanding_fen=left,
                overdue_reason=None if left == 0 else OverdueReason.SHORT_SETTLEMENT,
                sweep=Sweep(
                    settled_fen=settled_fen,
                    interest_fen=swept.interest_fen,
                    principal_fen=swept.principal_fen,
                    bank_share_fen=swept.bank_share_fen,
                    platform_share_fen=swept.platform_share_fen,
                    to_merchant_fen=swept.to_merchant_fen,
                    settlement_date=settlement_date,
                ),
            )
            _move(
                session,
                case,
                to_state=S.OVERDUE if still_overdue(others) else S.REPAYING,
                now=now,
                actor=idem.caller,
                request_id=idem.request_id,
                event=LoanEvent(
                    type=LoanEventType.SETTLEMENT_SWEEP,
                    event_date=booked,
                    principal_fen=swept.principal_fen,
                    interest_fen=swept.interest_fen,
                ),
                ledger=ledger,
            )
            if left:  # settled short: the rest of the advance is overdue from today
                moved = repo.get_case(session, case.case_id)
                assert moved is not None
                self._mark_overdue(
                    session,
                    moved,
                    on=booked,
                    now=now,
                    request_id=idem.request_id,
                    actor=idem.caller,
                )
            return batch_id, _load_batch_and_case(session, batch_id)

        return self._tx.idempotent(idem, replay=_load_batch_and_case, act=act)

    def get_order_batch(self, *, batch_id: str) -> OrderBatch:
        """One batch, for the platform (which sees every batch)."""
        if not batch_id:
            raise_all((), [FieldViolation("batch_id", "required")])
        with self._db.reading() as session:
            return _load_batch(session, batch_id)

    def list_order_batches(
        self,
        *,
        bank_id: str,
        state: OrderBatchState | None,
        page_size: int,
        page_token: str,
        case_id: str = "",
    ) -> Page[OrderBatch]:
        """The bank's batches (of one case, if given), oldest first."""
        size = paging.page_size(page_size)
        after = paging.decode_int_token(page_token, "orderBatches") if page_token else 0
        with self._db.reading() as session:
            require_active_partner(session, bank_id)
            rows = orders_repo.list_batches(
                session,
                bank_id=bank_id,
                after_seq=after,
                limit=size + 1,
                state=state,
                case_id=case_id,
            )
        items = rows[:size]
        more = len(rows) > size
        return Page(items=items, next_page_token=self.cursor_after(items[-1]) if more else "")

    @staticmethod
    def cursor_after(batch: OrderBatch) -> str:
        return paging.encode_token("orderBatches", batch.sequence)

    def sweep(self, *, batch: int = 200) -> int:
        """Expire batches left undecided, and make funded orders past their settlement date
        overdue (with their cases). Returns how many batches and cases it moved; safe to run
        in several replicas, each move rechecked under its locks."""
        now = self._clock()
        moved = 0
        with self._db.reading() as session:
            expiring = orders_repo.batches_due_to_expire(session, now=now, limit=batch)
            late_cases = orders_repo.cases_with_orders_past_due(
                session, today=business_date(now), limit=batch
            )
        for batch_id in expiring:
            moved += self._tx.retrying(partial(self._expire, batch_id=batch_id))
        for case_id in late_cases:
            try:
                moved += self._tx.retrying(partial(self._overdue_past_date, case_id=case_id))
            except FailedPrecondition as refused:  # one case's state must not hold up the rest
                log.warning("order sweep: case %s left as it is: %s", case_id, refused.message)
        return moved

    def _expire(self, session: Session, *, batch_id: str) -> int:
        now = self._clock()
        _, batch = self._lock_case_and_batch(session, batch_id)
        if batch.state is not OrderBatchState.PENDING or batch.expires_at > now:
            return 0  # decided, or expired by another replica, meanwhile
        orders_repo.decide_batch(session, batch, to_state=OrderBatchState.EXPIRED, at=now)
        return 1

    def _overdue_past_date(self, session: Session, *, case_id: str) -> int:
        now = self._clock()
        today = business_date(now)
        found = repo.get_case(session, case_id)
        assert found is not None
        require_partner(session, found.bank_id, for_update=True)  # the books' lock, then the case
        case = repo.get_case(session, case_id, for_update=True)
        assert case is not None
        late = [o for o in orders_repo.case_orders(session, case_id) if past_due(o, today)]
        if not late:
            return 0
        for financed in late:
            orders_repo.update_order(
                session,
                financed.batch_id,
                financed.order.order_id,
                state=OrderState.OVERDUE,
                advance_outstanding_fen=financed.advance_outstanding_fen,
                overdue_reason=OverdueReason.PAST_SETTLEMENT_DATE,
            )
        on = _booking_date(case, today, after=_first_open_day(session, case.bank_id))
        self._mark_overdue(session, case, on=on, now=now, request_id="", actor="gateway")
        return 1

    def _mark_overdue(
        self,
        session: Session,
        case: FinancingCase,
        *,
        on: date,
        now: datetime,
        request_id: str,
        actor: str,
    ) -> None:
        """The case follows its overdue orders into OVERDUE (a DEFAULTED or closed case keeps
        its state: the bank's events decide it from there)."""
        if case.state not in REPAYABLE:
            return
        assert case.agreed_terms is not None
        session.flush()
        days = days_overdue(orders_repo.case_orders(session, case.case_id), on)
        event = LoanEvent(type=LoanEventType.OVERDUE, event_date=on, days_overdue=max(days, 1))
        target, ledger = apply_event(
            case_id=case.case_id,
            state=case.state,
            ledger=case.ledger or Ledger(),
            terms=case.agreed_terms,
            event=event,
        )
        _move(
            session,
            case,
            to_state=target,
            now=now,
            actor=actor,
            request_id=request_id,
            event=event,
            ledger=ledger,
        )

    def _lock_case_and_batch(
        self,
        session: Session,
        batch_id: str,
        *,
        bank_id: str | None = None,
        lock_partner: bool = False,
    ) -> tuple[FinancingCase, OrderBatch]:
        """Case first, then batch: the one lock order every path here keeps (after the bank's
        partner row, with ``lock_partner``, as the financing use cases take it)."""
        found = orders_repo.get_batch(session, batch_id)
        # Another bank's batch is reported as absent, so ids cannot be probed.
        if found is None or (bank_id is not None and found.bank_id != bank_id):
            raise NotFound("order batch", batch_id)
        if lock_partner:
            require_partner(session, found.bank_id, for_update=True)
        case = repo.get_case(session, found.case_id, for_update=True)
        batch = orders_repo.get_batch(session, batch_id, for_update=True)
        assert case is not None
        assert batch is not None
        return case, batch


def _first_open_day(session: Session, bank_id: str) -> date | None:
    """The day after the bank's books were last closed by a reconciliation statement."""
    closed = recon_repo.closed_through(session, bank_id)
    return None if closed is None else closed + timedelta(days=1)


def _booking_date(case: FinancingCase, day: date, *, after: date | None = None) -> date:
    """``day``, or the case's last event date if that is later (events are ordered per case),
    or ``after`` if that is later still (the first day of open books)."""
    latest = case.ledger.accrued_through if case.ledger else None
    return max(d for d in (day, latest, after) if d is not None)


def _move(
    session: Session,
    case: FinancingCase,
    *,
    to_state: FinancingState,
    now: datetime,
    actor: str,
    request_id: str,
    event: LoanEvent,
    ledger: Ledger,
) -> None:
    assert case.agreed_terms is not None
    move_case(
        session,
        case,
        to_state=to_state,
        now=now,
        actor=actor,
        request_id=request_id,
        loan_event=event,
        ledger_json=codec.dump_ledger(ledger),
        # What the bank has at stake now: its share of the principal still owed.
        bank_exposure_fen=split_by_bps(
            ledger.principal_outstanding_fen, case.agreed_terms.bank_share_bps
        )[0],
    )


def _load_batch(session: Session, batch_id: str) -> OrderBatch:
    batch = orders_repo.get_batch(session, batch_id)
    if batch is None:
        raise NotFound("order batch", batch_id)
    return batch


def _load_batch_and_case(session: Session, batch_id: str) -> BatchAndCase:
    batch = _load_batch(session, batch_id)
    return BatchAndCase(batch=batch, case=case_detail(session, batch.case_id))
