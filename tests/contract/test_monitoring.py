"""Post-loan monitoring over real sockets (mutual TLS), driven with the SDK: the platform's trade
snapshot becomes a signed alert that the lending bank's client verifies on a live stream and by
pull, or that the outbox pushes to the bank's receiver; a mock bank reacting to a CRITICAL alert
declines the merchant's next referral. SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from colending.v1 import (
    common_pb2,
    consent_pb2,
    delivery_pb2,
    financing_pb2,
    merchant_pb2,
    monitoring_pb2,
)
from contract.harness import Network, mock_bank, network
from contract.test_financing_lifecycle import _approved_case
from testkit import ALL_SCOPES, FAST_DELIVERY, dispatching, eventually, in_days

from gateway._transactions import business_date
from partners.mock import Decision, Script
from partners.sdk import (
    BadSignatureError,
    Envelope,
    FailedPreconditionError,
    MisaddressedReferralError,
    VerifiedAlert,
    WrongPayloadTypeError,
    verify_alert,
)

M = monitoring_pb2
FS = financing_pb2


def _today() -> common_pb2.Date:
    today = business_date(datetime.now(UTC))
    return common_pb2.Date(year=today.year, month=today.month, day=today.day)


def _snapshot(merchant_id: str, *, last_gmv_yuan: int, restricted: bool = False) -> M.TradeSnapshot:
    return M.TradeSnapshot(
        platform_merchant_id=merchant_id,
        as_of=_today(),
        reputation=merchant_pb2.TransactionReputation(
            monthly_gmv_fen=[400_000_00] * 3 + [last_gmv_yuan * 100],
            order_count=1_000,
            distinct_buyer_count=700,
            positive_feedback_bps=9_600,
            dispute_rate_bps=50,
            refund_rate_bps=300,
            on_time_shipment_bps=9_400,
        ),
        store_restricted=restricted,
    )


def _monitoring_consent(net: Network, merchant_id: str, **overrides: object) -> str:
    values: dict[str, object] = {
        "platform_merchant_id": merchant_id,
        "bank_ids": ["bank-a"],
        "data_scopes": list(ALL_SCOPES),
        "expires_at": in_days(365),
        "evidence_reference": f"monitoring-consent:{merchant_id}",
        "purpose": consent_pb2.CONSENT_PURPOSE_MONITORING,
    }
    values.update(overrides)
    return str(net.platform.record_consent(**values).consent_id)  # type: ignore[arg-type]


def _disburse(net: Network, case_id: str, amount: int) -> None:
    net.bank_client("bank-a").report_loan_event(
        case_id,
        FS.LoanEvent(
            type=FS.LOAN_EVENT_TYPE_DISBURSED,
            event_date=_today(),
            bank_loan_reference="A-LN-9001",
            disbursed_amount=common_pb2.Money(currency_code="CNY", amount_minor=amount),
        ),
    )


def test_a_warning_and_a_critical_alert_reach_the_lending_bank_verified(
    data_dir: Path, database_url: str | None
) -> None:
    with network(data_dir, database_url) as net:
        case_id, amount = _approved_case(net, "m-4001")
        _disburse(net, case_id, amount)
        consent_id = _monitoring_consent(net, "m-4001")

        streamed: list[tuple[VerifiedAlert, str]] = []
        client = net.bank_client("bank-a")
        follower = threading.Thread(
            target=lambda: streamed.extend(itertools.islice(client.alerts(), 2)), daemon=True
        )
        follower.start()

        warned = net.platform.submit_trade_snapshot(
            snapshot=_snapshot("m-4001", last_gmv_yuan=200_000), consent_id=consent_id
        )
        assert list(warned.bank_ids) == ["bank-a"]
        critical = net.platform.submit_trade_snapshot(
            snapshot=_snapshot("m-4001", last_gmv_yuan=390_000, restricted=True),
            consent_id=consent_id,
        )
        follower.join(timeout=30)
        assert not follower.is_alive(), "the stream did not deliver both alerts"

        (first, _), (second, cursor) = streamed
        assert first.alert_id == warned.alerts[0].alert_id
        assert first.severity == M.ALERT_SEVERITY_WARNING
        assert first.signal_codes == [M.SIGNAL_CODE_GMV_DECLINE]
        assert first.payload.signals[0].observed == 5_000
        assert list(first.payload.case_ids) == [case_id]
        assert second.alert_id == critical.alerts[0].alert_id
        assert second.severity == M.ALERT_SEVERITY_CRITICAL
        assert second.signal_codes == [M.SIGNAL_CODE_STORE_RESTRICTED]
        # The pull sees the same two, and nothing after the stream's last cursor.
        page = client.pull_alerts()
        assert [a.alert_id for a in page.alerts] == [first.alert_id, second.alert_id]
        assert client.pull_alerts(cursor=cursor).alerts == []

        # One changed byte, another addressee, or a referral's type: refused by the SDK.
        keys = client.signing_keys()
        good = first.envelope
        altered = dataclasses.replace(
            good, payload=good.payload[:-1] + bytes([good.payload[-1] ^ 1])
        )
        with pytest.raises(BadSignatureError):
            verify_alert(altered, trusted_keys=keys, bank_id="bank-a")
        with pytest.raises(MisaddressedReferralError, match="alert is addressed to 'bank-a'"):
            verify_alert(good, trusted_keys=keys, bank_id="bank-b")
        as_referral = Envelope(
            payload=good.payload,
            payload_type="application/vnd.colending.referral.v1+protobuf",
            signatures=good.signatures,
        )
        with pytest.raises(WrongPayloadTypeError):
            verify_alert(as_referral, trusted_keys=keys, bank_id="bank-a")


def test_a_mock_bank_stops_lending_after_a_pushed_critical_alert(
    data_dir: Path, database_url: str | None
) -> None:
    with (
        network(data_dir, database_url) as net,
        mock_bank(net, "bank-a", Script(decision=Decision.APPROVE)) as bank,
        dispatching(net.running.gateway),
    ):
        client = net.bank_client("bank-a")
        net.refer("m-4002", ["bank-a"])
        eventually(lambda: len(bank.received()) == 1, what="the first pushed referral")
        [approved] = bank.decide_pending(client)
        _disburse(net, approved.case_id, approved.agreed_terms.amount.amount_minor)
        consent_id = _monitoring_consent(net, "m-4002")
        net.platform.submit_trade_snapshot(
            snapshot=_snapshot("m-4002", last_gmv_yuan=100_000), consent_id=consent_id
        )
        # Pushed through the outbox to the bank's receiver, which verified it.
        eventually(lambda: bank.watchlist() == {"m-4002"}, what="the pushed critical alert")
        [alert] = bank.alerts()
        assert alert.severity == M.ALERT_SEVERITY_CRITICAL  # GMV down 75 %
        assert alert.signal_codes == [M.SIGNAL_CODE_GMV_DECLINE]
        # The dispatcher records the delivery once the bank's answer is back: a moment after
        # the bank has the alert.
        eventually(
            lambda: (
                [t.state for t in net.tasks() if t.alert_id == alert.alert_id]
                == [delivery_pb2.DELIVERY_STATE_DELIVERED]
            ),
            what="the push recorded as delivered",
        )
        [push] = [t for t in net.tasks() if t.alert_id == alert.alert_id]
        assert (push.case_id, push.referral_id) == ("", "")
        assert bank.review_alerts(client) == []  # the pull repeats nothing pushed

        net.refer("m-4002", ["bank-a"])
        eventually(lambda: len(bank.received()) == 2, what="the second pushed referral")
        [case] = bank.decide_pending(client)
    assert case.state == FS.FINANCING_STATE_DECLINED
    assert list(case.decision.decline_reason_codes) == ["EARLY_WARNING"]


def test_a_snapshot_without_monitoring_consent_is_refused(
    data_dir: Path, database_url: str | None
) -> None:
    with network(data_dir, database_url) as net:
        case_id, amount = _approved_case(net, "m-4003")
        _disburse(net, case_id, amount)
        consent_id = _monitoring_consent(
            net, "m-4003", purpose=consent_pb2.CONSENT_PURPOSE_CREDIT_REFERRAL
        )
        with pytest.raises(FailedPreconditionError) as refused:
            net.platform.submit_trade_snapshot(
                snapshot=_snapshot("m-4003", last_gmv_yuan=0), consent_id=consent_id
            )
        assert {v.type for v in refused.value.violations} == {"CONSENT_PURPOSE"}
        assert net.bank_client("bank-a").pull_alerts().alerts == []


def test_an_alert_push_stops_when_the_monitoring_consent_is_revoked(
    data_dir: Path, database_url: str | None
) -> None:
    # Retries a second apart, so the revocation lands between two attempts.
    patient = dataclasses.replace(
        FAST_DELIVERY, first_backoff=timedelta(seconds=1), max_backoff=timedelta(seconds=1)
    )
    with (
        network(data_dir, database_url, policy=patient) as net,
        mock_bank(net, "bank-a", Script(decision=Decision.APPROVE)) as bank,
        dispatching(net.running.gateway),
    ):
        net.refer("m-4004", ["bank-a"])
        eventually(lambda: len(bank.received()) == 1, what="the pushed referral")
        [approved] = bank.decide_pending(net.bank_client("bank-a"))
        _disburse(net, approved.case_id, approved.agreed_terms.amount.amount_minor)
        consent_id = _monitoring_consent(net, "m-4004")
        bank.script.down = True
        raised = net.platform.submit_trade_snapshot(
            snapshot=_snapshot("m-4004", last_gmv_yuan=0), consent_id=consent_id
        )
        [alert] = raised.alerts

        def push() -> delivery_pb2.DeliveryTask:
            return next(t for t in net.tasks() if t.alert_id == alert.alert_id)

        eventually(lambda: push().attempt_count >= 1, what="a first try")
        net.platform.revoke_consent(consent_id, reason="the merchant withdrew consent")
        bank.script.down = False
        eventually(
            lambda: push().state == delivery_pb2.DELIVERY_STATE_CANCELLED,
            what="the alert push to be cancelled",
        )
        assert "consent is REVOKED" in push().last_error
        assert bank.alerts() == []


def test_a_mock_bank_passes_over_an_alert_it_cannot_verify_and_goes_on(
    data_dir: Path, database_url: str | None
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from colending_core import key_id
    from partners.mock import MockBank
    from partners.sdk import BankClient

    with network(data_dir, database_url) as net:
        case_id, amount = _approved_case(net, "m-4005")
        _disburse(net, case_id, amount)
        consent_id = _monitoring_consent(net, "m-4005")
        net.platform.submit_trade_snapshot(
            snapshot=_snapshot("m-4005", last_gmv_yuan=0), consent_id=consent_id
        )
        # A bank pinned to a key the gateway never used: every alert fails verification.
        stranger = Ed25519PrivateKey.generate().public_key()
        wary = BankClient(
            channel=net.channel_for("partner/bank-a"),
            bank_id="bank-a",
            trusted_keys={key_id(stranger): stranger},
        )
        bank = MockBank(bank_id="bank-a", verify=wary.verify, verify_alert=wary.verify_alert)
        assert bank.review_alerts(wary) == []
        assert bank.stats.rejected == 1
        assert bank.review_alerts(wary) == []  # passed over, not retried every round
        assert bank.stats.rejected == 1
        assert bank.watchlist() == set()
