"""What an operator sees: one log line per RPC with its request id and caller, structured logs,
and Prometheus metrics.

Log lines carry ids, methods, status codes and durations, never request content: merchant
data, identifiers and keys stay out of logs by construction (a test checks the submit and check
paths). The request id comes from the caller's ``x-request-id`` metadata when it is sane, or is
made here, and is sent back as initial metadata so both sides can quote it.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import logging.handlers
import queue
import re
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import cast

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlmodel import select

from gateway.domain.ids import new_id
from gateway.store.db import Database
from gateway.store.log_store import DatabaseHashStore
from gateway.store.tables import BlacklistEntryRow, DeliveryTaskRow

REQUEST_ID_KEY = "x-request-id"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
caller_var: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="-")

RPCS_TOTAL = "colending_rpcs_total"
RPCS = Counter("colending_rpcs", "RPCs answered, by method and status code", ["method", "code"])
RPC_SECONDS = Histogram(
    "colending_rpc_duration_seconds",
    "Time to answer an RPC (to the end of the stream for streams)",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DELIVERY_ATTEMPTS = Counter(
    "colending_delivery_attempts_total",
    "Push delivery attempts, by bank and outcome (delivered, retryable, final)",
    ["bank", "outcome"],
)


def request_id_from(metadata: Iterable[tuple[str, str | bytes]]) -> str:
    for key, value in metadata:
        if key == REQUEST_ID_KEY and isinstance(value, str) and _SANE_REQUEST_ID.match(value):
            return value
    return new_id("req")


# --- logs ------------------------------------------------------------------------------------


class _RequestContext(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):  # not already stamped by _QueuedInContext
            record.request_id = request_id_var.get()
            record.caller = caller_var.get()
        return True


class _QueuedInContext(logging.handlers.QueueHandler):
    """Stamps the request context and the message in the logging thread, where the context
    variables hold them; the listener formats and writes."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.request_id = request_id_var.get()
        record.caller = caller_var.get()
        record.msg = record.getMessage()  # now: an argument may change before the line is written
        record.args = None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        # A full queue (stderr not keeping up) slows the logging thread down, as the stream's
        # lock did, instead of growing without bound or dropping the line.
        cast("queue.Queue[logging.LogRecord]", self.queue).put(record)


QUEUED_LINES_MAX = 10_000


@contextlib.contextmanager
def log_lines_from_a_thread() -> Iterator[None]:
    """Within, the root logger's handlers run in a thread of their own. A server's handler
    threads then only queue their line: under load they no longer wait for each other on the
    stream's lock or pay for the JSON and the write while holding the GIL. On the way out the
    queue is written in full (a kill -9 loses at most the lines still queued). The root's
    handlers are the ones present on the way in: configure logging before, not within."""
    root = logging.getLogger()
    handlers = root.handlers[:]
    if not handlers:
        raise RuntimeError("configure logging first: the root logger has no handler")
    lines: queue.Queue[logging.LogRecord] = queue.Queue(maxsize=QUEUED_LINES_MAX)
    listener = logging.handlers.QueueListener(lines, *handlers, respect_handler_level=True)
    listener.start()
    root.handlers[:] = [_QueuedInContext(lines)]
    try:
        yield
    finally:
        root.handlers[:] = handlers
        listener.stop()
        # A thread that found the queue handler just before the swap back may have queued a
        # line after the listener's last one.
        while True:
            try:
                listener.handle(lines.get_nowait())
            except queue.Empty:
                break


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,  # which of `serve --processes` wrote it
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
            "caller": getattr(record, "caller", "-"),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(*, level: int, style: str = "auto") -> None:
    """``style``: "json", "text", or "auto" (text on a terminal, JSON otherwise)."""
    if style == "auto":
        style = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler()
    handler.addFilter(_RequestContext())
    handler.setFormatter(
        JsonFormatter()
        if style == "json"
        else logging.Formatter(
            "%(asctime)s %(levelname)-7s %(name)s %(process)d [%(request_id)s %(caller)s]: "
            "%(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


# --- metrics read from the database at scrape time ----------------------------------------------


class StoreCollector(Collector):
    """Outbox depth, dead letters, blacklist entries by status, log size, database pool use."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def collect(self) -> Iterable[GaugeMetricFamily]:
        deliveries = GaugeMetricFamily(
            "colending_delivery_tasks",
            "Push deliveries by state (pending is the outbox depth)",
            labels=["state"],
        )
        entries = GaugeMetricFamily(
            "colending_blacklist_entries", "Blacklist entries by status", labels=["status"]
        )
        log_size = GaugeMetricFamily("colending_blacklist_log_size", "Leaves in the blacklist log")
        try:
            with self._db.reading() as session:
                for state, count in session.exec(
                    select(DeliveryTaskRow.state, func.count()).group_by(DeliveryTaskRow.state)
                ):
                    deliveries.add_metric([state], count)
                for status, count in session.exec(
                    select(BlacklistEntryRow.status, func.count()).group_by(
                        BlacklistEntryRow.status
                    )
                ):
                    entries.add_metric([status], count)
                log_size.add_metric([], DatabaseHashStore(session=session).size())
        except Exception:  # a scrape during an outage: report what we can, not an error page
            logging.getLogger(__name__).warning("metrics: the database did not answer")
            return
        yield deliveries
        yield entries
        yield log_size
        pool = self._db.engine.pool
        checked_out = getattr(pool, "checkedout", None)
        if callable(checked_out):
            in_use = GaugeMetricFamily(
                "colending_db_connections_in_use", "Database connections checked out"
            )
            in_use.add_metric([], float(checked_out()))
            yield in_use
