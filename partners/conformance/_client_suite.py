"""The ``bank-client`` suite: the kit plays the gateway for a bank's client code.

It serves ``PartnerBankService`` with scripted trouble, the bank runs its client against it,
and the kit then judges what the client did:

* the first pull answers ``UNAVAILABLE``: a client must retry;
* a pull returns one good referral and one whose bytes were altered: a client must acknowledge
  the first and never the second;
* the first acknowledgement answers ``UNAVAILABLE``: the retry must carry the same
  ``request_id``, or a retry after a lost answer would act twice;
* the stream sends one referral and breaks: a client must reconnect with the cursor after it,
  and then gets (and acknowledges) the next one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from colending.v1 import (
    financing_pb2,
    partner_bank_service_pb2,
    partner_bank_service_pb2_grpc,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from colending_core import key_id
from partners.conformance._kit import CheckResult, build_referral, sign_referral

pb = partner_bank_service_pb2


@dataclass
class _Observed:
    pulls: int = 0
    acks: list[tuple[str, str]] = field(default_factory=list)  # (case id, request id)
    stream_cursors: list[str] = field(default_factory=list)


class FakeGateway(partner_bank_service_pb2_grpc.PartnerBankServiceServicer):
    def __init__(self, *, bank_id: str, signer: Ed25519PrivateKey | None = None) -> None:
        self._signer = signer or Ed25519PrivateKey.generate()
        self.referrals: dict[str, pb.ReferralEnvelope] = {}
        for name in ("good", "tampered", "streamed-1", "streamed-2"):
            referral_id, case_id, payload = build_referral(bank_id=bank_id)
            envelope = sign_referral(payload.SerializeToString(), signer=self._signer)
            if name == "tampered":
                flipped = bytearray(envelope.payload)
                flipped[len(flipped) // 2] ^= 0x01
                envelope.payload = bytes(flipped)
            self.referrals[name] = pb.ReferralEnvelope(
                referral_id=referral_id, case_id=case_id, envelope=envelope, cursor=f"c-{name}"
            )
        self.observed = _Observed()
        self._lock = threading.Lock()
        self.finished = threading.Event()

    def _case(self, name: str) -> str:
        return self.referrals[name].case_id

    # --- the service ----------------------------------------------------------------------

    def GetSigningKeys(
        self, request: pb.GetSigningKeysRequest, context: grpc.ServicerContext
    ) -> pb.GetSigningKeysResponse:
        public = self._signer.public_key()
        return pb.GetSigningKeysResponse(
            keys=[
                pb.SigningKey(
                    keyid=key_id(public),
                    public_key=public.public_bytes(Encoding.Raw, PublicFormat.Raw),
                    algorithm="ed25519",
                    state=pb.SIGNING_KEY_STATE_ACTIVE,
                )
            ]
        )

    def PullReferrals(
        self, request: pb.PullReferralsRequest, context: grpc.ServicerContext
    ) -> pb.PullReferralsResponse:
        with self._lock:
            self.observed.pulls += 1
            first = self.observed.pulls == 1
        if first:
            context.abort(grpc.StatusCode.UNAVAILABLE, "conformance: first pull fails")
        if request.cursor:
            return pb.PullReferralsResponse(next_cursor=request.cursor)
        return pb.PullReferralsResponse(
            referrals=[self.referrals["good"], self.referrals["tampered"]],
            next_cursor=self.referrals["tampered"].cursor,
        )

    def AcknowledgeReferral(
        self, request: pb.AcknowledgeReferralRequest, context: grpc.ServicerContext
    ) -> pb.AcknowledgeReferralResponse:
        with self._lock:
            self.observed.acks.append((request.case_id, request.request_id))
            first = len(self.observed.acks) == 1
            done = {self._case("good"), self._case("streamed-2")} <= {
                c for c, _ in self.observed.acks
            }
        if first:
            context.abort(grpc.StatusCode.UNAVAILABLE, "conformance: first acknowledgement fails")
        if done:
            self.finished.set()
        return pb.AcknowledgeReferralResponse(
            financing_case=financing_pb2.FinancingCase(
                case_id=request.case_id, state=financing_pb2.FINANCING_STATE_ACKNOWLEDGED
            )
        )

    def StreamReferrals(
        self, request: pb.StreamReferralsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.StreamReferralsResponse]:
        with self._lock:
            self.observed.stream_cursors.append(request.cursor)
            first = len(self.observed.stream_cursors) == 1
        if first:
            yield pb.StreamReferralsResponse(referral=self.referrals["streamed-1"])
            context.abort(grpc.StatusCode.UNAVAILABLE, "conformance: the stream breaks")
        if request.cursor == self.referrals["streamed-1"].cursor:
            yield pb.StreamReferralsResponse(referral=self.referrals["streamed-2"])
        while context.is_active() and not self.finished.is_set():
            time.sleep(0.05)

    # --- the verdict ----------------------------------------------------------------------

    def verdict(self) -> list[CheckResult]:
        with self._lock:
            seen = _Observed(
                pulls=self.observed.pulls,
                acks=list(self.observed.acks),
                stream_cursors=list(self.observed.stream_cursors),
            )
        acked = {case for case, _ in seen.acks}
        good_ids = {rid for case, rid in seen.acks if case == self._case("good")}
        good_count = sum(case == self._case("good") for case, _ in seen.acks)
        checks = [
            (
                "client.retries-unavailable",
                "UNAVAILABLE is transient: the call must be retried",
                None if seen.pulls >= 2 else f"pulled {seen.pulls} time(s), never retried",
            ),
            (
                "client.acknowledges-verified",
                "a verified referral is acknowledged",
                None if self._case("good") in acked else "the good referral was not acknowledged",
            ),
            (
                "client.refuses-tampered",
                "an envelope whose bytes were altered must never be acted on",
                "the tampered referral was acknowledged"
                if self._case("tampered") in acked
                else None,
            ),
            (
                "client.same-request-id-on-retry",
                "a retried write keeps its request_id, so the gateway applies it once",
                None
                if good_count >= 2 and len(good_ids) == 1
                else f"{good_count} acknowledgement(s) with {len(good_ids)} request id(s); "
                "expected a retry with one id",
            ),
            (
                "client.stream-resumes-from-cursor",
                "a broken stream resumes after the last referral received",
                None
                if seen.stream_cursors[1:2] == [self.referrals["streamed-1"].cursor]
                and self._case("streamed-2") in acked
                else f"stream cursors {seen.stream_cursors}; expected a reconnect with "
                f"{self.referrals['streamed-1'].cursor!r} and the next referral acknowledged",
            ),
        ]
        return [
            CheckResult(case_id=c, rationale=r, passed=p is None, detail=p or "ok")
            for c, r, p in checks
        ]


def serve(fake: FakeGateway, *, host: str = "127.0.0.1", port: int = 0) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    partner_bank_service_pb2_grpc.add_PartnerBankServiceServicer_to_server(fake, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"could not bind {host}:{port}")
    server.start()
    return server, bound
