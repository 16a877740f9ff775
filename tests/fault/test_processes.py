"""`serve --processes 2` on PostgreSQL, as real processes: both share the port and answer (the
kernel spreads connections over them); a default reported through one is in every process's
check answers once their indexes are older than the half-second bound; and killing the parent
with SIGKILL takes its servers down with it, leaving nothing on the port."""

from __future__ import annotations

import re
import time
from pathlib import Path

import grpc
import pytest
from colending.v1 import admin_service_pb2, admin_service_pb2_grpc
from fault.clients import blacklist_client, borrower, register, report
from fault.processes import ADMIN, health, replicas
from grpc_health.v1 import health_pb2
from testkit import eventually

from gateway.blacklist.index import DEFAULT_MAX_AGE

pytestmark = pytest.mark.postgres

# A fresh connection per channel: the default global subchannel pool would reuse one.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


def test_processes_share_the_port_see_each_others_reports_and_die_with_the_parent(
    tmp_path: Path, postgres_schema_url: str
) -> None:
    data_dir = tmp_path / "data"
    with replicas(data_dir, postgres_schema_url, count=1, processes=2) as (gateway, [server]):
        # Health answers once the first is up; the second may still be opening its pool.
        eventually(
            lambda: server.log_text().count(": listening on ") == 2, what="both servers to listen"
        )
        for _ in range(30):
            with grpc.insecure_channel(server.target, options=OWN_CONNECTION) as channel:
                admin_service_pb2_grpc.AdminServiceStub(channel).ListPartners(
                    admin_service_pb2.ListPartnersRequest(), metadata=ADMIN, timeout=10
                )
        answered_by = set(re.findall(r" (\d+) \[[^\]]*\]: \S+/ListPartners OK", server.log_text()))
        assert len(answered_by) == 2, server.log_tail(80)

        with grpc.insecure_channel(server.target) as channel:
            register(channel, "bank-r")
            index = report(blacklist_client(channel, gateway, data_dir, "partner/bank-r"), 7)
        time.sleep(DEFAULT_MAX_AGE + 0.1)
        for _ in range(20):  # whichever process answers, it has the report
            with grpc.insecure_channel(server.target, options=OWN_CONNECTION) as channel:
                client = blacklist_client(channel, gateway, data_dir, "partner/bank-r")
                [answer] = client.check([borrower(7)])
            assert not answer.clear
            assert answer.tree_size >= index + 1

        server.kill()  # SIGKILL the parent: its servers get SIGTERM from the kernel
        eventually(
            lambda: health(server.target) != health_pb2.HealthCheckResponse.SERVING,
            what="the servers to go with their parent",
            timeout=20,
        )
