"""PartnerBankService through grpc_testing: pull, acknowledge, cases, keys, and the RPCs still
to be built."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from colending.v1 import (
    admin_service_pb2,
    financing_pb2,
    partner_bank_service_pb2,
    referral_service_pb2,
)
from testkit import bank, request_id

from partners.sdk import key_id, public_key_from_raw

pb = partner_bank_service_pb2
FS = financing_pb2


def pull_result(api, bank_id: str, **fields):
    return api.as_bank(bank_id, "PullReferrals", pb.PullReferralsRequest(**fields))


# --- PullReferrals -----------------------------------------------------------------------------


def test_pull_returns_only_the_callers_referrals_and_marks_them_delivered(two_banks) -> None:
    api = two_banks
    both = api.referral_for("m-1", ["bank-a", "bank-b"])
    only_b = api.referral_for("m-2", ["bank-b"])

    page = api.pull("bank-a")
    [item] = page.referrals
    case_a = next(d for d in both.deliveries if d.bank_id == "bank-a")
    assert (item.referral_id, item.case_id) == (both.referral_id, case_a.case_id)
    assert item.envelope == case_a.envelope
    assert item.cursor == page.next_cursor
    assert api.verified_payload(item.envelope, "bank-a").bank_id == "bank-a"

    states = {d.bank_id: d.state for d in api.get_referral(both.referral_id).deliveries}
    assert states == {"bank-a": FS.FINANCING_STATE_DELIVERED, "bank-b": FS.FINANCING_STATE_REFERRED}
    delivered = next(
        d for d in api.get_referral(both.referral_id).deliveries if d.bank_id == "bank-a"
    )
    assert delivered.HasField("delivered_at")

    page_b = api.pull("bank-b")
    assert [r.referral_id for r in page_b.referrals] == [both.referral_id, only_b.referral_id]
    for item in page_b.referrals:
        assert api.verified_payload(item.envelope, "bank-b").bank_id == "bank-b"
    assert api.get_referral(only_b.referral_id).deliveries[0].state == (
        FS.FINANCING_STATE_DELIVERED
    )


def test_pull_pages_with_the_cursor(two_banks) -> None:
    api = two_banks
    made = [api.referral_for(f"m-{i}").deliveries[0].case_id for i in range(3)]
    seen: list[str] = []
    cursor = ""
    for _ in range(3):
        page = api.pull("bank-a", cursor=cursor, page_size=1)
        assert len(page.referrals) == 1
        seen.append(page.referrals[0].case_id)
        assert page.next_cursor
        assert page.next_cursor != cursor
        cursor = page.next_cursor
    assert seen == made  # oldest first
    end = api.pull("bank-a", cursor=cursor, page_size=1)
    assert list(end.referrals) == []
    assert end.next_cursor == cursor  # nothing new: the caller keeps its place

    # Delivered but unacknowledged referrals are offered again from the start.
    again = api.pull("bank-a")
    assert [r.case_id for r in again.referrals] == made
    # Acknowledged ones are not.
    api.acknowledge("bank-a", made[1]).expect_ok()
    assert [r.case_id for r in api.pull("bank-a").referrals] == [made[0], made[2]]

    # A referral made later shows up after the saved cursor.
    later = api.referral_for("m-9").deliveries[0].case_id
    assert [r.case_id for r in api.pull("bank-a", cursor=cursor).referrals] == [later]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": "cmVmZXJyYWxzOjE"}, "cursor"),  # a ListReferrals page token
        ({"cursor": "Y3Vyc29yOi0x"}, "cursor"),  # cursor:-1
        ({"cursor": "Y3Vyc29yOg"}, "cursor"),  # cursor: (no position)
        ({"page_size": 501}, "page_size"),
        ({"page_size": -1}, "page_size"),
    ],
)
def test_pull_rejects_a_bad_cursor_or_page_size(two_banks, fields, field: str) -> None:
    api = two_banks
    referral = api.referral_for()
    pull_result(api, "bank-a", **fields).expect_invalid(field)
    # Nothing was marked delivered.
    assert api.get_referral(referral.referral_id).deliveries[0].state == (
        FS.FINANCING_STATE_REFERRED
    )


def test_revoked_consent_hides_the_referral_from_pull(two_banks) -> None:
    api = two_banks
    consent = api.consent()
    api.submit(consent.consent_id)
    api.revoke(consent.consent_id)
    assert list(api.pull("bank-a").referrals) == []


def test_suspended_bank_cannot_pull(two_banks) -> None:
    api = two_banks
    referral = api.referral_for()
    api.suspend("bank-a")
    result = pull_result(api, "bank-a").expect_precondition("PARTNER_SUSPENDED")
    assert result.precondition_violations[0].subject == "partners/bank-a"
    assert api.get_referral(referral.referral_id).deliveries[0].state == (
        FS.FINANCING_STATE_REFERRED
    )


def test_unregistered_bank_pull_is_permission_denied(two_banks) -> None:
    result = pull_result(two_banks, "bank-zzz").expect(grpc.StatusCode.PERMISSION_DENIED)
    assert "not a registered partner" in result.details


# --- AcknowledgeReferral -----------------------------------------------------------------------


def test_acknowledge_referral(two_banks) -> None:
    api = two_banks
    referral = api.referral_for()
    [item] = api.pull("bank-a").referrals
    request = pb.AcknowledgeReferralRequest(
        request_id=request_id(), case_id=item.case_id, bank_reference=" A-2026-0001 "
    )
    case = api.as_bank("bank-a", "AcknowledgeReferral", request).expect_ok().response
    case = case.financing_case
    assert case.case_id == item.case_id
    assert case.referral_id == referral.referral_id
    assert case.bank_id == "bank-a"
    assert case.platform_merchant_id == "m-1001"
    assert case.state == FS.FINANCING_STATE_ACKNOWLEDGED
    assert [(e.from_state, e.to_state) for e in case.history] == [
        (FS.FINANCING_STATE_UNSPECIFIED, FS.FINANCING_STATE_REFERRED),
        (FS.FINANCING_STATE_REFERRED, FS.FINANCING_STATE_DELIVERED),
        (FS.FINANCING_STATE_DELIVERED, FS.FINANCING_STATE_ACKNOWLEDGED),
    ]
    assert case.history[-1].actor == "partner/bank-a"
    assert case.history[-1].request_id == request.request_id

    delivery = api.get_referral(referral.referral_id).deliveries[0]
    assert delivery.state == FS.FINANCING_STATE_ACKNOWLEDGED
    assert delivery.bank_reference == "A-2026-0001"
    assert delivery.HasField("acknowledged_at")

    # The same request again: the same answer.
    replay = api.as_bank("bank-a", "AcknowledgeReferral", request).expect_ok().response
    assert replay.financing_case == case
    assert api.row_counts()["case_events"] == 3


def test_acknowledge_without_pulling_first(two_banks) -> None:
    api = two_banks
    referral = api.referral_for()
    case_id = referral.deliveries[0].case_id
    case = api.acknowledge("bank-a", case_id).expect_ok().response.financing_case
    assert case.state == FS.FINANCING_STATE_ACKNOWLEDGED
    delivery = api.get_referral(referral.referral_id).deliveries[0]
    assert delivery.HasField("delivered_at")


def test_acknowledge_another_banks_case_is_not_found(two_banks) -> None:
    api = two_banks
    referral = api.referral_for(bank_ids=["bank-a"])
    case_id = referral.deliveries[0].case_id
    api.acknowledge("bank-b", case_id).expect_not_found("financing case", case_id)
    assert api.get_referral(referral.referral_id).deliveries[0].state == (
        FS.FINANCING_STATE_REFERRED
    )


def test_acknowledge_unknown_case_is_not_found(two_banks) -> None:
    two_banks.acknowledge("bank-a", "case-nope").expect_not_found("financing case", "case-nope")


def test_acknowledge_twice_names_the_current_state(two_banks) -> None:
    api = two_banks
    case_id = api.referral_for().deliveries[0].case_id
    api.acknowledge("bank-a", case_id, "REF-1").expect_ok()
    events = api.row_counts()["case_events"]
    result = api.acknowledge("bank-a", case_id, "REF-1").expect_precondition("ILLEGAL_TRANSITION")
    assert "ACKNOWLEDGED" in result.details
    assert result.precondition_violations[0].subject == f"financingCases/{case_id}"
    assert api.row_counts()["case_events"] == events


def test_acknowledge_same_request_id_other_content(two_banks) -> None:
    api = two_banks
    case_id = api.referral_for().deliveries[0].case_id
    request = pb.AcknowledgeReferralRequest(
        request_id=request_id(), case_id=case_id, bank_reference="REF-1"
    )
    api.as_bank("bank-a", "AcknowledgeReferral", request).expect_ok()
    request.bank_reference = "REF-2"
    api.as_bank("bank-a", "AcknowledgeReferral", request).expect_already_exists(
        "request", request.request_id
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"bank_reference": ""}, {"bank_reference"}),
        ({"bank_reference": "   "}, {"bank_reference"}),
        ({"bank_reference": "r" * 129}, {"bank_reference"}),
        ({"case_id": ""}, {"case_id"}),
        ({"request_id": ""}, {"request_id"}),
        ({"case_id": "", "bank_reference": ""}, {"case_id", "bank_reference"}),
    ],
)
def test_acknowledge_rejects_bad_input(two_banks, fields, expected) -> None:
    api = two_banks
    referral = api.referral_for()
    values = {
        "request_id": request_id(),
        "case_id": referral.deliveries[0].case_id,
        "bank_reference": "REF-1",
    } | fields
    result = api.as_bank("bank-a", "AcknowledgeReferral", pb.AcknowledgeReferralRequest(**values))
    result.expect_invalid(*expected)
    assert api.get_referral(referral.referral_id).deliveries[0].state == (
        FS.FINANCING_STATE_REFERRED
    )


def test_acknowledge_after_consent_revoked_is_refused(two_banks) -> None:
    api = two_banks
    consent = api.consent()
    referral = api.submit(consent.consent_id)
    api.revoke(consent.consent_id)
    api.acknowledge("bank-a", referral.deliveries[0].case_id).expect_precondition(
        "CONSENT_NOT_LIVE"
    )


def test_suspended_bank_cannot_acknowledge(two_banks) -> None:
    api = two_banks
    case_id = api.referral_for().deliveries[0].case_id
    api.suspend("bank-a")
    api.acknowledge("bank-a", case_id).expect_precondition("PARTNER_SUSPENDED")


# --- GetFinancingCase --------------------------------------------------------------------------


def test_get_financing_case(two_banks) -> None:
    api = two_banks
    referral = api.referral_for(bank_ids=["bank-a", "bank-b"])
    case_a = next(d.case_id for d in referral.deliveries if d.bank_id == "bank-a")
    request = pb.GetFinancingCaseRequest(case_id=case_a)
    case = api.as_bank("bank-a", "GetFinancingCase", request).expect_ok().response.financing_case
    assert (case.case_id, case.bank_id, case.state) == (
        case_a,
        "bank-a",
        FS.FINANCING_STATE_REFERRED,
    )
    assert [e.to_state for e in case.history] == [FS.FINANCING_STATE_REFERRED]

    api.as_bank("bank-b", "GetFinancingCase", request).expect_not_found("financing case", case_a)
    unknown = pb.GetFinancingCaseRequest(case_id="case-nope")
    api.as_bank("bank-a", "GetFinancingCase", unknown).expect_not_found(
        "financing case", "case-nope"
    )
    api.as_bank("bank-a", "GetFinancingCase", pb.GetFinancingCaseRequest()).expect_invalid(
        "case_id"
    )


# --- GetSigningKeys ----------------------------------------------------------------------------


def test_signing_keys_match_their_key_ids(two_banks) -> None:
    api = two_banks
    rotate = admin_service_pb2.RotateSigningKeyRequest(request_id=request_id())
    api.admin("RotateSigningKey", rotate).expect_ok()
    keys = api.signing_keys()
    assert len(keys) == 2
    for key in keys:
        assert key.algorithm == "ed25519"
        assert len(key.public_key) == 32
        assert key_id(public_key_from_raw(key.public_key)) == key.keyid
        assert key.HasField("created_at")
    assert [k.state for k in keys] == [
        pb.SIGNING_KEY_STATE_ACTIVE,
        pb.SIGNING_KEY_STATE_RETIRED,
    ]
    # A referral signed now names the active key and verifies against the published set.
    referral = api.referral_for()
    envelope = referral.deliveries[0].envelope
    assert [s.keyid for s in envelope.signatures] == [keys[0].keyid]
    assert api.verified_payload(envelope).referral_id == referral.referral_id


# --- ListFinancingCases --------------------------------------------------------------------------


def test_list_financing_cases_pages_filters_and_stays_within_the_bank(two_banks) -> None:
    api = two_banks
    first = api.referral_for("m-1", bank_ids=("bank-a", "bank-b"))
    second = api.referral_for("m-2", bank_ids=("bank-a",))
    api.referral_for("m-3", bank_ids=("bank-b",))

    def listing(bank_id: str, **fields) -> Any:
        request = pb.ListFinancingCasesRequest(**fields)
        return api.as_bank(bank_id, "ListFinancingCases", request).expect_ok().response

    page = listing("bank-a", page_size=1)
    assert [c.referral_id for c in page.financing_cases] == [first.referral_id]
    assert page.next_page_token
    page = listing("bank-a", page_size=1, page_token=page.next_page_token)
    assert [c.referral_id for c in page.financing_cases] == [second.referral_id]
    assert page.next_page_token == ""
    assert all(c.bank_id == "bank-a" for c in page.financing_cases)

    assert [c.platform_merchant_id for c in listing("bank-b").financing_cases] == ["m-1", "m-3"]
    assert [
        c.platform_merchant_id
        for c in listing("bank-a", platform_merchant_id="m-2").financing_cases
    ] == ["m-2"]
    [case] = listing("bank-a", platform_merchant_id="m-1").financing_cases
    api.acknowledge("bank-a", case.case_id).expect_ok()
    acknowledged = listing("bank-a", state=FS.FINANCING_STATE_ACKNOWLEDGED).financing_cases
    assert [c.case_id for c in acknowledged] == [case.case_id]


def test_list_financing_cases_bad_input(two_banks) -> None:
    for fields, field in (
        ({"page_size": 501}, "page_size"),
        ({"page_token": "bm9wZQ"}, "page_token"),
        ({"state": 99}, "state"),
    ):
        request = pb.ListFinancingCasesRequest(**fields)
        two_banks.as_bank("bank-a", "ListFinancingCases", request).expect_invalid(field)


# --- streaming: refusals end the stream with a status (the live part runs over real sockets) ---


def test_stream_referrals_refuses_before_streaming(two_banks) -> None:
    two_banks.referral_for()
    bad_cursor = two_banks.stream(
        "bank", "StreamReferrals", pb.StreamReferralsRequest(cursor="bm9wZQ"), bank("bank-a")
    )
    assert bad_cursor.code is grpc.StatusCode.INVALID_ARGUMENT, bad_cursor.describe()
    assert bad_cursor.responses == []
    assert "cursor" in bad_cursor.details
    platform = two_banks.stream(
        "bank",
        "StreamReferrals",
        pb.StreamReferralsRequest(),
        (("x-colending-caller", "platform"),),
    )
    assert platform.code is grpc.StatusCode.PERMISSION_DENIED, platform.describe()
    unknown = two_banks.stream(
        "bank", "StreamReferrals", pb.StreamReferralsRequest(), bank("bank-z")
    )
    assert unknown.code is grpc.StatusCode.PERMISSION_DENIED, unknown.describe()


def test_withdrawn_referral_is_not_pulled(two_banks) -> None:
    api = two_banks
    referral = api.referral_for()
    request = referral_service_pb2.WithdrawReferralRequest(
        request_id=request_id(), referral_id=referral.referral_id, reason="withdrawn"
    )
    api.platform("WithdrawReferral", request).expect_ok()
    assert list(api.pull("bank-a").referrals) == []
