"""The dispatcher's transport to real banks: BankReceiverService over gRPC.

One channel per endpoint, kept for the life of the process: a channel reconnects by itself,
and opening one per attempt would make every retry pay for a new connection.
"""

from __future__ import annotations

import threading
from datetime import UTC

import grpc
from colending.v1 import bank_receiver_service_pb2, bank_receiver_service_pb2_grpc

from gateway.api.convert import envelope_to_proto
from gateway.delivery.dispatcher import DeliveryError
from gateway.domain.delivery import Receipt
from gateway.domain.referral import SignedPayload


class GrpcBankTransport:
    def __init__(
        self,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        max_message_bytes: int = 4 << 20,
    ) -> None:
        self._credentials = credentials
        self._options = [("grpc.max_send_message_length", max_message_bytes)]
        self._stubs: dict[str, bank_receiver_service_pb2_grpc.BankReceiverServiceStub] = {}
        self._channels: list[grpc.Channel] = []
        self._lock = threading.Lock()

    def _stub(self, endpoint: str) -> bank_receiver_service_pb2_grpc.BankReceiverServiceStub:
        with self._lock:
            stub = self._stubs.get(endpoint)
            if stub is None:
                channel = (
                    grpc.secure_channel(endpoint, self._credentials, options=self._options)
                    if self._credentials is not None
                    else grpc.insecure_channel(endpoint, options=self._options)
                )
                self._channels.append(channel)
                stub = self._stubs[endpoint] = (
                    bank_receiver_service_pb2_grpc.BankReceiverServiceStub(channel)
                )
            return stub

    def deliver(
        self,
        *,
        endpoint: str,
        referral_id: str,
        case_id: str,
        envelope: SignedPayload,
        attempt: int,
        timeout: float,
    ) -> Receipt:
        request = bank_receiver_service_pb2.DeliverReferralRequest(
            referral_id=referral_id,
            case_id=case_id,
            envelope=envelope_to_proto(envelope),
            attempt=attempt,
        )
        try:
            response = self._stub(endpoint).DeliverReferral(request, timeout=timeout)
        except grpc.RpcError as error:
            raise _delivery_error(error) from None
        return _receipt(response)

    def deliver_alert(
        self,
        *,
        endpoint: str,
        alert_id: str,
        envelope: SignedPayload,
        attempt: int,
        timeout: float,
    ) -> Receipt:
        request = bank_receiver_service_pb2.DeliverAlertRequest(
            alert_id=alert_id, envelope=envelope_to_proto(envelope), attempt=attempt
        )
        try:
            response = self._stub(endpoint).DeliverAlert(request, timeout=timeout)
        except grpc.RpcError as error:
            raise _delivery_error(error) from None
        return _receipt(response)

    def close(self) -> None:
        with self._lock:
            for channel in self._channels:
                channel.close()
            self._channels.clear()
            self._stubs.clear()


def _delivery_error(error: grpc.RpcError) -> DeliveryError:
    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (error.details() if isinstance(error, grpc.Call) else None) or ""
    return DeliveryError(code.name, details)


def _receipt(
    response: bank_receiver_service_pb2.DeliverReferralResponse
    | bank_receiver_service_pb2.DeliverAlertResponse,
) -> Receipt:
    return Receipt(
        bank_reference=response.bank_reference,
        received_at=response.received_at.ToDatetime(tzinfo=UTC)
        if response.HasField("received_at")
        else None,
        duplicate=response.duplicate,
    )
