"""Calling the gateway: deadlines, caller metadata, bounded retries and error translation.

Failures reach the caller as one :class:`~partners.sdk._errors.RpcError` subclass per status
code, with the server's ``google.rpc`` details (carried in the ``grpc-status-details-bin``
trailer) parsed into plain attributes.

Retrying is safe only because every mutating RPC carries a ``request_id`` that the gateway is
idempotent on, and the clients build the request once, so every attempt sends the same id.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from partners.sdk._errors import (
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionViolation,
    ResourceExhaustedError,
    RpcError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)

CALLER_METADATA_KEY = "x-colending-caller"
DEFAULT_TIMEOUT = 10.0

RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently a call is retried on a transient status.

    Only ``UNAVAILABLE``, ``DEADLINE_EXCEEDED`` and ``RESOURCE_EXHAUSTED`` are retried. Attempt
    ``n`` (from 1) waits a random time in ``[0, min(max_backoff, initial_backoff *
    multiplier ** (n - 1))]`` ("full jitter"), but at least the server's ``RetryInfo`` delay; a
    server delay longer than ``max_retry_delay`` is not waited for and the error is raised.
    """

    max_attempts: int = 4
    initial_backoff: float = 0.2
    multiplier: float = 2.0
    max_backoff: float = 5.0
    max_retry_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.max_retry_delay < 0:
            raise ValueError("backoff times must not be negative")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")

    def backoff(self, attempt: int, *, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), jitter applied."""
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return ceiling * rng()


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(max_attempts=1)


def _unpack_status(error: grpc.RpcError) -> status_pb2.Status | None:
    if not isinstance(error, grpc.Call):
        return None
    try:
        status: status_pb2.Status | None = rpc_status.from_call(error)
    except (ValueError, DecodeError):
        # The trailer disagrees with the call's own code or message, or does not parse: ignore
        # the details rather than trust half of them.
        return None
    return status


def translate(error: grpc.RpcError) -> RpcError:
    """Map a grpc error to the SDK's typed :class:`RpcError`, parsing rich error details."""
    try:
        code = error.code()
        details = error.details() or ""
    except Exception:  # not a call (e.g. a bare grpc.RpcError): nothing more to learn
        code, details = grpc.StatusCode.UNKNOWN, str(error)
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN

    field_violations: list[FieldViolation] = []
    violations: list[PreconditionViolation] = []
    resource_type = resource_name = ""
    retry_after: timedelta | None = None
    status = _unpack_status(error)
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            field_violations.extend(
                FieldViolation(field=v.field, description=v.description)
                for v in bad_request.field_violations
            )
        elif detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            detail.Unpack(failure)
            violations.extend(
                PreconditionViolation(type=v.type, subject=v.subject, description=v.description)
                for v in failure.violations
            )
        elif detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
            info = error_details_pb2.ResourceInfo()
            detail.Unpack(info)
            resource_type, resource_name = info.resource_type, info.resource_name
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            if retry.HasField("retry_delay"):
                retry_after = retry.retry_delay.ToTimedelta()

    match code:
        case grpc.StatusCode.INVALID_ARGUMENT:
            return InvalidArgumentError(details, field_violations=field_violations)
        case grpc.StatusCode.NOT_FOUND:
            return NotFoundError(details, resource_type=resource_type, resource_name=resource_name)
        case grpc.StatusCode.ALREADY_EXISTS:
            return AlreadyExistsError(
                details, resource_type=resource_type, resource_name=resource_name
            )
        case grpc.StatusCode.FAILED_PRECONDITION:
            return FailedPreconditionError(details, violations=violations)
        case grpc.StatusCode.PERMISSION_DENIED:
            return PermissionDeniedError(details)
        case grpc.StatusCode.UNAUTHENTICATED:
            return UnauthenticatedError(details)
        case grpc.StatusCode.RESOURCE_EXHAUSTED:
            return ResourceExhaustedError(details, retry_after=retry_after)
        case grpc.StatusCode.UNAVAILABLE:
            return UnavailableError(details, retry_after=retry_after)
        case grpc.StatusCode.DEADLINE_EXCEEDED:
            return DeadlineExceededError(details)
        case grpc.StatusCode.UNIMPLEMENTED:
            return UnimplementedError(details)
        case _:
            return InternalError(details, code=code)


def caller_metadata(caller: str | None) -> tuple[tuple[str, str | bytes], ...]:
    """Development-mode identity header; nothing when ``caller`` is None (TLS identifies)."""
    return () if caller is None else ((CALLER_METADATA_KEY, caller),)


def call_unary(
    method: grpc.UnaryUnaryMultiCallable[_Request, _Response],
    request: _Request,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    metadata: Sequence[tuple[str, str | bytes]] = (),
    retry: RetryPolicy = DEFAULT_RETRY,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
) -> _Response:
    """Call ``method`` with a per-attempt deadline, retrying transient failures.

    ``request`` is sent unchanged on every attempt, so its ``request_id`` (if any) is the same
    each time. Raises the translated :class:`RpcError` of the last attempt.
    """
    metadata_tuple = tuple(metadata)
    attempt = 1
    while True:
        try:
            return method(request, timeout=timeout, metadata=metadata_tuple)
        except grpc.RpcError as exc:
            error = translate(exc)
            if error.code not in RETRYABLE_CODES or attempt >= retry.max_attempts:
                raise error from exc
            delay = retry.backoff(attempt, rng=rng)
            if (
                isinstance(error, ResourceExhaustedError | UnavailableError)
                and error.retry_after is not None
            ):
                hinted = error.retry_after.total_seconds()
                if hinted > retry.max_retry_delay:
                    raise error from exc
                delay = max(delay, hinted)
            sleep(delay)
            attempt += 1
