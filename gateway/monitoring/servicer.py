"""The monitoring RPCs: the platform's SubmitTradeSnapshot (ReferralService) and the banks'
PullAlerts and StreamAlerts (PartnerBankService). Each class is one service's share;
``gateway.api.servicers`` composes the services from them.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from colending.v1 import partner_bank_service_pb2, referral_service_pb2

from gateway.api._handler import (
    BANK_SERVICE,
    REFERRAL_SERVICE,
    idempotency,
    server_stream,
    unary,
)
from gateway.api.auth import Caller
from gateway.api.limits import STREAM_POLL_SECONDS, StreamSlots
from gateway.errors import FieldViolation
from gateway.monitoring.convert import alert_to_proto, snapshot_from_proto
from gateway.monitoring.service import Monitoring

rs = referral_service_pb2
pb = partner_bank_service_pb2
# A live stream reads this many alerts at a time.
STREAM_PAGE = 100


class MonitoringRpcs:
    """ReferralService: the platform's post-loan trade snapshots."""

    _monitoring: Monitoring

    @unary(REFERRAL_SERVICE, rs.SubmitTradeSnapshotResponse)
    def SubmitTradeSnapshot(
        self, request: rs.SubmitTradeSnapshotRequest, context: grpc.ServicerContext, caller: Caller
    ) -> rs.SubmitTradeSnapshotResponse:
        problems: list[FieldViolation] = []
        snapshot = snapshot_from_proto(request.snapshot, "snapshot", problems)
        outcome = self._monitoring.submit_trade_snapshot(
            idem=idempotency(request, caller, "SubmitTradeSnapshot"),
            consent_id=request.consent_id,
            snapshot=snapshot,
            shape_problems=problems,
        )
        return rs.SubmitTradeSnapshotResponse(
            snapshot_id=outcome.snapshot_id,
            bank_ids=outcome.bank_ids,
            alerts=[alert_to_proto(a, Monitoring.cursor_after(a)) for a in outcome.alerts],
        )


class AlertBankRpcs:
    """PartnerBankService: pull and stream the caller's early-warning alerts."""

    _monitoring: Monitoring
    _streams: StreamSlots

    @unary(BANK_SERVICE, pb.PullAlertsResponse)
    def PullAlerts(
        self, request: pb.PullAlertsRequest, context: grpc.ServicerContext, caller: Caller
    ) -> pb.PullAlertsResponse:
        alerts, next_cursor = self._monitoring.pull_alerts(
            bank_id=caller.partner_id, cursor=request.cursor, page_size=request.page_size
        )
        return pb.PullAlertsResponse(
            alerts=[alert_to_proto(a, Monitoring.cursor_after(a)) for a in alerts],
            next_cursor=next_cursor,
        )

    @server_stream(BANK_SERVICE)
    def StreamAlerts(
        self, request: pb.StreamAlertsRequest, context: grpc.ServicerContext, caller: Caller
    ) -> Iterator[pb.StreamAlertsResponse]:
        cursor = request.cursor
        with self._streams.hold(caller.name):
            # A cancelled stream stops waiting at once, so its slot is free at once.
            context.add_callback(self._monitoring.wake_alert_streams)
            while context.is_active():
                alerts, cursor = self._monitoring.pull_alerts(
                    bank_id=caller.partner_id, cursor=cursor, page_size=STREAM_PAGE
                )
                for alert in alerts:
                    yield pb.StreamAlertsResponse(
                        alert=alert_to_proto(alert, Monitoring.cursor_after(alert))
                    )
                if len(alerts) < STREAM_PAGE:
                    self._monitoring.wait_for_alerts(STREAM_POLL_SECONDS)
