"""Typed clients: :class:`BankClient` for partner banks, :class:`PlatformClient` for the platform.

Both wrap a ``grpc.Channel``. Build one on a channel you manage (the client never closes it),
or let :meth:`BankClient.connect` / :meth:`PlatformClient.connect` open one that the client owns
and closes on :meth:`close` or at the end of a ``with`` block.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self, TypeVar

import grpc
from colending.v1 import (
    consent_pb2,
    financing_pb2,
    merchant_pb2,
    partner_bank_service_pb2,
    partner_bank_service_pb2_grpc,
    referral_pb2,
    referral_service_pb2,
    referral_service_pb2_grpc,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf import timestamp_pb2

from partners.sdk._dsse import key_id, public_key_from_raw
from partners.sdk._errors import UnknownKeyError, VerificationError
from partners.sdk._rpc import DEFAULT_TIMEOUT, RetryPolicy, call_unary, caller_metadata
from partners.sdk._verify import DEFAULT_CLOCK_SKEW, VerifiedReferral, verify_referral

ED25519 = "ed25519"

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


def _new_request_id() -> str:
    return str(uuid.uuid4())


def _timestamp(value: datetime, *, name: str) -> timestamp_pb2.Timestamp:
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")
    timestamp = timestamp_pb2.Timestamp()
    timestamp.FromDatetime(value)
    return timestamp


class _Client:
    """Channel ownership, deadline, identity header and retries shared by both clients."""

    def __init__(
        self,
        *,
        channel: grpc.Channel,
        caller: str | None,
        timeout: float,
        retry: RetryPolicy | None,
        owns_channel: bool,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._channel = channel
        self._caller = caller
        self._timeout = timeout
        self._retry = retry if retry is not None else RetryPolicy()
        self._owns_channel = owns_channel
        self._metadata = caller_metadata(caller)

    @property
    def timeout(self) -> float:
        """Deadline of each attempt, in seconds."""
        return self._timeout

    def _call(
        self,
        method: grpc.UnaryUnaryMultiCallable[_Request, _Response],
        request: _Request,
    ) -> _Response:
        return call_unary(
            method, request, timeout=self._timeout, metadata=self._metadata, retry=self._retry
        )

    def close(self) -> None:
        """Close the channel if this client opened it (:meth:`connect`); otherwise do nothing."""
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _open_channel(
    target: str,
    credentials: grpc.ChannelCredentials | None,
    options: Sequence[tuple[str, str | int]] | None,
) -> grpc.Channel:
    if credentials is None:
        # Development only: plaintext, and the caller names itself in metadata.
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, credentials, options=options)


@dataclass(frozen=True, slots=True)
class PulledPage:
    """One page of verified referrals and the cursor to pass to the next ``pull``."""

    referrals: list[VerifiedReferral]
    next_cursor: str


class BankClient:
    """A partner bank's client of ``PartnerBankService``.

    ``caller`` is the development-mode identity (``"partner/<bank_id>"``), sent only when given;
    with TLS the client certificate identifies the bank. ``trusted_keys`` pins the gateway's
    signing keys; without it the published keys are fetched once, checked (each key id must be
    the hash of its key) and cached, and fetched again once when a referral names a key id not
    yet seen (a rotation).
    """

    def __init__(
        self,
        *,
        channel: grpc.Channel,
        bank_id: str,
        caller: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        trusted_keys: Mapping[str, Ed25519PublicKey] | None = None,
        clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
        retry: RetryPolicy | None = None,
        _owns_channel: bool = False,
    ) -> None:
        if not bank_id:
            raise ValueError("bank_id must not be empty")
        self._base = _Client(
            channel=channel,
            caller=caller,
            timeout=timeout,
            retry=retry,
            owns_channel=_owns_channel,
        )
        self._stub = partner_bank_service_pb2_grpc.PartnerBankServiceStub(channel)
        self._bank_id = bank_id
        self._pinned = dict(trusted_keys) if trusted_keys is not None else None
        self._clock_skew = clock_skew
        self._keys_lock = threading.Lock()
        self._keys: dict[str, Ed25519PublicKey] | None = None

    @classmethod
    def connect(
        cls,
        target: str,
        *,
        bank_id: str,
        caller: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        trusted_keys: Mapping[str, Ed25519PublicKey] | None = None,
        clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
        retry: RetryPolicy | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, str | int]] | None = None,
    ) -> BankClient:
        """Open a channel to ``target`` that the client owns and closes.

        Without ``credentials`` the channel is plaintext: for development only.
        """
        return cls(
            channel=_open_channel(target, credentials, options),
            bank_id=bank_id,
            caller=caller,
            timeout=timeout,
            trusted_keys=trusted_keys,
            clock_skew=clock_skew,
            retry=retry,
            _owns_channel=True,
        )

    @property
    def bank_id(self) -> str:
        return self._bank_id

    def close(self) -> None:
        """Close the channel if this client opened it; a borrowed channel stays open."""
        self._base.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- signing keys -------------------------------------------------------------------

    def signing_keys(self, refresh: bool = False) -> dict[str, Ed25519PublicKey]:
        """The gateway keys referrals are verified with, by key id.

        Pinned keys are returned as given. Otherwise the published keys are fetched (first use,
        or ``refresh``) and cached; a key whose published id is not the SHA-256 of its bytes
        raises :class:`VerificationError`. Keys of other algorithms are ignored.
        """
        if self._pinned is not None:
            return dict(self._pinned)
        with self._keys_lock:
            if self._keys is None or refresh:
                self._keys = self._fetch_keys()
            return dict(self._keys)

    def _fetch_keys(self) -> dict[str, Ed25519PublicKey]:
        response = self._base._call(
            self._stub.GetSigningKeys, partner_bank_service_pb2.GetSigningKeysRequest()
        )
        keys: dict[str, Ed25519PublicKey] = {}
        for published in response.keys:
            if published.algorithm != ED25519:
                continue
            try:
                public_key = public_key_from_raw(bytes(published.public_key))
            except ValueError as exc:
                raise VerificationError(
                    f"published key {published.keyid!r} is not a valid Ed25519 key: {exc}"
                ) from None
            if key_id(public_key) != published.keyid:
                raise VerificationError(
                    f"published key id {published.keyid!r} is not the hash of its key "
                    f"({key_id(public_key)!r})"
                )
            keys[published.keyid] = public_key
        return keys

    # --- referrals ----------------------------------------------------------------------

    def verify(
        self, envelope: referral_pb2.ReferralDelivery | object, *, now: datetime | None = None
    ) -> VerifiedReferral:
        """Verify one envelope addressed to this bank (refetching keys once on an unknown id)."""
        raise NotImplementedError  # replaced below; kept for the docstring order

    def _verify(self, envelope: object, *, refreshed: list[bool]) -> VerifiedReferral:
        raise NotImplementedError

    def pull(self, *, cursor: str = "", page_size: int = 50) -> PulledPage:
        """Fetch the next page of referrals addressed to this bank and verify each one.

        A referral that fails verification raises (never skipped silently); the error carries
        its ``case_id`` and the ``resume_cursor`` just after it.
        """
        response = self._base._call(
            self._stub.PullReferrals,
            partner_bank_service_pb2.PullReferralsRequest(cursor=cursor, page_size=page_size),
        )
        verified: list[VerifiedReferral] = []
        for item in response.referrals:
            try:
                referral = self.verify_envelope(item.envelope)
                if referral.case_id != item.case_id or referral.referral_id != item.referral_id:
                    raise VerificationError(
                        f"unsigned ids ({item.referral_id!r}, {item.case_id!r}) differ from the "
                        f"signed ones ({referral.referral_id!r}, {referral.case_id!r})"
                    )
            except VerificationError as exc:
                exc.case_id = item.case_id
                exc.resume_cursor = item.cursor
                raise
            verified.append(referral)
        return PulledPage(referrals=verified, next_cursor=response.next_cursor)

    def verify_envelope(
        self, envelope: object, *, now: datetime | None = None
    ) -> VerifiedReferral:
        raise NotImplementedError
