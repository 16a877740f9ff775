"""The conformance kit: proves a bank's ``BankReceiverService`` speaks the contract.

It pushes referrals it signs itself with a test key (which the receiver under test must be
configured to trust, and nothing in production must) and checks each answer:

* a good referral gets a receipt with the bank's own reference; a repeat, and a retry with a
  higher attempt number, get the same receipt flagged as a duplicate (delivery is at least once);
* a referral whose bytes were altered, that is signed by an unknown key, whose payload type is
  wrong, that is addressed to another bank, or whose unsigned ids disagree with the signed ones
  is refused with ``INVALID_ARGUMENT``;
* an expired referral is refused with ``FAILED_PRECONDITION`` or ``INVALID_ARGUMENT``;
* early-warning alerts (``DeliverAlert``) under the same rules: a good one gets a receipt and
  its repeat is flagged a duplicate; altered bytes, another addressee or an expired alert are
  refused; an alert never passes as a referral, nor a referral as an alert;
* every answer comes within the gateway's delivery deadline.

Each check is independent and reported on its own, so a bank sees every gap at once.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from colending.v1 import (
    bank_receiver_service_pb2,
    bank_receiver_service_pb2_grpc,
    common_pb2,
    consent_pb2,
    merchant_pb2,
    monitoring_pb2,
    referral_pb2,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from google.protobuf.timestamp_pb2 import Timestamp

from colending_core import ALERT_PAYLOAD_TYPE, REFERRAL_PAYLOAD_TYPE, key_id, pae

br = bank_receiver_service_pb2
DEADLINE_SECONDS = 5.0  # the gateway's default call timeout for a push
REFUSED = (grpc.StatusCode.INVALID_ARGUMENT,)
EXPIRED = (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT)


@dataclass(frozen=True, slots=True)
class CheckResult:
    case_id: str  # stable, e.g. "receiver.tampered"
    rationale: str  # why a bank must pass it, in one line
    passed: bool
    detail: str  # "ok", or what went wrong
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class _Answer:
    code: grpc.StatusCode
    response: br.DeliverReferralResponse | None
    details: str
    seconds: float


class ConformanceKit:
    def __init__(
        self, *, channel: grpc.Channel, bank_id: str, signer: Ed25519PrivateKey | None = None
    ) -> None:
        self._stub = bank_receiver_service_pb2_grpc.BankReceiverServiceStub(channel)
        self._bank_id = bank_id
        self._signer = signer or Ed25519PrivateKey.generate()

    @property
    def public_key(self) -> bytes:
        """The raw test key the receiver under test must trust for the run."""
        return self._signer.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    # --- building referrals ---------------------------------------------------------------

    def referral(
        self, *, bank_id: str | None = None, expires_in: timedelta = timedelta(days=30)
    ) -> tuple[str, str, referral_pb2.ReferralPayload]:
        return build_referral(bank_id=bank_id or self._bank_id, expires_in=expires_in)

    def envelope(
        self,
        payload: bytes,
        *,
        payload_type: str = REFERRAL_PAYLOAD_TYPE,
        signer: Ed25519PrivateKey | None = None,
    ) -> common_pb2.Envelope:
        return sign_referral(payload, signer=signer or self._signer, payload_type=payload_type)

    def push_alert(self, alert_id: str, envelope: common_pb2.Envelope, attempt: int = 1) -> _Answer:
        request = br.DeliverAlertRequest(alert_id=alert_id, envelope=envelope, attempt=attempt)
        return _answer(lambda: self._stub.DeliverAlert(request, timeout=DEADLINE_SECONDS))

    def push(
        self, referral_id: str, case_id: str, envelope: common_pb2.Envelope, attempt: int = 1
    ) -> _Answer:
        request = br.DeliverReferralRequest(
            referral_id=referral_id, case_id=case_id, envelope=envelope, attempt=attempt
        )
        return _answer(lambda: self._stub.DeliverReferral(request, timeout=DEADLINE_SECONDS))

    # --- the checks -----------------------------------------------------------------------

    def cases(self) -> list[tuple[str, str, Callable[[], str | None]]]:
        """``(case id, rationale, check)``; a check returns None or what went wrong."""
        return [
            (
                "receiver.receipt-and-duplicates",
                "delivery is at least once: a repeat must get the first receipt, flagged",
                self._good,
            ),
            (
                "receiver.tampered",
                "the signature covers the exact bytes: one flipped bit must be refused",
                self._tampered,
            ),
            (
                "receiver.unknown-key",
                "only the gateway's published keys may vouch for a referral",
                self._unknown_key,
            ),
            (
                "receiver.wrong-payload-type",
                "a decision or checkpoint envelope must never pass as a referral",
                self._wrong_type,
            ),
            (
                "receiver.misaddressed",
                "a referral signed for another bank must not be acted on",
                self._misaddressed,
            ),
            (
                "receiver.mismatched-ids",
                "unsigned ids beside the envelope must agree with the signed ones",
                self._mismatched_ids,
            ),
            (
                "receiver.expired",
                "a referral past its validity must not be acted on",
                self._expired,
            ),
            (
                "receiver.alert-receipt-and-duplicates",
                "alerts are pushed at least once too: a repeat must be flagged a duplicate",
                self._good_alert,
            ),
            (
                "receiver.alert-tampered",
                "an alert's signature covers its exact bytes: one flipped bit must be refused",
                self._tampered_alert,
            ),
            (
                "receiver.alert-misaddressed",
                "an alert signed for another bank must not be acted on",
                self._misaddressed_alert,
            ),
            (
                "receiver.alert-expired",
                "an alert past its validity must not be acted on",
                self._expired_alert,
            ),
            (
                "receiver.alert-referral-confusion",
                "an alert envelope must never pass as a referral, nor a referral as an alert",
                self._confused_types,
            ),
        ]

    def run(self) -> list[CheckResult]:
        results = []
        for case_id, rationale, check in self.cases():
            started = time.monotonic()
            try:
                problem = check()
            except Exception as error:  # a crash in one check must not hide the others
                problem = f"the check itself failed: {type(error).__name__}: {error}"
            results.append(
                CheckResult(
                    case_id=case_id,
                    rationale=rationale,
                    passed=problem is None,
                    detail=problem or "ok",
                    seconds=time.monotonic() - started,
                )
            )
        return results

    def _good(self) -> str | None:
        referral_id, case_id, payload = self.referral()
        envelope = self.envelope(payload.SerializeToString())
        first = self.push(referral_id, case_id, envelope)
        if (problem := _expect_ok(first)) is not None:
            return problem
        assert first.response is not None
        if not first.response.bank_reference:
            return "the receipt has no bank_reference"
        if first.response.duplicate:
            return "a first delivery was flagged as a duplicate"
        for attempt in (1, 2):
            again = self.push(referral_id, case_id, envelope, attempt=attempt)
            if (problem := _expect_ok(again)) is not None:
                return f"repeat (attempt {attempt}): {problem}"
            assert again.response is not None
            if again.response.bank_reference != first.response.bank_reference:
                return (
                    f"repeat (attempt {attempt}) got reference "
                    f"{again.response.bank_reference!r}, the first was "
                    f"{first.response.bank_reference!r}"
                )
            if not again.response.duplicate:
                return f"repeat (attempt {attempt}) was not flagged as a duplicate"
        return None

    def _tampered(self) -> str | None:
        referral_id, case_id, payload = self.referral()
        envelope = self.envelope(payload.SerializeToString())
        flipped = bytearray(envelope.payload)
        flipped[len(flipped) // 2] ^= 0x01
        envelope.payload = bytes(flipped)
        return _expect(self.push(referral_id, case_id, envelope), REFUSED)

    def _unknown_key(self) -> str | None:
        referral_id, case_id, payload = self.referral()
        envelope = self.envelope(payload.SerializeToString(), signer=Ed25519PrivateKey.generate())
        return _expect(self.push(referral_id, case_id, envelope), REFUSED)

    def _wrong_type(self) -> str | None:
        referral_id, case_id, payload = self.referral()
        envelope = self.envelope(
            payload.SerializeToString(),
            payload_type="application/vnd.colending.decision.v1+protobuf",
        )
        return _expect(self.push(referral_id, case_id, envelope), REFUSED)

    def _misaddressed(self) -> str | None:
        referral_id, case_id, payload = self.referral(bank_id=f"{self._bank_id}-other")
        envelope = self.envelope(payload.SerializeToString())
        return _expect(self.push(referral_id, case_id, envelope), REFUSED)

    def _mismatched_ids(self) -> str | None:
        referral_id, case_id, payload = self.referral()
        envelope = self.envelope(payload.SerializeToString())
        return _expect(self.push(referral_id + "X", case_id, envelope), REFUSED)

    def _expired(self) -> str | None:
        referral_id, case_id, payload = self.referral(expires_in=-timedelta(hours=1))
        envelope = self.envelope(payload.SerializeToString())
        return _expect(self.push(referral_id, case_id, envelope), EXPIRED)

    def _alert_envelope(self, **kw: Any) -> tuple[str, common_pb2.Envelope]:
        alert_id, payload = build_alert(bank_id=kw.pop("bank_id", self._bank_id), **kw)
        return alert_id, self.envelope(payload.SerializeToString(), payload_type=ALERT_PAYLOAD_TYPE)

    def _good_alert(self) -> str | None:
        alert_id, envelope = self._alert_envelope()
        first = self.push_alert(alert_id, envelope)
        if (problem := _expect_ok(first)) is not None:
            return problem
        assert first.response is not None
        if first.response.duplicate:
            return "a first alert delivery was flagged as a duplicate"
        again = self.push_alert(alert_id, envelope, attempt=2)
        if (problem := _expect_ok(again)) is not None:
            return f"repeat: {problem}"
        assert again.response is not None
        if not again.response.duplicate:
            return "a repeated alert was not flagged as a duplicate"
        return None

    def _tampered_alert(self) -> str | None:
        alert_id, envelope = self._alert_envelope()
        flipped = bytearray(envelope.payload)
        flipped[len(flipped) // 2] ^= 0x01
        envelope.payload = bytes(flipped)
        return _expect(self.push_alert(alert_id, envelope), REFUSED)

    def _misaddressed_alert(self) -> str | None:
        alert_id, envelope = self._alert_envelope(bank_id=f"{self._bank_id}-other")
        return _expect(self.push_alert(alert_id, envelope), REFUSED)

    def _expired_alert(self) -> str | None:
        alert_id, envelope = self._alert_envelope(expires_in=-timedelta(hours=1))
        return _expect(self.push_alert(alert_id, envelope), EXPIRED)

    def _confused_types(self) -> str | None:
        alert_id, alert = self._alert_envelope()
        referral_id, case_id, payload = self.referral()
        referral = self.envelope(payload.SerializeToString())
        if (problem := _expect(self.push(referral_id, case_id, alert), REFUSED)) is not None:
            return f"an alert pushed as a referral: {problem}"
        if (problem := _expect(self.push_alert(alert_id, referral), REFUSED)) is not None:
            return f"a referral pushed as an alert: {problem}"
        return None


def build_alert(
    *, bank_id: str, expires_in: timedelta = timedelta(days=30)
) -> tuple[str, monitoring_pb2.AlertPayload]:
    """A well-formed test alert payload: ``(alert id, payload)``."""
    now = datetime.now(UTC)
    alert_id = f"alert_CONFORMANCE{secrets.token_hex(6).upper()}"
    payload = monitoring_pb2.AlertPayload(
        alert_id=alert_id,
        bank_id=bank_id,
        case_ids=["case_CONFORMANCE"],
        platform_merchant_id="m-conformance",
        snapshot_id="snap_CONFORMANCE",
        snapshot_as_of=common_pb2.Date(year=now.year, month=now.month, day=now.day),
        severity=monitoring_pb2.ALERT_SEVERITY_CRITICAL,
        signals=[
            monitoring_pb2.EarlyWarningSignal(
                code=monitoring_pb2.SIGNAL_CODE_STORE_RESTRICTED,
                severity=monitoring_pb2.ALERT_SEVERITY_CRITICAL,
                reason="the platform has restricted the merchant's store",
                observed=1,
                threshold=0,
            )
        ],
        issued_at=_ts(now - timedelta(minutes=1)),
        expires_at=_ts(now + expires_in),
        nonce=secrets.token_bytes(16),
    )
    return alert_id, payload


def build_referral(
    *, bank_id: str, expires_in: timedelta = timedelta(days=30)
) -> tuple[str, str, referral_pb2.ReferralPayload]:
    """A well-formed test referral payload: ``(referral id, case id, payload)``."""
    now = datetime.now(UTC)
    referral_id = f"ref_CONFORMANCE{secrets.token_hex(6).upper()}"
    case_id = f"case_CONFORMANCE{secrets.token_hex(6).upper()}"
    payload = referral_pb2.ReferralPayload(
        referral_id=referral_id,
        case_id=case_id,
        bank_id=bank_id,
        issued_at=_ts(now - timedelta(minutes=1)),
        expires_at=_ts(now + expires_in),
        nonce=secrets.token_bytes(16),
        consent_id="cns_CONFORMANCE",
        shared_scopes=[consent_pb2.DATA_SCOPE_IDENTITY],
        merchant=merchant_pb2.MerchantProfile(
            identity=merchant_pb2.MerchantIdentity(
                platform_merchant_id="m-conformance",
                legal_name="Conformance Test Trading Co.",
                unified_social_credit_code="91330106673959654P",
            )
        ),
        offer=referral_pb2.CreditOffer(
            product=common_pb2.PRODUCT_TYPE_REVOLVING_LINE,
            total_limit=common_pb2.Money(currency_code="CNY", amount_minor=10_000_000),
            revolving_limit=common_pb2.Money(currency_code="CNY", amount_minor=10_000_000),
            term_months=12,
            revolving_daily_rate_ppm=600,
        ),
    )
    return referral_id, case_id, payload


def sign_referral(
    payload: bytes, *, signer: Ed25519PrivateKey, payload_type: str = REFERRAL_PAYLOAD_TYPE
) -> common_pb2.Envelope:
    """A DSSE envelope over ``payload``, signed as the gateway signs (PAE, Ed25519)."""
    return common_pb2.Envelope(
        payload=payload,
        payload_type=payload_type,
        signatures=[
            common_pb2.Signature(
                keyid=key_id(signer.public_key()), sig=signer.sign(pae(payload_type, payload))
            )
        ],
    )


def _answer(call: Callable[[], Any]) -> _Answer:
    started = time.monotonic()
    try:
        response = call()
        return _Answer(grpc.StatusCode.OK, response, "", time.monotonic() - started)
    except grpc.RpcError as error:
        code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
        details = (error.details() if isinstance(error, grpc.Call) else "") or ""
        return _Answer(code, None, details, time.monotonic() - started)


def _expect_ok(answer: _Answer) -> str | None:
    if answer.code is not grpc.StatusCode.OK:
        return f"expected OK, got {answer.code.name}: {answer.details}"
    return _in_time(answer)


def _expect(answer: _Answer, codes: tuple[grpc.StatusCode, ...]) -> str | None:
    if answer.code not in codes:
        wanted = " or ".join(c.name for c in codes)
        return f"expected {wanted}, got {answer.code.name}: {answer.details}"
    return _in_time(answer)


def _in_time(answer: _Answer) -> str | None:
    if answer.seconds > DEADLINE_SECONDS:
        return f"answered in {answer.seconds:.1f} s, beyond the {DEADLINE_SECONDS:.0f} s deadline"
    return None


def _ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp
