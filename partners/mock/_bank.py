"""A mock partner bank: a real gRPC ``BankReceiverService`` plus the bank side of a case.

It verifies every pushed envelope with the SDK (signature over the exact bytes, addressee,
validity), de-duplicates by referral id, and behaves as scripted: it can be slow, flaky or
down, and it decides by a rule (approve, decline or counter-offer). With a :class:`BankClient`
it then acknowledges and decides through ``PartnerBankService``, so a whole case runs against
it, decides the order batches on its order loans, and reviews its early-warning alerts: a
CRITICAL one stops new lending to the merchant.
Used by the contract tests, the demo and ``colending-mock-bank``.
"""

from __future__ import annotations

import enum
import random
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import grpc
from colending.v1 import (
    bank_receiver_service_pb2,
    bank_receiver_service_pb2_grpc,
    common_pb2,
    financing_pb2,
    monitoring_pb2,
    partner_bank_service_pb2,
)
from google.protobuf.timestamp_pb2 import Timestamp

from partners.sdk import (
    BankClient,
    MisaddressedReferralError,
    ReferralExpiredError,
    ReferralNotYetValidError,
    VerificationError,
    VerifiedAlert,
    VerifiedReferral,
)
from partners.sdk.tls import peer_is_gateway

br = bank_receiver_service_pb2
_V = TypeVar("_V")
PLATFORM_SHARE_BPS = 3000  # the regulatory floor for the cooperating institution's share
MIN_LINE_FEN = 5_000_000  # RMB 50,000, the smallest line of the default policy
MIN_FIXED_FEN = 5_000_000  # RMB 50,000, the smallest fixed part of a combined line


class Decision(enum.Enum):
    APPROVE = "approve"  # approve the offer as referred
    DECLINE = "decline"
    COUNTER = "counter"  # counter with half the offered amount
    BY_SCORE = "by-score"  # approve grades A-B, counter C, decline D-E
    ORDER_LOAN = "order-loan"  # approve the offered amount as an order-financing line
    REVOLVING = "revolving"  # approve the offered amount as a revolving line
    INSTALMENTS = "instalments"  # approve it as a fixed loan repaid in equal instalments


@dataclass(kw_only=True)
class Script:
    """How the bank behaves. Shares are parts per thousand so no float decides a call."""

    decision: Decision = Decision.APPROVE
    delay_seconds: float = 0.0  # answer each push this late ("slow")
    unavailable_per_mille: int = 0  # this share of pushes answers UNAVAILABLE ("flaky")
    down: bool = False  # every push answers UNAVAILABLE until brought up
    seed: int = 0


@dataclass
class _Received:
    referral: VerifiedReferral
    reference: str
    received_at: datetime
    decided: bool = False


@dataclass
class Stats:
    pushes: int = 0  # raw DeliverReferral calls, duplicates included
    duplicates: int = 0
    rejected: int = 0  # envelopes that failed verification
    unavailable: int = 0  # answered UNAVAILABLE on purpose
    reasons: list[str] = field(default_factory=list)


class MockBank(bank_receiver_service_pb2_grpc.BankReceiverServiceServicer):
    def __init__(
        self,
        *,
        bank_id: str,
        verify: Callable[[common_pb2.Envelope], VerifiedReferral],
        verify_alert: Callable[[common_pb2.Envelope], VerifiedAlert] | None = None,
        script: Script | None = None,
    ) -> None:
        """``verify`` checks a referral envelope addressed to this bank (``BankClient.verify``),
        ``verify_alert`` an alert's (``BankClient.verify_alert``; without it, pushed alerts are
        answered UNIMPLEMENTED)."""
        self.bank_id = bank_id
        self.script = script or Script()
        self.stats = Stats()
        self._verify = verify
        self._verify_alert = verify_alert
        self._received: dict[str, _Received] = {}
        self._lock = threading.Lock()
        self._rng = random.Random(self.script.seed)  # noqa: S311  (a scripted coin, not a secret)
        self._server: grpc.Server | None = None
        self._tls = False
        self._alerts: list[VerifiedAlert] = []
        self._alert_cursor = ""
        self._watchlist: set[str] = set()

    # --- the receiver ---------------------------------------------------------------------

    def DeliverReferral(
        self, request: br.DeliverReferralRequest, context: grpc.ServicerContext
    ) -> br.DeliverReferralResponse:
        self._admit(context)
        referral = self._verified(self._verify, request.envelope, context)
        if (referral.referral_id, referral.case_id) != (request.referral_id, request.case_id):
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "unsigned ids differ from the signed ones"
            )
        with self._lock:
            first = self._received.get(referral.referral_id)
            duplicate = first is not None
            if first is None:
                first = self._received[referral.referral_id] = _Received(
                    referral=referral,
                    reference=f"{self.bank_id.upper()}-{len(self._received) + 1:06d}",
                    received_at=datetime.now(UTC),
                )
            else:
                self.stats.duplicates += 1
        received_at = Timestamp()
        received_at.FromDatetime(first.received_at)
        return br.DeliverReferralResponse(
            bank_reference=first.reference, received_at=received_at, duplicate=duplicate
        )

    def DeliverAlert(
        self, request: br.DeliverAlertRequest, context: grpc.ServicerContext
    ) -> br.DeliverAlertResponse:
        if self._verify_alert is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{self.bank_id} takes no alert pushes")
        self._admit(context)
        alert = self._verified(self._verify_alert, request.envelope, context)
        if alert.alert_id != request.alert_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unsigned alert id differs")
        with self._lock:
            duplicate = any(a.alert_id == alert.alert_id for a in self._alerts)
            if duplicate:
                self.stats.duplicates += 1
            else:
                self._take_alerts([alert])
        return br.DeliverAlertResponse(duplicate=duplicate)

    def _admit(self, context: grpc.ServicerContext) -> None:
        """Only the gateway may push (under TLS), and the script may make the bank unavailable
        or slow: the same for every push."""
        if self._tls and not peer_is_gateway(context):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "only the gateway pushes")
        with self._lock:
            self.stats.pushes += 1
            unavailable = self.script.down or (
                self._rng.randrange(1000) < self.script.unavailable_per_mille
            )
            if unavailable:
                self.stats.unavailable += 1
        if unavailable:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.bank_id} is unavailable")
        if self.script.delay_seconds:
            time.sleep(self.script.delay_seconds)

    def _verified(
        self,
        verify: Callable[[common_pb2.Envelope], _V],
        envelope: common_pb2.Envelope,
        context: grpc.ServicerContext,
    ) -> _V:
        """``verify(envelope)``, or the push refused: an expired or premature envelope with
        FAILED_PRECONDITION, any other failure with INVALID_ARGUMENT (both final)."""
        try:
            return verify(envelope)
        except (ReferralExpiredError, ReferralNotYetValidError) as error:
            self._reject(error)
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, error.message)
        except (MisaddressedReferralError, VerificationError) as error:
            self._reject(error)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, error.message)

    def _reject(self, error: VerificationError) -> None:
        with self._lock:
            self.stats.rejected += 1
            self.stats.reasons.append(f"{type(error).__name__}: {error.message}")

    # --- what it holds --------------------------------------------------------------------

    def received(self) -> list[VerifiedReferral]:
        """Distinct referrals received, in arrival order."""
        with self._lock:
            return [r.referral for r in self._received.values()]

    def receipt_times(self) -> dict[str, datetime]:
        """When each distinct referral first arrived, by referral id."""
        with self._lock:
            return {k: r.received_at for k, r in self._received.items()}

    def reference_of(self, referral_id: str) -> str:
        with self._lock:
            return self._received[referral_id].reference

    # --- early warnings -------------------------------------------------------------------

    def review_alerts(self, client: BankClient) -> list[VerifiedAlert]:
        """Pull and verify every alert since the last review (those already pushed are not
        repeated). A CRITICAL one, pulled or pushed, puts its merchant
        on the watchlist: from then on the bank declines the merchant's new referrals
        (``EARLY_WARNING``), as a credit officer would until the risk is understood."""
        new: list[VerifiedAlert] = []
        while True:
            # An alert that fails verification is counted and passed over, never a reason to
            # stop reviewing (or deciding) for good.
            page = client.pull_alerts(cursor=self._alert_cursor, on_rejected=self._reject)
            new += page.alerts
            if page.next_cursor == self._alert_cursor:
                break
            self._alert_cursor = page.next_cursor
        with self._lock:
            known = {a.alert_id for a in self._alerts}
            new = [a for a in new if a.alert_id not in known]  # some may have been pushed
            self._take_alerts(new)
        return new

    def _take_alerts(self, alerts: list[VerifiedAlert]) -> None:
        # Under the lock.
        self._alerts += alerts
        for alert in alerts:
            if alert.severity == monitoring_pb2.ALERT_SEVERITY_CRITICAL:
                self._watchlist.add(alert.payload.platform_merchant_id)

    def alerts(self) -> list[VerifiedAlert]:
        with self._lock:
            return list(self._alerts)

    def watchlist(self) -> set[str]:
        """Merchants with a CRITICAL alert, whose new referrals this bank declines."""
        with self._lock:
            return set(self._watchlist)

    # --- the bank side of the case -------------------------------------------------------

    def decide_pending(self, client: BankClient) -> list[financing_pb2.FinancingCase]:
        """Acknowledge and decide every received referral not yet decided."""
        with self._lock:
            pending = [r for r in self._received.values() if not r.decided]
            watched = set(self._watchlist)
        cases = []
        for item in pending:
            referral = item.referral
            merchant_id = referral.payload.merchant.identity.platform_merchant_id
            client.acknowledge(
                referral.case_id,
                bank_reference=item.reference,
                request_id=f"ack-{referral.case_id}",
            )
            cases.append(
                client.submit_decision(
                    referral.case_id,
                    EARLY_WARNING_DECLINE
                    if merchant_id in watched
                    else decision_for(referral, self.script.decision),
                    request_id=f"decide-{referral.case_id}",
                )
            )
            with self._lock:
                item.decided = True
        return cases

    def decide_order_batches(
        self, client: BankClient
    ) -> list[partner_bank_service_pb2.DecideOrderBatchResponse]:
        """Decide every order batch waiting on this bank's ORDER_LOAN cases: decline those of
        a watched merchant (``EARLY_WARNING``) or all of them when scripted to decline, and
        approve the rest (the gateway has checked the cap, the line and the trade data)."""
        with self._lock:
            watched = set(self._watchlist)
        decided = []
        for batch in list(client.pending_order_batches()):
            if batch.platform_merchant_id in watched:
                codes: tuple[str, ...] = ("EARLY_WARNING",)
            elif self.script.decision is Decision.DECLINE:
                codes = ("RISK_APPETITE",)
            else:
                codes = ()
            decided.append(
                client.decide_order_batch(
                    batch.batch_id,
                    approve=not codes,
                    decline_reason_codes=codes,
                    request_id=f"decide-{batch.batch_id}",
                )
            )
        return decided

    # --- lifecycle ------------------------------------------------------------------------

    def start(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: grpc.ServerCredentials | None = None,
    ) -> int:
        """Serve on ``host:port`` (0: any free port); returns the bound port. With
        ``credentials`` (``partners.sdk.tls.receiver_credentials``) it serves mutual TLS and
        answers only the gateway."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        bank_receiver_service_pb2_grpc.add_BankReceiverServiceServicer_to_server(self, server)
        self._tls = credentials is not None
        address = f"{host}:{port}"
        bound = (
            server.add_secure_port(address, credentials)
            if credentials is not None
            else server.add_insecure_port(address)
        )
        if bound == 0:
            raise OSError(f"could not bind {host}:{port}")
        server.start()
        self._server = server
        return bound

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None


EARLY_WARNING_DECLINE = financing_pb2.Decision(
    outcome=financing_pb2.DECISION_OUTCOME_DECLINE,
    decline_reason_codes=["EARLY_WARNING"],
    note="a critical early-warning alert on this merchant is under review",
)


def decision_for(referral: VerifiedReferral, rule: Decision) -> financing_pb2.Decision:
    """The decision ``rule`` gives for ``referral``: terms from the signed offer, split 70/30."""
    offer = referral.payload.offer
    grade = referral.payload.assessment.grade
    if rule is Decision.BY_SCORE:
        rule = (
            Decision.APPROVE
            if grade in (1, 2)  # GRADE_A, GRADE_B
            else Decision.COUNTER
            if grade == 3
            else Decision.DECLINE
        )
    if rule is Decision.DECLINE:
        return financing_pb2.Decision(
            outcome=financing_pb2.DECISION_OUTCOME_DECLINE,
            decline_reason_codes=["RISK_APPETITE"],
            note="outside this bank's appetite",
        )
    product = offer.product
    amount = offer.total_limit.amount_minor
    fixed = offer.fixed_amount.amount_minor
    fixed_rate = offer.fixed_daily_rate_ppm or offer.revolving_daily_rate_ppm
    method = financing_pb2.REPAYMENT_METHOD_UNSPECIFIED
    if rule is Decision.ORDER_LOAN:  # a line drawn by order batches: no fixed part
        product, fixed = common_pb2.PRODUCT_TYPE_ORDER_LOAN, 0
    elif rule is Decision.REVOLVING:
        product, fixed = common_pb2.PRODUCT_TYPE_REVOLVING_LINE, 0
    elif rule is Decision.INSTALMENTS:
        product, fixed = common_pb2.PRODUCT_TYPE_FIXED_LOAN, amount
        method = financing_pb2.REPAYMENT_METHOD_EQUAL_INSTALMENT
    if rule is Decision.COUNTER:
        # Three quarters of the offer in whole yuan, never below the smallest line.
        amount = max(amount * 3 // 4 // 100 * 100, MIN_LINE_FEN)
        if product == common_pb2.PRODUCT_TYPE_COMBINED:
            floor = max(-(-amount * 2000 // 10_000), MIN_FIXED_FEN)  # the fixed-part rule
            if floor < amount:
                fixed = max(min(fixed, amount - 100), floor)
            else:  # too small to split: lend it all as the fixed loan
                product, fixed = common_pb2.PRODUCT_TYPE_FIXED_LOAN, amount
        elif product == common_pb2.PRODUCT_TYPE_FIXED_LOAN:
            fixed = amount
    terms = financing_pb2.LoanTerms(
        product=product,
        amount=common_pb2.Money(currency_code="CNY", amount_minor=amount),
        fixed_amount=common_pb2.Money(currency_code="CNY", amount_minor=fixed) if fixed else None,
        term_months=offer.term_months,
        revolving_daily_rate_ppm=0
        if product == common_pb2.PRODUCT_TYPE_FIXED_LOAN
        else offer.revolving_daily_rate_ppm or offer.fixed_daily_rate_ppm,
        fixed_daily_rate_ppm=fixed_rate if fixed else 0,
        split=financing_pb2.FundingSplit(
            bank_share_bps=10_000 - PLATFORM_SHARE_BPS, platform_share_bps=PLATFORM_SHARE_BPS
        ),
        repayment_method=method,
    )
    outcome = (
        financing_pb2.DECISION_OUTCOME_COUNTER_OFFER
        if rule is Decision.COUNTER
        else financing_pb2.DECISION_OUTCOME_APPROVE
    )
    return financing_pb2.Decision(outcome=outcome, terms=terms)
