"""The blacklist's rules: entries, appeals, expiry, and the leaf each change appends to the log.

An entry names a borrower only by pseudonym (see :mod:`colending_core._pseudonym`). Its life:

* **reported** ``ACTIVE``. Retention follows the credit reporting regulation (2013): a negative
  record is kept 5 years from the *end* of the default. While the evidence case is still in
  default the end is unknown, so ``expires_at`` is open; when the case ends (recovered or
  written off) it becomes that day plus the retention. A report without a case has no end the
  gateway can see, so its default date stands for the end.
* **appealed** ``UNDER_APPEAL`` (still in force, flagged) until the reporter or the operator
  answers, within a deadline (default 20 days, the regulation's answer time). An appeal nobody
  answers in time is decided for the borrower: the entry is removed.
* **removed** (appeal granted, or the case recovered where the network's rules say so) or
  **expired**: out of force, still in the log for good.

Every change is one leaf (:mod:`colending_core._leaf`); this module builds it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, tzinfo

from colending_core import IdentifierKind, LeafAppeal, LeafChange, LeafEntry, encode_leaf
from gateway.domain import validation
from gateway.errors import FailedPrecondition, FieldViolation

MAX_BATCH = 1000
MAX_TEXT = 2000
# 10^15 fen is RMB 10 trillion: far above any loan, far below 2**63.
MAX_OUTSTANDING_FEN = 10**15
EARLIEST_DEFAULT = date(1990, 1, 1)


class ListingReason(enum.Enum):
    DEFAULT_OVERDUE = "default_overdue"
    FRAUD = "fraud"
    MISUSE_OF_FUNDS = "misuse_of_funds"
    ABSCONDED = "absconded"


class EntryStatus(enum.Enum):
    ACTIVE = "active"
    UNDER_APPEAL = "under_appeal"
    REMOVED = "removed"
    EXPIRED = "expired"


IN_FORCE = frozenset({EntryStatus.ACTIVE, EntryStatus.UNDER_APPEAL})


class ChangeType(enum.Enum):
    ADDED = "added"
    APPEALED = "appealed"
    APPEAL_UPHELD = "appeal_upheld"
    REMOVED = "removed"
    EXPIRED = "expired"
    RETENTION_SET = "retention_set"  # the default ended: the entry now has an expiry


class AppealOutcome(enum.Enum):
    UPHELD = "upheld"  # the entry stands
    REMOVED = "removed"  # the borrower wins: the entry is removed


@dataclass(frozen=True, slots=True, kw_only=True)
class BlacklistRules:
    """The network's rules; every bank is held to the same ones."""

    retention_years: int = 5
    appeal_days: int = 20
    # A recovered default keeps its entry until expiry (the regulation's default); a network may
    # choose to lift it on repayment instead.
    remove_on_recovery: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Appeal:
    appeal_id: str
    filed_by: str
    grounds: str
    filed_at: datetime
    deadline: datetime
    outcome: AppealOutcome | None = None
    resolved_at: datetime | None = None
    resolved_by: str = ""
    resolution_reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BlacklistEntry:
    entry_id: str
    pseudonym: bytes
    identifier_kind: IdentifierKind
    reporter_bank_id: str
    reason: ListingReason
    outstanding_fen: int
    default_date: date
    evidence_case_id: str
    reported_at: datetime
    expires_at: datetime | None
    status: EntryStatus
    appeal: Appeal | None = None
    removal_reason: str = ""

    @property
    def in_force(self) -> bool:
        return self.status in IN_FORCE


@dataclass(frozen=True, slots=True, kw_only=True)
class BlacklistChange:
    log_index: int
    change_type: ChangeType
    entry: BlacklistEntry
    logged_at: datetime
    leaf: bytes


def report_problems(
    *, outstanding_fen: int, default_date: date | None, today: date
) -> list[FieldViolation]:
    problems = []
    if not 0 <= outstanding_fen <= MAX_OUTSTANDING_FEN:
        problems.append(
            FieldViolation(
                "outstanding.amount_minor", f"must be between 0 and {MAX_OUTSTANDING_FEN} fen"
            )
        )
    if default_date is None:
        problems.append(FieldViolation("default_date", "required"))
    elif not EARLIEST_DEFAULT <= default_date <= today:
        problems.append(
            FieldViolation(
                "default_date",
                f"must be between {EARLIEST_DEFAULT.isoformat()} and today ({today.isoformat()})",
            )
        )
    return problems


def text_problems(field: str, value: str) -> list[FieldViolation]:
    return validation.text_problems(field, value, max_length=MAX_TEXT)


def retained_until(end: date, rules: BlacklistRules, tz: tzinfo) -> datetime:
    """Midnight (business time) at the start of the day ``retention_years`` after ``end``."""
    try:
        last = end.replace(year=end.year + rules.retention_years)
    except ValueError:  # 29 February in a year without one
        last = end.replace(year=end.year + rules.retention_years, day=28)
    return datetime.combine(last, time(), tzinfo=tz)


def new_entry(
    *,
    entry_id: str,
    pseudonym: bytes,
    identifier_kind: IdentifierKind,
    reporter_bank_id: str,
    reason: ListingReason,
    outstanding_fen: int,
    default_date: date,
    evidence_case_id: str,
    default_ended_on: date | None,
    now: datetime,
    rules: BlacklistRules,
    tz: tzinfo,
) -> BlacklistEntry:
    """A new ACTIVE entry; ``default_ended_on`` is when the default ended, if it has."""
    return BlacklistEntry(
        entry_id=entry_id,
        pseudonym=pseudonym,
        identifier_kind=identifier_kind,
        reporter_bank_id=reporter_bank_id,
        reason=reason,
        outstanding_fen=outstanding_fen,
        default_date=default_date,
        evidence_case_id=evidence_case_id,
        reported_at=now,
        expires_at=None
        if default_ended_on is None
        else retained_until(default_ended_on, rules, tz),
        status=EntryStatus.ACTIVE,
    )


def file_appeal(
    entry: BlacklistEntry,
    *,
    appeal_id: str,
    filed_by: str,
    grounds: str,
    now: datetime,
    rules: BlacklistRules,
) -> BlacklistEntry:
    if entry.status is not EntryStatus.ACTIVE:
        detail = (
            "it is already under appeal"
            if entry.status is EntryStatus.UNDER_APPEAL
            else f"it is {entry.status.name}"
        )
        raise FailedPrecondition.single(
            "ENTRY_NOT_APPEALABLE",
            f"blacklistEntries/{entry.entry_id}",
            f"only an ACTIVE entry can be appealed; {detail}",
        )
    appeal = Appeal(
        appeal_id=appeal_id,
        filed_by=filed_by,
        grounds=grounds,
        filed_at=now,
        deadline=now + timedelta(days=rules.appeal_days),
    )
    return replace(entry, status=EntryStatus.UNDER_APPEAL, appeal=appeal)


def resolve_appeal(
    entry: BlacklistEntry,
    *,
    outcome: AppealOutcome,
    resolved_by: str,
    reason: str,
    now: datetime,
) -> tuple[ChangeType, BlacklistEntry]:
    if entry.status is not EntryStatus.UNDER_APPEAL or entry.appeal is None:
        raise FailedPrecondition.single(
            "NO_OPEN_APPEAL",
            f"blacklistEntries/{entry.entry_id}",
            f"entry is {entry.status.name}; there is no open appeal to resolve",
        )
    appeal = replace(
        entry.appeal,
        outcome=outcome,
        resolved_at=now,
        resolved_by=resolved_by,
        resolution_reason=reason,
    )
    if outcome is AppealOutcome.UPHELD:
        return ChangeType.APPEAL_UPHELD, replace(entry, status=EntryStatus.ACTIVE, appeal=appeal)
    return ChangeType.REMOVED, replace(
        entry, status=EntryStatus.REMOVED, appeal=appeal, removal_reason=f"appeal granted: {reason}"
    )


LAPSED_APPEAL_REASON = "appeal not answered by its deadline"


def lapse_appeal(entry: BlacklistEntry, *, now: datetime) -> BlacklistEntry:
    """An unanswered appeal past its deadline is decided for the borrower."""
    _, removed = resolve_appeal(
        entry,
        outcome=AppealOutcome.REMOVED,
        resolved_by="gateway",
        reason=LAPSED_APPEAL_REASON,
        now=now,
    )
    return removed


def end_default(
    entry: BlacklistEntry,
    *,
    ended_on: date,
    recovered: bool,
    rules: BlacklistRules,
    tz: tzinfo,
) -> tuple[ChangeType, BlacklistEntry] | None:
    """The evidence case's default ended; the change to log, or None if nothing changes."""
    if not entry.in_force:
        return None
    # Only a default is cured by repayment: fraud or misuse stays listed until it expires.
    if recovered and rules.remove_on_recovery and entry.reason is ListingReason.DEFAULT_OVERDUE:
        return ChangeType.REMOVED, replace(
            entry, status=EntryStatus.REMOVED, removal_reason="the defaulted loan was recovered"
        )
    expires_at = retained_until(ended_on, rules, tz)
    if entry.expires_at == expires_at:
        return None
    return ChangeType.RETENTION_SET, replace(entry, expires_at=expires_at)


def expire(entry: BlacklistEntry) -> BlacklistEntry:
    return replace(entry, status=EntryStatus.EXPIRED)


def sweep_step(entry: BlacklistEntry, *, now: datetime) -> tuple[ChangeType, BlacklistEntry] | None:
    """What the sweep does to ``entry`` now: whichever of its deadlines came first, if any."""
    if not entry.in_force:
        return None
    expiry = entry.expires_at
    deadline = (
        entry.appeal.deadline if entry.status is EntryStatus.UNDER_APPEAL and entry.appeal else None
    )
    if deadline is not None and deadline <= now and (expiry is None or deadline <= expiry):
        return ChangeType.REMOVED, lapse_appeal(entry, now=now)
    if expiry is not None and expiry <= now:
        return ChangeType.EXPIRED, expire(entry)
    return None


def entry_from_leaf(leaf: LeafEntry) -> BlacklistEntry:
    """The entry a leaf states (free text, which leaves never hold, is empty)."""
    appeal = leaf.appeal
    return BlacklistEntry(
        entry_id=leaf.entry_id,
        pseudonym=leaf.pseudonym,
        identifier_kind=IdentifierKind(leaf.identifier_kind),
        reporter_bank_id=leaf.reporter,
        reason=ListingReason(leaf.reason),
        outstanding_fen=leaf.outstanding_minor,
        default_date=leaf.default_date,
        evidence_case_id=leaf.evidence_case_id,
        reported_at=leaf.reported_at,
        expires_at=leaf.expires_at,
        status=EntryStatus(leaf.status),
        appeal=None
        if appeal is None
        else Appeal(
            appeal_id=appeal.appeal_id,
            filed_by=appeal.filed_by,
            grounds="",
            filed_at=appeal.filed_at,
            deadline=appeal.deadline,
            outcome=AppealOutcome(appeal.outcome) if appeal.outcome else None,
            resolved_at=appeal.resolved_at,
            resolved_by=appeal.resolved_by,
        ),
    )


def leaf_of(
    *, log_index: int, change_type: ChangeType, entry: BlacklistEntry, logged_at: datetime
) -> bytes:
    """The exact bytes this change appends to the log."""
    appeal = entry.appeal
    return encode_leaf(
        LeafChange(
            log_index=log_index,
            change=change_type.value,
            logged_at=logged_at,
            entry=LeafEntry(
                entry_id=entry.entry_id,
                pseudonym=entry.pseudonym,
                identifier_kind=entry.identifier_kind.value,
                reporter=entry.reporter_bank_id,
                reason=entry.reason.value,
                outstanding_minor=entry.outstanding_fen,
                currency="CNY",
                default_date=entry.default_date,
                evidence_case_id=entry.evidence_case_id,
                reported_at=entry.reported_at,
                expires_at=entry.expires_at,
                status=entry.status.value,
                appeal=None
                if appeal is None
                else LeafAppeal(
                    appeal_id=appeal.appeal_id,
                    filed_by=appeal.filed_by,
                    filed_at=appeal.filed_at,
                    deadline=appeal.deadline,
                    outcome="" if appeal.outcome is None else appeal.outcome.value,
                    resolved_at=appeal.resolved_at,
                    resolved_by=appeal.resolved_by,
                ),
            ),
        )
    )
