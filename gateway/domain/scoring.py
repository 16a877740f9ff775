"""The platform's deterministic scorecard, the credit offer and the eligibility check.

Scorecard ``b2b-scorecard-2026.1``
==================================

A score starts at **300** (``BASE_SCORE``) and each factor below adds or subtracts points; the
sum is clamped to 0..1000. Only integers are used, and the as-of date is an argument, so the same
profile and date always give the same score. A factor's reason code depends on the sign of its
points (a factor worth 0 points gives no reason).

Factors, in table order (the order also breaks ties between reasons):

* **Trading history**, full years since business registration (anniversary based): under 1
  year -60, 1 year -20 (``SHORT_TRADING_HISTORY``); 2-3 years +30, 4-6 years +60
  (``ESTABLISHED_TRADING_HISTORY``); 7 or more +90 (``LONG_TRADING_HISTORY``). Young firms
  fail most often; the seed programme asked for 2 years.
* **Membership**: TrustPass +30, Gold Supplier +50, plus +10 per full paid year up to +50
  (``PAID_MEMBERSHIP``); free members 0. Paid members are vetted and pay a fee; the seed
  programme lent only to them.
* **Sales volume**, average monthly GMV: under RMB 10,000 -40 (``LOW_SALES_VOLUME``); under
  50,000 0; under 200,000 +40; under 1,000,000 +80; from 1,000,000 +110
  (``HIGH_SALES_VOLUME``). It is the capacity to repay, and the base of the line.
* **Sales trend** (6 or more months): last 3 months' GMV at least 120 % of the first 3 months'
  +30 (``GROWING_SALES``); at most 80 % -40 (``DECLINING_SALES``). A shrinking business repays
  late; decline weighs more than growth.
* **Sales stability** (3 or more months): mean absolute deviation of monthly GMV at most 20 % of
  the mean +30 (``STABLE_SALES``); at least 50 %, or no GMV at all, -30 (``VOLATILE_SALES``).
  Steady cash flow services a loan.
* **Orders** in the window: under 50 -30 (``FEW_ORDERS``); under 500 0; under 5,000 +30; from
  5,000 +50 (``MANY_ORDERS``). Volume is what makes the reputation data meaningful.
* **Buyer concentration** (only with orders), distinct buyers: under 5 -50, under 20 -20
  (``CONCENTRATED_BUYERS``); under 100 +10, from 100 +30 (``DIVERSE_BUYERS``). Losing one of a
  few buyers stops the cash flow.
* **Positive feedback** (only with orders): from 98 % +50, from 95 % +30
  (``HIGH_POSITIVE_FEEDBACK``); from 90 % 0; below 90 % -40 (``LOW_POSITIVE_FEEDBACK``). The
  buyers' verdict, built up over years and hard to fake.
* **Dispute rate**: up to 0.5 % +30 (``LOW_DISPUTE_RATE``); up to 2 % 0; up to 5 % -50, above
  5 % -100 (``HIGH_DISPUTE_RATE``). Disputes predict fraud and default best of the reputation
  data.
* **Refund rate**: up to 2 % +20 (``LOW_REFUND_RATE``); up to 5 % 0; up to 10 % -30, above 10 %
  -60 (``HIGH_REFUND_RATE``). Product or delivery problems.
* **On-time shipment**: from 98 % +30, from 95 % +10 (``RELIABLE_SHIPPING``); from 90 % 0; below
  90 % -40 (``LATE_SHIPPING``). Operational discipline.
* **Prior loans repaid**: +20 each, up to +80 (``PRIOR_LOANS_REPAID``). Proven repayment.
* **Prior loans overdue**: -80 each, down to -240 (``PRIOR_LOANS_OVERDUE``). The strongest
  default signal: one overdue loan cancels all that repaid loans can earn.
* **Verification**: business licence +20, legal representative +20, bank account +20, on-site
  inspection +30, video interview +20 (``VERIFIED_BUSINESS``); none at all -40
  (``UNVERIFIED_BUSINESS``). Third-party cross-checks, as in the seed's micro-loan company.

The best profile reaches 1060 and the worst -470 before clamping, so both ends of the range are
reachable. The assessment lists at most 6 reasons: the factors with the largest absolute points,
ties kept in the table's order.

Grades: A >= 800, B >= 700, C >= 600, D >= 500, E below 500. The base plus neutral factors is
300, so a merchant reaches D (the lowest grade with an offer) only with about +200 of positive
evidence; a typical established paid member with clean reputation lands in B.

Offer
=====

The line is the average monthly GMV times the grade's multiple (A 6, B 4, C 3, D 2, E 0),
rounded down to whole RMB 1,000 and capped at the policy's maximum; below the policy's minimum
there is no offer. The line is 12 months and has two parts (seed): a fixed part paid out at once
at 0.05 %/day (500 ppm), at least 20 % of the total and at least RMB 50,000, rounded up to whole
RMB 1,000 and capped at the total; and the rest as a revolving part at 0.06 %/day (600 ppm),
interest only on what is drawn. So a RMB 50,000 line is all fixed (``FIXED_LOAN``).

Eligibility
===========

:func:`check_eligibility` lists every unmet policy rule at once (region allowed, region not
excluded, full years registered, tier, minimum score, an offer at or above the minimum line).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from types import MappingProxyType
from typing import Final

from colending_core import region_matches
from gateway.domain.merchant import DataScope, MembershipTier, MerchantProfile
from gateway.domain.money import BPS_WHOLE, format_fen, yuan
from gateway.domain.policy import EligibilityPolicy
from gateway.errors import PreconditionViolation

SCORECARD_VERSION: Final = "b2b-scorecard-2026.1"
BASE_SCORE: Final = 300
MIN_SCORE: Final = 0
MAX_SCORE: Final = 1000
MAX_REASONS: Final = 6

TERM_MONTHS: Final = 12
REVOLVING_DAILY_RATE_PPM: Final = 600
FIXED_DAILY_RATE_PPM: Final = 500
FIXED_PART_MIN_BPS: Final = 2000
FIXED_PART_MIN_FEN: Final = yuan(50_000)
LINE_ROUNDING_FEN: Final = yuan(1_000)

ELIGIBILITY: Final = "ELIGIBILITY"


class Grade(enum.Enum):
    A = "A"
    B = "B"
    C = "C"
    D = "D"
    E = "E"


# Lowest score of each grade, best first.
GRADE_CUTOFFS: Final[tuple[tuple[Grade, int], ...]] = (
    (Grade.A, 800),
    (Grade.B, 700),
    (Grade.C, 600),
    (Grade.D, 500),
    (Grade.E, 0),
)
# Months of average GMV lent per grade.
GRADE_LINE_MULTIPLES: Final[Mapping[Grade, int]] = MappingProxyType(
    {Grade.A: 6, Grade.B: 4, Grade.C: 3, Grade.D: 2, Grade.E: 0}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reason:
    code: str
    description: str
    points: int
    # The profile section the factor reads: a reason may reach a bank only if the merchant
    # consented to share that section, since its text restates the data.
    scope: DataScope


@dataclass(frozen=True, slots=True, kw_only=True)
class Assessment:
    score: int
    grade: Grade
    reasons: tuple[Reason, ...]
    scorecard_version: str


class ProductType(enum.Enum):
    REVOLVING_LINE = "revolving_line"
    FIXED_LOAN = "fixed_loan"
    COMBINED = "combined"
    ORDER_LOAN = "order_loan"  # decided by a bank, never offered by the scorecard


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditOffer:
    product: ProductType
    total_limit_fen: int
    revolving_limit_fen: int
    fixed_amount_fen: int
    term_months: int
    revolving_daily_rate_ppm: int
    fixed_daily_rate_ppm: int


def full_years_between(start: date, end: date) -> int:
    """Whole years from ``start`` to ``end``, counted by anniversaries.

    A Feb-29 start has its anniversary on Mar 1 in common years (the day after Feb 28 is when a
    full year has certainly passed). Raises ValueError if ``end`` is before ``start``.
    """
    if end < start:
        raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
    years = end.year - start.year
    if (end.month, end.day) < (start.month, start.day):
        years -= 1
    return years


def _years_or_zero(start: date | None, as_of: date) -> int:
    if start is None or start > as_of:
        return 0
    return full_years_between(start, as_of)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _pct(bps: int) -> str:
    whole, frac = divmod(bps, 100)
    return f"{whole}.{frac:02d} %"


def average_monthly_gmv_fen(profile: MerchantProfile) -> int:
    """Mean monthly GMV in fen, rounded down; 0 without data."""
    months = profile.reputation.monthly_gmv_fen
    return sum(months) // len(months) if months else 0


def grade_for(score: int) -> Grade:
    for grade, cutoff in GRADE_CUTOFFS:
        if score >= cutoff:
            return grade
    return Grade.E


# A factor returns (points, code, description); code is ignored when points are 0.
_Factor = Callable[[MerchantProfile, date], tuple[int, str, str]]


def _trading_history(profile: MerchantProfile, as_of: date) -> tuple[int, str, str]:
    years = _years_or_zero(profile.qualification.business_registration_date, as_of)
    text = f"registered {_plural(years, 'full year')} ago"
    if years < 1:
        return -60, "SHORT_TRADING_HISTORY", text
    if years < 2:
        return -20, "SHORT_TRADING_HISTORY", text
    if years < 4:
        return 30, "ESTABLISHED_TRADING_HISTORY", text
    if years < 7:
        return 60, "ESTABLISHED_TRADING_HISTORY", text
    return 90, "LONG_TRADING_HISTORY", text


def _membership(profile: MerchantProfile, as_of: date) -> tuple[int, str, str]:
    q = profile.qualification
    tier_points = {MembershipTier.TRUSTPASS: 30, MembershipTier.GOLD_SUPPLIER: 50}
    if q.membership_tier not in tier_points:
        return 0, "FREE_MEMBERSHIP", "free member"
    years = _years_or_zero(q.paid_member_since, as_of)
    points = tier_points[q.membership_tier] + min(10 * years, 50)
    return (
        points,
        "PAID_MEMBERSHIP",
        f"{q.membership_tier.name} member for {_plural(years, 'full year')}",
    )


def _sales_volume(profile: MerchantProfile, as_of: date) -> tuple[int, str, str]:
    avg = average_monthly_gmv_fen(profile)
    text = f"average monthly GMV {format_fen(avg)}"
    if avg < yuan(10_000):
        return -40, "LOW_SALES_VOLUME", text
    if avg < yuan(50_000):
        return 0, "SALES_VOLUME", text
    if avg < yuan(200_000):
        return 40, "HIGH_SALES_VOLUME", text
    if avg < yuan(1_000_000):
        return 80, "HIGH_SALES_VOLUME", text
    return 110, "HIGH_SALES_VOLUME", text


def _sales_trend(profile: MerchantProfile, as_of: date) -> tuple[int, str, str]:
    months = profile.reputation.monthly_gmv_fen
    if len(months) < 6:
        return 0, "SALES_TREND", "fewer than 6 months of GMV"
    first, last = sum(months[:3]), sum(months[-3:])
    # Cross-multiplied to stay in integers: last/first >= 1.2 and <= 0.8.
    if last * 100 >= first * 120 and last > 0:
        return 30, "GROWING_SALES", "last 3 months' GMV at least 20 % above the first 3"
    if last * 100 <= first * 80 and first > 0:
        return -40, "DECLINING_SALES", "last 3 months' GMV at least 20 % below the first 3"
    return 0, "SALES_TREND", "GMV flat"


def _sales_stability(profile: MerchantProfile, as_of: date) -> tuple[int, str, str]:
    months = profile.reputation.monthly_gmv_fen
    if len(months) < 3:
        return 0, "SALES_STABILITY", "fewer than 3 months of GMV"
    n, total = len(months), sum(months)
    if total == 0:
        return -30, "VOLATILE_SALES", "no GMV in the window"
    # Mean absolute deviation relative to the mean, in bps: sum|n*x - total| / (n*total).
    deviation_bps = sum(abs(n * x - total) for x in months) * BPS_WHOLE // (n * total)
    text = f"monthly GMV deviates {_pct(deviation_bps)} from its mean on average"
    if deviation_bps <= 2000:
        return 30, "STABLE_SALES", text
    if deviation_bps >= 5000:
        return -30, "VOLATILE_SALES", text
    return 0, "SALES_STABILITY", text


def _orders(profile: MerchantProfile, as_of: date) -> tuple[int, str, str]:
    count = profile.reputation.order_count
    text = _plural(count, "order")
    if count < 50:
        return -30, "FEW_ORDERS", text
    if count < 500:
        return 0, "ORDERS", text
    if count < 5000:
        return 30, "MANY_ORDERS", text
    return 50, "MANY_ORDERS", text


def _buyers(profile: MerchantProfile, as_of: date) -> tuple[int, str, str]:
    r = profile.reputation
    if r.order_count == 0:
        return 0, "BUYERS", "no orders"
    text = _plural(r.distinct_buyer_count, "distinct buyer")
    if r.distinct_buyer_count < 5:
        return -50, "CONCENTRATED_BUYERS", text
    if r.distinct_buyer_count < 20:
        return -20, "CONCENTRATED_BUYERS", text
    if r.distinct_buyer_count < 100:
        return 10, "DIVERSE_BUYERS", text
    return 30, "DIVERSE_BUYERS", text


def _feedback(profile: MerchantProfile, as_of: date) -> tuple[int, str, str]:
    r = profile.reputation
    if r.order_count == 0:
        return 0, "POSITIVE_FEEDBACK", "no orders"
    bps = r.positive_feedback_bps
    text = f"positive feedback {_pct(bps)}"
    if bps >= 9800:
        return 50, "HIGH_POSITIVE_FEEDBACK", text
    if bps >= 9500:
        return 30, "HIGH_POSITIVE_FEEDBACK", text
    if bps >= 9000:
        return 0, "POSITIVE_FEEDBACK", text
    return -40, "LOW_POSITIVE_FEEDBACK", text


def _disputes(profile: MerchantProfile, as_of: date) -> tuple[int, str, str]:
    bps = profile.reputation.dispute_rate_bps
    text = f"dispute rate {_pct(bps)}"
    if bps <= 50:
        return 30, "LOW_DISPUTE_RATE", text
    if bps <= 200:
        return 0, "DISPUTE_RATE", text
    if bps <= 500:
        return -50, "HIGH_DISPUTE_RATE", text
    return -100, "HIGH_DISPUTE_RATE", text


def _refunds(profile: MerchantProfile, as_of: date) -> tuple[int, str, str]:
    bps = profile.reputation.refund_rate_bps
    text = f"refund rate {_pct(bps)}"
    if bps <= 200:
        return 20, "LOW_REFUND_RATE", text
    if bps <= 500:
        return 0, "REFUND_RATE", text
    if bps <= 1000:
        return -30, "HIGH_REFUND_RATE", text
    return -60, "HIGH_REFUND_RATE", text


def _shipping(profile: MerchantProfile, as_of: date) -> tuple[int, str, str]:
    bps = profile.reputation.on_time_shipment_bps
    text = f"on-time shipment {_pct(bps)}"
    if bps >= 9800:
        return 30, "RELIABLE_SHIPPING", text
    if bps >= 9500:
        return 10, "RELIABLE_SHIPPING", text
    if bps >= 9000:
        return 0, "SHIPPING", text
    return -40, "LATE_SHIPPING", text


def _loans_repaid(profile: MerchantProfile, as_of: date) -> tuple[int, str, str]:
    n = profile.reputation.prior_loans_repaid
    return 20 * min(n, 4), "PRIOR_LOANS_REPAID", f"{_plural(n, 'prior loan')} repaid"


def _loans_overdue(profile: MerchantProfile, as_of: date) -> tuple[int, str, str]:
    n = profile.reputation.prior_loans_overdue
    return -80 * min(n, 3), "PRIOR_LOANS_OVERDUE", f"{_plural(n, 'prior loan')} overdue"


_VERIFICATION_POINTS: Final = (
    ("business_license_verified", 20),
    ("legal_representative_verified", 20),
    ("bank_account_verified", 20),
    ("onsite_inspection_passed", 30),
    ("video_interview_completed", 20),
)


def _verification(profile: MerchantProfile, as_of: date) -> tuple[int, str, str]:
    passed = [
        (name, pts) for name, pts in _VERIFICATION_POINTS if getattr(profile.verification, name)
    ]
    if not passed:
        return -40, "UNVERIFIED_BUSINESS", "no third-party verification"
    text = f"{len(passed)} of {len(_VERIFICATION_POINTS)} verifications passed"
    return sum(pts for _, pts in passed), "VERIFIED_BUSINESS", text


# Table order is the tie-break order of reasons.
_Q, _T, _V = DataScope.QUALIFICATION, DataScope.TRANSACTION_REPUTATION, DataScope.VERIFICATION
_FACTORS: Final[tuple[tuple[DataScope, _Factor], ...]] = (
    (_Q, _trading_history),
    (_Q, _membership),
    (_T, _sales_volume),
    (_T, _sales_trend),
    (_T, _sales_stability),
    (_T, _orders),
    (_T, _buyers),
    (_T, _feedback),
    (_T, _disputes),
    (_T, _refunds),
    (_T, _shipping),
    (_T, _loans_repaid),
    (_T, _loans_overdue),
    (_V, _verification),
)


def score_factors(profile: MerchantProfile, *, as_of: date) -> tuple[Reason, ...]:
    """Every factor with non-zero points, in table order (an audit trail of the score)."""
    reasons = []
    for scope, factor in _FACTORS:
        points, code, description = factor(profile, as_of)
        if points:
            reasons.append(Reason(code=code, description=description, points=points, scope=scope))
    return tuple(reasons)


def assess(profile: MerchantProfile, *, as_of: date) -> Assessment:
    """Score a (validated) profile as of ``as_of``."""
    factors = score_factors(profile, as_of=as_of)
    raw = BASE_SCORE + sum(r.points for r in factors)
    score = max(MIN_SCORE, min(MAX_SCORE, raw))
    # sorted() is stable, so equal impacts keep table order.
    top = sorted(factors, key=lambda r: -abs(r.points))[:MAX_REASONS]
    return Assessment(
        score=score,
        grade=grade_for(score),
        reasons=tuple(top),
        scorecard_version=SCORECARD_VERSION,
    )


def split_fixed_part(total_limit_fen: int) -> tuple[int, int]:
    """Split a line into (revolving, fixed).

    fixed = max(20 % of total, RMB 50,000), rounded up to whole RMB 1,000, capped at the total.
    """
    if total_limit_fen <= 0:
        raise ValueError(f"total limit must be positive, got {total_limit_fen}")
    share = -(-total_limit_fen * FIXED_PART_MIN_BPS // BPS_WHOLE)  # ceiling division
    fixed = max(share, FIXED_PART_MIN_FEN)
    fixed = -(-fixed // LINE_ROUNDING_FEN) * LINE_ROUNDING_FEN
    fixed = min(fixed, total_limit_fen)
    return total_limit_fen - fixed, fixed


def credit_line_fen(profile: MerchantProfile, grade: Grade) -> int:
    """Average monthly GMV x the grade's multiple, rounded down to whole RMB 1,000 (uncapped)."""
    raw = average_monthly_gmv_fen(profile) * GRADE_LINE_MULTIPLES[grade]
    return raw // LINE_ROUNDING_FEN * LINE_ROUNDING_FEN


def make_offer(
    profile: MerchantProfile, assessment: Assessment, policy: EligibilityPolicy
) -> CreditOffer | None:
    """The offer for an assessed profile under ``policy``; None below the policy's minimum."""
    total = min(credit_line_fen(profile, assessment.grade), policy.max_credit_line_fen)
    if total <= 0 or total < policy.min_credit_line_fen:
        return None
    revolving, fixed = split_fixed_part(total)
    if revolving == 0:
        product = ProductType.FIXED_LOAN
    elif fixed == 0:
        product = ProductType.REVOLVING_LINE
    else:
        product = ProductType.COMBINED
    return CreditOffer(
        product=product,
        total_limit_fen=total,
        revolving_limit_fen=revolving,
        fixed_amount_fen=fixed,
        term_months=TERM_MONTHS,
        revolving_daily_rate_ppm=REVOLVING_DAILY_RATE_PPM,
        fixed_daily_rate_ppm=FIXED_DAILY_RATE_PPM,
    )


def _tier_order(tier: MembershipTier) -> int:
    return list(MembershipTier).index(tier)


def check_eligibility(
    profile: MerchantProfile,
    assessment: Assessment,
    policy: EligibilityPolicy,
    *,
    as_of: date,
) -> list[PreconditionViolation]:
    """Every policy rule the merchant fails (type ``ELIGIBILITY``, subject the policy field)."""
    out: list[PreconditionViolation] = []

    def fail(subject: str, description: str) -> None:
        out.append(PreconditionViolation(ELIGIBILITY, f"policy.{subject}", description))

    q = profile.qualification
    region = q.region_code
    allowed = policy.allowed_region_codes
    if allowed and not any(region_matches(region, pattern) for pattern in allowed):
        fail("allowed_region_codes", f"region {region} is not allowed ({', '.join(allowed)})")
    excluded = [
        pattern for pattern in policy.excluded_region_codes if region_matches(region, pattern)
    ]
    if excluded:
        fail("excluded_region_codes", f"region {region} is excluded ({', '.join(excluded)})")

    required_years = policy.min_years_registered
    registered = q.business_registration_date
    if registered is None or registered > as_of:
        if required_years > 0:
            fail(
                "min_years_registered",
                f"registration date unknown, policy requires {required_years}",
            )
    else:
        years = full_years_between(registered, as_of)
        if years < required_years:
            fail(
                "min_years_registered",
                f"registered {_plural(years, 'full year')}, policy requires {required_years}",
            )

    tiers = policy.allowed_tiers
    if tiers and q.membership_tier not in tiers:
        names = ", ".join(t.name for t in sorted(tiers, key=_tier_order))
        tier_name = q.membership_tier.name if q.membership_tier is not None else "unknown"
        fail("allowed_tiers", f"tier {tier_name} not allowed ({names})")

    if assessment.score < policy.min_score:
        fail("min_score", f"score {assessment.score} below minimum {policy.min_score}")

    line = min(credit_line_fen(profile, assessment.grade), policy.max_credit_line_fen)
    if line <= 0 or line < policy.min_credit_line_fen:
        fail(
            "min_credit_line_fen",
            f"offer below minimum credit line {format_fen(policy.min_credit_line_fen)} "
            f"(grade {assessment.grade.name} gives {format_fen(line)})",
        )
    return out


def disclosed(assessment: Assessment, scopes: frozenset[DataScope]) -> Assessment:
    """The assessment as a bank may see it: the score and grade (platform-derived figures),
    with only the reasons whose data the merchant agreed to share."""
    return replace(assessment, reasons=tuple(r for r in assessment.reasons if r.scope in scopes))
