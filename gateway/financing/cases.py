"""Reading and moving one financing case: the steps every case-changing use case shares."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from gateway.domain.financing import (
    EXPIRABLE,
    FinancingState,
)
from gateway.domain.referral import (
    CaseEvent,
    FinancingCase,
)
from gateway.errors import (
    FailedPrecondition,
    NotFound,
)
from gateway.store import repository as repo


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseDetail:
    case: FinancingCase
    history: tuple[CaseEvent, ...]


def move_case(
    session: Session,
    case: FinancingCase,
    *,
    to_state: FinancingState,
    now: datetime,
    actor: str,
    request_id: str,
    **values: Any,
) -> tuple[str, CaseDetail]:
    """Record one step of a case and answer with the case as it now stands."""
    repo.update_case(
        session, case, to_state=to_state, at=now, actor=actor, request_id=request_id, **values
    )
    session.flush()
    return case.case_id, case_detail(session, case.case_id)


def refuse_if_expired(case: FinancingCase, now: datetime) -> None:
    """Nothing may be decided on a referral past its validity, even before the sweep runs."""
    if case.state in EXPIRABLE and case.expires_at <= now:
        raise FailedPrecondition.single(
            "REFERRAL_EXPIRED",
            f"financingCases/{case.case_id}",
            f"referral expired at {case.expires_at.isoformat()}",
        )


def load_bank_case(
    session: Session, case_id: str, bank_id: str, *, for_update: bool = False
) -> FinancingCase:
    case = repo.get_case(session, case_id, for_update=for_update)
    # Another bank's case is reported as absent, so ids cannot be probed.
    if case is None or case.bank_id != bank_id:
        raise NotFound("financing case", case_id)
    return case


def case_detail(session: Session, case_id: str) -> CaseDetail:
    case = repo.get_case(session, case_id)
    if case is None:
        raise NotFound("financing case", case_id)
    return CaseDetail(case=case, history=tuple(repo.case_history(session, case_id)))
