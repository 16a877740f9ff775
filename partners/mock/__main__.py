"""``colending-mock-bank``: a scripted partner bank on the command line.

It serves ``BankReceiverService`` on ``--port``, verifies each pushed referral and alert
against the gateway's published keys (plus any ``--trust-key``, e.g. the conformance kit's
test key), and every ``--decide-every`` seconds reviews its early-warning alerts (a CRITICAL
one stops new lending to the merchant), then acknowledges and decides what it received, and
the order batches waiting on its order loans, through the gateway's ``PartnerBankService``.
Register it with the gateway using its endpoint::

    colending-gateway partners register bank-a --name "Bank A" --endpoint 127.0.0.1:50061
    colending-mock-bank --bank-id bank-a --port 50061 --behaviour approve --flaky 200

Against a gateway in TLS mode, ``--tls-ca``, ``--tls-cert`` and ``--tls-key`` are the CA and
the bank's client certificate (``certs issue --partner bank-a``); with ``--receiver-cert`` and
``--receiver-key`` (``certs server --bank bank-a --name 127.0.0.1``) it also serves its pushes
over mutual TLS, answering only the gateway's certificate.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from colending.v1 import common_pb2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from partners.mock._bank import Decision, MockBank, Script
from partners.sdk import (
    BankClient,
    ColendingError,
    VerifiedAlert,
    VerifiedReferral,
    key_id,
    public_key_from_raw,
)
from partners.sdk import verify_alert as _verify_alert
from partners.sdk import verify_referral as _verify_referral
from partners.sdk.tls import client_credentials, receiver_credentials


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="colending-mock-bank", description=__doc__)
    parser.add_argument("--bank-id", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50061)
    parser.add_argument("--gateway", default="127.0.0.1:50051", help="the gateway's host:port")
    parser.add_argument(
        "--behaviour",
        choices=[d.value for d in Decision],
        default=Decision.APPROVE.value,
        help="how it decides (default: %(default)s)",
    )
    parser.add_argument("--slow", type=float, default=0.0, help="seconds to wait per push")
    parser.add_argument(
        "--flaky", type=int, default=0, help="per mille of pushes answered UNAVAILABLE"
    )
    parser.add_argument(
        "--down", action="store_true", help="start down (UNAVAILABLE); SIGUSR1 toggles up and down"
    )
    parser.add_argument(
        "--trust-key",
        action="append",
        default=[],
        help="extra raw Ed25519 public key (hex) to accept, e.g. the conformance kit's test key",
    )
    parser.add_argument(
        "--decide-every",
        type=float,
        default=1.0,
        help="seconds between decision rounds (0: never decide)",
    )
    tls = parser.add_argument_group("mutual TLS (a gateway started with serve --tls)")
    tls.add_argument("--tls-ca", help="the CA certificate (PEM) of the gateway and its clients")
    tls.add_argument("--tls-cert", help="this bank's client certificate (PEM)")
    tls.add_argument("--tls-key", help="this bank's client private key (PEM)")
    tls.add_argument("--receiver-cert", help="server certificate for pushes (needs --tls-ca)")
    tls.add_argument("--receiver-key", help="its private key")
    args = parser.parse_args(argv)
    client_files = (args.tls_ca, args.tls_cert, args.tls_key)
    if any(client_files) and not all(client_files):
        parser.error("--tls-ca, --tls-cert and --tls-key go together")
    if (args.receiver_cert or args.receiver_key) and not (
        args.receiver_cert and args.receiver_key and args.tls_ca
    ):
        parser.error("--receiver-cert and --receiver-key go together, with --tls-ca")

    extra = {key_id(k): k for k in (public_key_from_raw(bytes.fromhex(h)) for h in args.trust_key)}
    if args.tls_cert:  # the certificate names the bank
        client = BankClient.connect(
            args.gateway,
            bank_id=args.bank_id,
            credentials=client_credentials(
                ca=args.tls_ca, certificate=args.tls_cert, key=args.tls_key
            ),
        )
    else:
        client = BankClient.connect(
            args.gateway, bank_id=args.bank_id, caller=f"partner/{args.bank_id}"
        )

    def trusted() -> dict[str, Ed25519PublicKey]:
        keys = {**extra}
        try:
            keys.update(client.signing_keys())
        except ColendingError:
            if not extra:
                raise
        return keys

    def verify(envelope: common_pb2.Envelope) -> VerifiedReferral:
        return _verify_referral(envelope, trusted_keys=trusted(), bank_id=args.bank_id)

    def verify_alert(envelope: common_pb2.Envelope) -> VerifiedAlert:
        return _verify_alert(envelope, trusted_keys=trusted(), bank_id=args.bank_id)

    script = Script(
        decision=Decision(args.behaviour),
        delay_seconds=args.slow,
        unavailable_per_mille=args.flaky,
        down=args.down,
    )
    bank = MockBank(bank_id=args.bank_id, verify=verify, verify_alert=verify_alert, script=script)
    receiver = (
        receiver_credentials(ca=args.tls_ca, certificate=args.receiver_cert, key=args.receiver_key)
        if args.receiver_cert
        else None
    )
    port = bank.start(host=args.host, port=args.port, credentials=receiver)
    print(
        f"mock bank {args.bank_id} listening on {args.host}:{port} ({args.behaviour}"
        f"{', TLS' if receiver else ''})",
        flush=True,
    )

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: setattr(script, "down", not script.down))
    while not stop.wait(args.decide_every or 3600):
        if args.decide_every:
            try:
                # Alerts first: a CRITICAL one declines the merchant's referrals in this round.
                for alert in bank.review_alerts(client):
                    print(
                        f"alert {alert.alert_id} on {alert.payload.platform_merchant_id}: "
                        f"severity {alert.severity}, signals {alert.signal_codes}",
                        flush=True,
                    )
                for case in bank.decide_pending(client):
                    print(f"decided {case.case_id}: state {case.state}", flush=True)
                for answer in bank.decide_order_batches(client):
                    print(
                        f"decided order batch {answer.batch.batch_id}: state {answer.batch.state}",
                        flush=True,
                    )
            except ColendingError as error:
                print(f"decision round failed: {error.message}", file=sys.stderr, flush=True)
    bank.stop()
    client.close()
    print(f"stopped: {bank.stats}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
