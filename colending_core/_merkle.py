"""Merkle-tree proofs of the blacklist log, verified as in RFC 9162 (RFC 6962 hashing).

The log is a binary Merkle tree over its entries (the leaves, as bytes):

* leaf hash ``SHA-256(0x00 || leaf)`` and node hash ``SHA-256(0x01 || left || right)``; the two
  prefixes keep a leaf from being passed off as an inner node (second-preimage resistance);
* the empty tree's hash is ``SHA-256("")``;
* a tree of ``n > 1`` leaves splits at ``k``, the largest power of two smaller than ``n``: its
  hash is ``node_hash(MTH(D[0:k]), MTH(D[k:n]))``. An odd last node is never duplicated.

:func:`verify_inclusion` (RFC 9162 section 2.1.3.2) proves that an entry is the ``index``-th leaf
of the tree with a given root; :func:`verify_consistency` (section 2.1.4.2) proves that a tree is
an append-only extension of an earlier one, so the log can never rewrite history unnoticed. Both
return ``None`` when the proof holds and raise a :class:`ProofError` naming the failed check
otherwise; malformed arguments (a negative size, a hash that is not 32 bytes, ...) fail the same
way rather than crashing, since they typically come from the server's answer.

This module uses only the standard library.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from colending_core._errors import VerificationError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "ConsistencyProofError",
    "InclusionProofError",
    "ProofError",
    "leaf_hash",
    "node_hash",
    "root_from_leaves",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Length in bytes of every hash in the tree (SHA-256)."""

_MAX_TREE_SIZE = 2**64 - 1  # tree sizes and indices are uint64 in RFC 9162

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(leaf: bytes) -> bytes:
    """``SHA-256(0x00 || leaf)``: the hash of one log entry."""
    return hashlib.sha256(_LEAF_PREFIX + bytes(leaf)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an inner node."""
    return hashlib.sha256(_NODE_PREFIX + bytes(left) + bytes(right)).digest()


EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()
"""The root hash of the empty tree, ``SHA-256("")``."""


class ProofError(VerificationError):
    """A Merkle proof does not hold (or its arguments are malformed): do not trust the data."""


class InclusionProofError(ProofError):
    """An inclusion proof does not show the leaf at that index of the tree with that root."""


class ConsistencyProofError(ProofError):
    """A consistency proof does not show the second tree extends the first (append-only)."""


def root_from_leaves(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash ``MTH(D[n])`` of ``leaves``, straight from the RFC definition.

    A reference for tests and small trees: O(n) hashes, O(log n) recursion depth.
    """
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hash(leaves[0])
    k = _split(n)
    return node_hash(root_from_leaves(leaves[:k]), root_from_leaves(leaves[k:]))


def verify_inclusion(
    *, leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` is leaf ``index`` of the tree of ``tree_size`` leaves with ``root``.

    ``proof`` is the audit path (RFC 9162 ``PATH(index, D[tree_size])``), leaf to root. Follows
    RFC 9162 section 2.1.3.2; raises :class:`InclusionProofError` if the proof does not hold.
    """
    err = InclusionProofError
    if not isinstance(leaf, bytes | bytearray | memoryview):
        raise err(f"leaf must be bytes, not {type(leaf).__name__}")
    _check_size(err, "tree_size", tree_size)
    _check_size(err, "index", index)
    root = _check_hash(err, "root", root)
    path = _check_proof(err, proof)

    # 1. The index must lie inside the tree.
    if index >= tree_size:
        raise err(f"leaf index {index} is not below tree size {tree_size}")
    # 2.-3.
    fn, sn = index, tree_size - 1
    r = leaf_hash(leaf)
    # 4.
    for i, p in enumerate(path):
        if sn == 0:
            raise err(
                f"proof has {len(path)} hashes, more than the {i} on the path of leaf {index} "
                f"in a tree of {tree_size}"
            )
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    # 5.
    if sn != 0:
        raise err(
            f"proof has {len(path)} hashes, too few for the path of leaf {index} "
            f"in a tree of {tree_size}"
        )
    if not hmac.compare_digest(r, root):
        raise err(
            f"root computed from the proof for leaf {index} does not match the root of the "
            f"tree of {tree_size}"
        )


def verify_consistency(
    *,
    first_size: int,
    second_size: int,
    first_root: bytes,
    second_root: bytes,
    proof: Sequence[bytes],
) -> None:
    """Check that the tree of ``second_size`` leaves extends the one of ``first_size`` leaves.

    ``proof`` is RFC 9162 ``PROOF(first_size, D[second_size])``. For ``0 < first_size <
    second_size`` this follows RFC 9162 section 2.1.4.2. The edge cases are defined as follows:
    equal sizes need an empty proof and equal roots; ``first_size == 0`` needs an empty proof and
    ``first_root`` equal to :data:`EMPTY_ROOT` (any tree extends the empty one). Raises
    :class:`ConsistencyProofError` if the proof does not hold.
    """
    err = ConsistencyProofError
    _check_size(err, "first_size", first_size)
    _check_size(err, "second_size", second_size)
    first_root = _check_hash(err, "first_root", first_root)
    second_root = _check_hash(err, "second_root", second_root)
    path = _check_proof(err, proof)

    if first_size > second_size:
        raise err(f"first tree size {first_size} is larger than second tree size {second_size}")
    if first_size == 0:
        if path:
            raise err(f"proof from the empty tree must be empty, got {len(path)} hashes")
        if not hmac.compare_digest(first_root, EMPTY_ROOT):
            raise err("first root is not the empty tree's root although first tree size is 0")
        if second_size == 0 and not hmac.compare_digest(second_root, EMPTY_ROOT):
            raise err("second root is not the empty tree's root although second tree size is 0")
        return
    if first_size == second_size:
        if path:
            raise err(
                f"proof between equal tree sizes ({first_size}) must be empty, "
                f"got {len(path)} hashes"
            )
        if not hmac.compare_digest(first_root, second_root):
            raise err(f"roots differ for the same tree size {first_size}")
        return

    # 1.
    if not path:
        raise err(f"proof from tree size {first_size} to {second_size} is empty")
    # 2.
    if first_size & (first_size - 1) == 0:
        path = [first_root, *path]
    # 3.
    fn, sn = first_size - 1, second_size - 1
    # 4.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5.
    fr = sr = path[0]
    # 6.
    for i, c in enumerate(path[1:], start=1):
        if sn == 0:
            raise err(
                f"proof from tree size {first_size} to {second_size} has more hashes than "
                f"needed ({i} used, {len(path) - i} left over)"
            )
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 7.
    if sn != 0:
        raise err(
            f"proof from tree size {first_size} to {second_size} has too few hashes ({len(proof)})"
        )
    if not hmac.compare_digest(fr, first_root):
        raise err(f"first root does not match the root computed from the proof (size {first_size})")
    if not hmac.compare_digest(sr, second_root):
        raise err(
            f"second root does not match the root computed from the proof (size {second_size})"
        )


# --- helpers --------------------------------------------------------------------------------------


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n > 1``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_size(err: type[ProofError], name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise err(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= _MAX_TREE_SIZE:
        raise err(f"{name} {value} is out of range [0, 2**64 - 1]")


def _check_hash(err: type[ProofError], name: str, value: object) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise err(f"{name} must be bytes, not {type(value).__name__}")
    value = bytes(value)
    if len(value) != HASH_SIZE:
        raise err(f"{name} must be {HASH_SIZE} bytes, got {len(value)}")
    return value


def _check_proof(err: type[ProofError], proof: object) -> list[bytes]:
    if isinstance(proof, bytes | bytearray | memoryview | str) or not isinstance(proof, Sequence):
        raise err(f"proof must be a sequence of hashes, not {type(proof).__name__}")
    return [_check_hash(err, f"proof hash {i}", h) for i, h in enumerate(proof)]
