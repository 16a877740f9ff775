"""What an operator reads: a log line per RPC with request id and caller and nothing personal,
Prometheus metrics, and a health service that follows the database."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from colending.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    blacklist_pb2,
    blacklist_service_pb2,
    blacklist_service_pb2_grpc,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from testkit import ADMIN, ALL_SCOPES, in_days, merchant, request_id, running_gateway

from gateway.observe import (
    RPCS_TOTAL,
    JsonFormatter,
    StoreCollector,
    _RequestContext,
    log_lines_from_a_thread,
    request_id_var,
)
from gateway.server import ServerConfig, build_server, open_gateway
from gateway.store.db import Database
from partners.sdk import PlatformClient

RESIDENT_ID = "11010519491231002X"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every log line of the process, as the JSON formatter writes it, at DEBUG."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(_RequestContext())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


@pytest.mark.parametrize("from_a_thread", [False, True], ids=["in-place", "queued-as-serve"])
def test_logs_carry_request_ids_and_callers_but_no_identifiers_or_keys(
    data_dir: Path, captured: io.StringIO, from_a_thread: bool
) -> None:
    profile = merchant(merchant_id="m-log-1")
    code = profile.identity.unified_social_credit_code
    with (
        log_lines_from_a_thread() if from_a_thread else contextlib.nullcontext(),
        running_gateway(data_dir) as running,
        grpc.insecure_channel(running.target) as channel,
    ):
        admin_service_pb2_grpc.AdminServiceStub(channel).RegisterPartner(
            admin_service_pb2.RegisterPartnerRequest(
                request_id=request_id(), partner_id="bank-a", display_name="Bank A"
            ),
            metadata=ADMIN,
            timeout=10,
        )
        platform = PlatformClient(channel=channel, caller="platform")
        consent = platform.record_consent(
            platform_merchant_id="m-log-1",
            bank_ids=["bank-a"],
            data_scopes=list(ALL_SCOPES),
            expires_at=in_days(30),
            evidence_reference="consent:m-log-1",
        )
        platform.submit_referral(
            merchant=profile, consent_id=consent.consent_id, bank_ids=["bank-a"]
        )
        blacklist = blacklist_service_pb2_grpc.BlacklistServiceStub(channel)
        _, call = blacklist.CheckBorrowers.with_call(
            blacklist_service_pb2.CheckBorrowersRequest(
                borrowers=[
                    blacklist_pb2.BorrowerIdentifier(
                        raw=blacklist_pb2.RawIdentifier(
                            kind=blacklist_pb2.IDENTIFIER_KIND_UNIFIED_SOCIAL_CREDIT_CODE,
                            value=code,
                        )
                    ),
                    blacklist_pb2.BorrowerIdentifier(
                        raw=blacklist_pb2.RawIdentifier(
                            kind=blacklist_pb2.IDENTIFIER_KIND_RESIDENT_ID, value=RESIDENT_ID
                        )
                    ),
                ]
            ),
            metadata=(("x-colending-caller", "partner/bank-a"), ("x-request-id", "ops-42")),
            timeout=10,
        )
        echoed = dict(call.initial_metadata())
        network_key = (data_dir / "network-key" / "network.key").read_text().strip()
    text = captured.getvalue()
    lines = [line for line in text.splitlines() if "colending.v1." in line]
    assert any(
        '"caller": "platform"' in line and "ReferralService/SubmitReferral OK" in line
        for line in lines
    )
    [check] = [line for line in lines if "CheckBorrowers" in line]
    assert '"request_id": "ops-42"' in check  # the caller's id, quoted back in the log
    assert '"caller": "partner/bank-a"' in check
    assert echoed["x-request-id"] == "ops-42"  # ...and in the answer
    # Nothing personal and no secret, in any line, at any level.
    for secret in (code, code.lower(), RESIDENT_ID, network_key, "杭州示例贸易有限公司"):
        assert secret not in text


def test_a_queued_line_says_what_was_true_when_it_was_logged(captured: io.StringIO) -> None:
    amounts = [100]
    writers: set[int] = set()

    class Writer(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            writers.add(threading.get_ident())

    root = logging.getLogger()
    root.addHandler(writer := Writer())
    try:
        with log_lines_from_a_thread():
            token = request_id_var.set("req-queued")
            try:
                for n in range(500):
                    logging.getLogger("gateway.test").info("line %d of %s", n, amounts)
            finally:
                request_id_var.reset(token)
            amounts.append(200)  # after the call: the queued line must not show it
    finally:
        root.removeHandler(writer)
    assert writers
    assert threading.get_ident() not in writers  # written by the listener thread
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    mine = [line for line in lines if line["logger"] == "gateway.test"]
    assert [line["message"] for line in mine] == [f"line {n} of [100]" for n in range(500)]
    assert {line["request_id"] for line in mine} == {"req-queued"}


def test_metrics_count_rpcs_and_read_the_store(data_dir: Path) -> None:
    with running_gateway(data_dir) as running, grpc.insecure_channel(running.target) as channel:
        stub = admin_service_pb2_grpc.AdminServiceStub(channel)
        stub.ListPartners(admin_service_pb2.ListPartnersRequest(), metadata=ADMIN, timeout=10)
        with pytest.raises(grpc.RpcError):
            stub.ListPartners(
                admin_service_pb2.ListPartnersRequest(page_size=9999), metadata=ADMIN, timeout=10
            )
        registry = CollectorRegistry()
        registry.register(StoreCollector(running.gateway.database))
        store = generate_latest(registry).decode()
    process = generate_latest(REGISTRY).decode()
    method = "colending.v1.AdminService/ListPartners"
    assert f'{RPCS_TOTAL}{{code="OK",method="{method}"}}' in process
    assert f'{RPCS_TOTAL}{{code="INVALID_ARGUMENT",method="{method}"}}' in process
    assert f'colending_rpc_duration_seconds_count{{method="{method}"}}' in process
    assert "colending_blacklist_log_size 0.0" in store


def test_health_follows_the_database(data_dir: Path) -> None:
    config = ServerConfig(data_dir=data_dir, port=0, health_interval=0.05)
    gateway = open_gateway(config)
    server, port = build_server(config, gateway=gateway)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)

            def status() -> int:
                request = health_pb2.HealthCheckRequest(service="")
                return int(health.Check(request, timeout=5).status)  # type: ignore[attr-defined]

            assert status() == health_pb2.HealthCheckResponse.SERVING
            working = gateway.database  # the test swaps the database for one that is down
            gateway.database = Database(url="postgresql+psycopg://postgres@127.0.0.1:1/none")
            _until(lambda: status() == health_pb2.HealthCheckResponse.NOT_SERVING)
            gateway.database = working
            _until(lambda: status() == health_pb2.HealthCheckResponse.SERVING)
    finally:
        server.stop(grace=None).wait()


def _until(condition: object, timeout: float = 10.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
