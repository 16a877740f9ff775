"""Portfolio figures per bank and for the network, computed from the cases' tracked events.

Definitions (all integers): a case is *referred* once it exists; *decided* once its bank
decided; *approved* once terms were agreed (an approval or an accepted counter-offer);
*declined* when the bank declined; *disbursed* sums the principal paid out; *outstanding* sums
the principal still owed on open loans; *overdue* is the part of it on OVERDUE cases;
*defaulted* counts cases that reached DEFAULTED. The approval rate is approved / decided and the
non-performing ratio is the principal outstanding on DEFAULTED cases / all principal
outstanding, both in basis points rounded down.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.domain.financing import FinancingState
from gateway.domain.ledger import Ledger
from gateway.domain.money import BPS_WHOLE

S = FinancingState
OPEN_LOANS = frozenset({S.DISBURSED, S.REPAYING, S.OVERDUE, S.DEFAULTED})
REACHED_DEFAULT = frozenset({S.DEFAULTED, S.RECOVERED, S.WRITTEN_OFF})


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseFigures:
    """What the statistics need from one case."""

    bank_id: str
    state: FinancingState
    decided: bool
    agreed: bool
    ledger: Ledger | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PortfolioStats:
    bank_id: str  # empty for the whole network
    referred_count: int = 0
    decided_count: int = 0
    approved_count: int = 0
    declined_count: int = 0
    disbursed_fen: int = 0
    outstanding_fen: int = 0
    overdue_fen: int = 0
    defaulted_count: int = 0
    defaulted_outstanding_fen: int = 0

    @property
    def approval_rate_bps(self) -> int:
        return self.approved_count * BPS_WHOLE // self.decided_count if self.decided_count else 0

    @property
    def non_performing_ratio_bps(self) -> int:
        if not self.outstanding_fen:
            return 0
        return self.defaulted_outstanding_fen * BPS_WHOLE // self.outstanding_fen


def tally(bank_id: str, cases: Iterable[CaseFigures]) -> PortfolioStats:
    referred = decided = approved = declined = defaulted = 0
    disbursed = outstanding = overdue = defaulted_outstanding = 0
    for case in cases:
        referred += 1
        decided += case.decided
        approved += case.agreed
        declined += case.state is S.DECLINED
        defaulted += case.state in REACHED_DEFAULT
        if case.ledger is not None:
            disbursed += case.ledger.principal_disbursed_fen
            if case.state in OPEN_LOANS:
                owed = case.ledger.principal_outstanding_fen
                outstanding += owed
                overdue += owed if case.state is S.OVERDUE else 0
                defaulted_outstanding += owed if case.state is S.DEFAULTED else 0
    return PortfolioStats(
        bank_id=bank_id,
        referred_count=referred,
        decided_count=decided,
        approved_count=approved,
        declined_count=declined,
        disbursed_fen=disbursed,
        outstanding_fen=outstanding,
        overdue_fen=overdue,
        defaulted_count=defaulted,
        defaulted_outstanding_fen=defaulted_outstanding,
    )
