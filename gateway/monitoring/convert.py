"""Protobuf <-> domain conversion of trade snapshots and alerts, and the exact alert bytes the
gateway signs."""

from __future__ import annotations

from colending.v1 import monitoring_pb2

from gateway.api.convert import (
    date_from_proto,
    date_to_proto,
    envelope_to_proto,
    inverse_of,
    timestamp,
)
from gateway.domain.monitoring import Alert, AlertPayload, Severity, SignalCode, TradeSnapshot
from gateway.errors import FieldViolation
from gateway.referrals.convert import reputation_from_proto

SIGNAL_CODES = {
    monitoring_pb2.SIGNAL_CODE_GMV_DECLINE: SignalCode.GMV_DECLINE,
    monitoring_pb2.SIGNAL_CODE_DISPUTE_RATE_HIGH: SignalCode.DISPUTE_RATE_HIGH,
    monitoring_pb2.SIGNAL_CODE_REFUND_RATE_HIGH: SignalCode.REFUND_RATE_HIGH,
    monitoring_pb2.SIGNAL_CODE_STORE_RESTRICTED: SignalCode.STORE_RESTRICTED,
    monitoring_pb2.SIGNAL_CODE_DEFAULT_AT_OTHER_BANK: SignalCode.DEFAULT_AT_OTHER_BANK,
}
SEVERITIES = {
    monitoring_pb2.ALERT_SEVERITY_WARNING: Severity.WARNING,
    monitoring_pb2.ALERT_SEVERITY_CRITICAL: Severity.CRITICAL,
}
SIGNAL_CODE_NUMBERS = inverse_of(SIGNAL_CODES)
SEVERITY_NUMBERS = inverse_of(SEVERITIES)


def snapshot_from_proto(
    message: monitoring_pb2.TradeSnapshot, field: str, problems: list[FieldViolation]
) -> TradeSnapshot:
    return TradeSnapshot(
        platform_merchant_id=message.platform_merchant_id,
        as_of=date_from_proto(message.as_of, f"{field}.as_of", problems),
        reputation=reputation_from_proto(message.reputation),
        store_restricted=message.store_restricted,
    )


def encode_alert_payload(payload: AlertPayload) -> bytes:
    """The exact bytes the gateway signs (deterministic serialization)."""
    message = monitoring_pb2.AlertPayload(
        alert_id=payload.alert_id,
        bank_id=payload.bank_id,
        case_ids=payload.case_ids,
        platform_merchant_id=payload.platform_merchant_id,
        snapshot_id=payload.snapshot_id,
        snapshot_as_of=date_to_proto(payload.snapshot_as_of),
        severity=SEVERITY_NUMBERS[payload.severity],
        signals=[
            monitoring_pb2.EarlyWarningSignal(
                code=SIGNAL_CODE_NUMBERS[s.code],
                severity=SEVERITY_NUMBERS[s.severity],
                reason=s.reason,
                observed=s.observed,
                threshold=s.threshold,
            )
            for s in payload.signals
        ],
        issued_at=timestamp(payload.issued_at),
        expires_at=timestamp(payload.expires_at),
        nonce=payload.nonce,
    )
    return message.SerializeToString(deterministic=True)


def alert_to_proto(alert: Alert, cursor: str) -> monitoring_pb2.Alert:
    return monitoring_pb2.Alert(
        alert_id=alert.alert_id, envelope=envelope_to_proto(alert.envelope), cursor=cursor
    )
