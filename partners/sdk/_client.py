"""Typed clients: :class:`BankClient` for partner banks, :class:`PlatformClient` for the platform.

Both wrap a ``grpc.Channel``. Build one on a channel you manage (the client never closes it),
or let :meth:`BankClient.connect` / :meth:`PlatformClient.connect` open one that the client owns
and closes on :meth:`close` or at the end of a ``with`` block.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from types import TracebackType
from typing import Self, TypeVar

import grpc
from colending.v1 import (
    common_pb2,
    consent_pb2,
    enforcement_pb2,
    financing_pb2,
    merchant_pb2,
    monitoring_pb2,
    orders_pb2,
    partner_bank_service_pb2,
    partner_bank_service_pb2_grpc,
    reconciliation_pb2,
    referral_pb2,
    referral_service_pb2,
    referral_service_pb2_grpc,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from google.protobuf import timestamp_pb2

from colending_core import (
    Envelope,
    MalformedEnvelopeError,
    UnknownKeyError,
    VerificationError,
    key_id,
    public_key_from_raw,
)
from partners.sdk._evidence import sign_decision, sign_loan_event
from partners.sdk._rpc import (
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    RetryPolicy,
    call_unary,
    caller_metadata,
    translate,
)
from partners.sdk._verify import (
    DEFAULT_CLOCK_SKEW,
    VerifiedAlert,
    VerifiedReferral,
    VerifiedStatement,
    verify_alert,
    verify_reconciliation,
    verify_referral,
)

ED25519 = "ed25519"

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


ANY_DISPUTE_STATE = reconciliation_pb2.DISPUTE_STATE_UNSPECIFIED


def _new_request_id() -> str:
    return str(uuid.uuid4())


def _date(value: date) -> common_pb2.Date:
    return common_pb2.Date(year=value.year, month=value.month, day=value.day)


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
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._channel = channel
        self._caller = caller
        self._timeout = timeout
        self._retry = retry if retry is not None else DEFAULT_RETRY
        self._owns_channel = False  # set by connect()
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


_Verified = TypeVar("_Verified")


@dataclass(frozen=True, slots=True)
class AlertPage:
    """One page of verified alerts and the cursor to pass to the next ``pull_alerts``."""

    alerts: list[VerifiedAlert]
    next_cursor: str


@dataclass(frozen=True, slots=True)
class PulledPage:
    """One page of verified referrals and the cursor to pass to the next ``pull``."""

    referrals: list[VerifiedReferral]
    next_cursor: str


class BankClient(_Client):
    """A partner bank's client of ``PartnerBankService``.

    ``caller`` is the development-mode identity (``"partner/<bank_id>"``), sent only when given;
    with TLS the client certificate identifies the bank. ``timeout`` is each attempt's deadline
    in seconds. ``trusted_keys`` pins the gateway's signing keys; without it the published keys
    are fetched on first use, checked (each key id must be the hash of its key) and cached, and
    fetched again once when a referral names a key id not seen yet (a key rotation).
    ``decision_key`` is the bank's decision-signing key (its public half registered with the
    gateway as ``decision_public_key``): with it, every decision and loan event is sent signed.
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
        decision_key: Ed25519PrivateKey | None = None,
    ) -> None:
        if not bank_id:
            raise ValueError("bank_id must not be empty")
        super().__init__(channel=channel, caller=caller, timeout=timeout, retry=retry)
        self._stub = partner_bank_service_pb2_grpc.PartnerBankServiceStub(channel)
        self._bank_id = bank_id
        self._pinned = dict(trusted_keys) if trusted_keys is not None else None
        self._clock_skew = clock_skew
        self._keys_lock = threading.Lock()
        self._keys: dict[str, Ed25519PublicKey] | None = None
        self._decision_key = decision_key

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
        decision_key: Ed25519PrivateKey | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, str | int]] | None = None,
    ) -> Self:
        """Open a channel to ``target`` that the client owns and closes.

        Without ``credentials`` the channel is plaintext: for development only.
        """
        client = cls(
            channel=_open_channel(target, credentials, options),
            bank_id=bank_id,
            caller=caller,
            timeout=timeout,
            trusted_keys=trusted_keys,
            clock_skew=clock_skew,
            retry=retry,
            decision_key=decision_key,
        )
        client._owns_channel = True
        return client

    @property
    def bank_id(self) -> str:
        return self._bank_id

    # --- signing keys -------------------------------------------------------------------

    def signing_keys(self, refresh: bool = False) -> dict[str, Ed25519PublicKey]:
        """The gateway keys referrals are verified with, by key id.

        Pinned keys are returned as given. Otherwise the published keys are fetched (on first
        use, or with ``refresh``) and cached. A published key whose id is not the SHA-256 of its
        bytes raises :class:`VerificationError`; keys of other algorithms are skipped.
        """
        if self._pinned is not None:
            return dict(self._pinned)
        with self._keys_lock:
            if self._keys is None or refresh:
                self._keys = self._fetch_keys()
            return dict(self._keys)

    def _fetch_keys(self) -> dict[str, Ed25519PublicKey]:
        response = self._call(
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
                    f"published key {published.keyid!r} is not an Ed25519 key: {exc}"
                ) from None
            if key_id(public_key) != published.keyid:
                raise VerificationError(
                    f"published key id {published.keyid!r} is not the hash of its key "
                    f"({key_id(public_key)!r})"
                )
            keys[published.keyid] = public_key
        return keys

    # --- referrals ----------------------------------------------------------------------

    def _with_keys(self, verify: Callable[[dict[str, Ed25519PublicKey]], _Verified]) -> _Verified:
        """``verify`` with :meth:`signing_keys`; when no signature is by a known key and the keys
        are not pinned, once more with freshly fetched keys (a rotation since the cache filled)."""
        try:
            return verify(self.signing_keys())
        except UnknownKeyError:
            if self._pinned is not None:
                raise
        return verify(self.signing_keys(refresh=True))

    def verify(
        self, envelope: common_pb2.Envelope | Envelope, *, now: datetime | None = None
    ) -> VerifiedReferral:
        """Verify one referral envelope addressed to this bank (e.g. one pushed to it)."""
        return self._with_keys(
            lambda keys: verify_referral(
                envelope,
                trusted_keys=keys,
                bank_id=self._bank_id,
                now=now,
                clock_skew=self._clock_skew,
            )
        )

    def verify_alert(
        self, envelope: common_pb2.Envelope | Envelope, *, now: datetime | None = None
    ) -> VerifiedAlert:
        """Verify one early-warning alert addressed to this bank."""
        return self._with_keys(
            lambda keys: verify_alert(
                envelope,
                trusted_keys=keys,
                bank_id=self._bank_id,
                now=now,
                clock_skew=self._clock_skew,
            )
        )

    def pull(
        self,
        *,
        cursor: str = "",
        page_size: int = 50,
        on_rejected: Callable[[VerificationError], None] | None = None,
    ) -> PulledPage:
        """Fetch the next page of referrals addressed to this bank, each one verified.

        A referral that fails verification is never skipped silently: without ``on_rejected``
        it raises, and the error's ``case_id`` and ``resume_cursor`` say which one and where to
        resume after it; with ``on_rejected`` it is handed to the callback (to record and
        report) and the rest of the page is still returned.
        """
        response = self._call(
            self._stub.PullReferrals,
            partner_bank_service_pb2.PullReferralsRequest(cursor=cursor, page_size=page_size),
        )
        referrals: list[VerifiedReferral] = []
        for item in response.referrals:
            try:
                referral = self.verify(item.envelope)
                if (item.case_id, item.referral_id) != (referral.case_id, referral.referral_id):
                    raise MalformedEnvelopeError(
                        f"unsigned ids (referral {item.referral_id!r}, case {item.case_id!r}) "
                        f"differ from the signed ones (referral {referral.referral_id!r}, "
                        f"case {referral.case_id!r})"
                    )
            except VerificationError as exc:
                exc.case_id = item.case_id
                exc.resume_cursor = item.cursor
                if on_rejected is None:
                    raise
                on_rejected(exc)
                continue
            referrals.append(referral)
        return PulledPage(referrals=referrals, next_cursor=response.next_cursor)

    # --- cases --------------------------------------------------------------------------

    def acknowledge(
        self, case_id: str, *, bank_reference: str, request_id: str | None = None
    ) -> financing_pb2.FinancingCase:
        """Acknowledge receipt of a case with the bank's own reference (idempotent)."""
        request = partner_bank_service_pb2.AcknowledgeReferralRequest(
            request_id=request_id or _new_request_id(),
            case_id=case_id,
            bank_reference=bank_reference,
        )
        return self._call(self._stub.AcknowledgeReferral, request).financing_case

    def get_case(self, case_id: str) -> financing_pb2.FinancingCase:
        """One of this bank's financing cases."""
        request = partner_bank_service_pb2.GetFinancingCaseRequest(case_id=case_id)
        return self._call(self._stub.GetFinancingCase, request).financing_case

    def stream(self, *, cursor: str = "") -> Iterator[tuple[VerifiedReferral, str]]:
        """Follow this bank's referrals live from ``cursor``: each one verified, with the
        cursor to resume after it. Reconnecting with the last cursor misses nothing and repeats
        nothing acknowledged. Runs until the caller stops iterating or the stream fails."""
        call = self._stub.StreamReferrals(
            partner_bank_service_pb2.StreamReferralsRequest(cursor=cursor),
            metadata=self._metadata,
        )
        try:
            for item in call:
                referral = self.verify(item.referral.envelope)
                yield referral, item.referral.cursor
        except grpc.RpcError as error:
            raise translate(error) from None
        finally:
            call.cancel()

    # --- alerts -------------------------------------------------------------------------

    def _checked_alert(self, item: monitoring_pb2.Alert) -> VerifiedAlert:
        alert = self.verify_alert(item.envelope)
        if item.alert_id != alert.alert_id:
            raise MalformedEnvelopeError(
                f"unsigned alert id {item.alert_id!r} differs from the signed {alert.alert_id!r}"
            )
        return alert

    def pull_alerts(
        self,
        *,
        cursor: str = "",
        page_size: int = 50,
        on_rejected: Callable[[VerificationError], None] | None = None,
    ) -> AlertPage:
        """The next page of this bank's early-warning alerts, each one verified; an alert that
        fails verification raises (or goes to ``on_rejected``), as in :meth:`pull`."""
        response = self._call(
            self._stub.PullAlerts,
            partner_bank_service_pb2.PullAlertsRequest(cursor=cursor, page_size=page_size),
        )
        alerts: list[VerifiedAlert] = []
        for item in response.alerts:
            try:
                alerts.append(self._checked_alert(item))
            except VerificationError as exc:
                exc.resume_cursor = item.cursor
                if on_rejected is None:
                    raise
                on_rejected(exc)
        return AlertPage(alerts=alerts, next_cursor=response.next_cursor)

    def alerts(self, *, cursor: str = "") -> Iterator[tuple[VerifiedAlert, str]]:
        """Follow this bank's alerts live from ``cursor``: each one verified, with the cursor to
        resume after it. Runs until the caller stops iterating or the stream fails; an alert
        that fails verification raises with ``resume_cursor`` set."""
        call = self._stub.StreamAlerts(
            partner_bank_service_pb2.StreamAlertsRequest(cursor=cursor), metadata=self._metadata
        )
        try:
            for item in call:
                try:
                    alert = self._checked_alert(item.alert)
                except VerificationError as exc:
                    exc.resume_cursor = item.alert.cursor
                    raise
                yield alert, item.alert.cursor
        except grpc.RpcError as error:
            raise translate(error) from None
        finally:
            call.cancel()

    def submit_decision(
        self, case_id: str, decision: financing_pb2.Decision, *, request_id: str | None = None
    ) -> financing_pb2.FinancingCase:
        """Approve, decline or counter-offer (idempotent on ``request_id``), signed when the
        client has a ``decision_key``. The client's own retries resend the same signature."""
        request = partner_bank_service_pb2.SubmitDecisionRequest(
            request_id=request_id or _new_request_id(), case_id=case_id, decision=decision
        )
        if self._decision_key is not None:
            request.signed_decision.CopyFrom(
                sign_decision(
                    decision,
                    case_id=case_id,
                    bank_id=self._bank_id,
                    private_key=self._decision_key,
                )
            )
        return self._call(self._stub.SubmitDecision, request).financing_case

    def report_loan_event(
        self, case_id: str, event: financing_pb2.LoanEvent, *, request_id: str | None = None
    ) -> financing_pb2.FinancingCase:
        """Record a disbursement, repayment, overdue, default... (idempotent on ``request_id``),
        signed when the client has a ``decision_key``."""
        request = partner_bank_service_pb2.ReportLoanEventRequest(
            request_id=request_id or _new_request_id(), case_id=case_id, event=event
        )
        if self._decision_key is not None:
            request.signed_event.CopyFrom(
                sign_loan_event(
                    event, case_id=case_id, bank_id=self._bank_id, private_key=self._decision_key
                )
            )
        return self._call(self._stub.ReportLoanEvent, request).financing_case

    # --- reconciliation -----------------------------------------------------------------

    def reconciliation_statement(self, business_date: date) -> VerifiedStatement:
        """This bank's signed statement of a closed business date with the platform, verified
        (signature, addressee, lines root, totals). Asking closes the bank's books through that
        day: no event may be dated on or before it afterwards."""
        request = partner_bank_service_pb2.GetReconciliationStatementRequest(
            business_date=_date(business_date)
        )
        statement = self._call(self._stub.GetReconciliationStatement, request).statement
        return self._with_keys(
            lambda keys: verify_reconciliation(
                statement.envelope,
                trusted_keys=keys,
                bank_id=self._bank_id,
                business_date=business_date,
            )
        )

    def file_dispute(
        self,
        business_date: date,
        *,
        case_id: str,
        disputed_fields: Sequence[str],
        reason: str,
        request_id: str | None = None,
    ) -> reconciliation_pb2.ReconciliationDispute:
        """Dispute this bank's line for ``case_id`` on the statement of ``business_date``:
        the amounts contested (ReconciliationLine field names) and why."""
        request = partner_bank_service_pb2.FileReconciliationDisputeRequest(
            request_id=request_id or _new_request_id(),
            business_date=_date(business_date),
            case_id=case_id,
            disputed_fields=list(disputed_fields),
            reason=reason,
        )
        return self._call(self._stub.FileReconciliationDispute, request).dispute

    def disputes(
        self,
        *,
        state: reconciliation_pb2.DisputeState.ValueType = ANY_DISPUTE_STATE,
        page_size: int = 50,
    ) -> Iterator[reconciliation_pb2.ReconciliationDispute]:
        """This bank's disputes, oldest first, in ``state`` (UNSPECIFIED: any)."""
        token = ""
        while True:
            request = partner_bank_service_pb2.ListReconciliationDisputesRequest(
                state=state, page_size=page_size, page_token=token
            )
            page = self._call(self._stub.ListReconciliationDisputes, request)
            yield from page.disputes
            if not (token := page.next_page_token):
                return

    # --- order loans --------------------------------------------------------------------

    def list_order_batches(
        self,
        *,
        state: orders_pb2.OrderBatchState.ValueType = orders_pb2.ORDER_BATCH_STATE_UNSPECIFIED,
        page_size: int = 50,
        page_token: str = "",
    ) -> tuple[list[orders_pb2.OrderBatch], str]:
        """One page of the order batches on this bank's ORDER_LOAN cases, oldest first, and
        the next page's token (empty at the end)."""
        request = partner_bank_service_pb2.ListOrderBatchesRequest(
            state=state, page_size=page_size, page_token=page_token
        )
        response = self._call(self._stub.ListOrderBatches, request)
        return list(response.batches), response.next_page_token

    def pending_order_batches(self, *, page_size: int = 50) -> Iterator[orders_pb2.OrderBatch]:
        """Every batch waiting for this bank's decision, fetching pages as needed."""
        page_token = ""
        while True:
            batches, page_token = self.list_order_batches(
                state=orders_pb2.ORDER_BATCH_STATE_PENDING,
                page_size=page_size,
                page_token=page_token,
            )
            yield from batches
            if not page_token:
                return

    def decide_order_batch(
        self,
        batch_id: str,
        *,
        approve: bool,
        decline_reason_codes: Sequence[str] = (),
        request_id: str | None = None,
    ) -> partner_bank_service_pb2.DecideOrderBatchResponse:
        """Approve a pending batch (its advances are paid out, drawn on the case's line) or
        decline it with reason codes; the answer has the batch and the case (idempotent on
        ``request_id``)."""
        request = partner_bank_service_pb2.DecideOrderBatchRequest(
            request_id=request_id or _new_request_id(),
            batch_id=batch_id,
            outcome=orders_pb2.ORDER_BATCH_OUTCOME_APPROVE
            if approve
            else orders_pb2.ORDER_BATCH_OUTCOME_DECLINE,
            decline_reason_codes=list(decline_reason_codes),
        )
        return self._call(self._stub.DecideOrderBatch, request)


class PlatformClient(_Client):
    """The platform's client of ``ReferralService``.

    ``caller`` is the development-mode identity (``"platform"``), sent only when given; with TLS
    the client certificate identifies the platform. ``timeout`` is each attempt's deadline in
    seconds. Mutating calls take a ``request_id`` (a fresh UUID when omitted) that stays the
    same across the client's own retries; pass your own to make retries across restarts safe.
    """

    def __init__(
        self,
        *,
        channel: grpc.Channel,
        caller: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(channel=channel, caller=caller, timeout=timeout, retry=retry)
        self._stub = referral_service_pb2_grpc.ReferralServiceStub(channel)
        self._cases = partner_bank_service_pb2_grpc.PartnerBankServiceStub(channel)

    @classmethod
    def connect(
        cls,
        target: str,
        *,
        caller: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, str | int]] | None = None,
    ) -> Self:
        """Open a channel to ``target`` that the client owns and closes.

        Without ``credentials`` the channel is plaintext: for development only.
        """
        client = cls(
            channel=_open_channel(target, credentials, options),
            caller=caller,
            timeout=timeout,
            retry=retry,
        )
        client._owns_channel = True
        return client

    # --- consent ------------------------------------------------------------------------

    def record_consent(
        self,
        *,
        platform_merchant_id: str,
        bank_ids: Sequence[str],
        data_scopes: Sequence[consent_pb2.DataScope.ValueType],
        expires_at: datetime,
        evidence_reference: str,
        purpose: consent_pb2.ConsentPurpose.ValueType = consent_pb2.CONSENT_PURPOSE_CREDIT_REFERRAL,
        request_id: str | None = None,
    ) -> consent_pb2.Consent:
        """Record a merchant's consent to share ``data_scopes`` with ``bank_ids``."""
        request = referral_service_pb2.RecordConsentRequest(
            request_id=request_id or _new_request_id(),
            platform_merchant_id=platform_merchant_id,
            bank_ids=list(bank_ids),
            data_scopes=list(data_scopes),
            purpose=purpose,
            expires_at=_timestamp(expires_at, name="expires_at"),
            evidence_reference=evidence_reference,
        )
        return self._call(self._stub.RecordConsent, request).consent

    def revoke_consent(
        self, consent_id: str, *, reason: str, request_id: str | None = None
    ) -> consent_pb2.Consent:
        """Revoke a consent; nothing more is delivered under it."""
        request = referral_service_pb2.RevokeConsentRequest(
            request_id=request_id or _new_request_id(), consent_id=consent_id, reason=reason
        )
        return self._call(self._stub.RevokeConsent, request).consent

    # --- referrals ----------------------------------------------------------------------

    def submit_referral(
        self,
        *,
        merchant: merchant_pb2.MerchantProfile,
        consent_id: str,
        bank_ids: Sequence[str],
        request_id: str | None = None,
    ) -> referral_pb2.Referral:
        """Submit a merchant to ``bank_ids``; returns the referral with one envelope per bank."""
        request = referral_service_pb2.SubmitReferralRequest(
            request_id=request_id or _new_request_id(),
            merchant=merchant,
            consent_id=consent_id,
            bank_ids=list(bank_ids),
        )
        return self._call(self._stub.SubmitReferral, request).referral

    def submit_trade_snapshot(
        self,
        *,
        snapshot: monitoring_pb2.TradeSnapshot,
        consent_id: str,
        request_id: str | None = None,
    ) -> referral_service_pb2.SubmitTradeSnapshotResponse:
        """Report a borrower's trade after the loan under a MONITORING consent; the answer
        names the lending banks checked and the alerts raised (idempotent on ``request_id``)."""
        request = referral_service_pb2.SubmitTradeSnapshotRequest(
            request_id=request_id or _new_request_id(), consent_id=consent_id, snapshot=snapshot
        )
        return self._call(self._stub.SubmitTradeSnapshot, request)

    def submit_order_batch(
        self,
        *,
        case_id: str,
        consent_id: str,
        orders: Sequence[orders_pb2.PendingOrder],
        request_id: str | None = None,
    ) -> orders_pb2.OrderBatch:
        """Offer pending orders against an ORDER_LOAN case's line; the batch waits for the
        bank's decision (idempotent on ``request_id``)."""
        request = referral_service_pb2.SubmitOrderBatchRequest(
            request_id=request_id or _new_request_id(),
            case_id=case_id,
            consent_id=consent_id,
            orders=list(orders),
        )
        return self._call(self._stub.SubmitOrderBatch, request).batch

    def get_order_batch(self, batch_id: str) -> orders_pb2.OrderBatch:
        """One order batch with each order's state and settlement sweep."""
        request = referral_service_pb2.GetOrderBatchRequest(batch_id=batch_id)
        return self._call(self._stub.GetOrderBatch, request).batch

    def report_order_settlement(
        self,
        *,
        batch_id: str,
        order_id: str,
        settled_amount_fen: int | None = None,
        refunded: bool = False,
        settlement_date: date,
        request_id: str | None = None,
    ) -> referral_service_pb2.ReportOrderSettlementResponse:
        """Report a funded order settled for ``settled_amount_fen`` (its advance and the
        interest due are swept from it) or ``refunded`` (its advance turns overdue); the
        answer has the batch and the case (idempotent on ``request_id``)."""
        if refunded == (settled_amount_fen is not None):
            raise ValueError("give settled_amount_fen to settle, or refunded=True, not both")
        request = referral_service_pb2.ReportOrderSettlementRequest(
            request_id=request_id or _new_request_id(),
            batch_id=batch_id,
            order_id=order_id,
            outcome=orders_pb2.SETTLEMENT_OUTCOME_REFUNDED
            if refunded
            else orders_pb2.SETTLEMENT_OUTCOME_SETTLED,
            settlement_date=_date(settlement_date),
        )
        if settled_amount_fen is not None:
            request.settled_amount.CopyFrom(
                common_pb2.Money(currency_code="CNY", amount_minor=settled_amount_fen)
            )
        return self._call(self._stub.ReportOrderSettlement, request)

    def get_reconciliation_statement(
        self, *, bank_id: str, business_date: date
    ) -> reconciliation_pb2.ReconciliationStatement:
        """A bank's signed statement of a closed business date (check it with
        :func:`verify_reconciliation` and the gateway's published keys)."""
        request = partner_bank_service_pb2.GetReconciliationStatementRequest(
            bank_id=bank_id, business_date=_date(business_date)
        )
        return self._call(self._cases.GetReconciliationStatement, request).statement

    def resolve_dispute(
        self, dispute_id: str, *, upheld: bool, note: str, request_id: str | None = None
    ) -> reconciliation_pb2.ReconciliationDispute:
        """Resolve a bank's open dispute of a statement line: upheld (the line was wrong) or
        rejected (it stands), with a note."""
        request = partner_bank_service_pb2.ResolveReconciliationDisputeRequest(
            request_id=request_id or _new_request_id(),
            dispute_id=dispute_id,
            outcome=reconciliation_pb2.DISPUTE_STATE_UPHELD
            if upheld
            else reconciliation_pb2.DISPUTE_STATE_REJECTED,
            note=note,
        )
        return self._call(self._cases.ResolveReconciliationDispute, request).dispute

    def get_referral(self, referral_id: str) -> referral_pb2.Referral:
        """One referral with its per-bank deliveries."""
        request = referral_service_pb2.GetReferralRequest(referral_id=referral_id)
        return self._call(self._stub.GetReferral, request).referral

    def get_financing_case(self, case_id: str) -> financing_pb2.FinancingCase:
        """Any bank's case with its history, each bank-signed step carrying its evidence
        (check it with :func:`read_evidence`)."""
        request = partner_bank_service_pb2.GetFinancingCaseRequest(case_id=case_id)
        return self._call(self._cases.GetFinancingCase, request).financing_case

    def list_referrals(
        self,
        *,
        page_size: int = 50,
        page_token: str = "",
        platform_merchant_id: str = "",
        state: referral_pb2.ReferralState.ValueType = referral_pb2.REFERRAL_STATE_UNSPECIFIED,
    ) -> tuple[list[referral_pb2.Referral], str]:
        """One page of referrals, newest first, and the next page's token (empty at the end)."""
        request = referral_service_pb2.ListReferralsRequest(
            page_size=page_size,
            page_token=page_token,
            platform_merchant_id=platform_merchant_id,
            state=state,
        )
        response = self._call(self._stub.ListReferrals, request)
        return list(response.referrals), response.next_page_token

    def iter_referrals(
        self,
        *,
        page_size: int = 50,
        platform_merchant_id: str = "",
        state: referral_pb2.ReferralState.ValueType = referral_pb2.REFERRAL_STATE_UNSPECIFIED,
    ) -> Iterator[referral_pb2.Referral]:
        """Every matching referral, newest first, fetching pages as needed."""
        page_token = ""
        while True:
            referrals, page_token = self.list_referrals(
                page_size=page_size,
                page_token=page_token,
                platform_merchant_id=platform_merchant_id,
                state=state,
            )
            yield from referrals
            if not page_token:
                return

    def withdraw_referral(
        self, referral_id: str, *, reason: str, request_id: str | None = None
    ) -> referral_pb2.Referral:
        """Withdraw a referral: its undecided cases move to WITHDRAWN."""
        request = referral_service_pb2.WithdrawReferralRequest(
            request_id=request_id or _new_request_id(), referral_id=referral_id, reason=reason
        )
        return self._call(self._stub.WithdrawReferral, request).referral

    def respond_to_counter_offer(
        self,
        case_id: str,
        *,
        accept: bool,
        reason: str = "",
        request_id: str | None = None,
    ) -> financing_pb2.FinancingCase:
        """Accept or reject a bank's counter-offer on ``case_id``."""
        request = referral_service_pb2.RespondToCounterOfferRequest(
            request_id=request_id or _new_request_id(),
            case_id=case_id,
            answer=referral_service_pb2.COUNTER_OFFER_ANSWER_ACCEPT
            if accept
            else referral_service_pb2.COUNTER_OFFER_ANSWER_REJECT,
            reason=reason,
        )
        return self._call(self._stub.RespondToCounterOffer, request).financing_case

    def enforcement_events(
        self, *, page_token: str = "", page_size: int = 50, platform_merchant_id: str = ""
    ) -> tuple[list[enforcement_pb2.EnforcementEvent], str]:
        """The next events to act on (restrict or restore a store) and the token to poll with."""
        request = referral_service_pb2.ListEnforcementEventsRequest(
            page_size=page_size, page_token=page_token, platform_merchant_id=platform_merchant_id
        )
        response = self._call(self._stub.ListEnforcementEvents, request)
        return list(response.events), response.next_page_token
