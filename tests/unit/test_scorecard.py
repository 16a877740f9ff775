from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import pytest

from gateway.domain.merchant import (
    MembershipTier,
    MerchantIdentity,
    MerchantProfile,
    Qualification,
    TransactionReputation,
    Verification,
)
from gateway.domain.money import yuan
from gateway.domain.policy import DEFAULT_POLICY, EligibilityPolicy
from gateway.domain.scoring import (
    BASE_SCORE,
    FIXED_DAILY_RATE_PPM,
    REVOLVING_DAILY_RATE_PPM,
    SCORECARD_VERSION,
    TERM_MONTHS,
    Assessment,
    Grade,
    ProductType,
    assess,
    check_eligibility,
    full_years_between,
    grade_for,
    make_offer,
    score_factors,
    split_fixed_part,
)
from gateway.domain.validation import validate_profile

AS_OF = date(2026, 11, 28)


def _good() -> MerchantProfile:
    return MerchantProfile(
        identity=MerchantIdentity(
            platform_merchant_id="m-1",
            legal_name="杭州示例贸易有限公司",
            unified_social_credit_code="91330106673959654P",
        ),
        qualification=Qualification(
            membership_tier=MembershipTier.TRUSTPASS,
            paid_member_since=date(2020, 3, 1),
            business_registration_date=date(2018, 5, 1),
            region_code="330106",
        ),
        reputation=TransactionReputation(
            monthly_gmv_fen=tuple(yuan(x) for x in (300_000, 310_000, 290_000, 305_000, 295_000)),
            order_count=2000,
            distinct_buyer_count=300,
            positive_feedback_bps=9700,
            dispute_rate_bps=100,
            refund_rate_bps=300,
            on_time_shipment_bps=9600,
            prior_loans_repaid=2,
        ),
        verification=Verification(business_license_verified=True, bank_account_verified=True),
    )


def _with(profile: MerchantProfile, section: str, **changes: Any) -> MerchantProfile:
    part = dataclasses.replace(getattr(profile, section), **changes)
    return dataclasses.replace(profile, **{section: part})


def _best() -> MerchantProfile:
    p = _with(
        _good(),
        "qualification",
        membership_tier=MembershipTier.GOLD_SUPPLIER,
        paid_member_since=date(2010, 1, 1),
        business_registration_date=date(2005, 1, 1),
    )
    p = _with(
        p,
        "reputation",
        monthly_gmv_fen=(yuan(1_000_000),) * 3 + (yuan(1_300_000),) * 3,
        order_count=50_000,
        distinct_buyer_count=5_000,
        positive_feedback_bps=9990,
        dispute_rate_bps=10,
        refund_rate_bps=100,
        on_time_shipment_bps=9990,
        prior_loans_repaid=10,
    )
    return dataclasses.replace(
        p,
        verification=Verification(
            business_license_verified=True,
            legal_representative_verified=True,
            bank_account_verified=True,
            onsite_inspection_passed=True,
            video_interview_completed=True,
        ),
    )


def _worst() -> MerchantProfile:
    p = _with(
        _good(),
        "qualification",
        membership_tier=MembershipTier.FREE,
        paid_member_since=None,
        business_registration_date=date(2026, 6, 1),
    )
    p = _with(
        p,
        "reputation",
        monthly_gmv_fen=(yuan(9_000), 0, yuan(9_000), 0, 0, yuan(100)),
        order_count=10,
        distinct_buyer_count=2,
        positive_feedback_bps=5000,
        dispute_rate_bps=2000,
        refund_rate_bps=3000,
        on_time_shipment_bps=5000,
        prior_loans_repaid=0,
        prior_loans_overdue=5,
    )
    return dataclasses.replace(p, verification=Verification())


def _assessment(score: int) -> Assessment:
    return Assessment(
        score=score, grade=grade_for(score), reasons=(), scorecard_version=SCORECARD_VERSION
    )


# --- full years -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "years"),
    [
        (date(2020, 5, 1), date(2020, 5, 1), 0),
        (date(2020, 5, 1), date(2021, 4, 30), 0),
        (date(2020, 5, 1), date(2021, 5, 1), 1),
        (date(2020, 12, 31), date(2021, 1, 1), 0),
        (date(2020, 2, 29), date(2021, 2, 28), 0),  # Feb-29 anniversary falls on Mar 1
        (date(2020, 2, 29), date(2021, 3, 1), 1),
        (date(2020, 2, 29), date(2024, 2, 28), 3),
        (date(2020, 2, 29), date(2024, 2, 29), 4),
        (date(2019, 2, 28), date(2020, 2, 28), 1),
    ],
)
def test_full_years_between(start: date, end: date, years: int) -> None:
    assert full_years_between(start, end) == years


def test_full_years_between_rejects_reversed_dates() -> None:
    with pytest.raises(ValueError, match="before start"):
        full_years_between(date(2021, 1, 1), date(2020, 1, 1))


# --- score ----------------------------------------------------------------------------------


def test_sample_profiles_are_valid_input() -> None:
    for profile in (_good(), _best(), _worst()):
        assert validate_profile(profile, as_of=AS_OF) == []


def test_score_is_deterministic_and_versioned() -> None:
    first = assess(_good(), as_of=AS_OF)
    assert first == assess(_good(), as_of=AS_OF)
    assert first.scorecard_version == SCORECARD_VERSION == "b2b-scorecard-2026.1"
    # Score = base + every factor, within range.
    raw = BASE_SCORE + sum(r.points for r in score_factors(_good(), as_of=AS_OF))
    assert first.score == raw
    assert first.grade is grade_for(raw)


def test_score_is_clamped_at_both_ends() -> None:
    best = _best()
    assert BASE_SCORE + sum(r.points for r in score_factors(best, as_of=AS_OF)) > 1000
    assert assess(best, as_of=AS_OF).score == 1000
    assert assess(best, as_of=AS_OF).grade is Grade.A
    worst = _worst()
    assert BASE_SCORE + sum(r.points for r in score_factors(worst, as_of=AS_OF)) < 0
    assert assess(worst, as_of=AS_OF).score == 0
    assert assess(worst, as_of=AS_OF).grade is Grade.E


@pytest.mark.parametrize(
    ("score", "grade"),
    [
        (1000, Grade.A),
        (800, Grade.A),
        (799, Grade.B),
        (700, Grade.B),
        (699, Grade.C),
        (600, Grade.C),
        (599, Grade.D),
        (500, Grade.D),
        (499, Grade.E),
        (0, Grade.E),
    ],
)
def test_grade_cutoffs(score: int, grade: Grade) -> None:
    assert grade_for(score) is grade


def test_reasons_sorted_by_absolute_impact_at_most_six() -> None:
    profile = _with(_good(), "reputation", dispute_rate_bps=800, prior_loans_overdue=1)
    reasons = assess(profile, as_of=AS_OF).reasons
    assert len(reasons) == 6
    impacts = [abs(r.points) for r in reasons]
    assert impacts == sorted(impacts, reverse=True)
    codes = [r.code for r in reasons]
    assert codes[0] == "HIGH_DISPUTE_RATE"
    assert reasons[0].points == -100
    assert "PRIOR_LOANS_OVERDUE" in codes
    assert "LONG_TRADING_HISTORY" in codes
    # Equal impacts keep the documented factor order (history before membership).
    assert codes.index("LONG_TRADING_HISTORY") < codes.index("PAID_MEMBERSHIP")
    # No reason the assessment lists has zero points.
    assert all(r.points != 0 for r in reasons)


def test_reasons_carry_positive_and_negative_codes() -> None:
    good = {r.code for r in score_factors(_good(), as_of=AS_OF)}
    bad = {r.code for r in score_factors(_worst(), as_of=AS_OF)}
    assert {"LONG_TRADING_HISTORY", "HIGH_SALES_VOLUME", "DIVERSE_BUYERS"} <= good
    assert {
        "SHORT_TRADING_HISTORY",
        "LOW_SALES_VOLUME",
        "VOLATILE_SALES",
        "FEW_ORDERS",
        "CONCENTRATED_BUYERS",
        "LOW_POSITIVE_FEEDBACK",
        "HIGH_DISPUTE_RATE",
        "HIGH_REFUND_RATE",
        "LATE_SHIPPING",
        "PRIOR_LOANS_OVERDUE",
        "UNVERIFIED_BUSINESS",
    } <= bad


def test_each_factor_moves_the_score_the_right_way() -> None:
    base = assess(_good(), as_of=AS_OF).score
    worse = [
        _with(_good(), "reputation", dispute_rate_bps=600),
        _with(_good(), "reputation", refund_rate_bps=1500),
        _with(_good(), "reputation", on_time_shipment_bps=8000),
        _with(_good(), "reputation", positive_feedback_bps=8000),
        _with(_good(), "reputation", prior_loans_overdue=1),
        _with(_good(), "reputation", distinct_buyer_count=3),
        _with(
            _good(),
            "qualification",
            business_registration_date=date(2025, 1, 1),
            paid_member_since=date(2025, 1, 1),
        ),
        dataclasses.replace(_good(), verification=Verification()),
    ]
    for profile in worse:
        assert assess(profile, as_of=AS_OF).score < base


def test_trend_growing_and_declining() -> None:
    def codes(gmv: tuple[int, ...]) -> set[str]:
        profile = _with(_good(), "reputation", monthly_gmv_fen=gmv)
        return {r.code for r in score_factors(profile, as_of=AS_OF)}

    assert "GROWING_SALES" in codes((100, 100, 100, 120, 120, 120))
    assert "GROWING_SALES" not in codes((100, 100, 100, 119, 120, 120))
    assert "DECLINING_SALES" in codes((100, 100, 100, 80, 80, 80))
    assert "DECLINING_SALES" not in codes((100, 100, 100, 81, 80, 80))
    # Five months are too few for a trend.
    assert not {"GROWING_SALES", "DECLINING_SALES"} & codes((100, 100, 300, 300, 300))


def test_trading_history_boundary_is_anniversary() -> None:
    two_years = _with(
        _good(),
        "qualification",
        business_registration_date=date(2024, 11, 28),
        paid_member_since=date(2024, 11, 28),
    )
    one_day_short = _with(
        two_years,
        "qualification",
        business_registration_date=date(2024, 11, 29),
        paid_member_since=date(2024, 11, 29),
    )
    a = {r.code: r for r in score_factors(two_years, as_of=AS_OF)}
    b = {r.code: r for r in score_factors(one_day_short, as_of=AS_OF)}
    assert a["ESTABLISHED_TRADING_HISTORY"].points == 30
    assert b["SHORT_TRADING_HISTORY"].points == -20


# --- offer ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total_yuan", "revolving_yuan", "fixed_yuan"),
    [
        (250_000, 200_000, 50_000),
        (300_000, 240_000, 60_000),
        (100_000, 50_000, 50_000),
        (50_000, 0, 50_000),
        (1_000_000, 800_000, 200_000),
        (257_500, 205_500, 52_000),  # 20 % is 51,500: rounded up to whole RMB 1,000
        (30_000, 0, 30_000),  # below RMB 50,000: capped at the total
    ],
)
def test_split_fixed_part(total_yuan: int, revolving_yuan: int, fixed_yuan: int) -> None:
    assert split_fixed_part(yuan(total_yuan)) == (yuan(revolving_yuan), yuan(fixed_yuan))


def test_split_fixed_part_rejects_non_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        split_fixed_part(0)


def test_offer_is_grade_multiple_of_average_gmv_rounded_down_and_capped() -> None:
    profile = _with(
        _good(), "reputation", monthly_gmv_fen=(yuan(60_500),) * 3 + (yuan(60_999),) * 3
    )
    # Average RMB 60,749.50, grade C (x3) = RMB 182,248.50 -> RMB 182,000.
    offer = make_offer(profile, _assessment(650), DEFAULT_POLICY)
    assert offer is not None
    assert offer.total_limit_fen == yuan(182_000)
    assert offer.product is ProductType.COMBINED
    assert (offer.revolving_limit_fen, offer.fixed_amount_fen) == (yuan(132_000), yuan(50_000))
    assert offer.term_months == TERM_MONTHS == 12
    assert offer.revolving_daily_rate_ppm == REVOLVING_DAILY_RATE_PPM == 600
    assert offer.fixed_daily_rate_ppm == FIXED_DAILY_RATE_PPM == 500
    # Grade A (x6) would be RMB 364,497 -> 364,000; grade B (x4) 242,998 -> 242,000.
    a = make_offer(profile, _assessment(900), DEFAULT_POLICY)
    b = make_offer(profile, _assessment(750), DEFAULT_POLICY)
    assert a is not None
    assert a.total_limit_fen == yuan(364_000)
    assert b is not None
    assert b.total_limit_fen == yuan(242_000)
    # Capped at the policy maximum.
    capped = make_offer(_best(), assess(_best(), as_of=AS_OF), DEFAULT_POLICY)
    assert capped is not None
    assert capped.total_limit_fen == yuan(1_000_000)


def test_minimum_line_offer_is_all_fixed() -> None:
    profile = _with(_good(), "reputation", monthly_gmv_fen=(yuan(25_000),))
    offer = make_offer(profile, _assessment(550), DEFAULT_POLICY)  # D: x2 = RMB 50,000
    assert offer is not None
    assert offer.total_limit_fen == yuan(50_000)
    assert offer.product is ProductType.FIXED_LOAN
    assert (offer.revolving_limit_fen, offer.fixed_amount_fen) == (0, yuan(50_000))


def test_no_offer_below_minimum_or_for_grade_e() -> None:
    profile = _with(_good(), "reputation", monthly_gmv_fen=(yuan(24_999),))
    assert make_offer(profile, _assessment(550), DEFAULT_POLICY) is None  # RMB 49,000
    assert make_offer(_good(), _assessment(499), DEFAULT_POLICY) is None  # grade E lends nothing


# --- eligibility ----------------------------------------------------------------------------


def _in_region(code: str) -> MerchantProfile:
    return _with(_good(), "qualification", region_code=code)


@pytest.mark.parametrize("region", ["330106", "310115", "320102", "330200"])
def test_eligible_regions(region: str) -> None:
    profile = _in_region(region)
    assert (
        check_eligibility(profile, assess(profile, as_of=AS_OF), DEFAULT_POLICY, as_of=AS_OF) == []
    )


def test_wenzhou_is_excluded() -> None:
    profile = _in_region("330302")
    [v] = check_eligibility(profile, assess(profile, as_of=AS_OF), DEFAULT_POLICY, as_of=AS_OF)
    assert (v.type, v.subject) == ("ELIGIBILITY", "policy.excluded_region_codes")
    assert v.description == "region 330302 is excluded (330300)"


def test_shenzhen_is_not_allowed() -> None:
    profile = _in_region("440300")
    [v] = check_eligibility(profile, assess(profile, as_of=AS_OF), DEFAULT_POLICY, as_of=AS_OF)
    assert v.subject == "policy.allowed_region_codes"
    assert v.description == "region 440300 is not allowed (310000, 320000, 330000)"


def test_empty_region_list_allows_everywhere() -> None:
    profile = _in_region("440300")
    policy = EligibilityPolicy(allowed_region_codes=())
    assert check_eligibility(profile, assess(profile, as_of=AS_OF), policy, as_of=AS_OF) == []


def test_exactly_two_full_years_is_eligible_one_day_short_is_not() -> None:
    exact = _with(_good(), "qualification", business_registration_date=date(2024, 11, 28))
    short = _with(_good(), "qualification", business_registration_date=date(2024, 11, 29))
    policy = EligibilityPolicy(min_score=0)
    assert check_eligibility(exact, assess(exact, as_of=AS_OF), policy, as_of=AS_OF) == []
    [v] = check_eligibility(short, assess(short, as_of=AS_OF), policy, as_of=AS_OF)
    assert v.subject == "policy.min_years_registered"
    assert v.description == "registered 1 full year, policy requires 2"


def test_free_tier_refused_by_default_but_allowed_when_opened() -> None:
    profile = _with(
        _good(), "qualification", membership_tier=MembershipTier.FREE, paid_member_since=None
    )
    [v] = check_eligibility(profile, assess(profile, as_of=AS_OF), DEFAULT_POLICY, as_of=AS_OF)
    assert v.subject == "policy.allowed_tiers"
    assert v.description == "tier FREE not allowed (TRUSTPASS, GOLD_SUPPLIER)"
    opened = EligibilityPolicy(allowed_tiers=frozenset())
    assert check_eligibility(profile, assess(profile, as_of=AS_OF), opened, as_of=AS_OF) == []


def test_min_score() -> None:
    policy = EligibilityPolicy(min_score=600)
    profile = _with(_good(), "reputation", monthly_gmv_fen=(yuan(1_000_000),))
    [v] = check_eligibility(profile, _assessment(550), policy, as_of=AS_OF)
    assert v.subject == "policy.min_score"
    assert v.description == "score 550 below minimum 600"
    assert check_eligibility(profile, _assessment(600), policy, as_of=AS_OF) == []
    # A grade E score also leaves no offer: both rules are reported.
    low = check_eligibility(
        profile, _assessment(420), EligibilityPolicy(min_score=500), as_of=AS_OF
    )
    assert next((v.subject, v.description) for v in low) == (
        "policy.min_score",
        "score 420 below minimum 500",
    )
    assert [v.subject for v in low][1:] == ["policy.min_credit_line_fen"]


def test_every_unmet_rule_is_listed_at_once() -> None:
    profile = _with(
        _good(),
        "qualification",
        membership_tier=MembershipTier.FREE,
        paid_member_since=None,
        business_registration_date=date(2025, 12, 1),
        region_code="330302",
    )
    profile = _with(profile, "reputation", monthly_gmv_fen=(yuan(10_000),))
    policy = EligibilityPolicy(min_score=990)
    violations = check_eligibility(profile, assess(profile, as_of=AS_OF), policy, as_of=AS_OF)
    assert all(v.type == "ELIGIBILITY" for v in violations)
    assert [v.subject for v in violations] == [
        "policy.excluded_region_codes",
        "policy.min_years_registered",
        "policy.allowed_tiers",
        "policy.min_score",
        "policy.min_credit_line_fen",
    ]
    assert violations[1].description == "registered 0 full years, policy requires 2"
    assert violations[4].description.startswith("offer below minimum credit line RMB 50,000.00")
