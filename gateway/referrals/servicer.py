"""The referral RPCs: the platform's (ReferralService), the banks' pull, stream and acknowledge
(PartnerBankService), and the operator's key rotation (AdminService). Each class is one
service's share; ``gateway.api.servicers`` composes the services from them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

import grpc
from colending.v1 import (
    admin_service_pb2,
    partner_bank_service_pb2,
    referral_service_pb2,
)

from gateway.api._handler import (
    ADMIN_SERVICE,
    BANK_SERVICE,
    REFERRAL_SERVICE,
    idempotency,
    raise_if_invalid,
    server_stream,
    unary,
)
from gateway.api.auth import Caller
from gateway.api.convert import datetime_from_proto, enum_value
from gateway.api.limits import STREAM_POLL_SECONDS, StreamSlots
from gateway.blacklist import BlacklistNetwork
from gateway.errors import FieldViolation
from gateway.financing.convert import case_detail_to_proto
from gateway.referrals.consent import Consents
from gateway.referrals.convert import (
    PURPOSES,
    REFERRAL_STATES,
    SCOPES,
    consent_to_proto,
    merchant_from_proto,
    referral_envelope_to_proto,
    referral_to_proto,
    signing_key_to_proto,
)
from gateway.referrals.service import Referrals

rs = referral_service_pb2
pb = partner_bank_service_pb2
ad = admin_service_pb2
# A live stream reads this many referrals at a time.
STREAM_PAGE = 100


class ReferralRpcs:
    """ReferralService: submit, read, list and withdraw referrals; record and revoke consent."""

    _referrals: Referrals
    _consents: Consents
    _clock: Callable[[], datetime]

    @unary(REFERRAL_SERVICE, rs.SubmitReferralResponse)
    def SubmitReferral(
        self, request: rs.SubmitReferralRequest, context: grpc.ServicerContext, caller: Caller
    ) -> rs.SubmitReferralResponse:
        problems: list[FieldViolation] = []
        merchant = merchant_from_proto(request.merchant, "merchant", problems)
        referral = self._referrals.submit_referral(
            idem=idempotency(request, caller, "SubmitReferral"),
            merchant=merchant,
            consent_id=request.consent_id,
            bank_ids=list(request.bank_ids),
            shape_problems=problems,
        )
        return rs.SubmitReferralResponse(referral=referral_to_proto(referral))

    @unary(REFERRAL_SERVICE, rs.GetReferralResponse)
    def GetReferral(
        self, request: rs.GetReferralRequest, context: grpc.ServicerContext, caller: Caller
    ) -> rs.GetReferralResponse:
        referral = self._referrals.get_referral(request.referral_id)
        return rs.GetReferralResponse(referral=referral_to_proto(referral))

    @unary(REFERRAL_SERVICE, rs.ListReferralsResponse)
    def ListReferrals(
        self, request: rs.ListReferralsRequest, context: grpc.ServicerContext, caller: Caller
    ) -> rs.ListReferralsResponse:
        problems: list[FieldViolation] = []
        state = enum_value(request.state, REFERRAL_STATES, "state", problems)
        raise_if_invalid(problems)
        page = self._referrals.list_referrals(
            page_size=request.page_size,
            page_token=request.page_token,
            platform_merchant_id=request.platform_merchant_id,
            state=state,
        )
        return rs.ListReferralsResponse(
            referrals=[referral_to_proto(r) for r in page.items],
            next_page_token=page.next_page_token,
        )

    @unary(REFERRAL_SERVICE, rs.WithdrawReferralResponse)
    def WithdrawReferral(
        self, request: rs.WithdrawReferralRequest, context: grpc.ServicerContext, caller: Caller
    ) -> rs.WithdrawReferralResponse:
        referral = self._referrals.withdraw_referral(
            idem=idempotency(request, caller, "WithdrawReferral"),
            referral_id=request.referral_id,
            reason=request.reason,
        )
        return rs.WithdrawReferralResponse(referral=referral_to_proto(referral))

    @unary(REFERRAL_SERVICE, rs.RecordConsentResponse)
    def RecordConsent(
        self, request: rs.RecordConsentRequest, context: grpc.ServicerContext, caller: Caller
    ) -> rs.RecordConsentResponse:
        problems: list[FieldViolation] = []
        scopes = [
            enum_value(s, SCOPES, f"data_scopes[{i}]", problems)
            for i, s in enumerate(request.data_scopes)
        ]
        purpose = enum_value(request.purpose, PURPOSES, "purpose", problems)
        expires_at = (
            datetime_from_proto(request.expires_at, "expires_at", problems)
            if request.HasField("expires_at")
            else None
        )
        consent = self._consents.record_consent(
            idem=idempotency(request, caller, "RecordConsent"),
            platform_merchant_id=request.platform_merchant_id,
            bank_ids=list(request.bank_ids),
            data_scopes=scopes,
            purpose=purpose,
            expires_at=expires_at,
            evidence_reference=request.evidence_reference,
            shape_problems=problems,
        )
        return rs.RecordConsentResponse(consent=consent_to_proto(consent, now=self._clock()))

    @unary(REFERRAL_SERVICE, rs.RevokeConsentResponse)
    def RevokeConsent(
        self, request: rs.RevokeConsentRequest, context: grpc.ServicerContext, caller: Caller
    ) -> rs.RevokeConsentResponse:
        consent = self._consents.revoke_consent(
            idem=idempotency(request, caller, "RevokeConsent"),
            consent_id=request.consent_id,
            reason=request.reason,
        )
        return rs.RevokeConsentResponse(consent=consent_to_proto(consent, now=self._clock()))


class ReferralBankRpcs:
    """PartnerBankService: pull, stream and acknowledge referrals; the published signing keys."""

    _referrals: Referrals
    _blacklist: BlacklistNetwork
    _streams: StreamSlots

    @unary(BANK_SERVICE, pb.PullReferralsResponse)
    def PullReferrals(
        self, request: pb.PullReferralsRequest, context: grpc.ServicerContext, caller: Caller
    ) -> pb.PullReferralsResponse:
        cases, next_cursor = self._referrals.pull_referrals(
            bank_id=caller.partner_id, cursor=request.cursor, page_size=request.page_size
        )
        return pb.PullReferralsResponse(
            referrals=[
                referral_envelope_to_proto(c, self._referrals.cursor_after(c)) for c in cases
            ],
            next_cursor=next_cursor,
        )

    @unary(BANK_SERVICE, pb.AcknowledgeReferralResponse)
    def AcknowledgeReferral(
        self,
        request: pb.AcknowledgeReferralRequest,
        context: grpc.ServicerContext,
        caller: Caller,
    ) -> pb.AcknowledgeReferralResponse:
        detail = self._referrals.acknowledge_referral(
            idem=idempotency(request, caller, "AcknowledgeReferral"),
            bank_id=caller.partner_id,
            case_id=request.case_id,
            bank_reference=request.bank_reference,
        )
        return pb.AcknowledgeReferralResponse(financing_case=case_detail_to_proto(detail))

    @server_stream(BANK_SERVICE)
    def StreamReferrals(
        self, request: pb.StreamReferralsRequest, context: grpc.ServicerContext, caller: Caller
    ) -> Iterator[pb.StreamReferralsResponse]:
        cursor = request.cursor
        with self._streams.hold(caller.name):
            # A cancelled stream stops waiting at once, so its slot is free at once.
            context.add_callback(self._referrals.wake_referral_streams)
            while context.is_active():
                cases, cursor = self._referrals.pull_referrals(
                    bank_id=caller.partner_id, cursor=cursor, page_size=STREAM_PAGE
                )
                for case in cases:
                    yield pb.StreamReferralsResponse(
                        referral=referral_envelope_to_proto(
                            case, self._referrals.cursor_after(case)
                        )
                    )
                if len(cases) < STREAM_PAGE:
                    self._referrals.wait_for_referrals(STREAM_POLL_SECONDS)

    @unary(BANK_SERVICE, pb.GetSigningKeysResponse)
    def GetSigningKeys(
        self, request: pb.GetSigningKeysRequest, context: grpc.ServicerContext, caller: Caller
    ) -> pb.GetSigningKeysResponse:
        return pb.GetSigningKeysResponse(
            keys=[signing_key_to_proto(k) for k in self._referrals.published_keys()],
            log_keys=[signing_key_to_proto(k) for k in self._blacklist.log.published_keys()],
        )


class SigningKeyAdminRpcs:
    """AdminService: rotate the referral signing key."""

    _referrals: Referrals

    @unary(ADMIN_SERVICE, ad.RotateSigningKeyResponse)
    def RotateSigningKey(
        self, request: ad.RotateSigningKeyRequest, context: grpc.ServicerContext, caller: Caller
    ) -> ad.RotateSigningKeyResponse:
        key = self._referrals.rotate_signing_key(
            idem=idempotency(request, caller, "RotateSigningKey")
        )
        return ad.RotateSigningKeyResponse(
            active_key=signing_key_to_proto(key),
            published_keys=[signing_key_to_proto(k) for k in self._referrals.published_keys()],
        )
