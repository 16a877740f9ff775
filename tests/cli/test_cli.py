"""The operator's first steps, through the command line, without writing code."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from colending.v1 import admin_service_pb2, admin_service_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_partners_register_list_suspend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    code, out, _ = run(
        capsys,
        "partners",
        "--data-dir",
        data,
        "register",
        "bank-a",
        "--name",
        "Bank A",
        "--endpoint",
        "127.0.0.1:7001",
    )
    assert code == 0
    assert "registered bank-a" in out
    code, out, _ = run(capsys, "partners", "--data-dir", data, "list")
    assert code == 0
    assert "bank-a" in out
    assert "127.0.0.1:7001" in out
    assert "SUSPENDED" not in out
    code, out, _ = run(
        capsys, "partners", "--data-dir", data, "suspend", "bank-a", "--reason", "contract ended"
    )
    assert code == 0
    code, out, _ = run(capsys, "partners", "--data-dir", data, "list")
    assert "SUSPENDED" in out


def test_cli_reports_a_rule_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    code, _, err = run(capsys, "partners", "--data-dir", data, "register", "Bad_Id", "--name", "x")
    assert code == 1
    assert "partner_id" in err
    assert "[a-z0-9-]" in err
    assert "Traceback" not in err


def _key_lines(out: str, title: str) -> list[str]:
    """The key lines printed under ``title:`` (indented), in order."""
    section = out.split(f"{title}:\n", 1)[1]
    lines = []
    for line in section.splitlines():
        if not line.startswith("  "):
            break
        lines.append(line.strip())
    return lines


def test_keys_show_and_rotate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    code, out, _ = run(capsys, "keys", "--data-dir", data, "show")
    assert code == 0
    [signing] = _key_lines(out, "referral signing keys")
    [log_key] = _key_lines(out, "blacklist log keys")
    first = signing.split()[0]
    assert signing.endswith("active")
    assert log_key.endswith("active")
    assert log_key.split()[0] != first  # checkpoints and referrals are signed by different keys
    assert oct((tmp_path / "data" / "keys" / f"{first}.pem").stat().st_mode & 0o777) == "0o600"
    code, out, _ = run(capsys, "keys", "--data-dir", data, "rotate")
    assert code == 0
    lines = _key_lines(out, "referral signing keys")
    assert len(lines) == 2
    assert lines[0].endswith("active")
    assert first in lines[1]
    assert "retired" in lines[1]
    assert len(_key_lines(out, "blacklist log keys")) == 1  # rotating one leaves the other


def test_export_network_key_writes_a_private_file_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    target = tmp_path / "bank-a.network.key"
    code, _, _ = run(capsys, "keys", "--data-dir", str(data), "export-network-key", str(target))
    assert code == 0
    exported = target.read_text().strip()
    assert exported == (data / "network-key" / "network.key").read_text().strip()
    assert len(bytes.fromhex(exported)) == 32
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    code, _, err = run(capsys, "keys", "--data-dir", str(data), "export-network-key", str(target))
    assert code == 1  # never overwrites a file already there
    assert "exists" in err


def test_serve_refuses_a_public_address_without_tls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve", "--data-dir", str(tmp_path / "data"), "--host", "0.0.0.0"])
    assert code == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_serve_starts_answers_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--port",
            str(port),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=20)
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "INSECURE DEVELOPMENT MODE" in err
    assert "shutting down" in err  # the last queued log line is written before the exit
    assert (tmp_path / "data" / "gateway.db").exists()


def test_sweep_runs_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "sweep", "--data-dir", str(tmp_path / "data"))
    assert code == 0
    assert out.strip() == (
        "expired 0 case(s); expired or decided 0 blacklist entr(ies); expired 0 order "
        "batch(es) or made order loans overdue; put 0 scheduled loan(s) into arrears or default"
    )


def test_reconcile_exports_a_days_statement_and_refuses_an_open_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    run(capsys, "partners", "--data-dir", data, "register", "bank-a", "--name", "Bank A")
    out_csv = tmp_path / "day.csv"
    code, out, _ = run(
        capsys, "reconcile", "--data-dir", data, "bank-a", "2026-01-05", "--csv", str(out_csv)
    )
    assert code == 0
    assert out.startswith("statement recon_")
    assert "of bank-a for 2026-01-05: 0 line(s); net RMB 0.00 paid by none" in out
    header, total = out_csv.read_text().splitlines()
    assert header.split(",")[:3] == ["case_id", "platform_merchant_id", "opening_principal"]
    assert total.split(",")[0] == "TOTAL"
    # The same statement again: made once.
    again = run(capsys, "reconcile", "--data-dir", data, "bank-a", "2026-01-05")[1]
    assert again.split(":")[0] == out.split(":")[0]
    code, _, err = run(capsys, "reconcile", "--data-dir", data, "bank-a", "2999-01-01")
    assert code == 1
    assert "is not over yet" in err


def test_an_older_database_is_refused_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    data = tmp_path / "data"
    assert run(capsys, "keys", "--data-dir", str(data), "show")[0] == 0
    # What a gateway from before schema versions left: the first revision's schema without
    # alembic_version, here with a column missing.
    from gateway.store import migrations
    from gateway.store.db import Database, sqlite_url

    database = Database(url=sqlite_url(data))
    migrations.downgrade(database.engine, migrations.FIRST)
    database.dispose()
    with sqlite3.connect(data / "gateway.db") as db:
        db.execute("DROP TABLE alembic_version")
        db.execute("ALTER TABLE financing_cases DROP COLUMN ledger_json")
    code, _, err = run(capsys, "keys", "--data-dir", str(data), "show")
    assert code == 1
    assert "financing_cases" in err
    assert "ledger_json" in err
    assert "fresh data directory" in err


def test_db_upgrade_and_current(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    code, out, _ = run(capsys, "db", "--data-dir", data, "current")
    assert code == 0
    assert out.startswith("no database")
    code, out, _ = run(capsys, "db", "--data-dir", data, "upgrade")
    assert code == 0
    revision = out.split()[2]
    assert out.strip() == f"schema revision {revision} (this gateway's: {revision})"
    code, again, _ = run(capsys, "db", "--data-dir", data, "current")
    assert again == out


def test_certs_and_serve_with_mutual_tls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert run(capsys, "certs", "--data-dir", str(data), "init")[0] == 0
    assert run(capsys, "certs", "--data-dir", str(data), "init")[0] == 1  # never overwritten
    assert run(capsys, "certs", "--data-dir", str(data), "server", "--name", "localhost")[0] == 0
    assert run(capsys, "certs", "--data-dir", str(data), "issue", "--admin")[0] == 0
    code, _, err = run(capsys, "certs", "--data-dir", str(data), "issue", "--partner", "Bad_Id")
    assert code == 2
    assert "Bad_Id" in err
    certs = data / "certs"
    assert {p.name for p in certs.iterdir()} >= {"ca.pem", "server.pem", "admin.pem", "admin.key"}

    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--tls",
            "--data-dir",
            str(data),
            "--port",
            str(port),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=(certs / "ca.pem").read_bytes(),
            private_key=(certs / "admin.key").read_bytes(),
            certificate_chain=(certs / "admin.pem").read_bytes(),
        )
        with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
            grpc.channel_ready_future(channel).result(timeout=20)
            admin = admin_service_pb2_grpc.AdminServiceStub(channel)
            answer = admin.ListPartners(admin_service_pb2.ListPartnersRequest(), timeout=5)
            assert list(answer.partners) == []
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "INSECURE DEVELOPMENT MODE" not in err
    assert "mutual TLS" in err


def test_serve_tls_without_certificates_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "serve", "--tls", "--data-dir", str(tmp_path / "data"))
    assert code == 2
    assert "certs init" in err
