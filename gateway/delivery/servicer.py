"""The push-delivery RPCs (AdminService): list delivery tasks and re-queue a dead letter."""

from __future__ import annotations

import grpc
from colending.v1 import admin_service_pb2

from gateway.api._handler import (
    ADMIN_SERVICE,
    idempotency,
    raise_if_invalid,
    unary,
)
from gateway.api.auth import Caller
from gateway.api.convert import enum_value
from gateway.delivery.convert import DELIVERY_STATES, delivery_task_to_proto
from gateway.delivery.service import DeliveryTasks
from gateway.errors import FieldViolation

ad = admin_service_pb2


class DeliveryAdminRpcs:
    """AdminService: the outbox and its dead letters."""

    _deliveries: DeliveryTasks

    @unary(ADMIN_SERVICE, ad.ListDeliveryTasksResponse)
    def ListDeliveryTasks(
        self, request: ad.ListDeliveryTasksRequest, context: grpc.ServicerContext, caller: Caller
    ) -> ad.ListDeliveryTasksResponse:
        problems: list[FieldViolation] = []
        state = enum_value(request.state, DELIVERY_STATES, "state", problems)
        raise_if_invalid(problems)
        page = self._deliveries.list_delivery_tasks(
            page_size=request.page_size,
            page_token=request.page_token,
            state=state,
            bank_id=request.bank_id,
        )
        return ad.ListDeliveryTasksResponse(
            tasks=[delivery_task_to_proto(t) for t in page.items],
            next_page_token=page.next_page_token,
        )

    @unary(ADMIN_SERVICE, ad.RequeueDeliveryResponse)
    def RequeueDelivery(
        self, request: ad.RequeueDeliveryRequest, context: grpc.ServicerContext, caller: Caller
    ) -> ad.RequeueDeliveryResponse:
        task = self._deliveries.requeue_delivery(
            idem=idempotency(request, caller, "RequeueDelivery"), task_id=request.task_id
        )
        return ad.RequeueDeliveryResponse(task=delivery_task_to_proto(task))
