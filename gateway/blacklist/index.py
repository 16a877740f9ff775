"""The pseudonyms listed now, held in memory and following the blacklist log, so a check is an
HMAC and a set lookup; a borrower found listed costs a read of its entries the first time, and
is then answered from a bounded cache of recent hits until a change to it is logged.

The log is append-only and every change to an entry appends a leaf, so the index catches up by
log index: the pseudonyms of the entries changed since the size it reflects are looked up
again in the entries table (in force or not), and it then reflects the size read before them.
A change seen twice is looked up twice, to the same answer, so no read needs a snapshot.

How fresh: a change committed by this process is in the index before its RPC returns (the
writers call ``BlacklistLog.changed``, which refreshes it); one committed by another process or
replica is seen within ``max_age`` seconds, when the next check finds the index older than that
and catches up first. Every answer names the log size it reflects.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from gateway.domain.blacklist import BlacklistEntry
from gateway.store import blacklist_repository as bl
from gateway.store.db import Database
from gateway.store.log_store import DatabaseHashStore

DEFAULT_MAX_AGE = 0.5  # seconds
CACHED_HITS = 10_000  # listed borrowers whose entries are kept (a few MiB)


class ListedIndex:
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
        self._listed: set[bytes] = set()
        self._size = -1  # not loaded
        self._refreshed_at = float("-inf")
        self._refreshing = threading.Lock()
        # Entries of recent hits, by pseudonym; a logged change to one evicts it.
        self._hits: OrderedDict[bytes, list[BlacklistEntry]] = OrderedDict()
        self._edit = threading.Lock()  # evicting and moving the size on, against remember()

    def listed(self, pseudonyms: Iterable[bytes]) -> tuple[set[bytes], int]:
        """Which of ``pseudonyms`` are listed, and the log size that answer reflects."""
        if self._monotonic() - self._refreshed_at > self._max_age:
            self.refresh(wait=self._size < 0)
        # The size first: a refresh edits the set before it moves the size on, so the answer
        # reflects at least the size it names. (Each membership test and each edit of a set is
        # atomic under the GIL; nothing here iterates the set.)
        size, listed = self._size, self._listed
        return {p for p in pseudonyms if p in listed}, size

    def cached_entries(self, pseudonym: bytes) -> list[BlacklistEntry] | None:
        with self._edit:
            entries = self._hits.get(pseudonym)
            if entries is not None:
                self._hits.move_to_end(pseudonym)
            return entries

    def remember(self, found: dict[bytes, list[BlacklistEntry]], *, read_at_size: int) -> None:
        """Keep the entries of hits read from the store while the index reflected
        ``read_at_size``; if it has moved on since, they may predate a change: not kept."""
        with self._edit:
            if self._size != read_at_size:
                return
            for pseudonym, entries in found.items():
                self._hits[pseudonym] = entries
                self._hits.move_to_end(pseudonym)
            while len(self._hits) > CACHED_HITS:
                self._hits.popitem(last=False)

    def follow(self) -> None:
        """A change committed in this process: catch up now, so the caller's RPC returns with
        it visible. An index never loaded (a one-shot command's) stays unloaded."""
        if self._size >= 0:
            self.refresh()

    def refresh(self, *, wait: bool = True) -> None:
        """Catch up with the log. ``wait`` False: leave it to a refresh already under way."""
        if not self._refreshing.acquire(blocking=wait):
            return
        try:
            with self._db.reading() as session:
                size = DatabaseHashStore(session=session).size()
                if self._size < 0:
                    self._listed = bl.listed_pseudonyms(session)
                    changed: set[bytes] = set()
                    now: set[bytes] = set()
                elif size > self._size:
                    changed = bl.pseudonyms_logged_from(session, self._size)
                    now = bl.listed_among(session, list(changed))
                else:
                    changed = now = set()
            with self._edit:
                self._listed.difference_update(changed - now)  # edited in place: a copy
                self._listed.update(now)  # of a million pseudonyms costs 50 ms
                for pseudonym in changed:
                    self._hits.pop(pseudonym, None)
                self._size = max(size, self._size)
            self._refreshed_at = self._monotonic()
        finally:
            self._refreshing.release()
