"""ReferralService (referrals) through grpc_testing: submit, get, list, withdraw."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import grpc
import pytest
from colending.v1 import (
    common_pb2,
    consent_pb2,
    financing_pb2,
    merchant_pb2,
    referral_pb2,
    referral_service_pb2,
)
from testkit import HANGZHOU_USCC, merchant, request_id

from gateway._transactions import BUSINESS_TZ
from partners.sdk import REFERRAL_PAYLOAD_TYPE

rs = referral_service_pb2
Profile = merchant_pb2.MerchantProfile


# --- SubmitReferral: the good path -------------------------------------------------------------


def test_submit_referral_to_two_banks(two_banks) -> None:
    api = two_banks
    consent = api.consent(bank_ids=["bank-a", "bank-b"])
    request = api.submit_request(consent.consent_id, ["bank-a", "bank-b"])
    referral = api.platform("SubmitReferral", request).expect_ok().response.referral

    assert referral.referral_id
    assert referral.state == referral_pb2.REFERRAL_STATE_ACTIVE
    assert referral.platform_merchant_id == "m-1001"
    assert referral.consent_id == consent.consent_id
    assert referral.assessment.scorecard_version
    assert 0 <= referral.assessment.score <= 1000
    assert referral.assessment.reasons
    assert [d.bank_id for d in referral.deliveries] == ["bank-a", "bank-b"]
    assert len({d.case_id for d in referral.deliveries}) == 2

    [active_key] = api.signing_keys()
    policy = api.list_partners()[0].policy
    for delivery in referral.deliveries:
        assert delivery.state == financing_pb2.FINANCING_STATE_REFERRED
        assert delivery.envelope.payload_type == REFERRAL_PAYLOAD_TYPE
        assert [s.keyid for s in delivery.envelope.signatures] == [active_key.keyid]
        payload = api.verified_payload(delivery.envelope, delivery.bank_id)
        assert payload.referral_id == referral.referral_id
        assert payload.case_id == delivery.case_id
        assert payload.bank_id == delivery.bank_id
        assert payload.consent_id == consent.consent_id
        assert len(payload.nonce) >= 16
        assert payload.expires_at.ToDatetime() > payload.issued_at.ToDatetime()
        assert payload.merchant.identity.unified_social_credit_code == HANGZHOU_USCC
        assert payload.offer == delivery.offer
        # The offer lies within the bank's policy and its parts add up.
        offer = delivery.offer
        total = offer.total_limit.amount_minor
        assert offer.total_limit.currency_code == "CNY"
        assert policy.min_credit_line.amount_minor <= total <= policy.max_credit_line.amount_minor
        assert offer.revolving_limit.amount_minor + offer.fixed_amount.amount_minor == total
        assert offer.fixed_amount.amount_minor * 5 >= total  # at least 20 % fixed
        assert offer.term_months == 12
        assert (offer.revolving_daily_rate_ppm, offer.fixed_daily_rate_ppm) == (600, 500)
    # Each envelope is for its own bank: distinct bytes, distinct nonces.
    first, second = referral.deliveries
    assert first.envelope.payload != second.envelope.payload

    assert api.get_referral(referral.referral_id) == referral
    assert [r.referral_id for r in api.list_referrals()] == [referral.referral_id]


def test_submit_referral_shares_only_the_consented_scopes(two_banks) -> None:
    api = two_banks
    consent = api.consent(data_scopes=[consent_pb2.DATA_SCOPE_IDENTITY])
    referral = api.submit(consent.consent_id)
    payload = api.verified_payload(referral.deliveries[0].envelope)
    assert payload.merchant.identity.platform_merchant_id == "m-1001"
    assert not payload.merchant.HasField("reputation")
    assert not payload.merchant.HasField("qualification")
    assert not payload.merchant.HasField("verification")


# --- SubmitReferral: bad merchant fields -------------------------------------------------------


def _bad_check_character(p: Profile) -> None:
    code = p.identity.unified_social_credit_code
    p.identity.unified_social_credit_code = code[:17] + ("0" if code[17] != "0" else "1")


def _tier_unspecified(p: Profile) -> None:
    p.qualification.membership_tier = merchant_pb2.MEMBERSHIP_TIER_UNSPECIFIED


def _registered_tomorrow(p: Profile) -> None:
    # Tomorrow in the business time zone (UTC+8), whatever the machine's zone.
    day = datetime.now(BUSINESS_TZ).date() + timedelta(days=1)
    p.qualification.business_registration_date.CopyFrom(
        common_pb2.Date(year=day.year, month=day.month, day=day.day)
    )


def _impossible_date(p: Profile) -> None:
    p.qualification.business_registration_date.CopyFrom(common_pb2.Date(year=2023, month=2, day=30))


def _bps_10001(p: Profile) -> None:
    p.reputation.dispute_rate_bps = 10001


def _buyers_above_orders(p: Profile) -> None:
    p.reputation.order_count = 10
    p.reputation.distinct_buyer_count = 11


def _no_gmv(p: Profile) -> None:
    del p.reputation.monthly_gmv_fen[:]


def _too_much_gmv_history(p: Profile) -> None:
    p.reputation.monthly_gmv_fen.extend([1] * 30)  # 42 months


def _negative_gmv(p: Profile) -> None:
    p.reputation.monthly_gmv_fen[3] = -1


def _no_legal_name(p: Profile) -> None:
    p.identity.legal_name = "  "


def _control_character_in_name(p: Profile) -> None:
    p.identity.legal_name = "杭州\n示例"


def _free_member_with_paid_since(p: Profile) -> None:
    p.qualification.membership_tier = merchant_pb2.MEMBERSHIP_TIER_FREE


def _paid_member_without_since(p: Profile) -> None:
    p.qualification.ClearField("paid_member_since")


def _bad_region(p: Profile) -> None:
    p.qualification.region_code = "33010"


def _unknown_tier(p: Profile) -> None:
    p.qualification.membership_tier = 17


def _bad_merchant_id(p: Profile) -> None:
    p.identity.platform_merchant_id = "m 1001"


def _overdue_loans(p: Profile) -> None:
    p.reputation.prior_loans_overdue = 10001


BAD_MERCHANTS: dict[str, tuple[Callable[..., object], set[str]]] = {
    "bad USCC check character": (
        _bad_check_character,
        {"merchant.identity.unified_social_credit_code"},
    ),
    "tier unspecified": (_tier_unspecified, {"merchant.qualification.membership_tier"}),
    "unknown tier": (_unknown_tier, {"merchant.qualification.membership_tier"}),
    "registered tomorrow": (
        _registered_tomorrow,
        {"merchant.qualification.business_registration_date"},
    ),
    "impossible date 2023-02-30": (
        _impossible_date,
        {"merchant.qualification.business_registration_date"},
    ),
    "bps 10001": (_bps_10001, {"merchant.reputation.dispute_rate_bps"}),
    "distinct buyers above orders": (
        _buyers_above_orders,
        {"merchant.reputation.distinct_buyer_count"},
    ),
    "empty GMV": (_no_gmv, {"merchant.reputation.monthly_gmv_fen"}),
    "42 months of GMV": (_too_much_gmv_history, {"merchant.reputation.monthly_gmv_fen"}),
    "negative GMV": (_negative_gmv, {"merchant.reputation.monthly_gmv_fen[3]"}),
    "blank legal name": (_no_legal_name, {"merchant.identity.legal_name"}),
    "control character in name": (
        _control_character_in_name,
        {"merchant.identity.legal_name"},
    ),
    "free member with paid-since": (
        _free_member_with_paid_since,
        {"merchant.qualification.paid_member_since"},
    ),
    "paid member without paid-since": (
        _paid_member_without_since,
        {"merchant.qualification.paid_member_since"},
    ),
    "five-digit region": (_bad_region, {"merchant.qualification.region_code"}),
    "bad merchant id": (_bad_merchant_id, {"merchant.identity.platform_merchant_id"}),
    "prior overdue loans out of range": (
        _overdue_loans,
        {"merchant.reputation.prior_loans_overdue"},
    ),
}


@pytest.mark.parametrize(("mutate", "fields"), BAD_MERCHANTS.values(), ids=BAD_MERCHANTS.keys())
def test_submit_referral_rejects_a_bad_merchant_and_writes_nothing(
    two_banks, mutate, fields: set[str]
) -> None:
    api = two_banks
    consent = api.consent()
    profile = merchant()
    mutate(profile)
    before = api.row_counts()
    result = api.platform("SubmitReferral", api.submit_request(consent.consent_id, profile=profile))
    result.expect(grpc.StatusCode.INVALID_ARGUMENT)
    assert fields <= result.fields, result.describe()
    assert all(f.startswith("merchant.") for f in result.fields), result.describe()
    assert api.list_referrals() == []
    assert api.row_counts() == before


def test_submit_referral_reports_every_bad_field_at_once(two_banks) -> None:
    api = two_banks
    consent = api.consent()
    profile = merchant()
    for mutate in (_bad_check_character, _tier_unspecified, _bps_10001, _no_gmv):
        mutate(profile)
    result = api.platform("SubmitReferral", api.submit_request(consent.consent_id, profile=profile))
    result.expect_invalid(
        "merchant.identity.unified_social_credit_code",
        "merchant.qualification.membership_tier",
        "merchant.reputation.dispute_rate_bps",
        "merchant.reputation.monthly_gmv_fen",
    )


@pytest.mark.parametrize(
    ("consent_id", "bank_ids", "fields"),
    [
        ("", ["bank-a"], {"consent_id"}),
        ("C", [], {"bank_ids"}),
        ("C", ["bank-a", "bank-a"], {"bank_ids"}),
        ("C", ["bank-a", "BANK_B"], {"bank_ids[1]"}),
        ("C", [f"bank-{i:02d}" for i in range(21)], {"bank_ids"}),
    ],
    ids=["no consent id", "no banks", "bank twice", "bad bank id", "21 banks"],
)
def test_submit_referral_rejects_bad_request_fields(two_banks, consent_id, bank_ids, fields):
    api = two_banks
    consent = api.consent()
    cid = consent.consent_id if consent_id == "C" else consent_id
    result = api.platform("SubmitReferral", api.submit_request(cid, bank_ids))
    result.expect_invalid(*fields)
    assert api.list_referrals() == []


def test_submit_referral_without_request_id_is_invalid(two_banks) -> None:
    api = two_banks
    consent = api.consent()
    request = api.submit_request(consent.consent_id)
    request.request_id = ""
    api.platform("SubmitReferral", request).expect_invalid("request_id")
    assert api.list_referrals() == []


# --- SubmitReferral: refusals ------------------------------------------------------------------


def test_submit_referral_with_unknown_consent_is_not_found(two_banks) -> None:
    api = two_banks
    result = api.platform("SubmitReferral", api.submit_request("cns-missing"))
    result.expect_not_found("consent", "cns-missing")
    assert api.list_referrals() == []


def test_submit_referral_to_unknown_bank_is_not_found(two_banks) -> None:
    api = two_banks
    consent = api.consent(bank_ids=["bank-a"])
    result = api.platform(
        "SubmitReferral", api.submit_request(consent.consent_id, ["bank-a", "bank-x"])
    )
    result.expect_not_found("partner", "bank-x")
    assert api.list_referrals() == []


def _assert_refused_and_nothing_written(api, result, *types: str) -> None:
    result.expect_precondition(*types)
    assert api.list_referrals() == []
    assert api.row_counts()["referrals"] == 0
    assert api.row_counts()["financing_cases"] == 0


def test_submit_referral_with_revoked_consent(two_banks) -> None:
    api = two_banks
    consent = api.consent()
    api.revoke(consent.consent_id)
    result = api.platform("SubmitReferral", api.submit_request(consent.consent_id))
    _assert_refused_and_nothing_written(api, result, "CONSENT_NOT_LIVE")
    assert {v.subject for v in result.precondition_violations} == {f"consents/{consent.consent_id}"}
    assert "REVOKED" in result.details


def test_submit_referral_with_another_merchants_consent(two_banks) -> None:
    api = two_banks
    consent = api.consent(merchant_id="m-2002")
    result = api.platform("SubmitReferral", api.submit_request(consent.consent_id))
    _assert_refused_and_nothing_written(api, result, "CONSENT_MERCHANT_MISMATCH")
    assert "m-2002" in result.precondition_violations[0].description


def test_submit_referral_to_a_bank_the_consent_does_not_cover(two_banks) -> None:
    api = two_banks
    consent = api.consent(bank_ids=["bank-a"])
    result = api.platform(
        "SubmitReferral", api.submit_request(consent.consent_id, ["bank-a", "bank-b"])
    )
    _assert_refused_and_nothing_written(api, result, "CONSENT_BANK_NOT_COVERED")
    assert "bank-b" in result.precondition_violations[0].description


def test_submit_referral_to_a_suspended_bank(two_banks) -> None:
    api = two_banks
    consent = api.consent(bank_ids=["bank-a", "bank-b"])
    api.suspend("bank-b")
    result = api.platform(
        "SubmitReferral", api.submit_request(consent.consent_id, ["bank-a", "bank-b"])
    )
    _assert_refused_and_nothing_written(api, result, "PARTNER_SUSPENDED")
    assert [v.subject for v in result.precondition_violations] == ["partners/bank-b"]


def test_submit_referral_for_an_ineligible_merchant_lists_every_unmet_rule(two_banks) -> None:
    api = two_banks
    consent = api.consent(bank_ids=["bank-a", "bank-b"])
    wenzhou = merchant(
        region_code="330302",
        registered=api.years_ago(1),
        tier=merchant_pb2.MEMBERSHIP_TIER_FREE,
    )
    request = api.submit_request(consent.consent_id, ["bank-a", "bank-b"], profile=wenzhou)
    result = api.platform("SubmitReferral", request)
    _assert_refused_and_nothing_written(api, result, "ELIGIBILITY")
    subjects = {v.subject for v in result.precondition_violations}
    assert subjects == {
        f"partners/{bank}/policy.{rule}"
        for bank in ("bank-a", "bank-b")
        for rule in ("excluded_region_codes", "min_years_registered", "allowed_tiers")
    }
    for subject in subjects:
        assert subject in result.details


def test_submit_referral_refusal_lists_consent_and_eligibility_problems_together(
    two_banks,
) -> None:
    api = two_banks
    consent = api.consent(merchant_id="m-2002", bank_ids=["bank-b"])
    api.suspend("bank-a")
    profile = merchant(tier=merchant_pb2.MEMBERSHIP_TIER_FREE)
    result = api.platform(
        "SubmitReferral", api.submit_request(consent.consent_id, ["bank-a"], profile=profile)
    )
    _assert_refused_and_nothing_written(
        api,
        result,
        "PARTNER_SUSPENDED",
        "CONSENT_MERCHANT_MISMATCH",
        "CONSENT_BANK_NOT_COVERED",
        "ELIGIBILITY",
    )


def test_a_refused_submission_can_be_retried_with_the_same_request_id(two_banks) -> None:
    api = two_banks
    consent = api.consent(bank_ids=["bank-a"])
    rid = request_id()
    api.suspend("bank-b")
    refused = api.submit_request(consent.consent_id, ["bank-b"], rid=rid)
    assert not api.platform("SubmitReferral", refused).ok
    # Nothing was recorded for the refused request, so its id is free for the corrected one.
    fixed = api.submit_request(consent.consent_id, ["bank-a"], rid=rid)
    api.platform("SubmitReferral", fixed).expect_ok()


# --- SubmitReferral: idempotency ---------------------------------------------------------------


def test_submit_referral_replay_returns_the_same_referral(two_banks) -> None:
    api = two_banks
    consent = api.consent(bank_ids=["bank-a", "bank-b"])
    request = api.submit_request(consent.consent_id, ["bank-a", "bank-b"])
    first = api.platform("SubmitReferral", request).expect_ok().response.referral
    again = api.platform("SubmitReferral", request).expect_ok().response.referral
    assert again.referral_id == first.referral_id
    assert [d.case_id for d in again.deliveries] == [d.case_id for d in first.deliveries]
    assert [d.envelope.SerializeToString() for d in again.deliveries] == [
        d.envelope.SerializeToString() for d in first.deliveries
    ]
    assert again == first
    assert len(api.list_referrals()) == 1
    assert api.row_counts()["financing_cases"] == 2


def test_submit_referral_same_request_id_other_content(two_banks) -> None:
    api = two_banks
    consent = api.consent(bank_ids=["bank-a", "bank-b"])
    request = api.submit_request(consent.consent_id, ["bank-a"])
    api.platform("SubmitReferral", request).expect_ok()
    other = api.submit_request(consent.consent_id, ["bank-a", "bank-b"], rid=request.request_id)
    api.platform("SubmitReferral", other).expect_already_exists("request", request.request_id)
    richer = api.submit_request(
        consent.consent_id,
        ["bank-a"],
        profile=merchant(monthly_gmv_yuan=500_000),
        rid=request.request_id,
    )
    api.platform("SubmitReferral", richer).expect_already_exists("request", request.request_id)
    assert len(api.list_referrals()) == 1


# --- GetReferral / ListReferrals ---------------------------------------------------------------


def test_get_referral_errors(two_banks) -> None:
    api = two_banks
    api.platform("GetReferral", rs.GetReferralRequest(referral_id="ref-nope")).expect_not_found(
        "referral", "ref-nope"
    )
    api.platform("GetReferral", rs.GetReferralRequest()).expect_invalid("referral_id")


def test_list_referrals_pages_and_filters(two_banks) -> None:
    api = two_banks
    made = [
        api.referral_for("m-1").referral_id,
        api.referral_for("m-2").referral_id,
        api.referral_for("m-1").referral_id,
    ]
    seen: list[str] = []
    token = ""
    for _ in range(10):
        response = (
            api.platform("ListReferrals", rs.ListReferralsRequest(page_size=1, page_token=token))
            .expect_ok()
            .response
        )
        assert len(response.referrals) <= 1
        seen += [r.referral_id for r in response.referrals]
        token = response.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(made)
    assert len(seen) == 3
    assert seen == list(reversed(made))  # newest first

    by_merchant = api.list_referrals(platform_merchant_id="m-1")
    assert [r.referral_id for r in by_merchant] == [made[2], made[0]]
    assert all(r.platform_merchant_id == "m-1" for r in by_merchant)
    assert api.list_referrals(platform_merchant_id="m-404") == []

    # A filtered list pages too, and its token keeps the filter.
    first = (
        api.platform(
            "ListReferrals", rs.ListReferralsRequest(page_size=1, platform_merchant_id="m-1")
        )
        .expect_ok()
        .response
    )
    assert [r.referral_id for r in first.referrals] == [made[2]]
    second = (
        api.platform(
            "ListReferrals",
            rs.ListReferralsRequest(
                page_size=1, platform_merchant_id="m-1", page_token=first.next_page_token
            ),
        )
        .expect_ok()
        .response
    )
    assert [r.referral_id for r in second.referrals] == [made[0]]
    assert second.next_page_token == ""


def test_list_referrals_filters_by_state(two_banks) -> None:
    api = two_banks
    kept = api.referral_for("m-1").referral_id
    gone = api.referral_for("m-2").referral_id
    withdraw(api, gone).expect_ok()
    active = api.list_referrals(state=referral_pb2.REFERRAL_STATE_ACTIVE)
    assert [r.referral_id for r in active] == [kept]
    withdrawn = api.list_referrals(state=referral_pb2.REFERRAL_STATE_WITHDRAWN)
    assert [r.referral_id for r in withdrawn] == [gone]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"page_size": 501}, "page_size"),
        ({"page_size": -5}, "page_size"),
        ({"page_token": "garbage"}, "page_token"),
        ({"page_token": "cGFydG5lcnM6YmFuay1h"}, "page_token"),  # a ListPartners token
        ({"page_token": "cmVmZXJyYWxzOmFiYw"}, "page_token"),  # referrals:abc
        ({"state": 7}, "state"),
    ],
)
def test_list_referrals_rejects_bad_paging(two_banks, fields, field: str) -> None:
    two_banks.platform("ListReferrals", rs.ListReferralsRequest(**fields)).expect_invalid(field)


# --- WithdrawReferral --------------------------------------------------------------------------


def withdraw(api, referral_id: str, reason: str = "merchant changed its mind", rid: str = ""):
    request = rs.WithdrawReferralRequest(
        request_id=rid or request_id(), referral_id=referral_id, reason=reason
    )
    return api.platform("WithdrawReferral", request)


def test_withdraw_referral(two_banks) -> None:
    api = two_banks
    referral = api.referral_for(bank_ids=["bank-a", "bank-b"])
    api.pull("bank-a")  # one case delivered, one still referred: both can be withdrawn
    rid = request_id()
    result = withdraw(api, referral.referral_id, "duplicate application", rid).expect_ok()
    withdrawn = result.response.referral
    assert withdrawn.state == referral_pb2.REFERRAL_STATE_WITHDRAWN
    assert withdrawn.withdrawal_reason == "duplicate application"
    assert [d.state for d in withdrawn.deliveries] == [financing_pb2.FINANCING_STATE_WITHDRAWN] * 2
    assert api.get_referral(referral.referral_id) == withdrawn
    # Replay: the same answer.
    again = withdraw(api, referral.referral_id, "duplicate application", rid).expect_ok()
    assert again.response.referral == withdrawn
    # Banks no longer get it.
    assert list(api.pull("bank-a").referrals) == []
    assert list(api.pull("bank-b").referrals) == []


def test_withdraw_referral_twice_is_failed_precondition(two_banks) -> None:
    api = two_banks
    referral = api.referral_for()
    withdraw(api, referral.referral_id).expect_ok()
    result = withdraw(api, referral.referral_id).expect_precondition("REFERRAL_WITHDRAWN")
    assert result.precondition_violations[0].subject == f"referrals/{referral.referral_id}"


def test_withdraw_acknowledged_referral_then_bank_cannot_acknowledge_again(two_banks) -> None:
    api = two_banks
    referral = api.referral_for()
    case_id = referral.deliveries[0].case_id
    api.acknowledge("bank-a", case_id).expect_ok()
    withdrawn = withdraw(api, referral.referral_id).expect_ok().response.referral
    assert withdrawn.deliveries[0].state == financing_pb2.FINANCING_STATE_WITHDRAWN
    result = api.acknowledge("bank-a", case_id).expect_precondition("ILLEGAL_TRANSITION")
    assert "WITHDRAWN" in result.details


def test_withdraw_same_request_id_other_content(two_banks) -> None:
    api = two_banks
    referral = api.referral_for()
    rid = request_id()
    withdraw(api, referral.referral_id, "one", rid).expect_ok()
    withdraw(api, referral.referral_id, "two", rid).expect_already_exists("request", rid)


def test_withdraw_unknown_referral_is_not_found(two_banks) -> None:
    withdraw(two_banks, "ref-nope").expect_not_found("referral", "ref-nope")


@pytest.mark.parametrize(
    ("referral_id", "reason", "fields"),
    [("", "r", {"referral_id"}), ("R", "", {"reason"}), ("R", "x" * 501, {"reason"})],
    ids=["no referral id", "no reason", "reason too long"],
)
def test_withdraw_rejects_bad_input(two_banks, referral_id, reason, fields) -> None:
    api = two_banks
    referral = api.referral_for()
    rid = referral.referral_id if referral_id == "R" else referral_id
    withdraw(api, rid, reason).expect_invalid(*fields)
    assert api.get_referral(referral.referral_id).state == referral_pb2.REFERRAL_STATE_ACTIVE
