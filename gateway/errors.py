"""The gateway's one exception hierarchy.

Domain and store code raise these; ``gateway.api.errors`` maps each class to exactly one gRPC
status code (with google.rpc error details) at the boundary. Nothing below the API layer knows
about gRPC.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field: ``field`` is the request path (``merchant.identity.legal_name``)."""

    field: str
    description: str


@dataclass(frozen=True, slots=True)
class PreconditionViolation:
    """One unmet precondition: ``type`` is a stable code, ``subject`` what it is about."""

    type: str
    subject: str
    description: str


class GatewayError(Exception):
    """Base of every error the gateway reports to a caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(GatewayError):
    """The request itself is malformed; retrying it unchanged will fail again."""

    def __init__(self, violations: list[FieldViolation] | tuple[FieldViolation, ...]) -> None:
        if not violations:
            raise ValueError("InvalidArgument needs at least one violation")
        self.violations = tuple(violations)
        summary = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(f"invalid request: {summary}")

    @classmethod
    def single(cls, field: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, description)])


class NotFound(GatewayError):
    def __init__(self, resource_type: str, resource_name: str) -> None:
        self.resource_type = resource_type
        self.resource_name = resource_name
        super().__init__(f"{resource_type} {resource_name!r} not found")


class AlreadyExists(GatewayError):
    def __init__(self, resource_type: str, resource_name: str, message: str) -> None:
        self.resource_type = resource_type
        self.resource_name = resource_name
        super().__init__(message)


class FailedPrecondition(GatewayError):
    """The request is well formed but the system is not in a state that allows it."""

    def __init__(
        self,
        violations: list[PreconditionViolation] | tuple[PreconditionViolation, ...],
        *,
        message: str | None = None,
    ) -> None:
        if not violations:
            raise ValueError("FailedPrecondition needs at least one violation")
        self.violations = tuple(violations)
        summary = "; ".join(f"{v.subject}: {v.description}" for v in self.violations)
        super().__init__(message or f"failed precondition: {summary}")

    @classmethod
    def single(cls, type: str, subject: str, description: str) -> FailedPrecondition:
        return cls([PreconditionViolation(type, subject, description)])


class PermissionDenied(GatewayError):
    pass


class Unauthenticated(GatewayError):
    pass


class ResourceExhausted(GatewayError):
    def __init__(self, message: str, *, retry_after_seconds: float | None = None) -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__(message)


class Unavailable(GatewayError):
    """A dependency (database, bank endpoint) is down; the caller may retry."""
