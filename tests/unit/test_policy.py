from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gateway.domain.merchant import MembershipTier
from gateway.domain.money import yuan
from gateway.domain.policy import (
    DEFAULT_POLICY,
    BlacklistAction,
    EligibilityPolicy,
    validate_policy,
)


def _fields(policy: EligibilityPolicy, prefix: str = "policy") -> list[str]:
    return [v.field for v in validate_policy(policy, field_prefix=prefix)]


def test_default_policy_is_the_historical_programme() -> None:
    p = DEFAULT_POLICY
    assert p.allowed_region_codes == ("310000", "320000", "330000")
    assert p.excluded_region_codes == ("330300",)
    assert p.min_years_registered == 2
    assert p.allowed_tiers == {MembershipTier.TRUSTPASS, MembershipTier.GOLD_SUPPLIER}
    assert p.min_credit_line_fen == yuan(50_000)
    assert p.max_credit_line_fen == yuan(1_000_000)
    assert p.platform_share_floor_bps == 3000
    assert p.platform_share_ceiling_bps == 9000
    assert p.exposure_cap_fen == 0
    assert p.blacklist_action is BlacklistAction.REFUSE
    assert p.referral_ttl_days == 30
    assert p.allow_amount_above_offer is False
    assert p.ordered_delivery is False


def test_default_policy_is_valid() -> None:
    assert validate_policy(DEFAULT_POLICY) == []


def test_policy_is_frozen_and_keyword_only() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_POLICY.min_score = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        EligibilityPolicy(("310000",))  # type: ignore[call-arg]


def test_empty_restrictions_are_valid() -> None:
    p = EligibilityPolicy(
        allowed_region_codes=(), excluded_region_codes=(), allowed_tiers=frozenset()
    )
    assert validate_policy(p) == []


def test_bad_region_codes_name_their_index() -> None:
    p = EligibilityPolicy(
        allowed_region_codes=("310000", "31000", "000000", "310000"),
        excluded_region_codes=("33030a",),
    )
    violations = validate_policy(p)
    assert [v.field for v in violations] == [
        "policy.allowed_region_codes[1]",
        "policy.allowed_region_codes[2]",
        "policy.allowed_region_codes[3]",
        "policy.excluded_region_codes[0]",
    ]
    assert "duplicate" in violations[2].description


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"min_years_registered": -1}, "policy.min_years_registered"),
        ({"min_years_registered": 101}, "policy.min_years_registered"),
        ({"min_score": 1001}, "policy.min_score"),
        ({"min_score": -1}, "policy.min_score"),
        ({"min_credit_line_fen": 0}, "policy.min_credit_line.amount_minor"),
        ({"max_credit_line_fen": -5}, "policy.max_credit_line.amount_minor"),
        ({"platform_share_floor_bps": -1}, "policy.platform_share_floor_bps"),
        ({"platform_share_ceiling_bps": 10_001}, "policy.platform_share_ceiling_bps"),
        ({"exposure_cap_fen": -1}, "policy.exposure_cap.amount_minor"),
        ({"referral_ttl_days": 0}, "policy.referral_ttl_days"),
        ({"referral_ttl_days": 366}, "policy.referral_ttl_days"),
    ],
)
def test_each_range_rule_names_its_field(changes: dict[str, Any], field: str) -> None:
    violations = validate_policy(dataclasses.replace(DEFAULT_POLICY, **changes))
    assert [v.field for v in violations] == [field]
    assert "must be between" in violations[0].description


def test_min_line_above_max_line() -> None:
    p = EligibilityPolicy(min_credit_line_fen=yuan(200), max_credit_line_fen=yuan(100))
    [v] = validate_policy(p)
    assert v.field == "policy.min_credit_line.amount_minor"
    assert "must not exceed max_credit_line" in v.description


def test_floor_above_ceiling() -> None:
    p = EligibilityPolicy(platform_share_floor_bps=6000, platform_share_ceiling_bps=5000)
    [v] = validate_policy(p)
    assert v.field == "policy.platform_share_floor_bps"
    assert "must not exceed platform_share_ceiling_bps (5000)" in v.description


def test_floor_equal_to_ceiling_is_valid() -> None:
    assert (
        validate_policy(
            EligibilityPolicy(platform_share_floor_bps=5000, platform_share_ceiling_bps=5000)
        )
        == []
    )


def test_every_violation_at_once_with_prefix() -> None:
    p = EligibilityPolicy(
        allowed_region_codes=("x",),
        min_years_registered=-1,
        min_score=2000,
        referral_ttl_days=0,
        exposure_cap_fen=-1,
    )
    assert _fields(p, "partner.policy") == [
        "partner.policy.allowed_region_codes[0]",
        "partner.policy.min_years_registered",
        "partner.policy.min_score",
        "partner.policy.exposure_cap.amount_minor",
        "partner.policy.referral_ttl_days",
    ]
