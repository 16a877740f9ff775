"""The financing RPCs: the banks' decisions, loan events and cases (PartnerBankService), the
platform's answer to a counter-offer (ReferralService) and portfolio figures (AdminService).
"""

from __future__ import annotations

import grpc
from colending.v1 import (
    admin_service_pb2,
    financing_pb2,
    partner_bank_service_pb2,
    referral_service_pb2,
)

from gateway._transactions import utc_now
from gateway.api._handler import (
    ADMIN_SERVICE,
    BANK_SERVICE,
    REFERRAL_SERVICE,
    idempotency,
    raise_if_invalid,
    unary,
)
from gateway.api.auth import Caller, Role
from gateway.api.convert import enum_value, timestamp
from gateway.errors import FieldViolation
from gateway.financing.convert import (
    ANSWERS,
    FINANCING_STATES,
    case_detail_to_proto,
    decision_from_proto,
    financing_case_to_proto,
    loan_event_from_proto,
    portfolio_stats_to_proto,
    signed_decision_from_proto,
    signed_event_from_proto,
)
from gateway.financing.service import Financing

rs = referral_service_pb2
pb = partner_bank_service_pb2
ad = admin_service_pb2


class FinancingBankRpcs:
    """PartnerBankService: decide, report loan events, read and list cases."""

    _financing: Financing

    @unary(BANK_SERVICE, pb.GetFinancingCaseResponse)
    def GetFinancingCase(
        self, request: pb.GetFinancingCaseRequest, context: grpc.ServicerContext, caller: Caller
    ) -> pb.GetFinancingCaseResponse:
        detail = self._financing.get_financing_case(
            bank_id=caller.partner_id if caller.role is Role.PARTNER else None,
            case_id=request.case_id,
        )
        return pb.GetFinancingCaseResponse(financing_case=case_detail_to_proto(detail))

    @unary(BANK_SERVICE, pb.SubmitDecisionResponse)
    def SubmitDecision(
        self, request: pb.SubmitDecisionRequest, context: grpc.ServicerContext, caller: Caller
    ) -> pb.SubmitDecisionResponse:
        problems: list[FieldViolation] = []
        detail = self._financing.submit_decision(
            idem=idempotency(
                request,
                caller,
                "SubmitDecision",
                signed={"signed_decision": financing_pb2.DecisionStatement},
            ),
            bank_id=caller.partner_id,
            case_id=request.case_id,
            decision=decision_from_proto(request.decision, "decision", problems)
            if request.HasField("decision")
            else None,
            signed=signed_decision_from_proto(request.signed_decision)
            if request.HasField("signed_decision")
            else None,
            shape_problems=problems,
        )
        return pb.SubmitDecisionResponse(financing_case=case_detail_to_proto(detail))

    @unary(BANK_SERVICE, pb.ReportLoanEventResponse)
    def ReportLoanEvent(
        self, request: pb.ReportLoanEventRequest, context: grpc.ServicerContext, caller: Caller
    ) -> pb.ReportLoanEventResponse:
        problems: list[FieldViolation] = []
        detail = self._financing.report_loan_event(
            idem=idempotency(
                request,
                caller,
                "ReportLoanEvent",
                signed={"signed_event": financing_pb2.LoanEventStatement},
            ),
            bank_id=caller.partner_id,
            case_id=request.case_id,
            event=loan_event_from_proto(request.event, "event", problems)
            if request.HasField("event")
            else None,
            signed=signed_event_from_proto(request.signed_event)
            if request.HasField("signed_event")
            else None,
            shape_problems=problems,
        )
        return pb.ReportLoanEventResponse(financing_case=case_detail_to_proto(detail))

    @unary(BANK_SERVICE, pb.ListFinancingCasesResponse)
    def ListFinancingCases(
        self,
        request: pb.ListFinancingCasesRequest,
        context: grpc.ServicerContext,
        caller: Caller,
    ) -> pb.ListFinancingCasesResponse:
        problems: list[FieldViolation] = []
        state = enum_value(request.state, FINANCING_STATES, "state", problems)
        raise_if_invalid(problems)
        page = self._financing.list_financing_cases(
            bank_id=caller.partner_id,
            page_size=request.page_size,
            page_token=request.page_token,
            state=state,
            platform_merchant_id=request.platform_merchant_id,
        )
        return pb.ListFinancingCasesResponse(
            financing_cases=[financing_case_to_proto(c, ()) for c in page.items],
            next_page_token=page.next_page_token,
        )


class CounterOfferRpcs:
    """ReferralService: the platform accepts or rejects a bank's counter-offer."""

    _financing: Financing

    @unary(REFERRAL_SERVICE, rs.RespondToCounterOfferResponse)
    def RespondToCounterOffer(
        self,
        request: rs.RespondToCounterOfferRequest,
        context: grpc.ServicerContext,
        caller: Caller,
    ) -> rs.RespondToCounterOfferResponse:
        problems: list[FieldViolation] = []
        answer = enum_value(request.answer, ANSWERS, "answer", problems)
        detail = self._financing.respond_to_counter_offer(
            idem=idempotency(request, caller, "RespondToCounterOffer"),
            case_id=request.case_id,
            answer=answer,
            reason=request.reason,
            shape_problems=problems,
        )
        return rs.RespondToCounterOfferResponse(financing_case=case_detail_to_proto(detail))


class PortfolioRpcs:
    """AdminService: portfolio figures per bank and overall."""

    _financing: Financing

    @unary(ADMIN_SERVICE, ad.GetPortfolioStatsResponse)
    def GetPortfolioStats(
        self, request: ad.GetPortfolioStatsRequest, context: grpc.ServicerContext, caller: Caller
    ) -> ad.GetPortfolioStatsResponse:
        banks, overall = self._financing.portfolio_stats(bank_id=request.bank_id)
        return ad.GetPortfolioStatsResponse(
            banks=[portfolio_stats_to_proto(s) for s in banks],
            overall=portfolio_stats_to_proto(overall),
            computed_at=timestamp(utc_now()),
        )
