"""Property tests of the loan ledger: random agreed terms and random event sequences, applied
from APPROVED with ``apply_event``, checked step by step against the state machine and against
an independent, day-by-day reference model of the two principal buckets and the interest."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st

from gateway.domain.decision import LoanTerms, terms_problems
from gateway.domain.financing import TRANSITIONS, FinancingState, transition
from gateway.domain.ledger import (
    APPORTIONED,
    EVENT_TRANSITIONS,
    GATEWAY_RECORDED,
    Ledger,
    LoanEvent,
    LoanEventType,
    accrue,
    apply_event,
    event_problems,
    replay,
)
from gateway.domain.money import BPS_WHOLE, PPM_WHOLE, simple_interest_fen, yuan
from gateway.domain.schedule import add_months
from gateway.domain.scoring import FIXED_PART_MIN_BPS, FIXED_PART_MIN_FEN, ProductType
from gateway.errors import FailedPrecondition

S = FinancingState
E = LoanEventType
START = date(2024, 1, 1)
FAR_FUTURE = date(2100, 1, 1)
CASE = "case-1"

FAST = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# What a bank reports; the gateway records the others from order batches and settlements. A
# COLLECTION or PREPAYMENT reaches apply_event apportioned into a repayment
# (tests/unit/test_collections.py, tests/unit/test_servicing.py).
REPORTED_TYPES = [t for t in LoanEventType if t not in GATEWAY_RECORDED and t not in APPORTIONED]

# --- generators ---------------------------------------------------------------------------------


@st.composite
def agreed_terms(draw: st.DrawFn) -> LoanTerms:
    # An ORDER_LOAN is drawn by batches, not by these events (tests/unit/test_order_rules.py).
    product = draw(st.sampled_from([p for p in ProductType if p is not ProductType.ORDER_LOAN]))
    if product is ProductType.COMBINED:
        amount = draw(
            st.one_of(
                st.integers(FIXED_PART_MIN_FEN + 1, FIXED_PART_MIN_FEN + 1000),
                st.integers(FIXED_PART_MIN_FEN + 1, yuan(2_000_000)),
            )
        )
        floor = max(-(-amount * FIXED_PART_MIN_BPS // BPS_WHOLE), FIXED_PART_MIN_FEN)
        fixed = draw(st.sampled_from([floor, amount - 1]) | st.integers(floor, amount - 1))
    else:
        amount = draw(st.integers(1, 10_000) | st.integers(1, yuan(2_000_000)))
        fixed = amount if product is ProductType.FIXED_LOAN else 0
    rate = st.integers(1, 1000)
    bank_bps = draw(st.sampled_from([0, 1, 3333, 5000, 9999, BPS_WHOLE]) | st.integers(0, 10_000))
    terms = LoanTerms(
        product=product,
        amount_fen=amount,
        fixed_amount_fen=fixed,
        term_months=draw(st.integers(1, 36)),
        revolving_daily_rate_ppm=0 if product is ProductType.FIXED_LOAN else draw(rate),
        fixed_daily_rate_ppm=0 if product is ProductType.REVOLVING_LINE else draw(rate),
        bank_share_bps=bank_bps,
        platform_share_bps=BPS_WHOLE - bank_bps,
    )
    assert terms_problems(terms, prefix="terms") == []
    return terms


def _amount(data: st.DataObject, limit: int, *, zero_ok: bool) -> int:
    """Sometimes exactly the limit, sometimes within it, sometimes above it."""
    low = 0 if zero_ok else 1
    choices = [st.just(limit + 1), st.integers(limit + 1, limit + 10**6)]
    if limit >= low:
        choices += [st.just(limit), st.integers(low, limit), st.just(low)]
    return data.draw(st.one_of(choices))


# --- the reference model ------------------------------------------------------------------------


@dataclasses.dataclass
class Model:
    """The case as the rules describe it, kept independently of the product code."""

    terms: LoanTerms
    state: FinancingState = S.APPROVED
    disbursed: int = 0
    fixed: int = 0
    revolving: int = 0
    micro: int = 0
    principal_repaid: int = 0
    interest_repaid: int = 0
    bank_share: int = 0
    last: date | None = None
    disbursed_on: date | None = None
    drawn_again: int = 0

    def daily_micro(self) -> int:
        t = self.terms
        return self.fixed * t.fixed_daily_rate_ppm + self.revolving * t.revolving_daily_rate_ppm

    def micro_through(self, day: date) -> int:
        """Interest accrued up to (not including) ``day``, added one day at a time."""
        total = self.micro
        if self.last is not None:
            d = self.last
            while d < day:
                total += self.daily_micro()
                d += timedelta(days=1)
        return total

    def revolving_available(self) -> int:
        return self.terms.amount_fen - self.terms.fixed_amount_fen - self.revolving

    def interest_outstanding_at(self, day: date) -> int:
        accrued_fen = (self.micro_through(day) + PPM_WHOLE // 2) // PPM_WHOLE
        return max(0, accrued_fen - self.interest_repaid)

    def refusal(self, event: LoanEvent) -> str | None:
        """Which refusal the event should meet, or None if it should be applied."""
        assert event.type is not None
        assert event.event_date is not None
        allowed, _ = EVENT_TRANSITIONS[event.type]
        if self.state not in allowed:
            return "ILLEGAL_TRANSITION"
        if self.last is not None and event.event_date < self.last:
            return "EVENT_OUT_OF_ORDER"
        if event.type is E.DISBURSED and event.disbursed_fen > self.terms.amount_fen:
            return "DISBURSEMENT_ABOVE_TERMS"
        if event.type is E.DRAWDOWN:
            if self.terms.fixed_amount_fen == self.terms.amount_fen:
                return "NO_REVOLVING_LIMIT"
            assert self.disbursed_on is not None
            if event.event_date >= add_months(self.disbursed_on, self.terms.term_months):
                return "DRAWDOWN_AFTER_MATURITY"
            if event.disbursed_fen > self.revolving_available():
                return "DRAWDOWN_ABOVE_LIMIT"
        if event.type in (E.REPAYMENT, E.RECOVERED) and (
            event.principal_fen > self.fixed + self.revolving
            or event.interest_fen > self.interest_outstanding_at(event.event_date)
        ):
            return "REPAYMENT_ABOVE_OUTSTANDING"
        if event.type is E.SETTLED and (
            self.fixed + self.revolving or self.interest_outstanding_at(event.event_date)
        ):
            return "NOT_REPAID"
        return None

    def apply(self, event: LoanEvent) -> None:
        assert event.type is not None
        assert event.event_date is not None
        self.micro = self.micro_through(event.event_date)
        self.last = event.event_date
        if event.type is E.DISBURSED:
            self.disbursed = event.disbursed_fen
            self.fixed = min(event.disbursed_fen, self.terms.fixed_amount_fen)
            self.revolving = event.disbursed_fen - self.fixed
            self.disbursed_on = event.event_date
        elif event.type is E.DRAWDOWN:
            self.disbursed += event.disbursed_fen
            self.drawn_again += event.disbursed_fen
            self.revolving += event.disbursed_fen
        elif event.type in (E.REPAYMENT, E.RECOVERED):
            p = event.principal_fen
            from_revolving = min(p, self.revolving)
            self.revolving -= from_revolving
            self.fixed -= p - from_revolving
            self.principal_repaid += p
            self.interest_repaid += event.interest_fen
            total = p + event.interest_fen
            self.bank_share += total * self.terms.bank_share_bps // BPS_WHOLE
        self.state = EVENT_TRANSITIONS[event.type][1]


def _draw_event(data: st.DataObject, model: Model, day: date) -> LoanEvent:
    legal = [
        t
        for t, (allowed, _) in EVENT_TRANSITIONS.items()
        if model.state in allowed and t in REPORTED_TYPES
    ]
    etype: LoanEventType
    if legal and data.draw(st.integers(0, 4)) > 0:  # mostly an event the state allows
        etype = data.draw(st.sampled_from(legal))
    else:
        etype = data.draw(st.sampled_from(REPORTED_TYPES))
    if etype is E.DISBURSED:
        return LoanEvent(
            type=etype,
            event_date=day,
            bank_loan_reference=data.draw(st.sampled_from(["BL-1", "  BL-2  "])),
            disbursed_fen=_amount(data, model.terms.amount_fen, zero_ok=False),
        )
    if etype is E.DRAWDOWN:
        return LoanEvent(
            type=etype,
            event_date=day,
            disbursed_fen=_amount(data, model.revolving_available(), zero_ok=False),
        )
    if etype in (E.REPAYMENT, E.RECOVERED):
        principal = _amount(data, model.fixed + model.revolving, zero_ok=True)
        interest = _amount(data, model.interest_outstanding_at(day), zero_ok=True)
        if not principal and not interest:  # shape rule: one of them must be positive
            interest = 1
        return LoanEvent(type=etype, event_date=day, principal_fen=principal, interest_fen=interest)
    if etype is E.OVERDUE:
        days = data.draw(st.integers(1, 10_000))
        return LoanEvent(type=etype, event_date=day, days_overdue=days)
    return LoanEvent(type=etype, event_date=day)


# --- invariants ---------------------------------------------------------------------------------


def _check_ledger(ledger: Ledger, terms: LoanTerms, state: FinancingState) -> None:
    for f in dataclasses.fields(Ledger):
        value = getattr(ledger, f.name)
        if isinstance(value, int):
            assert value >= 0, f"{f.name} is negative: {value}"
    assert ledger.principal_outstanding_fen == (
        ledger.principal_disbursed_fen - ledger.principal_repaid_fen
    )
    assert ledger.principal_disbursed_fen - ledger.drawn_again_fen <= terms.amount_fen
    assert ledger.fixed_outstanding_fen <= terms.fixed_amount_fen
    assert ledger.revolving_outstanding_fen <= terms.amount_fen - terms.fixed_amount_fen
    assert ledger.interest_repaid_fen <= ledger.interest_accrued_fen
    assert ledger.bank_share_repaid_fen + ledger.platform_share_repaid_fen == (
        ledger.principal_repaid_fen + ledger.interest_repaid_fen
    )
    if state is S.SETTLED:
        assert ledger.principal_outstanding_fen == 0
        assert ledger.interest_outstanding_fen == 0


def _check_matches_model(ledger: Ledger, model: Model) -> None:
    assert ledger.principal_disbursed_fen == model.disbursed
    assert ledger.drawn_again_fen == model.drawn_again
    assert ledger.fixed_outstanding_fen == model.fixed
    assert ledger.revolving_outstanding_fen == model.revolving
    assert ledger.interest_accrued_micro == model.micro
    assert ledger.principal_repaid_fen == model.principal_repaid
    assert ledger.interest_repaid_fen == model.interest_repaid
    assert ledger.bank_share_repaid_fen == model.bank_share
    assert ledger.accrued_through == model.last


def _refusal_code(exc: FailedPrecondition) -> str:
    [violation] = exc.violations
    assert violation.subject == f"financingCases/{CASE}"
    return violation.type


# --- properties ---------------------------------------------------------------------------------


@FAST
@given(terms=agreed_terms(), data=st.data())
def test_random_event_sequences_keep_the_ledger_consistent(
    terms: LoanTerms, data: st.DataObject
) -> None:
    model = Model(terms=terms)
    state, ledger = S.APPROVED, Ledger()
    accepted: list[LoanEvent] = []
    day = START
    steps = data.draw(st.integers(1, 25), label="steps")
    for _ in range(steps):
        day += timedelta(days=data.draw(st.sampled_from([0, 0, 1, 30]) | st.integers(0, 400)))
        event = _draw_event(data, model, day)
        assert event_problems(event, today=FAR_FUTURE) == []
        expected = model.refusal(event)
        if expected is not None:
            with pytest.raises(FailedPrecondition) as refused:
                apply_event(case_id=CASE, state=state, ledger=ledger, terms=terms, event=event)
            assert _refusal_code(refused.value) == expected, event
            hypothesis_event(f"refused {expected}")
            continue  # a refused event leaves the state and the ledger as they were
        new_state, new_ledger = apply_event(
            case_id=CASE, state=state, ledger=ledger, terms=terms, event=event
        )
        assert event.type is not None

        # the move is one the state machine allows
        allowed, target = EVENT_TRANSITIONS[event.type]
        assert state in allowed
        assert new_state is target
        assert new_state in TRANSITIONS[state]
        assert transition(CASE, state, new_state) is new_state

        # accrual only ever grows, and only forwards in time
        assert new_ledger.interest_accrued_micro >= ledger.interest_accrued_micro
        if ledger.accrued_through is not None:
            assert new_ledger.accrued_through is not None
            assert new_ledger.accrued_through >= ledger.accrued_through

        model.apply(event)
        state, ledger = new_state, new_ledger
        _check_ledger(ledger, terms, state)
        _check_matches_model(ledger, model)
        assert state is model.state
        hypothesis_event(f"reached {state.name}")
        # The record alone gives the ledger back: what reconciliation replays.
        accepted.append(event)
        assert replay(accepted, terms, case_id=CASE) == ledger


@FAST
@given(
    terms=agreed_terms(),
    disbursed_share=st.integers(1, 100),
    repayments=st.lists(
        st.tuples(st.integers(0, 120), st.integers(1, 100)), min_size=0, max_size=8
    ),
    tail_days=st.integers(0, 400),
)
def test_interest_is_the_sum_over_days_of_the_drawn_buckets(
    terms: LoanTerms,
    disbursed_share: int,
    repayments: list[tuple[int, int]],
    tail_days: int,
) -> None:
    """Disburse, repay principal now and then, and count the interest day by day."""
    disbursed = max(1, terms.amount_fen * disbursed_share // 100)
    state, ledger = apply_event(
        case_id=CASE,
        state=S.APPROVED,
        ledger=Ledger(),
        terms=terms,
        event=LoanEvent(
            type=E.DISBURSED, event_date=START, bank_loan_reference="BL", disbursed_fen=disbursed
        ),
    )
    # the balance of each bucket on each day, built from the rules, not from the ledger
    fixed = min(disbursed, terms.fixed_amount_fen)
    revolving = disbursed - fixed
    balances: list[tuple[int, int]] = []
    day = START
    for gap, percent in repayments:
        balances += [(fixed, revolving)] * gap
        day += timedelta(days=gap)
        principal = (fixed + revolving) * percent // 100
        if principal == 0:
            break
        state, ledger = apply_event(
            case_id=CASE,
            state=state,
            ledger=ledger,
            terms=terms,
            event=LoanEvent(type=E.REPAYMENT, event_date=day, principal_fen=principal),
        )
        from_revolving = min(principal, revolving)
        revolving -= from_revolving
        fixed -= principal - from_revolving
        assert (ledger.fixed_outstanding_fen, ledger.revolving_outstanding_fen) == (
            fixed,
            revolving,
        )
    balances += [(fixed, revolving)] * tail_days
    end = day + timedelta(days=tail_days)
    ledger = accrue(ledger, terms, end)

    expected_micro = sum(
        f * terms.fixed_daily_rate_ppm + r * terms.revolving_daily_rate_ppm for f, r in balances
    )
    assert len(balances) == (end - START).days
    assert ledger.interest_accrued_micro == expected_micro
    assert ledger.interest_accrued_fen == (expected_micro + PPM_WHOLE // 2) // PPM_WHOLE
    assert ledger.accrued_through == end


@FAST
@given(terms=agreed_terms(), days=st.integers(0, 3 * 365))
def test_one_bucket_interest_is_simple_interest(terms: LoanTerms, days: int) -> None:
    state, ledger = apply_event(
        case_id=CASE,
        state=S.APPROVED,
        ledger=Ledger(),
        terms=terms,
        event=LoanEvent(
            type=E.DISBURSED,
            event_date=START,
            bank_loan_reference="BL",
            disbursed_fen=terms.amount_fen,
        ),
    )
    assert state is S.DISBURSED
    ledger = accrue(ledger, terms, START + timedelta(days=days))
    expected = simple_interest_fen(
        terms.fixed_amount_fen, terms.fixed_daily_rate_ppm, days
    ) + simple_interest_fen(
        terms.amount_fen - terms.fixed_amount_fen, terms.revolving_daily_rate_ppm, days
    )
    if terms.product is ProductType.COMBINED:
        # each bucket rounds on its own here; the ledger rounds the sum once
        assert abs(ledger.interest_accrued_fen - expected) <= 1
    else:
        assert ledger.interest_accrued_fen == expected


@FAST
@given(
    terms=agreed_terms(),
    fixed_out=st.integers(0, 10**12),
    revolving_out=st.integers(0, 10**12),
    micro=st.integers(0, 10**15),
    offsets=st.lists(st.integers(-30, 800), min_size=2, max_size=6),
)
def test_accrual_is_monotonic_and_additive_in_time(
    terms: LoanTerms, fixed_out: int, revolving_out: int, micro: int, offsets: list[int]
) -> None:
    base = Ledger(
        fixed_outstanding_fen=fixed_out,
        revolving_outstanding_fen=revolving_out,
        principal_disbursed_fen=fixed_out + revolving_out,
        interest_accrued_micro=micro,
        accrued_through=START,
    )
    daily = fixed_out * terms.fixed_daily_rate_ppm + revolving_out * terms.revolving_daily_rate_ppm
    previous = base
    for offset in sorted(offsets):
        through = START + timedelta(days=offset)
        once = accrue(base, terms, through)
        stepwise = accrue(previous, terms, through)
        assert once == stepwise  # accruing in steps is the same as accruing at once
        assert once.interest_accrued_micro >= previous.interest_accrued_micro
        assert once.interest_accrued_micro == micro + daily * max(0, offset)
        assert once.accrued_through == max(START, through)
        # only the interest and the date move
        assert (
            dataclasses.replace(once, interest_accrued_micro=micro, accrued_through=START) == base
        )
        previous = stepwise
    # never backwards: an earlier date is a no-op
    assert accrue(previous, terms, START - timedelta(days=1)) == previous
    assert accrue(Ledger(), terms, START) == Ledger()  # nothing disbursed, nothing to accrue


_AFTER_DISBURSEMENT: list[tuple[list[LoanEventType], LoanEventType]] = [
    ([], E.REPAYMENT),
    ([], E.OVERDUE),
    ([], E.SETTLED),
    ([E.REPAYMENT], E.REPAYMENT),
    ([E.OVERDUE], E.REPAYMENT),
    ([E.OVERDUE], E.DEFAULT),
    ([E.OVERDUE, E.DEFAULT], E.RECOVERED),
    ([E.OVERDUE, E.DEFAULT], E.WRITTEN_OFF),
]


def _plain_event(etype: LoanEventType, day: date) -> LoanEvent:
    if etype in (E.REPAYMENT, E.RECOVERED):
        return LoanEvent(type=etype, event_date=day, principal_fen=1)
    if etype is E.OVERDUE:
        return LoanEvent(type=etype, event_date=day, days_overdue=5)
    if etype is E.DRAWDOWN:
        return LoanEvent(type=etype, event_date=day, disbursed_fen=1)
    return LoanEvent(type=etype, event_date=day)


@pytest.mark.parametrize(("before", "late"), _AFTER_DISBURSEMENT)
@settings(FAST, max_examples=25)
@given(
    terms=agreed_terms(),
    gaps=st.lists(st.integers(0, 60), min_size=3, max_size=3),
    back=st.integers(1, 400),
)
def test_events_before_the_last_one_are_refused_out_of_order(
    before: list[LoanEventType],
    late: LoanEventType,
    terms: LoanTerms,
    gaps: list[int],
    back: int,
) -> None:
    day = START
    state, ledger = apply_event(
        case_id=CASE,
        state=S.APPROVED,
        ledger=Ledger(),
        terms=terms,
        event=LoanEvent(
            type=E.DISBURSED, event_date=day, bank_loan_reference="BL", disbursed_fen=1
        ),
    )
    for etype, gap in zip(before, gaps, strict=False):
        day += timedelta(days=gap)
        state, ledger = apply_event(
            case_id=CASE, state=state, ledger=ledger, terms=terms, event=_plain_event(etype, day)
        )
    assert ledger.accrued_through == day
    late_event = _plain_event(late, day - timedelta(days=back))
    assert event_problems(late_event, today=FAR_FUTURE) == []
    with pytest.raises(FailedPrecondition) as info:
        apply_event(case_id=CASE, state=state, ledger=ledger, terms=terms, event=late_event)
    assert _refusal_code(info.value) == "EVENT_OUT_OF_ORDER"
    assert late_event.event_date is not None
    assert late_event.event_date.isoformat() in info.value.message
    # the same event on the last event's own day is in order (settling needs a repaid loan)
    if late is not E.SETTLED and ledger.principal_outstanding_fen:
        same_day = dataclasses.replace(late_event, event_date=day)
        new_state, _ = apply_event(
            case_id=CASE, state=state, ledger=ledger, terms=terms, event=same_day
        )
        assert new_state is EVENT_TRANSITIONS[late][1]


def test_the_event_table_only_makes_moves_the_state_machine_allows() -> None:
    for etype, (allowed, target) in EVENT_TRANSITIONS.items():
        assert allowed, etype
        for source in allowed:
            assert target in TRANSITIONS[source], (etype, source, target)


@pytest.mark.parametrize("state", list(FinancingState))
@pytest.mark.parametrize("etype", REPORTED_TYPES)
def test_events_in_the_wrong_state_are_illegal_transitions(
    state: FinancingState, etype: LoanEventType
) -> None:
    allowed, _ = EVENT_TRANSITIONS[etype]
    if state in allowed:
        return
    event = _plain_event(etype, START)
    if etype is E.DISBURSED:
        event = LoanEvent(type=etype, event_date=START, bank_loan_reference="B", disbursed_fen=1)
    terms = LoanTerms(
        product=ProductType.REVOLVING_LINE,
        amount_fen=100,
        fixed_amount_fen=0,
        term_months=1,
        revolving_daily_rate_ppm=1,
        fixed_daily_rate_ppm=0,
        bank_share_bps=5000,
        platform_share_bps=5000,
    )
    with pytest.raises(FailedPrecondition) as info:
        apply_event(case_id=CASE, state=state, ledger=Ledger(), terms=terms, event=event)
    assert _refusal_code(info.value) == "ILLEGAL_TRANSITION"
    assert state.name in info.value.message
