"""RecordConsent and RevokeConsent through grpc_testing."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from colending.v1 import consent_pb2, referral_service_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from testkit import in_days, request_id

rs = referral_service_pb2
IDENTITY = consent_pb2.DATA_SCOPE_IDENTITY
QUALIFICATION = consent_pb2.DATA_SCOPE_QUALIFICATION


def test_record_consent(two_banks) -> None:
    api = two_banks
    request = api.consent_request(bank_ids=["bank-a", "bank-b"])
    consent = api.platform("RecordConsent", request).expect_ok().response.consent
    assert consent.consent_id
    assert consent.state == consent_pb2.CONSENT_STATE_ACTIVE
    assert consent.platform_merchant_id == "m-1001"
    assert list(consent.bank_ids) == ["bank-a", "bank-b"]
    assert sorted(consent.data_scopes) == sorted(request.data_scopes)
    assert consent.purpose == consent_pb2.CONSENT_PURPOSE_CREDIT_REFERRAL
    assert consent.expires_at == request.expires_at
    assert consent.HasField("granted_at")
    assert not consent.HasField("revoked_at")
    assert consent.evidence_reference == "consent-form-sha256:ab12"
    assert api.row_counts()["consents"] == 1


def test_record_consent_with_identity_only(two_banks) -> None:
    consent = two_banks.consent(data_scopes=[IDENTITY])
    assert list(consent.data_scopes) == [IDENTITY]


BAD_CONSENTS = {
    "no scopes": ({"data_scopes": []}, {"data_scopes"}),
    "identity missing": ({"data_scopes": [QUALIFICATION]}, {"data_scopes"}),
    "unspecified scope": ({"data_scopes": [IDENTITY, 0]}, {"data_scopes"}),
    "unknown scope": ({"data_scopes": [IDENTITY, 99]}, {"data_scopes[1]"}),
    "no banks": ({"bank_ids": []}, {"bank_ids"}),
    "duplicate bank": ({"bank_ids": ["bank-a", "bank-a"]}, {"bank_ids"}),
    "bad bank id": ({"bank_ids": ["bank-a", "Bank B"]}, {"bank_ids[1]"}),
    "too many banks": ({"bank_ids": [f"bank-{i:02d}" for i in range(21)]}, {"bank_ids"}),
    "no purpose": ({"purpose": consent_pb2.CONSENT_PURPOSE_UNSPECIFIED}, {"purpose"}),
    "unknown purpose": ({"purpose": 42}, {"purpose"}),
    "expiry missing": ({"expires_at": None}, {"expires_at"}),
    "expiry in the past": ("past", {"expires_at"}),
    "expiry beyond 3 years": ("far", {"expires_at"}),
    "no evidence": ({"evidence_reference": ""}, {"evidence_reference"}),
    "blank evidence": ({"evidence_reference": "  "}, {"evidence_reference"}),
    "evidence too long": ({"evidence_reference": "e" * 257}, {"evidence_reference"}),
    "no merchant": ({"platform_merchant_id": ""}, {"platform_merchant_id"}),
    "bad merchant id": ({"platform_merchant_id": "m 1001"}, {"platform_merchant_id"}),
    "no request id": ({"request_id": ""}, {"request_id"}),
}


@pytest.mark.parametrize(("fields", "expected"), BAD_CONSENTS.values(), ids=BAD_CONSENTS.keys())
def test_record_consent_rejects_bad_input_and_writes_nothing(
    two_banks, fields, expected: set[str]
) -> None:
    api = two_banks
    if fields == "past":
        fields = {"expires_at": api.ts(in_days(-1))}
    elif fields == "far":
        fields = {"expires_at": api.ts(in_days(3 * 365) + timedelta(days=2))}
    before = api.row_counts()
    request = api.consent_request(**fields)
    api.platform("RecordConsent", request).expect_invalid(*expected)
    assert api.row_counts() == before


def test_record_consent_just_under_three_years_is_accepted(two_banks) -> None:
    consent = two_banks.consent(expires_at=two_banks.ts(in_days(3 * 365 - 1)))
    assert consent.state == consent_pb2.CONSENT_STATE_ACTIVE


def test_record_consent_for_an_unknown_bank_is_not_found(two_banks) -> None:
    api = two_banks
    before = api.row_counts()
    request = api.consent_request(bank_ids=["bank-a", "bank-x"])
    api.platform("RecordConsent", request).expect_not_found("partner", "bank-x")
    assert api.row_counts() == before


def test_record_consent_replay_and_conflict(two_banks) -> None:
    api = two_banks
    request = api.consent_request()
    first = api.platform("RecordConsent", request).expect_ok().response
    again = api.platform("RecordConsent", request).expect_ok().response
    assert again.consent.consent_id == first.consent.consent_id
    assert again == first

    other = api.consent_request(request_id=request.request_id, bank_ids=["bank-b"])
    api.platform("RecordConsent", other).expect_already_exists("request", request.request_id)
    assert api.row_counts()["consents"] == 1


def test_revoke_consent(two_banks) -> None:
    api = two_banks
    consent = api.consent()
    request = rs.RevokeConsentRequest(
        request_id=request_id(), consent_id=consent.consent_id, reason="merchant asked"
    )
    revoked = api.platform("RevokeConsent", request).expect_ok().response.consent
    assert revoked.consent_id == consent.consent_id
    assert revoked.state == consent_pb2.CONSENT_STATE_REVOKED
    assert revoked.HasField("revoked_at")
    assert revoked.revocation_reason == "merchant asked"
    # The same request again is the same answer, not an error.
    assert api.platform("RevokeConsent", request).expect_ok().response.consent == revoked


def test_revoke_consent_twice_is_failed_precondition(two_banks) -> None:
    api = two_banks
    consent = api.consent()
    api.revoke(consent.consent_id)
    again = rs.RevokeConsentRequest(
        request_id=request_id(), consent_id=consent.consent_id, reason="again"
    )
    result = api.platform("RevokeConsent", again).expect_precondition("CONSENT_ALREADY_REVOKED")
    assert result.precondition_violations[0].subject == f"consents/{consent.consent_id}"


def test_revoke_consent_same_request_id_other_content(two_banks) -> None:
    api = two_banks
    consent = api.consent()
    request = rs.RevokeConsentRequest(
        request_id=request_id(), consent_id=consent.consent_id, reason="one"
    )
    api.platform("RevokeConsent", request).expect_ok()
    other = rs.RevokeConsentRequest(
        request_id=request.request_id, consent_id=consent.consent_id, reason="two"
    )
    api.platform("RevokeConsent", other).expect_already_exists("request", request.request_id)


def test_revoke_unknown_consent_is_not_found(two_banks) -> None:
    request = rs.RevokeConsentRequest(request_id=request_id(), consent_id="cns-nope", reason="r")
    two_banks.platform("RevokeConsent", request).expect_not_found("consent", "cns-nope")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"reason": ""}, {"reason"}),
        ({"reason": "r" * 501}, {"reason"}),
        ({"consent_id": ""}, {"consent_id"}),
        ({"request_id": ""}, {"request_id"}),
    ],
)
def test_revoke_consent_rejects_bad_input(two_banks, fields, expected) -> None:
    api = two_banks
    consent = api.consent()
    values = {"request_id": request_id(), "consent_id": consent.consent_id, "reason": "r"}
    request = rs.RevokeConsentRequest(**(values | fields))
    api.platform("RevokeConsent", request).expect_invalid(*expected)
    # Still live: a referral can use it.
    api.submit(consent.consent_id)


@pytest.mark.parametrize(
    "stamp",
    [Timestamp(seconds=10**13), Timestamp(seconds=0, nanos=-5), Timestamp(seconds=-(10**13))],
    ids=["year 300000", "negative nanos", "before year 1"],
)
def test_record_consent_out_of_range_timestamp_is_invalid(two_banks, stamp) -> None:
    result = two_banks.platform("RecordConsent", two_banks.consent_request(expires_at=stamp))
    assert result.code is grpc.StatusCode.INVALID_ARGUMENT, result.describe()
    assert result.fields == {"expires_at"}
