"""Who may call what: UNAUTHENTICATED without a usable identity, PERMISSION_DENIED for the wrong
role, and in both cases nothing written."""

from __future__ import annotations

import grpc
import pytest
from colending.v1 import admin_service_pb2, partner_bank_service_pb2, referral_service_pb2
from testkit import ADMIN, CALLER_KEY, PLATFORM, bank, request_id

ad = admin_service_pb2
pb = partner_bank_service_pb2
rs = referral_service_pb2


def register(partner_id: str = "bank-a") -> ad.RegisterPartnerRequest:
    return ad.RegisterPartnerRequest(
        request_id=request_id(), partner_id=partner_id, display_name="Bank A"
    )


# One implemented RPC per service, each a write where there is one.
CALLS = {
    "admin": ("admin", "RegisterPartner", register()),
    "referral": ("referral", "RecordConsent", None),  # built per test (needs a partner)
    "bank": ("bank", "PullReferrals", pb.PullReferralsRequest()),
}


def _request(api, service: str):
    name, method, request = CALLS[service]
    if request is None:
        request = api.consent_request()
    return name, method, request


@pytest.mark.parametrize("service", CALLS)
@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("x-other-header", "platform"),),
        ((CALLER_KEY, ""),),
        ((CALLER_KEY, "root"),),
        ((CALLER_KEY, "Platform"),),
        ((CALLER_KEY, "partner/"),),
        ((CALLER_KEY, "partner"),),
        ((CALLER_KEY, "partner/Bank_A"),),
        ((CALLER_KEY, "bank/bank-a"),),
        ((CALLER_KEY, "admin "),),
        ((CALLER_KEY, "platform"), (CALLER_KEY, "admin")),
    ],
    ids=[
        "none",
        "other header",
        "empty",
        "root",
        "wrong case",
        "partner without id",
        "bare partner",
        "bad partner id",
        "unknown kind",
        "trailing space",
        "sent twice",
    ],
)
def test_no_usable_identity_is_unauthenticated(api, service: str, metadata) -> None:
    api.register("bank-a")
    before = api.row_counts()
    name, method, request = _request(api, service)
    result = api.call(name, method, request, metadata)
    result.expect(grpc.StatusCode.UNAUTHENTICATED)
    assert CALLER_KEY in result.details
    assert api.row_counts() == before


@pytest.mark.parametrize(
    ("service", "metadata"),
    [
        ("referral", bank("bank-a")),
        ("referral", ADMIN),
        ("admin", bank("bank-a")),
        ("admin", PLATFORM),
        ("bank", PLATFORM),
        ("bank", ADMIN),
    ],
    ids=[
        "partner -> ReferralService",
        "admin -> ReferralService",
        "partner -> AdminService",
        "platform -> AdminService",
        "platform -> PartnerBankService",
        "admin -> PartnerBankService",
    ],
)
def test_wrong_role_is_permission_denied(api, service: str, metadata) -> None:
    api.register("bank-a")
    before = api.row_counts()
    name, method, request = _request(api, service)
    result = api.call(name, method, request, metadata).expect(grpc.StatusCode.PERMISSION_DENIED)
    assert "may not call" in result.details
    assert api.row_counts() == before


@pytest.mark.parametrize(
    ("service", "method", "request_message"),
    [
        ("referral", "GetReferral", rs.GetReferralRequest(referral_id="ref-1")),
        ("referral", "ListReferrals", rs.ListReferralsRequest()),
        ("referral", "SubmitReferral", rs.SubmitReferralRequest(request_id="r")),
        ("referral", "WithdrawReferral", rs.WithdrawReferralRequest(request_id="r")),
        ("referral", "RevokeConsent", rs.RevokeConsentRequest(request_id="r")),
        ("admin", "ListPartners", ad.ListPartnersRequest()),
        ("admin", "UpdatePartner", ad.UpdatePartnerRequest(request_id="r")),
        ("admin", "SuspendPartner", ad.SuspendPartnerRequest(request_id="r")),
        ("admin", "RotateSigningKey", ad.RotateSigningKeyRequest(request_id="r")),
    ],
)
def test_a_bank_is_denied_every_platform_and_admin_rpc(api, service, method, request_message):
    # Authorization comes before validation: a denied caller learns nothing about the input.
    api.call(service, method, request_message, bank("bank-a")).expect(
        grpc.StatusCode.PERMISSION_DENIED
    )


@pytest.mark.parametrize(
    ("method", "request_message"),
    [
        ("AcknowledgeReferral", pb.AcknowledgeReferralRequest(request_id="r")),
        ("SubmitDecision", pb.SubmitDecisionRequest(request_id="r")),
        ("GetSigningKeys", pb.GetSigningKeysRequest()),
    ],
)
def test_the_platform_is_denied_bank_rpcs(api, method, request_message) -> None:
    api.call("bank", method, request_message, PLATFORM).expect(grpc.StatusCode.PERMISSION_DENIED)


def test_rotation_by_a_bank_does_not_rotate(api) -> None:
    api.register("bank-a")
    request = ad.RotateSigningKeyRequest(request_id=request_id())
    api.call("admin", "RotateSigningKey", request, bank("bank-a")).expect(
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert len(api.signing_keys()) == 1


def test_each_role_reaches_its_own_service(api) -> None:
    api.register("bank-a")
    api.call("admin", "ListPartners", ad.ListPartnersRequest(), ADMIN).expect_ok()
    api.call("referral", "ListReferrals", rs.ListReferralsRequest(), PLATFORM).expect_ok()
    api.call("bank", "GetSigningKeys", pb.GetSigningKeysRequest(), bank("bank-a")).expect_ok()
