"""Thin servicers: protobuf in, domain call, protobuf out. Rules live in gateway.service."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

import grpc
from colending.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    blacklist_service_pb2,
    blacklist_service_pb2_grpc,
    partner_bank_service_pb2,
    partner_bank_service_pb2_grpc,
    referral_service_pb2,
    referral_service_pb2_grpc,
)
from google.protobuf.message import Message

from gateway.api import convert
from gateway.api._handler import idempotency, unary, unimplemented
from gateway.api.auth import Caller
from gateway.errors import FieldViolation, InvalidArgument
from gateway.service import Gateway, PartnerChanges, utc_now

REFERRAL = "colending.v1.ReferralService"
BANK = "colending.v1.PartnerBankService"
ADMIN = "colending.v1.AdminService"

rs = referral_service_pb2
pb = partner_bank_service_pb2
ad = admin_service_pb2


def _unverified_evidence(request: Message, field: str) -> list[FieldViolation]:
    """Signed evidence needs the banks' registered keys (planned work). Until the gateway can
    verify and keep it, refuse it rather than accept and silently drop it."""
    if request.HasField(field):
        return [FieldViolation(field, "signed evidence is not accepted yet; omit it")]
    return []


def _raise_if(problems: list[FieldViolation]) -> None:
    if problems:
        raise InvalidArgument(problems)


class ReferralServicer(referral_service_pb2_grpc.ReferralServiceServicer):
    def __init__(self, *, gateway: Gateway, clock: Callable[[], datetime] = utc_now) -> None:
        self._gateway = gateway
        self._clock = clock

    @unary(REFERRAL, rs.SubmitReferralResponse)
    def SubmitReferral(
        self, request: rs.SubmitReferralRequest, context: grpc.ServicerContext, caller: Caller
    ) -> rs.SubmitReferralResponse:
        problems: list[FieldViolation] = []
        merchant = convert.merchant_from_proto(request.merchant, "merchant", problems)
        referral = self._gateway.submit_referral(
            idem=idempotency(request, caller, "SubmitReferral"),
            merchant=merchant,
            consent_id=request.consent_id,
            bank_ids=list(request.bank_ids),
            shape_problems=problems,
        )
        return rs.SubmitReferralResponse(referral=convert.referral_to_proto(referral))

    @unary(REFERRAL, rs.GetReferralResponse)
    def GetReferral(
        self, request: rs.GetReferralRequest, context: grpc.ServicerContext, caller: Caller
    ) -> rs.GetReferralResponse:
        referral = self._gateway.get_referral(request.referral_id)
        return rs.GetReferralResponse(referral=convert.referral_to_proto(referral))

    @unary(REFERRAL, rs.ListReferralsResponse)
    def ListReferrals(
        self, request: rs.ListReferralsRequest, context: grpc.ServicerContext, caller: Caller
    ) -> rs.ListReferralsResponse:
        problems: list[FieldViolation] = []
        state = convert.enum_value(request.state, convert.REFERRAL_STATES, "state", problems)
        _raise_if(problems)
        page = self._gateway.list_referrals(
            page_size=request.page_size,
            page_token=request.page_token,
            platform_merchant_id=request.platform_merchant_id,
            state=state,
        )
        return rs.ListReferralsResponse(
            referrals=[convert.referral_to_proto(r) for r in page.items],
            next_page_token=page.next_page_token,
        )

    @unary(REFERRAL, rs.WithdrawReferralResponse)
    def WithdrawReferral(
        self, request: rs.WithdrawReferralRequest, context: grpc.ServicerContext, caller: Caller
    ) -> rs.WithdrawReferralResponse:
        referral = self._gateway.withdraw_referral(
            idem=idempotency(request, caller, "WithdrawReferral"),
            referral_id=request.referral_id,
            reason=request.reason,
        )
        return rs.WithdrawReferralResponse(referral=convert.referral_to_proto(referral))

    @unary(REFERRAL, rs.RecordConsentResponse)
    def RecordConsent(
        self, request: rs.RecordConsentRequest, context: grpc.ServicerContext, caller: Caller
    ) -> rs.RecordConsentResponse:
        problems: list[FieldViolation] = []
        scopes = [
            convert.enum_value(s, convert.SCOPES, f"data_scopes[{i}]", problems)
            for i, s in enumerate(request.data_scopes)
        ]
        purpose = convert.enum_value(request.purpose, convert.PURPOSES, "purpose", problems)
        expires_at = (
            convert.datetime_from_proto(request.expires_at, "expires_at", problems)
            if request.HasField("expires_at")
            else None
        )
        consent = self._gateway.record_consent(
            idem=idempotency(request, caller, "RecordConsent"),
            platform_merchant_id=request.platform_merchant_id,
            bank_ids=list(request.bank_ids),
            data_scopes=scopes,
            purpose=purpose,
            expires_at=expires_at,
            evidence_reference=request.evidence_reference,
            shape_problems=problems,
        )
        return rs.RecordConsentResponse(
            consent=convert.consent_to_proto(consent, now=self._clock())
        )

    @unary(REFERRAL, rs.RevokeConsentResponse)
    def RevokeConsent(
        self, request: rs.RevokeConsentRequest, context: grpc.ServicerContext, caller: Caller
    ) -> rs.RevokeConsentResponse:
        consent = self._gateway.revoke_consent(
            idem=idempotency(request, caller, "RevokeConsent"),
            consent_id=request.consent_id,
            reason=request.reason,
        )
        return rs.RevokeConsentResponse(
            consent=convert.consent_to_proto(consent, now=self._clock())
        )

    @unary(REFERRAL, rs.RespondToCounterOfferResponse)
    def RespondToCounterOffer(
        self,
        request: rs.RespondToCounterOfferRequest,
        context: grpc.ServicerContext,
        caller: Caller,
    ) -> rs.RespondToCounterOfferResponse:
        problems: list[FieldViolation] = []
        answer = convert.enum_value(request.answer, convert.ANSWERS, "answer", problems)
        detail = self._gateway.respond_to_counter_offer(
            idem=idempotency(request, caller, "RespondToCounterOffer"),
            case_id=request.case_id,
            answer=answer,
            reason=request.reason,
            shape_problems=problems,
        )
        return rs.RespondToCounterOfferResponse(financing_case=convert.case_detail_to_proto(detail))


class PartnerBankServicer(partner_bank_service_pb2_grpc.PartnerBankServiceServicer):
    def __init__(self, *, gateway: Gateway) -> None:
        self._gateway = gateway

    @unary(BANK, pb.PullReferralsResponse)
    def PullReferrals(
        self, request: pb.PullReferralsRequest, context: grpc.ServicerContext, caller: Caller
    ) -> pb.PullReferralsResponse:
        cases, next_cursor = self._gateway.pull_referrals(
            bank_id=caller.partner_id, cursor=request.cursor, page_size=request.page_size
        )
        return pb.PullReferralsResponse(
            referrals=[
                convert.referral_envelope_to_proto(c, self._gateway.cursor_after(c)) for c in cases
            ],
            next_cursor=next_cursor,
        )

    @unary(BANK, pb.AcknowledgeReferralResponse)
    def AcknowledgeReferral(
        self,
        request: pb.AcknowledgeReferralRequest,
        context: grpc.ServicerContext,
        caller: Caller,
    ) -> pb.AcknowledgeReferralResponse:
        detail = self._gateway.acknowledge_referral(
            idem=idempotency(request, caller, "AcknowledgeReferral"),
            bank_id=caller.partner_id,
            case_id=request.case_id,
            bank_reference=request.bank_reference,
        )
        return pb.AcknowledgeReferralResponse(financing_case=convert.case_detail_to_proto(detail))

    @unary(BANK, pb.GetFinancingCaseResponse)
    def GetFinancingCase(
        self, request: pb.GetFinancingCaseRequest, context: grpc.ServicerContext, caller: Caller
    ) -> pb.GetFinancingCaseResponse:
        detail = self._gateway.get_financing_case(
            bank_id=caller.partner_id, case_id=request.case_id
        )
        return pb.GetFinancingCaseResponse(financing_case=convert.case_detail_to_proto(detail))

    def StreamReferrals(
        self, request: pb.StreamReferralsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.StreamReferralsResponse]:
        unimplemented(context, "StreamReferrals")
        return iter(())

    @unary(BANK, pb.SubmitDecisionResponse)
    def SubmitDecision(
        self, request: pb.SubmitDecisionRequest, context: grpc.ServicerContext, caller: Caller
    ) -> pb.SubmitDecisionResponse:
        problems = _unverified_evidence(request, "signed_decision")
        decision = convert.decision_from_proto(request.decision, "decision", problems)
        detail = self._gateway.submit_decision(
            idem=idempotency(request, caller, "SubmitDecision"),
            bank_id=caller.partner_id,
            case_id=request.case_id,
            decision=decision,
            shape_problems=problems,
        )
        return pb.SubmitDecisionResponse(financing_case=convert.case_detail_to_proto(detail))

    @unary(BANK, pb.ReportLoanEventResponse)
    def ReportLoanEvent(
        self, request: pb.ReportLoanEventRequest, context: grpc.ServicerContext, caller: Caller
    ) -> pb.ReportLoanEventResponse:
        problems = _unverified_evidence(request, "signed_event")
        event = convert.loan_event_from_proto(request.event, "event", problems)
        detail = self._gateway.report_loan_event(
            idem=idempotency(request, caller, "ReportLoanEvent"),
            bank_id=caller.partner_id,
            case_id=request.case_id,
            event=event,
            shape_problems=problems,
        )
        return pb.ReportLoanEventResponse(financing_case=convert.case_detail_to_proto(detail))

    @unary(BANK, pb.ListFinancingCasesResponse)
    def ListFinancingCases(
        self,
        request: pb.ListFinancingCasesRequest,
        context: grpc.ServicerContext,
        caller: Caller,
    ) -> pb.ListFinancingCasesResponse:
        problems: list[FieldViolation] = []
        state = convert.enum_value(request.state, convert.FINANCING_STATES, "state", problems)
        _raise_if(problems)
        page = self._gateway.list_financing_cases(
            bank_id=caller.partner_id,
            page_size=request.page_size,
            page_token=request.page_token,
            state=state,
            platform_merchant_id=request.platform_merchant_id,
        )
        return pb.ListFinancingCasesResponse(
            financing_cases=[convert.financing_case_to_proto(c, ()) for c in page.items],
            next_page_token=page.next_page_token,
        )

    @unary(BANK, pb.GetSigningKeysResponse)
    def GetSigningKeys(
        self, request: pb.GetSigningKeysRequest, context: grpc.ServicerContext, caller: Caller
    ) -> pb.GetSigningKeysResponse:
        return pb.GetSigningKeysResponse(
            keys=[convert.signing_key_to_proto(k) for k in self._gateway.published_keys()]
        )


class AdminServicer(admin_service_pb2_grpc.AdminServiceServicer):
    def __init__(self, *, gateway: Gateway) -> None:
        self._gateway = gateway

    @unary(ADMIN, ad.RegisterPartnerResponse)
    def RegisterPartner(
        self, request: ad.RegisterPartnerRequest, context: grpc.ServicerContext, caller: Caller
    ) -> ad.RegisterPartnerResponse:
        problems: list[FieldViolation] = []
        policy = (
            convert.policy_from_proto(request.policy, "policy", problems)
            if request.HasField("policy")
            else None
        )
        partner = self._gateway.register_partner(
            idem=idempotency(request, caller, "RegisterPartner"),
            partner_id=request.partner_id,
            display_name=request.display_name,
            endpoint=request.endpoint,
            policy=policy,
            decision_public_key=request.decision_public_key,
            shape_problems=problems,
        )
        return ad.RegisterPartnerResponse(partner=convert.partner_to_proto(partner))

    @unary(ADMIN, ad.UpdatePartnerResponse)
    def UpdatePartner(
        self, request: ad.UpdatePartnerRequest, context: grpc.ServicerContext, caller: Caller
    ) -> ad.UpdatePartnerResponse:
        paths = set(request.update_mask.paths)
        problems = [
            FieldViolation("update_mask", f"cannot update {path!r}")
            for path in sorted(paths - UPDATABLE_PARTNER_FIELDS)
        ]
        given = request.partner
        policy = (
            convert.policy_from_proto(given.policy, "partner.policy", problems)
            if "policy" in paths
            else None
        )
        partner = self._gateway.update_partner(
            idem=idempotency(request, caller, "UpdatePartner"),
            partner_id=given.partner_id,
            changes=PartnerChanges(
                display_name=given.display_name if "display_name" in paths else None,
                endpoint=given.endpoint if "endpoint" in paths else None,
                policy=policy,
                decision_public_key=given.decision_public_key
                if "decision_public_key" in paths
                else None,
            ),
            shape_problems=problems,
        )
        return ad.UpdatePartnerResponse(partner=convert.partner_to_proto(partner))

    @unary(ADMIN, ad.SuspendPartnerResponse)
    def SuspendPartner(
        self, request: ad.SuspendPartnerRequest, context: grpc.ServicerContext, caller: Caller
    ) -> ad.SuspendPartnerResponse:
        partner = self._gateway.suspend_partner(
            idem=idempotency(request, caller, "SuspendPartner"),
            partner_id=request.partner_id,
            reason=request.reason,
        )
        return ad.SuspendPartnerResponse(partner=convert.partner_to_proto(partner))

    @unary(ADMIN, ad.ListPartnersResponse)
    def ListPartners(
        self, request: ad.ListPartnersRequest, context: grpc.ServicerContext, caller: Caller
    ) -> ad.ListPartnersResponse:
        problems: list[FieldViolation] = []
        state = convert.enum_value(request.state, convert.PARTNER_STATES, "state", problems)
        _raise_if(problems)
        page = self._gateway.list_partners(
            page_size=request.page_size, page_token=request.page_token, state=state
        )
        return ad.ListPartnersResponse(
            partners=[convert.partner_to_proto(p) for p in page.items],
            next_page_token=page.next_page_token,
        )

    @unary(ADMIN, ad.RotateSigningKeyResponse)
    def RotateSigningKey(
        self, request: ad.RotateSigningKeyRequest, context: grpc.ServicerContext, caller: Caller
    ) -> ad.RotateSigningKeyResponse:
        key = self._gateway.rotate_signing_key(
            idem=idempotency(request, caller, "RotateSigningKey")
        )
        return ad.RotateSigningKeyResponse(
            active_key=convert.signing_key_to_proto(key),
            published_keys=[
                convert.signing_key_to_proto(k) for k in self._gateway.published_keys()
            ],
        )

    @unary(ADMIN, ad.GetPortfolioStatsResponse)
    def GetPortfolioStats(
        self, request: ad.GetPortfolioStatsRequest, context: grpc.ServicerContext, caller: Caller
    ) -> ad.GetPortfolioStatsResponse:
        banks, overall = self._gateway.portfolio_stats(bank_id=request.bank_id)
        return ad.GetPortfolioStatsResponse(
            banks=[convert.portfolio_stats_to_proto(s) for s in banks],
            overall=convert.portfolio_stats_to_proto(overall),
            computed_at=convert.timestamp(utc_now()),
        )


bl = blacklist_service_pb2


class BlacklistServicer(blacklist_service_pb2_grpc.BlacklistServiceServicer):
    """The blacklist network's contract; its behaviour is a later piece of work."""

    def ReportDefault(
        self, request: bl.ReportDefaultRequest, context: grpc.ServicerContext
    ) -> bl.ReportDefaultResponse:
        unimplemented(context, "ReportDefault")
        return bl.ReportDefaultResponse()

    def CheckBorrowers(
        self, request: bl.CheckBorrowersRequest, context: grpc.ServicerContext
    ) -> bl.CheckBorrowersResponse:
        unimplemented(context, "CheckBorrowers")
        return bl.CheckBorrowersResponse()

    def SyncBlacklist(
        self, request: bl.SyncBlacklistRequest, context: grpc.ServicerContext
    ) -> Iterator[bl.SyncBlacklistResponse]:
        unimplemented(context, "SyncBlacklist")
        return iter(())

    def FileAppeal(
        self, request: bl.FileAppealRequest, context: grpc.ServicerContext
    ) -> bl.FileAppealResponse:
        unimplemented(context, "FileAppeal")
        return bl.FileAppealResponse()

    def ResolveAppeal(
        self, request: bl.ResolveAppealRequest, context: grpc.ServicerContext
    ) -> bl.ResolveAppealResponse:
        unimplemented(context, "ResolveAppeal")
        return bl.ResolveAppealResponse()

    def GetCheckpoint(
        self, request: bl.GetCheckpointRequest, context: grpc.ServicerContext
    ) -> bl.GetCheckpointResponse:
        unimplemented(context, "GetCheckpoint")
        return bl.GetCheckpointResponse()

    def GetInclusionProof(
        self, request: bl.GetInclusionProofRequest, context: grpc.ServicerContext
    ) -> bl.GetInclusionProofResponse:
        unimplemented(context, "GetInclusionProof")
        return bl.GetInclusionProofResponse()

    def GetConsistencyProof(
        self, request: bl.GetConsistencyProofRequest, context: grpc.ServicerContext
    ) -> bl.GetConsistencyProofResponse:
        unimplemented(context, "GetConsistencyProof")
        return bl.GetConsistencyProofResponse()


UPDATABLE_PARTNER_FIELDS = frozenset({"display_name", "endpoint", "policy", "decision_public_key"})
