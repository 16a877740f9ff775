"""The wrapper every servicer method goes through: authenticate, authorize, map errors."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from gateway._transactions import Idempotency
from gateway.api.auth import Caller, authenticate, authorize
from gateway.api.errors import set_error, set_internal_error
from gateway.errors import FieldViolation, GatewayError, InvalidArgument

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

Method = Callable[[Any, Req, grpc.ServicerContext, Caller], Resp]
Handler = Callable[[Any, Req, grpc.ServicerContext], Resp]


def unary(service: str, response: type[Resp]) -> Callable[[Method[Req, Resp]], Handler[Req, Resp]]:
    def decorate(method: Method[Req, Resp]) -> Handler[Req, Resp]:
        @functools.wraps(method)
        def handle(self: Any, request: Req, context: grpc.ServicerContext) -> Resp:
            try:
                caller = authenticate(context)
                authorize(caller, service, method.__name__)
                if problems := nul_problems(request):
                    raise InvalidArgument(problems)
                return method(self, request, context, caller)
            except GatewayError as error:
                set_error(context, error)
            except Exception:
                set_internal_error(context, f"{service}/{method.__name__}")
            return response()

        return handle

    return decorate


StreamMethod = Callable[[Any, Req, grpc.ServicerContext, Caller], Iterator[Resp]]
StreamHandler = Callable[[Any, Req, grpc.ServicerContext], Iterator[Resp]]


def server_stream(service: str) -> Callable[[StreamMethod[Req, Resp]], StreamHandler[Req, Resp]]:
    """``unary`` for a response stream: the same checks, and an error ends the stream with its
    status (whether raised before the first message or after the thousandth)."""

    def decorate(method: StreamMethod[Req, Resp]) -> StreamHandler[Req, Resp]:
        @functools.wraps(method)
        def handle(self: Any, request: Req, context: grpc.ServicerContext) -> Iterator[Resp]:
            try:
                caller = authenticate(context)
                authorize(caller, service, method.__name__)
                if problems := nul_problems(request):
                    raise InvalidArgument(problems)
                yield from method(self, request, context, caller)
            except GatewayError as error:
                set_error(context, error)
            except Exception:
                set_internal_error(context, f"{service}/{method.__name__}")

        return handle

    return decorate


def nul_problems(message: Message, prefix: str = "") -> list[FieldViolation]:
    """Every string field holding U+0000, which no text column (PostgreSQL's) can store."""
    problems = []
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        values = list(value) if field.is_repeated else [value]
        for i, item in enumerate(values):
            where = f"{path}[{i}]" if field.is_repeated else path
            if field.type == FieldDescriptor.TYPE_STRING and "\x00" in item:
                problems.append(FieldViolation(where, "must not contain NUL (U+0000)"))
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                problems += nul_problems(item, f"{where}.")
    return problems


def idempotency(request: Message, caller: Caller, method: str) -> Idempotency:
    """The request's idempotency key and a fingerprint of everything else it says."""
    content = type(request)()
    content.CopyFrom(request)
    request_id: str = getattr(request, "request_id")  # noqa: B009
    content.ClearField("request_id")
    fingerprint = hashlib.sha256(content.SerializeToString(deterministic=True)).hexdigest()
    return Idempotency(
        caller=caller.name, method=method, request_id=request_id, fingerprint=fingerprint
    )


def unimplemented(context: grpc.ServicerContext, rpc: str) -> None:
    """Designed in the contract, built by later work: a clear UNIMPLEMENTED, not a crash."""
    context.set_code(grpc.StatusCode.UNIMPLEMENTED)
    context.set_details(f"{rpc} is part of the contract but not implemented by this gateway yet")
