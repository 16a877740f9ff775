"""The reconciliation RPC: PartnerBankService's GetReconciliationStatement, for a bank (its
own) and for the platform and the operator (any bank's). ``gateway.api.servicers`` composes it
into the service."""

from __future__ import annotations

import grpc
from colending.v1 import partner_bank_service_pb2

from gateway.api._handler import BANK_SERVICE, raise_if_invalid, unary
from gateway.api.auth import Caller, Role
from gateway.api.convert import date_from_proto
from gateway.errors import FieldViolation, PermissionDenied
from gateway.reconciliation.convert import statement_to_proto
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
        bank_id = request.bank_id
        if caller.role is Role.PARTNER:
            if bank_id and bank_id != caller.partner_id:
                raise PermissionDenied(f"{caller.name} reads its own statements only")
            bank_id = caller.partner_id
        stored = self._reconciliation.statement(
            bank_id=bank_id, day=day, caller_bank=caller.role is Role.PARTNER
        )
        return pb.GetReconciliationStatementResponse(statement=statement_to_proto(stored))
