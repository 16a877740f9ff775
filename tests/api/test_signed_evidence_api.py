"""Signed decisions and loan events: verified with the bank's registered key, fresh, used once,
kept as evidence the platform can check, and every bad one refused with nothing written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import sqlalchemy
import sqlalchemy.exc
from colending.v1 import common_pb2, financing_pb2
from colending.v1 import partner_bank_service_pb2 as pb
from colending.v1.financing_pb2 import FinancingState as FS  # noqa: N817
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_decision_api import acknowledged_case, approve, decide, terms
from test_loan_event_api import disbursed
from testkit import PLATFORM, request_id

from gateway.store.tables import CaseEventRow
from partners.sdk import (
    DECISION_PAYLOAD_TYPE,
    LOAN_EVENT_PAYLOAD_TYPE,
    MismatchedEvidenceError,
    UnknownKeyError,
    decision_key_bytes,
    read_evidence,
    sign_decision,
    sign_envelope,
    sign_loan_event,
)

BANK_KEY = Ed25519PrivateKey.generate()


@pytest.fixture
def signing_bank(api: Any) -> tuple[Any, str]:
    """bank-a registered a decision key and acknowledged a referral: (api, case_id)."""
    api.register("bank-a", decision_public_key=decision_key_bytes(BANK_KEY))
    api.register("bank-b")
    case_id, _ = acknowledged_case(api)
    return api, case_id


def signed_decide(
    api: Any,
    case_id: str,
    envelope: common_pb2.Envelope,
    *,
    decision: financing_pb2.Decision | None = None,
    rid: str | None = None,
    bank_id: str = "bank-a",
) -> Any:
    request = pb.SubmitDecisionRequest(
        request_id=rid or request_id(), case_id=case_id, signed_decision=envelope
    )
    if decision is not None:
        request.decision.CopyFrom(decision)
    return api.as_bank(bank_id, "SubmitDecision", request)


def signed(decision: financing_pb2.Decision, case_id: str, **kw: Any) -> common_pb2.Envelope:
    kw.setdefault("bank_id", "bank-a")
    kw.setdefault("private_key", BANK_KEY)
    return sign_decision(decision, case_id=case_id, **kw)


def history(api: Any, case_id: str) -> list[financing_pb2.CaseEvent]:
    """As the platform sees it: the platform reads any case, evidence included."""
    request = pb.GetFinancingCaseRequest(case_id=case_id)
    response = api.call("bank", "GetFinancingCase", request, PLATFORM)
    return list(response.expect_ok().response.financing_case.history)


def test_a_signed_decision_is_kept_and_proves_what_the_bank_decided(
    signing_bank: tuple[Any, str],
) -> None:
    api, case_id = signing_bank
    decision = approve(terms(300_000))
    result = signed_decide(api, case_id, signed(decision, case_id)).expect_ok()
    assert result.response.financing_case.state == FS.FINANCING_STATE_APPROVED

    step = history(api, case_id)[-1]
    assert step.evidence_public_key == decision_key_bytes(BANK_KEY)
    statement = read_evidence(
        step, bank_key=BANK_KEY.public_key(), case_id=case_id, bank_id="bank-a"
    )
    assert isinstance(statement, financing_pb2.DecisionStatement)
    assert (statement.case_id, statement.bank_id) == (case_id, "bank-a")
    assert statement.decision == decision
    # Checked against any other key it is no proof: read_evidence trusts only the key given.
    with pytest.raises(UnknownKeyError):
        read_evidence(
            step,
            bank_key=Ed25519PrivateKey.generate().public_key(),
            case_id=case_id,
            bank_id="bank-a",
        )
    # Evidence read as another case's is a copy from elsewhere.
    with pytest.raises(MismatchedEvidenceError):
        read_evidence(step, bank_key=BANK_KEY.public_key(), case_id="case_other", bank_id="bank-a")


def test_signed_loan_events_are_kept_too(signing_bank: tuple[Any, str]) -> None:
    api, case_id = signing_bank
    signed_decide(api, case_id, signed(approve(terms(300_000)), case_id)).expect_ok()
    event = disbursed()
    envelope = sign_loan_event(event, case_id=case_id, bank_id="bank-a", private_key=BANK_KEY)
    request = pb.ReportLoanEventRequest(
        request_id=request_id(), case_id=case_id, event=event, signed_event=envelope
    )
    result = api.as_bank("bank-a", "ReportLoanEvent", request).expect_ok()
    assert result.response.financing_case.state == FS.FINANCING_STATE_DISBURSED
    statement = read_evidence(
        history(api, case_id)[-1],
        bank_key=BANK_KEY.public_key(),
        case_id=case_id,
        bank_id="bank-a",
    )
    assert isinstance(statement, financing_pb2.LoanEventStatement)
    assert statement.event == event


def test_a_retry_that_signs_again_replays_the_first_answer(
    signing_bank: tuple[Any, str],
) -> None:
    """A retry that signs again (new time, new nonce) says the same thing: it gets the first
    answer, without being verified or acted on again, even once its own signature is stale.
    Saying something else under the same request id is ALREADY_EXISTS."""
    api, case_id = signing_bank
    decision = approve(terms(300_000))
    rid = request_id()
    first = signed_decide(api, case_id, signed(decision, case_id), rid=rid).expect_ok()
    stale = datetime.now(UTC) - timedelta(minutes=10)
    again = _unchanged(
        api,
        lambda: signed_decide(api, case_id, signed(decision, case_id, signed_at=stale), rid=rid),
    )
    assert again.expect_ok().response == first.response
    other = signed(approve(terms(250_000)), case_id)
    result = _unchanged(api, lambda: signed_decide(api, case_id, other, rid=rid))
    assert result.code is grpc.StatusCode.ALREADY_EXISTS, result.describe()


def _unchanged(api: Any, call: Any) -> Any:
    before = api.row_counts()
    result = call()
    assert api.row_counts() == before
    return result


def test_a_replayed_nonce_is_already_exists(signing_bank: tuple[Any, str]) -> None:
    api, case_id = signing_bank
    envelope = signed(approve(terms(300_000)), case_id)
    signed_decide(api, case_id, envelope).expect_ok()
    # The same signed statement under a new request id is a replay.
    result = _unchanged(api, lambda: signed_decide(api, case_id, envelope))
    assert result.code is grpc.StatusCode.ALREADY_EXISTS, result.describe()
    assert "replayed" in result.details


BAD_ENVELOPES = {
    "tampered payload": (
        lambda e: _replace(e, payload=e.payload + b"\x00"),
        "signed_decision.signatures",
    ),
    "tampered signature": (
        lambda e: _replace(
            e, signatures=[common_pb2.Signature(keyid=e.signatures[0].keyid, sig=bytes(64))]
        ),
        "signed_decision.signatures",
    ),
    "no signature": (lambda e: _replace(e, signatures=[]), "signed_decision.signatures"),
    "two signatures": (
        lambda e: _replace(e, signatures=[e.signatures[0], e.signatures[0]]),
        "signed_decision.signatures",
    ),
    "wrong payload type": (
        lambda e: _replace(e, payload_type=LOAN_EVENT_PAYLOAD_TYPE),
        "signed_decision.payload_type",
    ),
}


def _replace(envelope: common_pb2.Envelope, **fields: Any) -> common_pb2.Envelope:
    copy = common_pb2.Envelope()
    copy.CopyFrom(envelope)
    for name, value in fields.items():
        if name == "signatures":
            del copy.signatures[:]
            copy.signatures.extend(value)
        else:
            setattr(copy, name, value)
    return copy


@pytest.mark.parametrize(("spoil", "field"), BAD_ENVELOPES.values(), ids=BAD_ENVELOPES.keys())
def test_a_spoilt_envelope_is_invalid_and_changes_nothing(
    signing_bank: tuple[Any, str], spoil: Any, field: str
) -> None:
    api, case_id = signing_bank
    envelope = spoil(signed(approve(terms(300_000)), case_id))
    _unchanged(api, lambda: signed_decide(api, case_id, envelope)).expect_invalid(field)


def test_a_decision_signed_by_another_key_names_the_registered_key(
    signing_bank: tuple[Any, str],
) -> None:
    api, case_id = signing_bank
    impostor = Ed25519PrivateKey.generate()
    envelope = signed(approve(terms(300_000)), case_id, private_key=impostor)
    result = _unchanged(api, lambda: signed_decide(api, case_id, envelope))
    result.expect_invalid("signed_decision.signatures")
    assert "registered decision key" in result.details


def test_signed_payload_rules_each_name_their_field(signing_bank: tuple[Any, str]) -> None:
    api, case_id = signing_bank
    stale = datetime.now(UTC) - timedelta(minutes=6)
    future = datetime.now(UTC) + timedelta(minutes=6)
    cases = {
        "signed_decision.payload.signed_at": signed(
            approve(terms(300_000)), case_id, signed_at=stale
        ),
        "signed_decision.payload.case_id": signed(approve(terms(300_000)), "case_other"),
        "signed_decision.payload.bank_id": signed(
            approve(terms(300_000)), case_id, bank_id="bank-b"
        ),
    }
    for field, envelope in cases.items():
        _unchanged(api, lambda e=envelope: signed_decide(api, case_id, e)).expect_invalid(field)
    ahead = signed(approve(terms(300_000)), case_id, signed_at=future)
    _unchanged(api, lambda: signed_decide(api, case_id, ahead)).expect_invalid(
        "signed_decision.payload.signed_at"
    )


def test_a_short_nonce_and_garbage_payloads_are_invalid(signing_bank: tuple[Any, str]) -> None:
    api, case_id = signing_bank
    statement = financing_pb2.DecisionStatement(
        case_id=case_id, bank_id="bank-a", decision=approve(terms(300_000)), nonce=b"short"
    )
    statement.signed_at.FromDatetime(datetime.now(UTC))
    short = _envelope(statement.SerializeToString(), DECISION_PAYLOAD_TYPE)
    _unchanged(api, lambda: signed_decide(api, case_id, short)).expect_invalid(
        "signed_decision.payload.nonce"
    )
    garbage = _envelope(b"\xff\xff\xff", DECISION_PAYLOAD_TYPE)
    _unchanged(api, lambda: signed_decide(api, case_id, garbage)).expect_invalid(
        "signed_decision.payload"
    )


def _envelope(payload: bytes, payload_type: str) -> common_pb2.Envelope:
    e = sign_envelope(payload, payload_type=payload_type, private_key=BANK_KEY)
    return common_pb2.Envelope(
        payload=e.payload,
        payload_type=e.payload_type,
        signatures=[common_pb2.Signature(keyid=s.keyid, sig=s.sig) for s in e.signatures],
    )


def test_the_unsigned_copy_must_match_the_signed_one(signing_bank: tuple[Any, str]) -> None:
    api, case_id = signing_bank
    envelope = signed(approve(terms(300_000)), case_id)
    other = approve(terms(250_000))
    _unchanged(api, lambda: signed_decide(api, case_id, envelope, decision=other)).expect_invalid(
        "decision"
    )


def test_a_bad_signed_decision_names_its_field_inside_the_payload(
    signing_bank: tuple[Any, str],
) -> None:
    api, case_id = signing_bank
    no_outcome = financing_pb2.Decision(terms=terms(300_000))
    envelope = signed(no_outcome, case_id)
    _unchanged(api, lambda: signed_decide(api, case_id, envelope)).expect_invalid(
        "signed_decision.payload.decision.outcome"
    )


def test_a_bank_with_a_key_must_sign(signing_bank: tuple[Any, str]) -> None:
    api, case_id = signing_bank
    _unchanged(api, lambda: decide(api, case_id, approve(terms(300_000)))).expect_invalid(
        "signed_decision"
    )
    signed_decide(api, case_id, signed(approve(terms(300_000)), case_id)).expect_ok()
    request = pb.ReportLoanEventRequest(request_id=request_id(), case_id=case_id, event=disbursed())
    _unchanged(api, lambda: api.as_bank("bank-a", "ReportLoanEvent", request)).expect_invalid(
        "signed_event"
    )


def test_a_bank_without_a_key_cannot_send_evidence(api: Any) -> None:
    api.register("bank-a")
    case_id, _ = acknowledged_case(api)
    envelope = signed(approve(terms(300_000)), case_id)
    result = _unchanged(api, lambda: signed_decide(api, case_id, envelope))
    result.expect_precondition("NO_DECISION_KEY")
    # Unsigned, the same bank is fine.
    decide(api, case_id, approve(terms(300_000))).expect_ok()
    assert not history(api, case_id)[-1].HasField("evidence")


def test_a_nonce_is_the_banks_own_across_cases_and_kinds(api: Any) -> None:
    """A nonce used on one case's decision is spent: not usable on another case's decision, nor
    on a loan event."""
    api.register("bank-a", decision_public_key=decision_key_bytes(BANK_KEY))
    first, _ = acknowledged_case(api, merchant_id="m-1001")
    second, _ = acknowledged_case(api, merchant_id="m-1002")
    envelope = signed(approve(terms(300_000)), first)
    signed_decide(api, first, envelope).expect_ok()
    nonce = financing_pb2.DecisionStatement.FromString(envelope.payload).nonce

    decision = financing_pb2.DecisionStatement.FromString(envelope.payload)
    decision.case_id = second
    on_second = _envelope(decision.SerializeToString(deterministic=True), DECISION_PAYLOAD_TYPE)
    result = _unchanged(api, lambda: signed_decide(api, second, on_second))
    assert result.code is grpc.StatusCode.ALREADY_EXISTS, result.describe()

    event = financing_pb2.LoanEventStatement(
        case_id=first, bank_id="bank-a", event=disbursed(), nonce=nonce
    )
    event.signed_at.FromDatetime(datetime.now(UTC))
    request = pb.ReportLoanEventRequest(
        request_id=request_id(),
        case_id=first,
        signed_event=_envelope(event.SerializeToString(), LOAN_EVENT_PAYLOAD_TYPE),
    )
    result = _unchanged(api, lambda: api.as_bank("bank-a", "ReportLoanEvent", request))
    assert result.code is grpc.StatusCode.ALREADY_EXISTS, result.describe()


def test_the_database_refuses_a_nonce_twice(api: Any) -> None:
    """The unique index, not only the lookup before it, is what stops two racing replays."""
    row = {"case_id": "case_x", "to_state": "APPROVED", "actor": "partner/bank-a"}
    with api.database.engine.begin() as connection:
        for sequence in (1, 2):
            connection.execute(
                sqlalchemy.insert(CaseEventRow).values(
                    **row,
                    sequence=sequence,
                    recorded_at=datetime.now(UTC),
                    evidence_nonce="ab" * 16 if sequence == 1 else None,
                )
            )
    with pytest.raises(sqlalchemy.exc.IntegrityError), api.database.engine.begin() as connection:
        connection.execute(
            sqlalchemy.insert(CaseEventRow).values(
                **row, sequence=3, recorded_at=datetime.now(UTC), evidence_nonce="ab" * 16
            )
        )


def test_the_platform_reads_any_case_but_not_a_missing_one(api: Any) -> None:
    api.register("bank-a")
    case_id, _ = acknowledged_case(api)
    assert history(api, case_id)[-1].to_state == FS.FINANCING_STATE_ACKNOWLEDGED
    missing = api.call(
        "bank", "GetFinancingCase", pb.GetFinancingCaseRequest(case_id="case_x"), PLATFORM
    )
    missing.expect_not_found("financing case", "case_x")
