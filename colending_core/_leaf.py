"""The blacklist log's leaf: the exact bytes hashed into the tree for one change.

A leaf is canonical JSON (UTF-8, keys sorted, no insignificant whitespace, integers only) of::

    {"change": "added" | "appealed" | "appeal_upheld" | "removed" | "expired"
               | "retention_set",
     "entry": {
        "appeal": null | {"appeal_id", "deadline", "filed_at", "filed_by", "outcome":
                          "" | "upheld" | "removed", "resolved_at": null | time,
                          "resolved_by"},
        "default_date": "YYYY-MM-DD", "entry_id", "evidence_case_id", "expires_at": null | time,
        "identifier_kind": "uscc" | "rid", "outstanding": {"amount_minor": int,
        "currency": "CNY"}, "pseudonym": lowercase hex, "reason": "default_overdue" | "fraud"
        | "misuse_of_funds" | "absconded", "reported_at": time, "reporter": bank id,
        "status": "active" | "under_appeal" | "removed" | "expired"},
     "log_index": int, "logged_at": time, "v": 1}

where a time is RFC 3339 UTC with microseconds (``2026-11-28T11:25:12.123456Z``). The entry is
its state *after* the change, so the last leaf of an entry is its current state. Free text
(appeal grounds, resolution reasons) is kept out of the leaf: it may name people, and the log
can never forget. The gateway encodes with :func:`encode_leaf`; a bank decodes with
:func:`decode_leaf` and needs nothing else to rebuild the list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from colending_core._errors import MalformedEnvelopeError

__all__ = [
    "CHANGE_TYPES",
    "ENTRY_STATUSES",
    "IN_FORCE",
    "LEAF_VERSION",
    "LeafAppeal",
    "LeafChange",
    "LeafEntry",
    "MalformedLeafError",
    "decode_leaf",
    "encode_leaf",
]

LEAF_VERSION = 1
CHANGE_TYPES = frozenset(
    {"added", "appealed", "appeal_upheld", "removed", "expired", "retention_set"}
)
ENTRY_STATUSES = frozenset({"active", "under_appeal", "removed", "expired"})
IN_FORCE = frozenset({"active", "under_appeal"})
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class MalformedLeafError(MalformedEnvelopeError):
    """A leaf is not in the documented form: do not build on it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LeafAppeal:
    appeal_id: str
    filed_by: str
    filed_at: datetime
    deadline: datetime
    outcome: str = ""  # "", "upheld" or "removed"
    resolved_at: datetime | None = None
    resolved_by: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class LeafEntry:
    entry_id: str
    pseudonym: bytes
    identifier_kind: str  # "uscc" or "rid"
    reporter: str
    reason: str
    outstanding_minor: int
    currency: str
    default_date: date
    evidence_case_id: str
    reported_at: datetime
    expires_at: datetime | None
    status: str
    appeal: LeafAppeal | None = None

    @property
    def in_force(self) -> bool:
        return self.status in IN_FORCE


@dataclass(frozen=True, slots=True, kw_only=True)
class LeafChange:
    log_index: int
    change: str
    logged_at: datetime
    entry: LeafEntry


def encode_leaf(change: LeafChange) -> bytes:
    """Canonical JSON bytes of ``change`` (what the gateway appends to the log)."""
    entry = change.entry
    appeal = entry.appeal
    document = {
        "v": LEAF_VERSION,
        "log_index": change.log_index,
        "change": change.change,
        "logged_at": _time(change.logged_at),
        "entry": {
            "entry_id": entry.entry_id,
            "pseudonym": entry.pseudonym.hex(),
            "identifier_kind": entry.identifier_kind,
            "reporter": entry.reporter,
            "reason": entry.reason,
            "outstanding": {"amount_minor": entry.outstanding_minor, "currency": entry.currency},
            "default_date": entry.default_date.isoformat(),
            "evidence_case_id": entry.evidence_case_id,
            "reported_at": _time(entry.reported_at),
            "expires_at": None if entry.expires_at is None else _time(entry.expires_at),
            "status": entry.status,
            "appeal": None
            if appeal is None
            else {
                "appeal_id": appeal.appeal_id,
                "filed_by": appeal.filed_by,
                "filed_at": _time(appeal.filed_at),
                "deadline": _time(appeal.deadline),
                "outcome": appeal.outcome,
                "resolved_at": None if appeal.resolved_at is None else _time(appeal.resolved_at),
                "resolved_by": appeal.resolved_by,
            },
        },
    }
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def decode_leaf(leaf: bytes) -> LeafChange:
    """Parse a leaf; :class:`MalformedLeafError` names what is wrong."""
    try:
        document = json.loads(leaf.decode("utf-8"))
        if document.get("v") != LEAF_VERSION:
            raise MalformedLeafError(f"leaf version {document.get('v')!r} is not {LEAF_VERSION}")
        change = document["change"]
        if change not in CHANGE_TYPES:
            raise MalformedLeafError(f"leaf change {change!r} is not one of {sorted(CHANGE_TYPES)}")
        e = document["entry"]
        if e["status"] not in ENTRY_STATUSES:
            raise MalformedLeafError(f"leaf status {e['status']!r} is unknown")
        a = e["appeal"]
        entry = LeafEntry(
            entry_id=_str(e["entry_id"]),
            pseudonym=bytes.fromhex(_str(e["pseudonym"])),
            identifier_kind=_str(e["identifier_kind"]),
            reporter=_str(e["reporter"]),
            reason=_str(e["reason"]),
            outstanding_minor=_int(e["outstanding"]["amount_minor"]),
            currency=_str(e["outstanding"]["currency"]),
            default_date=date.fromisoformat(_str(e["default_date"])),
            evidence_case_id=_str(e["evidence_case_id"]),
            reported_at=_parse_time(e["reported_at"]),
            expires_at=None if e["expires_at"] is None else _parse_time(e["expires_at"]),
            status=e["status"],
            appeal=None
            if a is None
            else LeafAppeal(
                appeal_id=_str(a["appeal_id"]),
                filed_by=_str(a["filed_by"]),
                filed_at=_parse_time(a["filed_at"]),
                deadline=_parse_time(a["deadline"]),
                outcome=_str(a["outcome"]),
                resolved_at=None if a["resolved_at"] is None else _parse_time(a["resolved_at"]),
                resolved_by=_str(a["resolved_by"]),
            ),
        )
        return LeafChange(
            log_index=_int(document["log_index"]),
            change=change,
            logged_at=_parse_time(document["logged_at"]),
            entry=entry,
        )
    except MalformedLeafError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise MalformedLeafError(f"leaf is not a blacklist change: {error}") from None


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def _parse_time(value: Any) -> datetime:
    return datetime.strptime(_str(value), _TIME_FORMAT).replace(tzinfo=UTC)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value
