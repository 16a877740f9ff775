"""``colending-conformance``: check a bank's receiver against the contract."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from partners.conformance._kit import ConformanceKit


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="colending-conformance",
        description="Push test referrals to a bank's BankReceiverService and check each answer.",
    )
    parser.add_argument("target", help="the receiver's host:port")
    parser.add_argument("--bank-id", required=True, help="the bank id the receiver answers for")
    parser.add_argument(
        "--test-key",
        type=Path,
        help="PEM Ed25519 private key to sign with (default: a fresh key, printed; the "
        "receiver must trust its public key for the run)",
    )
    args = parser.parse_args(argv)
    signer: Ed25519PrivateKey | None = None
    if args.test_key is not None:
        loaded = load_pem_private_key(args.test_key.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            print(f"error: {args.test_key} is not an Ed25519 private key", file=sys.stderr)
            return 2
        signer = loaded
    with grpc.insecure_channel(args.target) as channel:
        kit = ConformanceKit(channel=channel, bank_id=args.bank_id, signer=signer)
        print(f"test key (trust it for this run only): {kit.public_key.hex()}")
        results = kit.run()
    for result in results:
        mark = "PASS" if result.passed else "FAIL"
        print(f"{mark}  {result.name}" + ("" if result.passed else f"\n      {result.detail}"))
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed}/{len(results)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
