"""Post-loan monitoring: the platform's trade snapshots of a borrower turned into early-warning
signals, by a pure rule set with per-bank thresholds.

Rules (every figure an integer; a rule fires when the observed figure is strictly above its
threshold, so a figure exactly at the threshold raises nothing):

* ``GMV_DECLINE``: the last month's GMV against the average of up to ``gmv_trailing_months``
  months before it. The decline is ``(average - last) / average`` in basis points, rounded up;
  rounding up makes "rounded decline > threshold" exactly "true decline > threshold", so the
  rounding never decides a boundary. WARNING above ``gmv_decline_warning_bps`` (default 30 %),
  CRITICAL above ``gmv_decline_critical_bps`` (60 %). Needs two months, and a trailing average
  above zero.
* ``DISPUTE_RATE_HIGH``: dispute rate above ``dispute_rate_alert_bps`` (5 %); WARNING.
* ``REFUND_RATE_HIGH``: refund rate above ``refund_rate_alert_bps`` (10 %); WARNING.
* ``STORE_RESTRICTED``: the platform restricted the store (关停机制); CRITICAL.
* ``DEFAULT_AT_OTHER_BANK``: another bank has a blacklist entry in force; CRITICAL.

An alert's severity is the highest of its signals. The defaults are the gateway's, not a
regulation's: a bank sets its own in its policy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from gateway.domain.merchant import TransactionReputation
from gateway.domain.money import BPS_WHOLE
from gateway.domain.policy import MonitoringPolicy
from gateway.domain.referral import SignedPayload
from gateway.domain.validation import REQUIRED, merchant_id_problems, reputation_problems
from gateway.errors import FieldViolation


class SignalCode(enum.Enum):
    GMV_DECLINE = "gmv_decline"
    DISPUTE_RATE_HIGH = "dispute_rate_high"
    REFUND_RATE_HIGH = "refund_rate_high"
    STORE_RESTRICTED = "store_restricted"
    DEFAULT_AT_OTHER_BANK = "default_at_other_bank"


class Severity(enum.IntEnum):
    # Ordered, so an alert's severity is max() of its signals'.
    WARNING = 1
    CRITICAL = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeSnapshot:
    platform_merchant_id: str
    as_of: date | None
    reputation: TransactionReputation
    store_restricted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredSnapshot:
    snapshot_id: str
    consent_id: str
    bank_ids: tuple[str, ...]
    snapshot: TradeSnapshot
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    code: SignalCode
    severity: Severity
    reason: str
    observed: int
    threshold: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertPayload:
    """The content of one signed alert; encoded to protobuf bytes outside the domain."""

    alert_id: str
    bank_id: str
    case_ids: tuple[str, ...]
    platform_merchant_id: str
    snapshot_id: str
    snapshot_as_of: date
    severity: Severity
    signals: tuple[Signal, ...]
    issued_at: datetime
    expires_at: datetime
    nonce: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """A signed alert as stored: ``sequence`` orders a bank's alerts for pull and stream."""

    alert_id: str
    sequence: int
    bank_id: str
    platform_merchant_id: str
    snapshot_id: str
    severity: Severity
    envelope: SignedPayload
    created_at: datetime
    expires_at: datetime


MAX_SNAPSHOT_AGE_DAYS = 366  # a year's trade, at most, reported late


def snapshot_problems(
    snapshot: TradeSnapshot, *, today: date, field_prefix: str
) -> list[FieldViolation]:
    """Every violation in ``snapshot``: the profile's reputation rules, and an as-of date that
    is set, not after ``today`` and not more than a year before."""
    p = f"{field_prefix}."
    out = merchant_id_problems(f"{p}platform_merchant_id", snapshot.platform_merchant_id)
    if snapshot.as_of is None:
        out.append(FieldViolation(f"{p}as_of", REQUIRED))
    elif not today - timedelta(days=MAX_SNAPSHOT_AGE_DAYS) <= snapshot.as_of <= today:
        out.append(
            FieldViolation(
                f"{p}as_of",
                f"must be within the {MAX_SNAPSHOT_AGE_DAYS} days up to today "
                f"({today.isoformat()})",
            )
        )
    out += reputation_problems(snapshot.reputation, field_prefix=f"{p}reputation")
    return out


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def gmv_decline_bps(monthly_gmv_fen: tuple[int, ...], trailing_months: int) -> int | None:
    """The last month's decline against the trailing average, basis points rounded up (negative
    for growth); None without a month before the last or with a zero trailing average."""
    if len(monthly_gmv_fen) < 2:
        return None
    *before, last = monthly_gmv_fen
    trailing = before[-trailing_months:]
    total = sum(trailing)
    if total == 0:
        return None
    # (average - last) / average = (total - last * n) / total: no division until the end.
    return _ceil_div((total - last * len(trailing)) * BPS_WHOLE, total)


def early_warning_signals(
    snapshot: TradeSnapshot, policy: MonitoringPolicy, *, defaults_elsewhere: int
) -> list[Signal]:
    """The signals ``snapshot`` raises under ``policy``; ``defaults_elsewhere`` is how many
    blacklist entries other banks have in force for the merchant."""
    r = snapshot.reputation
    out: list[Signal] = []
    decline = gmv_decline_bps(r.monthly_gmv_fen, policy.gmv_trailing_months)
    if decline is not None:
        months = min(len(r.monthly_gmv_fen) - 1, policy.gmv_trailing_months)
        for severity, threshold in (
            (Severity.CRITICAL, policy.gmv_decline_critical_bps),
            (Severity.WARNING, policy.gmv_decline_warning_bps),
        ):
            if decline > threshold:
                out.append(
                    Signal(
                        code=SignalCode.GMV_DECLINE,
                        severity=severity,
                        reason=f"last month's GMV is {decline} bps below the average of the "
                        f"{months} month(s) before it (threshold {threshold} bps)",
                        observed=decline,
                        threshold=threshold,
                    )
                )
                break
    for code, observed, threshold, what in (
        (
            SignalCode.DISPUTE_RATE_HIGH,
            r.dispute_rate_bps,
            policy.dispute_rate_alert_bps,
            "dispute",
        ),
        (SignalCode.REFUND_RATE_HIGH, r.refund_rate_bps, policy.refund_rate_alert_bps, "refund"),
    ):
        if observed > threshold:
            out.append(
                Signal(
                    code=code,
                    severity=Severity.WARNING,
                    reason=f"{what} rate {observed} bps is above {threshold} bps",
                    observed=observed,
                    threshold=threshold,
                )
            )
    if snapshot.store_restricted:
        out.append(
            Signal(
                code=SignalCode.STORE_RESTRICTED,
                severity=Severity.CRITICAL,
                reason="the platform has restricted the merchant's store",
                observed=1,
                threshold=0,
            )
        )
    if defaults_elsewhere > 0:
        out.append(
            Signal(
                code=SignalCode.DEFAULT_AT_OTHER_BANK,
                severity=Severity.CRITICAL,
                reason=f"{defaults_elsewhere} blacklist entr"
                f"{'y' if defaults_elsewhere == 1 else 'ies'} in force reported by other banks",
                observed=defaults_elsewhere,
                threshold=0,
            )
        )
    return out


def alert_severity(signals: list[Signal] | tuple[Signal, ...]) -> Severity:
    return max(s.severity for s in signals)
