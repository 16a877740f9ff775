"""SubmitDecision and RespondToCounterOffer: the rules both lenders agreed, at their edges."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from colending.v1 import common_pb2, financing_pb2, partner_pb2
from colending.v1 import partner_bank_service_pb2 as pb
from colending.v1 import referral_service_pb2 as rs
from colending.v1.financing_pb2 import FinancingState as FS  # noqa: N817
from testkit import merchant, request_id

YUAN = 100


def cny(yuan: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code="CNY", amount_minor=yuan * YUAN)


def terms(
    amount_yuan: int = 300_000,
    *,
    product: int = common_pb2.PRODUCT_TYPE_COMBINED,
    fixed_yuan: int | None = None,
    platform_bps: int = 3000,
    bank_bps: int | None = None,
    term_months: int = 12,
) -> financing_pb2.LoanTerms:
    if fixed_yuan is None:
        fixed_yuan = {
            common_pb2.PRODUCT_TYPE_COMBINED: max(amount_yuan // 5, 50_000),
            common_pb2.PRODUCT_TYPE_FIXED_LOAN: amount_yuan,
        }.get(product, 0)
    return financing_pb2.LoanTerms(
        product=product,
        amount=cny(amount_yuan),
        fixed_amount=cny(fixed_yuan),
        term_months=term_months,
        revolving_daily_rate_ppm=600 if product != common_pb2.PRODUCT_TYPE_FIXED_LOAN else 0,
        fixed_daily_rate_ppm=0
        if product in (common_pb2.PRODUCT_TYPE_REVOLVING_LINE, common_pb2.PRODUCT_TYPE_ORDER_LOAN)
        else 500,
        split=financing_pb2.FundingSplit(
            bank_share_bps=10_000 - platform_bps if bank_bps is None else bank_bps,
            platform_share_bps=platform_bps,
        ),
    )


def approve(loan: financing_pb2.LoanTerms) -> financing_pb2.Decision:
    return financing_pb2.Decision(outcome=financing_pb2.DECISION_OUTCOME_APPROVE, terms=loan)


def counter(loan: financing_pb2.LoanTerms) -> financing_pb2.Decision:
    return financing_pb2.Decision(outcome=financing_pb2.DECISION_OUTCOME_COUNTER_OFFER, terms=loan)


def decide(api: Any, case_id: str, decision: financing_pb2.Decision, bank_id: str = "bank-a"):
    request = pb.SubmitDecisionRequest(request_id=request_id(), case_id=case_id, decision=decision)
    return api.as_bank(bank_id, "SubmitDecision", request)


def acknowledged_case(
    api: Any, merchant_id: str = "m-1001", bank_id: str = "bank-a", monthly_gmv_yuan: int = 400_000
) -> Any:
    """A referral to ``bank_id``, pulled and acknowledged: (case_id, offered limit in yuan)."""
    consent = api.consent(merchant_id, (bank_id,))
    profile = merchant(merchant_id=merchant_id, monthly_gmv_yuan=monthly_gmv_yuan)
    referral = api.submit(consent.consent_id, (bank_id,), profile=profile)
    delivery = referral.deliveries[0]
    api.pull(bank_id)
    api.acknowledge(bank_id, delivery.case_id).expect_ok()
    return delivery.case_id, delivery.offer.total_limit.amount_minor // YUAN


@pytest.fixture
def bank_a(api: Any) -> Any:
    api.register("bank-a")
    api.register("bank-b")
    return api


def test_approve_records_terms_split_and_history(bank_a: Any) -> None:
    case_id, offered = acknowledged_case(bank_a)
    loan = terms(min(offered, 300_000), platform_bps=3000)
    case = decide(bank_a, case_id, approve(loan)).expect_ok().response.financing_case
    assert case.state == FS.FINANCING_STATE_APPROVED
    loan.penalty_rate_bps = 15_000  # left 0: the bank's policy rate, stamped on the terms
    assert case.agreed_terms == loan
    assert case.decision.outcome == financing_pb2.DECISION_OUTCOME_APPROVE
    assert case.history[-1].from_state == FS.FINANCING_STATE_ACKNOWLEDGED
    assert case.history[-1].actor == "partner/bank-a"


def test_decline_needs_reason_codes(bank_a: Any) -> None:
    case_id, _ = acknowledged_case(bank_a)
    decline = financing_pb2.Decision(outcome=financing_pb2.DECISION_OUTCOME_DECLINE)
    decide(bank_a, case_id, decline).expect_invalid("decision.decline_reason_codes")
    decline.decline_reason_codes.append("POLICY_REGION")
    case = decide(bank_a, case_id, decline).expect_ok().response.financing_case
    assert case.state == FS.FINANCING_STATE_DECLINED
    assert list(case.decision.decline_reason_codes) == ["POLICY_REGION"]
    assert not case.HasField("agreed_terms")


@pytest.mark.parametrize(
    ("decision", "field"),
    [
        (financing_pb2.Decision(), "decision.outcome"),
        (financing_pb2.Decision(outcome=7), "decision.outcome"),
        (financing_pb2.Decision(outcome=financing_pb2.DECISION_OUTCOME_APPROVE), "decision.terms"),
        (approve(terms(platform_bps=3000, bank_bps=6000)), "decision.terms.split"),
        (
            approve(terms(platform_bps=10_001, bank_bps=0)),
            "decision.terms.split.platform_share_bps",
        ),
        (approve(terms(term_months=0)), "decision.terms.term_months"),
        (approve(terms(term_months=37)), "decision.terms.term_months"),
        (
            approve(terms(amount_yuan=300_000, fixed_yuan=59_999)),
            "decision.terms.fixed_amount.amount_minor",
        ),
        (
            approve(terms(amount_yuan=100_000, fixed_yuan=49_999)),
            "decision.terms.fixed_amount.amount_minor",
        ),
        (
            approve(terms(amount_yuan=100_000, fixed_yuan=100_000)),
            "decision.terms.fixed_amount.amount_minor",
        ),
        (
            approve(terms(product=common_pb2.PRODUCT_TYPE_FIXED_LOAN, fixed_yuan=1)),
            "decision.terms.fixed_amount.amount_minor",
        ),
        (
            approve(terms(product=common_pb2.PRODUCT_TYPE_REVOLVING_LINE, fixed_yuan=1)),
            "decision.terms.fixed_amount.amount_minor",
        ),
    ],
)
def test_bad_decisions_are_invalid_and_change_nothing(bank_a: Any, decision, field) -> None:
    case_id, _ = acknowledged_case(bank_a)
    before = bank_a.row_counts()
    decide(bank_a, case_id, decision).expect_invalid(field)
    assert bank_a.row_counts() == before


def test_empty_terms_name_every_missing_field(bank_a: Any) -> None:
    case_id, _ = acknowledged_case(bank_a)
    decide(bank_a, case_id, approve(financing_pb2.LoanTerms())).expect_invalid(
        "decision.terms.product",
        "decision.terms.amount.amount_minor",
        "decision.terms.term_months",
        "decision.terms.split",
    )


def test_fixed_part_rule_at_its_boundaries(bank_a: Any) -> None:
    """250,000: 20 % is exactly 50,000; 300,000: 60,000; 100,000: the 50,000 floor rules."""
    for amount, fixed in ((250_000, 50_000), (300_000, 60_000), (100_000, 50_000)):
        case_id, _ = acknowledged_case(bank_a, merchant_id=f"m-{amount}")
        loan = terms(amount, fixed_yuan=fixed)
        decide(bank_a, case_id, approve(loan)).expect_ok()


@pytest.mark.parametrize(
    ("loan", "rule"),
    [
        (terms(platform_bps=2999), "platform_share_floor_bps"),
        (terms(platform_bps=9001), "platform_share_ceiling_bps"),
        (terms(amount_yuan=49_000, product=common_pb2.PRODUCT_TYPE_FIXED_LOAN), "min_credit_line"),
    ],
)
def test_policy_refusals_name_the_rule(bank_a: Any, loan, rule: str) -> None:
    case_id, _ = acknowledged_case(bank_a)
    result = decide(bank_a, case_id, approve(loan)).expect_precondition("POLICY")
    assert [v.subject for v in result.precondition_violations] == [f"partners/bank-a/policy.{rule}"]


def test_split_floor_is_inclusive(bank_a: Any) -> None:
    case_id, offered = acknowledged_case(bank_a)
    decide(bank_a, case_id, approve(terms(min(offered, 300_000), platform_bps=3000))).expect_ok()
    case_id, offered = acknowledged_case(bank_a, merchant_id="m-2")
    decide(bank_a, case_id, approve(terms(min(offered, 300_000), platform_bps=9000))).expect_ok()


def test_amount_above_the_offer_needs_the_policy(api: Any) -> None:
    api.register("bank-a")
    case_id, offered = acknowledged_case(api, monthly_gmv_yuan=40_000)
    assert offered < 900_000
    above = terms(offered + 1_000, fixed_yuan=max((offered + 1_000) // 5 + 1, 50_000))
    result = decide(api, case_id, approve(above)).expect_precondition("POLICY")
    assert "above the referral's offer" in result.details
    generous = partner_pb2.EligibilityPolicy(
        allowed_region_codes=["330000"],
        min_years_registered=2,
        allowed_tiers=[2, 3],
        allow_amount_above_offer=True,
        platform_share_floor_bps=3000,
    )
    api.register("bank-g", policy=generous)
    case_id, _ = acknowledged_case(
        api, merchant_id="m-g", bank_id="bank-g", monthly_gmv_yuan=40_000
    )
    decide(api, case_id, approve(above), bank_id="bank-g").expect_ok()


def test_exposure_cap_counts_committed_cases(api: Any) -> None:
    """Cap RMB 400,000 of the bank's share: a 70 % share of 300,000 (210,000) fits once."""
    capped = partner_pb2.EligibilityPolicy(
        allowed_region_codes=["330000"],
        min_years_registered=2,
        allowed_tiers=[2, 3],
        platform_share_floor_bps=3000,
        exposure_cap=cny(400_000),
    )
    api.register("bank-c", policy=capped)
    first, _ = acknowledged_case(api, merchant_id="m-1", bank_id="bank-c")
    second, _ = acknowledged_case(api, merchant_id="m-2", bank_id="bank-c")
    decide(api, first, approve(terms(300_000)), bank_id="bank-c").expect_ok()
    result = decide(api, second, approve(terms(300_000)), bank_id="bank-c")
    result.expect_precondition("POLICY")
    assert "above its cap" in result.details
    # A smaller loan still fits: 70 % of 250,000 is 175,000; 210,000 + 175,000 <= 400,000.
    decide(api, second, approve(terms(250_000)), bank_id="bank-c").expect_ok()


def test_decision_before_acknowledgement_names_the_state(bank_a: Any) -> None:
    referral = bank_a.referral_for()
    case_id = referral.deliveries[0].case_id
    result = decide(bank_a, case_id, approve(terms(200_000)))
    result.expect(grpc.StatusCode.FAILED_PRECONDITION)
    assert "REFERRED" in result.details


def test_another_banks_case_is_not_found(bank_a: Any) -> None:
    case_id, _ = acknowledged_case(bank_a)
    decide(bank_a, case_id, approve(terms(200_000)), bank_id="bank-b").expect_not_found(
        "financing case", case_id
    )


def test_decision_replay_is_idempotent(bank_a: Any) -> None:
    case_id, _ = acknowledged_case(bank_a)
    request = pb.SubmitDecisionRequest(
        request_id="decide-1", case_id=case_id, decision=approve(terms(200_000))
    )
    first = bank_a.as_bank("bank-a", "SubmitDecision", request).expect_ok().response
    again = bank_a.as_bank("bank-a", "SubmitDecision", request).expect_ok().response
    assert again.financing_case.state == first.financing_case.state == FS.FINANCING_STATE_APPROVED
    assert len(again.financing_case.history) == len(first.financing_case.history)
    other = pb.SubmitDecisionRequest(
        request_id="decide-1", case_id=case_id, decision=approve(terms(210_000))
    )
    bank_a.as_bank("bank-a", "SubmitDecision", other).expect(grpc.StatusCode.ALREADY_EXISTS)


def respond(api: Any, case_id: str, answer: int, reason: str = "") -> Any:
    request = rs.RespondToCounterOfferRequest(
        request_id=request_id(), case_id=case_id, answer=answer, reason=reason
    )
    return api.platform("RespondToCounterOffer", request)


def test_counter_offer_accepted_becomes_the_agreed_terms(bank_a: Any) -> None:
    case_id, _ = acknowledged_case(bank_a)
    offer = terms(150_000, platform_bps=4000)
    case = decide(bank_a, case_id, counter(offer)).expect_ok().response.financing_case
    assert case.state == FS.FINANCING_STATE_COUNTER_OFFERED
    assert not case.HasField("agreed_terms")
    case = respond(bank_a, case_id, rs.COUNTER_OFFER_ANSWER_ACCEPT).expect_ok().response
    assert case.financing_case.state == FS.FINANCING_STATE_ACCEPTED
    offer.penalty_rate_bps = 15_000  # stamped when the counter-offer was recorded
    assert case.financing_case.agreed_terms == offer
    assert case.financing_case.history[-1].actor == "platform"


def test_counter_offer_rejected_ends_the_case(bank_a: Any) -> None:
    case_id, _ = acknowledged_case(bank_a)
    decide(bank_a, case_id, counter(terms(150_000))).expect_ok()
    result = respond(bank_a, case_id, rs.COUNTER_OFFER_ANSWER_REJECT, reason="rate too high")
    assert result.expect_ok().response.financing_case.state == FS.FINANCING_STATE_REJECTED
    again = respond(bank_a, case_id, rs.COUNTER_OFFER_ANSWER_ACCEPT)
    again.expect(grpc.StatusCode.FAILED_PRECONDITION)
    assert "REJECTED" in again.details


def test_respond_needs_a_counter_offer_and_an_answer(bank_a: Any) -> None:
    case_id, _ = acknowledged_case(bank_a)
    respond(bank_a, case_id, 0).expect_invalid("answer")
    result = respond(bank_a, case_id, rs.COUNTER_OFFER_ANSWER_ACCEPT)
    result.expect(grpc.StatusCode.FAILED_PRECONDITION)
    assert "ACKNOWLEDGED" in result.details
    respond(bank_a, "case_nope", rs.COUNTER_OFFER_ANSWER_ACCEPT).expect_not_found(
        "financing case", "case_nope"
    )
