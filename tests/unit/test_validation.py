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
from gateway.domain.validation import validate_profile

AS_OF = date(2026, 11, 28)


def _valid() -> MerchantProfile:
    return MerchantProfile(
        identity=MerchantIdentity(
            platform_merchant_id="b2b.merchant-0001_x",
            legal_name="杭州示例贸易有限公司",
            unified_social_credit_code="91330106673959654P",
        ),
        qualification=Qualification(
            membership_tier=MembershipTier.GOLD_SUPPLIER,
            paid_member_since=date(2019, 4, 1),
            business_registration_date=date(2015, 6, 30),
            region_code="330106",
        ),
        reputation=TransactionReputation(
            monthly_gmv_fen=(yuan(120_000),) * 12,
            order_count=1000,
            distinct_buyer_count=200,
            positive_feedback_bps=9800,
            dispute_rate_bps=30,
            refund_rate_bps=150,
            on_time_shipment_bps=9900,
            prior_loans_repaid=1,
            prior_loans_overdue=0,
        ),
        verification=Verification(business_license_verified=True),
    )


def _with(section: str, **changes: Any) -> MerchantProfile:
    profile = _valid()
    part = dataclasses.replace(getattr(profile, section), **changes)
    return dataclasses.replace(profile, **{section: part})


def _only(profile: MerchantProfile) -> tuple[str, str]:
    violations = validate_profile(profile, as_of=AS_OF)
    assert len(violations) == 1, violations
    return violations[0].field, violations[0].description


def test_valid_profile_has_no_violations() -> None:
    assert validate_profile(_valid(), as_of=AS_OF) == []


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("", "required"),
        ("m" * 65, "at most 64 characters"),
        ("merchant 1", "A-Z a-z 0-9 . _ -"),
        ("商户1", "A-Z a-z 0-9 . _ -"),
    ],
)
def test_merchant_id_rules(value: str, rule: str) -> None:
    field, description = _only(_with("identity", platform_merchant_id=value))
    assert field == "merchant.identity.platform_merchant_id"
    assert rule in description


def test_merchant_id_of_64_characters_is_valid() -> None:
    assert validate_profile(_with("identity", platform_merchant_id="m" * 64), as_of=AS_OF) == []


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("", "required"),
        ("   ", "required"),
        ("名" * 201, "at most 200 characters"),
        ("Acme\nTrading", "control characters"),
        ("Acme\x00", "control characters"),
    ],
)
def test_legal_name_rules(value: str, rule: str) -> None:
    field, description = _only(_with("identity", legal_name=value))
    assert field == "merchant.identity.legal_name"
    assert rule in description


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("", "required"),
        ("91330106673959654Q", "check character is 'Q', expected 'P'"),
        ("9133010667395965", "must be 18 characters"),
        ("9133I106673959654P", "character 5 'I' is not allowed"),
    ],
)
def test_uscc_rules(value: str, rule: str) -> None:
    field, description = _only(_with("identity", unified_social_credit_code=value))
    assert field == "merchant.identity.unified_social_credit_code"
    assert rule in description


def test_tier_required() -> None:
    # A missing tier also cannot require paid_member_since, so only one violation.
    assert _only(_with("qualification", membership_tier=None)) == (
        "merchant.qualification.membership_tier",
        "required",
    )


@pytest.mark.parametrize("tier", [MembershipTier.TRUSTPASS, MembershipTier.GOLD_SUPPLIER])
def test_paid_member_since_required_for_paid_tiers(tier: MembershipTier) -> None:
    field, description = _only(_with("qualification", membership_tier=tier, paid_member_since=None))
    assert field == "merchant.qualification.paid_member_since"
    assert description == f"required for tier {tier.name}"


def test_paid_member_since_forbidden_for_free() -> None:
    field, description = _only(_with("qualification", membership_tier=MembershipTier.FREE))
    assert field == "merchant.qualification.paid_member_since"
    assert "must be empty for tier FREE" in description
    free = _with("qualification", membership_tier=MembershipTier.FREE, paid_member_since=None)
    assert validate_profile(free, as_of=AS_OF) == []


def test_paid_member_since_not_in_future() -> None:
    field, description = _only(_with("qualification", paid_member_since=date(2026, 11, 29)))
    assert field == "merchant.qualification.paid_member_since"
    assert description == "must not be after as-of date 2026-11-28"
    # The as-of date itself is fine.
    ok = _with("qualification", paid_member_since=AS_OF)
    assert validate_profile(ok, as_of=AS_OF) == []


def test_paid_member_since_not_before_registration() -> None:
    field, description = _only(_with("qualification", paid_member_since=date(2015, 6, 29)))
    assert field == "merchant.qualification.paid_member_since"
    assert description == "must not be before business registration date 2015-06-30"


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        (None, "required"),
        (date(2026, 11, 29), "must not be after as-of date 2026-11-28"),
        (date(1949, 9, 30), "must not be before 1949-10-01"),
    ],
)
def test_registration_date_rules(value: date | None, rule: str) -> None:
    profile = _with("qualification", business_registration_date=value, paid_member_since=None)
    profile = dataclasses.replace(
        profile,
        qualification=dataclasses.replace(
            profile.qualification, membership_tier=MembershipTier.FREE
        ),
    )
    field, description = _only(profile)
    assert field == "merchant.qualification.business_registration_date"
    assert description == rule


def test_registration_on_founding_day_is_valid() -> None:
    profile = _with(
        "qualification",
        business_registration_date=date(1949, 10, 1),
        paid_member_since=date(2000, 1, 1),
    )
    assert validate_profile(profile, as_of=AS_OF) == []


@pytest.mark.parametrize(
    ("value", "rule"), [("", "required"), ("000000", "six digits"), ("3301", "six digits")]
)
def test_region_code_rules(value: str, rule: str) -> None:
    field, description = _only(_with("qualification", region_code=value))
    assert field == "merchant.qualification.region_code"
    assert rule in description


@pytest.mark.parametrize("months", [0, 37])
def test_gmv_window_length(months: int) -> None:
    field, description = _only(_with("reputation", monthly_gmv_fen=(yuan(1),) * months))
    assert field == "merchant.reputation.monthly_gmv_fen"
    assert f"between 1 and 36 months, got {months}" in description


def test_gmv_window_of_36_months_is_valid() -> None:
    assert validate_profile(_with("reputation", monthly_gmv_fen=(0,) * 36), as_of=AS_OF) == []


def test_gmv_entries_named_by_index() -> None:
    gmv = (1, 2, 3, -1, 4, 10**14 + 1, 10**14)
    violations = validate_profile(_with("reputation", monthly_gmv_fen=gmv), as_of=AS_OF)
    assert [v.field for v in violations] == [
        "merchant.reputation.monthly_gmv_fen[3]",
        "merchant.reputation.monthly_gmv_fen[5]",
    ]
    assert "must be between 0 and 100000000000000 fen, got -1" in violations[0].description


@pytest.mark.parametrize(
    "name",
    ["positive_feedback_bps", "dispute_rate_bps", "refund_rate_bps", "on_time_shipment_bps"],
)
@pytest.mark.parametrize("value", [-1, 10_001])
def test_bps_fields(name: str, value: int) -> None:
    field, description = _only(_with("reputation", **{name: value}))
    assert field == f"merchant.reputation.{name}"
    assert description == f"must be between 0 and 10000 basis points, got {value}"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("order_count", -1),
        ("order_count", 10**9 + 1),
        ("distinct_buyer_count", -1),
        ("prior_loans_repaid", -1),
        ("prior_loans_repaid", 10_001),
        ("prior_loans_overdue", -1),
        ("prior_loans_overdue", 10_001),
    ],
)
def test_count_bounds(name: str, value: int) -> None:
    profile = _with("reputation", **{name: value})
    if name == "order_count" and value > 0:
        profile = _with("reputation", order_count=value, distinct_buyer_count=0)
    violations = validate_profile(profile, as_of=AS_OF)
    assert [v.field for v in violations] == [f"merchant.reputation.{name}"]
    assert "must be between" in violations[0].description


def test_distinct_buyers_not_above_orders() -> None:
    field, description = _only(_with("reputation", order_count=10, distinct_buyer_count=11))
    assert field == "merchant.reputation.distinct_buyer_count"
    assert description == "must not exceed order_count (10), got 11"
    equal = _with("reputation", order_count=10, distinct_buyer_count=10)
    assert validate_profile(equal, as_of=AS_OF) == []


def test_every_violation_is_reported_at_once() -> None:
    profile = MerchantProfile()
    fields = [v.field for v in validate_profile(profile, as_of=AS_OF)]
    assert fields == [
        "merchant.identity.platform_merchant_id",
        "merchant.identity.legal_name",
        "merchant.identity.unified_social_credit_code",
        "merchant.qualification.membership_tier",
        "merchant.qualification.business_registration_date",
        "merchant.qualification.region_code",
        "merchant.reputation.monthly_gmv_fen",
    ]


def test_field_prefix() -> None:
    violations = validate_profile(
        _with("identity", legal_name=""), as_of=AS_OF, field_prefix="request.merchant"
    )
    assert [v.field for v in violations] == ["request.merchant.identity.legal_name"]
