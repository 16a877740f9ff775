"""One scheduled loan's life, reconciled day by day against a model written apart from the
product code: it misses an instalment and goes overdue (the gateway's arrears sweep), pays
penalty interest, interest and the arrears in one collection, prepays in part (its schedule
re-amortised), pays the new instalment, prepays the rest and settles. Every day's statement
line (``reconciliation.day_line``) must equal what the model says, figure by figure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from gateway.domain.arrears import arrears_events
from gateway.domain.decision import LoanTerms
from gateway.domain.financing import FinancingState
from gateway.domain.ledger import (
    Ledger,
    LoanEvent,
    LoanEventType,
    apply_event,
    apportion,
    case_schedule,
    prepay,
)
from gateway.domain.policy import CollectionOrder
from gateway.domain.reconciliation import CaseRecord, StatementLine, day_line
from gateway.domain.schedule import RepaymentMethod
from gateway.domain.scoring import ProductType

E = LoanEventType
S = FinancingState
CASE = "case_e2e"
ONE_DAY = timedelta(days=1)
PRINCIPAL, RATE_PPM, PENALTY_BPS, BANK_BPS = 1_200_000, 500, 15_000, 7_000
PAID_OUT = date(2028, 1, 31)  # a leap year: the first due date is 29 February
DUE = [date(2028, 2, 29), date(2028, 3, 31), date(2028, 4, 30)]
TERMS = LoanTerms(
    product=ProductType.FIXED_LOAN,
    amount_fen=PRINCIPAL,
    fixed_amount_fen=PRINCIPAL,
    term_months=3,
    revolving_daily_rate_ppm=0,
    fixed_daily_rate_ppm=RATE_PPM,
    bank_share_bps=BANK_BPS,
    platform_share_bps=10_000 - BANK_BPS,
    repayment_method=RepaymentMethod.EQUAL_PRINCIPAL,
    penalty_rate_bps=PENALTY_BPS,
)


def rounded(exact: int, per_fen: int) -> int:
    return (2 * exact + per_fen) // (2 * per_fen)  # half up


@dataclass
class Model:
    """The loan by the rules in words: interest on the principal each day at 500 ppm; late
    principal (of instalments due before the day, not repaid) bears 1.5x that in all, the 0.5x
    above the interest as penalty;
    equal principal instalments, the last taking the remainder, redone over the due dates left
    after a prepayment; payments applied penalty, interest, principal."""

    principal: int = 0
    interest_micro: int = 0  # fen x ppm
    penalty_units: int = 0  # fen x ppm x bps
    interest_paid: int = 0
    penalty_paid: int = 0
    plan: list[tuple[date, int]] = field(default_factory=list)  # (due date, principal due)
    repaid_on_plan: int = 0

    def start(self, amount: int) -> None:
        self.principal = amount
        self.replan(DUE)

    def replan(self, dates: list[date]) -> None:
        each = self.principal // len(dates)
        self.plan = [(d, each) for d in dates[:-1]] + [
            (dates[-1], self.principal - each * (len(dates) - 1))
        ]
        self.repaid_on_plan = 0

    def overdue_on(self, day: date) -> int:
        due = sum(p for d, p in self.plan if d < day)
        return max(0, due - self.repaid_on_plan)

    def close_day(self, day: date) -> None:
        self.interest_micro += self.principal * RATE_PPM
        self.penalty_units += self.overdue_on(day) * RATE_PPM * (PENALTY_BPS - 10_000)

    def owed(self) -> tuple[int, int, int]:
        penalty = rounded(self.penalty_units, 10**10) - self.penalty_paid
        interest = rounded(self.interest_micro, 10**6) - self.interest_paid
        return penalty, interest, self.principal

    def pay(self, amount: int) -> tuple[int, int, int]:
        penalty_owed, interest_owed, _ = self.owed()
        penalty = min(amount, penalty_owed)
        interest = min(amount - penalty, interest_owed)
        principal = amount - penalty - interest
        self.penalty_paid += penalty
        self.interest_paid += interest
        self.principal -= principal
        self.repaid_on_plan += principal
        return penalty, interest, principal


def split(amount: int) -> tuple[int, int]:
    bank = amount * BANK_BPS // 10_000
    return bank, amount - bank


def test_overdue_penalty_prepayment_and_settlement_reconcile_every_day() -> None:
    model = Model()
    state, ledger = S.APPROVED, Ledger()
    recorded: list[LoanEvent] = []
    expected: dict[date, StatementLine] = {}

    def record(event: LoanEvent) -> None:
        nonlocal state, ledger
        state, ledger = apply_event(
            case_id=CASE, state=state, ledger=ledger, terms=TERMS, event=event
        )
        recorded.append(event)

    # The story, by day: what the bank reports (amounts from the model's own figures).
    day = PAID_OUT
    settled_on = date(2028, 4, 10)
    while day <= settled_on:
        opening = model.principal
        opening_interest = rounded(model.interest_micro, 10**6)
        opening_penalty = rounded(model.penalty_units, 10**10)
        drawn = collected = [0, 0, 0]  # penalty, interest, principal
        if day == PAID_OUT:
            record(
                LoanEvent(
                    type=E.DISBURSED,
                    event_date=day,
                    bank_loan_reference="LN-1",
                    disbursed_fen=PRINCIPAL,
                )
            )
            model.start(PRINCIPAL)
            drawn = [PRINCIPAL]
        # The gateway's daily arrears sweep.
        swept = arrears_events(
            state=state, terms=TERMS, ledger=ledger, today=day, default_after_days=90
        )
        if day == date(2028, 3, 1):  # 29 February unpaid: one day past due
            assert [(e.type, e.days_overdue) for e in swept] == [(E.OVERDUE, 1)]
        else:
            assert swept == [], day
        for event in swept:
            record(event)
        payment: tuple[LoanEventType, int] | None = None
        if day == date(2028, 3, 12):  # the arrears, with their penalty and interest
            penalty, interest, _ = model.owed()
            assert (penalty, interest) == (1_100, 24_600)  # 11 late days; 41 days of interest
            payment = (E.COLLECTION, penalty + interest + 400_000)
        elif day == date(2028, 3, 20):  # a part prepayment: the interest and 300,000 more
            payment = (E.PREPAYMENT, model.owed()[1] + 300_000)
        elif day == date(2028, 3, 31):  # the redone first instalment
            [first, _] = case_schedule(TERMS, ledger)
            assert (first.principal_fen, first.interest_fen) == (250_000, 2_750)
            payment = (E.COLLECTION, first.total_fen)
        elif day == settled_on:  # the rest, prepaid
            payment = (E.PREPAYMENT, model.owed()[1] + model.principal)
        if payment is not None:
            kind, amount = payment
            event = LoanEvent(type=kind, event_date=day, amount_fen=amount)
            event = (
                apportion(
                    event,
                    ledger=ledger,
                    terms=TERMS,
                    order=CollectionOrder.INTEREST_FIRST,
                    case_id=CASE,
                )
                if kind is E.COLLECTION
                else prepay(event, ledger=ledger, terms=TERMS, case_id=CASE)
            )
            collected = list(model.pay(amount))
            assert [event.penalty_fen, event.interest_fen, event.principal_fen] == collected
            record(event)
            if kind is E.PREPAYMENT:
                model.replan([d for d in DUE if d > day])
            assert state is S.REPAYING
        if day == settled_on:
            assert model.owed() == (0, 0, 0)
            record(LoanEvent(type=E.SETTLED, event_date=day))
            assert state is S.SETTLED
        model.close_day(day)
        total = sum(collected)
        bank_share, platform_share = split(total)
        bank_funded = split(sum(drawn))[0]
        expected[day] = StatementLine(
            case_id=CASE,
            platform_merchant_id="m",
            opening_principal_fen=opening,
            drawn_fen=sum(drawn),
            interest_accrued_fen=rounded(model.interest_micro, 10**6) - opening_interest,
            penalty_accrued_fen=rounded(model.penalty_units, 10**10) - opening_penalty,
            principal_collected_fen=collected[2],
            interest_collected_fen=collected[1],
            penalty_collected_fen=collected[0],
            collected_by_bank_fen=total,
            bank_share_collected_fen=bank_share,
            platform_share_collected_fen=platform_share,
            closing_principal_fen=model.principal,
            bank_funded_fen=bank_funded,
            platform_funded_fen=sum(drawn) - bank_funded,
            platform_owes_bank_fen=sum(drawn) - bank_funded,
            bank_owes_platform_fen=platform_share,
        )
        day += ONE_DAY

    case = CaseRecord(case_id=CASE, platform_merchant_id="m", terms=TERMS, events=tuple(recorded))
    for day, line in expected.items():
        assert day_line(case, day) == line, day
    assert day_line(case, settled_on + ONE_DAY) is None  # settled: nothing more to report
    # Over the loan's life: the penalty was paid in full, and the shares sum to the payments.
    lines = list(expected.values())
    assert sum(line.penalty_accrued_fen for line in lines) == 1_100
    assert sum(line.penalty_collected_fen for line in lines) == 1_100
    assert ledger.bank_share_repaid_fen + ledger.platform_share_repaid_fen == sum(
        line.collected_by_bank_fen for line in lines
    )
