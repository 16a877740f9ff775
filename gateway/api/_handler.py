"""The wrapper every servicer method goes through: authenticate, authorize, map errors."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from gateway._transactions import Idempotency
from gateway.api.auth import Caller, Role, authenticate, authorize
from gateway.api.errors import set_error, set_internal_error, status_code
from gateway.api.limits import RateLimiter
from gateway.errors import FieldViolation, GatewayError, InvalidArgument, ResourceExhausted
from gateway.observe import (
    REQUEST_ID_KEY,
    RPC_SECONDS,
    RPCS,
    caller_var,
    request_id_from,
    request_id_var,
)

log = logging.getLogger("gateway.rpc")

REFERRAL_SERVICE = "colending.v1.ReferralService"
BANK_SERVICE = "colending.v1.PartnerBankService"
ADMIN_SERVICE = "colending.v1.AdminService"
BLACKLIST_SERVICE = "colending.v1.BlacklistService"

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

Method = Callable[[Any, Req, grpc.ServicerContext, Caller], Resp]
Handler = Callable[[Any, Req, grpc.ServicerContext], Resp]


def unary(service: str, response: type[Resp]) -> Callable[[Method[Req, Resp]], Handler[Req, Resp]]:
    def decorate(method: Method[Req, Resp]) -> Handler[Req, Resp]:
        name = f"{service}/{method.__name__}"

        @functools.wraps(method)
        def handle(self: Any, request: Req, context: grpc.ServicerContext) -> Resp:
            with _observed(context, name) as outcome:
                try:
                    caller = authenticate(context)
                    caller_var.set(caller.name)
                    authorize(caller, service, method.__name__)
                    _limit(self, caller)
                    if problems := nul_problems(request):
                        raise InvalidArgument(problems)
                    return method(self, request, context, caller)
                except GatewayError as error:
                    outcome.append(status_code(error))
                    set_error(context, error)
                except Exception:
                    outcome.append(grpc.StatusCode.INTERNAL)
                    set_internal_error(context, name)
                return response()

        return handle

    return decorate


def _limit(servicer: Any, caller: Caller) -> None:
    """Spend one of the calling bank's tokens (servicers carry an optional ``_limiter``)."""
    limiter: RateLimiter | None = getattr(servicer, "_limiter", None)
    if limiter is None or caller.role is not Role.PARTNER:
        return
    if (wait := limiter.take(caller.name)) is not None:
        raise ResourceExhausted(
            f"{caller.name} is over its limit of {limiter.rate:g} calls a second; "
            f"retry in {wait:.2f} s",
            retry_after_seconds=wait,
        )


@contextlib.contextmanager
def _observed(context: grpc.ServicerContext, name: str) -> Iterator[list[grpc.StatusCode]]:
    """Request id in, one log line and the RPC metrics out. The body appends the status code
    when it is not OK."""
    request_id = request_id_from(context.invocation_metadata())
    tokens = (request_id_var.set(request_id), caller_var.set("-"))
    with contextlib.suppress(Exception):  # the request id is a courtesy, never a failure
        context.send_initial_metadata(((REQUEST_ID_KEY, request_id),))
    outcome: list[grpc.StatusCode] = []
    started = time.perf_counter()
    try:
        yield outcome
    finally:
        seconds = time.perf_counter() - started
        code = outcome[-1] if outcome else grpc.StatusCode.OK
        RPCS.labels(name, code.name).inc()
        RPC_SECONDS.labels(name).observe(seconds)
        log.info("%s %s %.1f ms", name, code.name, seconds * 1e3)
        request_id_var.reset(tokens[0])
        caller_var.reset(tokens[1])


StreamMethod = Callable[[Any, Req, grpc.ServicerContext, Caller], Iterator[Resp]]
StreamHandler = Callable[[Any, Req, grpc.ServicerContext], Iterator[Resp]]


def server_stream(service: str) -> Callable[[StreamMethod[Req, Resp]], StreamHandler[Req, Resp]]:
    """``unary`` for a response stream: the same checks, and an error ends the stream with its
    status (whether raised before the first message or after the thousandth)."""

    def decorate(method: StreamMethod[Req, Resp]) -> StreamHandler[Req, Resp]:
        name = f"{service}/{method.__name__}"

        @functools.wraps(method)
        def handle(self: Any, request: Req, context: grpc.ServicerContext) -> Iterator[Resp]:
            with _observed(context, name) as outcome:
                try:
                    caller = authenticate(context)
                    caller_var.set(caller.name)
                    authorize(caller, service, method.__name__)
                    _limit(self, caller)
                    if problems := nul_problems(request):
                        raise InvalidArgument(problems)
                    yield from method(self, request, context, caller)
                    if not context.is_active():  # the client went away or its deadline passed
                        outcome.append(grpc.StatusCode.CANCELLED)
                except GatewayError as error:
                    outcome.append(status_code(error))
                    set_error(context, error)
                except Exception:
                    outcome.append(grpc.StatusCode.INTERNAL)
                    set_internal_error(context, name)

        return handle

    return decorate


def nul_problems(message: Message, prefix: str = "") -> list[FieldViolation]:
    """Every string field holding U+0000, which no text column (PostgreSQL's) can store."""
    # U+0000 is a zero byte in the wire form too, so a message without one has no such string
    # and the field walk (several times the cost of serializing) is skipped.
    if b"\x00" not in message.SerializeToString():
        return []
    return _nul_fields(message, prefix)


def _nul_fields(message: Message, prefix: str) -> list[FieldViolation]:
    problems = []
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        values = list(value) if field.is_repeated else [value]
        for i, item in enumerate(values):
            where = f"{path}[{i}]" if field.is_repeated else path
            if field.type == FieldDescriptor.TYPE_STRING and "\x00" in item:
                problems.append(FieldViolation(where, "must not contain NUL (U+0000)"))
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                problems += _nul_fields(item, f"{where}.")
    return problems


def idempotency(
    request: Message,
    caller: Caller,
    method: str,
    *,
    signed: Mapping[str, type[Message]] | None = None,
) -> Idempotency:
    """The request's idempotency key and a fingerprint of everything else it says.

    ``signed`` maps envelope fields to the statement type they carry. A signer stamps a new
    time and nonce on every signing, so a retry that signs again says the same thing in other
    bytes: the fingerprint takes what the statement says, not its envelope. (A replay only
    returns the first answer; it is never verified or acted on again.)
    """
    content = type(request)()
    content.CopyFrom(request)
    request_id: str = getattr(request, "request_id")  # noqa: B009
    content.ClearField("request_id")
    for field, kind in (signed or {}).items():
        if content.HasField(field):
            envelope = getattr(content, field)
            try:
                statement = kind.FromString(envelope.payload)
            except DecodeError:
                continue  # not a statement: fingerprinted as sent
            statement.ClearField("signed_at")
            statement.ClearField("nonce")
            envelope.payload = statement.SerializeToString(deterministic=True)
            del envelope.signatures[:]
    fingerprint = hashlib.sha256(content.SerializeToString(deterministic=True)).hexdigest()
    return Idempotency(
        caller=caller.name, method=method, request_id=request_id, fingerprint=fingerprint
    )


def raise_if_invalid(problems: list[FieldViolation]) -> None:
    """One INVALID_ARGUMENT naming every shape problem found while converting a request."""
    if problems:
        raise InvalidArgument(problems)
