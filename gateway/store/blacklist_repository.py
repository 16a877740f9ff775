"""Blacklist entries, their log, and the platform's enforcement feed, in the caller's session.

Every change to an entry goes through :func:`log_change`, which writes the entry's new state,
the leaf, and the Merkle nodes in one transaction: the list and its log cannot disagree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, update
from sqlmodel import Session, col, select

from colending_core import IdentifierKind
from gateway.domain.blacklist import (
    IN_FORCE,
    Appeal,
    AppealOutcome,
    BlacklistChange,
    BlacklistEntry,
    ChangeType,
    EntryStatus,
    ListingReason,
    leaf_of,
)
from gateway.signing.merkle import MerkleLog
from gateway.store.log_store import DatabaseHashStore
from gateway.store.tables import (
    BlacklistChangeRow,
    BlacklistEntryRow,
    EnforcementEventRow,
    FinancingCaseRow,
)

_IN_FORCE_VALUES = [s.value for s in IN_FORCE]


class ConcurrentEntryUpdate(Exception):
    """Another transaction changed the entry first; the caller retries from a fresh read."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedChange:
    """A stored leaf, as the sync stream sends it."""

    log_index: int
    entry_id: str
    change_type: ChangeType
    leaf: bytes
    logged_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class EnforcementEvent:
    sequence: int
    event_id: str
    platform_merchant_id: str
    action: str  # "restrict_store" or "lift_restriction"
    reason: str
    blacklist_entry_id: str
    case_id: str
    created_at: datetime


# --- entries ---------------------------------------------------------------------------------


def get_entry(
    session: Session, entry_id: str, *, for_update: bool = False
) -> BlacklistEntry | None:
    query = select(BlacklistEntryRow).where(BlacklistEntryRow.entry_id == entry_id)
    if for_update:
        query = query.with_for_update()
    row = session.exec(query).first()
    return None if row is None else _entry_from_row(row)


# Built once: composing this statement cost more than running it (an indexed lookup).
_IN_FORCE_BY_PSEUDONYM = (
    select(BlacklistEntryRow)
    .where(
        col(BlacklistEntryRow.pseudonym).in_(bindparam("wanted", expanding=True)),
        col(BlacklistEntryRow.status).in_(_IN_FORCE_VALUES),
    )
    .order_by(col(BlacklistEntryRow.reported_at), col(BlacklistEntryRow.entry_id))
)


def in_force_by_pseudonym(
    session: Session, pseudonyms: Sequence[bytes]
) -> dict[bytes, list[BlacklistEntry]]:
    """Entries in force for each pseudonym asked (absent keys have none), oldest first."""
    found: dict[bytes, list[BlacklistEntry]] = {}
    wanted = list(dict.fromkeys(pseudonyms))
    # Chunked so a 1,000-borrower batch stays under every backend's bound-parameter limit.
    for start in range(0, len(wanted), 500):
        rows = session.exec(_IN_FORCE_BY_PSEUDONYM, params={"wanted": wanted[start : start + 500]})
        for row in rows:
            found.setdefault(row.pseudonym, []).append(_entry_from_row(row))
    return found


# The in-memory index of listed pseudonyms (gateway.blacklist.index) loads and follows these.
_LISTED = select(BlacklistEntryRow.pseudonym).where(
    col(BlacklistEntryRow.status).in_(_IN_FORCE_VALUES)
)
_LISTED_AMONG = _LISTED.where(
    col(BlacklistEntryRow.pseudonym).in_(bindparam("wanted", expanding=True))
)
_LOGGED_FROM = (
    select(BlacklistEntryRow.pseudonym)
    .join(BlacklistChangeRow, col(BlacklistChangeRow.entry_id) == col(BlacklistEntryRow.entry_id))
    .where(col(BlacklistChangeRow.log_index) >= bindparam("start"))
    .distinct()
)


def listed_pseudonyms(session: Session) -> set[bytes]:
    """Every pseudonym with an entry in force (Core rows: a million of them load in seconds)."""
    return {row[0] for row in session.connection().execute(_LISTED)}


def pseudonyms_logged_from(session: Session, start: int) -> set[bytes]:
    """The pseudonyms of the entries changed at log index ``start`` or later."""
    return {row[0] for row in session.connection().execute(_LOGGED_FROM, {"start": start})}


def listed_among(session: Session, pseudonyms: Sequence[bytes]) -> set[bytes]:
    """Those of ``pseudonyms`` with an entry in force now."""
    wanted = list(pseudonyms)
    listed: set[bytes] = set()
    for start in range(0, len(wanted), 500):
        rows = session.connection().execute(_LISTED_AMONG, {"wanted": wanted[start : start + 500]})
        listed.update(row[0] for row in rows)
    return listed


def in_force_for_case(session: Session, case_id: str) -> BlacklistEntry | None:
    row = session.exec(
        select(BlacklistEntryRow).where(
            BlacklistEntryRow.evidence_case_id == case_id,
            col(BlacklistEntryRow.status).in_(_IN_FORCE_VALUES),
        )
    ).first()
    return None if row is None else _entry_from_row(row)


def due_to_expire(session: Session, *, now: datetime, limit: int) -> list[BlacklistEntry]:
    rows = session.exec(
        select(BlacklistEntryRow)
        .where(
            col(BlacklistEntryRow.status).in_(_IN_FORCE_VALUES),
            col(BlacklistEntryRow.expires_at).is_not(None),
            col(BlacklistEntryRow.expires_at) <= now,
        )
        .order_by(col(BlacklistEntryRow.expires_at))
        .limit(limit)
    )
    return [_entry_from_row(r) for r in rows]


def appeals_due(session: Session, *, now: datetime, limit: int) -> list[BlacklistEntry]:
    """Entries under appeal whose deadline has passed, the longest overdue first."""
    rows = session.exec(
        select(BlacklistEntryRow)
        .where(
            BlacklistEntryRow.status == EntryStatus.UNDER_APPEAL.value,
            col(BlacklistEntryRow.appeal_deadline) <= now,
        )
        .order_by(col(BlacklistEntryRow.appeal_deadline))
        .limit(limit)
    )
    return [_entry_from_row(r) for r in rows]


def log_change(
    session: Session,
    *,
    change_type: ChangeType,
    entry: BlacklistEntry,
    previous: BlacklistEntry | None,
    now: datetime,
) -> BlacklistChange:
    """Store ``entry`` (new, or replacing ``previous``) and append its leaf to the log."""
    if previous is None:
        session.add(BlacklistEntryRow(**_entry_values(entry), updated_at=now))
    else:
        # Callers read the entry FOR UPDATE; the guard on the status read is a second line, so
        # two racing changes can never both be logged.
        result = session.execute(
            update(BlacklistEntryRow)
            .where(
                col(BlacklistEntryRow.entry_id) == entry.entry_id,
                col(BlacklistEntryRow.status) == previous.status.value,
            )
            .values(**_entry_values(entry), updated_at=now)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ConcurrentEntryUpdate(entry.entry_id)
    store = DatabaseHashStore(session=session)
    store.lock_for_append()
    log_index = store.size()
    leaf = leaf_of(log_index=log_index, change_type=change_type, entry=entry, logged_at=now)
    appended = MerkleLog(store=store).append(leaf)
    assert appended == log_index, "the append lock must keep the log size still"
    session.add(
        BlacklistChangeRow(
            log_index=log_index,
            entry_id=entry.entry_id,
            change_type=change_type.value,
            leaf=leaf,
            logged_at=now,
        )
    )
    session.flush()
    return BlacklistChange(
        log_index=log_index, change_type=change_type, entry=entry, logged_at=now, leaf=leaf
    )


# --- the log ---------------------------------------------------------------------------------


def changes_from(session: Session, *, start: int, limit: int) -> list[LoggedChange]:
    rows = session.exec(
        select(BlacklistChangeRow)
        .where(col(BlacklistChangeRow.log_index) >= start)
        .order_by(col(BlacklistChangeRow.log_index))
        .limit(limit)
    )
    return [
        LoggedChange(
            log_index=r.log_index,
            entry_id=r.entry_id,
            change_type=ChangeType(r.change_type),
            leaf=r.leaf,
            logged_at=r.logged_at,
        )
        for r in rows
    ]


def leaf_at(session: Session, log_index: int) -> bytes | None:
    row = session.get(BlacklistChangeRow, log_index)
    return None if row is None else row.leaf


# --- enforcement -----------------------------------------------------------------------------


def merchants_with_pseudonym(session: Session, pseudonym: bytes) -> list[str]:
    rows = session.exec(
        select(FinancingCaseRow.platform_merchant_id)
        .where(FinancingCaseRow.merchant_pseudonym == pseudonym)
        .distinct()
    )
    return sorted(rows)


def add_enforcement(
    session: Session,
    *,
    event_id: str,
    platform_merchant_id: str,
    action: str,
    reason: str,
    blacklist_entry_id: str,
    case_id: str,
    now: datetime,
) -> None:
    session.add(
        EnforcementEventRow(
            event_id=event_id,
            platform_merchant_id=platform_merchant_id,
            action=action,
            reason=reason[:300],
            blacklist_entry_id=blacklist_entry_id,
            case_id=case_id,
            created_at=now,
        )
    )


def enforcement_after(
    session: Session, *, after: int, limit: int, platform_merchant_id: str = ""
) -> list[EnforcementEvent]:
    query = select(EnforcementEventRow).where(col(EnforcementEventRow.seq) > after)
    if platform_merchant_id:
        query = query.where(EnforcementEventRow.platform_merchant_id == platform_merchant_id)
    rows = session.exec(query.order_by(col(EnforcementEventRow.seq)).limit(limit))
    out = []
    for r in rows:
        assert r.seq is not None
        out.append(
            EnforcementEvent(
                sequence=r.seq,
                event_id=r.event_id,
                platform_merchant_id=r.platform_merchant_id,
                action=r.action,
                reason=r.reason,
                blacklist_entry_id=r.blacklist_entry_id,
                case_id=r.case_id,
                created_at=r.created_at,
            )
        )
    return out


# --- rows ------------------------------------------------------------------------------------


def _entry_values(entry: BlacklistEntry) -> dict[str, Any]:
    return {
        "entry_id": entry.entry_id,
        "pseudonym": entry.pseudonym,
        "identifier_kind": entry.identifier_kind.value,
        "reporter_bank_id": entry.reporter_bank_id,
        "reason": entry.reason.value,
        "outstanding_fen": entry.outstanding_fen,
        "default_date": entry.default_date,
        "evidence_case_id": entry.evidence_case_id,
        "reported_at": entry.reported_at,
        "expires_at": entry.expires_at,
        "status": entry.status.value,
        "appeal_json": None if entry.appeal is None else _dump_appeal(entry.appeal),
        "appeal_deadline": entry.appeal.deadline
        if entry.appeal is not None and entry.status is EntryStatus.UNDER_APPEAL
        else None,
        "removal_reason": entry.removal_reason,
    }


def _entry_from_row(row: BlacklistEntryRow) -> BlacklistEntry:
    return BlacklistEntry(
        entry_id=row.entry_id,
        pseudonym=row.pseudonym,
        identifier_kind=IdentifierKind(row.identifier_kind),
        reporter_bank_id=row.reporter_bank_id,
        reason=ListingReason(row.reason),
        outstanding_fen=row.outstanding_fen,
        default_date=row.default_date,
        evidence_case_id=row.evidence_case_id,
        reported_at=row.reported_at,
        expires_at=row.expires_at,
        status=EntryStatus(row.status),
        appeal=None if row.appeal_json is None else _load_appeal(row.appeal_json),
        removal_reason=row.removal_reason,
    )


def _dump_appeal(appeal: Appeal) -> str:
    return json.dumps(
        {
            "appeal_id": appeal.appeal_id,
            "filed_by": appeal.filed_by,
            "grounds": appeal.grounds,
            "filed_at": appeal.filed_at.isoformat(),
            "deadline": appeal.deadline.isoformat(),
            "outcome": None if appeal.outcome is None else appeal.outcome.value,
            "resolved_at": None if appeal.resolved_at is None else appeal.resolved_at.isoformat(),
            "resolved_by": appeal.resolved_by,
            "resolution_reason": appeal.resolution_reason,
        }
    )


def _load_appeal(text: str) -> Appeal:
    d = json.loads(text)
    return Appeal(
        appeal_id=d["appeal_id"],
        filed_by=d["filed_by"],
        grounds=d["grounds"],
        filed_at=_utc(d["filed_at"]),
        deadline=_utc(d["deadline"]),
        outcome=None if d["outcome"] is None else AppealOutcome(d["outcome"]),
        resolved_at=None if d["resolved_at"] is None else _utc(d["resolved_at"]),
        resolved_by=d["resolved_by"],
        resolution_reason=d["resolution_reason"],
    )


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)
