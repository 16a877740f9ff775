"""`colending-gateway deliver`: the dispatcher as its own process, with serve's settings."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from colending.v1 import admin_service_pb2, admin_service_pb2_grpc
from testkit import ALL_SCOPES, in_days, merchant, request_id, running_gateway
from tlskit import Pki

from gateway.cli import main
from partners.mock import MockBank
from partners.sdk import BankClient, PlatformClient


def test_deliver_alone_pushes_over_mutual_tls(tmp_path: Path) -> None:
    pki = Pki.create(tmp_path / "pki")
    data = tmp_path / "data"
    files = pki.gateway_files()
    with running_gateway(data, tls=files) as running:  # serves RPCs; pushes nothing itself
        target = running.target
        bank = MockBank(
            bank_id="bank-a",
            verify=BankClient(
                channel=pki.channel(target, "partner/bank-a"), bank_id="bank-a"
            ).verify,
        )
        port = bank.start(credentials=pki.receiver("bank-a"))
        admin = admin_service_pb2_grpc.AdminServiceStub(pki.channel(target, "admin"))
        admin.RegisterPartner(
            admin_service_pb2.RegisterPartnerRequest(
                request_id=request_id(),
                partner_id="bank-a",
                display_name="Bank A",
                endpoint=f"127.0.0.1:{port}",
            ),
            timeout=10,
        )
        platform = PlatformClient(channel=pki.channel(target, "platform"))
        consent = platform.record_consent(
            platform_merchant_id="m-1",
            bank_ids=["bank-a"],
            data_scopes=list(ALL_SCOPES),
            expires_at=in_days(90),
            evidence_reference="consent:m-1",
        )
        referral = platform.submit_referral(
            merchant=merchant(merchant_id="m-1"), consent_id=consent.consent_id, bank_ids=["bank-a"]
        )
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "deliver",
                "--data-dir",
                str(data),
                "--delivery-workers",
                "1",
                "--tls",
                "--tls-key",
                str(files.key),
                "--tls-cert",
                str(files.certificate),
                "--tls-client-ca",
                str(files.client_ca),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while not bank.received() and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=30)
            bank.stop()
        assert [r.referral_id for r in bank.received()] == [referral.referral_id], err
        assert bank.stats.rejected == 0
    assert process.returncode == 0, err
    assert "push delivery: 1 worker(s)" in err


def test_deliver_with_no_workers_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "deliver",
            "--data-dir",
            str(tmp_path / "data"),
            "--delivery-workers",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--delivery-workers is 0" in result.stderr


def test_deliver_takes_no_rpc_flags(capsys: pytest.CaptureFixture[str]) -> None:
    """`--workers` is serve's RPC thread count; deliver's threads are --delivery-workers."""
    with pytest.raises(SystemExit) as exit_:
        main(["deliver", "--workers", "4"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --workers" in capsys.readouterr().err
