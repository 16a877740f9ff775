"""Disputes of a statement line through the real servicers: a bank files one on a line of its
signed statement, the platform or the operator resolves it, the signed statement stays as it
was; every refusal names its rule and writes nothing."""

from __future__ import annotations

from typing import Any

import grpc
import test_blacklist_api
from colending.v1 import partner_bank_service_pb2, reconciliation_pb2
from test_blacklist_api import Net
from test_loan_event_api import D0
from test_reconciliation_api import ask, disbursed_case, pdate

clock = test_blacklist_api.clock
gateway = test_blacklist_api.gateway
net = test_blacklist_api.net
disbursed_case = disbursed_case  # the fixture, re-exported for this module
R = reconciliation_pb2
pb = partner_bank_service_pb2
CALLER = "x-colending-caller"


def file(net: Net, case_id: str, *, bank_id: str = "bank-a", **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "request_id": f"dispute-{case_id}-{overrides.get('request_id', '1')}",
        "business_date": pdate(D0),
        "case_id": case_id,
        "disputed_fields": ["interest_accrued"],
        "reason": "our ledger accrued 1 fen less interest on this day",
    } | overrides
    request = pb.FileReconciliationDisputeRequest(**fields)
    return net.api.as_bank(bank_id, "FileReconciliationDispute", request)


def resolve(net: Net, dispute_id: str, *, caller: str = "platform", **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "request_id": f"resolve-{dispute_id}",
        "dispute_id": dispute_id,
        "outcome": R.DISPUTE_STATE_REJECTED,
        "note": "the line is the ledger's own arithmetic; rounding is half up per day",
    } | overrides
    request = pb.ResolveReconciliationDisputeRequest(**fields)
    return net.api.call("bank", "ResolveReconciliationDispute", request, [(CALLER, caller)])


def listed(net: Net, *, caller: str, bank_id: str = "", state: int = 0) -> list[Any]:
    request = pb.ListReconciliationDisputesRequest(bank_id=bank_id, state=state)
    if caller == "bank-a" or caller == "bank-b":
        result = net.api.as_bank(caller, "ListReconciliationDisputes", request)
    else:
        result = net.api.call("bank", "ListReconciliationDisputes", request, [(CALLER, caller)])
    return list(result.expect_ok().response.disputes)


def test_a_bank_disputes_a_line_and_the_platform_resolves_it(net: Net, disbursed_case: str) -> None:
    statement = ask(net, D0).expect_ok().response.statement
    filed = file(net, disbursed_case).expect_ok().response.dispute
    assert filed.state == R.DISPUTE_STATE_OPEN
    assert (filed.statement_id, filed.case_id, filed.bank_id) == (
        statement.statement_id,
        disbursed_case,
        "bank-a",
    )
    assert list(filed.disputed_fields) == ["interest_accrued"]
    assert filed.filed_by == "partner/bank-a"
    # A retry returns the same dispute; a second one on the open line is refused.
    assert file(net, disbursed_case).expect_ok().response.dispute == filed
    before = net.api.row_counts()
    file(net, disbursed_case, request_id="2").expect_precondition("DISPUTE_OPEN")
    assert net.api.row_counts() == before

    # The bank sees its own; another bank sees none and may not name bank-a.
    assert [d.dispute_id for d in listed(net, caller="bank-a")] == [filed.dispute_id]
    assert listed(net, caller="bank-b") == []
    request = pb.ListReconciliationDisputesRequest(bank_id="bank-a")
    net.api.as_bank("bank-b", "ListReconciliationDisputes", request).expect(
        grpc.StatusCode.PERMISSION_DENIED
    )
    # A bank does not resolve its own dispute.
    bank_resolves = pb.ResolveReconciliationDisputeRequest(
        request_id="r", dispute_id=filed.dispute_id, outcome=R.DISPUTE_STATE_UPHELD, note="ok"
    )
    net.api.as_bank("bank-a", "ResolveReconciliationDispute", bank_resolves).expect(
        grpc.StatusCode.PERMISSION_DENIED
    )

    resolved = resolve(net, filed.dispute_id).expect_ok().response.dispute
    assert resolved.state == R.DISPUTE_STATE_REJECTED
    assert resolved.resolved_by == "platform"
    assert resolved.resolution_note.startswith("the line is")
    assert resolved.HasField("resolved_at")
    before = net.api.row_counts()
    again = resolve(net, filed.dispute_id, caller="admin", request_id="other")
    again.expect_precondition("DISPUTE_RESOLVED")
    assert net.api.row_counts() == before
    assert [d.state for d in listed(net, caller="admin", state=R.DISPUTE_STATE_REJECTED)] == [
        R.DISPUTE_STATE_REJECTED
    ]
    assert listed(net, caller="platform", state=R.DISPUTE_STATE_OPEN) == []
    # Resolved, the line may be disputed again; the statement's bytes never changed.
    upheld_one = file(net, disbursed_case, request_id="3").expect_ok().response.dispute
    upheld = resolve(net, upheld_one.dispute_id, caller="admin", outcome=R.DISPUTE_STATE_UPHELD)
    assert upheld.expect_ok().response.dispute.resolved_by == "admin"
    assert ask(net, D0).expect_ok().response.statement == statement


def test_disputes_refused(net: Net, disbursed_case: str) -> None:
    before = net.api.row_counts()
    # No statement of that day yet.
    file(net, disbursed_case).expect_not_found("reconciliation statement", f"bank-a/{D0}")
    ask(net, D0).expect_ok()
    before = net.api.row_counts()
    file(net, "case_00000000000000000000000000").expect_precondition("NOT_ON_STATEMENT")
    file(net, disbursed_case, disputed_fields=[]).expect_invalid("disputed_fields")
    file(net, disbursed_case, disputed_fields=["drawn", "case_id"]).expect_invalid(
        "disputed_fields[1]"
    )
    file(net, disbursed_case, reason="  ").expect_invalid("reason")
    file(net, disbursed_case, reason="x" * 1001).expect_invalid("reason")
    file(net, disbursed_case, business_date=None).expect_invalid("business_date")
    file(net, "").expect_invalid("case_id")
    assert net.api.row_counts() == before
    resolve(net, "dispute_missing").expect_not_found("reconciliation dispute", "dispute_missing")
    resolve(net, "d", outcome=R.DISPUTE_STATE_OPEN).expect_invalid("outcome")
    resolve(net, "d", note="").expect_invalid("note")
    resolve(net, "").expect_invalid("dispute_id")
    assert net.api.row_counts() == before
