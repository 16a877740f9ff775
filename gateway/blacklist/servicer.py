"""The blacklist RPCs: BlacklistService for every party, and ReferralService's
ListEnforcementEvents for the platform.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from colending.v1 import (
    blacklist_service_pb2,
    blacklist_service_pb2_grpc,
    referral_service_pb2,
)

from colending_core import IdentifierError, IdentifierKind
from gateway.api._handler import (
    BLACKLIST_SERVICE,
    REFERRAL_SERVICE,
    idempotency,
    raise_if_invalid,
    server_stream,
    unary,
)
from gateway.api.auth import Caller, Role
from gateway.api.convert import date_from_proto, enum_value, money_from_proto
from gateway.api.limits import STREAM_POLL_SECONDS, RateLimiter, StreamSlots
from gateway.blacklist.convert import (
    APPEAL_OUTCOMES,
    IDENTIFIER_KINDS,
    LISTING_REASONS,
    blacklist_entry_to_proto,
    borrower_from_proto,
    enforcement_event_to_proto,
    logged_change_to_proto,
    signed_checkpoint_to_proto,
)
from gateway.blacklist.service import BlacklistNetwork
from gateway.errors import FieldViolation, InvalidArgument

rs = referral_service_pb2
bl = blacklist_service_pb2
# A sync stream reads this many changes at a time.
SYNC_PAGE = 500


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

    @unary(BLACKLIST_SERVICE, bl.ReportDefaultResponse)
    def ReportDefault(
        self, request: bl.ReportDefaultRequest, context: grpc.ServicerContext, caller: Caller
    ) -> bl.ReportDefaultResponse:
        problems: list[FieldViolation] = []
        borrower = request.borrower
        kind = enum_value(borrower.kind, IDENTIFIER_KINDS, "borrower.kind", problems)
        reason = enum_value(request.reason, LISTING_REASONS, "reason", problems)
        outstanding = (
            money_from_proto(request.outstanding, "outstanding", problems)
            if request.HasField("outstanding")
            else None
        )
        if outstanding is None and not any(p.field.startswith("outstanding") for p in problems):
            problems.append(FieldViolation("outstanding", "required (CNY, in fen; 0 allowed)"))
        default_date = date_from_proto(request.default_date, "default_date", problems)
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
            entry=blacklist_entry_to_proto(change.entry), log_index=change.log_index
        )

    @unary(BLACKLIST_SERVICE, bl.CheckBorrowersResponse)
    def CheckBorrowers(
        self, request: bl.CheckBorrowersRequest, context: grpc.ServicerContext, caller: Caller
    ) -> bl.CheckBorrowersResponse:
        problems: list[FieldViolation] = []
        borrowers = [
            borrower_from_proto(b, f"borrowers[{i}]", problems)
            for i, b in enumerate(request.borrowers)
        ]
        raise_if_invalid(problems)
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
                    entries=[blacklist_entry_to_proto(e, free_text=False) for e in r.entries],
                )
                for r in results
            ],
            tree_size=tree_size,
        )

    @server_stream(BLACKLIST_SERVICE)
    def SyncBlacklist(
        self, request: bl.SyncBlacklistRequest, context: grpc.ServicerContext, caller: Caller
    ) -> Iterator[bl.SyncBlacklistResponse]:
        self._require_active(caller)
        position = request.from_log_index
        size = self._network.log.size()
        if not 0 <= position <= size:
            raise InvalidArgument.single(
                "from_log_index", f"must be between 0 and the log size {size}"
            )
        with self._streams.hold(caller.name):
            context.add_callback(self._network.log.changed)  # a cancelled stream stops waiting
            checkpointed = -1
            while context.is_active():
                changes = self._network.log.changes_from(position, limit=SYNC_PAGE)
                for change in changes:
                    yield bl.SyncBlacklistResponse(change=logged_change_to_proto(change))
                    position = change.log_index + 1
                if len(changes) == SYNC_PAGE:
                    continue
                if position != checkpointed:
                    # Caught up: a signed root of exactly what was sent lets the client check
                    # its copy before it trusts it.
                    signed = self._network.log.checkpoint(position)
                    yield bl.SyncBlacklistResponse(checkpoint=signed_checkpoint_to_proto(signed))
                    checkpointed = position
                self._network.log.wait_for_change(STREAM_POLL_SECONDS)

    @unary(BLACKLIST_SERVICE, bl.FileAppealResponse)
    def FileAppeal(
        self, request: bl.FileAppealRequest, context: grpc.ServicerContext, caller: Caller
    ) -> bl.FileAppealResponse:
        entry = self._network.file_appeal(
            idem=idempotency(request, caller, "FileAppeal"),
            filed_by=caller.name,
            entry_id=request.entry_id,
            grounds=request.grounds,
        )
        return bl.FileAppealResponse(entry=blacklist_entry_to_proto(entry))

    @unary(BLACKLIST_SERVICE, bl.ResolveAppealResponse)
    def ResolveAppeal(
        self, request: bl.ResolveAppealRequest, context: grpc.ServicerContext, caller: Caller
    ) -> bl.ResolveAppealResponse:
        self._require_active(caller)
        problems: list[FieldViolation] = []
        outcome = enum_value(request.outcome, APPEAL_OUTCOMES, "outcome", problems)
        raise_if_invalid(problems)
        entry = self._network.resolve_appeal(
            idem=idempotency(request, caller, "ResolveAppeal"),
            resolved_by=caller.name,
            resolver_bank_id=caller.partner_id if caller.role is Role.PARTNER else None,
            entry_id=request.entry_id,
            outcome=outcome,
            reason=request.reason,
        )
        return bl.ResolveAppealResponse(entry=blacklist_entry_to_proto(entry))

    @unary(BLACKLIST_SERVICE, bl.GetCheckpointResponse)
    def GetCheckpoint(
        self, request: bl.GetCheckpointRequest, context: grpc.ServicerContext, caller: Caller
    ) -> bl.GetCheckpointResponse:
        self._require_active(caller)
        signed = self._network.log.checkpoint()
        return bl.GetCheckpointResponse(checkpoint=signed_checkpoint_to_proto(signed))

    @unary(BLACKLIST_SERVICE, bl.GetInclusionProofResponse)
    def GetInclusionProof(
        self, request: bl.GetInclusionProofRequest, context: grpc.ServicerContext, caller: Caller
    ) -> bl.GetInclusionProofResponse:
        self._require_active(caller)
        size, leaf, hashes = self._network.log.inclusion_proof(
            log_index=request.log_index, tree_size=request.tree_size
        )
        return bl.GetInclusionProofResponse(
            log_index=request.log_index, tree_size=size, leaf=leaf, hashes=hashes
        )

    @unary(BLACKLIST_SERVICE, bl.GetConsistencyProofResponse)
    def GetConsistencyProof(
        self,
        request: bl.GetConsistencyProofRequest,
        context: grpc.ServicerContext,
        caller: Caller,
    ) -> bl.GetConsistencyProofResponse:
        self._require_active(caller)
        size, hashes = self._network.log.consistency_proof(
            first=request.first_tree_size, second=request.second_tree_size
        )
        return bl.GetConsistencyProofResponse(
            first_tree_size=request.first_tree_size, second_tree_size=size, hashes=hashes
        )


class EnforcementRpcs:
    """ReferralService: the platform's enforcement events (restrict or lift a store)."""

    _blacklist: BlacklistNetwork

    @unary(REFERRAL_SERVICE, rs.ListEnforcementEventsResponse)
    def ListEnforcementEvents(
        self,
        request: rs.ListEnforcementEventsRequest,
        context: grpc.ServicerContext,
        caller: Caller,
    ) -> rs.ListEnforcementEventsResponse:
        page = self._blacklist.enforcement_events(
            page_size=request.page_size,
            page_token=request.page_token,
            platform_merchant_id=request.platform_merchant_id,
        )
        return rs.ListEnforcementEventsResponse(
            events=[enforcement_event_to_proto(e) for e in page.events],
            next_page_token=page.next_page_token,
        )
