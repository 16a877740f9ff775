"""Order financing through the real servicers: a batch of pending orders on an ORDER_LOAN case,
the bank's decision, settlement sweeps, refunds and orders unsettled past their date, and every
refusal leaving nothing written."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import sqlalchemy
import test_blacklist_api
from colending.v1 import (
    common_pb2,
    financing_pb2,
    orders_pb2,
    partner_bank_service_pb2,
    referral_service_pb2,
)
from test_blacklist_api import Net
from test_decision_api import acknowledged_case, approve, decide, terms
from test_loan_event_api import report as loan_event
from test_monitoring_api import monitoring_consent, snapshot
from test_monitoring_api import submit as submit_snapshot
from testkit import request_id

from gateway._transactions import BUSINESS_TZ
from gateway.domain.policy import EligibilityPolicy
from gateway.partners.convert import policy_to_proto

clock = test_blacklist_api.clock
gateway = test_blacklist_api.gateway
net = test_blacklist_api.net

O = orders_pb2  # noqa: E741
E = financing_pb2
rs = referral_service_pb2
pb = partner_bank_service_pb2
ORDER_LOAN = common_pb2.PRODUCT_TYPE_ORDER_LOAN
TABLES = ("order_batches", "financed_orders", "case_events", "idempotency_keys")
YUAN = 100


def cny(yuan: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code="CNY", amount_minor=yuan * YUAN)


def pdate(day: date) -> common_pb2.Date:
    return common_pb2.Date(year=day.year, month=day.month, day=day.day)


def pending(
    net: Net,
    order_id: str = "O-1",
    value_yuan: int = 10_000,
    advance_yuan: int = 8_000,
    days: int = 10,
) -> orders_pb2.PendingOrder:
    return O.PendingOrder(
        order_id=order_id,
        order_value=cny(value_yuan),
        advance=cny(advance_yuan),
        expected_settlement_date=pdate(net.clock.today() + timedelta(days=days)),
    )


class Loan:
    """An ORDER_LOAN case approved for a merchant, with a trade snapshot and a consent."""

    def __init__(self, net: Net, case_id: str, consent_id: str, bank_id: str) -> None:
        self.net, self.case_id, self.consent_id, self.bank_id = net, case_id, consent_id, bank_id

    def submit(self, *orders: Any, rid: str = "", case_id: str = "") -> Any:
        request = rs.SubmitOrderBatchRequest(
            request_id=rid or request_id(),
            case_id=case_id or self.case_id,
            consent_id=self.consent_id,
            orders=list(orders),
        )
        return self.net.api.platform("SubmitOrderBatch", request)

    def batch(self, *orders: Any) -> Any:
        return self.submit(*orders).expect_ok().response.batch

    def decide(self, batch_id: str, *, decline: tuple[str, ...] = (), rid: str = "") -> Any:
        request = pb.DecideOrderBatchRequest(
            request_id=rid or request_id(),
            batch_id=batch_id,
            outcome=O.ORDER_BATCH_OUTCOME_DECLINE if decline else O.ORDER_BATCH_OUTCOME_APPROVE,
            decline_reason_codes=list(decline),
        )
        return self.net.api.as_bank(self.bank_id, "DecideOrderBatch", request)

    def funded(self, *orders: Any) -> Any:
        batch = self.batch(*orders)
        return self.decide(batch.batch_id).expect_ok().response

    def settle(
        self,
        batch_id: str,
        order_id: str,
        amount_yuan: int | None = None,
        *,
        refunded: bool = False,
        on: date | None = None,
        rid: str = "",
        amount_fen: int | None = None,
    ) -> Any:
        request = rs.ReportOrderSettlementRequest(
            request_id=rid or request_id(),
            batch_id=batch_id,
            order_id=order_id,
            outcome=O.SETTLEMENT_OUTCOME_REFUNDED if refunded else O.SETTLEMENT_OUTCOME_SETTLED,
            settlement_date=pdate(on or self.net.clock.today()),
        )
        if amount_fen is not None:
            request.settled_amount.CopyFrom(
                common_pb2.Money(currency_code="CNY", amount_minor=amount_fen)
            )
        elif amount_yuan is not None:
            request.settled_amount.CopyFrom(cny(amount_yuan))
        return self.net.api.platform("ReportOrderSettlement", request)


def order_loan(
    net: Net,
    merchant_id: str = "m-1001",
    bank_id: str = "bank-a",
    *,
    line_yuan: int = 100_000,
    last_month_gmv_yuan: int = 400_000,
    with_snapshot: bool = True,
) -> Loan:
    case_id, _ = acknowledged_case(net.api, merchant_id, bank_id)
    decide(net.api, case_id, approve(terms(line_yuan, product=ORDER_LOAN)), bank_id).expect_ok()
    if with_snapshot:
        gmv = (400_000, 400_000, 400_000, last_month_gmv_yuan)
        snap = snapshot(net, merchant_id, gmv_yuan=gmv)
        consent = monitoring_consent(net, merchant_id, (bank_id,))
        submit_snapshot(net, consent, snap).expect_ok()
    consent_id = net.api.consent(merchant_id, (bank_id,)).consent_id
    return Loan(net, case_id, consent_id, bank_id)


def counts(net: Net) -> dict[str, int]:
    with net.api.database.reading() as session:
        return {
            t: session.execute(sqlalchemy.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in TABLES
        }


def case_of(net: Net, case_id: str, bank_id: str = "bank-a") -> Any:
    request = pb.GetFinancingCaseRequest(case_id=case_id)
    return net.api.as_bank(bank_id, "GetFinancingCase", request).expect_ok().response.financing_case


def fen(money: common_pb2.Money) -> int:
    return money.amount_minor


@pytest.fixture
def loan(net: Net) -> Loan:
    return order_loan(net)


# --- the whole way ---------------------------------------------------------------------------


def test_an_order_loan_is_repaid_by_its_settlements(net: Net, loan: Loan) -> None:
    submitted = loan.submit(pending(net, "O-1"), pending(net, "O-2", 5_000, 4_000, days=12))
    batch = submitted.expect_ok().response.batch
    assert batch.state == O.ORDER_BATCH_STATE_PENDING
    assert (batch.case_id, batch.bank_id, batch.platform_merchant_id) == (
        loan.case_id,
        "bank-a",
        "m-1001",
    )
    assert [o.state for o in batch.orders] == [O.ORDER_STATE_PENDING] * 2
    assert fen(batch.total_order_value) == 15_000 * YUAN
    assert fen(batch.total_advance) == 12_000 * YUAN

    # The bank sees it waiting, and approves it: the advances are drawn on the line.
    listed = net.api.as_bank(
        "bank-a", "ListOrderBatches", pb.ListOrderBatchesRequest(state=O.ORDER_BATCH_STATE_PENDING)
    )
    assert [b.batch_id for b in listed.expect_ok().response.batches] == [batch.batch_id]
    decided = loan.decide(batch.batch_id).expect_ok().response
    assert decided.batch.state == O.ORDER_BATCH_STATE_APPROVED
    assert [o.state for o in decided.batch.orders] == [O.ORDER_STATE_FUNDED] * 2
    assert [fen(o.advance_outstanding) for o in decided.batch.orders] == [800_000, 400_000]
    assert decided.case.state == E.FINANCING_STATE_DISBURSED
    assert fen(decided.case.ledger.principal_outstanding) == 1_200_000
    advance = decided.case.history[-1]
    assert advance.loan_event.type == E.LOAN_EVENT_TYPE_ORDER_ADVANCE
    assert fen(advance.loan_event.disbursed_amount) == 1_200_000
    assert advance.actor == "partner/bank-a"

    # A week later the first order settles: 7 days of interest on its own 8,000 yuan at 600
    # ppm a day (33.60 yuan), then the advance; 70 % of the 8,033.60 to the bank.
    net.clock.advance(days=7)
    first = loan.settle(batch.batch_id, "O-1", 10_000).expect_ok().response
    order = first.batch.orders[0]
    assert order.state == O.ORDER_STATE_SETTLED
    assert fen(order.advance_outstanding) == 0
    sweep = order.sweep
    assert (fen(sweep.interest), fen(sweep.principal)) == (3_360, 800_000)
    assert (fen(sweep.bank_share), fen(sweep.platform_share)) == (562_352, 241_008)
    assert fen(sweep.to_merchant) == 196_640
    assert first.case.state == E.FINANCING_STATE_REPAYING
    assert fen(first.case.ledger.principal_outstanding) == 400_000
    assert first.case.history[-1].loan_event.type == E.LOAN_EVENT_TYPE_SETTLEMENT_SWEEP

    # The second, three days later, is the last open order: it pays the interest left, its
    # own 10 days on 4,000 yuan (24 yuan), then its advance.
    net.clock.advance(days=3)
    second = loan.settle(batch.batch_id, "O-2", 5_000).expect_ok().response
    sweep = second.batch.orders[1].sweep
    assert (fen(sweep.interest), fen(sweep.principal), fen(sweep.to_merchant)) == (
        2_400,
        400_000,
        97_600,
    )
    ledger = second.case.ledger
    assert fen(ledger.principal_outstanding) == 0
    assert fen(ledger.interest_accrued) == fen(ledger.interest_repaid) == 5_760
    assert fen(ledger.principal_repaid) == 1_200_000
    assert fen(ledger.bank_share_repaid) + fen(ledger.platform_share_repaid) == 1_205_760

    # Nothing is owed, so the bank can close the line.
    closed = loan_event(
        net.api,
        loan.case_id,
        E.LoanEvent(type=E.LOAN_EVENT_TYPE_SETTLED, event_date=pdate(net.clock.today())),
    )
    assert closed.expect_ok().response.financing_case.state == E.FINANCING_STATE_SETTLED

    # The platform reads the batch as it now stands.
    got = net.api.platform("GetOrderBatch", rs.GetOrderBatchRequest(batch_id=batch.batch_id))
    assert [o.state for o in got.expect_ok().response.batch.orders] == [O.ORDER_STATE_SETTLED] * 2


def test_retries_replay_and_a_reused_request_id_is_already_exists(net: Net, loan: Loan) -> None:
    first = loan.submit(pending(net, "O-1"), rid="batch-1").expect_ok().response
    again = loan.submit(pending(net, "O-1"), rid="batch-1").expect_ok().response
    assert again == first
    loan.submit(pending(net, "O-2"), rid="batch-1").expect_already_exists("request", "batch-1")
    batch_id = first.batch.batch_id
    decided = loan.decide(batch_id, rid="decide-1").expect_ok().response
    assert loan.decide(batch_id, rid="decide-1").expect_ok().response == decided
    settled = loan.settle(batch_id, "O-1", 10_000, rid="settle-1").expect_ok().response
    before = counts(net)
    assert loan.settle(batch_id, "O-1", 10_000, rid="settle-1").expect_ok().response == settled
    assert counts(net) == before
    # A second settlement of the same order under a new key is refused.
    loan.settle(batch_id, "O-1", 10_000).expect_precondition("ORDER_NOT_OUTSTANDING")


# --- never financed twice --------------------------------------------------------------------


def test_an_order_is_financed_once_until_its_batch_is_declined(net: Net, loan: Loan) -> None:
    first = loan.batch(pending(net, "O-1"))
    before = counts(net)
    refused = loan.submit(pending(net, "O-2"), pending(net, "O-1")).expect_precondition(
        "ORDER_ALREADY_FINANCED"
    )
    assert [v.subject for v in refused.precondition_violations] == ["orders[1].order_id"]
    assert counts(net) == before

    # Declined, the order is free again; funded, it is taken for good.
    loan.decide(first.batch_id, decline=("ORDERS_TOO_RISKY",)).expect_ok()
    declined = net.api.platform("GetOrderBatch", rs.GetOrderBatchRequest(batch_id=first.batch_id))
    response = declined.expect_ok().response.batch
    assert response.state == O.ORDER_BATCH_STATE_DECLINED
    assert list(response.decline_reason_codes) == ["ORDERS_TOO_RISKY"]
    assert [o.state for o in response.orders] == [O.ORDER_STATE_DECLINED]
    second = loan.funded(pending(net, "O-1"))
    loan.submit(pending(net, "O-1")).expect_precondition("ORDER_ALREADY_FINANCED")
    # Settled, still taken.
    loan.settle(second.batch.batch_id, "O-1", 10_000).expect_ok()
    loan.submit(pending(net, "O-1")).expect_precondition("ORDER_ALREADY_FINANCED")


def test_an_order_is_financed_once_across_banks(net: Net, loan: Loan) -> None:
    at_b = order_loan(net, bank_id="bank-b", with_snapshot=False)
    loan.batch(pending(net, "O-1"))
    at_b.submit(pending(net, "O-1")).expect_precondition("ORDER_ALREADY_FINANCED")
    # Another merchant's order with the same id is another order.
    other = order_loan(net, "m-2002")
    other.batch(pending(net, "O-1"))


def test_the_database_refuses_a_claim_taken_by_a_racing_batch(net: Net, loan: Loan) -> None:
    """The unique claim key, not only the service's check, stops a twin batch."""
    batch = loan.batch(pending(net, "O-1"))
    with pytest.raises(sqlalchemy.exc.IntegrityError), net.api.database.writing() as session:
        session.execute(
            sqlalchemy.text(
                "INSERT INTO financed_orders (batch_id, position, case_id, "
                "platform_merchant_id, order_id, claim_key, order_value_fen, advance_fen, "
                "expected_settlement_date, state, advance_outstanding_fen) VALUES ('x', 0, "
                ":case, 'm-1001', 'O-1', 'm-1001/O-1', 1, 1, :day, 'pending', 0)"
            ),
            {"case": loan.case_id, "day": net.clock.today()},
        )
    assert batch.batch_id


# --- policy ----------------------------------------------------------------------------------


def test_every_policy_refusal_at_once_and_nothing_written(net: Net) -> None:
    loan = order_loan(net, line_yuan=100_000, last_month_gmv_yuan=60_000)
    loan.batch(pending(net, "O-1", 50_000, 40_000))
    before = counts(net)
    refused = loan.submit(
        pending(net, "O-1"),  # already in the pending batch
        pending(net, "O-2", 20_000, 16_001),  # above 80 %
        pending(net, "O-3", 50_000, 40_000),  # 40,000 pending + 56,001 here > 100,000
    ).expect_precondition(
        "ORDER_ALREADY_FINANCED", "ADVANCE_ABOVE_CAP", "ORDER_LINE_EXCEEDED", "ORDERS_ABOVE_TRADE"
    )
    subjects = {v.type: v.subject for v in refused.precondition_violations}
    assert subjects["ADVANCE_ABOVE_CAP"] == "orders[1].advance"
    assert subjects["ORDER_LINE_EXCEEDED"] == f"financingCases/{loan.case_id}"
    assert "60,000.00" in refused.details  # names last month's GMV
    assert counts(net) == before


def test_a_banks_own_advance_cap(net: Net) -> None:
    policy = policy_to_proto(EligibilityPolicy(order_advance_cap_bps=5000))
    assert net.api.register("bank-c", policy=policy).policy.order_advance_cap_bps == 5000
    loan = order_loan(net, bank_id="bank-c")
    loan.submit(pending(net, "O-1", 10_000, 5_001)).expect_precondition("ADVANCE_ABOVE_CAP")
    loan.batch(pending(net, "O-1", 10_000, 5_000))


def test_orders_need_a_recent_trade_snapshot(net: Net) -> None:
    loan = order_loan(net, with_snapshot=False)
    loan.submit(pending(net)).expect_precondition("TRADE_DATA_MISSING")
    consent = monitoring_consent(net)
    submit_snapshot(net, consent, snapshot(net, as_of=net.clock.today() - timedelta(days=46)))
    loan.submit(pending(net)).expect_precondition("TRADE_DATA_STALE")


def test_the_line_counts_advances_already_drawn(net: Net) -> None:
    loan = order_loan(net, line_yuan=100_000)
    loan.funded(pending(net, "O-1", 100_000, 80_000))
    loan.submit(pending(net, "O-2", 30_000, 20_001)).expect_precondition("ORDER_LINE_EXCEEDED")
    loan.batch(pending(net, "O-2", 30_000, 20_000))


def test_approval_rechecks_the_line(net: Net) -> None:
    """Two batches pending fit the line only together with nothing drawn; once one is funded
    the other still fits, because pending advances count at submission."""
    loan = order_loan(net, line_yuan=100_000)
    a = loan.batch(pending(net, "O-1", 60_000, 48_000))
    b = loan.batch(pending(net, "O-2", 60_000, 48_000))
    loan.submit(pending(net, "O-3", 10_000, 4_001)).expect_precondition("ORDER_LINE_EXCEEDED")
    loan.decide(a.batch_id).expect_ok()
    assert loan.decide(b.batch_id).expect_ok().response.case.ledger.principal_outstanding == cny(
        96_000
    )
    loan.decide(b.batch_id).expect_precondition("BATCH_DECIDED")


# --- overdue ---------------------------------------------------------------------------------


def test_a_refunded_order_makes_the_loan_overdue(net: Net, loan: Loan) -> None:
    funded = loan.funded(pending(net, "O-1"), pending(net, "O-2"))
    batch_id = funded.batch.batch_id
    net.clock.advance(days=2)
    refunded = loan.settle(batch_id, "O-1", refunded=True).expect_ok().response
    order = refunded.batch.orders[0]
    assert order.state == O.ORDER_STATE_OVERDUE
    assert order.overdue_reason == O.OVERDUE_REASON_REFUNDED
    assert fen(order.advance_outstanding) == 800_000
    assert refunded.case.state == E.FINANCING_STATE_OVERDUE
    event = refunded.case.history[-1].loan_event
    assert (event.type, event.days_overdue) == (E.LOAN_EVENT_TYPE_OVERDUE, 1)
    # No new batch on an overdue line, and a refunded order cannot settle afterwards.
    loan.submit(pending(net, "O-3")).expect_precondition("CASE_NOT_DRAWABLE")
    loan.settle(batch_id, "O-1", 10_000).expect_precondition("ORDER_NOT_OUTSTANDING")
    # The other order's settlement still sweeps, and the case stays overdue.
    other = loan.settle(batch_id, "O-2", 10_000).expect_ok().response
    assert other.batch.orders[1].state == O.ORDER_STATE_SETTLED
    assert other.case.state == E.FINANCING_STATE_OVERDUE


def test_a_short_settlement_leaves_the_rest_of_the_advance_overdue(net: Net, loan: Loan) -> None:
    funded = loan.funded(pending(net, "O-1"))
    net.clock.advance(days=1)
    # One day on 8,000 yuan is 4.80 yuan of interest; 5,000 yuan then repays 4,995.20 of it.
    short = loan.settle(funded.batch.batch_id, "O-1", 5_000).expect_ok().response
    order = short.batch.orders[0]
    assert (order.state, order.overdue_reason) == (
        O.ORDER_STATE_OVERDUE,
        O.OVERDUE_REASON_SHORT_SETTLEMENT,
    )
    assert (fen(order.sweep.interest), fen(order.sweep.principal)) == (480, 499_520)
    assert fen(order.advance_outstanding) == 300_480
    assert fen(order.sweep.to_merchant) == 0
    assert short.case.state == E.FINANCING_STATE_OVERDUE
    # The sweep, then an OVERDUE event a bank watching for them sees.
    sweep_step, overdue_step = short.case.history[-2:]
    assert sweep_step.loan_event.type == E.LOAN_EVENT_TYPE_SETTLEMENT_SWEEP
    assert (overdue_step.loan_event.type, overdue_step.loan_event.days_overdue) == (
        E.LOAN_EVENT_TYPE_OVERDUE,
        1,
    )


def test_an_order_unsettled_past_its_date_turns_overdue_by_the_sweep(
    net: Net, loan: Loan, gateway: Any
) -> None:
    funded = loan.funded(pending(net, "O-1", days=3), pending(net, "O-2", days=20))
    batch_id = funded.batch.batch_id
    net.clock.advance(days=3)
    assert gateway.orders.sweep() == 0  # due today: not late yet
    net.clock.advance(days=2)
    assert gateway.orders.sweep() == 1
    assert gateway.orders.sweep() == 0  # once
    case = case_of(net, loan.case_id)
    assert case.state == E.FINANCING_STATE_OVERDUE
    event = case.history[-1]
    assert (event.loan_event.days_overdue, event.actor) == (2, "gateway")
    got = net.api.platform("GetOrderBatch", rs.GetOrderBatchRequest(batch_id=batch_id))
    late, on_time = got.expect_ok().response.batch.orders
    assert (late.state, late.overdue_reason) == (
        O.ORDER_STATE_OVERDUE,
        O.OVERDUE_REASON_PAST_SETTLEMENT_DATE,
    )
    assert on_time.state == O.ORDER_STATE_FUNDED
    # Settled late, it is swept like any other, and the line is current again.
    settled = loan.settle(batch_id, "O-1", 10_000).expect_ok().response
    assert settled.batch.orders[0].state == O.ORDER_STATE_SETTLED
    assert settled.case.state == E.FINANCING_STATE_REPAYING


def test_an_undecided_batch_expires_and_frees_its_orders(
    net: Net, loan: Loan, gateway: Any
) -> None:
    batch = loan.batch(pending(net, "O-1", days=2))
    net.clock.advance(days=1)
    assert gateway.orders.sweep() == 0
    net.clock.advance(days=1)  # the day the order settles: too late to advance against it
    loan.decide(batch.batch_id).expect_precondition("BATCH_EXPIRED")
    assert gateway.orders.sweep() == 1
    got = net.api.platform("GetOrderBatch", rs.GetOrderBatchRequest(batch_id=batch.batch_id))
    assert got.expect_ok().response.batch.state == O.ORDER_BATCH_STATE_EXPIRED
    loan.decide(batch.batch_id).expect_precondition("BATCH_DECIDED")
    loan.batch(pending(net, "O-1", days=5))


# --- bad input and wrong cases ---------------------------------------------------------------


def test_bad_orders_are_named_and_nothing_is_written(net: Net, loan: Loan) -> None:
    before = counts(net)
    bad = O.PendingOrder(
        order_id="bad id",
        order_value=common_pb2.Money(currency_code="USD", amount_minor=100),
        advance=cny(0),
        expected_settlement_date=pdate(net.clock.today()),
    )
    over = pending(net, "O-2", 100, 101)
    loan.submit(bad, over).expect_invalid(
        "orders[0].order_id",
        "orders[0].order_value.currency_code",
        "orders[0].advance",
        "orders[0].expected_settlement_date",
        "orders[1].advance",
    )
    loan.submit().expect_invalid("orders")
    request = rs.SubmitOrderBatchRequest(request_id=request_id(), orders=[pending(net, "O-1")])
    net.api.platform("SubmitOrderBatch", request).expect_invalid("case_id", "consent_id")
    assert counts(net) == before


def test_wrong_cases_consents_and_callers(net: Net, loan: Loan) -> None:
    loan.submit(pending(net), case_id="case_01ARZ3NDEKTSV4RRFFQ69G5FAV").expect_not_found(
        "financing case", "case_01ARZ3NDEKTSV4RRFFQ69G5FAV"
    )
    # A revolving line is not an order loan.
    revolving_case, _ = acknowledged_case(net.api, "m-3003")
    decide(net.api, revolving_case, approve(terms(100_000, product=1))).expect_ok()
    loan.submit(pending(net), case_id=revolving_case).expect_precondition("NOT_ORDER_LOAN")
    # The consent must be the merchant's, cover the bank and be live.
    other = Loan(net, loan.case_id, net.api.consent("m-2002").consent_id, "bank-a")
    other.submit(pending(net)).expect_precondition("CONSENT_MERCHANT_MISMATCH")
    net.api.revoke(loan.consent_id)
    loan.submit(pending(net)).expect_precondition("CONSENT_NOT_LIVE")
    # Another bank cannot see or decide bank-a's batches.
    live = Loan(net, loan.case_id, net.api.consent().consent_id, "bank-a")
    batch = live.batch(pending(net))
    as_b = Loan(net, loan.case_id, live.consent_id, "bank-b")
    as_b.decide(batch.batch_id).expect_not_found("order batch", batch.batch_id)
    listed = net.api.as_bank("bank-b", "ListOrderBatches", pb.ListOrderBatchesRequest())
    assert list(listed.expect_ok().response.batches) == []


def test_bad_decisions_and_settlements(net: Net, loan: Loan) -> None:
    batch = loan.batch(pending(net, "O-1"))
    request = pb.DecideOrderBatchRequest(
        request_id=request_id(), batch_id=batch.batch_id, outcome=O.ORDER_BATCH_OUTCOME_DECLINE
    )
    net.api.as_bank("bank-a", "DecideOrderBatch", request).expect_invalid("decline_reason_codes")
    request.outcome = O.ORDER_BATCH_OUTCOME_UNSPECIFIED
    net.api.as_bank("bank-a", "DecideOrderBatch", request).expect_invalid("outcome")
    # Before approval the order is not outstanding.
    loan.settle(batch.batch_id, "O-1", 10_000).expect_precondition("ORDER_NOT_OUTSTANDING")
    loan.decide(batch.batch_id).expect_ok()
    tomorrow = net.clock.today() + timedelta(days=1)
    loan.settle(batch.batch_id, "O-1", on=tomorrow).expect_invalid(
        "settled_amount", "settlement_date"
    )
    loan.settle(batch.batch_id, "O-1", 5, refunded=True).expect_invalid("settled_amount")
    yesterday = net.clock.today() - timedelta(days=1)
    loan.settle(batch.batch_id, "O-1", 10_000, on=yesterday).expect_precondition(
        "SETTLEMENT_BEFORE_ADVANCE"
    )
    loan.settle(batch.batch_id, "O-9", 10_000).expect_not_found("order", f"{batch.batch_id}/O-9")


def test_an_order_loan_is_not_disbursed_by_a_loan_event(net: Net, loan: Loan) -> None:
    disbursed = E.LoanEvent(
        type=E.LOAN_EVENT_TYPE_DISBURSED,
        event_date=pdate(net.clock.today()),
        bank_loan_reference="BL-1",
        disbursed_amount=cny(10_000),
    )
    loan_event(net.api, loan.case_id, disbursed).expect_precondition("ORDER_LOAN_PAID_PER_BATCH")
    recorded = E.LoanEvent(
        type=E.LOAN_EVENT_TYPE_ORDER_ADVANCE,
        event_date=pdate(net.clock.today()),
        disbursed_amount=cny(10_000),
    )
    loan_event(net.api, loan.case_id, recorded).expect_invalid("event.type")


def test_batches_page_oldest_first(net: Net, loan: Loan) -> None:
    ids = [loan.batch(pending(net, f"O-{i}", 1_000, 800)).batch_id for i in range(5)]
    seen, token = [], ""
    while True:
        request = pb.ListOrderBatchesRequest(page_size=2, page_token=token)
        page = net.api.as_bank("bank-a", "ListOrderBatches", request).expect_ok().response
        seen += [b.batch_id for b in page.batches]
        token = page.next_page_token
        if not token:
            break
    assert seen == ids
    bad = pb.ListOrderBatchesRequest(page_token="not-a-token")
    net.api.as_bank("bank-a", "ListOrderBatches", bad).expect_invalid("page_token")


# --- what the review found -------------------------------------------------------------------


def test_a_small_order_pays_only_its_own_interest(net: Net, loan: Loan) -> None:
    funded = loan.funded(pending(net, "BIG", 10_000, 8_000), pending(net, "SMALL", 1_000, 800))
    net.clock.advance(days=30)
    # 30 days on 800 yuan at 600 ppm a day: 14.40 yuan, not the case's 158.40.
    small = loan.settle(funded.batch.batch_id, "SMALL", 1_000).expect_ok().response
    order = small.batch.orders[1]
    assert order.state == O.ORDER_STATE_SETTLED
    assert (fen(order.sweep.interest), fen(order.sweep.principal)) == (1_440, 80_000)
    assert fen(order.sweep.to_merchant) == 18_560
    assert small.case.state == E.FINANCING_STATE_REPAYING


def test_settlements_reported_late_and_out_of_order_are_booked_on_the_next_open_day(
    net: Net, loan: Loan, gateway: Any
) -> None:
    funded = loan.funded(pending(net, "O-1", days=2), pending(net, "O-2", days=9))
    batch_id = funded.batch.batch_id
    net.clock.advance(days=3)
    # O-1 settled on its day, but the report comes after the sweep made it overdue...
    assert gateway.orders.sweep() == 1
    due_day = net.clock.today() - timedelta(days=1)
    # ...and after O-2's, dated today.
    loan.settle(batch_id, "O-2", 10_000).expect_ok()
    late = loan.settle(batch_id, "O-1", 10_000, on=due_day).expect_ok().response
    order = late.batch.orders[0]
    assert order.state == O.ORDER_STATE_SETTLED
    assert order.sweep.settlement_date == pdate(due_day)  # the order keeps its date
    assert late.case.history[-1].loan_event.event_date == pdate(net.clock.today())  # booked
    assert late.case.state == E.FINANCING_STATE_REPAYING
    assert fen(late.case.ledger.principal_outstanding) == 0


def test_a_refunded_order_repaid_to_the_bank_frees_the_line(net: Net, loan: Loan) -> None:
    funded = loan.funded(pending(net, "O-1"))
    loan.settle(funded.batch.batch_id, "O-1", refunded=True).expect_ok()
    repaid = loan_event(
        net.api,
        loan.case_id,
        E.LoanEvent(
            type=E.LOAN_EVENT_TYPE_REPAYMENT,
            event_date=pdate(net.clock.today()),
            principal=cny(8_000),
        ),
    )
    assert repaid.expect_ok().response.financing_case.state == E.FINANCING_STATE_REPAYING
    got = net.api.platform("GetOrderBatch", rs.GetOrderBatchRequest(batch_id=funded.batch.batch_id))
    [order] = got.expect_ok().response.batch.orders
    assert (order.state, fen(order.advance_outstanding)) == (O.ORDER_STATE_REPAID, 0)
    loan.batch(pending(net, "O-2"))  # the line takes batches again


def test_a_partial_direct_repayment_keeps_the_loan_overdue(net: Net, loan: Loan) -> None:
    funded = loan.funded(pending(net, "O-1"))
    loan.settle(funded.batch.batch_id, "O-1", refunded=True).expect_ok()
    part = E.LoanEvent(
        type=E.LOAN_EVENT_TYPE_REPAYMENT,
        event_date=pdate(net.clock.today()),
        principal=cny(3_000),
    )
    case = loan_event(net.api, loan.case_id, part).expect_ok().response.financing_case
    assert case.state == E.FINANCING_STATE_OVERDUE


def test_a_lapsed_batch_frees_its_orders_before_the_sweep_runs(net: Net, loan: Loan) -> None:
    batch = loan.batch(pending(net, "O-1", 50_000, 40_000, days=2))
    assert batch.expires_at.ToDatetime(tzinfo=UTC) == datetime.combine(
        net.clock.today() + timedelta(days=2), time(0), BUSINESS_TZ
    )
    net.clock.advance(days=2)
    again = loan.batch(pending(net, "O-1", 50_000, 40_000, days=5))
    assert again.state == O.ORDER_BATCH_STATE_PENDING
    got = net.api.platform("GetOrderBatch", rs.GetOrderBatchRequest(batch_id=batch.batch_id))
    assert got.expect_ok().response.batch.state == O.ORDER_BATCH_STATE_EXPIRED


def test_batches_can_be_listed_by_case(net: Net, loan: Loan) -> None:
    other = order_loan(net, "m-2002")
    mine = loan.batch(pending(net, "O-1"))
    other.batch(pending(net, "O-1"))
    request = pb.ListOrderBatchesRequest(case_id=loan.case_id)
    page = net.api.as_bank("bank-a", "ListOrderBatches", request).expect_ok().response
    assert [b.batch_id for b in page.batches] == [mine.batch_id]


def test_two_banks_cannot_together_finance_more_than_the_merchants_month(
    net: Net, gateway: Any
) -> None:
    """The trade check spans the merchant's cases at every bank, so concurrent batches at two
    banks are serialised: only one of two that each fit alone gets in."""
    at_a = order_loan(net, line_yuan=300_000, last_month_gmv_yuan=400_000)
    at_b = order_loan(net, bank_id="bank-b", line_yuan=300_000, with_snapshot=False)
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def submit(loan: Loan, order_id: str) -> None:
        barrier.wait()
        results.append(loan.submit(pending(net, order_id, 300_000, 200_000)))

    threads = [
        threading.Thread(target=submit, args=(at_a, "A-1")),
        threading.Thread(target=submit, args=(at_b, "B-1")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.ok for r in results) == [False, True]
    [refused] = [r for r in results if not r.ok]
    refused.expect_precondition("ORDERS_ABOVE_TRADE")


def test_an_interest_only_repayment_does_not_cure_an_overdue_order(net: Net, loan: Loan) -> None:
    funded = loan.funded(pending(net, "O-1"))
    net.clock.advance(days=1)
    loan.settle(funded.batch.batch_id, "O-1", refunded=True).expect_ok()
    interest = E.LoanEvent(
        type=E.LOAN_EVENT_TYPE_REPAYMENT,
        event_date=pdate(net.clock.today()),
        interest=cny(1),
    )
    case = loan_event(net.api, loan.case_id, interest).expect_ok().response.financing_case
    assert case.state == E.FINANCING_STATE_OVERDUE


def test_an_order_repaid_directly_is_not_made_overdue_later(
    net: Net, loan: Loan, gateway: Any
) -> None:
    funded = loan.funded(pending(net, "O-1"), pending(net, "O-2", days=3))
    loan.settle(funded.batch.batch_id, "O-1", refunded=True).expect_ok()
    repaid = E.LoanEvent(
        type=E.LOAN_EVENT_TYPE_REPAYMENT,
        event_date=pdate(net.clock.today()),
        principal=cny(16_000),
    )
    case = loan_event(net.api, loan.case_id, repaid).expect_ok().response.financing_case
    assert case.state == E.FINANCING_STATE_REPAYING
    net.clock.advance(days=5)
    assert gateway.orders.sweep() == 0
    got = net.api.platform("GetOrderBatch", rs.GetOrderBatchRequest(batch_id=funded.batch.batch_id))
    assert [o.state for o in got.expect_ok().response.batch.orders] == [O.ORDER_STATE_REPAID] * 2
    loan.batch(pending(net, "O-3", days=9))  # the line takes batches again


def test_gateway_bookings_after_a_statement_go_to_the_first_open_day(
    net: Net, loan: Loan, gateway: Any
) -> None:
    funded = loan.funded(pending(net, "O-1", days=2))
    net.clock.advance(days=3)
    today = net.clock.today()
    # The bank closes its books through today - 1 ... and the sweep then books the overdue
    # order today, never on a closed day.
    request = pb.GetReconciliationStatementRequest(business_date=pdate(today - timedelta(days=1)))
    net.api.as_bank("bank-a", "GetReconciliationStatement", request).expect_ok()
    assert gateway.orders.sweep() == 1
    case = case_of(net, loan.case_id)
    assert case.history[-1].loan_event.event_date == pdate(today)
    late = loan.settle(funded.batch.batch_id, "O-1", 10_000, on=today - timedelta(days=2))
    assert late.expect_ok().response.case.history[-1].loan_event.event_date == pdate(today)
