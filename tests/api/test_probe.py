from colending.v1 import admin_service_pb2 as ad
from colending.v1 import partner_bank_service_pb2 as pb
from colending.v1 import referral_service_pb2 as rs
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.domain import paging


def test_probe(api):
    a = api.register("bank-a")
    print(a.policy)
    r = api.platform("RecordConsent", api.consent_request(expires_at=Timestamp(seconds=10**13)))
    print("ts big", r.describe())
    r = api.platform(
        "RecordConsent", api.consent_request(expires_at=Timestamp(seconds=10, nanos=-5))
    )
    print("ts nanos", r.describe())
    for tok in [paging.encode_token("referrals", "9" * 30), paging.encode_token("referrals", "²")]:
        r = api.platform("ListReferrals", rs.ListReferralsRequest(page_token=tok))
        print("tok", tok, r.describe())
    for tok in [paging.encode_token("cursor", "9" * 30), paging.encode_token("cursor", "²")]:
        r = api.as_bank("bank-a", "PullReferrals", pb.PullReferralsRequest(cursor=tok))
        print("cursor", r.describe())
    r = api.platform("GetReferral", rs.GetReferralRequest(referral_id="a\x00b"))
    print("nul", r.describe())
    r = api.admin(
        "RegisterPartner",
        ad.RegisterPartnerRequest(request_id="x1", partner_id="bank-z", display_name="a\x00b"),
    )
    print("nul name", r.describe())
    r = api.platform("RecordConsent", api.consent_request(evidence_reference="e\x00"))
    print("nul evidence", r.describe())
    r = api.platform("ListReferrals", rs.ListReferralsRequest(platform_merchant_id="m\x00"))
    print("nul filter", r.describe())
    r = api.admin(
        "ListPartners", ad.ListPartnersRequest(page_token=paging.encode_token("partners", "a\x00"))
    )
    print("nul ptoken", r.describe())
    r = api.stream(
        "bank",
        "StreamReferrals",
        pb.StreamReferralsRequest(),
        (("x-colending-caller", "partner/bank-a"),),
    )
    print("stream", r.describe())
    r = api.admin("GetPortfolioStats", ad.GetPortfolioStatsRequest(), ())
    print("unimpl noauth", r.describe())
