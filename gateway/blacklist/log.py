"""The blacklist's append-only Merkle log, as banks read it: its size, signed checkpoints,
inclusion and consistency proofs, the changes a bank syncs from an index, and the log keys.

Writes go through :class:`gateway.blacklist.service.BlacklistNetwork`, which appends a leaf per
change inside the change's own transaction and then calls :meth:`BlacklistLog.changed`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from colending_core import (
    CHECKPOINT_PAYLOAD_TYPE,
    LOG_ORIGIN,
    Checkpoint,
    Envelope,
    format_checkpoint,
)
from gateway._transactions import utc_now
from gateway.errors import InvalidArgument
from gateway.signing.keyring import KeyRing, PublishedKey
from gateway.signing.merkle import MerkleLog
from gateway.store import blacklist_repository as bl
from gateway.store.blacklist_repository import LoggedChange
from gateway.store.db import Database
from gateway.store.log_store import DatabaseHashStore

log = logging.getLogger(__name__)

# Checkpoints are evidence for as long as anyone keeps one: retired log keys stay published.
LOG_KEY_RETENTION = timedelta(days=100 * 366)


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedCheckpoint:
    envelope: Envelope
    checkpoint: Checkpoint


class BlacklistLog:
    def __init__(
        self,
        *,
        database: Database,
        log_keyring: KeyRing,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = database
        self._log_keyring = log_keyring
        self._clock = clock
        # Wakes local sync streams as soon as a change commits here; streams also poll, which
        # is how they see changes committed by other replicas.
        self._changed = threading.Condition()
        self._listeners: list[Callable[[], None]] = []

    def size(self) -> int:
        with self._db.reading() as session:
            return DatabaseHashStore(session=session).size()

    def checkpoint(self, tree_size: int | None = None) -> SignedCheckpoint:
        """A checkpoint of the log now (or of an earlier size), signed by the log key."""
        with self._db.reading() as session:
            log = MerkleLog(store=DatabaseHashStore(session=session))
            size = log.size if tree_size is None else tree_size
            root = log.root(size)
        checkpoint = Checkpoint(
            origin=LOG_ORIGIN, tree_size=size, root_hash=root, timestamp=self._clock()
        )
        envelope = self._log_keyring.sign(
            format_checkpoint(checkpoint), payload_type=CHECKPOINT_PAYLOAD_TYPE
        )
        return SignedCheckpoint(envelope=envelope, checkpoint=checkpoint)

    def inclusion_proof(self, *, log_index: int, tree_size: int) -> tuple[int, bytes, list[bytes]]:
        """``(tree_size, leaf, audit path)``; ``tree_size`` 0 means the current size."""
        with self._db.reading() as session:
            log = MerkleLog(store=DatabaseHashStore(session=session))
            size = log.size if tree_size == 0 else tree_size
            if not 0 < size <= log.size:
                raise InvalidArgument.single(
                    "tree_size", f"must be between 1 and the log size {log.size} (0: the latest)"
                )
            if not 0 <= log_index < size:
                raise InvalidArgument.single(
                    "log_index", f"must be between 0 and {size - 1} (below the tree size)"
                )
            leaf = bl.leaf_at(session, log_index)
            assert leaf is not None, "every leaf hash has its leaf"
            return size, leaf, log.inclusion_proof(log_index, size)

    def consistency_proof(self, *, first: int, second: int) -> tuple[int, list[bytes]]:
        """``(second tree size, proof)``; ``second`` 0 means the current size."""
        with self._db.reading() as session:
            log = MerkleLog(store=DatabaseHashStore(session=session))
            size = log.size if second == 0 else second
            if not 0 <= size <= log.size:
                raise InvalidArgument.single(
                    "second_tree_size",
                    f"must be between 0 and the log size {log.size} (0: the latest)",
                )
            if not 0 <= first <= size:
                raise InvalidArgument.single(
                    "first_tree_size", f"must be between 0 and the second tree size {size}"
                )
            return size, log.consistency_proof(first, size)

    def changes_from(self, start: int, *, limit: int = 500) -> list[LoggedChange]:
        if start < 0:
            raise InvalidArgument.single("from_log_index", "must not be negative")
        with self._db.reading() as session:
            return bl.changes_from(session, start=start, limit=limit)

    def wait_for_change(self, timeout: float) -> None:
        """Block until a local change commits or ``timeout`` seconds pass."""
        with self._changed:
            self._changed.wait(timeout)

    def published_keys(self) -> list[PublishedKey]:
        return self._log_keyring.published_keys(now=self._clock(), retain_for=LOG_KEY_RETENTION)

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` in :meth:`changed`, before the caller's RPC answers."""
        self._listeners.append(listener)

    def changed(self) -> None:
        """Tell local readers (the listed index, sync streams) that a transaction which logged
        changes has committed."""
        for listener in self._listeners:
            try:
                listener()
            except Exception as error:  # the change is committed: its answer must not fail
                log.warning(
                    "blacklist readers catch up later (%s: %s)", type(error).__name__, error
                )
        with self._changed:
            self._changed.notify_all()
