"""The reconciliation RPCs on PartnerBankService: GetReconciliationStatement and
ListReconciliationDisputes for a bank (its own) and for the platform and the operator (any
bank's); FileReconciliationDispute for a bank; ResolveReconciliationDispute for the platform and
the operator. ``gateway.api.servicers`` composes them into the service."""

from __future__ import annotations

import grpc
from colending.v1 import partner_bank_service_pb2

from gateway.api._handler import BANK_SERVICE, idempotency, raise_if_invalid, unary
from gateway.api.auth import Caller, Role
from gateway.api.convert import date_from_proto, enum_value
from gateway.errors import FieldViolation, PermissionDenied
from gateway.reconciliation.convert import DISPUTE_STATES, dispute_to_proto, statement_to_proto
from gateway.reconciliation.service import Reconciliation

pb = partner_bank_service_pb2


class ReconciliationRpcs:
    _reconciliation: Reconciliation

    @unary(BANK_SERVICE, pb.GetReconciliationStatementResponse)
    def GetReconciliationStatement(
        self,
        request: pb.GetReconciliationStatementRequest,
        context: grpc.ServicerContext,
        caller: Caller,
    ) -> pb.GetReconciliationStatementResponse:
        problems: list[FieldViolation] = []
        day = date_from_proto(request.business_date, "business_date", problems)
        raise_if_invalid(problems)
        bank_id = _own(caller, request.bank_id, "statements")
        stored = self._reconciliation.statement(
            bank_id=bank_id, day=day, caller_bank=caller.role is Role.PARTNER
        )
        return pb.GetReconciliationStatementResponse(statement=statement_to_proto(stored))

    @unary(BANK_SERVICE, pb.FileReconciliationDisputeResponse)
    def FileReconciliationDispute(
        self,
        request: pb.FileReconciliationDisputeRequest,
        context: grpc.ServicerContext,
        caller: Caller,
    ) -> pb.FileReconciliationDisputeResponse:
        problems: list[FieldViolation] = []
        day = date_from_proto(request.business_date, "business_date", problems)
        dispute = self._reconciliation.file_dispute(
            idem=idempotency(request, caller, "FileReconciliationDispute"),
            bank_id=caller.partner_id,
            day=day,
            case_id=request.case_id,
            disputed_fields=list(request.disputed_fields),
            reason=request.reason,
            shape_problems=problems,
        )
        return pb.FileReconciliationDisputeResponse(dispute=dispute_to_proto(dispute))

    @unary(BANK_SERVICE, pb.ResolveReconciliationDisputeResponse)
    def ResolveReconciliationDispute(
        self,
        request: pb.ResolveReconciliationDisputeRequest,
        context: grpc.ServicerContext,
        caller: Caller,
    ) -> pb.ResolveReconciliationDisputeResponse:
        problems: list[FieldViolation] = []
        outcome = enum_value(request.outcome, DISPUTE_STATES, "outcome", problems)
        dispute = self._reconciliation.resolve_dispute(
            idem=idempotency(request, caller, "ResolveReconciliationDispute"),
            actor=caller.name,
            dispute_id=request.dispute_id,
            outcome=outcome,
            note=request.note,
            shape_problems=problems,
        )
        return pb.ResolveReconciliationDisputeResponse(dispute=dispute_to_proto(dispute))

    @unary(BANK_SERVICE, pb.ListReconciliationDisputesResponse)
    def ListReconciliationDisputes(
        self,
        request: pb.ListReconciliationDisputesRequest,
        context: grpc.ServicerContext,
        caller: Caller,
    ) -> pb.ListReconciliationDisputesResponse:
        problems: list[FieldViolation] = []
        state = enum_value(request.state, DISPUTE_STATES, "state", problems)
        raise_if_invalid(problems)
        page = self._reconciliation.list_disputes(
            bank_id=_own(caller, request.bank_id, "disputes") or None,
            state=state,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListReconciliationDisputesResponse(
            disputes=[dispute_to_proto(d) for d in page.items],
            next_page_token=page.next_page_token,
        )


def _own(caller: Caller, bank_id: str, what: str) -> str:
    """The bank a request is about: a bank's own (naming another is refused), or the one the
    platform or the operator names."""
    if caller.role is Role.PARTNER:
        if bank_id and bank_id != caller.partner_id:
            raise PermissionDenied(f"{caller.name} reads its own {what} only")
        return caller.partner_id
    return bank_id
