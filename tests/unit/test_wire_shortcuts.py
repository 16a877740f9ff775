"""The two shortcuts on every RPC's path give the answers of the slow ways they replace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from colending.v1 import referral_service_pb2 as rs
from google.protobuf.timestamp_pb2 import Timestamp
from testkit import merchant

from gateway.api._handler import nul_problems
from gateway.api.convert import timestamp


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 7, 8, 3, 2, 123456, tzinfo=UTC),
        datetime(1960, 5, 3, 1, 2, 3, 999999, tzinfo=UTC),  # before the epoch: nanos stay >= 0
        datetime(2026, 12, 7, 16, 3, 2, tzinfo=timezone(timedelta(hours=8))),
        datetime(2026, 1, 1, 12, 0),  # naive: local time
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_timestamp_is_what_from_datetime_makes(value: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(value.astimezone(UTC))
    assert timestamp(value) == expected


def _request() -> rs.SubmitReferralRequest:
    profile = merchant(merchant_id="m-1")
    profile.reputation.monthly_gmv_fen[:] = [0, 0, 5]  # zero bytes in the wire form, no NUL
    return rs.SubmitReferralRequest(
        request_id="req-1", merchant=profile, consent_id="cons-1", bank_ids=["bank-a"]
    )


def test_zero_bytes_that_are_not_nul_characters_are_not_reported() -> None:
    request = _request()
    assert b"\x00" in request.SerializeToString()
    assert nul_problems(request) == []


def test_a_nul_character_is_found_at_any_depth() -> None:
    request = _request()
    request.merchant.identity.legal_name = "Shop\x00Co"
    request.bank_ids.append("bank-\x00")
    assert {(v.field, v.description) for v in nul_problems(request)} == {
        ("merchant.identity.legal_name", "must not contain NUL (U+0000)"),
        ("bank_ids[1]", "must not contain NUL (U+0000)"),
    }


def test_a_nul_character_that_is_the_only_zero_byte_is_found() -> None:
    request = rs.SubmitReferralRequest(request_id="a\x00b", consent_id="cons-1")
    assert [v.field for v in nul_problems(request)] == ["request_id"]
