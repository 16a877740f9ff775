"""Each partner's state, held in memory for the hot read paths (a blacklist check), so asking
whether the calling bank is active costs no database read.

Fresh within ``max_age`` seconds: a registration, update or suspension in this process clears
it at once (``PartnerRegistry`` calls :meth:`PartnerStates.changed`); one made by another
process or replica is seen once the copy is older than ``max_age``. A caller missing from the
copy is looked up again before it is refused, so a bank registered elsewhere a moment ago is
not turned away.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from gateway._transactions import refuse_unless_active
from gateway.domain.partner import PartnerState
from gateway.store import repository as repo
from gateway.store.db import Database

DEFAULT_MAX_AGE = 0.5  # seconds


class PartnerStates:
    def __init__(
        self,
        *,
        database: Database,
        max_age: float = DEFAULT_MAX_AGE,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = database
        self._max_age = max_age
        self._monotonic = monotonic
        self._states: dict[str, PartnerState] = {}
        self._read_at = float("-inf")
        # Bumped by changed(): a reload that began before a change must not pass for fresh.
        self._generation = 0
        self._lock = threading.Lock()

    def require_active(self, partner_id: str) -> None:
        """PERMISSION_DENIED for an unknown partner, FAILED_PRECONDITION for a suspended one."""
        if self._monotonic() - self._read_at > self._max_age:
            self._reload()
        state = self._states.get(partner_id)
        if state is None:  # registered elsewhere since the copy was read?
            self._reload()
            state = self._states.get(partner_id)
        refuse_unless_active(partner_id, state)

    def changed(self) -> None:
        """A partner changed in this process: read them all again on the next question."""
        with self._lock:
            self._generation += 1
            self._read_at = float("-inf")

    def _reload(self) -> None:
        with self._lock:
            generation = self._generation
        with self._db.reading() as session:
            states = repo.partner_states(session)
        with self._lock:
            self._states = states
            # Read before a change committed here: use it now, but read again next time.
            if generation == self._generation:
                self._read_at = self._monotonic()
