"""Realistic sample merchants, deterministic for a seed (the demo, load tests, rehearsals).

Codes are valid unified social credit codes whose characters 3-8 are the merchant's region, so a
generated merchant passes the same checks a real one does. Most merchants sit in the regions the
historical B2B product served (Shanghai, Jiangsu, Zhejiang); a tunable share is deliberately
ineligible (another province, Wenzhou, a free member, too young) or risky (disputes, overdue
history), so a run shows refusals and declines as well as approvals.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from colending.v1 import common_pb2, merchant_pb2

from colending_core import uscc_check_character

# (region code, city) pairs: GB/T 2260 county-level codes.
ELIGIBLE_REGIONS = (
    ("310104", "上海"),
    ("310115", "上海"),
    ("320102", "南京"),
    ("320506", "苏州"),
    ("330106", "杭州"),
    ("330203", "宁波"),
    ("330782", "义乌"),
)
INELIGIBLE_REGIONS = (("330302", "温州"), ("440305", "深圳"), ("110105", "北京"))
TRADES = ("贸易", "服饰", "五金", "电子", "家居", "包装", "纺织", "机械")
SUFFIX = "有限公司"


@dataclass(frozen=True, slots=True, kw_only=True)
class SampleMix:
    """Shares in per cent of generated merchants."""

    ineligible_pct: int = 20
    risky_pct: int = 15


def sample_merchants(
    count: int, *, seed: int, as_of: date, mix: SampleMix | None = None
) -> list[merchant_pb2.MerchantProfile]:
    """``count`` merchants ``m-<seed>-<n>``; the same seed always gives the same merchants."""
    mix = mix or SampleMix()
    rng = random.Random(seed)  # noqa: S311  (sample data, not secrets)
    return [_merchant(rng, seed, n, as_of, mix) for n in range(count)]


def _merchant(
    rng: random.Random, seed: int, n: int, as_of: date, mix: SampleMix
) -> merchant_pb2.MerchantProfile:
    roll = rng.randrange(100)
    ineligible = roll < mix.ineligible_pct
    risky = not ineligible and roll < mix.ineligible_pct + mix.risky_pct
    region, city = rng.choice(ELIGIBLE_REGIONS)
    tier = rng.choices(
        [merchant_pb2.MEMBERSHIP_TIER_GOLD_SUPPLIER, merchant_pb2.MEMBERSHIP_TIER_TRUSTPASS],
        weights=[55, 45],
    )[0]
    years = rng.randint(3, 14)
    if ineligible:  # one reason each, so a refusal names it
        reason = rng.randrange(3)
        if reason == 0:
            region, city = rng.choice(INELIGIBLE_REGIONS)
        elif reason == 1:
            tier = merchant_pb2.MEMBERSHIP_TIER_FREE
        else:
            years = 1
    registered = as_of - timedelta(days=365 * years + rng.randrange(300))
    body = "91" + region + f"{rng.randrange(10**9):09d}"
    monthly_yuan = rng.randint(60, 900) * 1_000
    gmv = [
        max(0, monthly_yuan + rng.randint(-monthly_yuan // 5, monthly_yuan // 5)) * 100
        for _ in range(12)
    ]
    orders = monthly_yuan // rng.randint(60, 180) * 12
    return merchant_pb2.MerchantProfile(
        identity=merchant_pb2.MerchantIdentity(
            platform_merchant_id=f"m-{seed}-{n:05d}",
            legal_name=f"{city}{rng.choice(TRADES)}{SUFFIX}",
            unified_social_credit_code=body + uscc_check_character(body),
        ),
        qualification=merchant_pb2.Qualification(
            membership_tier=tier,
            paid_member_since=_date(registered + timedelta(days=rng.randrange(200)))
            if tier != merchant_pb2.MEMBERSHIP_TIER_FREE
            else None,
            business_registration_date=_date(registered),
            region_code=region,
        ),
        reputation=merchant_pb2.TransactionReputation(
            monthly_gmv_fen=gmv,
            order_count=orders,
            distinct_buyer_count=orders * rng.randint(25, 60) // 100,
            positive_feedback_bps=rng.randint(9_000, 9_950)
            if not risky
            else rng.randint(8_200, 9_000),
            dispute_rate_bps=rng.randint(10, 90) if not risky else rng.randint(250, 600),
            refund_rate_bps=rng.randint(50, 300),
            on_time_shipment_bps=rng.randint(9_300, 9_950),
            prior_loans_repaid=rng.randint(0, 4),
            prior_loans_overdue=0 if not risky else rng.randint(1, 3),
        ),
        verification=merchant_pb2.Verification(
            business_license_verified=True,
            legal_representative_verified=rng.randrange(10) > 0,
            bank_account_verified=True,
            onsite_inspection_passed=rng.randrange(3) == 0,
            video_interview_completed=rng.randrange(2) == 0,
        ),
    )


def _date(value: date) -> common_pb2.Date:
    return common_pb2.Date(year=value.year, month=value.month, day=value.day)
