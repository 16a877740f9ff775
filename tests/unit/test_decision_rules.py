"""Boundary tables for the agreed-terms rules: shape (``terms_problems``) and the bank's policy
(``policy_refusals``) under the default ``EligibilityPolicy()``. Amounts are fen."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.domain.decision import (
    Decision,
    DecisionOutcome,
    LoanTerms,
    decision_problems,
    policy_refusals,
    terms_problems,
)
from gateway.domain.money import yuan
from gateway.domain.policy import DEFAULT_POLICY, EligibilityPolicy
from gateway.domain.scoring import CreditOffer, ProductType

P = ProductType
PREFIX = "decision.terms"
SUBJECT = "financingCases/c1"
FIXED_FIELD = f"{PREFIX}.fixed_amount.amount_minor"


def _terms(
    product: ProductType = P.REVOLVING_LINE,
    amount_fen: int = yuan(300_000),
    fixed_amount_fen: int | None = None,
    bank_share_bps: int = 5000,
    platform_share_bps: int = 5000,
) -> LoanTerms:
    if fixed_amount_fen is None:
        fixed_amount_fen = {
            P.REVOLVING_LINE: 0,
            P.ORDER_LOAN: 0,
            P.FIXED_LOAN: amount_fen,
            P.COMBINED: max(-(-amount_fen // 5), yuan(50_000)),
        }[product]
    return LoanTerms(
        product=product,
        amount_fen=amount_fen,
        fixed_amount_fen=fixed_amount_fen,
        term_months=12,
        revolving_daily_rate_ppm=0 if product is P.FIXED_LOAN else 600,
        fixed_daily_rate_ppm=0 if product in (P.REVOLVING_LINE, P.ORDER_LOAN) else 500,
        bank_share_bps=bank_share_bps,
        platform_share_bps=platform_share_bps,
    )


def _offer(total_limit_fen: int = yuan(1_000_000)) -> CreditOffer:
    return CreditOffer(
        product=P.REVOLVING_LINE,
        total_limit_fen=total_limit_fen,
        revolving_limit_fen=total_limit_fen,
        fixed_amount_fen=0,
        term_months=12,
        revolving_daily_rate_ppm=600,
        fixed_daily_rate_ppm=0,
    )


def _shape_fields(terms: LoanTerms) -> list[str]:
    return [v.field for v in terms_problems(terms, prefix=PREFIX)]


def _refused_rules(
    terms: LoanTerms,
    *,
    policy: EligibilityPolicy | None = None,
    offer: CreditOffer | None = None,
    committed_exposure_fen: int = 0,
) -> list[str]:
    refusals = policy_refusals(
        terms,
        policy=policy or EligibilityPolicy(),
        offer=offer or _offer(),
        committed_exposure_fen=committed_exposure_fen,
        subject=SUBJECT,
    )
    assert all(r.type == "POLICY" for r in refusals)
    prefix = f"{SUBJECT}/policy."
    assert all(r.subject.startswith(prefix) for r in refusals)
    return [r.subject.removeprefix(prefix) for r in refusals]


def test_default_policy_is_the_one_the_tables_assume() -> None:
    assert EligibilityPolicy() == DEFAULT_POLICY
    p = EligibilityPolicy()
    assert (p.platform_share_floor_bps, p.platform_share_ceiling_bps) == (3000, 9000)
    assert (p.min_credit_line_fen, p.max_credit_line_fen) == (yuan(50_000), yuan(1_000_000))
    assert p.exposure_cap_fen == 0
    assert p.allow_amount_above_offer is False


@pytest.mark.parametrize("product", list(ProductType))
def test_baseline_terms_are_clean(product: ProductType) -> None:
    terms = _terms(product)
    assert terms_problems(terms, prefix=PREFIX) == []
    assert _refused_rules(terms) == []


# --- platform share: floor 3000, ceiling 9000 (policy) -----------------------------------------


@pytest.mark.parametrize(
    ("platform_bps", "expected"),
    [
        (0, ["platform_share_floor_bps"]),
        (2999, ["platform_share_floor_bps"]),
        (3000, []),
        (3001, []),
        (5000, []),
        (8999, []),
        (9000, []),
        (9001, ["platform_share_ceiling_bps"]),
        (10_000, ["platform_share_ceiling_bps"]),
    ],
)
def test_platform_share_floor_and_ceiling(platform_bps: int, expected: list[str]) -> None:
    terms = _terms(bank_share_bps=10_000 - platform_bps, platform_share_bps=platform_bps)
    assert _shape_fields(terms) == []  # the split itself is well formed
    assert _refused_rules(terms) == expected


def test_platform_share_refusal_names_the_range() -> None:
    terms = _terms(bank_share_bps=7001, platform_share_bps=2999)
    [refusal] = policy_refusals(
        terms, policy=EligibilityPolicy(), offer=_offer(), committed_exposure_fen=0, subject="s"
    )
    assert "2999" in refusal.description
    assert "3000..9000" in refusal.description


# --- split: shares must sum to exactly 10000 bps (shape) ---------------------------------------


@pytest.mark.parametrize(
    ("bank_bps", "platform_bps", "ok"),
    [
        (4999, 5000, False),  # 9999
        (5000, 5000, True),  # 10000
        (5001, 5000, False),  # 10001
        (6999, 3000, False),  # 9999
        (7000, 3000, True),
        (7001, 3000, False),  # 10001
        (0, 10_000, True),
        (10_000, 0, True),
    ],
)
def test_split_must_sum_to_10000(bank_bps: int, platform_bps: int, ok: bool) -> None:
    terms = _terms(bank_share_bps=bank_bps, platform_share_bps=platform_bps)
    assert _shape_fields(terms) == ([] if ok else [f"{PREFIX}.split"])


def test_split_sum_message_names_the_total() -> None:
    terms = _terms(bank_share_bps=5001, platform_share_bps=5000)
    [problem] = terms_problems(terms, prefix=PREFIX)
    assert "10001" in problem.description


@pytest.mark.parametrize(
    ("bank_bps", "platform_bps", "fields"),
    [
        (-1, 10_001, ["split.bank_share_bps", "split.platform_share_bps"]),
        (10_001, -1, ["split.bank_share_bps", "split.platform_share_bps"]),
        (-1, 5000, ["split.bank_share_bps"]),
        (5000, 10_001, ["split.platform_share_bps"]),
    ],
)
def test_out_of_range_shares_are_named_without_a_sum_error(
    bank_bps: int, platform_bps: int, fields: list[str]
) -> None:
    terms = _terms(bank_share_bps=bank_bps, platform_share_bps=platform_bps)
    assert _shape_fields(terms) == [f"{PREFIX}.{f}" for f in fields]


# --- fixed part of a COMBINED product: >= 20 %, >= RMB 50,000, < whole (shape) ----------------


@pytest.mark.parametrize(
    ("amount_fen", "fixed_fen", "ok"),
    [
        # 20 % binds: 250,000 -> 50,000 (and the RMB 50,000 minimum coincides)
        (yuan(250_000), yuan(50_000), True),
        (yuan(250_000), yuan(50_000) - 1, False),
        # 20 % binds above the minimum: 300,000 -> 60,000
        (yuan(300_000), yuan(60_000), True),
        (yuan(300_000), yuan(60_000) - 1, False),
        (yuan(300_000), yuan(50_000), False),
        # RMB 50,000 minimum binds: 100,000 -> 50,000 (20 % would be 20,000)
        (yuan(100_000), yuan(50_000), True),
        (yuan(100_000), yuan(50_000) - 1, False),
        (yuan(100_000), yuan(20_000), False),
        # 20 % rounds up to the fen: 20 % of 300,000.01 yuan is 60,000.002 yuan -> 6,000,001 fen
        (yuan(300_000) + 1, yuan(60_000) + 1, True),
        (yuan(300_000) + 1, yuan(60_000), False),
        # less than the whole
        (yuan(300_000), yuan(300_000) - 1, True),
        (yuan(300_000), yuan(300_000), False),
        (yuan(100_000), yuan(100_000), False),
        (yuan(300_000), yuan(300_000) + 1, False),
        # no fixed part fits below RMB 50,000.01
        (yuan(50_000), yuan(50_000), False),
        (yuan(50_000), yuan(50_000) - 1, False),
        (yuan(50_000) + 1, yuan(50_000), True),
    ],
)
def test_combined_fixed_part(amount_fen: int, fixed_fen: int, ok: bool) -> None:
    terms = _terms(P.COMBINED, amount_fen=amount_fen, fixed_amount_fen=fixed_fen)
    assert _shape_fields(terms) == ([] if ok else [FIXED_FIELD])


@pytest.mark.parametrize(
    ("product", "amount_fen", "fixed_fen", "ok"),
    [
        (P.FIXED_LOAN, yuan(300_000), yuan(300_000), True),
        (P.FIXED_LOAN, yuan(300_000), yuan(300_000) - 1, False),
        (P.FIXED_LOAN, yuan(300_000), 0, False),
        (P.REVOLVING_LINE, yuan(300_000), 0, True),
        (P.REVOLVING_LINE, yuan(300_000), 1, False),
        (P.REVOLVING_LINE, yuan(300_000), yuan(300_000), False),
    ],
)
def test_fixed_part_of_single_products(
    product: ProductType, amount_fen: int, fixed_fen: int, ok: bool
) -> None:
    terms = _terms(product, amount_fen=amount_fen, fixed_amount_fen=fixed_fen)
    assert _shape_fields(terms) == ([] if ok else [FIXED_FIELD])


def test_shape_problems_reach_decision_problems() -> None:
    terms = _terms(
        P.COMBINED,
        amount_fen=yuan(250_000),
        fixed_amount_fen=yuan(50_000) - 1,
        bank_share_bps=5000,
        platform_share_bps=5001,
    )
    decision = Decision(outcome=DecisionOutcome.APPROVE, terms=terms)
    assert [v.field for v in decision_problems(decision)] == [
        "decision.terms.split",
        FIXED_FIELD,
    ]


# --- credit line range RMB 50,000 .. 1,000,000 (policy) ---------------------------------------


@pytest.mark.parametrize(
    ("amount_fen", "expected"),
    [
        (yuan(50_000) - 1, ["min_credit_line"]),
        (yuan(50_000), []),
        (yuan(50_000) + 1, []),
        (yuan(1_000_000) - 1, []),
        (yuan(1_000_000), []),
        (yuan(1_000_000) + 1, ["max_credit_line", "allow_amount_above_offer"]),
    ],
)
def test_credit_line_range(amount_fen: int, expected: list[str]) -> None:
    terms = _terms(P.REVOLVING_LINE, amount_fen=amount_fen)
    assert _shape_fields(terms) == []
    assert _refused_rules(terms, offer=_offer(yuan(1_000_000))) == expected


def test_credit_line_above_max_alone_when_offer_is_larger() -> None:
    terms = _terms(P.FIXED_LOAN, amount_fen=yuan(1_000_000) + 1)
    assert _refused_rules(terms, offer=_offer(yuan(2_000_000))) == ["max_credit_line"]


# --- amount against the referral's offer (policy) ---------------------------------------------


@pytest.mark.parametrize(
    ("amount_fen", "allow_above", "expected"),
    [
        (yuan(300_000) - 1, False, []),
        (yuan(300_000), False, []),
        (yuan(300_000) + 1, False, ["allow_amount_above_offer"]),
        (yuan(300_000), True, []),
        (yuan(300_000) + 1, True, []),
        (yuan(1_000_000), True, []),
    ],
)
def test_amount_against_offer(amount_fen: int, allow_above: bool, expected: list[str]) -> None:
    terms = _terms(P.COMBINED, amount_fen=amount_fen)
    assert _shape_fields(terms) == []
    policy = EligibilityPolicy(allow_amount_above_offer=allow_above)
    assert _refused_rules(terms, policy=policy, offer=_offer(yuan(300_000))) == expected


def test_allow_above_offer_does_not_lift_the_max_line() -> None:
    terms = _terms(P.REVOLVING_LINE, amount_fen=yuan(1_000_000) + 1)
    policy = EligibilityPolicy(allow_amount_above_offer=True)
    assert _refused_rules(terms, policy=policy, offer=_offer(yuan(300_000))) == ["max_credit_line"]


# --- exposure cap: committed + this bank share <= cap; 0 means none (policy) -------------------


def _exposure_terms() -> LoanTerms:
    # bank share 70 % of RMB 300,000.01 = floor(30,000,001 x 0.7) = 21,000,000 fen
    terms = _terms(
        P.REVOLVING_LINE,
        amount_fen=yuan(300_000) + 1,
        bank_share_bps=7000,
        platform_share_bps=3000,
    )
    assert terms.bank_amount_fen == 21_000_000
    return terms


@pytest.mark.parametrize(
    ("committed_fen", "cap_fen", "expected"),
    [
        (yuan(500_000), yuan(500_000) + 21_000_000 - 1, ["exposure_cap"]),
        (yuan(500_000), yuan(500_000) + 21_000_000, []),
        (yuan(500_000) + 1, yuan(500_000) + 21_000_000, ["exposure_cap"]),
        (0, 21_000_000, []),
        (0, 21_000_000 - 1, ["exposure_cap"]),
        (0, 1, ["exposure_cap"]),
        (0, 0, []),  # 0 means no cap
        (10**14, 0, []),
    ],
)
def test_exposure_cap(committed_fen: int, cap_fen: int, expected: list[str]) -> None:
    terms = _exposure_terms()
    policy = EligibilityPolicy(exposure_cap_fen=cap_fen)
    offer = _offer(yuan(1_000_000))
    assert _refused_rules(
        terms, policy=policy, offer=offer, committed_exposure_fen=committed_fen
    ) == (expected)


def test_exposure_counts_only_the_bank_share() -> None:
    terms = dataclasses.replace(_exposure_terms(), bank_share_bps=1000, platform_share_bps=9000)
    assert terms.bank_amount_fen == 3_000_000
    policy = EligibilityPolicy(exposure_cap_fen=3_000_000)
    assert _refused_rules(terms, policy=policy) == []


def test_every_broken_rule_is_reported_at_once() -> None:
    terms = _terms(
        P.REVOLVING_LINE,
        amount_fen=yuan(1_000_000) + 1,
        bank_share_bps=999,
        platform_share_bps=9001,
    )
    policy = EligibilityPolicy(exposure_cap_fen=1)
    assert _refused_rules(terms, policy=policy, offer=_offer(yuan(300_000))) == [
        "platform_share_ceiling_bps",
        "max_credit_line",
        "allow_amount_above_offer",
        "exposure_cap",
    ]
