"""The dispatcher: workers that push due outbox tasks (referrals, alerts) to the banks' receivers.

Each worker claims a few due tasks under a lease (so a worker or replica that dies frees its
tasks when the lease runs out), calls the bank with a deadline outside any transaction, and
records the attempt. The call itself goes through an injected :class:`BankTransport`, so this
module knows nothing of gRPC and tests can put any bank behind it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlmodel import Session

from gateway._transactions import utc_now
from gateway.domain.consent import ConsentState
from gateway.domain.delivery import (
    DeliveryAttempt,
    DeliveryKind,
    DeliveryPolicy,
    DeliveryState,
    DeliveryTask,
    Receipt,
    after_attempt,
    outcome_of,
)
from gateway.domain.financing import FinancingState
from gateway.domain.ids import new_id
from gateway.domain.partner import PartnerState
from gateway.domain.referral import SignedPayload
from gateway.observe import DELIVERY_ATTEMPTS
from gateway.store import delivery_repository as outbox
from gateway.store import monitoring_repository as monitoring_repo
from gateway.store import repository as repo
from gateway.store.db import Database

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """The bank did not give a receipt; ``status_code`` is the gRPC status code's name."""

    def __init__(self, status_code: str, detail: str) -> None:
        super().__init__(f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


class BankTransport(Protocol):
    def deliver(
        self,
        *,
        endpoint: str,
        referral_id: str,
        case_id: str,
        envelope: SignedPayload,
        attempt: int,
        timeout: float,
    ) -> Receipt:
        """Call the bank's DeliverReferral; raise :class:`DeliveryError` without a receipt."""
        ...

    def deliver_alert(
        self,
        *,
        endpoint: str,
        alert_id: str,
        envelope: SignedPayload,
        attempt: int,
        timeout: float,
    ) -> Receipt:
        """Call the bank's DeliverAlert; raise :class:`DeliveryError` without a receipt."""
        ...


@dataclass(frozen=True, slots=True)
class _Result:
    """What one call came to: an attempt (with a receipt if the bank gave one), or a cancel."""

    attempt: DeliveryAttempt | None = None
    receipt: Receipt | None = None
    cancel: str = ""


@dataclass(frozen=True, slots=True)
class _Target:
    """Where and what to push for one task, or why it must not be pushed any more."""

    envelope: SignedPayload | None = None
    endpoint: str = ""
    cancel: str = ""


def _target(session: Session, task: DeliveryTask, now: datetime) -> _Target:
    """Read afresh at each attempt: the push must stop when the case (or alert), the merchant's
    consent or the bank stops allowing it, and goes to the bank's endpoint as it is now."""
    if task.kind is DeliveryKind.ALERT:
        alert = monitoring_repo.get_alert(session, task.case_id)
        if alert is None:
            return _Target(cancel="alert is gone")
        if alert.expires_at <= now:
            return _Target(cancel="the alert expired before it could be delivered")
        snapshot = monitoring_repo.get_snapshot(session, alert.snapshot_id)
        consent_id = snapshot.consent_id if snapshot is not None else ""
        envelope = alert.envelope
    else:
        case = repo.get_case(session, task.case_id)
        if case is None or case.state is not FinancingState.REFERRED:
            # Withdrawn, expired, or pulled by the bank first: nothing left to push.
            return _Target(cancel=f"case is {'gone' if case is None else case.state.name}")
        if case.expires_at <= now:
            return _Target(cancel="the referral expired before it could be delivered")
        consent_id = case.consent_id
        envelope = case.envelope
    consent = repo.get_consent(session, consent_id)
    if consent is None or (state := consent.state(now)) is not ConsentState.ACTIVE:
        return _Target(cancel=f"consent is {'gone' if consent is None else state.name}")
    partner = repo.get_partner(session, task.bank_id)
    if partner is None or partner.state is not PartnerState.ACTIVE:
        return _Target(cancel="the bank is suspended")
    if not partner.endpoint:
        return _Target(cancel="the bank no longer takes pushes (no endpoint)")
    return _Target(envelope=envelope, endpoint=partner.endpoint)


class Dispatcher:
    def __init__(
        self,
        *,
        database: Database,
        transport: BankTransport,
        policy: DeliveryPolicy = DeliveryPolicy(),  # noqa: B008  (frozen, so sharing is safe)
        clock: Callable[[], datetime] = utc_now,
        batch: int = 8,
    ) -> None:
        self._db = database
        self._transport = transport
        self._policy = policy
        self._clock = clock
        self._batch = batch
        self._wakeup = threading.Event()
        # Bank calls of a batch run side by side: one slow bank does not hold up the others.
        self._calls = futures.ThreadPoolExecutor(
            max_workers=max(batch, 4), thread_name_prefix="delivery-call"
        )
        self._call_capacity = max(batch, 4)
        self._worker_prefix = f"{os.uname().nodename}:{os.getpid()}"

    def notify(self) -> None:
        """New tasks were committed: wake an idle worker now rather than at its next poll."""
        self._wakeup.set()

    def run_once(self, worker: str = "") -> int:
        """Claim one batch of due tasks, call the banks concurrently, record every outcome in
        one transaction; returns how many tasks were worked.

        Two short write transactions per batch, not two per task: on SQLite each commit is an
        fsync, and the write lock is shared with every submission.
        """
        worker = worker or f"{self._worker_prefix}:{threading.get_ident()}"
        now = self._clock()
        with self._db.writing() as session:
            tasks = outbox.claim_due(
                session,
                now=now,
                lease_until=now + self._policy.lease,
                worker=worker,
                limit=self._batch,
            )
        if not tasks:
            return 0
        with self._db.reading() as session:
            targets = {t.task_id: _target(session, t, now) for t in tasks}
        results = list(self._calls.map(lambda t: self._call(t, targets[t.task_id]), tasks))
        with self._db.writing() as session:
            for task, result in zip(tasks, results, strict=True):
                try:
                    with session.begin_nested():  # one lost lease must not undo the others
                        self._record(session, task, worker, result)
                except outbox.LeaseLost:
                    log.info(
                        "delivery %s: lease lost to another worker; result dropped", task.task_id
                    )
        return len(tasks)

    def run(self, stop: threading.Event, *, poll_interval: float = 0.5) -> None:
        """Work until ``stop`` is set; one call per worker thread."""
        worker = f"{self._worker_prefix}:{new_id('w')}"
        failures = 0
        while not stop.is_set():
            try:
                worked = self.run_once(worker)
                failures = 0
            except Exception as error:  # a database outage: back off, say so once a while
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    log.warning(
                        "delivery worker %s: batch failed (%d in a row): %s",
                        worker,
                        failures,
                        error,
                    )
                stop.wait(min(30.0, poll_interval * 2 ** min(failures, 6)))
                continue
            if not worked:
                self._wakeup.wait(poll_interval)
                self._wakeup.clear()

    def start(
        self, stop: threading.Event, *, workers: int, poll_interval: float = 0.5
    ) -> list[threading.Thread]:
        """Start ``workers`` threads running :meth:`run` until ``stop`` is set."""
        # Room for every worker's whole batch at once: a batch then takes one call deadline,
        # which the lease exceeds, so no task is still being pushed when its lease ends.
        if (needed := workers * self._batch) > self._call_capacity:
            self._calls.shutdown(wait=False)
            self._calls = futures.ThreadPoolExecutor(
                max_workers=needed, thread_name_prefix="delivery-call"
            )
            self._call_capacity = needed
        threads = [
            threading.Thread(
                target=self.run,
                args=(stop,),
                kwargs={"poll_interval": poll_interval},
                name=f"delivery-{n}",
            )
            for n in range(workers)
        ]
        for thread in threads:
            thread.start()
        return threads

    @contextlib.contextmanager
    def running(self, *, workers: int, poll_interval: float = 0.5) -> Iterator[None]:
        """Workers for the length of a block (the demo, benchmarks, tests)."""
        stop = threading.Event()
        threads = self.start(stop, workers=workers, poll_interval=poll_interval)
        try:
            yield
        finally:
            stop.set()
            for thread in threads:
                thread.join()

    def _call(self, task: DeliveryTask, target: _Target) -> _Result:
        if target.cancel:
            return _Result(cancel=target.cancel)
        envelope = target.envelope
        assert envelope is not None
        attempt_no = task.attempt_count + 1
        timeout = self._policy.call_timeout.total_seconds()
        started = self._clock()
        clock_start = time.perf_counter_ns()
        try:
            if task.kind is DeliveryKind.ALERT:
                receipt = self._transport.deliver_alert(
                    endpoint=target.endpoint,
                    alert_id=task.case_id,
                    envelope=envelope,
                    attempt=attempt_no,
                    timeout=timeout,
                )
            else:
                receipt = self._transport.deliver(
                    endpoint=target.endpoint,
                    referral_id=task.referral_id,
                    case_id=task.case_id,
                    envelope=envelope,
                    attempt=attempt_no,
                    timeout=timeout,
                )
            code, detail = "OK", ""
        except DeliveryError as error:
            receipt, code, detail = None, error.status_code, error.detail
        except Exception as error:  # a transport bug must cost one attempt, not the batch
            log.exception("delivery %s: transport failed", task.task_id)
            receipt, code, detail = None, "UNKNOWN", f"{type(error).__name__}"
        return _Result(
            attempt=DeliveryAttempt(
                attempt=attempt_no,
                started_at=started,
                outcome=outcome_of(code),
                status_code=code,
                latency_micros=(time.perf_counter_ns() - clock_start) // 1000,
                detail=detail,
            ),
            receipt=receipt,
        )

    def _record(self, session: Session, task: DeliveryTask, worker: str, result: _Result) -> None:
        now = self._clock()
        if result.attempt is None:
            outbox.cancel(session, task=task, worker=worker, reason=result.cancel)
            return
        attempt = result.attempt
        DELIVERY_ATTEMPTS.labels(task.bank_id, attempt.outcome.value).inc()
        if result.receipt is not None:
            self._delivered(session, task, worker, attempt, result.receipt, now)
            return
        state, next_at, reason = after_attempt(
            task,
            outcome=attempt.outcome,
            error=f"{attempt.status_code}: {attempt.detail}",
            now=now,
            policy=self._policy,
        )
        outbox.record_attempt(
            session,
            task=task,
            worker=worker,
            attempt=attempt,
            state=state,
            next_attempt_at=next_at,
            last_error=reason,
        )
        if state is DeliveryState.DEAD_LETTERED:
            log.warning("delivery %s to %s dead-lettered: %s", task.task_id, task.bank_id, reason)

    def _delivered(
        self,
        session: Session,
        task: DeliveryTask,
        worker: str,
        attempt: DeliveryAttempt,
        receipt: Receipt,
        now: datetime,
    ) -> None:
        outbox.record_attempt(
            session,
            task=task,
            worker=worker,
            attempt=attempt,
            state=DeliveryState.DELIVERED,
            next_attempt_at=now,
            delivered_at=now,
            bank_reference=receipt.bank_reference,
        )
        if task.kind is DeliveryKind.ALERT:
            return  # an alert has no state of its own to move
        case = repo.get_case(session, task.case_id, for_update=True)
        if case is not None and case.state is FinancingState.REFERRED:
            repo.update_case(
                session,
                case,
                to_state=FinancingState.DELIVERED,
                at=now,
                actor=f"partner/{task.bank_id}",
                request_id="",
                delivered_at=now,
            )
