from __future__ import annotations

import pytest

from gateway.domain.money import (
    BPS_WHOLE,
    CURRENCY,
    FEN_PER_YUAN,
    format_fen,
    ppm_to_annual_bps,
    simple_interest_fen,
    split_by_bps,
    yuan,
)


def test_constants() -> None:
    assert CURRENCY == "CNY"
    assert FEN_PER_YUAN == 100
    assert BPS_WHOLE == 10_000


def test_yuan_to_fen() -> None:
    assert yuan(50_000) == 5_000_000
    assert yuan(0) == 0


@pytest.mark.parametrize(
    ("amount", "bps", "expected"),
    [
        (10_000, 3000, (3000, 7000)),
        (1, 5000, (0, 1)),  # share rounds down, remainder to the other party
        (999, 3333, (332, 667)),
        (yuan(1_000_000), 10_000, (yuan(1_000_000), 0)),
        (12345, 0, (0, 12345)),
        (0, 7000, (0, 0)),
    ],
)
def test_split_by_bps(amount: int, bps: int, expected: tuple[int, int]) -> None:
    assert split_by_bps(amount, bps) == expected


def test_split_by_bps_always_sums_exactly() -> None:
    for amount in (1, 7, 99, 101, 100_003, 987_654_321):
        for bps in (1, 2999, 3000, 3333, 6667, 9999):
            share, rest = split_by_bps(amount, bps)
            assert share + rest == amount
            assert share >= 0
            assert rest >= 0
            assert share * BPS_WHOLE <= amount * bps < (share + 1) * BPS_WHOLE


@pytest.mark.parametrize(("amount", "bps"), [(-1, 3000), (100, -1), (100, 10_001)])
def test_split_by_bps_rejects_bad_input(amount: int, bps: int) -> None:
    with pytest.raises(ValueError, match="must"):
        split_by_bps(amount, bps)


def test_simple_interest_seed_rate() -> None:
    # RMB 10,000 at 0.06 % a day for 30 days = RMB 180.
    assert simple_interest_fen(yuan(10_000), 600, 30) == yuan(180)
    # A year at 0.05 %/day is 18.25 %.
    assert simple_interest_fen(yuan(100_000), 500, 365) == yuan(18_250)


def test_simple_interest_rounds_half_up() -> None:
    assert simple_interest_fen(833, 600, 1) == 0  # 0.4998 fen
    assert simple_interest_fen(834, 600, 1) == 1  # 0.5004 fen
    assert simple_interest_fen(2500, 200, 1) == 1  # exactly 0.5 fen rounds up
    assert simple_interest_fen(7500, 200, 1) == 2  # exactly 1.5 fen rounds up


def test_simple_interest_zero_and_negative() -> None:
    assert simple_interest_fen(yuan(1000), 600, 0) == 0
    with pytest.raises(ValueError, match="negative"):
        simple_interest_fen(-1, 600, 1)
    with pytest.raises(ValueError, match="negative"):
        simple_interest_fen(1, 600, -1)


def test_ppm_to_annual_bps_matches_seed_quotes() -> None:
    assert ppm_to_annual_bps(600) == 2190  # 0.06 %/day = 21.9 %/year
    assert ppm_to_annual_bps(500) == 1825  # 0.05 %/day = 18.25 %/year
    assert ppm_to_annual_bps(1) == 4  # 3.65 bps rounds half up to 4


def test_format_fen() -> None:
    assert format_fen(yuan(50_000)) == "RMB 50,000.00"
    assert format_fen(123_456_789) == "RMB 1,234,567.89"
    assert format_fen(5) == "RMB 0.05"
    assert format_fen(-150) == "-RMB 1.50"
