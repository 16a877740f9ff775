"""The conformance kit passes a receiver that keeps the contract, names every check a careless
one fails, and both command-line tools work as separate processes."""

from __future__ import annotations

import subprocess
import sys
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from colending.v1 import bank_receiver_service_pb2, bank_receiver_service_pb2_grpc, common_pb2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from testkit import running_gateway

from partners.conformance import ConformanceKit
from partners.conformance.__main__ import main as conformance_main
from partners.mock import MockBank
from partners.sdk import VerifiedReferral, key_id, verify_referral

br = bank_receiver_service_pb2


def test_a_receiver_that_keeps_the_contract_passes_every_check() -> None:
    signer = Ed25519PrivateKey.generate()
    trusted = {key_id(signer.public_key()): signer.public_key()}

    def verify(envelope: common_pb2.Envelope) -> VerifiedReferral:
        return verify_referral(envelope, trusted_keys=trusted, bank_id="bank-a")

    bank = MockBank(bank_id="bank-a", verify=verify)
    port = bank.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            results = ConformanceKit(channel=channel, bank_id="bank-a", signer=signer).run()
    finally:
        bank.stop()
    assert [(r.name, r.detail) for r in results if not r.passed] == []
    assert len(results) == 7


class _Careless(bank_receiver_service_pb2_grpc.BankReceiverServiceServicer):
    """Takes everything at face value and hands out a new reference every time."""

    def __init__(self) -> None:
        self.count = 0

    def DeliverReferral(
        self, request: br.DeliverReferralRequest, context: grpc.ServicerContext
    ) -> br.DeliverReferralResponse:
        self.count += 1
        return br.DeliverReferralResponse(bank_reference=f"C-{self.count}")


def test_a_careless_receiver_fails_with_every_gap_named() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    bank_receiver_service_pb2_grpc.add_BankReceiverServiceServicer_to_server(_Careless(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            results = {r.name: r for r in ConformanceKit(channel=channel, bank_id="bank-a").run()}
    finally:
        server.stop(grace=None)
    failed = {name for name, r in results.items() if not r.passed}
    assert failed == set(results)  # every check catches it
    good = results["accepts a good referral, then answers repeats with the same receipt"]
    assert "reference 'C-2'" in good.detail
    assert "expected INVALID_ARGUMENT, got OK" in results["refuses altered bytes"].detail


def test_the_command_line_tools_against_each_other(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A gateway, a mock bank process trusting the kit's key, and the kit's command line."""
    key_file = data_dir.parent / "kit.pem"
    signer = Ed25519PrivateKey.generate()
    key_file.write_bytes(signer.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public_hex = signer.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    with running_gateway(data_dir) as running:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "partners.mock",
                "--bank-id",
                "bank-a",
                "--port",
                "0",
                "--gateway",
                running.target,
                "--trust-key",
                public_hex,
                "--decide-every",
                "0",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
            assert "listening on" in banner, banner
            port = banner.split("listening on ")[1].split()[0].rsplit(":", 1)[1]
            code = conformance_main(
                [f"127.0.0.1:{port}", "--bank-id", "bank-a", "--test-key", str(key_file)]
            )
        finally:
            process.terminate()
            process.wait(10)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "7/7 checks passed" in out
