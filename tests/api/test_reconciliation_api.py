"""Daily reconciliation through the real servicers: a bank's signed statement of a past day with
the platform, hand-computed line by line, verified by the SDK, the same bytes on every request;
the books it closes; who may read it; and its refusals."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from typing import Any

import grpc
import pytest
import test_blacklist_api
from colending.v1 import (
    common_pb2,
    financing_pb2,
    partner_bank_service_pb2,
    reconciliation_pb2,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_blacklist_api import Net
from test_loan_event_api import D0, fen, repayment
from test_loan_event_api import report as loan_event
from test_order_api import order_loan, pending

from colending_core import RECONCILIATION_PAYLOAD_TYPE, key_id, root_from_leaves, sign_envelope
from partners.sdk import (
    BadSignatureError,
    Envelope,
    MalformedEnvelopeError,
    MisaddressedReferralError,
    Signature,
    VerifiedStatement,
    public_key_from_raw,
    verify_reconciliation,
)
from partners.sdk._verify import line_leaf

clock = test_blacklist_api.clock
gateway = test_blacklist_api.gateway
net = test_blacklist_api.net

R = reconciliation_pb2
E = financing_pb2
pb = partner_bank_service_pb2


def pdate(d: date) -> common_pb2.Date:
    return common_pb2.Date(year=d.year, month=d.month, day=d.day)


def ask(net: Net, d: date, *, bank_id: str = "bank-a", caller: str = "bank") -> Any:
    if caller == "bank":
        request = pb.GetReconciliationStatementRequest(business_date=pdate(d))
        return net.api.as_bank(bank_id, "GetReconciliationStatement", request)
    request = pb.GetReconciliationStatementRequest(bank_id=bank_id, business_date=pdate(d))
    return net.api.call(
        "bank", "GetReconciliationStatement", request, [("x-colending-caller", caller)]
    )


def verified(net: Net, result: Any, bank_id: str = "bank-a") -> VerifiedStatement:
    statement = result.expect_ok().response.statement
    keys = {k.keyid: public_key_from_raw(k.public_key) for k in net.api.signing_keys(bank_id)}
    return verify_reconciliation(statement.envelope, trusted_keys=keys, bank_id=bank_id)


def amounts(line: Any) -> dict[str, int]:
    return {
        f.name: getattr(line, f.name).amount_minor
        for f in R.ReconciliationLine.DESCRIPTOR.fields
        if f.message_type is not None and getattr(line, f.name).amount_minor
    }


@pytest.fixture
def disbursed_case(net: Net) -> str:
    """m-1001's loan at bank-a: RMB 300,000 paid out on D0 (60,000 fixed at 500 ppm a day, the
    rest revolving at 600), 70 % the bank's; on D0+5 the bank collects RMB 10,000 principal and
    the 870 yuan of interest of the five days."""
    case_id = net.case_in("m-1001", "disbursed")
    loan_event(net.api, case_id, repayment(1_000_000, 87_000, 5)).expect_ok()
    return case_id


def test_each_day_of_a_loan_between_the_bank_and_the_platform(
    net: Net, disbursed_case: str
) -> None:
    # Day 0: the bank pays out 300,000; the platform owes it its 30 %. A day's interest on
    # 60,000 at 500 ppm plus 240,000 at 600 ppm is 174 yuan.
    paid_out = verified(net, ask(net, D0))
    [line] = paid_out.lines
    assert (line.case_id, line.platform_merchant_id) == (disbursed_case, "m-1001")
    assert amounts(line) == {
        "drawn": 30_000_000,
        "interest_accrued": 17_400,
        "closing_principal": 30_000_000,
        "bank_funded": 21_000_000,
        "platform_funded": 9_000_000,
        "platform_owes_bank": 9_000_000,
    }
    assert paid_out.payload.net_payer == R.NET_PAYER_PLATFORM
    assert paid_out.payload.net_amount.amount_minor == 9_000_000
    assert paid_out.payload.business_date == pdate(D0)

    # Day 3: nothing moves but the interest.
    quiet = verified(net, ask(net, D0 + timedelta(days=3)))
    assert amounts(quiet.lines[0]) == {
        "opening_principal": 30_000_000,
        "interest_accrued": 17_400,
        "closing_principal": 30_000_000,
    }
    assert quiet.payload.net_payer == R.NET_PAYER_NONE

    # Day 5: the bank collects 10,870 yuan and owes the platform its 30 % (3,261 yuan); the
    # day's interest runs on 290,000 (the repayment took the revolving part first): 168 yuan.
    collected = verified(net, ask(net, D0 + timedelta(days=5)))
    assert amounts(collected.lines[0]) == {
        "opening_principal": 30_000_000,
        "interest_accrued": 16_800,
        "principal_collected": 1_000_000,
        "interest_collected": 87_000,
        "collected_by_bank": 1_087_000,
        "bank_share_collected": 760_900,
        "platform_share_collected": 326_100,
        "closing_principal": 29_000_000,
        "bank_owes_platform": 326_100,
    }
    assert collected.payload.net_payer == R.NET_PAYER_BANK
    assert collected.payload.net_amount.amount_minor == 326_100
    assert amounts(collected.payload.totals) == amounts(collected.lines[0])


def test_a_statement_is_made_once_and_closes_the_books(net: Net, disbursed_case: str) -> None:
    day5 = D0 + timedelta(days=5)
    first = ask(net, day5).expect_ok().response.statement
    again = ask(net, day5).expect_ok().response.statement
    assert again == first  # the same id and byte-identical signed envelope
    # The platform reads the same statement.
    platform = ask(net, day5, caller="platform").expect_ok().response.statement
    assert platform == first

    # An event dated on or before a closed day is refused, and nothing is written.
    before = net.api.row_counts()
    late = loan_event(net.api, disbursed_case, repayment(100, 0, 5))
    late.expect_precondition("BOOKS_CLOSED")
    assert "closed by a reconciliation statement" in late.details
    assert net.api.row_counts() == before
    loan_event(net.api, disbursed_case, repayment(100, 0, 6)).expect_ok()


def test_an_empty_day_and_a_bank_without_loans(net: Net) -> None:
    empty = verified(net, ask(net, D0, bank_id="bank-b"), bank_id="bank-b")
    assert empty.lines == []
    assert empty.payload.net_payer == R.NET_PAYER_NONE
    assert empty.payload.lines_root == bytes.fromhex(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # SHA-256 of ""
    )


def test_an_order_settlement_is_collected_by_the_platform(net: Net) -> None:
    loan = order_loan(net)
    funded = loan.funded(pending(net, "O-1"))
    loan.settle(funded.batch.batch_id, "O-1", 10_000).expect_ok()
    net.clock.advance(days=1)
    [line] = verified(net, ask(net, net.clock.today() - timedelta(days=1))).lines
    # Paid out 8,000 by the bank and swept back the same day by the platform, which owes the
    # bank its 70 % of the sweep on top of the platform's 30 % of the payout.
    assert amounts(line) == {
        "drawn": 800_000,
        "principal_collected": 800_000,
        "collected_by_platform": 800_000,
        "bank_share_collected": 560_000,
        "platform_share_collected": 240_000,
        "bank_funded": 560_000,
        "platform_funded": 240_000,
        "platform_owes_bank": 800_000,
    }


def test_who_may_read_a_statement_and_bad_requests(net: Net, disbursed_case: str) -> None:
    ask(net, net.clock.today()).expect_precondition("DAY_NOT_CLOSED")
    ask(net, net.clock.today() + timedelta(days=3)).expect_precondition("DAY_NOT_CLOSED")
    # A bank reads its own statements only.
    request = pb.GetReconciliationStatementRequest(bank_id="bank-a", business_date=pdate(D0))
    net.api.as_bank("bank-b", "GetReconciliationStatement", request).expect(
        grpc.StatusCode.PERMISSION_DENIED
    )
    ask(net, D0, bank_id="", caller="platform").expect_invalid("bank_id")
    ask(net, D0, bank_id="bank-z", caller="admin").expect_not_found("partner", "bank-z")
    bad = pb.GetReconciliationStatementRequest(
        business_date=common_pb2.Date(year=2026, month=2, day=30)
    )
    net.api.as_bank("bank-a", "GetReconciliationStatement", bad).expect_invalid("business_date")
    none = pb.GetReconciliationStatementRequest()
    net.api.as_bank("bank-a", "GetReconciliationStatement", none).expect_invalid("business_date")


def test_the_sdk_refuses_a_changed_statement(net: Net, disbursed_case: str) -> None:
    statement = ask(net, D0).expect_ok().response.statement
    keys = {k.keyid: public_key_from_raw(k.public_key) for k in net.api.signing_keys()}
    good = Envelope(
        payload=statement.envelope.payload,
        payload_type=statement.envelope.payload_type,
        signatures=tuple(Signature(s.keyid, s.sig) for s in statement.envelope.signatures),
    )
    verify_reconciliation(good, trusted_keys=keys, bank_id="bank-a")
    flipped = dataclasses.replace(good, payload=good.payload[:-1] + bytes([good.payload[-1] ^ 1]))
    with pytest.raises(BadSignatureError):
        verify_reconciliation(flipped, trusted_keys=keys, bank_id="bank-a")
    with pytest.raises(MisaddressedReferralError, match="statement is addressed to 'bank-a'"):
        verify_reconciliation(good, trusted_keys=keys, bank_id="bank-b")
    verify_reconciliation(good, trusted_keys=keys, bank_id="bank-a", business_date=D0)
    with pytest.raises(MalformedEnvelopeError, match="not "):
        verify_reconciliation(
            good, trusted_keys=keys, bank_id="bank-a", business_date=D0 + timedelta(days=1)
        )


def test_the_sdk_checks_the_lines_against_the_signed_root_and_totals() -> None:
    """A signer that lies about its lines, root or totals is caught even with a good
    signature: the checks after it do not trust the payload's own summary."""
    key = Ed25519PrivateKey.generate()
    trusted = {key_id(key.public_key()): key.public_key()}
    amounts = {
        "drawn": fen(5),
        "closing_principal": fen(5),
        "platform_funded": fen(5),
        "platform_owes_bank": fen(5),
    }
    line = R.ReconciliationLine(case_id="c", **amounts)
    honest = R.ReconciliationPayload(
        statement_id="recon_x",
        bank_id="bank-a",
        lines=[line],
        totals=R.ReconciliationLine(**amounts),
        net_payer=R.NET_PAYER_PLATFORM,
        net_amount=fen(5),
        lines_root=root_from_leaves([line_leaf(line)]),
    )

    def signed(payload: Any) -> Envelope:
        return sign_envelope(
            payload.SerializeToString(), payload_type=RECONCILIATION_PAYLOAD_TYPE, private_key=key
        )

    verify_reconciliation(signed(honest), trusted_keys=trusted, bank_id="bank-a")
    for broken, message in (
        ({"lines_root": b"\x00" * 32}, "lines_root"),
        ({"totals": R.ReconciliationLine(**{**amounts, "drawn": fen(6)})}, "total"),
        ({"net_payer": R.NET_PAYER_BANK}, "net"),
    ):
        lying = R.ReconciliationPayload()
        lying.CopyFrom(honest)
        for name, value in broken.items():
            if isinstance(value, bytes | int):
                setattr(lying, name, value)
            else:
                getattr(lying, name).CopyFrom(value)
        with pytest.raises(MalformedEnvelopeError, match=message):
            verify_reconciliation(signed(lying), trusted_keys=trusted, bank_id="bank-a")
