"""The SDK's typed errors.

Every error the SDK raises derives from :class:`ColendingError`, so a bank's integration code can
catch one base class. Verification failures form their own branch: a referral that fails any of
these checks must be rejected, never parsed or acted on. Messages name key ids and times but never
key material or payload bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

import grpc


class ColendingError(Exception):
    """Base of every error the co-lending SDK raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- envelope and referral verification ------------------------------------------------------


class VerificationError(ColendingError):
    """A signed envelope or the referral inside it must not be trusted.

    When raised by ``BankClient.pull``, ``case_id`` is the (unsigned) case id the gateway sent
    with the rejected referral and ``resume_cursor`` the cursor just after it, so the caller can
    record the rejection and move past it deliberately; both are empty otherwise.
    """

    case_id: str = ""
    resume_cursor: str = ""


class MalformedEnvelopeError(VerificationError):
    """The envelope is structurally unusable (no signatures, undecodable fields, bad payload)."""


class WrongPayloadTypeError(VerificationError):
    """The envelope carries a different kind of payload than the caller expects."""

    def __init__(self, *, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"payload type {actual!r} is not the expected {expected!r}")


class UnknownKeyError(VerificationError):
    """No signature was made by a key id the verifier trusts (published by the gateway)."""

    def __init__(self, *, keyids_seen: Iterable[str]) -> None:
        self.keyids_seen = tuple(keyids_seen)
        seen = ", ".join(repr(k) for k in self.keyids_seen) or "none"
        super().__init__(f"no signature by a trusted key; key ids seen: {seen}")


class BadSignatureError(VerificationError):
    """A signature claims a trusted key id but does not verify over the received bytes."""

    def __init__(self, *, keyids_tried: Iterable[str]) -> None:
        self.keyids_tried = tuple(keyids_tried)
        tried = ", ".join(repr(k) for k in self.keyids_tried)
        super().__init__(f"signature does not verify for trusted key id(s): {tried}")


class MismatchedEvidenceError(VerificationError):
    """Signed evidence verifies, but speaks of another case or bank than the one it is read for
    (a statement copied from elsewhere)."""


class MisaddressedReferralError(VerificationError):
    """The referral is addressed to another bank (a replay across banks)."""

    def __init__(self, *, addressed_to: str, expected: str) -> None:
        self.addressed_to = addressed_to
        self.expected = expected
        super().__init__(f"referral is addressed to {addressed_to!r}, not {expected!r}")


class ReferralExpiredError(VerificationError):
    """The referral's expiry time has passed."""

    def __init__(self, *, expires_at: datetime, now: datetime) -> None:
        self.expires_at = expires_at
        self.now = now
        super().__init__(f"referral expired at {expires_at.isoformat()} (now {now.isoformat()})")


class ReferralNotYetValidError(VerificationError):
    """The referral's issue time lies in the future beyond the allowed clock skew."""

    def __init__(self, *, issued_at: datetime, now: datetime) -> None:
        self.issued_at = issued_at
        self.now = now
        super().__init__(
            f"referral is issued at {issued_at.isoformat()}, after now ({now.isoformat()})"
        )


# --- the blacklist log and the local copy --------------------------------------------------------


class SyncGapError(VerificationError):
    """A change arrived out of order: a gap (``got > expected``) or a repeat (``got < expected``).

    The local copy is unchanged; resume syncing from ``expected`` (the copy's size).
    """

    def __init__(self, *, expected: int, got: int) -> None:
        self.expected = expected
        self.got = got
        what = "skips ahead" if got > expected else "repeats an applied index"
        super().__init__(f"change has log index {got}, expected {expected}: the stream {what}")


class LogConsistencyError(VerificationError):
    """The log contradicts what it signed before, or its changes contradict its signed root.

    Either the log was rewritten (a fork or a rollback) or the changes were altered in transit.
    Keep the evidence and stop trusting the gateway's list until the operator explains it.
    """


class MissingKeyError(ColendingError, ValueError):
    """The client needs a key it was not given (the network key, or pinned log keys)."""


class CorruptStateError(ColendingError):
    """Saved SDK state (a :class:`LocalBlacklist` file, a compact range) is malformed or altered."""


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
