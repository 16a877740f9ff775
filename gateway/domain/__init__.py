"""Pure domain rules of the co-lending gateway: no grpc, no generated code, no storage.

Modules: ``merchant`` (the submitted profile), ``money`` (fen, basis points, ppm/day), ``policy`` (a
partner's eligibility policy), ``validation`` (profile field rules) and ``scoring`` (the
scorecard, the credit offer and the eligibility check). Identifier check characters, pseudonyms
and the blacklist log's leaf encoding are shared with the partner SDK through ``colending_core``.
"""

from __future__ import annotations

from gateway.domain.merchant import (
    DataScope,
    MembershipTier,
    MerchantIdentity,
    MerchantProfile,
    Qualification,
    TransactionReputation,
    Verification,
)
from gateway.domain.money import (
    BPS_WHOLE,
    CURRENCY,
    FEN_PER_YUAN,
    PPM_WHOLE,
    format_fen,
    ppm_to_annual_bps,
    simple_interest_fen,
    split_by_bps,
    yuan,
)
from gateway.domain.policy import (
    DEFAULT_POLICY,
    BlacklistAction,
    EligibilityPolicy,
    validate_policy,
)
from gateway.domain.scoring import (
    FIXED_DAILY_RATE_PPM,
    FIXED_PART_MIN_BPS,
    FIXED_PART_MIN_FEN,
    REVOLVING_DAILY_RATE_PPM,
    SCORECARD_VERSION,
    TERM_MONTHS,
    Assessment,
    CreditOffer,
    Grade,
    ProductType,
    Reason,
    assess,
    average_monthly_gmv_fen,
    check_eligibility,
    credit_line_fen,
    full_years_between,
    grade_for,
    make_offer,
    score_factors,
    split_fixed_part,
)
from gateway.domain.validation import validate_profile

__all__ = [
    "BPS_WHOLE",
    "CURRENCY",
    "DEFAULT_POLICY",
    "FEN_PER_YUAN",
    "FIXED_DAILY_RATE_PPM",
    "FIXED_PART_MIN_BPS",
    "FIXED_PART_MIN_FEN",
    "PPM_WHOLE",
    "REVOLVING_DAILY_RATE_PPM",
    "SCORECARD_VERSION",
    "TERM_MONTHS",
    "Assessment",
    "BlacklistAction",
    "CreditOffer",
    "DataScope",
    "EligibilityPolicy",
    "Grade",
    "MembershipTier",
    "MerchantIdentity",
    "MerchantProfile",
    "ProductType",
    "Qualification",
    "Reason",
    "TransactionReputation",
    "Verification",
    "assess",
    "average_monthly_gmv_fen",
    "check_eligibility",
    "credit_line_fen",
    "format_fen",
    "full_years_between",
    "grade_for",
    "make_offer",
    "ppm_to_annual_bps",
    "score_factors",
    "simple_interest_fen",
    "split_by_bps",
    "split_fixed_part",
    "validate_policy",
    "validate_profile",
    "yuan",
]
