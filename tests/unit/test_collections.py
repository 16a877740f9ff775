"""A bank's collected payment apportioned by the gateway: interest then principal by default,
principal first where the bank's policy says so, never more than is owed; the shares of the
lenders always sum to the payment, as for any repayment."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.decision import LoanTerms
from gateway.domain.financing import FinancingState
from gateway.domain.ledger import (
    Ledger,
    LoanEvent,
    LoanEventType,
    apply_event,
    apportion,
    event_problems,
    recorded_effect,
)
from gateway.domain.money import BPS_WHOLE
from gateway.domain.policy import CollectionOrder
from gateway.domain.scoring import ProductType
from gateway.errors import FailedPrecondition

DAY = date(2026, 11, 1)
TERMS = LoanTerms(
    product=ProductType.REVOLVING_LINE,
    amount_fen=10_000_000,
    fixed_amount_fen=0,
    term_months=12,
    revolving_daily_rate_ppm=600,
    fixed_daily_rate_ppm=0,
    bank_share_bps=7000,
    platform_share_bps=3000,
)


def drawn(amount: int = 1_000_000) -> Ledger:
    event = LoanEvent(
        type=LoanEventType.DISBURSED, event_date=DAY, bank_loan_reference="BL", disbursed_fen=amount
    )
    return recorded_effect(Ledger(), TERMS, event, case_id="c")


def collection(amount: int, days: int = 10) -> LoanEvent:
    return LoanEvent(
        type=LoanEventType.COLLECTION, event_date=DAY + timedelta(days=days), amount_fen=amount
    )


def test_interest_first_then_principal() -> None:
    # 10 days on 10,000 yuan at 600 ppm: 60 yuan of interest.
    paid = apportion(
        collection(100_000),
        ledger=drawn(),
        terms=TERMS,
        order=CollectionOrder.INTEREST_FIRST,
        case_id="c",
    )
    assert (paid.interest_fen, paid.principal_fen, paid.amount_fen) == (6_000, 94_000, 100_000)
    small = apportion(
        collection(4_000),
        ledger=drawn(),
        terms=TERMS,
        order=CollectionOrder.INTEREST_FIRST,
        case_id="c",
    )
    assert (small.interest_fen, small.principal_fen) == (4_000, 0)


def test_principal_first() -> None:
    paid = apportion(
        collection(1_003_000),
        ledger=drawn(),
        terms=TERMS,
        order=CollectionOrder.PRINCIPAL_FIRST,
        case_id="c",
    )
    assert (paid.principal_fen, paid.interest_fen) == (1_000_000, 3_000)


def test_more_than_owed_is_refused() -> None:
    for order in CollectionOrder:
        with pytest.raises(FailedPrecondition) as refused:
            apportion(collection(1_006_001), ledger=drawn(), terms=TERMS, order=order, case_id="c")
        assert refused.value.violations[0].type == "COLLECTION_ABOVE_OWED"
    exact = apportion(
        collection(1_006_000),
        ledger=drawn(),
        terms=TERMS,
        order=CollectionOrder.INTEREST_FIRST,
        case_id="c",
    )
    assert (exact.principal_fen, exact.interest_fen) == (1_000_000, 6_000)


def test_a_reported_collection_names_only_its_amount() -> None:
    far = DAY + timedelta(days=400)
    assert event_problems(collection(1), today=far) == []
    assert [p.field for p in event_problems(collection(0), today=far)] == [
        "event.amount.amount_minor"
    ]
    both = LoanEvent(type=LoanEventType.COLLECTION, event_date=DAY, amount_fen=5, principal_fen=5)
    assert [p.field for p in event_problems(both, today=far)] == ["event.principal.amount_minor"]
    repayment = LoanEvent(
        type=LoanEventType.REPAYMENT, event_date=DAY, principal_fen=5, amount_fen=5
    )
    assert [p.field for p in event_problems(repayment, today=far)] == ["event.amount.amount_minor"]


@given(
    amount=st.integers(1, 1_006_000),
    days=st.integers(0, 10),
    order=st.sampled_from(CollectionOrder),
    bank_bps=st.integers(0, BPS_WHOLE),
)
def test_any_collection_adds_up(
    amount: int, days: int, order: CollectionOrder, bank_bps: int
) -> None:
    terms = replace(TERMS, bank_share_bps=bank_bps, platform_share_bps=BPS_WHOLE - bank_bps)
    ledger = drawn()
    event = collection(amount, days)
    try:
        paid = apportion(event, ledger=ledger, terms=terms, order=order, case_id="c")
    except FailedPrecondition:
        return  # more than the days' interest and the principal: refused, nothing applied
    assert paid.principal_fen + paid.interest_fen == amount
    state, after = apply_event(
        case_id="c", state=FinancingState.DISBURSED, ledger=ledger, terms=terms, event=paid
    )
    assert state is FinancingState.REPAYING
    assert after.bank_share_repaid_fen + after.platform_share_repaid_fen == amount
    assert after.bank_share_repaid_fen == amount * bank_bps // BPS_WHOLE
    assert after.principal_outstanding_fen == 1_000_000 - paid.principal_fen


def test_the_policy_fields_round_trip_through_proto_and_storage() -> None:
    from gateway.domain.policy import EligibilityPolicy, validate_policy
    from gateway.partners.convert import policy_from_proto, policy_to_proto
    from gateway.store import codec

    policy = EligibilityPolicy(
        collection_order=CollectionOrder.PRINCIPAL_FIRST,
        default_after_days=60,
        order_advance_cap_bps=7000,
    )
    problems: list = []
    assert policy_from_proto(policy_to_proto(policy), "policy", problems) == policy
    assert problems == []
    assert codec.load_policy(codec.dump_policy(policy)) == policy
    assert [p.field for p in validate_policy(replace(policy, default_after_days=0))] == [
        "policy.default_after_days"
    ]
