"""The operator's view of push delivery: list the outbox (dead letters included) and re-queue a
dead letter.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlmodel import Session

from gateway._transactions import (
    Idempotency,
    Transactions,
    utc_now,
)
from gateway.delivery.dispatcher import Dispatcher
from gateway.domain import paging
from gateway.domain.delivery import DeliveryState, DeliveryTask
from gateway.domain.paging import Page
from gateway.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from gateway.store import delivery_repository as outbox
from gateway.store.db import Database


class DeliveryTasks:
    def __init__(
        self,
        *,
        database: Database,
        clock: Callable[[], datetime] = utc_now,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        self._db = database
        self._dispatcher = dispatcher
        self._tx = Transactions(database=database, clock=clock)

    def list_delivery_tasks(
        self, *, page_size: int, page_token: str, state: DeliveryState | None, bank_id: str
    ) -> Page[DeliveryTask]:
        size = paging.page_size(page_size)
        after = paging.decode_int_token(page_token, "deliveries") if page_token else 0
        with self._db.reading() as session:
            rows = outbox.list_tasks(
                session, after=after, limit=size + 1, state=state, bank_id=bank_id
            )
        items = rows[:size]
        token = paging.encode_token("deliveries", items[-1].sequence) if len(rows) > size else ""
        return Page(items=items, next_page_token=token)

    def requeue_delivery(self, *, idem: Idempotency, task_id: str) -> DeliveryTask:
        if not task_id:
            raise InvalidArgument.single("task_id", "required")

        def act(session: Session, now: datetime) -> tuple[str, DeliveryTask]:
            task = _load_task(session, task_id)
            if not outbox.requeue(session, task_id=task_id, now=now):
                raise FailedPrecondition.single(
                    "NOT_DEAD_LETTERED",
                    f"deliveryTasks/{task_id}",
                    f"delivery is {task.state.name}; only a dead letter can be re-queued",
                )
            return task_id, _load_task(session, task_id)

        task = self._tx.idempotent(idem, replay=_load_task, act=act)
        if self._dispatcher is not None:
            self._dispatcher.notify()
        return task


def _load_task(session: Session, task_id: str) -> DeliveryTask:
    task = outbox.get_task(session, task_id)
    if task is None:
        raise NotFound("delivery task", task_id)
    return task
