"""``colending-conformance``: prove a bank's integration speaks the contract.

Two suites::

    colending-conformance bank-receiver HOST:PORT --bank-id ID   # the kit pushes to the bank
    colending-conformance bank-client --port 50071 --bank-id ID  # the bank's client calls the kit

Reports are text on stdout, plus ``--json FILE`` and ``--junit FILE``; the exit code is 0 only
when every case passes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from partners.conformance._client_suite import FakeGateway, serve
from partners.conformance._kit import CheckResult, ConformanceKit
from partners.conformance._report import json_report, junit_report, text_report


def _signer(path: Path | None) -> Ed25519PrivateKey | None:
    if path is None:
        return None
    loaded = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise SystemExit(f"error: {path} is not an Ed25519 private key")
    return loaded


def _receiver(args: argparse.Namespace) -> list[CheckResult]:
    with grpc.insecure_channel(args.target) as channel:
        kit = ConformanceKit(channel=channel, bank_id=args.bank_id, signer=_signer(args.test_key))
        print(f"test key (trust it for this run only): {kit.public_key.hex()}", flush=True)
        return kit.run()


def _client(args: argparse.Namespace) -> list[CheckResult]:
    fake = FakeGateway(bank_id=args.bank_id, signer=_signer(args.test_key))  # type: ignore[abstract]
    server, port = serve(fake, host=args.host, port=args.port)
    print(
        f"playing the gateway on {args.host}:{port}: run your client as {args.bank_id} "
        f"against it (waiting up to {args.wait:.0f} s)",
        flush=True,
    )
    try:
        fake.finished.wait(args.wait)
    finally:
        server.stop(grace=1).wait()
    return fake.verdict()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="colending-conformance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    suites = parser.add_subparsers(dest="suite", required=True)
    receiver = suites.add_parser("bank-receiver", help="check a bank's DeliverReferral endpoint")
    receiver.add_argument("target", help="the receiver's host:port")
    client = suites.add_parser("bank-client", help="check a bank's client code")
    client.add_argument("--host", default="127.0.0.1")
    client.add_argument("--port", type=int, default=50071, help="0 picks a free port")
    client.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the client")
    for suite in (receiver, client):
        suite.add_argument("--bank-id", required=True, help="the bank id under test")
        suite.add_argument(
            "--test-key", type=Path, help="PEM Ed25519 key to sign with (default: a fresh one)"
        )
        suite.add_argument("--json", type=Path, help="also write a JSON report here")
        suite.add_argument("--junit", type=Path, help="also write a JUnit XML report here")
    args = parser.parse_args(argv)
    results = _receiver(args) if args.suite == "bank-receiver" else _client(args)
    print(text_report(args.suite, results))
    if args.json:
        args.json.write_text(json_report(args.suite, results))
    if args.junit:
        args.junit.write_text(junit_report(args.suite, results))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
