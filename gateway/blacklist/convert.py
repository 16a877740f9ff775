"""Protobuf <-> domain conversion of borrowers, blacklist entries, logged changes, signed
checkpoints and enforcement events.
"""

from __future__ import annotations

from colending.v1 import (
    blacklist_pb2,
    common_pb2,
    enforcement_pb2,
)

from colending_core import IdentifierKind, LeafEntry, decode_leaf
from gateway.api.convert import date_to_proto, enum_value, inverse_of, money, timestamp
from gateway.blacklist.log import SignedCheckpoint
from gateway.blacklist.service import Borrower
from gateway.domain.blacklist import (
    AppealOutcome,
    BlacklistEntry,
    ChangeType,
    EntryStatus,
    ListingReason,
)
from gateway.errors import FieldViolation
from gateway.store.blacklist_repository import EnforcementEvent, LoggedChange

IDENTIFIER_KINDS = {
    getattr(blacklist_pb2, f"IDENTIFIER_KIND_{kind.name}"): kind for kind in IdentifierKind
}
IDENTIFIER_KIND_NUMBERS = inverse_of(IDENTIFIER_KINDS)
LISTING_REASONS = {
    getattr(blacklist_pb2, f"BLACKLIST_REASON_{reason.name}"): reason for reason in ListingReason
}
LISTING_REASON_NUMBERS = inverse_of(LISTING_REASONS)
ENTRY_STATUS_NUMBERS = {
    status: getattr(blacklist_pb2, f"BLACKLIST_ENTRY_STATUS_{status.name}")
    for status in EntryStatus
}
CHANGE_TYPE_NUMBERS = {
    kind: getattr(blacklist_pb2, f"BLACKLIST_CHANGE_TYPE_{kind.name}") for kind in ChangeType
}
APPEAL_OUTCOMES: dict[blacklist_pb2.AppealOutcome.ValueType, AppealOutcome] = {
    blacklist_pb2.APPEAL_OUTCOME_UPHELD: AppealOutcome.UPHELD,
    blacklist_pb2.APPEAL_OUTCOME_REMOVED: AppealOutcome.REMOVED,
}
APPEAL_OUTCOME_NUMBERS = inverse_of(APPEAL_OUTCOMES)
ENFORCEMENT_ACTIONS = {
    "restrict_store": enforcement_pb2.ENFORCEMENT_ACTION_RESTRICT_STORE,
    "lift_restriction": enforcement_pb2.ENFORCEMENT_ACTION_LIFT_RESTRICTION,
}


def borrower_from_proto(
    message: blacklist_pb2.BorrowerIdentifier, field: str, problems: list[FieldViolation]
) -> Borrower | None:
    which = message.WhichOneof("value")
    if which == "pseudonym":
        return Borrower(pseudonym=message.pseudonym)
    if which is None:
        problems.append(FieldViolation(field, "required: raw or pseudonym"))
        return None
    kind = enum_value(message.raw.kind, IDENTIFIER_KINDS, f"{field}.raw.kind", problems)
    if kind is None:
        if message.raw.kind == 0:
            problems.append(FieldViolation(f"{field}.raw.kind", "required"))
        return None
    return Borrower(kind=kind, raw=message.raw.value)


def blacklist_entry_to_proto(
    entry: BlacklistEntry, *, free_text: bool = True
) -> blacklist_pb2.BlacklistEntry:
    """``free_text``: include the appeal's grounds and resolution reason (for its parties)."""
    appeal = entry.appeal
    return blacklist_pb2.BlacklistEntry(
        entry_id=entry.entry_id,
        pseudonym=entry.pseudonym,
        identifier_kind=IDENTIFIER_KIND_NUMBERS[entry.identifier_kind],
        reporter_bank_id=entry.reporter_bank_id,
        reason=LISTING_REASON_NUMBERS[entry.reason],
        outstanding=money(entry.outstanding_fen),
        default_date=date_to_proto(entry.default_date),
        evidence_case_id=entry.evidence_case_id,
        reported_at=timestamp(entry.reported_at),
        expires_at=timestamp(entry.expires_at),
        status=ENTRY_STATUS_NUMBERS[entry.status],
        appeal=None
        if appeal is None
        else blacklist_pb2.Appeal(
            appeal_id=appeal.appeal_id,
            filed_by=appeal.filed_by,
            grounds=appeal.grounds if free_text else "",
            filed_at=timestamp(appeal.filed_at),
            deadline=timestamp(appeal.deadline),
            outcome=blacklist_pb2.APPEAL_OUTCOME_UNSPECIFIED
            if appeal.outcome is None
            else APPEAL_OUTCOME_NUMBERS[appeal.outcome],
            resolved_at=timestamp(appeal.resolved_at),
            resolved_by=appeal.resolved_by,
            resolution_reason=appeal.resolution_reason if free_text else "",
        ),
    )


def leaf_entry_to_proto(entry: LeafEntry) -> blacklist_pb2.BlacklistEntry:
    """The entry as its leaf states it (free text, which the leaf leaves out, is empty)."""
    appeal = entry.appeal
    return blacklist_pb2.BlacklistEntry(
        entry_id=entry.entry_id,
        pseudonym=entry.pseudonym,
        identifier_kind=IDENTIFIER_KIND_NUMBERS[IdentifierKind(entry.identifier_kind)],
        reporter_bank_id=entry.reporter,
        reason=LISTING_REASON_NUMBERS[ListingReason(entry.reason)],
        outstanding=common_pb2.Money(
            currency_code=entry.currency, amount_minor=entry.outstanding_minor
        ),
        default_date=date_to_proto(entry.default_date),
        evidence_case_id=entry.evidence_case_id,
        reported_at=timestamp(entry.reported_at),
        expires_at=timestamp(entry.expires_at),
        status=ENTRY_STATUS_NUMBERS[EntryStatus(entry.status)],
        appeal=None
        if appeal is None
        else blacklist_pb2.Appeal(
            appeal_id=appeal.appeal_id,
            filed_by=appeal.filed_by,
            filed_at=timestamp(appeal.filed_at),
            deadline=timestamp(appeal.deadline),
            outcome=APPEAL_OUTCOME_NUMBERS[AppealOutcome(appeal.outcome)]
            if appeal.outcome
            else blacklist_pb2.APPEAL_OUTCOME_UNSPECIFIED,
            resolved_at=timestamp(appeal.resolved_at),
            resolved_by=appeal.resolved_by,
        ),
    )


def logged_change_to_proto(change: LoggedChange) -> blacklist_pb2.BlacklistChange:
    return blacklist_pb2.BlacklistChange(
        log_index=change.log_index,
        type=CHANGE_TYPE_NUMBERS[change.change_type],
        entry=leaf_entry_to_proto(decode_leaf(change.leaf).entry),
        logged_at=timestamp(change.logged_at),
        leaf=change.leaf,
    )


def signed_checkpoint_to_proto(signed: SignedCheckpoint) -> blacklist_pb2.SignedCheckpoint:
    checkpoint = signed.checkpoint
    return blacklist_pb2.SignedCheckpoint(
        envelope=common_pb2.Envelope(
            payload=signed.envelope.payload,
            payload_type=signed.envelope.payload_type,
            signatures=[
                common_pb2.Signature(keyid=s.keyid, sig=s.sig) for s in signed.envelope.signatures
            ],
        ),
        checkpoint=blacklist_pb2.Checkpoint(
            origin=checkpoint.origin,
            tree_size=checkpoint.tree_size,
            root_hash=checkpoint.root_hash,
            timestamp=timestamp(checkpoint.timestamp),
        ),
    )


def enforcement_event_to_proto(event: EnforcementEvent) -> enforcement_pb2.EnforcementEvent:
    return enforcement_pb2.EnforcementEvent(
        event_id=event.event_id,
        platform_merchant_id=event.platform_merchant_id,
        action=ENFORCEMENT_ACTIONS[event.action],
        reason=event.reason,
        blacklist_entry_id=event.blacklist_entry_id,
        case_id=event.case_id,
        created_at=timestamp(event.created_at),
    )
