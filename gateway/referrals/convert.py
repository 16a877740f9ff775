"""Protobuf <-> domain conversion of merchants, consents, referrals and signing keys, and the
exact bytes of a signed referral payload.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from colending.v1 import (
    consent_pb2,
    delivery_pb2,
    merchant_pb2,
    partner_bank_service_pb2,
    referral_pb2,
)

from gateway.api.convert import (
    GRADES,
    PRODUCTS,
    TIER_NUMBERS,
    TIERS,
    date_from_proto,
    date_to_proto,
    enum_value,
    envelope_to_proto,
    inverse_of,
    money,
    timestamp,
)
from gateway.delivery.convert import delivery_task_to_proto
from gateway.domain.consent import Consent, ConsentPurpose, ConsentState
from gateway.domain.delivery import DeliveryTask
from gateway.domain.merchant import (
    DataScope,
    MerchantIdentity,
    MerchantProfile,
    Qualification,
    TransactionReputation,
    Verification,
)
from gateway.domain.referral import (
    FinancingCase,
    Referral,
    ReferralPayload,
    ReferralState,
)
from gateway.domain.scoring import Assessment, CreditOffer
from gateway.errors import FieldViolation
from gateway.financing.convert import FINANCING_STATE_NUMBERS
from gateway.signing.keyring import PublishedKey

SCOPES = {
    consent_pb2.DATA_SCOPE_IDENTITY: DataScope.IDENTITY,
    consent_pb2.DATA_SCOPE_QUALIFICATION: DataScope.QUALIFICATION,
    consent_pb2.DATA_SCOPE_TRANSACTION_REPUTATION: DataScope.TRANSACTION_REPUTATION,
    consent_pb2.DATA_SCOPE_VERIFICATION: DataScope.VERIFICATION,
}
PURPOSES = {
    consent_pb2.CONSENT_PURPOSE_CREDIT_REFERRAL: ConsentPurpose.CREDIT_REFERRAL,
    consent_pb2.CONSENT_PURPOSE_MONITORING: ConsentPurpose.MONITORING,
}
CONSENT_STATES = {
    ConsentState.ACTIVE: consent_pb2.CONSENT_STATE_ACTIVE,
    ConsentState.REVOKED: consent_pb2.CONSENT_STATE_REVOKED,
    ConsentState.EXPIRED: consent_pb2.CONSENT_STATE_EXPIRED,
}
REFERRAL_STATES = {
    referral_pb2.REFERRAL_STATE_ACTIVE: ReferralState.ACTIVE,
    referral_pb2.REFERRAL_STATE_WITHDRAWN: ReferralState.WITHDRAWN,
}
SCOPE_NUMBERS = inverse_of(SCOPES)
PURPOSE_NUMBERS = inverse_of(PURPOSES)
REFERRAL_STATE_NUMBERS = inverse_of(REFERRAL_STATES)


def reputation_from_proto(r: merchant_pb2.TransactionReputation) -> TransactionReputation:
    return TransactionReputation(
        monthly_gmv_fen=tuple(r.monthly_gmv_fen),
        order_count=r.order_count,
        distinct_buyer_count=r.distinct_buyer_count,
        positive_feedback_bps=r.positive_feedback_bps,
        dispute_rate_bps=r.dispute_rate_bps,
        refund_rate_bps=r.refund_rate_bps,
        on_time_shipment_bps=r.on_time_shipment_bps,
        prior_loans_repaid=r.prior_loans_repaid,
        prior_loans_overdue=r.prior_loans_overdue,
    )


def reputation_to_proto(r: TransactionReputation) -> merchant_pb2.TransactionReputation:
    return merchant_pb2.TransactionReputation(
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


def merchant_from_proto(
    message: merchant_pb2.MerchantProfile, field: str, problems: list[FieldViolation]
) -> MerchantProfile:
    q = message.qualification
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
        reputation=reputation_from_proto(message.reputation),
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
        message.reputation.CopyFrom(reputation_to_proto(profile.reputation))
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
