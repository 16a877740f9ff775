"""Daily reconciliation between a bank and the platform: for one business date, every case's
opening and closing principal, what was paid out, the interest accrued, what was collected and
by whom, each lender's share, and what each side owes the other.

Everything is replayed from the cases' recorded loan events (``ledger.replay``), so a
statement is the ledger's own arithmetic, day by day:

* opening: the events dated before the day, interest accrued up to the day's start;
  closing: plus the day's events, interest accrued through the day's end;
* interest and penalty interest accrued for the day: the growth of the rounded running total
  (so the days of a case add up to its total, and no rounding drifts);
* shares: each payout and each collection split by the case's funding split, the bank's share
  rounded down (``money.split_by_bps``), exactly as the ledger splits it;
* who owes whom: the bank pays every loan out and collects repayments and recoveries; the
  platform collects order settlements (SETTLEMENT_SWEEP). So the platform owes the bank its part
  of the payouts and the bank's share of what the platform collected, and the bank owes the
  platform the platform's share of what the bank collected. The day's net is the difference.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta

from gateway.domain.decision import LoanTerms
from gateway.domain.ledger import (
    COLLECTIONS,
    LoanEvent,
    LoanEventType,
    accrue,
    recorded_effect,
    replay,
)
from gateway.domain.money import split_by_bps
from gateway.domain.validation import text_problems
from gateway.errors import FieldViolation

DRAWINGS = frozenset({LoanEventType.DISBURSED, LoanEventType.DRAWDOWN, LoanEventType.ORDER_ADVANCE})


class NetPayer(enum.Enum):
    NONE = "none"
    PLATFORM = "platform"
    BANK = "bank"


@dataclass(frozen=True, slots=True, kw_only=True)
class StatementLine:
    case_id: str
    platform_merchant_id: str
    opening_principal_fen: int = 0
    drawn_fen: int = 0
    interest_accrued_fen: int = 0
    principal_collected_fen: int = 0
    interest_collected_fen: int = 0
    collected_by_bank_fen: int = 0
    collected_by_platform_fen: int = 0
    bank_share_collected_fen: int = 0
    platform_share_collected_fen: int = 0
    closing_principal_fen: int = 0
    bank_funded_fen: int = 0
    platform_funded_fen: int = 0
    platform_owes_bank_fen: int = 0
    bank_owes_platform_fen: int = 0
    penalty_accrued_fen: int = 0
    penalty_collected_fen: int = 0


AMOUNT_FIELDS = tuple(f.name for f in fields(StatementLine) if f.name.endswith("_fen"))


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseRecord:
    """What a statement needs of one case: its terms and its loan events, oldest first."""

    case_id: str
    platform_merchant_id: str
    terms: LoanTerms
    events: tuple[LoanEvent, ...]


def day_line(record: CaseRecord, day: date) -> StatementLine | None:
    """The case's line for ``day``, or None when it had neither a balance nor a movement."""
    terms = record.terms
    before = [e for e in record.events if e.event_date is not None and e.event_date < day]
    during = [e for e in record.events if e.event_date == day]
    opening = accrue(replay(before, terms, case_id=record.case_id), terms, day)
    closing = opening
    drawn = bank_funded = 0
    principal = interest = penalty = by_bank = by_platform = 0
    bank_share = platform_share = 0
    bank_share_of_platform_collected = platform_share_of_bank_collected = 0
    for event in during:
        closing = recorded_effect(closing, terms, event, case_id=record.case_id)
        if event.type in DRAWINGS:
            drawn += event.disbursed_fen
            bank_funded += split_by_bps(event.disbursed_fen, terms.bank_share_bps)[0]
        elif event.type in COLLECTIONS:
            total = event.principal_fen + event.interest_fen + event.penalty_fen
            bank, platform = split_by_bps(total, terms.bank_share_bps)
            principal += event.principal_fen
            interest += event.interest_fen
            penalty += event.penalty_fen
            bank_share += bank
            platform_share += platform
            if event.type is LoanEventType.SETTLEMENT_SWEEP:
                by_platform += total
                bank_share_of_platform_collected += bank
            else:
                by_bank += total
                platform_share_of_bank_collected += platform
    closing = accrue(closing, terms, day + timedelta(days=1))
    accrued = closing.interest_accrued_fen - opening.interest_accrued_fen
    penalty_accrued = closing.penalty_accrued_fen - opening.penalty_accrued_fen
    if not (
        during
        or accrued
        or penalty_accrued
        or opening.principal_outstanding_fen
        or closing.principal_outstanding_fen
    ):
        return None
    platform_funded = drawn - bank_funded
    return StatementLine(
        case_id=record.case_id,
        platform_merchant_id=record.platform_merchant_id,
        opening_principal_fen=opening.principal_outstanding_fen,
        drawn_fen=drawn,
        interest_accrued_fen=accrued,
        principal_collected_fen=principal,
        interest_collected_fen=interest,
        collected_by_bank_fen=by_bank,
        collected_by_platform_fen=by_platform,
        bank_share_collected_fen=bank_share,
        platform_share_collected_fen=platform_share,
        closing_principal_fen=closing.principal_outstanding_fen,
        bank_funded_fen=bank_funded,
        platform_funded_fen=platform_funded,
        # Each side keeps its own share of what it collected; only the other's crosses.
        platform_owes_bank_fen=platform_funded + bank_share_of_platform_collected,
        bank_owes_platform_fen=platform_share_of_bank_collected,
        penalty_accrued_fen=penalty_accrued,
        penalty_collected_fen=penalty,
    )


def totals(lines: Sequence[StatementLine]) -> StatementLine:
    return StatementLine(
        case_id="",
        platform_merchant_id="",
        **{name: sum(getattr(line, name) for line in lines) for name in AMOUNT_FIELDS},
    )


def net(total: StatementLine) -> tuple[NetPayer, int]:
    """Who pays the day's net, and how much."""
    difference = total.platform_owes_bank_fen - total.bank_owes_platform_fen
    if difference > 0:
        return NetPayer.PLATFORM, difference
    if difference < 0:
        return NetPayer.BANK, -difference
    return NetPayer.NONE, 0


def statement_lines(records: Sequence[CaseRecord], day: date) -> list[StatementLine]:
    """Every case's line for ``day``, by case id."""
    lines = (day_line(r, day) for r in sorted(records, key=lambda r: r.case_id))
    return [line for line in lines if line is not None]


# --- disputes -----------------------------------------------------------------------------
# A bank disputes one line of a statement it received; the platform or the operator resolves
# it. The signed statement never changes: an upheld dispute is corrected by the events booked
# on the next open day, and the dispute is the record of why.

DISPUTABLE_FIELDS = tuple(name.removesuffix("_fen") for name in AMOUNT_FIELDS)
MAX_DISPUTE_TEXT = 1000


class DisputeState(enum.Enum):
    OPEN = "open"
    UPHELD = "upheld"  # the line was wrong
    REJECTED = "rejected"  # the line stands


@dataclass(frozen=True, slots=True, kw_only=True)
class Dispute:
    dispute_id: str
    statement_id: str
    bank_id: str
    business_date: date
    case_id: str
    disputed_fields: tuple[str, ...]
    reason: str
    state: DisputeState
    filed_by: str
    filed_at: datetime
    resolution_note: str = ""
    resolved_by: str = ""
    resolved_at: datetime | None = None


def dispute_problems(
    *, case_id: str, disputed_fields: Sequence[str], reason: str
) -> list[FieldViolation]:
    """Shape rules of a filed dispute, by request field."""
    problems = []
    if not case_id:
        problems.append(FieldViolation("case_id", "required: the statement line disputed"))
    if not disputed_fields:
        problems.append(
            FieldViolation("disputed_fields", "required: at least one amount of the line")
        )
    for i, name in enumerate(disputed_fields):
        if name not in DISPUTABLE_FIELDS:
            problems.append(
                FieldViolation(
                    f"disputed_fields[{i}]",
                    f"{name!r} is not an amount of a line; one of {', '.join(DISPUTABLE_FIELDS)}",
                )
            )
    if len(set(disputed_fields)) != len(disputed_fields):
        problems.append(FieldViolation("disputed_fields", "must not repeat a field"))
    problems += text_problems("reason", reason, max_length=MAX_DISPUTE_TEXT)
    return problems


def resolution_problems(outcome: DisputeState | None, note: str) -> list[FieldViolation]:
    problems = []
    if outcome is None or outcome is DisputeState.OPEN:
        problems.append(FieldViolation("outcome", "required: UPHELD or REJECTED"))
    return problems + text_problems("note", note, max_length=MAX_DISPUTE_TEXT)
