"""The early-warning rules at each threshold: exactly at it raises nothing, one unit above
raises the signal, and the GMV decline's rounding never moves a boundary."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from gateway.domain.merchant import TransactionReputation
from gateway.domain.monitoring import (
    Severity,
    SignalCode,
    TradeSnapshot,
    alert_severity,
    early_warning_signals,
    gmv_decline_bps,
    snapshot_problems,
)
from gateway.domain.policy import MonitoringPolicy, monitoring_policy_problems

DEFAULTS = MonitoringPolicy()
TODAY = date(2026, 12, 6)


def snap(
    gmv: tuple[int, ...] = (10_000, 10_000, 10_000, 10_000),
    *,
    dispute: int = 0,
    refund: int = 0,
    restricted: bool = False,
) -> TradeSnapshot:
    return TradeSnapshot(
        platform_merchant_id="m-1",
        as_of=TODAY,
        reputation=TransactionReputation(
            monthly_gmv_fen=gmv,
            order_count=100,
            distinct_buyer_count=50,
            dispute_rate_bps=dispute,
            refund_rate_bps=refund,
        ),
        store_restricted=restricted,
    )


def signals(s: TradeSnapshot, policy: MonitoringPolicy = DEFAULTS, elsewhere: int = 0) -> list:
    return [
        (x.code, x.severity) for x in early_warning_signals(s, policy, defaults_elsewhere=elsewhere)
    ]


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        (7_000, []),  # down exactly 30 %: not above the threshold
        (6_999, [(SignalCode.GMV_DECLINE, Severity.WARNING)]),
        (4_000, [(SignalCode.GMV_DECLINE, Severity.WARNING)]),  # exactly 60 %: still a warning
        (3_999, [(SignalCode.GMV_DECLINE, Severity.CRITICAL)]),
        (0, [(SignalCode.GMV_DECLINE, Severity.CRITICAL)]),
        (20_000, []),  # growth
    ],
)
def test_gmv_decline_boundaries(last: int, expected: list) -> None:
    assert signals(snap((10_000, 10_000, 10_000, last))) == expected


def test_the_decline_rounds_up_so_a_fraction_above_the_threshold_fires() -> None:
    # Average 3, last 2: down 33.33...% -> 3334 bps.
    assert gmv_decline_bps((3, 3, 3, 2), 3) == 3334
    # Rounded up, 3334 > 3333 exactly when the true decline (3333.33...) is.
    policy = replace(DEFAULTS, gmv_decline_warning_bps=3333)
    assert signals(snap((3, 3, 3, 2)), policy) == [(SignalCode.GMV_DECLINE, Severity.WARNING)]
    policy = replace(DEFAULTS, gmv_decline_warning_bps=3334)
    assert signals(snap((3, 3, 3, 2)), policy) == []


def test_the_trailing_window_is_the_policys_months_before_the_last() -> None:
    # A huge month four months back is outside a 3-month window.
    assert gmv_decline_bps((10**9, 100, 100, 100, 100), 3) == 0
    assert gmv_decline_bps((10**9, 100, 100, 100, 100), 4) > 9_000
    # Fewer months than the window: the average of those there are.
    assert gmv_decline_bps((100, 50), 3) == 5_000


@pytest.mark.parametrize("gmv", [(100,), (0, 0, 0, 10), (0, 0)])
def test_no_decline_without_a_month_before_or_with_a_zero_average(gmv: tuple[int, ...]) -> None:
    assert gmv_decline_bps(gmv, 3) is None
    assert signals(snap(gmv)) == []


@pytest.mark.parametrize(
    ("dispute", "refund", "expected"),
    [
        (500, 1_000, []),
        (501, 1_000, [(SignalCode.DISPUTE_RATE_HIGH, Severity.WARNING)]),
        (500, 1_001, [(SignalCode.REFUND_RATE_HIGH, Severity.WARNING)]),
    ],
)
def test_rate_boundaries(dispute: int, refund: int, expected: list) -> None:
    assert signals(snap(dispute=dispute, refund=refund)) == expected


def test_store_restriction_and_defaults_elsewhere_are_critical() -> None:
    assert signals(snap(restricted=True)) == [(SignalCode.STORE_RESTRICTED, Severity.CRITICAL)]
    assert signals(snap(), elsewhere=0) == []
    (signal,) = early_warning_signals(snap(), DEFAULTS, defaults_elsewhere=2)
    assert (signal.code, signal.observed, signal.threshold) == (
        SignalCode.DEFAULT_AT_OTHER_BANK,
        2,
        0,
    )
    assert "2 blacklist entries" in signal.reason


def test_a_signal_says_what_it_saw_and_the_alert_takes_the_highest_severity() -> None:
    found = early_warning_signals(
        snap((100, 100, 100, 50), dispute=900), DEFAULTS, defaults_elsewhere=0
    )
    gmv, dispute = found
    assert (gmv.observed, gmv.threshold) == (5_000, 3_000)
    assert "5000 bps below the average of the 3 month(s)" in gmv.reason
    assert (dispute.observed, dispute.threshold) == (900, 500)
    assert alert_severity(found) is Severity.WARNING
    found += early_warning_signals(snap(restricted=True), DEFAULTS, defaults_elsewhere=0)
    assert alert_severity(found) is Severity.CRITICAL


def test_thresholds_are_the_policys() -> None:
    strict = MonitoringPolicy(
        gmv_decline_warning_bps=1_000,
        gmv_decline_critical_bps=2_000,
        gmv_trailing_months=1,
        dispute_rate_alert_bps=10,
        refund_rate_alert_bps=10,
    )
    assert signals(snap((10_000, 10_000, 10_000, 8_500), dispute=11, refund=10), strict) == [
        (SignalCode.GMV_DECLINE, Severity.WARNING),
        (SignalCode.DISPUTE_RATE_HIGH, Severity.WARNING),
    ]


def test_policy_validation_names_every_field() -> None:
    bad = MonitoringPolicy(
        gmv_decline_warning_bps=0,
        gmv_decline_critical_bps=10_001,
        gmv_trailing_months=13,
        dispute_rate_alert_bps=0,
        refund_rate_alert_bps=-5,
    )
    assert [v.field for v in monitoring_policy_problems(bad, field_prefix="m")] == [
        "m.gmv_decline_warning_bps",
        "m.gmv_decline_critical_bps",
        "m.gmv_trailing_months",
        "m.dispute_rate_alert_bps",
        "m.refund_rate_alert_bps",
    ]
    inverted = MonitoringPolicy(gmv_decline_warning_bps=6_001)
    (problem,) = monitoring_policy_problems(inverted, field_prefix="m")
    assert problem.field == "m.gmv_decline_warning_bps"
    assert "must not exceed gmv_decline_critical_bps (6000)" in problem.description
    assert monitoring_policy_problems(DEFAULTS, field_prefix="m") == []


def test_snapshot_validation_is_the_profiles_reputation_rules() -> None:
    bad = replace(
        snap(gmv=(), dispute=10_001),
        platform_merchant_id="",
        as_of=date(2026, 12, 7),
    )
    fields = [v.field for v in snapshot_problems(bad, today=TODAY, field_prefix="s")]
    assert fields == [
        "s.platform_merchant_id",
        "s.as_of",
        "s.reputation.monthly_gmv_fen",
        "s.reputation.dispute_rate_bps",
    ]
    assert snapshot_problems(snap(), today=TODAY, field_prefix="s") == []
    undated = replace(snap(), as_of=None)
    assert [v.description for v in snapshot_problems(undated, today=TODAY, field_prefix="s")] == [
        "required"
    ]
