"""AdminService through grpc_testing: partners, their policies, paging and signing keys."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from colending.v1 import (
    admin_service_pb2,
    common_pb2,
    merchant_pb2,
    partner_bank_service_pb2,
    partner_pb2,
)
from google.protobuf.field_mask_pb2 import FieldMask
from testkit import request_id

ad = admin_service_pb2
# A real Ed25519 public key (RFC 8032, section 7.1, test 1).
KEY_32 = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")


def register_request(**fields: Any) -> ad.RegisterPartnerRequest:
    values: dict[str, Any] = {
        "request_id": request_id(),
        "partner_id": "bank-a",
        "display_name": "Bank A",
        "endpoint": "bank-a.example.cn:443",
        "decision_public_key": KEY_32,
    }
    values.update(fields)
    return ad.RegisterPartnerRequest(**values)


def cny(amount_fen: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code="CNY", amount_minor=amount_fen)


# --- RegisterPartner ---------------------------------------------------------------------------


def test_register_partner_without_policy_gets_the_historical_policy(api) -> None:
    result = api.admin("RegisterPartner", register_request()).expect_ok()
    partner = result.response.partner
    assert partner.partner_id == "bank-a"
    assert partner.display_name == "Bank A"
    assert partner.endpoint == "bank-a.example.cn:443"
    assert partner.decision_public_key == KEY_32
    assert partner.state == partner_pb2.PARTNER_STATE_ACTIVE
    assert partner.HasField("created_at")
    policy = partner.policy
    assert list(policy.allowed_region_codes) == ["310000", "320000", "330000"]
    assert list(policy.excluded_region_codes) == ["330300"]
    assert policy.min_years_registered == 2
    assert sorted(policy.allowed_tiers) == sorted(
        [merchant_pb2.MEMBERSHIP_TIER_TRUSTPASS, merchant_pb2.MEMBERSHIP_TIER_GOLD_SUPPLIER]
    )
    assert policy.min_credit_line == cny(50_000_00)
    assert policy.max_credit_line == cny(1_000_000_00)
    assert (policy.platform_share_floor_bps, policy.platform_share_ceiling_bps) == (3000, 9000)
    assert policy.blacklist_action == partner_pb2.BLACKLIST_ACTION_REFUSE
    assert policy.referral_ttl_days == 30
    assert [p.partner_id for p in api.list_partners()] == ["bank-a"]


def test_register_partner_keeps_a_given_policy(api) -> None:
    policy = partner_pb2.EligibilityPolicy(
        allowed_region_codes=["310000"],
        min_years_registered=3,
        allowed_tiers=[merchant_pb2.MEMBERSHIP_TIER_GOLD_SUPPLIER],
        min_credit_line=cny(100_000_00),
        max_credit_line=cny(500_000_00),
        platform_share_floor_bps=4000,
        platform_share_ceiling_bps=8000,
        referral_ttl_days=14,
    )
    partner = api.admin("RegisterPartner", register_request(policy=policy)).expect_ok()
    got = partner.response.partner.policy
    assert list(got.allowed_region_codes) == ["310000"]
    assert got.min_years_registered == 3
    assert list(got.allowed_tiers) == [merchant_pb2.MEMBERSHIP_TIER_GOLD_SUPPLIER]
    assert got.max_credit_line == cny(500_000_00)
    assert (got.platform_share_floor_bps, got.platform_share_ceiling_bps) == (4000, 8000)
    assert got.referral_ttl_days == 14


def test_register_duplicate_partner_id_is_already_exists(api) -> None:
    api.admin("RegisterPartner", register_request()).expect_ok()
    again = api.admin("RegisterPartner", register_request(display_name="Impostor"))
    again.expect_already_exists("partner", "bank-a")
    assert "bank-a" in again.details
    [partner] = api.list_partners()
    assert partner.display_name == "Bank A"


BAD_REGISTRATIONS = {
    "partner_id upper case": ({"partner_id": "Bank_A"}, {"partner_id"}),
    "partner_id missing": ({"partner_id": ""}, {"partner_id"}),
    "partner_id too short": ({"partner_id": "ab"}, {"partner_id"}),
    "display_name empty": ({"display_name": ""}, {"display_name"}),
    "display_name blank": ({"display_name": "   "}, {"display_name"}),
    "display_name too long": ({"display_name": "x" * 201}, {"display_name"}),
    "endpoint without port": ({"endpoint": "bank-a.example.cn"}, {"endpoint"}),
    "endpoint port 0": ({"endpoint": "bank-a.example.cn:0"}, {"endpoint"}),
    "endpoint port too big": ({"endpoint": "bank-a.example.cn:70000"}, {"endpoint"}),
    "endpoint url": ({"endpoint": "https://bank-a.example.cn:443/x"}, {"endpoint"}),
    "decision key 31 bytes": ({"decision_public_key": bytes(31)}, {"decision_public_key"}),
    "decision key 33 bytes": ({"decision_public_key": bytes(33)}, {"decision_public_key"}),
    # Small order: verifies a forged signature with no private key behind it.
    "decision key identity point": (
        {"decision_public_key": bytes([1]) + bytes(31)},
        {"decision_public_key"},
    ),
    "decision key of order 8": (
        {
            "decision_public_key": bytes.fromhex(
                "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"
            )
        },
        {"decision_public_key"},
    ),
    "decision key not on the curve": (
        {"decision_public_key": bytes([2]) + bytes(31)},
        {"decision_public_key"},
    ),
    "decision key y not below p": ({"decision_public_key": b"\xff" * 32}, {"decision_public_key"}),
    "policy floor above ceiling": (
        {
            "policy": partner_pb2.EligibilityPolicy(
                platform_share_floor_bps=9500, platform_share_ceiling_bps=9000
            )
        },
        {"policy.platform_share_floor_bps"},
    ),
    "policy share above 100 %": (
        {"policy": partner_pb2.EligibilityPolicy(platform_share_ceiling_bps=10001)},
        {"policy.platform_share_ceiling_bps"},
    ),
    "policy bad region code": (
        {"policy": partner_pb2.EligibilityPolicy(allowed_region_codes=["310000", "31000"])},
        {"policy.allowed_region_codes[1]"},
    ),
    "policy duplicate excluded region": (
        {"policy": partner_pb2.EligibilityPolicy(excluded_region_codes=["330300", "330300"])},
        {"policy.excluded_region_codes[1]"},
    ),
    "policy USD max line": (
        {
            "policy": partner_pb2.EligibilityPolicy(
                max_credit_line=common_pb2.Money(currency_code="USD", amount_minor=100_000)
            )
        },
        {"policy.max_credit_line.currency_code"},
    ),
    "policy negative exposure cap": (
        {"policy": partner_pb2.EligibilityPolicy(exposure_cap=cny(-1))},
        {"policy.exposure_cap.amount_minor"},
    ),
    "policy unknown blacklist action": (
        {"policy": partner_pb2.EligibilityPolicy(blacklist_action=7)},
        {"policy.blacklist_action"},
    ),
    "policy unknown tier": (
        {"policy": partner_pb2.EligibilityPolicy(allowed_tiers=[9])},
        {"policy.allowed_tiers[0]"},
    ),
    "policy unspecified tier": (
        {"policy": partner_pb2.EligibilityPolicy(allowed_tiers=[0])},
        {"policy.allowed_tiers"},
    ),
    "policy ttl over a year": (
        {"policy": partner_pb2.EligibilityPolicy(referral_ttl_days=366)},
        {"policy.referral_ttl_days"},
    ),
    "policy negative years": (
        {"policy": partner_pb2.EligibilityPolicy(min_years_registered=-1)},
        {"policy.min_years_registered"},
    ),
    "request_id missing": ({"request_id": ""}, {"request_id"}),
    "request_id bad characters": ({"request_id": "id with spaces"}, {"request_id"}),
}


@pytest.mark.parametrize(
    ("fields", "expected"), BAD_REGISTRATIONS.values(), ids=BAD_REGISTRATIONS.keys()
)
def test_register_partner_rejects_bad_input_and_writes_nothing(
    api, fields: dict[str, Any], expected: set[str]
) -> None:
    api.admin("RegisterPartner", register_request(**fields)).expect_invalid(*expected)
    assert api.list_partners() == []
    assert set(api.row_counts().values()) == {0}


def test_register_partner_reports_every_problem_at_once(api) -> None:
    request = register_request(
        partner_id="B",
        display_name="",
        endpoint="nowhere",
        decision_public_key=bytes(31),
        policy=partner_pb2.EligibilityPolicy(
            allowed_region_codes=["abc"],
            platform_share_floor_bps=9500,
            platform_share_ceiling_bps=9000,
        ),
    )
    api.admin("RegisterPartner", request).expect_invalid(
        "partner_id",
        "display_name",
        "endpoint",
        "decision_public_key",
        "policy.allowed_region_codes[0]",
        "policy.platform_share_floor_bps",
    )


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        (
            partner_pb2.EligibilityPolicy(
                min_credit_line=cny(2_000_000_00), max_credit_line=cny(1_000_000_00)
            ),
            "policy.min_credit_line",
        ),
        (partner_pb2.EligibilityPolicy(exposure_cap=cny(10**15)), "policy.exposure_cap"),
        (partner_pb2.EligibilityPolicy(min_credit_line=cny(0)), "policy.min_credit_line"),
    ],
    ids=["min above max", "cap above limit", "zero minimum"],
)
def test_money_policy_violations_name_request_fields(api, policy, field: str) -> None:
    result = api.admin("RegisterPartner", register_request(policy=policy))
    result.expect(grpc.StatusCode.INVALID_ARGUMENT)
    assert api.list_partners() == []
    assert result.fields, result.describe()
    for name in result.fields:
        assert name == field or name.startswith(f"{field}."), result.describe()


def test_a_refused_request_id_is_not_used_up(api) -> None:
    rid = request_id()
    api.admin("RegisterPartner", register_request(request_id=rid, endpoint="x")).expect_invalid(
        "endpoint"
    )
    api.admin("RegisterPartner", register_request(request_id=rid)).expect_ok()


def test_register_replay_returns_the_same_partner(api) -> None:
    request = register_request()
    first = api.admin("RegisterPartner", request).expect_ok().response
    again = api.admin("RegisterPartner", request).expect_ok().response
    assert again == first
    assert len(api.list_partners()) == 1


def test_register_same_request_id_other_content_is_already_exists(api) -> None:
    request = register_request()
    api.admin("RegisterPartner", request).expect_ok()
    other = register_request(request_id=request.request_id, partner_id="bank-b")
    result = api.admin("RegisterPartner", other).expect_already_exists(
        "request", request.request_id
    )
    assert "request_id" in result.details
    assert [p.partner_id for p in api.list_partners()] == ["bank-a"]


# --- UpdatePartner -----------------------------------------------------------------------------


def update_request(partner: partner_pb2.Partner, *paths: str) -> ad.UpdatePartnerRequest:
    return ad.UpdatePartnerRequest(
        request_id=request_id(), partner=partner, update_mask=FieldMask(paths=list(paths))
    )


def test_update_partner_changes_only_the_masked_fields(api) -> None:
    api.register("bank-a", endpoint="old.example.cn:443")
    given = partner_pb2.Partner(
        partner_id="bank-a", display_name="Bank A Renamed", endpoint="new.example.cn:8443"
    )
    result = api.admin("UpdatePartner", update_request(given, "display_name")).expect_ok()
    partner = result.response.partner
    assert partner.display_name == "Bank A Renamed"
    assert partner.endpoint == "old.example.cn:443"  # not in the mask

    result = api.admin("UpdatePartner", update_request(given, "endpoint")).expect_ok()
    assert result.response.partner.endpoint == "new.example.cn:8443"
    [stored] = api.list_partners()
    assert (stored.display_name, stored.endpoint) == ("Bank A Renamed", "new.example.cn:8443")


def test_update_partner_policy(api) -> None:
    api.register("bank-a")
    policy = partner_pb2.EligibilityPolicy(
        allowed_region_codes=["320000"],
        min_years_registered=5,
        platform_share_floor_bps=5000,
        platform_share_ceiling_bps=7000,
    )
    given = partner_pb2.Partner(partner_id="bank-a", policy=policy, display_name="ignored")
    partner = api.admin("UpdatePartner", update_request(given, "policy")).expect_ok()
    got = partner.response.partner
    assert list(got.policy.allowed_region_codes) == ["320000"]
    assert got.policy.min_years_registered == 5
    assert got.policy.platform_share_floor_bps == 5000
    assert got.display_name == "Bank bank-a"


@pytest.mark.parametrize(
    ("paths", "given", "fields"),
    [
        (("partner_id",), {}, {"update_mask"}),
        (("display_name", "state"), {"display_name": "x"}, {"update_mask"}),
        (("policy.min_score",), {}, {"update_mask"}),
        ((), {"display_name": "x"}, {"update_mask"}),
        (("display_name",), {"display_name": " "}, {"partner.display_name"}),
        (("endpoint",), {"endpoint": "no-port"}, {"partner.endpoint"}),
        (
            ("decision_public_key",),
            {"decision_public_key": bytes(31)},
            {"partner.decision_public_key"},
        ),
        (
            ("policy",),
            {
                "policy": partner_pb2.EligibilityPolicy(
                    platform_share_floor_bps=9000, platform_share_ceiling_bps=1000
                )
            },
            {"partner.policy.platform_share_floor_bps"},
        ),
    ],
    ids=[
        "partner_id not updatable",
        "state not updatable",
        "sub-path",
        "empty mask",
        "blank display name",
        "bad endpoint",
        "short key",
        "bad policy",
    ],
)
def test_update_partner_rejects_bad_input(api, paths, given, fields) -> None:
    original = api.register("bank-a")
    partner = partner_pb2.Partner(partner_id="bank-a", **given)
    api.admin("UpdatePartner", update_request(partner, *paths)).expect_invalid(*fields)
    assert api.list_partners() == [original]


def test_update_unknown_partner_is_not_found(api) -> None:
    given = partner_pb2.Partner(partner_id="bank-x", display_name="X")
    api.admin("UpdatePartner", update_request(given, "display_name")).expect_not_found(
        "partner", "bank-x"
    )
    assert api.row_counts()["idempotency_keys"] == 0


def test_update_bad_partner_id_is_invalid(api) -> None:
    given = partner_pb2.Partner(partner_id="Bank X", display_name="X")
    api.admin("UpdatePartner", update_request(given, "display_name")).expect_invalid(
        "partner.partner_id"
    )


def test_update_replay_and_conflict(api) -> None:
    api.register("bank-a")
    request = update_request(
        partner_pb2.Partner(partner_id="bank-a", display_name="New"), "display_name"
    )
    first = api.admin("UpdatePartner", request).expect_ok().response
    assert api.admin("UpdatePartner", request).expect_ok().response == first
    other = ad.UpdatePartnerRequest()
    other.CopyFrom(request)
    other.partner.display_name = "Newer"
    api.admin("UpdatePartner", other).expect_already_exists("request", request.request_id)
    [stored] = api.list_partners()
    assert stored.display_name == "New"


# --- SuspendPartner ----------------------------------------------------------------------------


def test_suspend_partner(api) -> None:
    api.register("bank-a")
    request = ad.SuspendPartnerRequest(
        request_id=request_id(), partner_id="bank-a", reason="capital ratio breach"
    )
    partner = api.admin("SuspendPartner", request).expect_ok().response.partner
    assert partner.state == partner_pb2.PARTNER_STATE_SUSPENDED
    assert partner.suspension_reason == "capital ratio breach"
    [stored] = api.list_partners()
    assert stored.state == partner_pb2.PARTNER_STATE_SUSPENDED
    # A replay answers the same; suspending again with a new id changes nothing.
    assert api.admin("SuspendPartner", request).expect_ok().response.partner == partner
    again = ad.SuspendPartnerRequest(request_id=request_id(), partner_id="bank-a", reason="x")
    assert api.admin("SuspendPartner", again).expect_ok().response.partner == partner


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"reason": ""}, {"reason"}),
        ({"reason": "   "}, {"reason"}),
        ({"reason": "r" * 501}, {"reason"}),
        ({"partner_id": ""}, {"partner_id"}),
        ({"partner_id": "BANK"}, {"partner_id"}),
        ({"request_id": ""}, {"request_id"}),
    ],
)
def test_suspend_partner_rejects_bad_input(api, fields, expected) -> None:
    api.register("bank-a")
    values = {"request_id": request_id(), "partner_id": "bank-a", "reason": "why"} | fields
    api.admin("SuspendPartner", ad.SuspendPartnerRequest(**values)).expect_invalid(*expected)
    [stored] = api.list_partners()
    assert stored.state == partner_pb2.PARTNER_STATE_ACTIVE


def test_suspend_unknown_partner_is_not_found(api) -> None:
    request = ad.SuspendPartnerRequest(request_id=request_id(), partner_id="bank-x", reason="r")
    api.admin("SuspendPartner", request).expect_not_found("partner", "bank-x")


# --- ListPartners ------------------------------------------------------------------------------


def test_list_partners_pages_through_every_partner(api) -> None:
    for bank_id in ("bank-c", "bank-a", "bank-b"):
        api.register(bank_id)
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        request = ad.ListPartnersRequest(page_size=1, page_token=token)
        response = api.admin("ListPartners", request).expect_ok().response
        pages += 1
        assert len(response.partners) <= 1
        seen += [p.partner_id for p in response.partners]
        token = response.next_page_token
        if not token:
            break
        assert pages < 10, "paging does not terminate"
    assert seen == ["bank-a", "bank-b", "bank-c"]
    assert pages == 3


def test_list_partners_filters_by_state(api) -> None:
    api.register("bank-a")
    api.register("bank-b")
    api.suspend("bank-b")
    suspended = ad.ListPartnersRequest(state=partner_pb2.PARTNER_STATE_SUSPENDED)
    response = api.admin("ListPartners", suspended).expect_ok().response
    assert [p.partner_id for p in response.partners] == ["bank-b"]
    active = ad.ListPartnersRequest(state=partner_pb2.PARTNER_STATE_ACTIVE)
    response = api.admin("ListPartners", active).expect_ok().response
    assert [p.partner_id for p in response.partners] == ["bank-a"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"page_size": 501}, "page_size"),
        ({"page_size": -1}, "page_size"),
        ({"page_token": "not-a-token"}, "page_token"),
        ({"page_token": "cmVmZXJyYWxzOjE"}, "page_token"),  # a ListReferrals token
        ({"page_token": "!!!"}, "page_token"),
        ({"state": 9}, "state"),
    ],
)
def test_list_partners_rejects_bad_paging(api, fields, field: str) -> None:
    api.register("bank-a")
    api.admin("ListPartners", ad.ListPartnersRequest(**fields)).expect_invalid(field)


def test_list_partners_accepts_the_largest_page(api) -> None:
    api.register("bank-a")
    response = api.admin("ListPartners", ad.ListPartnersRequest(page_size=500)).expect_ok()
    assert len(response.response.partners) == 1


# --- RotateSigningKey / GetPortfolioStats ------------------------------------------------------


def test_rotate_signing_key_keeps_the_old_key_published(api) -> None:
    api.register("bank-a")
    [before] = api.signing_keys()
    assert before.state == partner_bank_service_pb2.SIGNING_KEY_STATE_ACTIVE

    request = ad.RotateSigningKeyRequest(request_id=request_id())
    response = api.admin("RotateSigningKey", request).expect_ok().response
    active = response.active_key
    assert active.keyid != before.keyid
    assert active.state == partner_bank_service_pb2.SIGNING_KEY_STATE_ACTIVE
    assert [k.keyid for k in response.published_keys] == [active.keyid, before.keyid]
    retired = response.published_keys[1]
    assert retired.state == partner_bank_service_pb2.SIGNING_KEY_STATE_RETIRED
    assert retired.HasField("retired_at")

    keys = api.signing_keys()
    assert [k.keyid for k in keys] == [active.keyid, before.keyid]  # active first
    assert [k.state for k in keys] == [
        partner_bank_service_pb2.SIGNING_KEY_STATE_ACTIVE,
        partner_bank_service_pb2.SIGNING_KEY_STATE_RETIRED,
    ]


def test_rotate_replay_does_not_rotate_again(api) -> None:
    api.register("bank-a")
    request = ad.RotateSigningKeyRequest(request_id=request_id())
    first = api.admin("RotateSigningKey", request).expect_ok().response
    again = api.admin("RotateSigningKey", request).expect_ok().response
    assert again.active_key == first.active_key
    assert len(api.signing_keys()) == 2

    third = api.admin("RotateSigningKey", ad.RotateSigningKeyRequest(request_id=request_id()))
    assert third.expect_ok().response.active_key.keyid != first.active_key.keyid
    assert len(api.signing_keys()) == 3


def test_rotate_without_request_id_is_invalid(api) -> None:
    api.register("bank-a")
    api.admin("RotateSigningKey", ad.RotateSigningKeyRequest()).expect_invalid("request_id")
    assert len(api.signing_keys()) == 1
