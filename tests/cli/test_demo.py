"""The demo runs the whole network and checks itself; sample data is valid and repeatable."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import date

import pytest
from colending.v1 import merchant_pb2
from google.protobuf import json_format

from colending_core import normalize_uscc
from gateway.cli import main
from gateway.demo import run_demo
from gateway.domain.validation import validate_profile
from gateway.referrals.convert import merchant_from_proto
from gateway.sample import sample_merchants


def test_the_demo_runs_every_step_and_checks_it() -> None:
    out = io.StringIO()
    assert run_demo(merchants=18, seed=7, out=out)
    text = out.getvalue()
    assert "FAIL" not in text
    assert "all checks passed" in text
    assert "with mutual TLS" in text
    assert "bank-b's verified copy lists the defaulter" in text
    assert "RESTRICT_STORE" in text
    assert "an order loan was repaid by its settlement" in text


def test_sample_merchants_are_valid_deterministic_and_mixed() -> None:
    as_of = date(2026, 11, 28)
    first = sample_merchants(200, seed=11, as_of=as_of)
    assert first == sample_merchants(200, seed=11, as_of=as_of)
    assert first != sample_merchants(200, seed=12, as_of=as_of)
    assert len({m.identity.platform_merchant_id for m in first}) == 200
    tiers: Counter[int] = Counter()
    for profile in first:
        code = profile.identity.unified_social_credit_code
        assert normalize_uscc(code) == code  # a valid check character
        assert code[2:8] == profile.qualification.region_code  # characters 3-8: the region
        problems: list = []
        domain = merchant_from_proto(profile, "merchant", problems)
        assert problems == []
        assert validate_profile(domain, as_of=as_of, field_prefix="merchant") == []
        tiers[profile.qualification.membership_tier] += 1
    assert tiers[merchant_pb2.MEMBERSHIP_TIER_FREE] > 0  # some are deliberately ineligible
    assert tiers[merchant_pb2.MEMBERSHIP_TIER_GOLD_SUPPLIER] > 50


def test_sample_command_writes_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", "merchants", "--count", "5", "--seed", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5
    profiles = [json_format.Parse(line, merchant_pb2.MerchantProfile()) for line in lines]
    assert profiles[0].identity.platform_merchant_id == "m-3-00000"
    assert all(json.loads(line)["identity"]["unifiedSocialCreditCode"] for line in lines)
