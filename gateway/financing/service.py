"""Joint financing: the bank's decision (approve, decline, counter-offer) and the platform's
answer to a counter-offer, checked against the bank's policy and exposure cap; loan events
through the ledger and the state machine (a default lists the borrower on the blacklist in the
same transaction); the cases each side may read; portfolio figures; the expiry sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlmodel import Session

from gateway._transactions import (
    Idempotency,
    Transactions,
    business_date,
    raise_all,
    require_active_partner,
    utc_now,
)
from gateway.blacklist.service import CASE_ENDED, BlacklistNetwork
from gateway.domain import paging
from gateway.domain.arrears import IN_ARREARS_SCOPE, arrears_events
from gateway.domain.decision import (
    CounterOfferAnswer,
    Decision,
    DecisionOutcome,
    LoanTerms,
    decision_problems,
    policy_refusals,
)
from gateway.domain.financing import (
    EXPIRABLE,
    FinancingState,
    transition,
)
from gateway.domain.ledger import (
    Ledger,
    LoanEvent,
    LoanEventType,
    admissible,
    apply_event,
    apportion,
    event_problems,
    prepay,
)
from gateway.domain.money import split_by_bps
from gateway.domain.paging import Page
from gateway.domain.partner import (
    Partner,
    partner_id_problem,
)
from gateway.domain.portfolio import CaseFigures, PortfolioStats, tally
from gateway.domain.referral import FinancingCase
from gateway.domain.scoring import ProductType
from gateway.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from gateway.financing import evidence
from gateway.financing.cases import (
    CaseDetail,
    case_detail,
    load_bank_case,
    move_case,
    refuse_if_expired,
)
from gateway.financing.evidence import SignedStatement
from gateway.partners.service import require_partner
from gateway.reconciliation.service import refuse_if_books_closed
from gateway.store import codec
from gateway.store import order_repository as orders_repo
from gateway.store import reconciliation_repository as recon_repo
from gateway.store import repository as repo
from gateway.store.db import Database


class Financing:
    def __init__(
        self,
        *,
        database: Database,
        blacklist: BlacklistNetwork,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = database
        self._blacklist = blacklist
        self._clock = clock
        self._tx = Transactions(database=database, clock=clock)

    def submit_decision(
        self,
        *,
        idem: Idempotency,
        bank_id: str,
        case_id: str,
        decision: Decision | None,
        signed: SignedStatement[Decision] | None = None,
        shape_problems: Sequence[FieldViolation] = (),
    ) -> CaseDetail:
        """Approve, decline or counter-offer. ``decision`` may be None when ``signed`` carries
        it; a signed decision is verified against the bank's registered key and kept."""
        problems = [] if case_id else [FieldViolation("case_id", "required")]
        if decision is not None:
            problems += decision_problems(decision)
        elif signed is None:
            problems.append(FieldViolation("decision", "required"))
        raise_all(shape_problems, problems)

        def act(session: Session, now: datetime) -> tuple[str, CaseDetail]:
            # The partner row lock serialises this bank's decisions, so two approvals cannot
            # both fit under the exposure cap that only one of them fits under.
            partner = require_active_partner(session, bank_id, for_update=True)
            decided, kept = evidence.accept(
                session,
                signed,
                field="signed_decision",
                content_field="decision",
                given=decision,
                partner=partner,
                case_id=case_id,
                now=now,
            )
            if signed is not None:
                raise_all((), decision_problems(decided, prefix="signed_decision.payload.decision"))
            if decided.terms is not None and not decided.terms.penalty_rate_bps:
                decided = replace(
                    decided,
                    terms=replace(decided.terms, penalty_rate_bps=partner.policy.penalty_rate_bps),
                )
            assert decided.outcome is not None
            target = DECISION_STATES[decided.outcome]
            case = load_bank_case(session, case_id, bank_id, for_update=True)
            refuse_if_expired(case, now)
            transition(case_id, case.state, target)
            values: dict[str, Any] = {
                "decision_json": codec.dump_decision(decided),
                "evidence": kept,
            }
            if decided.terms is not None:
                self._check_policy(session, partner, case, decided.terms)
                if target is FinancingState.APPROVED:
                    values.update(_agreed(decided.terms))
            return move_case(
                session,
                case,
                to_state=target,
                now=now,
                actor=f"partner/{bank_id}",
                request_id=idem.request_id,
                **values,
            )

        return self._tx.idempotent(idem, replay=case_detail, act=act)

    def respond_to_counter_offer(
        self,
        *,
        idem: Idempotency,
        case_id: str,
        answer: CounterOfferAnswer | None,
        reason: str,
        shape_problems: Sequence[FieldViolation] = (),
    ) -> CaseDetail:
        problems = [] if case_id else [FieldViolation("case_id", "required")]
        if answer is None:
            problems.append(FieldViolation("answer", "required"))
        if len(reason) > 500:
            problems.append(FieldViolation("reason", "must be at most 500 characters"))
        raise_all(shape_problems, problems)
        target = (
            FinancingState.ACCEPTED
            if answer is CounterOfferAnswer.ACCEPT
            else FinancingState.REJECTED
        )

        def act(session: Session, now: datetime) -> tuple[str, CaseDetail]:
            found = repo.get_case(session, case_id)
            if found is None:
                raise NotFound("financing case", case_id)
            partner = require_partner(session, found.bank_id, for_update=True)
            case = load_bank_case(session, case_id, found.bank_id, for_update=True)
            refuse_if_expired(case, now)
            transition(case_id, case.state, target)
            values: dict[str, Any] = {}
            if target is FinancingState.ACCEPTED:
                assert case.decision is not None
                assert case.decision.terms is not None
                # The bank's book may have filled up since it countered.
                self._check_policy(session, partner, case, case.decision.terms)
                values.update(_agreed(case.decision.terms))
            return move_case(
                session,
                case,
                to_state=target,
                now=now,
                actor=idem.caller,
                request_id=idem.request_id,
                **values,
            )

        return self._tx.idempotent(idem, replay=case_detail, act=act)

    def report_loan_event(
        self,
        *,
        idem: Idempotency,
        bank_id: str,
        case_id: str,
        event: LoanEvent | None,
        signed: SignedStatement[LoanEvent] | None = None,
        shape_problems: Sequence[FieldViolation] = (),
    ) -> CaseDetail:
        """Record a loan event. ``event`` may be None when ``signed`` carries it; a signed event
        is verified against the bank's registered key and kept."""
        problems = [] if case_id else [FieldViolation("case_id", "required")]
        # The bank's business date may run ahead of UTC by up to a day (UTC+14 at most).
        latest_date = business_date(self._clock()) + timedelta(days=1)
        if event is not None:
            problems += event_problems(event, today=latest_date)
        elif signed is None:
            problems.append(FieldViolation("event", "required"))
        raise_all(shape_problems, problems)

        def act(session: Session, now: datetime) -> tuple[str, CaseDetail]:
            # Locked, so a decision key replaced meanwhile cannot verify this event afterwards.
            partner = require_active_partner(session, bank_id, for_update=True)
            reported, kept = evidence.accept(
                session,
                signed,
                field="signed_event",
                content_field="event",
                given=event,
                partner=partner,
                case_id=case_id,
                now=now,
            )
            if signed is not None:
                raise_all(
                    (),
                    event_problems(
                        reported, today=latest_date, prefix="signed_event.payload.event"
                    ),
                )
            assert reported.event_date is not None
            refuse_if_books_closed(session, bank_id, reported.event_date, field="event.event_date")
            case = load_bank_case(session, case_id, bank_id, for_update=True)
            if case.agreed_terms is None:
                raise FailedPrecondition.single(
                    "ILLEGAL_TRANSITION",
                    f"financingCases/{case_id}",
                    f"case is {case.state.name}; loan events follow an approval or an "
                    "accepted counter-offer",
                )
            admissible(  # before apportioning it
                case_id=case_id, state=case.state, ledger=case.ledger or Ledger(), event=reported
            )
            if reported.type is LoanEventType.COLLECTION:  # the gateway apportions it
                reported = apportion(
                    reported,
                    ledger=case.ledger or Ledger(),
                    terms=case.agreed_terms,
                    order=partner.policy.collection_order,
                    case_id=case_id,
                )
            elif reported.type is LoanEventType.PREPAYMENT:
                reported = prepay(
                    reported,
                    ledger=case.ledger or Ledger(),
                    terms=case.agreed_terms,
                    case_id=case_id,
                )
            target, ledger = apply_event(
                case_id=case_id,
                state=case.state,
                ledger=case.ledger or Ledger(),
                terms=case.agreed_terms,
                event=reported,
            )
            if case.agreed_terms.product is ProductType.ORDER_LOAN:
                # Principal collected directly pays the overdue orders first; whatever the
                # event, the case stays overdue while one of them still owes.
                if reported.principal_fen:
                    orders_repo.apply_direct_repayment(session, case_id, reported.principal_fen)
                if target is FinancingState.REPAYING and orders_repo.case_still_overdue(
                    session, case_id
                ):
                    target = FinancingState.OVERDUE
            assert reported.event_date is not None
            if target is FinancingState.DEFAULTED and case.state is not FinancingState.DEFAULTED:
                self._blacklist.record_default_in(
                    session,
                    case=case,
                    outstanding_fen=ledger.principal_outstanding_fen,
                    default_date=reported.event_date,
                )
            elif target in CASE_ENDED:
                # Repaid, recovered or written off: an entry on this case starts its retention
                # clock (or, repaid, is lifted where the network's rules say so).
                self._blacklist.end_default_in(
                    session,
                    case_id=case_id,
                    ended_on=reported.event_date,
                    recovered=target is FinancingState.RECOVERED,
                )
            return move_case(
                session,
                case,
                to_state=target,
                now=now,
                actor=f"partner/{bank_id}",
                request_id=idem.request_id,
                loan_event=reported,
                evidence=kept,
                ledger_json=codec.dump_ledger(ledger),
                # What the bank has at stake now: its share of the principal still owed.
                bank_exposure_fen=split_by_bps(
                    ledger.principal_outstanding_fen, case.agreed_terms.bank_share_bps
                )[0],
            )

        detail = self._tx.idempotent(idem, replay=case_detail, act=act)
        self._blacklist.log.changed()
        return detail

    def portfolio_stats(self, *, bank_id: str) -> tuple[list[PortfolioStats], PortfolioStats]:
        """Per bank (only ``bank_id`` if given) and overall."""
        if bank_id and (problem := partner_id_problem(bank_id)) is not None:
            raise InvalidArgument.single("bank_id", problem)
        with self._db.reading() as session:
            if bank_id:
                require_partner(session, bank_id)
            figures = repo.case_figures(session, bank_id=bank_id)
        by_bank: dict[str, list[CaseFigures]] = {}
        for case in figures:
            by_bank.setdefault(case.bank_id, []).append(case)
        banks = [tally(bank, cases) for bank, cases in sorted(by_bank.items())]
        return banks, tally("", figures)

    def _check_policy(
        self, session: Session, partner: Partner, case: FinancingCase, terms: LoanTerms
    ) -> None:
        refusals = policy_refusals(
            terms,
            policy=partner.policy,
            offer=case.offer,
            committed_exposure_fen=repo.committed_exposure(session, partner.partner_id),
            subject=f"partners/{partner.partner_id}",
        )
        if refusals:
            raise FailedPrecondition(refusals)

    def get_financing_case(self, *, bank_id: str | None, case_id: str) -> CaseDetail:
        """One case with its history; ``bank_id`` None is the platform, which sees every case."""
        if not case_id:
            raise InvalidArgument.single("case_id", "required")
        with self._db.reading() as session:
            if bank_id is None:
                if repo.get_case(session, case_id) is None:
                    raise NotFound("financing case", case_id)
            else:
                load_bank_case(session, case_id, bank_id)
            return case_detail(session, case_id)

    def list_financing_cases(
        self,
        *,
        bank_id: str,
        page_size: int,
        page_token: str,
        state: FinancingState | None,
        platform_merchant_id: str,
    ) -> Page[FinancingCase]:
        """The bank's own cases, oldest first; histories are in GetFinancingCase."""
        size = paging.page_size(page_size)
        after = paging.decode_int_token(page_token, "cases") if page_token else 0
        with self._db.reading() as session:
            require_active_partner(session, bank_id)
            rows = repo.list_cases(
                session,
                bank_id=bank_id,
                after_seq=after,
                limit=size + 1,
                state=state,
                merchant_id=platform_merchant_id,
            )
        items = rows[:size]
        token = paging.encode_token("cases", items[-1].sequence) if len(rows) > size else ""
        return Page(items=items, next_page_token=token)

    def sweep_arrears(self, *, batch: int = 500) -> int:
        """Put scheduled loans past due into OVERDUE (on entering arrears and each new bucket)
        and declare DEFAULT at the bank's policy day count, listing the borrower as a bank's
        report would (``gateway.domain.arrears``). Returns how many cases it moved. Each case
        is rechecked under its locks, so replicas may sweep at once."""
        moved = 0
        after = 0
        while True:
            with self._db.reading() as session:
                cases = repo.open_loans(
                    session, states=IN_ARREARS_SCOPE, after_seq=after, limit=batch
                )
            for case in cases:
                if case.agreed_terms is None or case.agreed_terms.repayment_method is None:
                    continue
                try:
                    moved += self._tx.retrying(partial(self._arrears, case_id=case.case_id))
                except FailedPrecondition as refused:  # one case must not hold up the rest
                    log.warning("arrears sweep: case %s left as it is: %s", case.case_id, refused)
            if len(cases) < batch:
                break
            after = cases[-1].sequence
        if moved:
            self._blacklist.log.changed()
        return moved

    def _arrears(self, session: Session, *, case_id: str) -> int:
        now = self._clock()
        found = repo.get_case(session, case_id)
        assert found is not None
        # Partner row, then case: the order every dated write of the bank keeps.
        partner = require_partner(session, found.bank_id, for_update=True)
        case = load_bank_case(session, case_id, found.bank_id, for_update=True)
        terms, ledger = case.agreed_terms, case.ledger or Ledger()
        assert terms is not None
        closed = recon_repo.closed_through(session, case.bank_id)
        events = arrears_events(
            state=case.state,
            terms=terms,
            ledger=ledger,
            today=business_date(now),
            default_after_days=partner.policy.default_after_days,
            first_open_day=None if closed is None else closed + timedelta(days=1),
        )
        for event in events:
            target, ledger = apply_event(
                case_id=case_id, state=case.state, ledger=ledger, terms=terms, event=event
            )
            if target is FinancingState.DEFAULTED:
                assert event.event_date is not None
                self._blacklist.record_default_in(
                    session,
                    case=case,
                    outstanding_fen=ledger.principal_outstanding_fen,
                    default_date=event.event_date,
                )
            move_case(
                session,
                case,
                to_state=target,
                now=now,
                actor="gateway",
                request_id="",
                loan_event=event,
                ledger_json=codec.dump_ledger(ledger),
                bank_exposure_fen=split_by_bps(
                    ledger.principal_outstanding_fen, terms.bank_share_bps
                )[0],
            )
            moved = repo.get_case(session, case_id)
            assert moved is not None
            case = moved
        return 1 if events else 0

    def expire_due(self, *, batch: int = 500) -> int:
        """Move undecided cases past their validity to EXPIRED; returns how many moved.

        Safe in several replicas at once: each move is guarded on the state it read, and a
        case another sweeper (or a bank) moved first is simply left alone.
        """
        moved = 0
        while True:
            with self._db.writing() as session:
                now = self._clock()
                due = repo.due_for_expiry(session, states=EXPIRABLE, now=now, limit=batch)
                for case in due:
                    try:
                        with session.begin_nested():
                            repo.update_case(
                                session,
                                case,
                                to_state=FinancingState.EXPIRED,
                                at=now,
                                actor="gateway",
                                request_id="",
                            )
                        moved += 1
                    except repo.ConcurrentUpdate:
                        continue
            if len(due) < batch:
                return moved


log = logging.getLogger(__name__)

DECISION_STATES = {
    DecisionOutcome.APPROVE: FinancingState.APPROVED,
    DecisionOutcome.DECLINE: FinancingState.DECLINED,
    DecisionOutcome.COUNTER_OFFER: FinancingState.COUNTER_OFFERED,
}


def _agreed(terms: LoanTerms) -> dict[str, Any]:
    return {
        "agreed_terms_json": codec.dump_terms(terms),
        "bank_exposure_fen": terms.bank_amount_fen,
    }
