"""Post-loan monitoring through the real servicers: SubmitTradeSnapshot (the platform), its
refusals, and the signed alerts the lending banks pull."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from typing import Any

import grpc
import pytest
import sqlalchemy
import test_blacklist_api
from colending.v1 import (
    admin_service_pb2,
    common_pb2,
    consent_pb2,
    merchant_pb2,
    monitoring_pb2,
    partner_bank_service_pb2,
    partner_pb2,
    referral_service_pb2,
)
from test_blacklist_api import Net, code
from testkit import request_id

from colending_core import ALERT_PAYLOAD_TYPE
from partners.sdk import Envelope, Signature, public_key_from_raw, verify_envelope

# The blacklist suite's gateway (with a movable clock) and its four-service harness.
clock = test_blacklist_api.clock
gateway = test_blacklist_api.gateway
net = test_blacklist_api.net

M = monitoring_pb2
rs = referral_service_pb2
pb = partner_bank_service_pb2
TABLES = ("trade_snapshots", "alerts", "idempotency_keys")
MONITORING = consent_pb2.CONSENT_PURPOSE_MONITORING


def pdate(day: date) -> common_pb2.Date:
    return common_pb2.Date(year=day.year, month=day.month, day=day.day)


def snapshot(
    net: Net,
    merchant_id: str = "m-1001",
    *,
    gmv_yuan: tuple[int, ...] = (400_000, 400_000, 400_000, 400_000),
    dispute_rate_bps: int = 40,
    refund_rate_bps: int = 200,
    store_restricted: bool = False,
    as_of: date | None = None,
) -> monitoring_pb2.TradeSnapshot:
    return M.TradeSnapshot(
        platform_merchant_id=merchant_id,
        as_of=pdate(as_of or net.clock.today()),
        reputation=merchant_pb2.TransactionReputation(
            monthly_gmv_fen=[y * 100 for y in gmv_yuan],
            order_count=1_200,
            distinct_buyer_count=800,
            positive_feedback_bps=9_700,
            dispute_rate_bps=dispute_rate_bps,
            refund_rate_bps=refund_rate_bps,
            on_time_shipment_bps=9_500,
        ),
        store_restricted=store_restricted,
    )


def submit(net: Net, consent_id: str, snap: Any, rid: str = "") -> Any:
    request = rs.SubmitTradeSnapshotRequest(
        request_id=rid or request_id(), consent_id=consent_id, snapshot=snap
    )
    return net.api.platform("SubmitTradeSnapshot", request)


def monitoring_consent(net: Net, merchant_id: str = "m-1001", banks: Any = ("bank-a",)) -> str:
    consent = net.api.consent(merchant_id, banks, purpose=MONITORING)
    return str(consent.consent_id)


def counts(net: Net) -> dict[str, int]:
    with net.api.database.reading() as session:
        return {
            t: session.execute(sqlalchemy.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in TABLES
        }


def pull(net: Net, bank_id: str = "bank-a", cursor: str = "") -> Any:
    return net.api.as_bank(bank_id, "PullAlerts", pb.PullAlertsRequest(cursor=cursor))


def verified(net: Net, alert: Any, bank_id: str = "bank-a") -> monitoring_pb2.AlertPayload:
    keys = net.api.signing_keys(bank_id)
    raw = verify_envelope(
        Envelope(
            payload=alert.envelope.payload,
            payload_type=alert.envelope.payload_type,
            signatures=tuple(Signature(s.keyid, s.sig) for s in alert.envelope.signatures),
        ),
        trusted_keys={k.keyid: public_key_from_raw(k.public_key) for k in keys},
        payload_type=ALERT_PAYLOAD_TYPE,
    )
    return M.AlertPayload.FromString(raw)


@pytest.fixture
def lending(net: Net) -> Net:
    """``net`` where m-1001 has a disbursed loan at bank-a."""
    net.case_in("m-1001", "disbursed")
    return net


def test_a_gmv_decline_reaches_the_lending_bank_as_a_signed_warning(lending: Net) -> None:
    consent_id = monitoring_consent(lending)
    # Last month 280,000 against an average of 400,000: down 30 % + 1 fen short of exactly.
    response = submit(lending, consent_id, snapshot(lending, gmv_yuan=(400_000,) * 3 + (279_999,)))
    response.expect_ok()
    assert list(response.response.bank_ids) == ["bank-a"]
    (alert,) = response.response.alerts
    payload = verified(lending, alert)
    assert payload.bank_id == "bank-a"
    (case,) = (
        lending.api.as_bank("bank-a", "ListFinancingCases", pb.ListFinancingCasesRequest())
        .expect_ok()
        .response.financing_cases
    )
    assert list(payload.case_ids) == [case.case_id]
    assert payload.snapshot_id == response.response.snapshot_id
    assert payload.severity == M.ALERT_SEVERITY_WARNING
    (signal,) = payload.signals
    assert (signal.code, signal.severity) == (M.SIGNAL_CODE_GMV_DECLINE, M.ALERT_SEVERITY_WARNING)
    assert (signal.observed, signal.threshold) == (3001, 3000)
    assert payload.expires_at.ToDatetime() > payload.issued_at.ToDatetime()

    page = pull(lending).expect_ok().response
    assert [a.alert_id for a in page.alerts] == [alert.alert_id]
    assert page.alerts[0].envelope == alert.envelope
    again = pull(lending, cursor=page.next_cursor).expect_ok().response
    assert list(again.alerts) == []
    assert again.next_cursor == page.next_cursor
    # Another bank sees none of it.
    assert list(pull(lending, "bank-b").expect_ok().response.alerts) == []


def test_a_healthy_snapshot_is_stored_and_raises_nothing(lending: Net) -> None:
    consent_id = monitoring_consent(lending)
    response = submit(lending, consent_id, snapshot(lending)).expect_ok().response
    assert list(response.bank_ids) == ["bank-a"]
    assert list(response.alerts) == []
    assert counts(lending)["trade_snapshots"] == 1
    assert counts(lending)["alerts"] == 0


def test_every_rule_at_once_gives_one_critical_alert(lending: Net) -> None:
    consent_id = monitoring_consent(lending)
    snap = snapshot(
        lending,
        gmv_yuan=(400_000,) * 3 + (100_000,),
        dispute_rate_bps=501,
        refund_rate_bps=1001,
        store_restricted=True,
    )
    (alert,) = submit(lending, consent_id, snap).expect_ok().response.alerts
    payload = verified(lending, alert)
    assert payload.severity == M.ALERT_SEVERITY_CRITICAL
    assert [(s.code, s.severity) for s in payload.signals] == [
        (M.SIGNAL_CODE_GMV_DECLINE, M.ALERT_SEVERITY_CRITICAL),
        (M.SIGNAL_CODE_DISPUTE_RATE_HIGH, M.ALERT_SEVERITY_WARNING),
        (M.SIGNAL_CODE_REFUND_RATE_HIGH, M.ALERT_SEVERITY_WARNING),
        (M.SIGNAL_CODE_STORE_RESTRICTED, M.ALERT_SEVERITY_CRITICAL),
    ]


def test_thresholds_are_each_banks_own(net: Net) -> None:
    net.api.register(
        "bank-c",
        policy=partner_pb2.EligibilityPolicy(
            monitoring=M.MonitoringPolicy(gmv_decline_warning_bps=5000)
        ),
    )
    case_a = net.case_in("m-1001", "disbursed", "bank-a")
    case_c = net.case_in("m-1001", "disbursed", "bank-c")
    consent_id = monitoring_consent(net, banks=("bank-a", "bank-c"))
    response = submit(net, consent_id, snapshot(net, gmv_yuan=(400_000,) * 3 + (240_000,)))
    body = response.expect_ok().response
    assert sorted(body.bank_ids) == ["bank-a", "bank-c"]
    # Down 40 %: above bank-a's 30 %, below bank-c's 50 %.
    (alert,) = body.alerts
    assert list(verified(net, alert).case_ids) == [case_a]
    assert list(pull(net, "bank-c").expect_ok().response.alerts) == []
    assert case_c


def test_a_default_reported_by_another_bank_is_a_critical_signal(lending: Net) -> None:
    consent_id = monitoring_consent(lending)
    lending.listed(code("m-1001"), bank_id="bank-b")
    (alert,) = submit(lending, consent_id, snapshot(lending)).expect_ok().response.alerts
    (signal,) = verified(lending, alert).signals
    assert signal.code == M.SIGNAL_CODE_DEFAULT_AT_OTHER_BANK
    assert (signal.severity, signal.observed) == (M.ALERT_SEVERITY_CRITICAL, 1)


def test_the_banks_own_report_is_not_a_default_elsewhere(lending: Net) -> None:
    consent_id = monitoring_consent(lending)
    lending.listed(code("m-1001"), bank_id="bank-a")
    assert list(submit(lending, consent_id, snapshot(lending)).expect_ok().response.alerts) == []


def test_a_retry_replays_and_other_content_under_the_same_id_is_refused(lending: Net) -> None:
    consent_id = monitoring_consent(lending)
    snap = snapshot(lending, store_restricted=True)
    first = submit(lending, consent_id, snap, rid="snap-1").expect_ok().response
    again = submit(lending, consent_id, snap, rid="snap-1").expect_ok().response
    assert again == first
    assert counts(lending)["alerts"] == 1
    other = submit(lending, consent_id, snapshot(lending), rid="snap-1")
    other.expect(grpc.StatusCode.ALREADY_EXISTS)
    assert counts(lending)["trade_snapshots"] == 1


@pytest.mark.parametrize(
    ("consent_kw", "expected"),
    [
        ({"purpose": consent_pb2.CONSENT_PURPOSE_CREDIT_REFERRAL}, "CONSENT_PURPOSE"),
        ({"bank_ids": ["bank-b"]}, "CONSENT_BANK_NOT_COVERED"),
        ({"merchant_id": "m-2002"}, "CONSENT_MERCHANT_MISMATCH"),
        ({"data_scopes": [consent_pb2.DATA_SCOPE_IDENTITY]}, "CONSENT_SCOPE"),
    ],
)
def test_a_snapshot_the_consent_does_not_cover_is_refused_and_nothing_written(
    lending: Net, consent_kw: dict[str, Any], expected: str
) -> None:
    consent_kw = dict(consent_kw)  # the parameter is shared by both backends' runs
    merchant_id = consent_kw.pop("merchant_id", "m-1001")
    banks = consent_kw.pop("bank_ids", ["bank-a"])
    consent_kw.setdefault("purpose", MONITORING)
    consent = lending.api.consent(merchant_id, banks, **consent_kw)
    before = counts(lending)
    result = submit(lending, consent.consent_id, snapshot(lending, store_restricted=True))
    result.expect_precondition(expected)
    assert counts(lending) == before


def test_a_revoked_consent_is_refused(lending: Net) -> None:
    consent_id = monitoring_consent(lending)
    lending.api.revoke(consent_id)
    submit(lending, consent_id, snapshot(lending)).expect_precondition("CONSENT_NOT_LIVE")
    assert counts(lending)["trade_snapshots"] == 0


def test_without_a_loan_there_is_nothing_to_monitor(net: Net) -> None:
    net.case_in("m-1001", "acknowledged")  # undecided: no money lent yet
    consent_id = monitoring_consent(net)
    before = counts(net)
    submit(net, consent_id, snapshot(net)).expect_precondition("NO_OPEN_CASE")
    assert counts(net) == before


def test_an_unknown_or_missing_consent(lending: Net) -> None:
    submit(lending, "cons-nope", snapshot(lending)).expect_not_found("consent", "cons-nope")
    submit(lending, "", snapshot(lending)).expect_invalid("consent_id")


def test_a_snapshot_older_than_the_last_is_refused(lending: Net) -> None:
    consent_id = monitoring_consent(lending)
    today = lending.clock.today()
    submit(lending, consent_id, snapshot(lending, as_of=today)).expect_ok()
    older = snapshot(lending, as_of=today - timedelta(days=1))
    submit(lending, consent_id, older).expect_precondition("SNAPSHOT_OUT_OF_ORDER")
    # The same day again is a correction, not out of order.
    submit(lending, consent_id, snapshot(lending, as_of=today)).expect_ok()


def test_bad_snapshot_fields_are_all_named(lending: Net) -> None:
    consent_id = monitoring_consent(lending)
    snap = snapshot(lending, dispute_rate_bps=10_001, as_of=lending.clock.today() + timedelta(1))
    snap.platform_merchant_id = "m 1001"
    del snap.reputation.monthly_gmv_fen[:]
    snap.reputation.distinct_buyer_count = 5_000
    before = counts(lending)
    submit(lending, consent_id, snap).expect_invalid(
        "snapshot.platform_merchant_id",
        "snapshot.as_of",
        "snapshot.reputation.monthly_gmv_fen",
        "snapshot.reputation.distinct_buyer_count",
        "snapshot.reputation.dispute_rate_bps",
    )
    no_date = snapshot(lending)
    no_date.ClearField("as_of")
    submit(lending, consent_id, no_date).expect_invalid("snapshot.as_of")
    bad_date = snapshot(lending)
    bad_date.as_of.day = 31
    bad_date.as_of.month = 2
    submit(lending, consent_id, bad_date).expect_invalid("snapshot.as_of")
    assert counts(lending) == before


def test_a_bad_alert_cursor_or_page_size(lending: Net) -> None:
    pull(lending, cursor="not-a-cursor").expect_invalid("cursor")
    request = pb.PullAlertsRequest(page_size=501)
    lending.api.as_bank("bank-a", "PullAlerts", request).expect_invalid("page_size")


def test_alerts_page_in_order(lending: Net) -> None:
    consent_id = monitoring_consent(lending)
    ids = [
        submit(lending, consent_id, snapshot(lending, store_restricted=True))
        .expect_ok()
        .response.alerts[0]
        .alert_id
        for _ in range(3)
    ]
    seen: list[str] = []
    cursor = ""
    while True:
        request = pb.PullAlertsRequest(cursor=cursor, page_size=2)
        page = lending.api.as_bank("bank-a", "PullAlerts", request).expect_ok().response
        if not page.alerts:
            break
        seen += [a.alert_id for a in page.alerts]
        cursor = page.next_cursor
    assert seen == ids


def test_monitoring_thresholds_are_validated_with_the_policy(net: Net) -> None:
    request_policy = partner_pb2.EligibilityPolicy(
        monitoring=M.MonitoringPolicy(
            gmv_decline_warning_bps=7000,
            gmv_decline_critical_bps=6000,
            gmv_trailing_months=13,
            dispute_rate_alert_bps=-1,
            refund_rate_alert_bps=10_001,
        )
    )
    request = admin_service_pb2.RegisterPartnerRequest(
        request_id=request_id(), partner_id="bank-z", display_name="Z", policy=request_policy
    )
    net.api.admin("RegisterPartner", request).expect_invalid(
        "policy.monitoring.gmv_decline_warning_bps",
        "policy.monitoring.gmv_trailing_months",
        "policy.monitoring.dispute_rate_alert_bps",
        "policy.monitoring.refund_rate_alert_bps",
    )
    partner = net.api.register(
        "bank-y",
        policy=partner_pb2.EligibilityPolicy(
            monitoring=M.MonitoringPolicy(gmv_decline_critical_bps=8000)
        ),
    )
    assert partner.policy.monitoring == M.MonitoringPolicy(
        gmv_decline_warning_bps=3000,
        gmv_decline_critical_bps=8000,
        gmv_trailing_months=3,
        dispute_rate_alert_bps=500,
        refund_rate_alert_bps=1000,
    )


def test_an_older_snapshot_that_raced_a_newer_one_is_refused_under_the_lock(
    lending: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.store import monitoring_repository

    consent_id = monitoring_consent(lending)
    today = lending.clock.today()
    submit(lending, consent_id, snapshot(lending, as_of=today)).expect_ok()
    real = monitoring_repository.latest_snapshot_date
    calls: list[str] = []

    def racing(session: Any, merchant_id: str) -> Any:
        calls.append(merchant_id)
        # The first read (before signing) does not see today's snapshot yet; the one under
        # the lock does.
        return None if len(calls) == 1 else real(session, merchant_id)

    monkeypatch.setattr(monitoring_repository, "latest_snapshot_date", racing)
    before = counts(lending)
    older = snapshot(lending, as_of=today - timedelta(days=1), store_restricted=True)
    submit(lending, consent_id, older).expect_precondition("SNAPSHOT_OUT_OF_ORDER")
    assert counts(lending) == before
    assert len(calls) == 2


def test_a_snapshot_more_than_a_year_old_is_refused(lending: Net) -> None:
    consent_id = monitoring_consent(lending)
    stale = snapshot(lending, as_of=lending.clock.today() - timedelta(days=367))
    submit(lending, consent_id, stale).expect_invalid("snapshot.as_of")
    year = snapshot(lending, as_of=lending.clock.today() - timedelta(days=366))
    submit(lending, consent_id, year).expect_ok()


def test_pulls_leave_out_alerts_expired_or_under_an_ended_consent(lending: Net) -> None:
    consent_id = monitoring_consent(lending)
    submit(lending, consent_id, snapshot(lending, store_restricted=True)).expect_ok()
    assert len(pull(lending).expect_ok().response.alerts) == 1
    # 31 days on, past the alert's validity (the bank's 30-day referral TTL): not served.
    lending.clock.advance(days=31)
    assert list(pull(lending).expect_ok().response.alerts) == []
    lending.clock.advance(days=-31)
    lending.api.revoke(consent_id)
    assert list(pull(lending).expect_ok().response.alerts) == []


def test_snapshots_under_two_consents_are_stored_in_date_order(lending: Net) -> None:
    """One snapshot of a merchant at a time, whichever consent: an older one racing a newer one
    under another consent is refused or lands first, never after it."""
    first, second = monitoring_consent(lending), monitoring_consent(lending)
    today = lending.clock.today()
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def send(consent_id: str, day: date) -> None:
        barrier.wait()
        results.append(submit(lending, consent_id, snapshot(lending, as_of=day)))

    threads = [
        threading.Thread(target=send, args=(first, today)),
        threading.Thread(target=send, args=(second, today - timedelta(days=1))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for result in results:
        if not result.ok:
            result.expect_precondition("SNAPSHOT_OUT_OF_ORDER")
    with lending.api.database.reading() as session:
        stored = session.execute(
            sqlalchemy.text("SELECT as_of FROM trade_snapshots ORDER BY seq")
        ).scalars()
        days = [d if isinstance(d, date) else date.fromisoformat(d) for d in stored]
    assert days == sorted(days)


def test_a_suspended_bank_gets_no_alert(net: Net) -> None:
    net.case_in("m-1001", "disbursed")
    consent_id = monitoring_consent(net)
    net.api.suspend("bank-a")
    response = submit(net, consent_id, snapshot(net, store_restricted=True))
    stored = response.expect_ok().response
    assert list(stored.alerts) == []
    assert list(stored.bank_ids) == []
