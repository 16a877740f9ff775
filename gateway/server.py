"""Build the gRPC server: services, health, reflection. ``build_server`` returns the bound port."""

from __future__ import annotations

import ipaddress
import logging
import threading
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from colending.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    blacklist_service_pb2,
    blacklist_service_pb2_grpc,
    partner_bank_service_pb2,
    partner_bank_service_pb2_grpc,
    referral_service_pb2,
    referral_service_pb2_grpc,
)
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gateway.api.limits import RateLimiter, StreamSlots
from gateway.api.servicers import (
    AdminServicer,
    BlacklistServicer,
    PartnerBankServicer,
    ReferralServicer,
)
from gateway.app import Gateway
from gateway.blacklist import BlacklistNetwork
from gateway.delivery import BankTransport, Dispatcher
from gateway.delivery.transport import GrpcBankTransport
from gateway.domain.blacklist import BlacklistRules
from gateway.domain.delivery import DeliveryPolicy
from gateway.monitoring.convert import encode_alert_payload
from gateway.reconciliation.convert import encode_statement_payload, statement_case_ids
from gateway.referrals.convert import encode_referral_payload
from gateway.signing.keyring import KeyRing
from gateway.signing.network_key import open_network_key
from gateway.store.db import Database, PoolOptions, sqlite_url

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    referral_service_pb2.DESCRIPTOR.services_by_name["ReferralService"].full_name,
    partner_bank_service_pb2.DESCRIPTOR.services_by_name["PartnerBankService"].full_name,
    blacklist_service_pb2.DESCRIPTOR.services_by_name["BlacklistService"].full_name,
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
)
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    data_dir: Path
    database_url: str | None = None  # None: SQLite in data_dir
    database_pool: PoolOptions = field(default_factory=PoolOptions)
    host: str = "127.0.0.1"
    port: int = 50051  # 0 picks a free port
    max_workers: int = 16
    # Live server streams (StreamReferrals, SyncBlacklist) together; each holds a worker thread,
    # so this stays well below max_workers.
    max_streams: int = 8
    # ...and at most this many per caller: a bank follows referrals and the blacklist at once.
    streams_per_caller: int = 2
    health_interval: float = 5.0  # seconds between database checks of the health service
    # Mutual TLS: the server's key and certificate, and the CA that signs client certificates.
    tls: TlsFiles | None = None
    # Each bank's calls: this many a second on average, bursts up to partner_burst (0: off).
    partner_rate: float = 50.0
    partner_burst: int = 100
    blacklist_rules: BlacklistRules = field(default_factory=BlacklistRules)
    delivery_policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    allow_insecure_remote: bool = False
    # Share the port with sibling processes (``serve --processes``): SO_REUSEPORT, which is
    # otherwise off so that a port already in use is an error rather than a silent second server.
    reuse_port: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsFiles:
    key: Path
    certificate: Path
    client_ca: Path


class InsecureBindRefused(Exception):
    pass


def open_gateway(config: ServerConfig, *, transport: BankTransport | None = None) -> Gateway:
    """Create the data directory, schema and signing key on first use; return the gateway."""
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    database = Database(
        url=config.database_url or sqlite_url(config.data_dir), pool=config.database_pool
    )
    database.create_schema()
    blacklist = BlacklistNetwork(
        database=database,
        log_keyring=KeyRing.open(config.data_dir / "log-keys"),
        network_key=open_network_key(config.data_dir / "network-key"),
        rules=config.blacklist_rules,
    )
    dispatcher = Dispatcher(
        database=database,
        transport=transport or GrpcBankTransport(credentials=_push_credentials(config.tls)),
        policy=config.delivery_policy,
    )
    return Gateway(
        database=database,
        keyring=KeyRing.open(config.data_dir / "keys"),
        encode_referral=encode_referral_payload,
        encode_alert=encode_alert_payload,
        encode_statement=encode_statement_payload,
        statement_case_ids=statement_case_ids,
        blacklist=blacklist,
        dispatcher=dispatcher,
    )


def _push_credentials(tls: TlsFiles | None) -> grpc.ChannelCredentials | None:
    """In TLS mode pushes are mutual TLS too: a bank's receiver must present a certificate the
    CA signed, and the gateway presents its own, whose colending://gateway name the bank checks."""
    if tls is None:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=tls.client_ca.read_bytes(),
        private_key=tls.key.read_bytes(),
        certificate_chain=tls.certificate.read_bytes(),
    )


def _set_health(servicer: health.HealthServicer, *, serving: bool) -> None:
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for name in ("", *SERVICE_NAMES):
        servicer.set(name, status)


def _watch_database(
    server: grpc.Server, gateway: Gateway, servicer: health.HealthServicer, interval: float
) -> None:
    """NOT_SERVING while the database does not answer, SERVING again once it does, so load
    balancers route around a replica that cannot work; ends when the server stops."""
    serving = True
    while server.wait_for_termination(timeout=interval):  # True: timed out, still running
        answers = gateway.database_answers()
        if answers != serving:
            serving = answers
            _set_health(servicer, serving=serving)
            log.warning("health: %s", "SERVING" if serving else "NOT_SERVING (database down)")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def refuse_insecure_bind(config: ServerConfig) -> None:
    if config.tls is None and not _is_loopback(config.host) and not config.allow_insecure_remote:
        raise InsecureBindRefused(
            f"refusing to listen on {config.host} without TLS: development mode trusts the "
            "caller's own word for its identity. Use a loopback address, or force it with "
            "--allow-insecure-remote if you really mean it."
        )


def build_server(config: ServerConfig, *, gateway: Gateway) -> tuple[grpc.Server, int]:
    """A started-ready (not started) server and the port it bound."""
    refuse_insecure_bind(config)
    # Checks answer from memory: load the listed pseudonyms now, not on the first check.
    gateway.blacklist.listed.refresh()
    server = grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=config.max_workers, thread_name_prefix="colending-rpc"
        ),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 1 if config.reuse_port else 0),
            # Ping idle connections, so a stream whose client vanished (a dropped NAT entry)
            # ends and frees its stream slot instead of holding it forever.
            ("grpc.keepalive_time_ms", 60_000),
            ("grpc.keepalive_timeout_ms", 20_000),
        ],
    )
    streams = StreamSlots(limit=config.max_streams, per_caller=config.streams_per_caller)
    limiter = (
        RateLimiter(rate=config.partner_rate, burst=config.partner_burst)
        if config.partner_rate > 0
        else None
    )
    referral_service_pb2_grpc.add_ReferralServiceServicer_to_server(
        ReferralServicer(gateway=gateway), server
    )
    partner_bank_service_pb2_grpc.add_PartnerBankServiceServicer_to_server(
        PartnerBankServicer(gateway=gateway, streams=streams, limiter=limiter), server
    )
    admin_service_pb2_grpc.add_AdminServiceServicer_to_server(
        AdminServicer(gateway=gateway), server
    )
    blacklist_service_pb2_grpc.add_BlacklistServiceServicer_to_server(
        BlacklistServicer(network=gateway.blacklist, streams=streams, limiter=limiter),
        server,
    )

    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    _set_health(health_servicer, serving=True)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )

    address = f"{config.host}:{config.port}"
    if config.tls is not None:
        # Every client must present a certificate the CA signed: gRPC Python can only request
        # and require one, or not ask at all, so a client without one fails the handshake (it
        # sees UNAVAILABLE). A signed certificate naming no colending:// identity is
        # UNAUTHENTICATED per call (gateway.api.auth).
        credentials = grpc.ssl_server_credentials(
            [(config.tls.key.read_bytes(), config.tls.certificate.read_bytes())],
            root_certificates=config.tls.client_ca.read_bytes(),
            require_client_auth=True,
        )
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind {address}")
    # Only once bound: a server that never binds must not leave a watcher behind.
    threading.Thread(
        target=_watch_database,
        args=(server, gateway, health_servicer, config.health_interval),
        name="health-watch",
        daemon=True,
    ).start()
    return server, port
