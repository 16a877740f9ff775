"""The partners, held in memory for the hot paths (a blacklist check, a submission), so knowing
whether the calling bank is active, or what a bank's policy and endpoint are, costs no read.

Fresh within ``max_age`` seconds: a registration, update or suspension in this process clears
it at once (``PartnerRegistry`` calls :meth:`PartnerCache.changed`); one made by another
process or replica is seen once the copy is older than ``max_age``. A partner missing from the
copy is looked up by its id before it is refused, so a bank registered elsewhere a moment ago
is not turned away (the table is read again only if it was). Writers that must not act on a
suspended bank still check its state in their own transaction; the copy only saves the reads
before it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection

from gateway._transactions import refuse_unless_active
from gateway.domain.partner import Partner
from gateway.store import repository as repo
from gateway.store.db import Database

DEFAULT_MAX_AGE = 0.5  # seconds


class PartnerCache:
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
        self._partners: dict[str, Partner] = {}
        self._read_at = float("-inf")
        # Bumped by changed(): a reload that began before a change must not pass for fresh.
        self._generation = 0
        self._lock = threading.Lock()

    def require_active(self, partner_id: str) -> None:
        """PERMISSION_DENIED for an unknown partner, FAILED_PRECONDITION for a suspended one."""
        partner = self.known([partner_id]).get(partner_id)
        refuse_unless_active(partner_id, None if partner is None else partner.state)

    def known(self, partner_ids: Collection[str]) -> dict[str, Partner]:
        """Those of ``partner_ids`` that are registered, active or not."""
        if self._monotonic() - self._read_at > self._max_age:
            self._reload()
        partners = self._partners
        if missing := [p for p in partner_ids if p not in partners]:
            # Registered elsewhere since? Ask for those rows alone: a caller naming banks that
            # do not exist must not make every request read the whole table.
            with self._db.reading() as session:
                registered = repo.get_partners(session, missing)
            if registered:
                self._reload()
                partners = self._partners
        return {p: partners[p] for p in partner_ids if p in partners}

    def changed(self) -> None:
        """A partner changed in this process: read them all again on the next question."""
        with self._lock:
            self._generation += 1
            self._read_at = float("-inf")

    def _reload(self) -> None:
        with self._lock:
            generation = self._generation
        with self._db.reading() as session:
            partners = repo.all_partners(session)
        with self._lock:
            self._partners = partners
            # Read before a change committed here: use it now, but read again next time.
            if generation == self._generation:
                self._read_at = self._monotonic()
