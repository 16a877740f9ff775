"""A bank's decision on a financing case, and the rules both lenders agreed.

Shape rules (INVALID_ARGUMENT, by field): an outcome; terms for APPROVE and COUNTER_OFFER and
none for DECLINE; reason codes for DECLINE; a product; a positive amount; a term of 1..36
months; daily rates of 1..10000 ppm; shares of 0..10000 bps that sum to exactly 10000; and the
fixed-part rule of the product (FIXED_LOAN: all of it; REVOLVING_LINE: none; COMBINED: at
least 20 % and at least RMB 50,000, and less than the whole); a penalty rate of 10000..30000 bps of
the contract rate (0: the bank's policy rate).

Policy rules (FAILED_PRECONDITION, every one at once): the platform's share within the bank's
floor and ceiling (default floor 30 %, CBIRC 2021 No. 24); the amount within the bank's credit
line range and, unless the policy allows more, no more than the referral offered; and the bank's
committed exposure (its share of every approved, accepted or disbursed case still open) plus
this one under the bank's cap.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from gateway.domain.money import BPS_WHOLE, format_fen, split_by_bps
from gateway.domain.policy import MAX_PENALTY_RATE_BPS, EligibilityPolicy
from gateway.domain.schedule import RepaymentMethod
from gateway.domain.scoring import (
    FIXED_PART_MIN_BPS,
    FIXED_PART_MIN_FEN,
    CreditOffer,
    ProductType,
)
from gateway.errors import FieldViolation, PreconditionViolation

MAX_TERM_MONTHS = 36
MAX_DAILY_RATE_PPM = 10_000  # 1 % a day: far above any lawful rate, a guard against unit slips
MAX_NOTE_LENGTH = 1000
REASON_CODE_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]{1,63}$")


class DecisionOutcome(enum.Enum):
    APPROVE = "approve"
    DECLINE = "decline"
    COUNTER_OFFER = "counter_offer"


class CounterOfferAnswer(enum.Enum):
    ACCEPT = "accept"
    REJECT = "reject"


@dataclass(frozen=True, slots=True, kw_only=True)
class LoanTerms:
    product: ProductType | None
    amount_fen: int
    fixed_amount_fen: int
    term_months: int
    revolving_daily_rate_ppm: int
    fixed_daily_rate_ppm: int
    bank_share_bps: int
    platform_share_bps: int
    # How the fixed part falls due (gateway.domain.schedule); None: repaid at will.
    repayment_method: RepaymentMethod | None = None
    # What overdue principal bears in all, in basis points of the contract rate (15000 = 1.5x:
    # the penalty interest is the 0.5x above the contract interest it keeps accruing); a
    # decision that leaves it 0 gets the bank's policy rate, stamped when recorded, so a later
    # policy change never alters a loan already agreed.
    penalty_rate_bps: int = 0

    @property
    def bank_amount_fen(self) -> int:
        """The bank's part of the principal (the platform takes the rounding remainder)."""
        return split_by_bps(self.amount_fen, self.bank_share_bps)[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    outcome: DecisionOutcome | None
    terms: LoanTerms | None = None
    decline_reason_codes: tuple[str, ...] = ()
    note: str = ""


def decision_problems(decision: Decision, *, prefix: str = "decision") -> list[FieldViolation]:
    """Every shape problem of a decision, by request path."""
    p = f"{prefix}."
    problems = []
    if decision.outcome is None:
        problems.append(FieldViolation(f"{p}outcome", "required"))
    if len(decision.note) > MAX_NOTE_LENGTH:
        problems.append(FieldViolation(f"{p}note", f"must be at most {MAX_NOTE_LENGTH} characters"))
    if decision.outcome is DecisionOutcome.DECLINE:
        if decision.terms is not None:
            problems.append(FieldViolation(f"{p}terms", "must be empty when declining"))
        problems += reason_code_problems(
            decision.decline_reason_codes, field=f"{p}decline_reason_codes"
        )
    elif decision.outcome is not None:
        if decision.decline_reason_codes:
            problems.append(
                FieldViolation(f"{p}decline_reason_codes", "only a decline has reason codes")
            )
        if decision.terms is None:
            problems.append(FieldViolation(f"{p}terms", "required to approve or counter-offer"))
        else:
            problems += terms_problems(decision.terms, prefix=f"{p}terms")
    return problems


def reason_code_problems(codes: tuple[str, ...], *, field: str) -> list[FieldViolation]:
    """A decline's reason codes: at least one, each 2..64 characters of [A-Z0-9_]."""
    if not codes:
        return [FieldViolation(field, "required: at least one code")]
    return [
        FieldViolation(
            f"{field}[{i}]", "must be 2..64 characters of [A-Z0-9_] starting with a letter"
        )
        for i, code in enumerate(codes)
        if not REASON_CODE_PATTERN.fullmatch(code)
    ]


def terms_problems(terms: LoanTerms, *, prefix: str) -> list[FieldViolation]:
    p = f"{prefix}."
    problems = []
    if terms.product is None:
        problems.append(FieldViolation(f"{p}product", "required"))
    if terms.amount_fen <= 0:
        problems.append(FieldViolation(f"{p}amount.amount_minor", "must be positive"))
    if not 1 <= terms.term_months <= MAX_TERM_MONTHS:
        problems.append(
            FieldViolation(f"{p}term_months", f"must be between 1 and {MAX_TERM_MONTHS}")
        )
    # An order loan's line is drawn like a revolving one, one approved order batch at a time.
    uses_revolving = terms.product in (
        ProductType.REVOLVING_LINE,
        ProductType.COMBINED,
        ProductType.ORDER_LOAN,
    )
    uses_fixed = terms.product in (ProductType.FIXED_LOAN, ProductType.COMBINED)
    for name, value, used in (
        ("revolving_daily_rate_ppm", terms.revolving_daily_rate_ppm, uses_revolving),
        ("fixed_daily_rate_ppm", terms.fixed_daily_rate_ppm, uses_fixed),
    ):
        if used and not 1 <= value <= MAX_DAILY_RATE_PPM:
            problems.append(
                FieldViolation(f"{p}{name}", f"must be between 1 and {MAX_DAILY_RATE_PPM} ppm")
            )
        elif not used and value != 0:
            problems.append(FieldViolation(f"{p}{name}", "must be 0: the product has no such part"))
    shares_ok = True
    for name, value in (
        ("bank_share_bps", terms.bank_share_bps),
        ("platform_share_bps", terms.platform_share_bps),
    ):
        if not 0 <= value <= BPS_WHOLE:
            shares_ok = False
            problems.append(
                FieldViolation(f"{p}split.{name}", f"must be between 0 and {BPS_WHOLE}")
            )
    if shares_ok and terms.bank_share_bps + terms.platform_share_bps != BPS_WHOLE:
        problems.append(
            FieldViolation(
                f"{p}split",
                f"shares must sum to {BPS_WHOLE} basis points, got "
                f"{terms.bank_share_bps + terms.platform_share_bps}",
            )
        )
    problems += _fixed_part_problems(terms, field=f"{p}fixed_amount.amount_minor")
    if terms.penalty_rate_bps and not BPS_WHOLE <= terms.penalty_rate_bps <= MAX_PENALTY_RATE_BPS:
        problems.append(
            FieldViolation(
                f"{p}penalty_rate_bps",
                f"must be between {BPS_WHOLE} (no surcharge) and {MAX_PENALTY_RATE_BPS} basis "
                "points of the contract rate, or 0 for the bank's policy rate",
            )
        )
    if terms.repayment_method is not None and not uses_fixed and terms.product is not None:
        problems.append(
            FieldViolation(
                f"{p}repayment_method",
                f"a {terms.product.name} has no fixed part to schedule; leave it unspecified",
            )
        )
    return problems


def _fixed_part_problems(terms: LoanTerms, *, field: str) -> list[FieldViolation]:
    amount, fixed = terms.amount_fen, terms.fixed_amount_fen
    if amount <= 0 or terms.product is None:
        return []
    if terms.product is ProductType.FIXED_LOAN and fixed != amount:
        return [FieldViolation(field, "a fixed loan's fixed part is the whole amount")]
    if terms.product in (ProductType.REVOLVING_LINE, ProductType.ORDER_LOAN) and fixed != 0:
        return [FieldViolation(field, f"a {terms.product.name} has no fixed part")]
    if terms.product is ProductType.COMBINED:
        floor = max(-(-amount * FIXED_PART_MIN_BPS // BPS_WHOLE), FIXED_PART_MIN_FEN)
        if not floor <= fixed < amount:
            return [
                FieldViolation(
                    field,
                    f"the fixed part must be at least 20 % and at least "
                    f"{format_fen(FIXED_PART_MIN_FEN)} ({format_fen(floor)} here), and less "
                    f"than the whole amount; got {format_fen(fixed)}",
                )
            ]
    return []


def policy_refusals(
    terms: LoanTerms,
    *,
    policy: EligibilityPolicy,
    offer: CreditOffer,
    committed_exposure_fen: int,
    subject: str,
) -> list[PreconditionViolation]:
    """Every rule of the bank's policy the terms break (terms already shape-checked)."""
    refusals = []

    def refuse(rule: str, description: str) -> None:
        refusals.append(PreconditionViolation("POLICY", f"{subject}/policy.{rule}", description))

    share = terms.platform_share_bps
    if not policy.platform_share_floor_bps <= share <= policy.platform_share_ceiling_bps:
        refuse(
            "platform_share_floor_bps"
            if share < policy.platform_share_floor_bps
            else "platform_share_ceiling_bps",
            f"platform share {share} bps is outside {policy.platform_share_floor_bps}.."
            f"{policy.platform_share_ceiling_bps} bps",
        )
    if terms.amount_fen < policy.min_credit_line_fen:
        refuse(
            "min_credit_line",
            f"amount {format_fen(terms.amount_fen)} is below the minimum "
            f"{format_fen(policy.min_credit_line_fen)}",
        )
    if terms.amount_fen > policy.max_credit_line_fen:
        refuse(
            "max_credit_line",
            f"amount {format_fen(terms.amount_fen)} is above the maximum "
            f"{format_fen(policy.max_credit_line_fen)}",
        )
    if terms.amount_fen > offer.total_limit_fen and not policy.allow_amount_above_offer:
        refuse(
            "allow_amount_above_offer",
            f"amount {format_fen(terms.amount_fen)} is above the referral's offer "
            f"{format_fen(offer.total_limit_fen)}",
        )
    after = committed_exposure_fen + terms.bank_amount_fen
    if policy.exposure_cap_fen and after > policy.exposure_cap_fen:
        refuse(
            "exposure_cap",
            f"the bank's exposure would be {format_fen(after)}, above its cap "
            f"{format_fen(policy.exposure_cap_fen)}",
        )
    return refusals
