"""Explicit protobuf <-> domain conversion, in one place.

Inbound functions collect every shape problem (an impossible date, an unknown enum number, a
currency other than CNY) as FieldViolations under the request path, so the caller gets them all
in one INVALID_ARGUMENT together with the domain's own rule violations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any, TypeVar, cast

from colending.v1 import (
    blacklist_pb2,
    common_pb2,
    consent_pb2,
    delivery_pb2,
    enforcement_pb2,
    financing_pb2,
    merchant_pb2,
    partner_bank_service_pb2,
    partner_pb2,
    referral_pb2,
    referral_service_pb2,
)
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.api._handler import nul_problems
from gateway.blacklist import Borrower, SignedCheckpoint
from gateway.domain.blacklist import (
    AppealOutcome,
    BlacklistEntry,
    ChangeType,
    EntryStatus,
    ListingReason,
)
from gateway.domain.consent import Consent, ConsentPurpose, ConsentState
from gateway.domain.decision import CounterOfferAnswer, Decision, DecisionOutcome, LoanTerms
from gateway.domain.delivery import AttemptOutcome, DeliveryState, DeliveryTask
from gateway.domain.evidence import Statement
from gateway.domain.financing import FinancingState
from gateway.domain.ledger import Ledger, LoanEvent, LoanEventType
from gateway.domain.merchant import (
    DataScope,
    MembershipTier,
    MerchantIdentity,
    MerchantProfile,
    Qualification,
    TransactionReputation,
    Verification,
)
from gateway.domain.money import CURRENCY
from gateway.domain.partner import Partner, PartnerState
from gateway.domain.policy import BlacklistAction, EligibilityPolicy
from gateway.domain.portfolio import PortfolioStats
from gateway.domain.referral import (
    CaseEvent,
    FinancingCase,
    Referral,
    ReferralPayload,
    ReferralState,
    SignedPayload,
)
from gateway.domain.scoring import Assessment, CreditOffer, Grade, ProductType
from gateway.errors import FieldViolation, InvalidArgument
from gateway.evidence import SignedStatement
from gateway.service import CaseDetail
from gateway.signing.keyring import PublishedKey
from gateway.store.blacklist_repository import EnforcementEvent, LoggedChange
from partners.sdk._dsse import DECISION_PAYLOAD_TYPE, LOAN_EVENT_PAYLOAD_TYPE
from partners.sdk._leaf import LeafEntry, decode_leaf
from partners.sdk._pseudonym import IdentifierKind
from partners.sdk._verify import envelope_from_proto

K = TypeVar("K")
V = TypeVar("V")

# --- enums: proto number <-> domain member; 0 (UNSPECIFIED) maps to None ----------------------

TIERS = {
    merchant_pb2.MEMBERSHIP_TIER_FREE: MembershipTier.FREE,
    merchant_pb2.MEMBERSHIP_TIER_TRUSTPASS: MembershipTier.TRUSTPASS,
    merchant_pb2.MEMBERSHIP_TIER_GOLD_SUPPLIER: MembershipTier.GOLD_SUPPLIER,
}
SCOPES = {
    consent_pb2.DATA_SCOPE_IDENTITY: DataScope.IDENTITY,
    consent_pb2.DATA_SCOPE_QUALIFICATION: DataScope.QUALIFICATION,
    consent_pb2.DATA_SCOPE_TRANSACTION_REPUTATION: DataScope.TRANSACTION_REPUTATION,
    consent_pb2.DATA_SCOPE_VERIFICATION: DataScope.VERIFICATION,
}
PURPOSES = {consent_pb2.CONSENT_PURPOSE_CREDIT_REFERRAL: ConsentPurpose.CREDIT_REFERRAL}
CONSENT_STATES = {
    ConsentState.ACTIVE: consent_pb2.CONSENT_STATE_ACTIVE,
    ConsentState.REVOKED: consent_pb2.CONSENT_STATE_REVOKED,
    ConsentState.EXPIRED: consent_pb2.CONSENT_STATE_EXPIRED,
}
GRADES = {
    Grade.A: referral_pb2.GRADE_A,
    Grade.B: referral_pb2.GRADE_B,
    Grade.C: referral_pb2.GRADE_C,
    Grade.D: referral_pb2.GRADE_D,
    Grade.E: referral_pb2.GRADE_E,
}
PRODUCTS = {
    ProductType.REVOLVING_LINE: common_pb2.PRODUCT_TYPE_REVOLVING_LINE,
    ProductType.FIXED_LOAN: common_pb2.PRODUCT_TYPE_FIXED_LOAN,
    ProductType.COMBINED: common_pb2.PRODUCT_TYPE_COMBINED,
}
BLACKLIST_ACTIONS = {
    partner_pb2.BLACKLIST_ACTION_REFUSE: BlacklistAction.REFUSE,
    partner_pb2.BLACKLIST_ACTION_FLAG: BlacklistAction.FLAG,
}
PARTNER_STATES = {
    partner_pb2.PARTNER_STATE_ACTIVE: PartnerState.ACTIVE,
    partner_pb2.PARTNER_STATE_SUSPENDED: PartnerState.SUSPENDED,
}
REFERRAL_STATES = {
    referral_pb2.REFERRAL_STATE_ACTIVE: ReferralState.ACTIVE,
    referral_pb2.REFERRAL_STATE_WITHDRAWN: ReferralState.WITHDRAWN,
}
PRODUCT_TYPES = {number: product for product, number in PRODUCTS.items()}
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
FINANCING_STATES = {
    getattr(financing_pb2, f"FINANCING_STATE_{state.name}"): state for state in FinancingState
}


def _inverse(mapping: dict[K, V]) -> dict[V, K]:
    return {v: k for k, v in mapping.items()}


TIER_NUMBERS = _inverse(TIERS)
SCOPE_NUMBERS = _inverse(SCOPES)
PURPOSE_NUMBERS = _inverse(PURPOSES)
BLACKLIST_ACTION_NUMBERS = _inverse(BLACKLIST_ACTIONS)
PARTNER_STATE_NUMBERS = _inverse(PARTNER_STATES)
REFERRAL_STATE_NUMBERS = _inverse(REFERRAL_STATES)
FINANCING_STATE_NUMBERS = _inverse(FINANCING_STATES)
OUTCOME_NUMBERS = _inverse(OUTCOMES)
LOAN_EVENT_TYPE_NUMBERS = _inverse(LOAN_EVENT_TYPES)


def enum_value(
    number: int, mapping: Mapping[Any, V], field: str, problems: list[FieldViolation]
) -> V | None:
    """The domain member for a proto enum number; UNSPECIFIED is None, unknown is a problem."""
    if number == 0:
        return None
    if number not in mapping:
        problems.append(FieldViolation(field, f"unknown enum value {number}"))
        return None
    return mapping[number]


# --- scalars --------------------------------------------------------------------------------


def date_from_proto(
    message: common_pb2.Date, field: str, problems: list[FieldViolation]
) -> date | None:
    if message.year == 0 and message.month == 0 and message.day == 0:
        return None
    try:
        return date(message.year, message.month, message.day)
    except ValueError:
        problems.append(
            FieldViolation(
                field,
                f"is not a calendar date ({message.year:04d}-{message.month:02d}-"
                f"{message.day:02d})",
            )
        )
        return None


def date_to_proto(value: date | None) -> common_pb2.Date:
    if value is None:
        return common_pb2.Date()
    return common_pb2.Date(year=value.year, month=value.month, day=value.day)


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def datetime_from_proto(
    message: Timestamp, field: str, problems: list[FieldViolation]
) -> datetime | None:
    try:
        return message.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        problems.append(
            FieldViolation(field, "is not a valid Timestamp (0001-01-01 to 9999-12-31, nanos 0..)")
        )
        return None


def money(amount_fen: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code=CURRENCY, amount_minor=amount_fen)


def money_from_proto(
    message: common_pb2.Money, field: str, problems: list[FieldViolation]
) -> int | None:
    if not message.currency_code and message.amount_minor == 0:
        return None
    if message.currency_code != CURRENCY:
        problems.append(
            FieldViolation(f"{field}.currency_code", f"must be {CURRENCY} (the only currency)")
        )
        return None
    if message.amount_minor < 0:
        problems.append(FieldViolation(f"{field}.amount_minor", "must not be negative"))
        return None
    return message.amount_minor


# --- merchant -------------------------------------------------------------------------------


def merchant_from_proto(
    message: merchant_pb2.MerchantProfile, field: str, problems: list[FieldViolation]
) -> MerchantProfile:
    q = message.qualification
    r = message.reputation
    v = message.verification
    return MerchantProfile(
        identity=MerchantIdentity(
            platform_merchant_id=message.identity.platform_merchant_id,
            legal_name=message.identity.legal_name,
            unified_social_credit_code=message.identity.unified_social_credit_code,
        ),
        qualification=Qualification(
            membership_tier=enum_value(
                q.membership_tier, TIERS, f"{field}.qualification.membership_tier", problems
            ),
            paid_member_since=date_from_proto(
                q.paid_member_since, f"{field}.qualification.paid_member_since", problems
            ),
            business_registration_date=date_from_proto(
                q.business_registration_date,
                f"{field}.qualification.business_registration_date",
                problems,
            ),
            region_code=q.region_code,
        ),
        reputation=TransactionReputation(
            monthly_gmv_fen=tuple(r.monthly_gmv_fen),
            order_count=r.order_count,
            distinct_buyer_count=r.distinct_buyer_count,
            positive_feedback_bps=r.positive_feedback_bps,
            dispute_rate_bps=r.dispute_rate_bps,
            refund_rate_bps=r.refund_rate_bps,
            on_time_shipment_bps=r.on_time_shipment_bps,
            prior_loans_repaid=r.prior_loans_repaid,
            prior_loans_overdue=r.prior_loans_overdue,
        ),
        verification=Verification(
            business_license_verified=v.business_license_verified,
            legal_representative_verified=v.legal_representative_verified,
            bank_account_verified=v.bank_account_verified,
            onsite_inspection_passed=v.onsite_inspection_passed,
            video_interview_completed=v.video_interview_completed,
        ),
    )


def merchant_to_proto(
    profile: MerchantProfile, scopes: Iterable[DataScope]
) -> merchant_pb2.MerchantProfile:
    """The profile with only the consented sections set (absent, not zero, otherwise)."""
    scopes = frozenset(scopes)
    message = merchant_pb2.MerchantProfile(
        identity=merchant_pb2.MerchantIdentity(
            platform_merchant_id=profile.identity.platform_merchant_id,
            legal_name=profile.identity.legal_name,
            unified_social_credit_code=profile.identity.unified_social_credit_code,
        )
    )
    if DataScope.QUALIFICATION in scopes:
        q = profile.qualification
        tier = q.membership_tier
        message.qualification.CopyFrom(
            merchant_pb2.Qualification(
                membership_tier=TIER_NUMBERS[tier] if tier else cast("Any", 0),
                paid_member_since=date_to_proto(q.paid_member_since),
                business_registration_date=date_to_proto(q.business_registration_date),
                region_code=q.region_code,
            )
        )
    if DataScope.TRANSACTION_REPUTATION in scopes:
        r = profile.reputation
        message.reputation.CopyFrom(
            merchant_pb2.TransactionReputation(
                monthly_gmv_fen=r.monthly_gmv_fen,
                order_count=r.order_count,
                distinct_buyer_count=r.distinct_buyer_count,
                positive_feedback_bps=r.positive_feedback_bps,
                dispute_rate_bps=r.dispute_rate_bps,
                refund_rate_bps=r.refund_rate_bps,
                on_time_shipment_bps=r.on_time_shipment_bps,
                prior_loans_repaid=r.prior_loans_repaid,
                prior_loans_overdue=r.prior_loans_overdue,
            )
        )
    if DataScope.VERIFICATION in scopes:
        v = profile.verification
        message.verification.CopyFrom(
            merchant_pb2.Verification(
                business_license_verified=v.business_license_verified,
                legal_representative_verified=v.legal_representative_verified,
                bank_account_verified=v.bank_account_verified,
                onsite_inspection_passed=v.onsite_inspection_passed,
                video_interview_completed=v.video_interview_completed,
            )
        )
    return message


# --- assessment, offer, referral ------------------------------------------------------------


def assessment_to_proto(assessment: Assessment) -> referral_pb2.Assessment:
    return referral_pb2.Assessment(
        score=assessment.score,
        grade=GRADES[assessment.grade],
        reasons=[
            referral_pb2.ReasonCode(code=r.code, description=r.description, points=r.points)
            for r in assessment.reasons
        ],
        scorecard_version=assessment.scorecard_version,
    )


def offer_to_proto(offer: CreditOffer) -> referral_pb2.CreditOffer:
    return referral_pb2.CreditOffer(
        product=PRODUCTS[offer.product],
        total_limit=money(offer.total_limit_fen),
        revolving_limit=money(offer.revolving_limit_fen),
        fixed_amount=money(offer.fixed_amount_fen),
        term_months=offer.term_months,
        revolving_daily_rate_ppm=offer.revolving_daily_rate_ppm,
        fixed_daily_rate_ppm=offer.fixed_daily_rate_ppm,
    )


def encode_referral_payload(payload: ReferralPayload) -> bytes:
    """The exact bytes the gateway signs (deterministic serialization)."""
    message = referral_pb2.ReferralPayload(
        referral_id=payload.referral_id,
        case_id=payload.case_id,
        bank_id=payload.bank_id,
        issued_at=timestamp(payload.issued_at),
        expires_at=timestamp(payload.expires_at),
        nonce=payload.nonce,
        consent_id=payload.consent_id,
        shared_scopes=sorted(SCOPE_NUMBERS[s] for s in payload.shared_scopes),
        merchant=merchant_to_proto(payload.merchant, payload.shared_scopes),
        assessment=assessment_to_proto(payload.assessment),
        offer=offer_to_proto(payload.offer),
        blacklist_flagged=payload.blacklist_flagged,
    )
    return message.SerializeToString(deterministic=True)


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


def envelope_to_proto(envelope: SignedPayload) -> common_pb2.Envelope:
    return common_pb2.Envelope(
        payload=envelope.payload,
        payload_type=envelope.payload_type,
        signatures=[common_pb2.Signature(keyid=k, sig=s) for k, s in envelope.signatures],
    )


def delivery_to_proto(
    case: FinancingCase, push: DeliveryTask | None = None
) -> referral_pb2.ReferralDelivery:
    return referral_pb2.ReferralDelivery(
        push=delivery_task_to_proto(push)
        if push is not None
        else delivery_pb2.DeliveryTask(
            case_id=case.case_id,
            bank_id=case.bank_id,
            referral_id=case.referral_id,
            state=delivery_pb2.DELIVERY_STATE_NOT_PUSHED,
        ),
        bank_id=case.bank_id,
        case_id=case.case_id,
        state=FINANCING_STATE_NUMBERS[case.state],
        envelope=envelope_to_proto(case.envelope),
        offer=offer_to_proto(case.offer),
        delivered_at=timestamp(case.delivered_at),
        acknowledged_at=timestamp(case.acknowledged_at),
        bank_reference=case.bank_reference,
    )


def referral_to_proto(referral: Referral) -> referral_pb2.Referral:
    return referral_pb2.Referral(
        referral_id=referral.referral_id,
        platform_merchant_id=referral.platform_merchant_id,
        consent_id=referral.consent_id,
        assessment=assessment_to_proto(referral.assessment),
        deliveries=[delivery_to_proto(c, referral.pushes.get(c.case_id)) for c in referral.cases],
        state=REFERRAL_STATE_NUMBERS[referral.state],
        created_at=timestamp(referral.created_at),
        expires_at=timestamp(referral.expires_at),
        withdrawal_reason=referral.withdrawal_reason,
    )


def referral_envelope_to_proto(
    case: FinancingCase, cursor: str
) -> partner_bank_service_pb2.ReferralEnvelope:
    return partner_bank_service_pb2.ReferralEnvelope(
        referral_id=case.referral_id,
        case_id=case.case_id,
        envelope=envelope_to_proto(case.envelope),
        cursor=cursor,
    )


def _amount(message: common_pb2.Money, field: str, problems: list[FieldViolation]) -> int:
    value = money_from_proto(message, field, problems)
    return 0 if value is None else value


def terms_from_proto(
    message: financing_pb2.LoanTerms, field: str, problems: list[FieldViolation]
) -> LoanTerms:
    return LoanTerms(
        product=enum_value(message.product, PRODUCT_TYPES, f"{field}.product", problems),
        amount_fen=_amount(message.amount, f"{field}.amount", problems),
        fixed_amount_fen=_amount(message.fixed_amount, f"{field}.fixed_amount", problems),
        term_months=message.term_months,
        revolving_daily_rate_ppm=message.revolving_daily_rate_ppm,
        fixed_daily_rate_ppm=message.fixed_daily_rate_ppm,
        bank_share_bps=message.split.bank_share_bps,
        platform_share_bps=message.split.platform_share_bps,
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
        disbursed_fen=_amount(message.disbursed_amount, f"{field}.disbursed_amount", problems),
        principal_fen=_amount(message.principal, f"{field}.principal", problems),
        interest_fen=_amount(message.interest, f"{field}.interest", problems),
        days_overdue=message.days_overdue,
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
    )


def ledger_to_proto(ledger: Ledger) -> financing_pb2.Ledger:
    return financing_pb2.Ledger(
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
    )


def case_detail_to_proto(detail: CaseDetail) -> financing_pb2.FinancingCase:
    return financing_case_to_proto(detail.case, detail.history)


def financing_case_to_proto(
    case: FinancingCase, history: Iterable[CaseEvent]
) -> financing_pb2.FinancingCase:
    return financing_pb2.FinancingCase(
        decision=decision_to_proto(case.decision) if case.decision else None,
        agreed_terms=terms_to_proto(case.agreed_terms) if case.agreed_terms else None,
        ledger=ledger_to_proto(case.ledger) if case.ledger else None,
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
    )


# --- consent --------------------------------------------------------------------------------


def consent_to_proto(consent: Consent, *, now: datetime) -> consent_pb2.Consent:
    return consent_pb2.Consent(
        consent_id=consent.consent_id,
        platform_merchant_id=consent.platform_merchant_id,
        bank_ids=consent.bank_ids,
        data_scopes=sorted(SCOPE_NUMBERS[s] for s in consent.data_scopes),
        purpose=PURPOSE_NUMBERS[consent.purpose],
        granted_at=timestamp(consent.granted_at),
        expires_at=timestamp(consent.expires_at),
        state=CONSENT_STATES[consent.state(now)],
        revoked_at=timestamp(consent.revoked_at),
        revocation_reason=consent.revocation_reason,
        evidence_reference=consent.evidence_reference,
    )


# --- partners -------------------------------------------------------------------------------


def policy_from_proto(
    message: partner_pb2.EligibilityPolicy, field: str, problems: list[FieldViolation]
) -> EligibilityPolicy:
    """A set policy is taken as given; unset money fields and enums take the defaults."""
    defaults = EligibilityPolicy()
    tiers = [
        enum_value(t, TIERS, f"{field}.allowed_tiers[{i}]", problems)
        for i, t in enumerate(message.allowed_tiers)
    ]
    if any(t is None and n == 0 for t, n in zip(tiers, message.allowed_tiers, strict=True)):
        problems.append(
            FieldViolation(f"{field}.allowed_tiers", "MEMBERSHIP_TIER_UNSPECIFIED is not a tier")
        )
    min_line = money_from_proto(message.min_credit_line, f"{field}.min_credit_line", problems)
    max_line = money_from_proto(message.max_credit_line, f"{field}.max_credit_line", problems)
    cap = money_from_proto(message.exposure_cap, f"{field}.exposure_cap", problems)
    action = enum_value(
        message.blacklist_action, BLACKLIST_ACTIONS, f"{field}.blacklist_action", problems
    )
    return EligibilityPolicy(
        allowed_region_codes=tuple(message.allowed_region_codes),
        excluded_region_codes=tuple(message.excluded_region_codes),
        min_years_registered=message.min_years_registered,
        allowed_tiers=frozenset(t for t in tiers if t is not None),
        min_score=message.min_score,
        min_credit_line_fen=defaults.min_credit_line_fen if min_line is None else min_line,
        max_credit_line_fen=defaults.max_credit_line_fen if max_line is None else max_line,
        allow_amount_above_offer=message.allow_amount_above_offer,
        platform_share_floor_bps=message.platform_share_floor_bps,
        platform_share_ceiling_bps=message.platform_share_ceiling_bps
        or defaults.platform_share_ceiling_bps,
        exposure_cap_fen=cap or 0,
        blacklist_action=action or defaults.blacklist_action,
        referral_ttl_days=message.referral_ttl_days or defaults.referral_ttl_days,
        ordered_delivery=message.ordered_delivery,
    )


def policy_to_proto(policy: EligibilityPolicy) -> partner_pb2.EligibilityPolicy:
    return partner_pb2.EligibilityPolicy(
        allowed_region_codes=policy.allowed_region_codes,
        excluded_region_codes=policy.excluded_region_codes,
        min_years_registered=policy.min_years_registered,
        allowed_tiers=sorted(TIER_NUMBERS[t] for t in policy.allowed_tiers),
        min_score=policy.min_score,
        min_credit_line=money(policy.min_credit_line_fen),
        max_credit_line=money(policy.max_credit_line_fen),
        allow_amount_above_offer=policy.allow_amount_above_offer,
        platform_share_floor_bps=policy.platform_share_floor_bps,
        platform_share_ceiling_bps=policy.platform_share_ceiling_bps,
        exposure_cap=money(policy.exposure_cap_fen),
        blacklist_action=BLACKLIST_ACTION_NUMBERS[policy.blacklist_action],
        referral_ttl_days=policy.referral_ttl_days,
        ordered_delivery=policy.ordered_delivery,
    )


def partner_to_proto(partner: Partner) -> partner_pb2.Partner:
    return partner_pb2.Partner(
        partner_id=partner.partner_id,
        display_name=partner.display_name,
        endpoint=partner.endpoint,
        state=PARTNER_STATE_NUMBERS[partner.state],
        policy=policy_to_proto(partner.policy),
        decision_public_key=partner.decision_public_key,
        created_at=timestamp(partner.created_at),
        updated_at=timestamp(partner.updated_at),
        suspension_reason=partner.suspension_reason,
    )


def signing_key_to_proto(key: PublishedKey) -> partner_bank_service_pb2.SigningKey:
    return partner_bank_service_pb2.SigningKey(
        keyid=key.keyid,
        public_key=key.public_key,
        algorithm=key.algorithm,
        state=partner_bank_service_pb2.SIGNING_KEY_STATE_ACTIVE
        if key.active
        else partner_bank_service_pb2.SIGNING_KEY_STATE_RETIRED,
        created_at=timestamp(key.created_at),
        retired_at=timestamp(key.retired_at),
    )


# --- blacklist ------------------------------------------------------------------------------

IDENTIFIER_KINDS = {
    getattr(blacklist_pb2, f"IDENTIFIER_KIND_{kind.name}"): kind for kind in IdentifierKind
}
IDENTIFIER_KIND_NUMBERS = _inverse(IDENTIFIER_KINDS)
LISTING_REASONS = {
    getattr(blacklist_pb2, f"BLACKLIST_REASON_{reason.name}"): reason for reason in ListingReason
}
LISTING_REASON_NUMBERS = _inverse(LISTING_REASONS)
ENTRY_STATUS_NUMBERS = {
    status: getattr(blacklist_pb2, f"BLACKLIST_ENTRY_STATUS_{status.name}")
    for status in EntryStatus
}
CHANGE_TYPE_NUMBERS = {
    kind: getattr(blacklist_pb2, f"BLACKLIST_CHANGE_TYPE_{kind.name}") for kind in ChangeType
}
APPEAL_OUTCOMES: dict[blacklist_pb2.AppealOutcome.ValueType, AppealOutcome] = {
    blacklist_pb2.APPEAL_OUTCOME_UPHELD: AppealOutcome.UPHELD,
    blacklist_pb2.APPEAL_OUTCOME_REMOVED: AppealOutcome.REMOVED,
}
APPEAL_OUTCOME_NUMBERS = _inverse(APPEAL_OUTCOMES)
ENFORCEMENT_ACTIONS = {
    "restrict_store": enforcement_pb2.ENFORCEMENT_ACTION_RESTRICT_STORE,
    "lift_restriction": enforcement_pb2.ENFORCEMENT_ACTION_LIFT_RESTRICTION,
}


def borrower_from_proto(
    message: blacklist_pb2.BorrowerIdentifier, field: str, problems: list[FieldViolation]
) -> Borrower | None:
    which = message.WhichOneof("value")
    if which == "pseudonym":
        return Borrower(pseudonym=message.pseudonym)
    if which is None:
        problems.append(FieldViolation(field, "required: raw or pseudonym"))
        return None
    kind = enum_value(message.raw.kind, IDENTIFIER_KINDS, f"{field}.raw.kind", problems)
    if kind is None:
        if message.raw.kind == 0:
            problems.append(FieldViolation(f"{field}.raw.kind", "required"))
        return None
    return Borrower(kind=kind, raw=message.raw.value)


def blacklist_entry_to_proto(
    entry: BlacklistEntry, *, free_text: bool = True
) -> blacklist_pb2.BlacklistEntry:
    """``free_text``: include the appeal's grounds and resolution reason (for its parties)."""
    appeal = entry.appeal
    return blacklist_pb2.BlacklistEntry(
        entry_id=entry.entry_id,
        pseudonym=entry.pseudonym,
        identifier_kind=IDENTIFIER_KIND_NUMBERS[entry.identifier_kind],
        reporter_bank_id=entry.reporter_bank_id,
        reason=LISTING_REASON_NUMBERS[entry.reason],
        outstanding=money(entry.outstanding_fen),
        default_date=date_to_proto(entry.default_date),
        evidence_case_id=entry.evidence_case_id,
        reported_at=timestamp(entry.reported_at),
        expires_at=timestamp(entry.expires_at),
        status=ENTRY_STATUS_NUMBERS[entry.status],
        appeal=None
        if appeal is None
        else blacklist_pb2.Appeal(
            appeal_id=appeal.appeal_id,
            filed_by=appeal.filed_by,
            grounds=appeal.grounds if free_text else "",
            filed_at=timestamp(appeal.filed_at),
            deadline=timestamp(appeal.deadline),
            outcome=blacklist_pb2.APPEAL_OUTCOME_UNSPECIFIED
            if appeal.outcome is None
            else APPEAL_OUTCOME_NUMBERS[appeal.outcome],
            resolved_at=timestamp(appeal.resolved_at),
            resolved_by=appeal.resolved_by,
            resolution_reason=appeal.resolution_reason if free_text else "",
        ),
    )


def leaf_entry_to_proto(entry: LeafEntry) -> blacklist_pb2.BlacklistEntry:
    """The entry as its leaf states it (free text, which the leaf leaves out, is empty)."""
    appeal = entry.appeal
    return blacklist_pb2.BlacklistEntry(
        entry_id=entry.entry_id,
        pseudonym=entry.pseudonym,
        identifier_kind=IDENTIFIER_KIND_NUMBERS[IdentifierKind(entry.identifier_kind)],
        reporter_bank_id=entry.reporter,
        reason=LISTING_REASON_NUMBERS[ListingReason(entry.reason)],
        outstanding=common_pb2.Money(
            currency_code=entry.currency, amount_minor=entry.outstanding_minor
        ),
        default_date=date_to_proto(entry.default_date),
        evidence_case_id=entry.evidence_case_id,
        reported_at=timestamp(entry.reported_at),
        expires_at=timestamp(entry.expires_at),
        status=ENTRY_STATUS_NUMBERS[EntryStatus(entry.status)],
        appeal=None
        if appeal is None
        else blacklist_pb2.Appeal(
            appeal_id=appeal.appeal_id,
            filed_by=appeal.filed_by,
            filed_at=timestamp(appeal.filed_at),
            deadline=timestamp(appeal.deadline),
            outcome=APPEAL_OUTCOME_NUMBERS[AppealOutcome(appeal.outcome)]
            if appeal.outcome
            else blacklist_pb2.APPEAL_OUTCOME_UNSPECIFIED,
            resolved_at=timestamp(appeal.resolved_at),
            resolved_by=appeal.resolved_by,
        ),
    )


def logged_change_to_proto(change: LoggedChange) -> blacklist_pb2.BlacklistChange:
    return blacklist_pb2.BlacklistChange(
        log_index=change.log_index,
        type=CHANGE_TYPE_NUMBERS[change.change_type],
        entry=leaf_entry_to_proto(decode_leaf(change.leaf).entry),
        logged_at=timestamp(change.logged_at),
        leaf=change.leaf,
    )


def signed_checkpoint_to_proto(signed: SignedCheckpoint) -> blacklist_pb2.SignedCheckpoint:
    checkpoint = signed.checkpoint
    return blacklist_pb2.SignedCheckpoint(
        envelope=common_pb2.Envelope(
            payload=signed.envelope.payload,
            payload_type=signed.envelope.payload_type,
            signatures=[
                common_pb2.Signature(keyid=s.keyid, sig=s.sig) for s in signed.envelope.signatures
            ],
        ),
        checkpoint=blacklist_pb2.Checkpoint(
            origin=checkpoint.origin,
            tree_size=checkpoint.tree_size,
            root_hash=checkpoint.root_hash,
            timestamp=timestamp(checkpoint.timestamp),
        ),
    )


def enforcement_event_to_proto(event: EnforcementEvent) -> enforcement_pb2.EnforcementEvent:
    return enforcement_pb2.EnforcementEvent(
        event_id=event.event_id,
        platform_merchant_id=event.platform_merchant_id,
        action=ENFORCEMENT_ACTIONS[event.action],
        reason=event.reason,
        blacklist_entry_id=event.blacklist_entry_id,
        case_id=event.case_id,
        created_at=timestamp(event.created_at),
    )


# --- push delivery --------------------------------------------------------------------------

DELIVERY_STATES = {
    getattr(delivery_pb2, f"DELIVERY_STATE_{state.name}"): state for state in DeliveryState
}
DELIVERY_STATE_NUMBERS = _inverse(DELIVERY_STATES)
DELIVERY_OUTCOME_NUMBERS = {
    outcome: getattr(delivery_pb2, f"DELIVERY_OUTCOME_{outcome.name}") for outcome in AttemptOutcome
}


def delivery_task_to_proto(task: DeliveryTask) -> delivery_pb2.DeliveryTask:
    return delivery_pb2.DeliveryTask(
        task_id=task.task_id,
        referral_id=task.referral_id,
        case_id=task.case_id,
        bank_id=task.bank_id,
        state=DELIVERY_STATE_NUMBERS[task.state],
        attempt_count=task.attempt_count,
        next_attempt_at=timestamp(task.next_attempt_at)
        if task.state is DeliveryState.PENDING
        else None,
        created_at=timestamp(task.created_at),
        delivered_at=timestamp(task.delivered_at),
        bank_reference=task.bank_reference,
        last_error=task.last_error,
        attempts=[
            delivery_pb2.DeliveryAttempt(
                attempt=a.attempt,
                started_at=timestamp(a.started_at),
                outcome=DELIVERY_OUTCOME_NUMBERS[a.outcome],
                status_code=a.status_code,
                latency_micros=a.latency_micros,
                detail=a.detail,
            )
            for a in task.attempts
        ],
    )
