"""Validation of a submitted merchant profile: every violation at once, with its field path.

Rules (paths under ``merchant.``; every number is an integer):

identity
  * ``platform_merchant_id``: required, at most 64 characters of ``A-Z a-z 0-9 . _ -``.
  * ``legal_name``: required (not blank), at most 200 characters, no control characters.
  * ``unified_social_credit_code``: a valid GB 32100-2015 code, check character included.
qualification
  * ``membership_tier``: required.
  * ``paid_member_since``: required for TrustPass and Gold Supplier, absent for free members;
    not after the as-of date and not before the business registration date.
  * ``business_registration_date``: required, not after the as-of date, not before 1949-10-01
    (no registration under today's system predates the People's Republic).
  * ``region_code``: six digits, not all zero (GB/T 2260 shape).
reputation
  * ``monthly_gmv_fen``: 1 to 36 months (three years is the longest window a score uses), each
    0 to 10^14 fen.
  * ``order_count``, ``distinct_buyer_count``: 0 to 10^9; distinct buyers at most the orders.
  * every ``*_bps`` field: 0 to 10000 basis points.
  * ``prior_loans_repaid``, ``prior_loans_overdue``: 0 to 10000.

Dates are compared with an explicit ``as_of`` date, never the clock, so results are
reproducible.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Final

from colending_core import IdentifierError, is_region_code, normalize_uscc
from gateway.domain.merchant import MembershipTier, MerchantProfile, TransactionReputation
from gateway.domain.money import BPS_WHOLE
from gateway.errors import FieldViolation

MERCHANT_ID_MAX_LENGTH: Final = 64
LEGAL_NAME_MAX_LENGTH: Final = 200
EARLIEST_REGISTRATION_DATE: Final = date(1949, 10, 1)
MAX_GMV_MONTHS: Final = 36
MAX_MONTHLY_GMV_FEN: Final = 10**14
MAX_COUNT: Final = 10**9
MAX_PRIOR_LOANS: Final = 10_000

_MERCHANT_ID_RE: Final = re.compile(r"[A-Za-z0-9._-]+")
_PAID_TIERS: Final = frozenset({MembershipTier.TRUSTPASS, MembershipTier.GOLD_SUPPLIER})
REQUIRED: Final = "required"


def _has_control_character(text: str) -> bool:
    # Cc covers C0/C1 controls (newline, tab, NUL...); Zl/Zp are line and paragraph separators.
    return any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in text)


def _check_range(
    out: list[FieldViolation], field: str, value: int, low: int, high: int, unit: str = ""
) -> None:
    if not low <= value <= high:
        suffix = f" {unit}" if unit else ""
        out.append(FieldViolation(field, f"must be between {low} and {high}{suffix}, got {value}"))


def _check_date(
    out: list[FieldViolation], field: str, value: date, as_of: date, earliest: date | None
) -> bool:
    if value > as_of:
        out.append(FieldViolation(field, f"must not be after as-of date {as_of.isoformat()}"))
        return False
    if earliest is not None and value < earliest:
        out.append(FieldViolation(field, f"must not be before {earliest.isoformat()}"))
        return False
    return True


def validate_profile(
    profile: MerchantProfile, *, as_of: date, field_prefix: str = "merchant"
) -> list[FieldViolation]:
    """Every violation in ``profile``; an empty list means it is valid."""
    p = f"{field_prefix}." if field_prefix else ""
    out: list[FieldViolation] = []

    ident = profile.identity
    out += merchant_id_problems(f"{p}identity.platform_merchant_id", ident.platform_merchant_id)

    f = f"{p}identity.legal_name"
    if not ident.legal_name.strip():
        out.append(FieldViolation(f, REQUIRED))
    elif len(ident.legal_name) > LEGAL_NAME_MAX_LENGTH:
        out.append(FieldViolation(f, f"must be at most {LEGAL_NAME_MAX_LENGTH} characters"))
    elif _has_control_character(ident.legal_name):
        out.append(FieldViolation(f, "must not contain control characters"))

    try:
        normalize_uscc(ident.unified_social_credit_code)
    except IdentifierError as exc:
        out.append(FieldViolation(f"{p}identity.unified_social_credit_code", str(exc)))

    q = profile.qualification
    tier = q.membership_tier
    if tier is None:
        out.append(FieldViolation(f"{p}qualification.membership_tier", REQUIRED))

    f = f"{p}qualification.business_registration_date"
    registered: date | None = None
    if q.business_registration_date is None:
        out.append(FieldViolation(f, REQUIRED))
    elif _check_date(out, f, q.business_registration_date, as_of, EARLIEST_REGISTRATION_DATE):
        registered = q.business_registration_date

    f = f"{p}qualification.paid_member_since"
    if q.paid_member_since is None:
        if tier in _PAID_TIERS:
            out.append(FieldViolation(f, f"required for tier {tier.name}"))
    elif tier is MembershipTier.FREE:
        out.append(FieldViolation(f, "must be empty for tier FREE"))
    elif (
        _check_date(out, f, q.paid_member_since, as_of, None)
        and registered is not None
        and q.paid_member_since < registered
    ):
        out.append(
            FieldViolation(
                f, f"must not be before business registration date {registered.isoformat()}"
            )
        )

    if not is_region_code(q.region_code):
        out.append(
            FieldViolation(
                f"{p}qualification.region_code",
                REQUIRED if not q.region_code else "must be six digits, not all zero (GB/T 2260)",
            )
        )

    out += reputation_problems(profile.reputation, field_prefix=f"{p}reputation")
    return out


def merchant_id_problems(field: str, merchant_id: str) -> list[FieldViolation]:
    """The rules of ``identity.platform_merchant_id``, for any field that names a merchant."""
    if not merchant_id:
        return [FieldViolation(field, REQUIRED)]
    if len(merchant_id) > MERCHANT_ID_MAX_LENGTH:
        return [FieldViolation(field, f"must be at most {MERCHANT_ID_MAX_LENGTH} characters")]
    if not _MERCHANT_ID_RE.fullmatch(merchant_id):
        return [FieldViolation(field, "may contain only A-Z a-z 0-9 . _ -")]
    return []


def reputation_problems(r: TransactionReputation, *, field_prefix: str) -> list[FieldViolation]:
    """The reputation rules, shared by a profile and a post-loan trade snapshot."""
    rp = f"{field_prefix}." if field_prefix else ""
    out: list[FieldViolation] = []
    if not 1 <= len(r.monthly_gmv_fen) <= MAX_GMV_MONTHS:
        out.append(
            FieldViolation(
                f"{rp}monthly_gmv_fen",
                f"must have between 1 and {MAX_GMV_MONTHS} months, got {len(r.monthly_gmv_fen)}",
            )
        )
    for i, gmv in enumerate(r.monthly_gmv_fen[: MAX_GMV_MONTHS * 2]):
        # Index errors are reported for a bounded prefix only, to keep the message short.
        _check_range(out, f"{rp}monthly_gmv_fen[{i}]", gmv, 0, MAX_MONTHLY_GMV_FEN, "fen")
    _check_range(out, f"{rp}order_count", r.order_count, 0, MAX_COUNT)
    _check_range(out, f"{rp}distinct_buyer_count", r.distinct_buyer_count, 0, MAX_COUNT)
    if 0 <= r.order_count < r.distinct_buyer_count <= MAX_COUNT:
        out.append(
            FieldViolation(
                f"{rp}distinct_buyer_count",
                f"must not exceed order_count ({r.order_count}), got {r.distinct_buyer_count}",
            )
        )
    for name in (
        "positive_feedback_bps",
        "dispute_rate_bps",
        "refund_rate_bps",
        "on_time_shipment_bps",
    ):
        _check_range(out, f"{rp}{name}", getattr(r, name), 0, BPS_WHOLE, "basis points")
    _check_range(out, f"{rp}prior_loans_repaid", r.prior_loans_repaid, 0, MAX_PRIOR_LOANS)
    _check_range(out, f"{rp}prior_loans_overdue", r.prior_loans_overdue, 0, MAX_PRIOR_LOANS)
    return out


def text_problems(field: str, value: str, *, max_length: int) -> list[FieldViolation]:
    """Free text for people: required (not only blanks) and at most ``max_length`` characters."""
    if not value.strip():
        return [FieldViolation(field, "required")]
    if len(value) > max_length:
        return [FieldViolation(field, f"must be at most {max_length} characters")]
    return []
