"""The order-financing RPCs: the platform's SubmitOrderBatch, GetOrderBatch and
ReportOrderSettlement (ReferralService) and the banks' ListOrderBatches and DecideOrderBatch
(PartnerBankService). ``gateway.api.servicers`` composes the services from these shares.
"""

from __future__ import annotations

import grpc
from colending.v1 import partner_bank_service_pb2, referral_service_pb2

from gateway.api._handler import (
    BANK_SERVICE,
    REFERRAL_SERVICE,
    idempotency,
    raise_if_invalid,
    unary,
)
from gateway.api.auth import Caller
from gateway.api.convert import amount_or_zero, date_from_proto, enum_value
from gateway.errors import FieldViolation
from gateway.financing.convert import case_detail_to_proto
from gateway.orders.convert import (
    BATCH_OUTCOMES,
    BATCH_STATES,
    SETTLEMENT_OUTCOMES,
    batch_to_proto,
    pending_order_from_proto,
)
from gateway.orders.service import OrderFinancing

rs = referral_service_pb2
pb = partner_bank_service_pb2


class OrderRpcs:
    """ReferralService: the platform offers orders and reports their settlement."""

    _orders: OrderFinancing

    @unary(REFERRAL_SERVICE, rs.SubmitOrderBatchResponse)
    def SubmitOrderBatch(
        self, request: rs.SubmitOrderBatchRequest, context: grpc.ServicerContext, caller: Caller
    ) -> rs.SubmitOrderBatchResponse:
        problems: list[FieldViolation] = []
        orders = [
            pending_order_from_proto(o, f"orders[{i}]", problems)
            for i, o in enumerate(request.orders)
        ]
        batch = self._orders.submit_order_batch(
            idem=idempotency(request, caller, "SubmitOrderBatch"),
            case_id=request.case_id,
            consent_id=request.consent_id,
            orders=orders,
            shape_problems=problems,
        )
        return rs.SubmitOrderBatchResponse(batch=batch_to_proto(batch))

    @unary(REFERRAL_SERVICE, rs.GetOrderBatchResponse)
    def GetOrderBatch(
        self, request: rs.GetOrderBatchRequest, context: grpc.ServicerContext, caller: Caller
    ) -> rs.GetOrderBatchResponse:
        batch = self._orders.get_order_batch(batch_id=request.batch_id)
        return rs.GetOrderBatchResponse(batch=batch_to_proto(batch))

    @unary(REFERRAL_SERVICE, rs.ReportOrderSettlementResponse)
    def ReportOrderSettlement(
        self,
        request: rs.ReportOrderSettlementRequest,
        context: grpc.ServicerContext,
        caller: Caller,
    ) -> rs.ReportOrderSettlementResponse:
        problems: list[FieldViolation] = []
        outcome = enum_value(request.outcome, SETTLEMENT_OUTCOMES, "outcome", problems)
        settled = amount_or_zero(request.settled_amount, "settled_amount", problems)
        on = date_from_proto(request.settlement_date, "settlement_date", problems)
        result = self._orders.report_order_settlement(
            idem=idempotency(request, caller, "ReportOrderSettlement"),
            batch_id=request.batch_id,
            order_id=request.order_id,
            outcome=outcome,
            settled_fen=settled,
            settlement_date=on,
            shape_problems=problems,
        )
        return rs.ReportOrderSettlementResponse(
            batch=batch_to_proto(result.batch), case=case_detail_to_proto(result.case)
        )


class OrderBankRpcs:
    """PartnerBankService: the bank lists and decides the order batches on its cases."""

    _orders: OrderFinancing

    @unary(BANK_SERVICE, pb.ListOrderBatchesResponse)
    def ListOrderBatches(
        self, request: pb.ListOrderBatchesRequest, context: grpc.ServicerContext, caller: Caller
    ) -> pb.ListOrderBatchesResponse:
        problems: list[FieldViolation] = []
        state = enum_value(request.state, BATCH_STATES, "state", problems)
        raise_if_invalid(problems)
        page = self._orders.list_order_batches(
            bank_id=caller.partner_id,
            state=state,
            page_size=request.page_size,
            page_token=request.page_token,
            case_id=request.case_id,
        )
        return pb.ListOrderBatchesResponse(
            batches=[batch_to_proto(b, OrderFinancing.cursor_after(b)) for b in page.items],
            next_page_token=page.next_page_token,
        )

    @unary(BANK_SERVICE, pb.DecideOrderBatchResponse)
    def DecideOrderBatch(
        self, request: pb.DecideOrderBatchRequest, context: grpc.ServicerContext, caller: Caller
    ) -> pb.DecideOrderBatchResponse:
        problems: list[FieldViolation] = []
        outcome = enum_value(request.outcome, BATCH_OUTCOMES, "outcome", problems)
        result = self._orders.decide_order_batch(
            idem=idempotency(request, caller, "DecideOrderBatch"),
            bank_id=caller.partner_id,
            batch_id=request.batch_id,
            outcome=outcome,
            decline_reason_codes=tuple(request.decline_reason_codes),
            shape_problems=problems,
        )
        return pb.DecideOrderBatchResponse(
            batch=batch_to_proto(result.batch), case=case_detail_to_proto(result.case)
        )
