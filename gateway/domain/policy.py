"""A partner bank's eligibility policy, with the historical programme as the default.

Defaults (sources in ``/work/shared/reference/domain-notes.md``):

* Regions: Shanghai 310000, Jiangsu 320000, Zhejiang 330000, except Wenzhou 330300 and its
  districts 3303xx: the first B2B credit line's footprint (seed). Patterns follow GB/T 2260:
  ``PP0000`` covers a province, ``PPCC00`` a prefecture, otherwise one exact county.
* At least 2 full years since business registration (seed).
* Paid members only: TrustPass and Gold Supplier (seed; later opened to free members, which a
  bank does by adding ``FREE`` or by leaving ``allowed_tiers`` empty).
* Credit line RMB 50,000 to 1,000,000 (seed product table).
* Platform share of each loan 30 % .. 90 %: CBIRC notice 2021 No. 24 has the cooperating
  institution fund at least 30 %; the bank keeps at least 10 % (cf. RBI 2025 "at least 10 %
  each"), so it keeps skin in the game.
* Referrals expire after 30 days, so a bank never decides on stale reputation data.
* Early warnings (``monitoring``, rules in ``gateway.domain.monitoring``): GMV down more than
  30 % (WARNING) or 60 % (CRITICAL) against the 3 months before, disputes above 5 %, refunds
  above 10 %: the gateway's defaults, for a bank to tune.
* A scheduled loan defaults 90 days past due (``default_after_days``): the common NPL line
  (loans 90 days past due are non-performing), declared by the gateway the same day for both
  lenders (RBI 2025: a default classified the same day at both).
* Overdue principal bears 1.5x the contract rate (``penalty_rate_bps`` 15000): the contract
  rate plus 50 %, the top of the PBOC's 30-50 % surcharge on overdue loans (罚息, PBOC 2003
  No. 251, the common market practice); a bank may set 10000 (no surcharge) up to 3x.
* An order loan advances at most 80 % of an order's value (``order_advance_cap_bps``): the
  gateway's default margin for refunds and fees between the advance and the settlement.

Empty ``allowed_region_codes`` or ``allowed_tiers`` mean "no restriction". ``exposure_cap_fen``
0 means no cap. A policy is data, not code: :func:`validate_policy` checks one before it is
stored, and reports every problem at once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from colending_core import is_region_code
from gateway.domain.merchant import MembershipTier
from gateway.domain.money import BPS_WHOLE, yuan
from gateway.errors import FieldViolation

MAX_AMOUNT_FEN: Final = 10**14  # RMB 1 trillion: far above any loan, far below int64 overflow


MAX_TRAILING_MONTHS: Final = 12


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitoringPolicy:
    gmv_decline_warning_bps: int = 3000
    gmv_decline_critical_bps: int = 6000
    gmv_trailing_months: int = 3
    dispute_rate_alert_bps: int = 500
    refund_rate_alert_bps: int = 1000


class CollectionOrder(enum.Enum):
    # Penalty interest, then interest, then principal: what is owed for the use of the money
    # (and for its lateness), then the money.
    INTEREST_FIRST = "interest_first"
    # Principal, then interest, then penalty interest: the borrower's debt shrinks fastest.
    PRINCIPAL_FIRST = "principal_first"


class BlacklistAction(enum.Enum):
    REFUSE = "refuse"  # a blacklisted merchant gets no referral to this bank
    FLAG = "flag"  # the referral goes out, marked, and the bank decides


@dataclass(frozen=True, slots=True, kw_only=True)
class EligibilityPolicy:
    allowed_region_codes: tuple[str, ...] = ("310000", "320000", "330000")
    excluded_region_codes: tuple[str, ...] = ("330300",)
    min_years_registered: int = 2
    allowed_tiers: frozenset[MembershipTier] = frozenset(
        {MembershipTier.TRUSTPASS, MembershipTier.GOLD_SUPPLIER}
    )
    min_score: int = 0
    min_credit_line_fen: int = yuan(50_000)
    max_credit_line_fen: int = yuan(1_000_000)
    allow_amount_above_offer: bool = False
    platform_share_floor_bps: int = 3000
    platform_share_ceiling_bps: int = 9000
    exposure_cap_fen: int = 0
    blacklist_action: BlacklistAction = BlacklistAction.REFUSE
    referral_ttl_days: int = 30
    ordered_delivery: bool = False
    monitoring: MonitoringPolicy = MonitoringPolicy()
    order_advance_cap_bps: int = 8000
    default_after_days: int = 90
    collection_order: CollectionOrder = CollectionOrder.INTEREST_FIRST
    penalty_rate_bps: int = 15_000  # of the contract rate, stamped on the terms when decided


DEFAULT_POLICY: Final = EligibilityPolicy()
MAX_PENALTY_RATE_BPS: Final = 30_000  # 3x the contract rate


def _range(
    out: list[FieldViolation], field: str, value: int, low: int, high: int, unit: str = ""
) -> bool:
    if low <= value <= high:
        return True
    suffix = f" {unit}" if unit else ""
    out.append(FieldViolation(field, f"must be between {low} and {high}{suffix}, got {value}"))
    return False


def validate_policy(
    policy: EligibilityPolicy, *, field_prefix: str = "policy"
) -> list[FieldViolation]:
    """Every problem with ``policy``, as field violations under ``field_prefix``."""
    p = f"{field_prefix}." if field_prefix else ""
    out: list[FieldViolation] = []
    for name in ("allowed_region_codes", "excluded_region_codes"):
        codes: tuple[str, ...] = getattr(policy, name)
        seen: set[str] = set()
        for i, code in enumerate(codes):
            if not is_region_code(code):
                out.append(
                    FieldViolation(
                        f"{p}{name}[{i}]", f"{code!r} is not a six-digit GB/T 2260 region code"
                    )
                )
            elif code in seen:
                out.append(FieldViolation(f"{p}{name}[{i}]", f"duplicate region code {code}"))
            seen.add(code)
    for tier in policy.allowed_tiers:
        if not isinstance(tier, MembershipTier):
            out.append(FieldViolation(f"{p}allowed_tiers", f"{tier!r} is not a membership tier"))
    _range(out, f"{p}min_years_registered", policy.min_years_registered, 0, 100, "years")
    _range(out, f"{p}min_score", policy.min_score, 0, 1000)
    lines_ok = _range(
        out,
        f"{p}min_credit_line.amount_minor",
        policy.min_credit_line_fen,
        1,
        MAX_AMOUNT_FEN,
        "fen",
    )
    lines_ok &= _range(
        out,
        f"{p}max_credit_line.amount_minor",
        policy.max_credit_line_fen,
        1,
        MAX_AMOUNT_FEN,
        "fen",
    )
    if lines_ok and policy.min_credit_line_fen > policy.max_credit_line_fen:
        out.append(
            FieldViolation(
                f"{p}min_credit_line.amount_minor",
                f"must not exceed max_credit_line ({policy.max_credit_line_fen} fen), "
                f"got {policy.min_credit_line_fen}",
            )
        )
    shares_ok = _range(
        out,
        f"{p}platform_share_floor_bps",
        policy.platform_share_floor_bps,
        0,
        BPS_WHOLE,
        "basis points",
    )
    shares_ok &= _range(
        out,
        f"{p}platform_share_ceiling_bps",
        policy.platform_share_ceiling_bps,
        0,
        BPS_WHOLE,
        "basis points",
    )
    if shares_ok and policy.platform_share_floor_bps > policy.platform_share_ceiling_bps:
        out.append(
            FieldViolation(
                f"{p}platform_share_floor_bps",
                f"must not exceed platform_share_ceiling_bps "
                f"({policy.platform_share_ceiling_bps}), got {policy.platform_share_floor_bps}",
            )
        )
    _range(out, f"{p}exposure_cap.amount_minor", policy.exposure_cap_fen, 0, MAX_AMOUNT_FEN, "fen")
    if not isinstance(policy.blacklist_action, BlacklistAction):
        out.append(
            FieldViolation(f"{p}blacklist_action", f"{policy.blacklist_action!r} is not an action")
        )
    _range(out, f"{p}referral_ttl_days", policy.referral_ttl_days, 1, 365, "days")
    out += monitoring_policy_problems(policy.monitoring, field_prefix=f"{p}monitoring")
    _range(
        out, f"{p}order_advance_cap_bps", policy.order_advance_cap_bps, 1, BPS_WHOLE, "basis points"
    )
    _range(out, f"{p}default_after_days", policy.default_after_days, 1, 365, "days")
    _range(
        out,
        f"{p}penalty_rate_bps",
        policy.penalty_rate_bps,
        BPS_WHOLE,
        MAX_PENALTY_RATE_BPS,
        "basis points of the contract rate",
    )
    return out


def monitoring_policy_problems(
    policy: MonitoringPolicy, *, field_prefix: str
) -> list[FieldViolation]:
    p = f"{field_prefix}."
    out: list[FieldViolation] = []

    def check(name: str, low: int, high: int, unit: str) -> bool:
        value: int = getattr(policy, name)
        if low <= value <= high:
            return True
        out.append(
            FieldViolation(f"{p}{name}", f"must be between {low} and {high} {unit}, got {value}")
        )
        return False

    warning_ok = check("gmv_decline_warning_bps", 1, BPS_WHOLE, "basis points")
    critical_ok = check("gmv_decline_critical_bps", 1, BPS_WHOLE, "basis points")
    if (
        warning_ok
        and critical_ok
        and policy.gmv_decline_warning_bps > policy.gmv_decline_critical_bps
    ):
        out.append(
            FieldViolation(
                f"{p}gmv_decline_warning_bps",
                f"must not exceed gmv_decline_critical_bps ({policy.gmv_decline_critical_bps}), "
                f"got {policy.gmv_decline_warning_bps}",
            )
        )
    check("gmv_trailing_months", 1, MAX_TRAILING_MONTHS, "months")
    check("dispute_rate_alert_bps", 1, BPS_WHOLE, "basis points")
    check("refund_rate_alert_bps", 1, BPS_WHOLE, "basis points")
    return out
