"""``colending-mock-bank``: a scripted partner bank on the command line.

It serves ``BankReceiverService`` on ``--port``, verifies each pushed referral against the
gateway's published keys (plus any ``--trust-key``, e.g. the conformance kit's test key), and
every ``--decide-every`` seconds acknowledges and decides what it received through the
gateway's ``PartnerBankService``. Register it with the gateway using its endpoint::

    colending-gateway partners register bank-a --name "Bank A" --endpoint 127.0.0.1:50061
    colending-mock-bank --bank-id bank-a --port 50061 --behaviour approve --flaky 200
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from colending.v1 import common_pb2

from partners.mock._bank import Decision, MockBank, Script
from partners.sdk import BankClient, ColendingError, VerifiedReferral, key_id, public_key_from_raw
from partners.sdk import verify_referral as _verify_referral


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
    args = parser.parse_args(argv)

    extra = {key_id(k): k for k in (public_key_from_raw(bytes.fromhex(h)) for h in args.trust_key)}
    client = BankClient.connect(
        args.gateway, bank_id=args.bank_id, caller=f"partner/{args.bank_id}"
    )

    def verify(envelope: common_pb2.Envelope) -> VerifiedReferral:
        trusted = {**extra}
        try:
            trusted.update(client.signing_keys())
        except ColendingError:
            if not extra:
                raise
        return _verify_referral(envelope, trusted_keys=trusted, bank_id=args.bank_id)

    script = Script(
        decision=Decision(args.behaviour),
        delay_seconds=args.slow,
        unavailable_per_mille=args.flaky,
        down=args.down,
    )
    bank = MockBank(bank_id=args.bank_id, verify=verify, script=script)
    port = bank.start(host=args.host, port=args.port)
    print(
        f"mock bank {args.bank_id} listening on {args.host}:{port} ({args.behaviour})", flush=True
    )

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: setattr(script, "down", not script.down))
    while not stop.wait(args.decide_every or 3600):
        if args.decide_every:
            try:
                for case in bank.decide_pending(client):
                    print(f"decided {case.case_id}: state {case.state}", flush=True)
            except ColendingError as error:
                print(f"decision round failed: {error.message}", file=sys.stderr, flush=True)
    bank.stop()
    client.close()
    print(f"stopped: {bank.stats}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
