"""The SDK's typed errors.

Every error the SDK raises derives from :class:`ColendingError`, so a bank's integration code can
catch one base class. Verification failures form their own branch (defined in
:mod:`colending_core`, which the gateway shares): a referral that fails any of these checks must
be rejected, never parsed or acted on. RPC failures are :class:`RpcError` subclasses. Messages
name key ids and times but never key material or payload bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

import grpc

from colending_core import ColendingError

# --- RPC errors (added with the client) --------------------------------------------------------


class RpcError(ColendingError):
    """The gateway answered an RPC with a failure status (or could not be reached).

    ``code`` is the gRPC status code and ``details`` the server's message, which names the field
    or rule that failed. Subclasses add the parsed ``google.rpc`` error details.
    """

    default_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(self, details: str = "", *, code: grpc.StatusCode | None = None) -> None:
        self.code: grpc.StatusCode = code if code is not None else self.default_code
        self.details = details
        super().__init__(f"{self.code.name}: {details}" if details else self.code.name)


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field of a request (``google.rpc.BadRequest.FieldViolation``)."""

    field: str
    description: str


@dataclass(frozen=True, slots=True)
class PreconditionViolation:
    """One failed precondition (``google.rpc.PreconditionFailure.Violation``).

    ``type`` is a stable category such as ``"STATE"``, ``subject`` what it is about (for example
    a case id), ``description`` how it failed (for example the current state).
    """

    type: str
    subject: str
    description: str


class InvalidArgumentError(RpcError):
    """``INVALID_ARGUMENT``: the request is malformed; retrying it unchanged cannot succeed."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(
        self,
        details: str = "",
        *,
        code: grpc.StatusCode | None = None,
        field_violations: Iterable[FieldViolation] = (),
    ) -> None:
        super().__init__(details, code=code)
        self.field_violations = tuple(field_violations)


class _ResourceError(RpcError):
    def __init__(
        self,
        details: str = "",
        *,
        code: grpc.StatusCode | None = None,
        resource_type: str = "",
        resource_name: str = "",
    ) -> None:
        super().__init__(details, code=code)
        self.resource_type = resource_type
        self.resource_name = resource_name


class NotFoundError(_ResourceError):
    """``NOT_FOUND``: no such resource visible to the caller (``resource_type``/``_name``)."""

    default_code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(_ResourceError):
    """``ALREADY_EXISTS``: e.g. a ``request_id`` reused with different content."""

    default_code = grpc.StatusCode.ALREADY_EXISTS


class FailedPreconditionError(RpcError):
    """``FAILED_PRECONDITION``: the system is not in a state that allows the call."""

    default_code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(
        self,
        details: str = "",
        *,
        code: grpc.StatusCode | None = None,
        violations: Iterable[PreconditionViolation] = (),
    ) -> None:
        super().__init__(details, code=code)
        self.violations = tuple(violations)


class PermissionDeniedError(RpcError):
    """``PERMISSION_DENIED``: the caller is known but may not do this."""

    default_code = grpc.StatusCode.PERMISSION_DENIED


class UnauthenticatedError(RpcError):
    """``UNAUTHENTICATED``: the caller could not be identified."""

    default_code = grpc.StatusCode.UNAUTHENTICATED


class _RetryAfterError(RpcError):
    def __init__(
        self,
        details: str = "",
        *,
        code: grpc.StatusCode | None = None,
        retry_after: timedelta | None = None,
    ) -> None:
        super().__init__(details, code=code)
        self.retry_after = retry_after


class ResourceExhaustedError(_RetryAfterError):
    """``RESOURCE_EXHAUSTED``: a quota or rate limit; ``retry_after`` is the server's hint."""

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class UnavailableError(_RetryAfterError):
    """``UNAVAILABLE``: the gateway could not be reached or is shedding load."""

    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceededError(RpcError):
    """``DEADLINE_EXCEEDED``: no answer within the deadline (the call may still have run)."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class UnimplementedError(RpcError):
    """``UNIMPLEMENTED``: the gateway does not offer this RPC (an older server?)."""

    default_code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(RpcError):
    """Any other status (``INTERNAL``, ``UNKNOWN``, ``DATA_LOSS``, ...): a fault on the server."""

    default_code = grpc.StatusCode.INTERNAL
