"""The one place where gateway errors become gRPC statuses with google.rpc details.

The status is set on the context (code, message, ``grpc-status-details-bin`` trailer) rather
than raised with ``abort_with_status``, so the same path works under grpc_testing, which does
not implement ``abort_with_status``.
"""

from __future__ import annotations

import logging

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from gateway.errors import (
    AlreadyExists,
    FailedPrecondition,
    GatewayError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger(__name__)

STATUS_DETAILS_KEY = "grpc-status-details-bin"

_CODES: list[tuple[type[GatewayError], grpc.StatusCode]] = [
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
]


def status_code(error: GatewayError) -> grpc.StatusCode:
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.INTERNAL


def _detail(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def rich_status(error: GatewayError) -> status_pb2.Status:
    code = status_code(error)
    status = status_pb2.Status(code=code.value[0], message=error.message)
    if isinstance(error, InvalidArgument):
        status.details.append(
            _detail(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description
                        )
                        for v in error.violations
                    ]
                )
            )
        )
    elif isinstance(error, FailedPrecondition):
        status.details.append(
            _detail(
                error_details_pb2.PreconditionFailure(
                    violations=[
                        error_details_pb2.PreconditionFailure.Violation(
                            type=v.type, subject=v.subject, description=v.description
                        )
                        for v in error.violations
                    ]
                )
            )
        )
    elif isinstance(error, NotFound | AlreadyExists):
        status.details.append(
            _detail(
                error_details_pb2.ResourceInfo(
                    resource_type=error.resource_type,
                    resource_name=error.resource_name,
                    description=error.message,
                )
            )
        )
    elif isinstance(error, ResourceExhausted | Unavailable):
        seconds = getattr(error, "retry_after_seconds", None) or 1.0
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(seconds * 1e9))
        status.details.append(_detail(error_details_pb2.RetryInfo(retry_delay=delay)))
    return status


def set_error(context: grpc.ServicerContext, error: GatewayError) -> None:
    status = rich_status(error)
    context.set_code(status_code(error))
    context.set_details(error.message)
    context.set_trailing_metadata(((STATUS_DETAILS_KEY, status.SerializeToString()),))


def set_internal_error(context: grpc.ServicerContext, method: str) -> None:
    """An unexpected failure: logged with its traceback, answered without internals."""
    log.exception("unhandled error in %s", method)
    status = status_pb2.Status(code=code_pb2.INTERNAL, message="internal error; it has been logged")
    context.set_code(grpc.StatusCode.INTERNAL)
    context.set_details(status.message)
    context.set_trailing_metadata(((STATUS_DETAILS_KEY, status.SerializeToString()),))
