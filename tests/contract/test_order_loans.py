"""Order financing over real sockets (mutual TLS), driven with the SDK: a mock bank approves an
order-loan line, the platform offers pending orders, the bank's decision round funds them, and
the platform's settlement reports repay them by sweep, or a refund makes the loan overdue; an
order offered twice is refused. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from colending.v1 import common_pb2, financing_pb2, orders_pb2
from contract.harness import Network, mock_bank, network
from contract.test_monitoring import _monitoring_consent, _snapshot
from testkit import ALL_SCOPES, dispatching, eventually, in_days

from gateway._transactions import business_date
from partners.mock import Decision, MockBank, Script
from partners.sdk import FailedPreconditionError

O = orders_pb2  # noqa: E741
FS = financing_pb2


def _date(day: date) -> common_pb2.Date:
    return common_pb2.Date(year=day.year, month=day.month, day=day.day)


def _order(order_id: str, value_fen: int, advance_fen: int, days: int) -> O.PendingOrder:
    settle = business_date(datetime.now(UTC)) + timedelta(days=days)
    return O.PendingOrder(
        order_id=order_id,
        order_value=common_pb2.Money(currency_code="CNY", amount_minor=value_fen),
        advance=common_pb2.Money(currency_code="CNY", amount_minor=advance_fen),
        expected_settlement_date=_date(settle),
    )


def _order_line(net: Network, bank: MockBank, merchant_id: str) -> tuple[str, str, str]:
    """An ORDER_LOAN line approved by the mock bank, a trade snapshot, and the consent the
    order batches go under: (case id, consent id, monitoring consent id)."""
    with dispatching(net.running.gateway):
        net.refer(merchant_id, ["bank-a"])
        eventually(lambda: len(bank.received()) == 1, what="the pushed referral")
    [case] = bank.decide_pending(net.bank_client("bank-a"))
    assert case.state == FS.FINANCING_STATE_APPROVED
    assert case.agreed_terms.product == common_pb2.PRODUCT_TYPE_ORDER_LOAN
    monitoring = _monitoring_consent(net, merchant_id)
    net.platform.submit_trade_snapshot(
        snapshot=_snapshot(merchant_id, last_gmv_yuan=380_000), consent_id=monitoring
    )
    consent = net.platform.record_consent(
        platform_merchant_id=merchant_id,
        bank_ids=["bank-a"],
        data_scopes=list(ALL_SCOPES),
        expires_at=in_days(365),
        evidence_reference=f"order-consent:{merchant_id}",
    )
    return case.case_id, consent.consent_id, monitoring


def test_an_order_loan_is_funded_by_the_bank_and_repaid_by_settlement(
    data_dir: Path, database_url: str | None
) -> None:
    with (
        network(data_dir, database_url) as net,
        mock_bank(net, "bank-a", Script(decision=Decision.ORDER_LOAN)) as bank,
    ):
        client = net.bank_client("bank-a")
        case_id, consent_id, _ = _order_line(net, bank, "m-6001")
        batch = net.platform.submit_order_batch(
            case_id=case_id,
            consent_id=consent_id,
            orders=[
                _order("TB-1001", 1_000_000, 800_000, days=7),
                _order("TB-1002", 500_000, 400_000, days=9),
            ],
        )
        assert batch.state == O.ORDER_BATCH_STATE_PENDING
        [answer] = bank.decide_order_batches(client)
        assert answer.batch.batch_id == batch.batch_id
        assert answer.batch.state == O.ORDER_BATCH_STATE_APPROVED
        assert answer.case.state == FS.FINANCING_STATE_DISBURSED
        assert answer.case.ledger.principal_outstanding.amount_minor == 1_200_000
        assert bank.decide_order_batches(client) == []  # nothing left to decide

        # Settled the same day: no interest yet, so the advance and nothing more is swept.
        today = business_date(datetime.now(UTC))
        settled = net.platform.report_order_settlement(
            batch_id=batch.batch_id,
            order_id="TB-1001",
            settled_amount_fen=1_000_000,
            settlement_date=today,
        )
        sweep = settled.batch.orders[0].sweep
        assert sweep.principal.amount_minor == 800_000
        assert sweep.interest.amount_minor == 0
        assert (sweep.bank_share.amount_minor, sweep.platform_share.amount_minor) == (
            560_000,
            240_000,
        )
        assert sweep.to_merchant.amount_minor == 200_000
        assert settled.case.state == FS.FINANCING_STATE_REPAYING

        # The other is refunded: its advance is overdue, and so is the loan, at the bank too.
        refunded = net.platform.report_order_settlement(
            batch_id=batch.batch_id, order_id="TB-1002", refunded=True, settlement_date=today
        )
        assert refunded.batch.orders[1].overdue_reason == O.OVERDUE_REASON_REFUNDED
        seen = client.get_case(case_id)
        assert seen.state == FS.FINANCING_STATE_OVERDUE
        assert seen.ledger.principal_outstanding.amount_minor == 400_000
        assert net.platform.get_order_batch(batch.batch_id).orders[1].state == (
            O.ORDER_STATE_OVERDUE
        )


def test_an_order_offered_twice_is_refused(data_dir: Path, database_url: str | None) -> None:
    with (
        network(data_dir, database_url) as net,
        mock_bank(net, "bank-a", Script(decision=Decision.ORDER_LOAN)) as bank,
    ):
        client = net.bank_client("bank-a")
        case_id, consent_id, monitoring = _order_line(net, bank, "m-6002")
        order = _order("TB-2001", 1_000_000, 800_000, days=5)
        net.platform.submit_order_batch(case_id=case_id, consent_id=consent_id, orders=[order])
        with pytest.raises(FailedPreconditionError) as refused:
            net.platform.submit_order_batch(case_id=case_id, consent_id=consent_id, orders=[order])
        assert {v.type for v in refused.value.violations} == {"ORDER_ALREADY_FINANCED"}
        # The platform restricts the store: the bank's next review sees the CRITICAL alert and
        # its decision round declines the batch, which frees the order.
        net.platform.submit_trade_snapshot(
            snapshot=_snapshot("m-6002", last_gmv_yuan=380_000, restricted=True),
            consent_id=monitoring,
        )
        bank.review_alerts(client)
        assert bank.watchlist() == {"m-6002"}
        [declined] = bank.decide_order_batches(client)
        assert declined.batch.state == O.ORDER_BATCH_STATE_DECLINED
        assert list(declined.batch.decline_reason_codes) == ["EARLY_WARNING"]
        again = net.platform.submit_order_batch(
            case_id=case_id, consent_id=consent_id, orders=[order]
        )
        assert again.state == O.ORDER_BATCH_STATE_PENDING
