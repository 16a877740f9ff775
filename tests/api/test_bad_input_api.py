"""A caller's mistake is never UNKNOWN or INTERNAL, and a refused request writes nothing.

``test_no_bad_request_is_a_server_fault`` walks a long list of bad requests over every implemented
RPC. The tests after it pin down bad inputs that once answered INTERNAL (regression tests).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from colending.v1 import (
    admin_service_pb2,
    common_pb2,
    merchant_pb2,
    partner_bank_service_pb2,
    partner_pb2,
    referral_service_pb2,
)
from google.protobuf.field_mask_pb2 import FieldMask
from testkit import bank, merchant, request_id

ad = admin_service_pb2
pb = partner_bank_service_pb2
rs = referral_service_pb2

FAULTS = (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)
BANK_A = bank("bank-a")


def full_width(text: str) -> str:
    """The same ASCII letters and digits in their full-width forms (U+FF01..U+FF5E)."""
    return "".join(chr(0xFEE0 + ord(c)) for c in text)


def token(kind: str, position: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{position}".encode()).decode().rstrip("=")


class World:
    """Two banks, a live consent, a referral with one case for bank-a, a revoked consent."""

    def __init__(self, api: Any) -> None:
        self.api = api
        api.register("bank-a")
        api.register("bank-b")
        self.consent = api.consent(bank_ids=["bank-a", "bank-b"]).consent_id
        self.referral = api.submit(self.consent, ["bank-a"])
        self.referral_id = self.referral.referral_id
        self.case_id = self.referral.deliveries[0].case_id
        self.revoked = api.consent().consent_id
        api.revoke(self.revoked)


Case = tuple[str, str, Callable[[World], Any], Any]


def _merchant(mutate: Callable[[merchant_pb2.MerchantProfile], None]):
    profile = merchant()
    mutate(profile)
    return profile


def _submit(w: World, profile=None, **fields: Any) -> rs.SubmitReferralRequest:
    values: dict[str, Any] = {
        "request_id": request_id(),
        "merchant": profile if profile is not None else merchant(),
        "consent_id": w.consent,
        "bank_ids": ["bank-a"],
    }
    values.update(fields)
    return rs.SubmitReferralRequest(**values)


def _set(**kw: Any) -> Callable[[merchant_pb2.MerchantProfile], None]:
    def mutate(p: merchant_pb2.MerchantProfile) -> None:
        for path, value in kw.items():
            section, name = path.split("__")
            setattr(getattr(p, section), name, value)

    return mutate


def _policy(**kw: Any) -> partner_pb2.EligibilityPolicy:
    return partner_pb2.EligibilityPolicy(**kw)


def _update(partner_id="bank-a", paths=("display_name",), **partner: Any):
    return ad.UpdatePartnerRequest(
        request_id=request_id(),
        partner=partner_pb2.Partner(partner_id=partner_id, **partner),
        update_mask=FieldMask(paths=list(paths)),
    )


# (service, method, request builder, metadata or None for the service's own role)
BAD_REQUESTS: list[Case] = [
    # --- AdminService
    ("admin", "RegisterPartner", lambda w: ad.RegisterPartnerRequest(), None),
    (
        "admin",
        "RegisterPartner",
        lambda w: ad.RegisterPartnerRequest(
            request_id=request_id(), partner_id="bank-a", display_name="again"
        ),
        None,
    ),
    (
        "admin",
        "RegisterPartner",
        lambda w: ad.RegisterPartnerRequest(
            request_id=request_id(),
            partner_id="x" * 10_000,
            display_name="名" * 10_000,
            endpoint="[::1]:99999",
            decision_public_key=b"\xff" * 1000,
        ),
        None,
    ),
    (
        "admin",
        "RegisterPartner",
        lambda w: ad.RegisterPartnerRequest(
            request_id=request_id(),
            partner_id="bank-c",
            display_name="C",
            policy=_policy(
                allowed_region_codes=["", "000000", full_width("310000"), "31000x"],
                excluded_region_codes=["-1"],
                min_years_registered=2**31 - 1,
                allowed_tiers=[0, 5, -1],
                min_score=-(2**31),
                min_credit_line=common_pb2.Money(currency_code="CNY", amount_minor=2**63 - 1),
                max_credit_line=common_pb2.Money(currency_code="", amount_minor=-(2**63)),
                platform_share_floor_bps=-1,
                platform_share_ceiling_bps=2**31 - 1,
                exposure_cap=common_pb2.Money(currency_code="cny", amount_minor=1),
                blacklist_action=-3,
                referral_ttl_days=-1,
            ),
        ),
        None,
    ),
    (
        "admin",
        "RegisterPartner",
        lambda w: ad.RegisterPartnerRequest(
            request_id=request_id(),
            partner_id="bank-c",
            display_name="C",
            policy=_policy(
                min_credit_line=common_pb2.Money(currency_code="CNY", amount_minor=10**15),
                exposure_cap=common_pb2.Money(currency_code="CNY", amount_minor=2**63 - 1),
            ),
        ),
        None,
    ),
    ("admin", "UpdatePartner", lambda w: ad.UpdatePartnerRequest(), None),
    ("admin", "UpdatePartner", lambda w: _update(paths=("*",)), None),
    ("admin", "UpdatePartner", lambda w: _update(paths=("display_name",)), None),
    ("admin", "UpdatePartner", lambda w: _update("bank-x", display_name="X"), None),
    ("admin", "UpdatePartner", lambda w: _update("", display_name="X"), None),
    (
        "admin",
        "UpdatePartner",
        lambda w: _update(paths=("policy",), policy=_policy(referral_ttl_days=0, min_score=5000)),
        None,
    ),
    (
        "admin",
        "UpdatePartner",
        lambda w: _update(
            paths=("endpoint", "decision_public_key"), endpoint=":", decision_public_key=b"k"
        ),
        None,
    ),
    ("admin", "SuspendPartner", lambda w: ad.SuspendPartnerRequest(), None),
    (
        "admin",
        "SuspendPartner",
        lambda w: ad.SuspendPartnerRequest(
            request_id=request_id(), partner_id="bank-x", reason="r"
        ),
        None,
    ),
    ("admin", "ListPartners", lambda w: ad.ListPartnersRequest(page_size=-(2**31)), None),
    ("admin", "ListPartners", lambda w: ad.ListPartnersRequest(page_size=2**31 - 1), None),
    ("admin", "ListPartners", lambda w: ad.ListPartnersRequest(page_token="=" * 9), None),
    ("admin", "ListPartners", lambda w: ad.ListPartnersRequest(page_token="ÿ" * 40), None),
    ("admin", "ListPartners", lambda w: ad.ListPartnersRequest(page_token="gA"), None),
    ("admin", "ListPartners", lambda w: ad.ListPartnersRequest(state=-1), None),
    ("admin", "RotateSigningKey", lambda w: ad.RotateSigningKeyRequest(), None),
    ("admin", "RotateSigningKey", lambda w: ad.RotateSigningKeyRequest(request_id="a" * 129), None),
    ("admin", "RotateSigningKey", lambda w: ad.RotateSigningKeyRequest(request_id="ключ"), None),
    # --- ReferralService: consent
    ("referral", "RecordConsent", lambda w: rs.RecordConsentRequest(), None),
    (
        "referral",
        "RecordConsent",
        lambda w: w.api.consent_request(
            bank_ids=["bank-a"] * 50, data_scopes=[-1, 2**31 - 1], purpose=-1
        ),
        None,
    ),
    (
        "referral",
        "RecordConsent",
        lambda w: w.api.consent_request(
            platform_merchant_id="m" * 65, evidence_reference="e" * 10**5
        ),
        None,
    ),
    ("referral", "RecordConsent", lambda w: w.api.consent_request(bank_ids=["bank-x"]), None),
    ("referral", "RevokeConsent", lambda w: rs.RevokeConsentRequest(), None),
    (
        "referral",
        "RevokeConsent",
        lambda w: rs.RevokeConsentRequest(
            request_id=request_id(), consent_id=w.revoked, reason="r"
        ),
        None,
    ),
    (
        "referral",
        "RevokeConsent",
        lambda w: rs.RevokeConsentRequest(
            request_id=request_id(), consent_id="x" * 5000, reason="r"
        ),
        None,
    ),
    # --- ReferralService: referrals
    ("referral", "SubmitReferral", lambda w: rs.SubmitReferralRequest(), None),
    (
        "referral",
        "SubmitReferral",
        lambda w: rs.SubmitReferralRequest(request_id=request_id()),
        None,
    ),
    ("referral", "SubmitReferral", lambda w: _submit(w, consent_id=w.revoked), None),
    ("referral", "SubmitReferral", lambda w: _submit(w, consent_id="cns-x"), None),
    ("referral", "SubmitReferral", lambda w: _submit(w, bank_ids=["bank-x"]), None),
    (
        "referral",
        "SubmitReferral",
        lambda w: _submit(
            w,
            _merchant(
                _set(
                    reputation__order_count=-(2**63),
                    reputation__distinct_buyer_count=2**63 - 1,
                    reputation__positive_feedback_bps=-(2**31),
                    reputation__refund_rate_bps=2**31 - 1,
                    reputation__on_time_shipment_bps=-1,
                    reputation__prior_loans_repaid=-1,
                    reputation__prior_loans_overdue=2**31 - 1,
                )
            ),
        ),
        None,
    ),
    (
        "referral",
        "SubmitReferral",
        lambda w: _submit(
            w,
            _merchant(lambda p: p.reputation.monthly_gmv_fen.extend([2**63 - 1] * 100)),
        ),
        None,
    ),
    (
        "referral",
        "SubmitReferral",
        lambda w: _submit(
            w,
            _merchant(
                lambda p: (
                    p.qualification.business_registration_date.CopyFrom(
                        common_pb2.Date(year=-(2**31), month=99, day=-1)
                    ),
                    p.qualification.paid_member_since.CopyFrom(
                        common_pb2.Date(year=10**6, month=1, day=1)
                    ),
                )
            ),
        ),
        None,
    ),
    (
        "referral",
        "SubmitReferral",
        lambda w: _submit(
            w,
            _merchant(
                lambda p: (
                    p.qualification.business_registration_date.CopyFrom(
                        common_pb2.Date(year=1900, month=1, day=1)
                    ),
                    p.qualification.paid_member_since.CopyFrom(
                        common_pb2.Date(year=1899, month=12, day=31)
                    ),
                )
            ),
        ),
        None,
    ),
    (
        "referral",
        "SubmitReferral",
        lambda w: _submit(
            w,
            _merchant(
                _set(
                    identity__unified_social_credit_code=full_width("91330106673959654X"),
                    identity__legal_name="x" * 10_000,
                    identity__platform_merchant_id="💳",
                    qualification__region_code="٣٣٠١٠٦",
                )
            ),
        ),
        None,
    ),
    ("referral", "SubmitReferral", lambda w: _submit(w, rs.SubmitReferralRequest().merchant), None),
    ("referral", "GetReferral", lambda w: rs.GetReferralRequest(), None),
    ("referral", "GetReferral", lambda w: rs.GetReferralRequest(referral_id="ref-" * 2000), None),
    ("referral", "ListReferrals", lambda w: rs.ListReferralsRequest(page_size=2**31 - 1), None),
    (
        "referral",
        "ListReferrals",
        lambda w: rs.ListReferralsRequest(page_token=token("referrals", "")),
        None,
    ),
    (
        "referral",
        "ListReferrals",
        lambda w: rs.ListReferralsRequest(page_token=token("referrals", "-5")),
        None,
    ),
    (
        "referral",
        "ListReferrals",
        lambda w: rs.ListReferralsRequest(page_token=token("cursor", "1")),
        None,
    ),
    ("referral", "ListReferrals", lambda w: rs.ListReferralsRequest(state=99), None),
    ("referral", "WithdrawReferral", lambda w: rs.WithdrawReferralRequest(), None),
    (
        "referral",
        "WithdrawReferral",
        lambda w: rs.WithdrawReferralRequest(
            request_id=request_id(), referral_id="ref-x", reason="r"
        ),
        None,
    ),
    # --- PartnerBankService
    ("bank", "PullReferrals", lambda w: pb.PullReferralsRequest(cursor="%%%"), BANK_A),
    (
        "bank",
        "PullReferrals",
        lambda w: pb.PullReferralsRequest(cursor=token("cursor", "1.5")),
        BANK_A,
    ),
    (
        "bank",
        "PullReferrals",
        lambda w: pb.PullReferralsRequest(cursor=token("partners", "1")),
        BANK_A,
    ),
    ("bank", "PullReferrals", lambda w: pb.PullReferralsRequest(page_size=-(2**31)), BANK_A),
    ("bank", "PullReferrals", lambda w: pb.PullReferralsRequest(), bank("bank-nobody")),
    ("bank", "AcknowledgeReferral", lambda w: pb.AcknowledgeReferralRequest(), BANK_A),
    (
        "bank",
        "AcknowledgeReferral",
        lambda w: pb.AcknowledgeReferralRequest(
            request_id=request_id(), case_id=w.case_id, bank_reference="r" * 10_000
        ),
        BANK_A,
    ),
    (
        "bank",
        "AcknowledgeReferral",
        lambda w: pb.AcknowledgeReferralRequest(
            request_id=request_id(), case_id=w.case_id, bank_reference="B-1"
        ),
        bank("bank-b"),
    ),
    ("bank", "GetFinancingCase", lambda w: pb.GetFinancingCaseRequest(), BANK_A),
    (
        "bank",
        "GetFinancingCase",
        lambda w: pb.GetFinancingCaseRequest(case_id=w.case_id),
        bank("bank-b"),
    ),
    # --- wrong identities
    ("referral", "SubmitReferral", lambda w: _submit(w), BANK_A),
    (
        "admin",
        "RegisterPartner",
        lambda w: ad.RegisterPartnerRequest(),
        (("x-colending-caller", "god"),),
    ),
    ("bank", "AcknowledgeReferral", lambda w: pb.AcknowledgeReferralRequest(), ()),
]


def test_no_bad_request_is_a_server_fault(api) -> None:
    world = World(api)
    faults: list[str] = []
    for number, (service, method, build, metadata) in enumerate(BAD_REQUESTS):
        before = api.row_counts()
        result = api.call(service, method, build(world), metadata)
        label = f"#{number} {service}/{method}"
        if result.code in FAULTS or result.ok:
            faults.append(f"{label}: {result.describe()}")
            continue
        if result.code is grpc.StatusCode.INVALID_ARGUMENT:
            assert result.field_violations, label
            assert all(v.field and v.description for v in result.field_violations), label
        assert result.status is not None, f"{label}: no google.rpc status"
        assert api.row_counts() == before, f"{label} wrote something"
    assert faults == [], "\n".join(faults)
    # The world is as it was: the referral is untouched and still deliverable.
    assert api.get_referral(world.referral_id) == world.referral


# --- known server faults (product bugs) --------------------------------------------------------


@pytest.mark.parametrize("position", ["9" * 30, "²"], ids=["30 digits", "superscript two"])
@pytest.mark.parametrize("rpc", ["ListReferrals", "PullReferrals"])
def test_page_token_with_bad_number_is_invalid(api, rpc: str, position: str) -> None:
    api.register("bank-a")
    if rpc == "ListReferrals":
        result = api.platform(
            "ListReferrals", rs.ListReferralsRequest(page_token=token("referrals", position))
        )
        field = "page_token"
    else:
        result = api.as_bank(
            "bank-a", "PullReferrals", pb.PullReferralsRequest(cursor=token("cursor", position))
        )
        field = "cursor"
    assert result.code is grpc.StatusCode.INVALID_ARGUMENT, result.describe()
    assert result.fields == {field}


NUL = "a\x00b"

NUL_REQUESTS: dict[str, tuple[str, str, Callable[[World], Any], Any]] = {
    "GetReferral referral_id": (
        "referral",
        "GetReferral",
        lambda w: rs.GetReferralRequest(referral_id=NUL),
        None,
    ),
    "SubmitReferral consent_id": (
        "referral",
        "SubmitReferral",
        lambda w: _submit(w, consent_id=NUL),
        None,
    ),
    "ListReferrals merchant filter": (
        "referral",
        "ListReferrals",
        lambda w: rs.ListReferralsRequest(platform_merchant_id=NUL),
        None,
    ),
    "RecordConsent evidence_reference": (
        "referral",
        "RecordConsent",
        lambda w: w.api.consent_request(evidence_reference=NUL),
        None,
    ),
    "RevokeConsent reason": (
        "referral",
        "RevokeConsent",
        lambda w: rs.RevokeConsentRequest(
            request_id=request_id(), consent_id=w.consent, reason=NUL
        ),
        None,
    ),
    "WithdrawReferral reason": (
        "referral",
        "WithdrawReferral",
        lambda w: rs.WithdrawReferralRequest(
            request_id=request_id(), referral_id=w.referral_id, reason=NUL
        ),
        None,
    ),
    "RegisterPartner display_name": (
        "admin",
        "RegisterPartner",
        lambda w: ad.RegisterPartnerRequest(
            request_id=request_id(), partner_id="bank-c", display_name=NUL
        ),
        None,
    ),
    "SuspendPartner reason": (
        "admin",
        "SuspendPartner",
        lambda w: ad.SuspendPartnerRequest(
            request_id=request_id(), partner_id="bank-b", reason=NUL
        ),
        None,
    ),
    "ListPartners page_token": (
        "admin",
        "ListPartners",
        lambda w: ad.ListPartnersRequest(page_token=token("partners", NUL)),
        None,
    ),
    "AcknowledgeReferral bank_reference": (
        "bank",
        "AcknowledgeReferral",
        lambda w: pb.AcknowledgeReferralRequest(
            request_id=request_id(), case_id=w.case_id, bank_reference=NUL
        ),
        BANK_A,
    ),
    "GetFinancingCase case_id": (
        "bank",
        "GetFinancingCase",
        lambda w: pb.GetFinancingCaseRequest(case_id=NUL),
        BANK_A,
    ),
}


@pytest.mark.parametrize(
    ("service", "method", "build", "metadata"), NUL_REQUESTS.values(), ids=NUL_REQUESTS.keys()
)
def test_nul_character_in_a_string_is_not_a_server_fault(
    api, request: pytest.FixtureRequest, service, method, build, metadata
) -> None:
    world = World(api)
    result = api.call(service, method, build(world), metadata)
    assert result.code == grpc.StatusCode.INVALID_ARGUMENT, result.describe()
    assert result.field_violations, result.describe()


@pytest.mark.parametrize("rpc", ["SubmitReferral", "RegisterPartner"])
def test_conversion_and_domain_violations_are_reported_together(api, rpc: str) -> None:
    api.register("bank-a")
    if rpc == "SubmitReferral":
        consent = api.consent()
        profile = merchant()
        profile.qualification.membership_tier = 17  # unknown enum number: a conversion problem
        profile.reputation.dispute_rate_bps = 10001  # a domain rule
        request = api.submit_request(consent.consent_id, profile=profile)
        result = api.platform("SubmitReferral", request)
        expected = {
            "merchant.qualification.membership_tier",
            "merchant.reputation.dispute_rate_bps",
        }
    else:
        usd = common_pb2.Money(currency_code="USD", amount_minor=100)
        request = ad.RegisterPartnerRequest(
            request_id=request_id(),
            partner_id="bank-b",
            display_name="B",
            endpoint="no-port",
            policy=_policy(max_credit_line=usd),
        )
        result = api.admin("RegisterPartner", request)
        expected = {"policy.max_credit_line.currency_code", "endpoint"}
    assert result.code is grpc.StatusCode.INVALID_ARGUMENT, result.describe()
    assert result.fields == expected, result.describe()


def test_update_partner_reports_an_unspecified_tier_next_to_a_bad_mask(api) -> None:
    api.register("bank-a")
    request = _update(
        paths=("policy", "state"),
        policy=_policy(allowed_tiers=[merchant_pb2.MEMBERSHIP_TIER_UNSPECIFIED]),
    )
    api.admin("UpdatePartner", request).expect_invalid(
        "update_mask", "partner.policy.allowed_tiers"
    )
