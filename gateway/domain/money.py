"""Money and rates as integers.

* Amounts are fen (CNY minor units, 1 yuan = 100 fen) in plain ``int``: no floats, no Decimal,
  so sums, splits and hashes are exact and the same in every language a bank uses.
* Shares are basis points (bps, 10000 = 100 %). :func:`split_by_bps` rounds the share down and
  gives the remainder to the other party, so the two parts always sum to the amount exactly.
* Daily interest rates are parts per million per day (ppm/day): 0.06 % a day = 600.
  Interest is simple (never compounded, as in the seed product) and rounded half up to the fen.
"""

from __future__ import annotations

from typing import Final

CURRENCY: Final = "CNY"
FEN_PER_YUAN: Final = 100
BPS_WHOLE: Final = 10_000
PPM_WHOLE: Final = 1_000_000
DAYS_PER_YEAR: Final = 365  # the seed quotes 0.06 %/day as 21.9 %/year, i.e. 365-day years


def yuan(amount: int) -> int:
    """Whole yuan to fen."""
    return amount * FEN_PER_YUAN


def _round_half_up_div(numerator: int, denominator: int) -> int:
    # Only used with non-negative numerators and positive denominators.
    return (2 * numerator + denominator) // (2 * denominator)


def split_by_bps(amount_fen: int, share_bps: int) -> tuple[int, int]:
    """Split ``amount_fen`` into (share, rest): share = floor(amount x bps / 10000)."""
    if amount_fen < 0:
        raise ValueError(f"amount must not be negative, got {amount_fen}")
    if not 0 <= share_bps <= BPS_WHOLE:
        raise ValueError(f"share must be between 0 and {BPS_WHOLE} basis points, got {share_bps}")
    share = amount_fen * share_bps // BPS_WHOLE
    return share, amount_fen - share


def simple_interest_fen(principal_fen: int, daily_rate_ppm: int, days: int) -> int:
    """Simple interest on ``principal_fen`` for ``days`` days, rounded half up to the fen."""
    if principal_fen < 0 or daily_rate_ppm < 0 or days < 0:
        raise ValueError("principal, rate and days must not be negative")
    return _round_half_up_div(principal_fen * daily_rate_ppm * days, PPM_WHOLE)


def ppm_to_annual_bps(daily_rate_ppm: int) -> int:
    """Nominal annual rate in bps of a daily rate (365-day year, half up): 600 -> 2190."""
    if daily_rate_ppm < 0:
        raise ValueError(f"rate must not be negative, got {daily_rate_ppm}")
    # ppm/day x 365 = ppm/year; 1 bps = 100 ppm.
    return _round_half_up_div(daily_rate_ppm * DAYS_PER_YEAR, PPM_WHOLE // BPS_WHOLE)


def format_fen(amount_fen: int) -> str:
    """``RMB 50,000.00`` style text for messages (never parsed back)."""
    sign = "-" if amount_fen < 0 else ""
    whole, cents = divmod(abs(amount_fen), FEN_PER_YUAN)
    return f"{sign}RMB {whole:,}.{cents:02d}"
