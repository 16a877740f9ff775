"""``colending-gateway submit FILE.jsonl`` against a real gateway over sockets: every line ends
in one outcome, refusals are grouped by reason, a re-run replays instead of duplicating."""

from __future__ import annotations

import io
import json
import re
import socket
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from colending.v1 import admin_service_pb2, admin_service_pb2_grpc, merchant_pb2
from google.protobuf import json_format
from testkit import ADMIN, RunningGateway, channel, request_id, running_gateway
from tlskit import Pki

from gateway import bulk
from gateway.bulk import (
    MALFORMED_INPUT,
    LineResult,
    Outcome,
    Settings,
    default_rejected_path,
    main,
    profile_bytes,
    request_ids,
)
from gateway.certs import issue_client
from gateway.sample import SampleMix, sample_merchants
from partners.sdk import PlatformClient

BANKS = "bank-a,bank-b"
MALFORMED_LINE = 7
TODAY = datetime.now(UTC).date()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path / "data") as running, channel(running.target) as ch:
        admin = admin_service_pb2_grpc.AdminServiceStub(ch)
        for bank_id in BANKS.split(","):
            admin.RegisterPartner(
                admin_service_pb2.RegisterPartnerRequest(
                    request_id=request_id(), partner_id=bank_id, display_name=bank_id
                ),
                metadata=ADMIN,
                timeout=10,
            )
        yield running


def write_merchants(path: Path, count: int, *, malformed_at: int | None = None) -> list[str]:
    """``count`` sample merchants, a third deliberately ineligible, as `sample merchants`
    writes them; a broken line inserted at line ``malformed_at``. Returns the merchant ids."""
    profiles = sample_merchants(
        count, seed=9, as_of=TODAY, mix=SampleMix(ineligible_pct=35, risky_pct=10)
    )
    lines = [json_format.MessageToJson(p, indent=None, ensure_ascii=False) for p in profiles]
    if malformed_at is not None:
        lines.insert(malformed_at - 1, '{"identity": {"platformMerchantId": "m-broken"')
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return [p.identity.platform_merchant_id for p in profiles]


def referral_ids(target: str) -> list[str]:
    with PlatformClient.connect(target, caller="platform") as client:
        return [r.referral_id for r in client.iter_referrals(page_size=100)]


def counts_of(out: str) -> dict[str, int]:
    match = re.search(r"(\d+) submitted, (\d+) rejected, (\d+) malformed, (\d+) failed", out)
    assert match is not None, out
    names = ("submitted", "rejected", "malformed", "failed")
    return dict(zip(names, map(int, match.groups()), strict=True))


def reason_groups(out: str) -> dict[str, int]:
    block = out.split("refusals by reason (lines):\n", 1)[1]
    groups = {}
    for line in block.splitlines():
        if not line.startswith("  "):
            break
        reason, count = line.strip().rsplit(maxsplit=1)
        groups[reason.strip()] = int(count)
    return groups


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_submits_every_line_once_and_groups_refusals(
    gateway: RunningGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "merchants.jsonl"
    merchant_ids = write_merchants(source, 30, malformed_at=MALFORMED_LINE)
    args = (str(source), "--banks", BANKS, "--target", gateway.target, "--concurrency", "4")

    code, out, err = run(capsys, *args)

    assert code == 0, out  # refusals are an expected outcome, not a failure
    counts = counts_of(out)
    assert counts["failed"] == 0
    assert counts["malformed"] == 1
    assert counts["submitted"] + counts["rejected"] + counts["malformed"] == 31
    assert counts["submitted"] > 0
    assert counts["rejected"] > 0
    assert "31 of 31 lines" in out
    first = referral_ids(gateway.target)
    assert len(first) == counts["submitted"]

    # The rejected file: every refused merchant with its reasons, and the broken line.
    rejected_path = tmp_path / "merchants.rejected.jsonl"
    assert default_rejected_path(source) == rejected_path
    assert str(rejected_path) in out
    records = [json.loads(line) for line in rejected_path.read_text("utf-8").splitlines()]
    malformed = [r for r in records if r["outcome"] == "malformed"]
    assert len(malformed) == 1
    assert malformed[0]["line"] == MALFORMED_LINE
    assert malformed[0]["status"] == MALFORMED_INPUT
    assert malformed[0]["reasons"] == [MALFORMED_INPUT]
    assert malformed[0]["merchant_id"] is None  # not even JSON: nothing to name
    refused = [r for r in records if r["outcome"] == "rejected"]
    assert len(refused) == counts["rejected"]
    with PlatformClient.connect(gateway.target, caller="platform") as client:
        referred = {r.platform_merchant_id for r in client.iter_referrals(page_size=100)}
    refused_ids = {r["merchant_id"] for r in refused}
    assert refused_ids.isdisjoint(referred)
    assert refused_ids | referred == set(merchant_ids)  # every valid line has its outcome
    for record in refused:
        assert record["status"] == "FAILED_PRECONDITION"
        assert record["stage"] == "referral"
        assert record["reasons"]
        assert all(v["type"] and v["description"] for v in record["violations"])
        assert record["line"] != MALFORMED_LINE
    # The sample's ineligible merchants fail a region, tier or age rule.
    all_reasons = {reason for r in refused for reason in r["reasons"]}
    assert all_reasons & {
        "ELIGIBILITY policy.allowed_region_codes",
        "ELIGIBILITY policy.excluded_region_codes",
        "ELIGIBILITY policy.allowed_tiers",
        "ELIGIBILITY policy.min_years_registered",
    }

    # The summary groups refusals by reason: lines per reason, as in the file.
    expected_groups = Counter(reason for r in refused for reason in r["reasons"])
    assert reason_groups(out) == dict(expected_groups)

    # Progress went to stderr (not a terminal: whole lines) with rate and ETA.
    assert re.search(r"31/31 \(100%\) [\d.]+/s ETA \S+", err), err

    # The same file again: the gateway replays, nothing new is created, same outcomes.
    code, again, _ = run(capsys, *args)
    assert code == 0, again
    assert counts_of(again) == counts
    assert referral_ids(gateway.target) == first
    assert reason_groups(again) == reason_groups(out)
    assert len(rejected_path.read_text("utf-8").splitlines()) == len(records)  # replaced


def test_another_day_conflicts_instead_of_duplicating_and_run_id_submits_again(
    gateway: RunningGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "few.jsonl"
    write_merchants(source, 6)
    base = (str(source), "--banks", BANKS, "--target", gateway.target)
    yesterday = (TODAY - timedelta(days=1)).isoformat()
    code, out, _ = run(capsys, *base, "--as-of", yesterday)
    assert code == 0, out
    submitted = counts_of(out)["submitted"]
    assert submitted > 0
    before = referral_ids(gateway.target)

    # Today's consent expiry differs from yesterday's: the same ids with other content.
    code, out, _ = run(capsys, *base)
    assert code == 1
    assert counts_of(out) == {"submitted": 0, "rejected": 0, "malformed": 0, "failed": 6}
    assert "ALREADY_EXISTS" in out
    assert f"--as-of {TODAY.isoformat()}" in out
    assert referral_ids(gateway.target) == before  # nothing referred twice

    # Yesterday's --as-of replays; a new --run-id submits again, on purpose.
    code, out, _ = run(capsys, *base, "--as-of", yesterday)
    assert code == 0
    assert counts_of(out)["submitted"] == submitted
    assert referral_ids(gateway.target) == before
    code, out, _ = run(capsys, *base, "--run-id", "second-wave")
    assert code == 0, out
    assert counts_of(out)["submitted"] == submitted
    assert len(referral_ids(gateway.target)) == 2 * submitted


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_an_unreachable_gateway_fails_every_line_quickly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "merchants.jsonl"
    write_merchants(source, 8)
    started = time.monotonic()
    code, out, _ = run(
        capsys, str(source), "--banks", BANKS, "--target", f"127.0.0.1:{closed_port()}"
    )
    assert code == 1
    assert counts_of(out) == {"submitted": 0, "rejected": 0, "malformed": 0, "failed": 8}
    assert "UNAVAILABLE  8" in out
    assert "to retry, run again with --as-of" in out
    assert (tmp_path / "merchants.rejected.jsonl").read_text("utf-8") == ""
    assert time.monotonic() - started < 10


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "missing.jsonl")
    code, _, err = run(capsys, missing, "--banks", BANKS)
    assert code == 2
    assert "no such file" in err
    source = tmp_path / "m.jsonl"
    write_merchants(source, 1)
    assert run(capsys, str(source))[0] == 2  # --banks is required
    assert run(capsys, str(source), "--banks", "bank-a,,bank-b")[0] == 2
    assert run(capsys, str(source), "--banks", "bank-a,bank-a")[0] == 2
    assert run(capsys, str(source), "--banks", BANKS, "--consent-days", "0")[0] == 2
    assert run(capsys, str(source), "--banks", BANKS, "--as-of", "yesterday")[0] == 2
    code, _, err = run(capsys, str(source), "--banks", BANKS, "--rejected", str(source))
    assert code == 2
    assert "must not be the input" in err


def test_request_ids_depend_on_the_submission_not_on_formatting() -> None:
    (profile,) = sample_merchants(1, seed=3, as_of=TODAY)
    compact = json_format.MessageToJson(profile, indent=None)
    # The same merchant written another way: snake_case names, other key order, indented.
    reordered = json.dumps(
        dict(
            reversed(
                list(
                    json.loads(
                        json_format.MessageToJson(profile, preserving_proto_field_name=True)
                    ).items()
                )
            )
        ),
        indent=2,
    )
    parsed = [
        json_format.Parse(text, merchant_pb2.MerchantProfile()) for text in (compact, reordered)
    ]
    ids = request_ids(profile=profile_bytes(parsed[0]), banks=("bank-a", "bank-b"))
    assert ids == request_ids(profile=profile_bytes(parsed[1]), banks=("bank-a", "bank-b"))
    assert re.fullmatch(r"bulk-[0-9a-f]{32}-consent", ids.consent)
    assert ids.referral == ids.consent.removesuffix("-consent") + "-referral"
    data = profile_bytes(profile)
    # The same banks in another order are the same referral.
    assert request_ids(profile=data, banks=("bank-b", "bank-a")) == request_ids(
        profile=data, banks=("bank-a", "bank-b")
    )
    others = {
        request_ids(profile=data, banks=("bank-c", "bank-a")),
        request_ids(profile=data, banks=("bank-a",)),
        request_ids(profile=data, banks=("bank-a", "bank-b"), run_id="again"),
        request_ids(
            profile=profile_bytes(sample_merchants(2, seed=3, as_of=TODAY)[1]),
            banks=("bank-a", "bank-b"),
        ),
    }
    assert ids not in others
    assert len(others) == 4


def test_an_interrupt_finishes_the_lines_in_flight_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "merchants.jsonl"
    write_merchants(source, 20)

    def submit(*, client: PlatformClient, settings: Settings, line: int, raw: bytes) -> LineResult:
        if line == 5:
            raise KeyboardInterrupt  # as Ctrl-C reaches the waiting main thread
        return LineResult(line=line, outcome=Outcome.SUBMITTED, referral_id=f"ref-{line}")

    monkeypatch.setattr(bulk, "submit_line", submit)
    settings = Settings(banks=("bank-a",), as_of=TODAY)
    with PlatformClient.connect(f"127.0.0.1:{closed_port()}") as client:
        summary = bulk.submit_file(
            path=source,
            client=client,
            settings=settings,
            rejected_path=tmp_path / "rejected.jsonl",
            concurrency=1,
            progress=io.StringIO(),
        )
    assert summary.interrupted
    assert summary.exit_code == 130
    assert 4 <= summary.counts[Outcome.SUBMITTED] < 19
    assert "line(s) not attempted" in bulk.format_summary(summary, settings=settings)


def test_the_gateway_command_line_hands_submit_its_arguments(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from gateway.cli import main as gateway_main

    assert gateway_main(["-v", "submit", "--help"]) == 0
    assert "colending-gateway submit" in capsys.readouterr().out
    assert gateway_main(["submit", "/no/such/file.jsonl", "--banks", "bank-a"]) == 2


def test_submits_over_mutual_tls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With the platform's certificate the gateway knows the caller from it (no --caller)."""
    pki = Pki.create(tmp_path / "pki")
    platform = issue_client(pki.root / "ca", identity="platform", out=tmp_path / "platform")
    with running_gateway(tmp_path / "data", tls=pki.gateway_files()) as running:
        admin = admin_service_pb2_grpc.AdminServiceStub(pki.channel(running.target, "admin"))
        admin.RegisterPartner(
            admin_service_pb2.RegisterPartnerRequest(
                request_id=request_id(), partner_id="bank-a", display_name="bank-a"
            ),
            timeout=10,
        )
        source = tmp_path / "merchants.jsonl"
        write_merchants(source, 4)
        tls = ("--tls-ca", str(pki.ca), "--tls-cert", str(platform.certificate))
        code, out, err = run(
            capsys, str(source), "--banks", "bank-a", "--target", running.target,
            *tls, "--tls-key", str(platform.key),
        )  # fmt: skip
        assert code == 0, out + err
        assert counts_of(out)["failed"] == 0
        assert counts_of(out)["submitted"] > 0
        # Half the TLS options is a usage error, not a plaintext attempt.
        assert run(capsys, str(source), "--banks", "bank-a", *tls)[0] == 2
