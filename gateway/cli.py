"""``colending-gateway``: the operator's command line."""

from __future__ import annotations

import argparse
import csv
import ctypes
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import fields, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from colending.v1 import reconciliation_pb2
from google.protobuf import json_format
from prometheus_client import REGISTRY, start_http_server
from sqlalchemy.exc import SQLAlchemyError

from gateway import bulk
from gateway._transactions import Idempotency
from gateway.app import Gateway
from gateway.certs import CertificateError, init_ca, issue_client, issue_server
from gateway.demo import run_demo
from gateway.domain.blacklist import BlacklistRules
from gateway.domain.delivery import DeliveryPolicy
from gateway.domain.money import format_fen
from gateway.domain.partner import PartnerState, partner_id_problem
from gateway.errors import GatewayError
from gateway.observe import StoreCollector, configure_logging, log_lines_from_a_thread
from gateway.sample import SampleMix, sample_merchants
from gateway.server import (
    InsecureBindRefused,
    ServerConfig,
    TlsFiles,
    build_server,
    open_gateway,
    refuse_insecure_bind,
)
from gateway.settings import Settings, SettingsError, load_settings, masked
from gateway.signing.network_key import open_network_key
from gateway.store import migrations
from gateway.store.db import Database, PoolOptions, StaleSchema, sqlite_url

log = logging.getLogger("colending")

DEFAULT_DATA_DIR = Path(os.environ.get("COLENDING_DATA_DIR", "data"))
CLI_CALLER = "admin-cli"

INSECURE_BANNER = """
  ************************************************************************************
  *  INSECURE DEVELOPMENT MODE: no TLS. Callers name themselves in the               *
  *  x-colending-caller metadata and nothing checks it. Never expose this port.      *
  ************************************************************************************"""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="data directory: SQLite database and signing keys (default: %(default)s, "
        "or $COLENDING_DATA_DIR)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("COLENDING_DATABASE_URL"),
        help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db (default: SQLite in "
        "the data directory, or $COLENDING_DATABASE_URL)",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _serve_flags(parser: argparse.ArgumentParser, *, rpc: bool = True) -> None:
    """Flags of `serve` (and `config show`). None means "not given": the environment, the config
    file or the default decides (see gateway.settings). ``rpc=False`` (for `deliver`) leaves out
    what only a server answering RPCs uses."""
    d = Settings()
    add = parser.add_argument

    def rpc_only(*names: str, **kwargs: Any) -> None:
        if rpc:
            add(*names, **kwargs)

    add("--config", type=Path, help="TOML settings file ([gateway] table; or $COLENDING_CONFIG)")
    add("--data-dir", help=f"SQLite database and keys (default: {d.data_dir})")
    add("--database-url", help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db")
    rpc_only("--host", help=f"listen address (default: {d.host})")
    rpc_only("--port", help=f"listen port, 0 picks a free one (default: {d.port})")
    rpc_only("--workers", help=f"RPC worker threads (default: {d.workers})")
    rpc_only(
        "--processes",
        help="server processes sharing the port (default: 0, one per core on PostgreSQL and one "
        "on SQLite)",
    )
    add(
        "--delivery-workers",
        help=f"threads pushing referrals to banks with an endpoint (default: "
        f"{d.delivery_workers}; 0 leaves it to `colending-gateway deliver`)",
    )
    rpc_only("--metrics-port", help="serve Prometheus metrics on this port (default: off)")
    rpc_only(
        "--sweep-interval", help=f"seconds between expiry sweeps (default: {d.sweep_interval})"
    )
    rpc_only(
        "--retention-years",
        help=f"a blacklist entry expires this long after its default ends "
        f"(default: {d.retention_years})",
    )
    rpc_only("--appeal-days", help=f"days to answer an appeal (default: {d.appeal_days})")
    rpc_only(
        "--remove-on-recovery",
        action="store_const",
        const=True,
        help="lift a blacklist entry when its defaulted loan is recovered (default: keep it "
        "until it expires, as the credit reporting regulation allows)",
    )
    rpc_only(
        "--allow-insecure-remote",
        action="store_const",
        const=True,
        help="listen on a non-loopback address without TLS (dangerous)",
    )
    rpc_only("--max-streams", help=f"live server streams at once (default: {d.max_streams})")
    rpc_only(
        "--streams-per-caller",
        help=f"live streams one caller may hold at once (default: {d.streams_per_caller})",
    )
    add(
        "--database-pool-size",
        help=f"PostgreSQL connections kept open (default: {d.database_pool_size})",
    )
    add(
        "--database-pool-overflow",
        help=f"extra connections under load (default: {d.database_pool_overflow})",
    )
    add(
        "--database-pool-timeout",
        help=f"seconds to wait for a free connection before UNAVAILABLE (default: "
        f"{d.database_pool_timeout})",
    )
    add(
        "--database-connect-timeout",
        help=f"seconds to open a connection (default: {d.database_connect_timeout})",
    )
    add(
        "--delivery-lease",
        help=f"seconds before a dead replica's claimed pushes go to another (default: "
        f"{d.delivery_lease})",
    )
    add(
        "--tls",
        action="store_const",
        const=True,
        help="mutual TLS (production): clients present certificates the CA signed",
    )
    rpc_only("--partner-rate", help=f"a bank's calls a second, 0: none (default: {d.partner_rate})")
    rpc_only("--partner-burst", help=f"calls a bank may make at once (default: {d.partner_burst})")
    add("--tls-key", help="server private key (default: DATA_DIR/certs/server.key)")
    add("--tls-cert", help="server certificate (default: DATA_DIR/certs/server.pem)")
    add("--tls-client-ca", help="CA of client certificates (default: DATA_DIR/certs/ca.pem)")


def _settings(args: argparse.Namespace) -> Settings:
    flags = {f.name: getattr(args, f.name, None) for f in fields(Settings)}
    return load_settings(flags=flags, environ=os.environ, config_file=args.config)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colending-gateway", description="Bank-platform co-lending gateway."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--log-format",
        choices=["auto", "json", "text"],
        default=None,
        help="log lines as JSON or text (default: text on a terminal, JSON otherwise)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the gRPC server (settings: flags > COLENDING_* environment > --config TOML)",
    )
    _serve_flags(serve)
    certs = commands.add_parser("certs", help="a development CA for mutual TLS")
    _common(certs)
    certs_commands = certs.add_subparsers(dest="certs_command", required=True)
    certs_commands.add_parser("init", help="make the CA in DATA_DIR/certs")
    issue = certs_commands.add_parser("issue", help="a client certificate")
    who = issue.add_mutually_exclusive_group(required=True)
    who.add_argument("--partner", metavar="ID", help="for a partner bank")
    who.add_argument("--platform", action="store_true", help="for the platform")
    who.add_argument("--admin", action="store_true", help="for an operator")
    issue.add_argument("--out", type=Path, help="where to write it (default: DATA_DIR/certs)")
    server_cert = certs_commands.add_parser(
        "server", help="the gateway's server certificate, or a mock bank's receiver's (--bank)"
    )
    server_cert.add_argument(
        "--name", action="append", required=True, help="a host name or IP address it answers as"
    )
    server_cert.add_argument("--bank", metavar="ID", help="for this bank's push receiver")
    server_cert.add_argument("--out", type=Path, help="where to write it (default: DATA_DIR/certs)")

    config = commands.add_parser("config", help="the effective settings")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    _serve_flags(config_commands.add_parser("show", help="print them, secrets masked"))

    # Serve's flags for the database, pool, lease, TLS and --delivery-workers; a configuration
    # file or environment made for serve works as it is.
    _serve_flags(
        commands.add_parser("deliver", help="run only the push-delivery workers"), rpc=False
    )

    sweep = commands.add_parser(
        "sweep",
        help="once: expire referrals past their validity and blacklist entries past retention, "
        "decide appeals past their deadline, expire undecided order batches, make orders "
        "unsettled past their date overdue and scheduled loans past due overdue or defaulted",
    )
    _common(sweep)

    commands.add_parser(
        "submit",
        help="submit merchants from a JSON Lines file (see `submit --help`)",
        add_help=False,  # its own parser (gateway.bulk) answers --help
    )

    db = commands.add_parser("db", help="the database schema")
    _common(db)
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="migrate the schema to this gateway's revision")
    db_commands.add_parser("current", help="show the schema revision of the database")

    demo = commands.add_parser(
        "demo", help="run the whole network on this machine, checked step by step"
    )
    demo.add_argument("--merchants", type=int, default=36, help="merchants the platform submits")
    demo.add_argument("--seed", type=int, default=2026, help="sample data seed")

    sample = commands.add_parser("sample", help="generate sample data")
    sample_kinds = sample.add_subparsers(dest="sample_kind", required=True)
    sample_merchants_parser = sample_kinds.add_parser(
        "merchants", help="merchant profiles as JSON Lines (protobuf JSON), deterministic by seed"
    )
    sample_merchants_parser.add_argument("--count", type=int, default=100)
    sample_merchants_parser.add_argument("--seed", type=int, default=1)
    sample_merchants_parser.add_argument(
        "--ineligible-pct", type=int, default=20, help="share deliberately ineligible"
    )
    sample_merchants_parser.add_argument(
        "--risky-pct", type=int, default=15, help="share with disputes or overdue history"
    )

    keys = commands.add_parser("keys", help="referral-signing, log and network keys")
    _common(keys)
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    keys_commands.add_parser("show", help="list the published referral and log keys")
    keys_commands.add_parser("rotate", help="make a new active key; old keys stay published")
    export = keys_commands.add_parser(
        "export-network-key",
        help="write the network key (the pseudonym HMAC secret) for a partner bank, mode 0600",
    )
    export.add_argument("path", type=Path, help="file to create (must not exist)")

    partners = commands.add_parser("partners", help="partner banks")
    _common(partners)
    partner_commands = partners.add_subparsers(dest="partners_command", required=True)
    register = partner_commands.add_parser("register", help="register a bank (default policy)")
    register.add_argument("partner_id")
    register.add_argument("--name", required=True, help="display name")
    register.add_argument("--endpoint", default="", help="BankReceiverService host:port")
    partner_commands.add_parser("list", help="list banks")
    suspend = partner_commands.add_parser("suspend", help="suspend a bank")
    suspend.add_argument("partner_id")
    suspend.add_argument("--reason", required=True)

    reconcile = commands.add_parser(
        "reconcile",
        help="the signed statement of a past business date between a bank and the platform "
        "(made once; it closes the bank's books through that day)",
    )
    _common(reconcile)
    reconcile.add_argument("bank_id")
    reconcile.add_argument("business_date", type=date.fromisoformat, help="YYYY-MM-DD (China)")
    reconcile.add_argument("--csv", type=Path, help="write the lines to this CSV file (fen)")
    return parser


def _idem(method: str) -> Idempotency:
    # Each CLI invocation is a new request; the id is random, so the fingerprint is moot.
    return Idempotency(
        caller=CLI_CALLER, method=method, request_id=str(uuid.uuid4()), fingerprint="cli"
    )


class _ConfigError(Exception):
    pass


def _configured(args: argparse.Namespace) -> tuple[Settings, ServerConfig]:
    """The effective settings (flags, environment, file) as a server configuration, with
    logging set up; ``_ConfigError`` says what is wrong in one line."""
    try:
        settings = _settings(args)
    except SettingsError as error:
        raise _ConfigError(str(error)) from error
    level, style = _logging_setup(args, settings)
    configure_logging(level=level, style=style)
    tls = None
    if settings.tls:
        certs_dir = settings.data_dir / "certs"
        tls = TlsFiles(
            key=Path(settings.tls_key or certs_dir / "server.key"),
            certificate=Path(settings.tls_cert or certs_dir / "server.pem"),
            client_ca=Path(settings.tls_client_ca or certs_dir / "ca.pem"),
        )
        for path in (tls.key, tls.certificate, tls.client_ca):
            if not path.is_file():
                raise _ConfigError(
                    f"TLS file {path} is missing (make a development CA with "
                    "`colending-gateway certs init` and `certs server`)"
                )
    return settings, ServerConfig(
        tls=tls,
        data_dir=settings.data_dir,
        database_url=settings.database_url or None,
        database_pool=PoolOptions(
            size=settings.database_pool_size,
            overflow=settings.database_pool_overflow,
            timeout=settings.database_pool_timeout,
            connect_timeout=settings.database_connect_timeout,
        ),
        delivery_policy=DeliveryPolicy(lease=timedelta(seconds=settings.delivery_lease)),
        host=settings.host,
        port=settings.port,
        max_workers=settings.workers,
        allow_insecure_remote=settings.allow_insecure_remote,
        max_streams=settings.max_streams,
        streams_per_caller=settings.streams_per_caller,
        partner_rate=settings.partner_rate,
        partner_burst=settings.partner_burst,
        health_interval=settings.health_interval,
        blacklist_rules=BlacklistRules(
            retention_years=settings.retention_years,
            appeal_days=settings.appeal_days,
            remove_on_recovery=settings.remove_on_recovery,
        ),
    )


def _serve(args: argparse.Namespace) -> int:
    try:
        settings, config = _configured(args)
    except _ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    processes = settings.processes or ((cores or 1) if settings.database_url else 1)
    if processes == 1:
        with log_lines_from_a_thread():
            return _serve_one(settings, config)
    return _serve_many(settings, config, processes, logging_setup=_logging_setup(args, settings))


def _serve_one(settings: Settings, config: ServerConfig, *, index: int = 0) -> int:
    """One server process. The first (``index`` 0) also runs the sweeps and push delivery, so
    ``serve --processes`` runs each once per host; process ``index`` serves its metrics on
    ``metrics_port + index``."""
    tls = config.tls
    try:
        gateway = open_gateway(config)
        server, port = build_server(config, gateway=gateway)
    except InsecureBindRefused as exc:
        log.error("%s", exc)
        return 2
    except (RuntimeError, OSError, SQLAlchemyError) as exc:
        # A port in use, a key that does not match its certificate, a database that is down:
        # one line naming it, not a traceback.
        print(f"error: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    server.start()
    first = index == 0
    if settings.metrics_port:
        # Each process's own RPC figures, on its own port (the first's also has the store's).
        metrics_port = settings.metrics_port + index
        if first:
            REGISTRY.register(StoreCollector(gateway.database))
        try:
            start_http_server(metrics_port, addr=settings.host)
        except OSError as exc:
            server.stop(grace=None)
            print(f"error: --metrics-port {metrics_port}: {exc}", file=sys.stderr)
            return 2
        log.info("metrics on http://%s:%d/metrics", settings.host, metrics_port)
    if tls is None:
        if first:
            print(INSECURE_BANNER, file=sys.stderr, flush=True)
        log.warning("insecure development mode: no TLS, caller identity is self-declared")
    else:
        log.info("mutual TLS: callers are identified by their client certificates")
    store = (
        masked(settings)["database_url"]
        if settings.database_url
        else settings.data_dir / "gateway.db"
    )
    log.info(
        "listening on %s:%d (database: %s, keys: %s)",
        settings.host,
        port,
        store,
        settings.data_dir / "keys",
    )
    log.info("active signing key %s", gateway.referrals.published_keys()[0].keyid)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    workers: list[threading.Thread] = []
    if first:
        workers.append(
            threading.Thread(
                target=_sweep_until,
                args=(gateway, stop, settings.sweep_interval),
                name="expiry-sweep",
            )
        )
        workers[0].start()
        workers += _start_delivery(gateway, stop, settings.delivery_workers)
    stop.wait()
    for worker in workers:
        worker.join()
    log.info("shutting down: finishing in-flight calls (up to 10 s)")
    server.stop(grace=10).wait()
    return 0


def _serve_many(
    settings: Settings, config: ServerConfig, processes: int, *, logging_setup: tuple[int, str]
) -> int:
    """``processes`` servers on one port (SO_REUSEPORT, as in grpc's multiprocessing example):
    the kernel spreads connections over them, and each has its own GIL, database pool and
    in-memory indexes. This process migrates the database and makes the keys once, reserves the
    port, starts them, and stops them all when told to or when one of them exits. Each bank's
    call rate and stream slots are shared out between them, so the totals stay as configured."""
    try:
        refuse_insecure_bind(config)
        open_gateway(config).database.engine.dispose()  # migrations and keys, before the children
        reserved = _reserve_port(config.host, config.port)
    except InsecureBindRefused as exc:
        log.error("%s", exc)
        return 2
    except (RuntimeError, OSError, SQLAlchemyError) as exc:
        print(f"error: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    children: list[multiprocessing.process.BaseProcess] = []
    failed: list[str] = []
    with reserved:
        port = reserved.getsockname()[1]
        shared = shared_config(config, processes=processes, port=port)
        context = multiprocessing.get_context("spawn")  # nothing of this process's gRPC or pool
        try:
            for index in range(processes):
                child = context.Process(
                    target=_serve_child,
                    args=(settings, shared, index, logging_setup, os.getpid()),
                    name=f"colending-gateway-{index}",
                )
                child.start()
                children.append(child)
            log.info(
                "serving on %s:%d with %d processes (pids %s); up to %d database connections",
                settings.host,
                port,
                processes,
                ", ".join(str(c.pid) for c in children),
                processes * (settings.database_pool_size + settings.database_pool_overflow),
            )
            while not stop.is_set() and not failed:
                multiprocessing.connection.wait([c.sentinel for c in children], timeout=0.2)
                failed = [
                    f"pid {c.pid} (exit code {c.exitcode})"
                    for c in children
                    if c.exitcode is not None
                ]
            if failed:
                log.error("server process %s exited; stopping the others", ", ".join(failed))
        finally:
            for member in children:
                if member.is_alive():
                    member.terminate()  # SIGTERM: each finishes its in-flight calls
            for member in children:
                member.join(timeout=15)
                if member.is_alive():
                    member.kill()
                    member.join()
    if not failed:
        return 0
    return 2 if 2 in (c.exitcode for c in children) else 1  # 2: a setting or resource refused


def shared_config(config: ServerConfig, *, processes: int, port: int) -> ServerConfig:
    """One of ``processes`` servers' share: the port with SO_REUSEPORT, and each bank's call
    rate, burst and stream slots divided between them (rounded up)."""
    return replace(
        config,
        port=port,
        reuse_port=True,
        partner_rate=config.partner_rate / processes,
        partner_burst=-(-config.partner_burst // processes),
        max_streams=-(-config.max_streams // processes),
        streams_per_caller=-(-config.streams_per_caller // processes),
    )


def _serve_child(
    settings: Settings,
    config: ServerConfig,
    index: int,
    logging_setup: tuple[int, str],
    parent: int,
) -> None:
    _die_with_parent(parent)
    level, style = logging_setup
    configure_logging(level=level, style=style)
    with log_lines_from_a_thread():
        code = _serve_one(settings, config, index=index)
    sys.exit(code)


def _die_with_parent(parent: int) -> None:
    """Linux: SIGTERM this process when the parent dies (even by SIGKILL), so no server is
    left behind holding the port."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the call
            sys.exit(1)


def _reserve_port(host: str, port: int) -> socket.socket:
    """A bound (not listening) SO_REUSEPORT socket holding ``port`` (0: a free one) while the
    servers bind it too."""
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    reserved = socket.socket(family, socket.SOCK_STREAM)
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        reserved.bind((address, port))
    except OSError:
        reserved.close()
        raise
    return reserved


def _logging_setup(args: argparse.Namespace, settings: Settings) -> tuple[int, str]:
    return (logging.DEBUG if args.verbose else logging.INFO, args.log_format or settings.log_format)


def _start_delivery(gateway: Gateway, stop: threading.Event, count: int) -> list[threading.Thread]:
    assert gateway.dispatcher is not None
    workers = gateway.dispatcher.start(stop, workers=count)
    if workers:
        log.info("push delivery: %d worker(s)", len(workers))
    return workers


def _deliver(args: argparse.Namespace) -> int:
    """The dispatcher alone, beside replicas that serve RPCs with --delivery-workers 0. It reads
    the same settings as serve: database, pool, lease and TLS (pushes use the server's
    certificate and CA)."""
    try:
        settings, config = _configured(args)
        gateway = open_gateway(config)
    except _ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError, SQLAlchemyError) as exc:
        print(f"error: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    workers = _start_delivery(gateway, stop, settings.delivery_workers)
    if not workers:
        print("error: --delivery-workers is 0: nothing to do", file=sys.stderr)
        return 2
    stop.wait()
    for worker in workers:
        worker.join()
    return 0


def _sweep_until(gateway: Gateway, stop: threading.Event, interval: float) -> None:
    """Expire referrals past their validity, decide blacklist entries due, expire undecided
    order batches, make orders unsettled past their date overdue and scheduled loans past due
    overdue or defaulted, every ``interval`` seconds until ``stop``."""
    while not stop.wait(interval):
        try:
            if moved := gateway.financing.expire_due():
                log.info("expired %d referral case(s) past their validity", moved)
            if changed := gateway.blacklist.sweep():
                log.info("expired or decided %d blacklist entr(ies)", changed)
            if changed := gateway.orders.sweep():
                log.info("expired %d order batch(es) or made order loans overdue", changed)
            if changed := gateway.financing.sweep_arrears():
                log.info("put %d scheduled loan(s) into arrears or default", changed)
        except GatewayError as exc:  # a database outage: try again next round
            log.warning("expiry sweep skipped: %s", exc.message)
        except Exception:  # anything else: keep the sweeper alive, say why loudly
            log.exception("expiry sweep failed; trying again next round")


def _certs(args: argparse.Namespace) -> int:
    directory = args.data_dir / "certs"
    bank_id = getattr(args, "partner", None) or getattr(args, "bank", None)
    if bank_id and (problem := partner_id_problem(bank_id)):
        print(f"error: bank id {bank_id!r}: {problem}", file=sys.stderr)
        return 2
    try:
        if args.certs_command == "init":
            files = init_ca(directory)
        elif args.certs_command == "server" and args.bank:
            files = issue_server(
                directory,
                hosts=args.name,
                out=args.out or directory,
                stem=f"bank-{args.bank}-receiver",
                identity=None,
            )
        elif args.certs_command == "server":
            files = issue_server(directory, hosts=args.name, out=args.out or directory)
        else:
            identity = "platform" if args.platform else "admin"
            if args.partner:
                identity = f"partner/{args.partner}"
            files = issue_client(directory, identity=identity, out=args.out or directory)
    except CertificateError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {files.certificate} and {files.key} (mode 0600)")
    return 0


def _config(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # Valid TOML: it can be saved and passed back with --config.
    print("[gateway]")
    shown = masked(settings)
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if isinstance(value, bool):
            print(f"{f.name} = {str(value).lower()}")
        elif isinstance(value, int | float):
            print(f"{f.name} = {value}")
        else:
            print(f"{f.name} = {json.dumps(shown[f.name], ensure_ascii=False)}")
    return 0


def _db(args: argparse.Namespace) -> int:
    if args.database_url is None and not (args.data_dir / "gateway.db").exists():
        if args.db_command == "current":
            print(f"no database in {args.data_dir} (this gateway's revision: {migrations.head()})")
            return 0
        args.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    database = Database(url=args.database_url or sqlite_url(args.data_dir))
    try:
        if args.db_command == "upgrade":
            database.create_schema()
        revision = migrations.current(database.engine)
        print(f"schema revision {revision or 'none'} (this gateway's: {migrations.head()})")
    finally:
        database.dispose()
    return 0


def _demo(args: argparse.Namespace) -> int:
    # The demo narrates its own steps; a log line per RPC would bury them (-v shows them).
    rpc_log = logging.getLogger("gateway.rpc")
    level = rpc_log.level
    if not args.verbose:
        rpc_log.setLevel(logging.WARNING)
    try:
        return 0 if run_demo(merchants=args.merchants, seed=args.seed) else 1
    finally:
        rpc_log.setLevel(level)


def _sample(args: argparse.Namespace) -> int:
    mix = SampleMix(ineligible_pct=args.ineligible_pct, risky_pct=args.risky_pct)
    today = datetime.now(UTC).date()
    for profile in sample_merchants(args.count, seed=args.seed, as_of=today, mix=mix):
        print(json_format.MessageToJson(profile, indent=None, ensure_ascii=False))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    gateway = _gateway(args)
    moved = gateway.financing.expire_due()
    changed = gateway.blacklist.sweep()
    orders = gateway.orders.sweep()
    arrears = gateway.financing.sweep_arrears()
    print(
        f"expired {moved} case(s); expired or decided {changed} blacklist entr(ies); expired "
        f"{orders} order batch(es) or made order loans overdue; put {arrears} scheduled "
        "loan(s) into arrears or default"
    )
    return 0


def _gateway(args: argparse.Namespace) -> Gateway:
    return open_gateway(ServerConfig(data_dir=args.data_dir, database_url=args.database_url))


def _keys(args: argparse.Namespace) -> int:
    gateway = _gateway(args)
    if args.keys_command == "export-network-key":
        secret = open_network_key(args.data_dir / "network-key", create=False)
        try:
            fd = os.open(args.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            print(f"error: {args.path} exists; choose a new file", file=sys.stderr)
            return 1
        with os.fdopen(fd, "w") as f:
            f.write(secret.hex() + "\n")
        print(f"wrote the network key to {args.path} (mode 0600); send it to the bank securely")
        return 0
    if args.keys_command == "rotate":
        key = gateway.referrals.rotate_signing_key(idem=_idem("RotateSigningKey"))
        print(f"new active key {key.keyid}")
    for title, keys in (
        ("referral signing keys", gateway.referrals.published_keys()),
        ("blacklist log keys", gateway.blacklist.log.published_keys()),
    ):
        print(f"{title}:")
        for k in keys:
            state = "active" if k.active else f"retired {k.retired_at:%Y-%m-%d %H:%M}Z"
            print(
                f"  {k.keyid}  ed25519  {k.public_key.hex()}  "
                f"created {k.created_at:%Y-%m-%d %H:%M}Z  {state}"
            )
    return 0


def _partners(args: argparse.Namespace) -> int:
    gateway = _gateway(args)
    if args.partners_command == "register":
        partner = gateway.partners.register_partner(
            idem=_idem("RegisterPartner"),
            partner_id=args.partner_id,
            display_name=args.name,
            endpoint=args.endpoint,
            policy=None,
            decision_public_key=b"",
        )
        print(f"registered {partner.partner_id} ({partner.display_name})")
    elif args.partners_command == "suspend":
        partner = gateway.partners.suspend_partner(
            idem=_idem("SuspendPartner"), partner_id=args.partner_id, reason=args.reason
        )
        print(f"suspended {partner.partner_id}: {partner.suspension_reason}")
    else:
        token = ""
        while True:
            page = gateway.partners.list_partners(page_size=500, page_token=token, state=None)
            for p in page.items:
                flag = "" if p.state is PartnerState.ACTIVE else "  SUSPENDED"
                print(f"{p.partner_id:<24} {p.display_name:<32} {p.endpoint or '-'}{flag}")
            token = page.next_page_token
            if not token:
                break
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    gateway = _gateway(args)
    stored = gateway.reconciliation.statement(bank_id=args.bank_id, day=args.business_date)
    # The signed bytes, not a recomputation: what the bank verifies is what is exported.
    payload = reconciliation_pb2.ReconciliationPayload.FromString(stored.envelope.payload)
    columns = [f.name for f in reconciliation_pb2.ReconciliationLine.DESCRIPTOR.fields]
    if args.csv is not None:
        with args.csv.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(columns)
            for line in [*payload.lines, payload.totals]:
                writer.writerow(
                    [
                        getattr(line, c).amount_minor
                        if line.DESCRIPTOR.fields_by_name[c].message_type
                        else getattr(line, c) or ("TOTAL" if c == "case_id" else "")
                        for c in columns
                    ]
                )
    payer = reconciliation_pb2.NetPayer.Name(payload.net_payer).removeprefix("NET_PAYER_")
    print(
        f"statement {stored.statement_id} of {stored.bank_id} for "
        f"{stored.business_date.isoformat()}: {len(payload.lines)} line(s); net "
        f"{format_fen(payload.net_amount.amount_minor)} paid by {payer.lower()}"
        + (f"; lines written to {args.csv}" if args.csv else "")
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `submit` has its own parser: hand it everything after the word, --help included.
    tail: list[str] = []
    if "submit" in argv and all(a.startswith("-") for a in argv[: argv.index("submit")]):
        at = argv.index("submit")
        argv, tail = argv[: at + 1], argv[at + 1 :]
    args = _parser().parse_args(argv)
    configure_logging(level=logging.DEBUG if args.verbose else logging.INFO, style=args.log_format)
    # Alembic narrates every start at INFO; its warnings and errors still show.
    logging.getLogger("alembic").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    handlers = {
        "serve": _serve,
        "deliver": _deliver,
        "keys": _keys,
        "partners": _partners,
        "sweep": _sweep,
        "demo": _demo,
        "submit": lambda _: bulk.main(tail),
        "db": _db,
        "config": _config,
        "certs": _certs,
        "sample": _sample,
        "reconcile": _reconcile,
    }
    try:
        return handlers[args.command](args)
    except GatewayError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except StaleSchema as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
