"""Portfolio figures per bank and for the network, computed from the cases' tracked events.

Definitions (all integers): a case is *referred* once it exists; *decided* once its bank
decided; *approved* once terms were agreed (an approval or an accepted counter-offer);
*declined* when the bank declined; *disbursed* sums the principal paid out; *outstanding* sums
the principal still owed on open loans; *overdue* is the part of it on OVERDUE cases;
*defaulted* counts cases that reached DEFAULTED. The approval rate is approved / decided and the
non-performing ratio is the principal outstanding on DEFAULTED cases / all principal
outstanding, both in basis points rounded down.

Buckets: the principal outstanding on OVERDUE cases by days past due at their last OVERDUE
event: M1 1..30 days, M2 31..60, M3+ 61 or more. Vintages: the same figures per month of first
payout (``YYYY-MM``), oldest first, so a cohort's losses can be read as it ages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.domain.financing import FinancingState
from gateway.domain.ledger import Ledger
from gateway.domain.money import BPS_WHOLE

S = FinancingState
OPEN_LOANS = frozenset({S.DISBURSED, S.REPAYING, S.OVERDUE, S.DEFAULTED})
REACHED_DEFAULT = frozenset({S.DEFAULTED, S.RECOVERED, S.WRITTEN_OFF})
M1_LAST_DAY = 30
M2_LAST_DAY = 60


def bucket(days_overdue: int) -> int:
    """0 for M1 (up to 30 days past due), 1 for M2 (31..60), 2 for M3+."""
    return 0 if days_overdue <= M1_LAST_DAY else 1 if days_overdue <= M2_LAST_DAY else 2


@dataclass(frozen=True, slots=True, kw_only=True)
class Vintage:
    month: str  # YYYY-MM of first payout
    loans: int = 0
    disbursed_fen: int = 0
    outstanding_fen: int = 0
    overdue_fen: int = 0
    defaulted_count: int = 0
    defaulted_outstanding_fen: int = 0


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
    overdue_m1_fen: int = 0
    overdue_m2_fen: int = 0
    overdue_m3_plus_fen: int = 0
    vintages: tuple[Vintage, ...] = field(default=())

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
    buckets = [0, 0, 0]
    vintages: dict[str, dict[str, int]] = {}
    for case in cases:
        referred += 1
        decided += case.decided
        approved += case.agreed
        declined += case.state is S.DECLINED
        reached_default = case.state in REACHED_DEFAULT
        defaulted += reached_default
        ledger = case.ledger
        if ledger is None:
            continue
        disbursed += ledger.principal_disbursed_fen
        owed = ledger.principal_outstanding_fen if case.state in OPEN_LOANS else 0
        late = owed if case.state is S.OVERDUE else 0
        bad = owed if case.state is S.DEFAULTED else 0
        outstanding += owed
        overdue += late
        defaulted_outstanding += bad
        if late:
            buckets[bucket(ledger.days_overdue)] += late
        if ledger.disbursed_on is not None:
            v = vintages.setdefault(ledger.disbursed_on.strftime("%Y-%m"), dict.fromkeys(_V, 0))
            v["loans"] += 1
            v["disbursed_fen"] += ledger.principal_disbursed_fen
            v["outstanding_fen"] += owed
            v["overdue_fen"] += late
            v["defaulted_count"] += reached_default
            v["defaulted_outstanding_fen"] += bad
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
        overdue_m1_fen=buckets[0],
        overdue_m2_fen=buckets[1],
        overdue_m3_plus_fen=buckets[2],
        vintages=tuple(Vintage(month=m, **v) for m, v in sorted(vintages.items())),
    )


_V = (
    "loans",
    "disbursed_fen",
    "outstanding_fen",
    "overdue_fen",
    "defaulted_count",
    "defaulted_outstanding_fen",
)
