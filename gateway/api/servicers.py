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
    financing_pb2,
    partner_bank_service_pb2,
    partner_bank_service_pb2_grpc,
    referral_service_pb2,
    referral_service_pb2_grpc,
)

from gateway._transactions import utc_now
from gateway.api import convert
from gateway.api._handler import idempotency, server_stream, unary
from gateway.api.auth import Caller, Role
from gateway.api.limits import RateLimiter, StreamSlots
from gateway.blacklist import BlacklistNetwork
from gateway.errors import FieldViolation, InvalidArgument
from gateway.service import Gateway, PartnerChanges
from partners.sdk._identifiers import IdentifierError
from partners.sdk._pseudonym import IdentifierKind

REFERRAL = "colending.v1.ReferralService"
BANK = "colending.v1.PartnerBankService"
ADMIN = "colending.v1.AdminService"

rs = referral_service_pb2
pb = partner_bank_service_pb2
ad = admin_service_pb2


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

    @unary(REFERRAL, rs.ListEnforcementEventsResponse)
    def ListEnforcementEvents(
        self,
        request: rs.ListEnforcementEventsRequest,
        context: grpc.ServicerContext,
        caller: Caller,
    ) -> rs.ListEnforcementEventsResponse:
        page = self._gateway.blacklist.enforcement_events(
            page_size=request.page_size,
            page_token=request.page_token,
            platform_merchant_id=request.platform_merchant_id,
        )
        return rs.ListEnforcementEventsResponse(
            events=[convert.enforcement_event_to_proto(e) for e in page.events],
            next_page_token=page.next_page_token,
        )


# A live stream re-reads the database at least this often, which bounds how late it sees a write
# made through another replica (writes made here wake it at once).
STREAM_POLL_SECONDS = 0.5


class PartnerBankServicer(partner_bank_service_pb2_grpc.PartnerBankServiceServicer):
    def __init__(
        self,
        *,
        gateway: Gateway,
        streams: StreamSlots | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._gateway = gateway
        self._streams = streams or StreamSlots(limit=4, per_caller=2)
        self._limiter = limiter

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
            bank_id=caller.partner_id if caller.role is Role.PARTNER else None,
            case_id=request.case_id,
        )
        return pb.GetFinancingCaseResponse(financing_case=convert.case_detail_to_proto(detail))

    @server_stream(BANK)
    def StreamReferrals(
        self, request: pb.StreamReferralsRequest, context: grpc.ServicerContext, caller: Caller
    ) -> Iterator[pb.StreamReferralsResponse]:
        cursor = request.cursor
        with self._streams.hold(caller.name):
            # A cancelled stream stops waiting at once, so its slot is free at once.
            context.add_callback(self._gateway.wake_referral_streams)
            while context.is_active():
                cases, cursor = self._gateway.pull_referrals(
                    bank_id=caller.partner_id, cursor=cursor, page_size=STREAM_PAGE
                )
                for case in cases:
                    yield pb.StreamReferralsResponse(
                        referral=convert.referral_envelope_to_proto(
                            case, self._gateway.cursor_after(case)
                        )
                    )
                if len(cases) < STREAM_PAGE:
                    self._gateway.wait_for_referrals(STREAM_POLL_SECONDS)

    @unary(BANK, pb.SubmitDecisionResponse)
    def SubmitDecision(
        self, request: pb.SubmitDecisionRequest, context: grpc.ServicerContext, caller: Caller
    ) -> pb.SubmitDecisionResponse:
        problems: list[FieldViolation] = []
        detail = self._gateway.submit_decision(
            idem=idempotency(
                request,
                caller,
                "SubmitDecision",
                signed={"signed_decision": financing_pb2.DecisionStatement},
            ),
            bank_id=caller.partner_id,
            case_id=request.case_id,
            decision=convert.decision_from_proto(request.decision, "decision", problems)
            if request.HasField("decision")
            else None,
            signed=convert.signed_decision_from_proto(request.signed_decision)
            if request.HasField("signed_decision")
            else None,
            shape_problems=problems,
        )
        return pb.SubmitDecisionResponse(financing_case=convert.case_detail_to_proto(detail))

    @unary(BANK, pb.ReportLoanEventResponse)
    def ReportLoanEvent(
        self, request: pb.ReportLoanEventRequest, context: grpc.ServicerContext, caller: Caller
    ) -> pb.ReportLoanEventResponse:
        problems: list[FieldViolation] = []
        detail = self._gateway.report_loan_event(
            idem=idempotency(
                request,
                caller,
                "ReportLoanEvent",
                signed={"signed_event": financing_pb2.LoanEventStatement},
            ),
            bank_id=caller.partner_id,
            case_id=request.case_id,
            event=convert.loan_event_from_proto(request.event, "event", problems)
            if request.HasField("event")
            else None,
            signed=convert.signed_event_from_proto(request.signed_event)
            if request.HasField("signed_event")
            else None,
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
            keys=[convert.signing_key_to_proto(k) for k in self._gateway.published_keys()],
            log_keys=[
                convert.signing_key_to_proto(k)
                for k in self._gateway.blacklist.published_log_keys()
            ],
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

    @unary(ADMIN, ad.ListDeliveryTasksResponse)
    def ListDeliveryTasks(
        self, request: ad.ListDeliveryTasksRequest, context: grpc.ServicerContext, caller: Caller
    ) -> ad.ListDeliveryTasksResponse:
        problems: list[FieldViolation] = []
        state = convert.enum_value(request.state, convert.DELIVERY_STATES, "state", problems)
        _raise_if(problems)
        page = self._gateway.list_delivery_tasks(
            page_size=request.page_size,
            page_token=request.page_token,
            state=state,
            bank_id=request.bank_id,
        )
        return ad.ListDeliveryTasksResponse(
            tasks=[convert.delivery_task_to_proto(t) for t in page.items],
            next_page_token=page.next_page_token,
        )

    @unary(ADMIN, ad.RequeueDeliveryResponse)
    def RequeueDelivery(
        self, request: ad.RequeueDeliveryRequest, context: grpc.ServicerContext, caller: Caller
    ) -> ad.RequeueDeliveryResponse:
        task = self._gateway.requeue_delivery(
            idem=idempotency(request, caller, "RequeueDelivery"), task_id=request.task_id
        )
        return ad.RequeueDeliveryResponse(task=convert.delivery_task_to_proto(task))


bl = blacklist_service_pb2
BLACKLIST = "colending.v1.BlacklistService"
SYNC_PAGE = 500
STREAM_PAGE = 100


class BlacklistServicer(blacklist_service_pb2_grpc.BlacklistServiceServicer):
    def __init__(
        self,
        *,
        network: BlacklistNetwork,
        streams: StreamSlots | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._network = network
        self._streams = streams or StreamSlots(limit=4, per_caller=2)
        self._limiter = limiter

    def _without_identifier(
        self, request: bl.ReportDefaultRequest, kind: IdentifierKind | None
    ) -> bl.ReportDefaultRequest:
        """The request as its idempotency record fingerprints it: the raw identifier replaced by
        its pseudonym, since a plain hash of an 18-character code can be reversed by trial."""
        scrubbed = bl.ReportDefaultRequest()
        scrubbed.CopyFrom(request)
        try:
            scrubbed.borrower.value = (
                self._network.pseudonym_of(kind, request.borrower.value).hex() if kind else ""
            )
        except IdentifierError:
            scrubbed.borrower.value = ""  # refused before anything is stored
        return scrubbed

    def _require_active(self, caller: Caller) -> None:
        """A bank must be registered and active to read or answer for the list."""
        if caller.role is Role.PARTNER:
            self._network.require_active_partner(caller.partner_id)

    @unary(BLACKLIST, bl.ReportDefaultResponse)
    def ReportDefault(
        self, request: bl.ReportDefaultRequest, context: grpc.ServicerContext, caller: Caller
    ) -> bl.ReportDefaultResponse:
        problems: list[FieldViolation] = []
        borrower = request.borrower
        kind = convert.enum_value(
            borrower.kind, convert.IDENTIFIER_KINDS, "borrower.kind", problems
        )
        reason = convert.enum_value(request.reason, convert.LISTING_REASONS, "reason", problems)
        outstanding = (
            convert.money_from_proto(request.outstanding, "outstanding", problems)
            if request.HasField("outstanding")
            else None
        )
        if outstanding is None and not any(p.field.startswith("outstanding") for p in problems):
            problems.append(FieldViolation("outstanding", "required (CNY, in fen; 0 allowed)"))
        default_date = convert.date_from_proto(request.default_date, "default_date", problems)
        change = self._network.report_default(
            idem=idempotency(self._without_identifier(request, kind), caller, "ReportDefault"),
            reporter_bank_id=caller.partner_id,
            kind=kind,
            raw_identifier=borrower.value,
            reason=reason,
            outstanding_fen=outstanding or 0,
            default_date=default_date,
            evidence_case_id=request.evidence_case_id,
            shape_problems=problems,
        )
        return bl.ReportDefaultResponse(
            entry=convert.blacklist_entry_to_proto(change.entry), log_index=change.log_index
        )

    @unary(BLACKLIST, bl.CheckBorrowersResponse)
    def CheckBorrowers(
        self, request: bl.CheckBorrowersRequest, context: grpc.ServicerContext, caller: Caller
    ) -> bl.CheckBorrowersResponse:
        problems: list[FieldViolation] = []
        borrowers = [
            convert.borrower_from_proto(b, f"borrowers[{i}]", problems)
            for i, b in enumerate(request.borrowers)
        ]
        _raise_if(problems)
        results, tree_size = self._network.check(
            [b for b in borrowers if b is not None],
            partner_id=caller.partner_id if caller.role is Role.PARTNER else None,
        )
        return bl.CheckBorrowersResponse(
            results=[
                bl.BorrowerCheckResult(
                    index=r.index,
                    pseudonym=r.pseudonym,
                    clear=not r.entries,
                    # Appeal grounds and answers are the parties' business, not every bank's.
                    entries=[
                        convert.blacklist_entry_to_proto(e, free_text=False) for e in r.entries
                    ],
                )
                for r in results
            ],
            tree_size=tree_size,
        )

    @server_stream(BLACKLIST)
    def SyncBlacklist(
        self, request: bl.SyncBlacklistRequest, context: grpc.ServicerContext, caller: Caller
    ) -> Iterator[bl.SyncBlacklistResponse]:
        self._require_active(caller)
        position = request.from_log_index
        size = self._network.log_size()
        if not 0 <= position <= size:
            raise InvalidArgument.single(
                "from_log_index", f"must be between 0 and the log size {size}"
            )
        with self._streams.hold(caller.name):
            context.add_callback(self._network.changed)  # a cancelled stream stops waiting
            checkpointed = -1
            while context.is_active():
                changes = self._network.changes_from(position, limit=SYNC_PAGE)
                for change in changes:
                    yield bl.SyncBlacklistResponse(change=convert.logged_change_to_proto(change))
                    position = change.log_index + 1
                if len(changes) == SYNC_PAGE:
                    continue
                if position != checkpointed:
                    # Caught up: a signed root of exactly what was sent lets the client check
                    # its copy before it trusts it.
                    signed = self._network.checkpoint(position)
                    yield bl.SyncBlacklistResponse(
                        checkpoint=convert.signed_checkpoint_to_proto(signed)
                    )
                    checkpointed = position
                self._network.wait_for_change(STREAM_POLL_SECONDS)

    @unary(BLACKLIST, bl.FileAppealResponse)
    def FileAppeal(
        self, request: bl.FileAppealRequest, context: grpc.ServicerContext, caller: Caller
    ) -> bl.FileAppealResponse:
        entry = self._network.file_appeal(
            idem=idempotency(request, caller, "FileAppeal"),
            filed_by=caller.name,
            entry_id=request.entry_id,
            grounds=request.grounds,
        )
        return bl.FileAppealResponse(entry=convert.blacklist_entry_to_proto(entry))

    @unary(BLACKLIST, bl.ResolveAppealResponse)
    def ResolveAppeal(
        self, request: bl.ResolveAppealRequest, context: grpc.ServicerContext, caller: Caller
    ) -> bl.ResolveAppealResponse:
        self._require_active(caller)
        problems: list[FieldViolation] = []
        outcome = convert.enum_value(request.outcome, convert.APPEAL_OUTCOMES, "outcome", problems)
        _raise_if(problems)
        entry = self._network.resolve_appeal(
            idem=idempotency(request, caller, "ResolveAppeal"),
            resolved_by=caller.name,
            resolver_bank_id=caller.partner_id if caller.role is Role.PARTNER else None,
            entry_id=request.entry_id,
            outcome=outcome,
            reason=request.reason,
        )
        return bl.ResolveAppealResponse(entry=convert.blacklist_entry_to_proto(entry))

    @unary(BLACKLIST, bl.GetCheckpointResponse)
    def GetCheckpoint(
        self, request: bl.GetCheckpointRequest, context: grpc.ServicerContext, caller: Caller
    ) -> bl.GetCheckpointResponse:
        self._require_active(caller)
        signed = self._network.checkpoint()
        return bl.GetCheckpointResponse(checkpoint=convert.signed_checkpoint_to_proto(signed))

    @unary(BLACKLIST, bl.GetInclusionProofResponse)
    def GetInclusionProof(
        self, request: bl.GetInclusionProofRequest, context: grpc.ServicerContext, caller: Caller
    ) -> bl.GetInclusionProofResponse:
        self._require_active(caller)
        size, leaf, hashes = self._network.inclusion_proof(
            log_index=request.log_index, tree_size=request.tree_size
        )
        return bl.GetInclusionProofResponse(
            log_index=request.log_index, tree_size=size, leaf=leaf, hashes=hashes
        )

    @unary(BLACKLIST, bl.GetConsistencyProofResponse)
    def GetConsistencyProof(
        self,
        request: bl.GetConsistencyProofRequest,
        context: grpc.ServicerContext,
        caller: Caller,
    ) -> bl.GetConsistencyProofResponse:
        self._require_active(caller)
        size, hashes = self._network.consistency_proof(
            first=request.first_tree_size, second=request.second_tree_size
        )
        return bl.GetConsistencyProofResponse(
            first_tree_size=request.first_tree_size, second_tree_size=size, hashes=hashes
        )


UPDATABLE_PARTNER_FIELDS = frozenset({"display_name", "endpoint", "policy", "decision_public_key"})
