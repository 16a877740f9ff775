"""Protobuf conversion of reconciliation statements, and the exact bytes the gateway signs."""

from __future__ import annotations

from colending.v1 import reconciliation_pb2

from colending_core import root_from_leaves
from gateway.api.convert import date_to_proto, envelope_to_proto, money, timestamp
from gateway.domain.reconciliation import (
    AMOUNT_FIELDS,
    Dispute,
    DisputeState,
    NetPayer,
    StatementLine,
)
from gateway.reconciliation.service import StatementPayload
from gateway.store.reconciliation_repository import StoredStatement
from partners.sdk._verify import line_leaf  # the leaf a verifier hashes, defined once

NET_PAYER_NUMBERS = {
    NetPayer.NONE: reconciliation_pb2.NET_PAYER_NONE,
    NetPayer.PLATFORM: reconciliation_pb2.NET_PAYER_PLATFORM,
    NetPayer.BANK: reconciliation_pb2.NET_PAYER_BANK,
}


def line_to_proto(line: StatementLine) -> reconciliation_pb2.ReconciliationLine:
    return reconciliation_pb2.ReconciliationLine(
        case_id=line.case_id,
        platform_merchant_id=line.platform_merchant_id,
        **{name.removesuffix("_fen"): money(getattr(line, name)) for name in AMOUNT_FIELDS},
    )


def encode_statement_payload(payload: StatementPayload) -> bytes:
    """The exact bytes the gateway signs (deterministic serialization)."""
    lines = [line_to_proto(line) for line in payload.lines]
    message = reconciliation_pb2.ReconciliationPayload(
        statement_id=payload.statement_id,
        bank_id=payload.bank_id,
        business_date=date_to_proto(payload.business_date),
        lines=lines,
        totals=line_to_proto(payload.totals),
        net_payer=NET_PAYER_NUMBERS[payload.net_payer],
        net_amount=money(payload.net_amount_fen),
        lines_root=root_from_leaves([line_leaf(line) for line in lines]),
        issued_at=timestamp(payload.issued_at),
    )
    return message.SerializeToString(deterministic=True)


def statement_to_proto(stored: StoredStatement) -> reconciliation_pb2.ReconciliationStatement:
    return reconciliation_pb2.ReconciliationStatement(
        statement_id=stored.statement_id,
        bank_id=stored.bank_id,
        business_date=date_to_proto(stored.business_date),
        envelope=envelope_to_proto(stored.envelope),
    )


def statement_case_ids(payload: bytes) -> list[str]:
    """The case ids of a signed statement's lines (its own stored bytes)."""
    return [
        line.case_id for line in reconciliation_pb2.ReconciliationPayload.FromString(payload).lines
    ]


DISPUTE_STATE_NUMBERS = {
    DisputeState.OPEN: reconciliation_pb2.DISPUTE_STATE_OPEN,
    DisputeState.UPHELD: reconciliation_pb2.DISPUTE_STATE_UPHELD,
    DisputeState.REJECTED: reconciliation_pb2.DISPUTE_STATE_REJECTED,
}
DISPUTE_STATES = {number: state for state, number in DISPUTE_STATE_NUMBERS.items()}


def dispute_to_proto(dispute: Dispute) -> reconciliation_pb2.ReconciliationDispute:
    return reconciliation_pb2.ReconciliationDispute(
        dispute_id=dispute.dispute_id,
        statement_id=dispute.statement_id,
        bank_id=dispute.bank_id,
        business_date=date_to_proto(dispute.business_date),
        case_id=dispute.case_id,
        disputed_fields=dispute.disputed_fields,
        reason=dispute.reason,
        state=DISPUTE_STATE_NUMBERS[dispute.state],
        filed_by=dispute.filed_by,
        filed_at=timestamp(dispute.filed_at),
        resolution_note=dispute.resolution_note,
        resolved_by=dispute.resolved_by,
        resolved_at=timestamp(dispute.resolved_at) if dispute.resolved_at else None,
    )
