"""The typed errors shared by the gateway and the SDK: the verification branch.

Every error the SDK raises derives from :class:`ColendingError`, so a bank's integration code can
catch one base class; the SDK adds the RPC errors (``partners.sdk._errors``), which need grpc.
Verification failures form their own branch: a referral that fails any of these checks must be
rejected, never parsed or acted on. Messages name key ids and times but never key material or
payload bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime


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
    """The referral (or alert) is addressed to another bank (a replay across banks)."""

    def __init__(self, *, addressed_to: str, expected: str, what: str = "referral") -> None:
        self.addressed_to = addressed_to
        self.expected = expected
        super().__init__(f"{what} is addressed to {addressed_to!r}, not {expected!r}")


class ReferralExpiredError(VerificationError):
    """The referral's (or alert's) expiry time has passed."""

    def __init__(self, *, expires_at: datetime, now: datetime, what: str = "referral") -> None:
        self.expires_at = expires_at
        self.now = now
        super().__init__(f"{what} expired at {expires_at.isoformat()} (now {now.isoformat()})")


class ReferralNotYetValidError(VerificationError):
    """The referral's (or alert's) issue time lies in the future beyond the allowed skew."""

    def __init__(self, *, issued_at: datetime, now: datetime, what: str = "referral") -> None:
        self.issued_at = issued_at
        self.now = now
        super().__init__(
            f"{what} is issued at {issued_at.isoformat()}, after now ({now.isoformat()})"
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
