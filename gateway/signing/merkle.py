"""The blacklist log's Merkle tree: append, roots of past sizes, inclusion and consistency proofs.

Hashing is RFC 6962 / RFC 9162 (see :mod:`colending_core._merkle`, which the SDK verifies with and
whose hash functions this module reuses so that both sides hash identically).

Storage: the tree is kept as the hashes of its *complete subtrees*. Key ``(level, index)`` is the
hash of the ``2**level`` leaves starting at leaf ``index * 2**level``; level 0 holds the leaf
hashes. A complete subtree never changes once its last leaf is appended, so the store is
append-only too, and every tree size that ever existed stays provable:

* ``append`` writes the leaf hash and each subtree it completes (one per trailing 1-bit of the
  new index: amortised O(1), worst O(log n)), reading only their left siblings;
* any Merkle tree hash ``MTH(D[s:e])`` that the RFC's recursion needs is either one stored complete
  subtree or, on the right edge of a smaller tree, a fold of at most ``log2(n)`` stored subtrees
  (the binary decomposition of the range);
* ``root``, ``inclusion_proof`` and ``consistency_proof`` first plan every key they need, then
  read them in one :meth:`HashStore.get_many` call: O(log n) keys (the right-edge subtrees are
  shared between the nodes of one proof), O(log n) hashing.

:class:`MerkleLog` holds no state of its own, so several gateway replicas may serve proofs from
one store. Appends must be serialised (one writer, or a database lock around ``append``); the
store's append-only checks turn a lost race into an error rather than a forked tree.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from colending_core import EMPTY_ROOT, HASH_SIZE, leaf_hash, node_hash

__all__ = ["HashStore", "MemoryHashStore", "MerkleLog", "NodeKey"]

NodeKey = tuple[int, int]
"""``(level, index)``: the complete subtree of ``2**level`` leaves from leaf ``index*2**level``."""


class HashStore(Protocol):
    """Storage of complete-subtree hashes, keyed by :data:`NodeKey`.

    ``size()`` is the number of leaves (level-0 hashes). Writes are append-only: an existing key
    is never overwritten with a different value, and level-0 keys are added in index order.
    """

    def get(self, level: int, index: int) -> bytes:
        """The hash at ``(level, index)``; ``KeyError`` if it is not stored."""
        ...

    def get_many(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        """The hashes at ``keys`` (one round trip); ``KeyError`` if any is not stored."""
        ...

    def put(self, level: int, index: int, value: bytes) -> None:
        """Store one hash."""
        ...

    def put_many(self, entries: Sequence[tuple[int, int, bytes]]) -> None:
        """Store ``(level, index, value)`` entries all-or-nothing (one append's leaf and spine)."""
        ...

    def size(self) -> int:
        """The number of leaves stored."""
        ...


class MemoryHashStore:
    """An in-memory :class:`HashStore` (tests, tools). Not shared between processes."""

    def __init__(self) -> None:
        self._hashes: dict[NodeKey, bytes] = {}
        self._size = 0
        self._lock = threading.Lock()

    def get(self, level: int, index: int) -> bytes:
        try:
            return self._hashes[(level, index)]
        except KeyError:
            raise KeyError(f"no hash stored at level {level}, index {index}") from None

    def get_many(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        return {(level, index): self.get(level, index) for level, index in keys}

    def put(self, level: int, index: int, value: bytes) -> None:
        self.put_many([(level, index, value)])

    def put_many(self, entries: Sequence[tuple[int, int, bytes]]) -> None:
        with self._lock:
            staged: dict[NodeKey, bytes] = {}
            size = self._size
            for level, index, value in entries:
                if level < 0 or index < 0:
                    raise ValueError(f"level {level} and index {index} must not be negative")
                if not isinstance(value, bytes) or len(value) != HASH_SIZE:
                    raise ValueError(f"hash at level {level}, index {index} must be 32 bytes")
                key = (level, index)
                known = staged.get(key, self._hashes.get(key))
                if known is not None:
                    if known != value:
                        raise ValueError(
                            f"hash at level {level}, index {index} is already stored "
                            "with a different value (the log is append-only)"
                        )
                    continue
                if level == 0:
                    if index != size:
                        raise ValueError(f"leaf {index} is out of order: the next leaf is {size}")
                    size += 1
                staged[key] = value
            self._hashes.update(staged)
            self._size = size

    def size(self) -> int:
        return self._size


class MerkleLog:
    """An append-only RFC 9162 Merkle tree over a :class:`HashStore`.

    Sizes and indices that are out of range raise ``ValueError`` with a message naming the
    argument (the API layer maps it to ``INVALID_ARGUMENT``).
    """

    def __init__(self, *, store: HashStore) -> None:
        self._store = store
        self._append_lock = threading.Lock()

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._store.size()

    def append(self, leaf: bytes) -> int:
        """Append ``leaf`` (the entry's bytes) and return its index."""
        if not isinstance(leaf, bytes):
            raise TypeError(f"leaf must be bytes, not {type(leaf).__name__}")
        with self._append_lock:
            index = self._store.size()
            # The new leaf completes one subtree per trailing 1-bit of its index; each is the
            # node of its left sibling (already stored) and the subtree just completed below it.
            height = _trailing_ones(index)
            siblings = [(level, (index >> level) - 1) for level in range(height)]
            stored = self._store.get_many(siblings) if siblings else {}
            h = leaf_hash(leaf)
            entries = [(0, index, h)]
            for level, key in enumerate(siblings):
                h = node_hash(stored[key], h)
                entries.append((level + 1, index >> (level + 1), h))
            self._store.put_many(entries)
            return index

    def root(self, tree_size: int | None = None) -> bytes:
        """``MTH(D[tree_size])``: the root of the log when it had ``tree_size`` leaves.

        Defaults to the current size; reads at most ``log2(tree_size) + 1`` stored hashes.
        """
        size = self.size
        if tree_size is None:
            tree_size = size
        _check_int("tree_size", tree_size)
        if not 0 <= tree_size <= size:
            raise ValueError(f"tree_size {tree_size} is out of range [0, {size}] (the log size)")
        if tree_size == 0:
            return EMPTY_ROOT
        return self._hashes_of([(0, tree_size)])[0]

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        """RFC 9162 ``PATH(index, D[tree_size])``: the audit path of leaf ``index``, leaf first."""
        _check_int("index", index)
        _check_int("tree_size", tree_size)
        size = self.size
        if not 1 <= tree_size <= size:
            raise ValueError(f"tree_size {tree_size} is out of range [1, {size}] (the log size)")
        if not 0 <= index < tree_size:
            raise ValueError(f"index {index} is out of range [0, {tree_size}) (the tree size)")
        ranges: list[tuple[int, int]] = []  # siblings, root level first
        start, end = 0, tree_size
        while end - start > 1:
            k = _split(end - start)
            if index < start + k:
                ranges.append((start + k, end))
                end = start + k
            else:
                ranges.append((start, start + k))
                start += k
        ranges.reverse()
        return self._hashes_of(ranges)

    def consistency_proof(self, first_size: int, second_size: int) -> list[bytes]:
        """RFC 9162 ``PROOF(first_size, D[second_size])`` (``SUBPROOF(m, D[n], true)``).

        Empty when ``first_size`` is 0 or equals ``second_size`` (nothing to prove).
        """
        _check_int("first_size", first_size)
        _check_int("second_size", second_size)
        size = self.size
        if not 0 <= second_size <= size:
            raise ValueError(
                f"second_size {second_size} is out of range [0, {size}] (the log size)"
            )
        if not 0 <= first_size <= second_size:
            raise ValueError(
                f"first_size {first_size} is out of range [0, {second_size}] (the second size)"
            )
        if first_size in (0, second_size):
            return []
        ranges: list[tuple[int, int]] = []  # root level first
        start, end, whole = 0, second_size, True
        while True:
            m = first_size - start
            if m == end - start:  # SUBPROOF(m, D[m], b)
                if not whole:
                    ranges.append((start, end))
                break
            k = _split(end - start)
            if m <= k:
                ranges.append((start + k, end))
                end = start + k
            else:
                ranges.append((start, start + k))
                start += k
                whole = False
        ranges.reverse()
        return self._hashes_of(ranges)

    def _hashes_of(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """``MTH(D[s:e])`` for each ``(s, e)``, from one batched read of complete subtrees."""
        plans = [_decompose(s, e) for s, e in ranges]
        keys = list(dict.fromkeys(key for plan in plans for key in plan))
        stored = self._store.get_many(keys)
        out = []
        for plan in plans:
            h = stored[plan[-1]]
            for key in reversed(plan[:-1]):
                h = node_hash(stored[key], h)
            out.append(h)
        return out


def _decompose(start: int, end: int) -> list[NodeKey]:
    """The complete subtrees, left to right, whose right fold is ``MTH(D[start:end])``.

    Valid for the ranges of the RFC's recursion, whose ``start`` is a multiple of the largest
    power of two not above ``end - start``: ``MTH`` splits at that power, the left part is one
    complete subtree and the right part decomposes the same way.
    """
    keys = []
    while start < end:
        level = (end - start).bit_length() - 1
        keys.append((level, start >> level))
        start += 1 << level
    return keys


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n > 1``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _trailing_ones(n: int) -> int:
    return (n ^ (n + 1)).bit_length() - 1


def _check_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, not {type(value).__name__}")
