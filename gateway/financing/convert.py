"""Protobuf <-> domain conversion of decisions, loan terms, loan events (plain and signed),
ledgers, cases and portfolio figures.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeVar, cast

from colending.v1 import (
    common_pb2,
    financing_pb2,
    referral_service_pb2,
)
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from colending_core import DECISION_PAYLOAD_TYPE, LOAN_EVENT_PAYLOAD_TYPE
from gateway.api._handler import nul_problems
from gateway.api.convert import (
    PRODUCT_TYPES,
    PRODUCTS,
    amount_or_zero,
    date_from_proto,
    date_to_proto,
    datetime_from_proto,
    enum_value,
    inverse_of,
    money,
    timestamp,
)
from gateway.domain.decision import CounterOfferAnswer, Decision, DecisionOutcome, LoanTerms
from gateway.domain.evidence import Statement
from gateway.domain.financing import FinancingState
from gateway.domain.ledger import (
    Ledger,
    LoanEvent,
    LoanEventType,
    available_limit_fen,
    case_schedule,
    maturity_date,
)
from gateway.domain.portfolio import PortfolioStats
from gateway.domain.referral import (
    CaseEvent,
    FinancingCase,
)
from gateway.domain.schedule import Instalment, RepaymentMethod
from gateway.errors import FieldViolation, InvalidArgument
from gateway.financing.cases import CaseDetail
from gateway.financing.evidence import SignedStatement
from partners.sdk._verify import envelope_from_proto

OUTCOMES = {
    financing_pb2.DECISION_OUTCOME_APPROVE: DecisionOutcome.APPROVE,
    financing_pb2.DECISION_OUTCOME_DECLINE: DecisionOutcome.DECLINE,
    financing_pb2.DECISION_OUTCOME_COUNTER_OFFER: DecisionOutcome.COUNTER_OFFER,
}
ANSWERS = {
    referral_service_pb2.COUNTER_OFFER_ANSWER_ACCEPT: CounterOfferAnswer.ACCEPT,
    referral_service_pb2.COUNTER_OFFER_ANSWER_REJECT: CounterOfferAnswer.REJECT,
}
LOAN_EVENT_TYPES = {
    getattr(financing_pb2, f"LOAN_EVENT_TYPE_{kind.name}"): kind for kind in LoanEventType
}
REPAYMENT_METHODS = {
    getattr(financing_pb2, f"REPAYMENT_METHOD_{method.name}"): method for method in RepaymentMethod
}
REPAYMENT_METHOD_NUMBERS = inverse_of(REPAYMENT_METHODS)
FINANCING_STATES = {
    getattr(financing_pb2, f"FINANCING_STATE_{state.name}"): state for state in FinancingState
}
FINANCING_STATE_NUMBERS = inverse_of(FINANCING_STATES)
OUTCOME_NUMBERS = inverse_of(OUTCOMES)
LOAN_EVENT_TYPE_NUMBERS = inverse_of(LOAN_EVENT_TYPES)


def signed_decision_from_proto(message: common_pb2.Envelope) -> SignedStatement[Decision]:
    """A bank's signed decision, to be verified before ``read`` parses its payload."""
    return SignedStatement(
        payload_type=DECISION_PAYLOAD_TYPE,
        envelope=envelope_from_proto(message),
        read=_read_decision_statement,
    )


def signed_event_from_proto(message: common_pb2.Envelope) -> SignedStatement[LoanEvent]:
    """A bank's signed loan event, to be verified before ``read`` parses its payload."""
    return SignedStatement(
        payload_type=LOAN_EVENT_PAYLOAD_TYPE,
        envelope=envelope_from_proto(message),
        read=_read_event_statement,
    )


def _read_decision_statement(payload: bytes, problems: list[FieldViolation]) -> Statement[Decision]:
    field = "signed_decision.payload"
    message = _parse(financing_pb2.DecisionStatement, payload, field, problems)
    content = decision_from_proto(message.decision, f"{field}.decision", problems)
    return _statement(message, content, field, problems)


def _read_event_statement(payload: bytes, problems: list[FieldViolation]) -> Statement[LoanEvent]:
    field = "signed_event.payload"
    message = _parse(financing_pb2.LoanEventStatement, payload, field, problems)
    content = loan_event_from_proto(message.event, f"{field}.event", problems)
    return _statement(message, content, field, problems)


_M = TypeVar("_M", financing_pb2.DecisionStatement, financing_pb2.LoanEventStatement)
_C = TypeVar("_C")


def _parse(kind: type[_M], payload: bytes, field: str, problems: list[FieldViolation]) -> _M:
    try:
        message = kind.FromString(payload)
    except DecodeError:
        # Nothing else about the statement means anything then.
        raise InvalidArgument.single(
            field, f"is not a serialized {kind.DESCRIPTOR.full_name}"
        ) from None
    problems += nul_problems(message, f"{field}.")
    return message


def _statement(
    message: _M, content: _C, field: str, problems: list[FieldViolation]
) -> Statement[_C]:
    return Statement(
        case_id=message.case_id,
        bank_id=message.bank_id,
        signed_at=_signed_at(message.signed_at, message.HasField("signed_at"), field, problems),
        nonce=message.nonce,
        content=content,
    )


def _signed_at(
    message: Timestamp, present: bool, field: str, problems: list[FieldViolation]
) -> datetime | None:
    # Unset stays None so the rules say "required" rather than "1970 is too old".
    return datetime_from_proto(message, f"{field}.signed_at", problems) if present else None


def terms_from_proto(
    message: financing_pb2.LoanTerms, field: str, problems: list[FieldViolation]
) -> LoanTerms:
    return LoanTerms(
        product=enum_value(message.product, PRODUCT_TYPES, f"{field}.product", problems),
        amount_fen=amount_or_zero(message.amount, f"{field}.amount", problems),
        fixed_amount_fen=amount_or_zero(message.fixed_amount, f"{field}.fixed_amount", problems),
        term_months=message.term_months,
        revolving_daily_rate_ppm=message.revolving_daily_rate_ppm,
        fixed_daily_rate_ppm=message.fixed_daily_rate_ppm,
        bank_share_bps=message.split.bank_share_bps,
        platform_share_bps=message.split.platform_share_bps,
        repayment_method=enum_value(
            message.repayment_method, REPAYMENT_METHODS, f"{field}.repayment_method", problems
        ),
        penalty_rate_bps=message.penalty_rate_bps,
    )


def terms_to_proto(terms: LoanTerms) -> financing_pb2.LoanTerms:
    return financing_pb2.LoanTerms(
        product=PRODUCTS[terms.product] if terms.product else cast("Any", 0),
        amount=money(terms.amount_fen),
        fixed_amount=money(terms.fixed_amount_fen),
        term_months=terms.term_months,
        revolving_daily_rate_ppm=terms.revolving_daily_rate_ppm,
        fixed_daily_rate_ppm=terms.fixed_daily_rate_ppm,
        split=financing_pb2.FundingSplit(
            bank_share_bps=terms.bank_share_bps, platform_share_bps=terms.platform_share_bps
        ),
        repayment_method=REPAYMENT_METHOD_NUMBERS[terms.repayment_method]
        if terms.repayment_method
        else cast("Any", 0),
        penalty_rate_bps=terms.penalty_rate_bps,
    )


def decision_from_proto(
    message: financing_pb2.Decision, field: str, problems: list[FieldViolation]
) -> Decision:
    return Decision(
        outcome=enum_value(message.outcome, OUTCOMES, f"{field}.outcome", problems),
        terms=terms_from_proto(message.terms, f"{field}.terms", problems)
        if message.HasField("terms")
        else None,
        decline_reason_codes=tuple(message.decline_reason_codes),
        note=message.note,
    )


def decision_to_proto(decision: Decision) -> financing_pb2.Decision:
    assert decision.outcome is not None
    return financing_pb2.Decision(
        outcome=OUTCOME_NUMBERS[decision.outcome],
        terms=terms_to_proto(decision.terms) if decision.terms else None,
        decline_reason_codes=decision.decline_reason_codes,
        note=decision.note,
    )


def loan_event_from_proto(
    message: financing_pb2.LoanEvent, field: str, problems: list[FieldViolation]
) -> LoanEvent:
    return LoanEvent(
        type=enum_value(message.type, LOAN_EVENT_TYPES, f"{field}.type", problems),
        event_date=date_from_proto(message.event_date, f"{field}.event_date", problems),
        bank_loan_reference=message.bank_loan_reference,
        disbursed_fen=amount_or_zero(
            message.disbursed_amount, f"{field}.disbursed_amount", problems
        ),
        principal_fen=amount_or_zero(message.principal, f"{field}.principal", problems),
        interest_fen=amount_or_zero(message.interest, f"{field}.interest", problems),
        days_overdue=message.days_overdue,
        amount_fen=amount_or_zero(message.amount, f"{field}.amount", problems),
        penalty_fen=amount_or_zero(message.penalty, f"{field}.penalty", problems),
    )


def loan_event_to_proto(event: LoanEvent) -> financing_pb2.LoanEvent:
    assert event.type is not None
    return financing_pb2.LoanEvent(
        type=LOAN_EVENT_TYPE_NUMBERS[event.type],
        event_date=date_to_proto(event.event_date),
        bank_loan_reference=event.bank_loan_reference,
        disbursed_amount=money(event.disbursed_fen) if event.disbursed_fen else None,
        principal=money(event.principal_fen) if event.principal_fen else None,
        interest=money(event.interest_fen) if event.interest_fen else None,
        days_overdue=event.days_overdue,
        amount=money(event.amount_fen) if event.amount_fen else None,
        penalty=money(event.penalty_fen) if event.penalty_fen else None,
    )


def ledger_to_proto(ledger: Ledger, terms: LoanTerms | None) -> financing_pb2.Ledger:
    matures = maturity_date(terms, ledger) if terms else None
    return financing_pb2.Ledger(
        penalty_accrued=money(ledger.penalty_accrued_fen),
        penalty_repaid=money(ledger.penalty_repaid_fen),
        available_limit=money(available_limit_fen(terms, ledger) if terms else 0),
        maturity_date=date_to_proto(matures) if matures else None,
        principal_disbursed=money(ledger.principal_disbursed_fen),
        principal_outstanding=money(ledger.principal_outstanding_fen),
        interest_accrued=money(ledger.interest_accrued_fen),
        principal_repaid=money(ledger.principal_repaid_fen),
        interest_repaid=money(ledger.interest_repaid_fen),
        bank_share_repaid=money(ledger.bank_share_repaid_fen),
        platform_share_repaid=money(ledger.platform_share_repaid_fen),
    )


def portfolio_stats_to_proto(stats: PortfolioStats) -> financing_pb2.PortfolioStats:
    return financing_pb2.PortfolioStats(
        bank_id=stats.bank_id,
        referred_count=stats.referred_count,
        approved_count=stats.approved_count,
        declined_count=stats.declined_count,
        disbursed=money(stats.disbursed_fen),
        outstanding=money(stats.outstanding_fen),
        overdue=money(stats.overdue_fen),
        defaulted_count=stats.defaulted_count,
        approval_rate_bps=stats.approval_rate_bps,
        non_performing_ratio_bps=stats.non_performing_ratio_bps,
        overdue_m1=money(stats.overdue_m1_fen),
        overdue_m2=money(stats.overdue_m2_fen),
        overdue_m3_plus=money(stats.overdue_m3_plus_fen),
        vintages=[
            financing_pb2.Vintage(
                month=v.month,
                loans=v.loans,
                disbursed=money(v.disbursed_fen),
                outstanding=money(v.outstanding_fen),
                overdue=money(v.overdue_fen),
                defaulted_count=v.defaulted_count,
                defaulted_outstanding=money(v.defaulted_outstanding_fen),
            )
            for v in stats.vintages
        ],
    )


def case_detail_to_proto(detail: CaseDetail) -> financing_pb2.FinancingCase:
    return financing_case_to_proto(detail.case, detail.history)


def financing_case_to_proto(
    case: FinancingCase, history: Iterable[CaseEvent]
) -> financing_pb2.FinancingCase:
    return financing_pb2.FinancingCase(
        decision=decision_to_proto(case.decision) if case.decision else None,
        agreed_terms=terms_to_proto(case.agreed_terms) if case.agreed_terms else None,
        ledger=ledger_to_proto(case.ledger, case.agreed_terms) if case.ledger else None,
        case_id=case.case_id,
        referral_id=case.referral_id,
        bank_id=case.bank_id,
        platform_merchant_id=case.platform_merchant_id,
        state=FINANCING_STATE_NUMBERS[case.state],
        history=[
            financing_pb2.CaseEvent(
                sequence=e.sequence,
                from_state=FINANCING_STATE_NUMBERS[e.from_state]
                if e.from_state
                else cast("Any", 0),
                to_state=FINANCING_STATE_NUMBERS[e.to_state],
                recorded_at=timestamp(e.recorded_at),
                actor=e.actor,
                request_id=e.request_id,
                loan_event=loan_event_to_proto(e.loan_event) if e.loan_event else None,
                evidence=common_pb2.Envelope(
                    payload=e.evidence.payload,
                    payload_type=e.evidence.payload_type,
                    signatures=[
                        common_pb2.Signature(keyid=k, sig=sig) for k, sig in e.evidence.signatures
                    ],
                )
                if e.evidence
                else None,
                evidence_public_key=e.evidence.public_key if e.evidence else b"",
            )
            for e in history
        ],
        created_at=timestamp(case.created_at),
        updated_at=timestamp(case.updated_at),
        schedule=[_instalment_to_proto(i) for i in case_schedule(case.agreed_terms, case.ledger)],
    )


def _instalment_to_proto(instalment: Instalment) -> financing_pb2.Instalment:
    return financing_pb2.Instalment(
        number=instalment.number,
        due_date=date_to_proto(instalment.due_date),
        principal=money(instalment.principal_fen),
        interest=money(instalment.interest_fen),
        total=money(instalment.total_fen),
        principal_after=money(instalment.principal_after_fen),
    )
