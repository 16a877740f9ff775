"""The conformance kit passes a receiver that keeps the contract, names every check a careless
one fails, and both command-line tools work as separate processes."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from colending.v1 import (
    bank_receiver_service_pb2,
    bank_receiver_service_pb2_grpc,
    common_pb2,
    partner_bank_service_pb2,
    partner_bank_service_pb2_grpc,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from testkit import running_gateway
from tlskit import Pki

from partners.conformance import CheckResult, ConformanceKit
from partners.conformance.__main__ import main as conformance_main
from partners.conformance._client_suite import FakeGateway, serve
from partners.conformance._reference_client import run_reference_client
from partners.mock import MockBank
from partners.sdk import VerifiedAlert, VerifiedReferral, key_id, verify_alert, verify_referral

br = bank_receiver_service_pb2


def test_a_receiver_that_keeps_the_contract_passes_every_check() -> None:
    signer = Ed25519PrivateKey.generate()
    trusted = {key_id(signer.public_key()): signer.public_key()}

    def verify(envelope: common_pb2.Envelope) -> VerifiedReferral:
        return verify_referral(envelope, trusted_keys=trusted, bank_id="bank-a")

    def verify_alert_(envelope: common_pb2.Envelope) -> VerifiedAlert:
        return verify_alert(envelope, trusted_keys=trusted, bank_id="bank-a")

    bank = MockBank(bank_id="bank-a", verify=verify, verify_alert=verify_alert_)
    port = bank.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            results = ConformanceKit(channel=channel, bank_id="bank-a", signer=signer).run()
    finally:
        bank.stop()
    assert [(r.case_id, r.detail) for r in results if not r.passed] == []
    assert len(results) == 12
    # The alerts it accepted are the ones a bank acts on: one, pushed twice.
    assert len(bank.alerts()) == 1


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
            results = {
                r.case_id: r for r in ConformanceKit(channel=channel, bank_id="bank-a").run()
            }
    finally:
        server.stop(grace=None)
    failed = {name for name, r in results.items() if not r.passed}
    assert failed == set(results)  # every check catches it
    good = results["receiver.receipt-and-duplicates"]
    assert "reference 'C-2'" in good.detail
    assert "expected INVALID_ARGUMENT, got OK" in results["receiver.tampered"].detail


def test_the_command_line_tools_against_each_other(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A gateway in TLS mode, a mock bank process connecting to it with its certificate and
    trusting the kit's key, and the kit's command line against the bank's receiver."""
    key_file = data_dir.parent / "kit.pem"
    signer = Ed25519PrivateKey.generate()
    key_file.write_bytes(signer.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public_hex = signer.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    pki = Pki.create(data_dir.parent / "pki")
    pki.credentials("partner/bank-a")  # writes clients/partner-bank-a.{pem,key}
    with running_gateway(data_dir, tls=pki.gateway_files()) as running:
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
                "--tls-ca",
                str(pki.ca),
                "--tls-cert",
                str(pki.root / "clients" / "partner-bank-a.pem"),
                "--tls-key",
                str(pki.root / "clients" / "partner-bank-a.key"),
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
                [
                    "bank-receiver",
                    f"127.0.0.1:{port}",
                    "--bank-id",
                    "bank-a",
                    "--test-key",
                    str(key_file),
                    "--json",
                    str(data_dir.parent / "report.json"),
                    "--junit",
                    str(data_dir.parent / "report.xml"),
                ]
            )
        finally:
            process.terminate()
            process.wait(10)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "bank-receiver: 12/12 checks passed" in out
    report = json.loads((data_dir.parent / "report.json").read_text())
    assert report["passed"] is True
    assert len(report["cases"]) == 12
    junit = ET.parse(data_dir.parent / "report.xml").getroot()
    assert junit.get("tests") == "12"
    assert junit.get("failures") == "0"


def _client_suite(client: Callable[[str], object]) -> dict[str, CheckResult]:
    fake = FakeGateway(bank_id="bank-a")  # type: ignore[abstract]
    server, port = serve(fake)
    try:
        client(f"127.0.0.1:{port}")
        fake.finished.wait(0.2)  # the client has returned: nothing more is coming
    finally:
        server.stop(grace=None)
    return {r.case_id: r for r in fake.verdict()}


def test_the_reference_client_passes_the_client_suite() -> None:
    rejected: list[str] = []

    def reference(target: str) -> None:
        rejected.extend(run_reference_client(target, bank_id="bank-a"))

    results = _client_suite(reference)
    assert [(c, r.detail) for c, r in results.items() if not r.passed] == []
    assert len(results) == 5
    assert len(rejected) == 1  # the tampered referral, recorded rather than skipped silently


def test_a_careless_client_fails_the_client_suite_by_name() -> None:
    """Acknowledges whatever it pulls, once, with a fresh request id, and never streams."""

    def careless(target: str) -> None:
        with grpc.insecure_channel(target) as channel:
            stub = partner_bank_service_pb2_grpc.PartnerBankServiceStub(channel)
            for _ in range(2):  # it does retry the pull, so that case passes
                try:
                    page = stub.PullReferrals(partner_bank_service_pb2.PullReferralsRequest())
                    break
                except grpc.RpcError:
                    continue
            for item in page.referrals:
                with contextlib.suppress(grpc.RpcError):
                    stub.AcknowledgeReferral(
                        partner_bank_service_pb2.AcknowledgeReferralRequest(
                            request_id=str(uuid.uuid4()), case_id=item.case_id
                        )
                    )

    results = _client_suite(careless)
    failed = {c for c, r in results.items() if not r.passed}
    assert failed == {
        "client.refuses-tampered",
        "client.same-request-id-on-retry",
        "client.stream-resumes-from-cursor",
    }
