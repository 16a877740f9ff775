"""Push delivery: referrals written to an outbox with the submission, pushed to each bank's
``BankReceiverService`` at least once, retried with backoff, dead-lettered on a final answer.

``dispatcher``: the workers that claim and push outbox tasks. ``transport``: the gRPC call to a
bank's receiver. ``service``: the operator's list of tasks and re-queue of dead letters.
``convert`` and ``servicer``: their protobuf messages and AdminService RPCs.
"""

from gateway.delivery.dispatcher import BankTransport, DeliveryError, Dispatcher
from gateway.delivery.service import DeliveryTasks

__all__ = ["BankTransport", "DeliveryError", "DeliveryTasks", "Dispatcher"]
