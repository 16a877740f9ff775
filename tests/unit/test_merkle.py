"""The blacklist log's Merkle tree (RFC 6962 / RFC 9162): log side and SDK verification.

Expected values come from the RFC definitions, re-implemented here recursively and
independently of both modules under test, plus the well-known RFC 6962 test vectors.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence

import pytest

from colending_core import (
    EMPTY_ROOT,
    ConsistencyProofError,
    InclusionProofError,
    ProofError,
    VerificationError,
    leaf_hash,
    node_hash,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)
from gateway.signing.merkle import MemoryHashStore, MerkleLog, NodeKey

# --- reference definitions (RFC 9162 section 2.1) -------------------------------------------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(leaves: Sequence[bytes]) -> bytes:
    if not leaves:
        return _h(b"")
    if len(leaves) == 1:
        return _h(b"\x00" + leaves[0])
    k = _k(len(leaves))
    return _h(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [mth(leaves)]
    k = _k(n)
    if m <= k:
        return [*subproof(m, leaves[:k], whole), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


# RFC 6962 test leaves, as used by the certificate-transparency / transparency-dev test suites.
RFC_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    bytes(range(0x60, 0x70)),
]
RFC_ROOTS = [  # root of the first n leaves, n = 0..8
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
_A = "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
_B = "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"
_C = "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"
_D = "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"
_E = "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"
_F = "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"
_G = "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"
RFC_INCLUSION = [  # (index, tree_size, path)
    (0, 1, []),
    (0, 8, [_A, _B, _C]),
    (5, 8, [_D, _E, RFC_ROOTS[4]]),
    (2, 3, [RFC_ROOTS[2]]),
    (1, 5, [RFC_ROOTS[1], _B, _D]),
]
RFC_CONSISTENCY = [  # (first_size, second_size, proof)
    (1, 1, []),
    (1, 8, [_A, _B, _C]),
    (6, 8, [_F, _E, RFC_ROOTS[4]]),
    (2, 5, [_B, _D]),
    (6, 7, [_F, _G, RFC_ROOTS[4]]),
]

N = 64
LEAVES = [f"entry-{i}".encode() for i in range(N)]


@pytest.fixture(scope="module")
def log() -> MerkleLog:
    log = MerkleLog(store=MemoryHashStore())
    for i, leaf in enumerate(LEAVES):
        assert log.append(leaf) == i
    return log


@pytest.fixture(scope="module")
def rfc_log() -> MerkleLog:
    log = MerkleLog(store=MemoryHashStore())
    for leaf in RFC_LEAVES:
        log.append(leaf)
    return log


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- hashing and roots ----------------------------------------------------------------------------


def test_hash_functions_follow_rfc_6962() -> None:
    assert _h(b"") == EMPTY_ROOT
    assert leaf_hash(b"abc") == _h(b"\x00abc")
    left, right = _h(b"l"), _h(b"r")
    assert node_hash(left, right) == _h(b"\x01" + left + right)


def test_empty_and_single_leaf_roots() -> None:
    assert root_from_leaves([]) == EMPTY_ROOT
    assert root_from_leaves([b"x"]) == _h(b"\x00x")
    log = MerkleLog(store=MemoryHashStore())
    assert log.size == 0
    assert log.root() == EMPTY_ROOT
    assert log.root(0) == EMPTY_ROOT
    log.append(b"x")
    assert log.root() == _h(b"\x00x")


def test_seven_leaves_do_not_duplicate_the_odd_node() -> None:
    leaves = [bytes([i]) for i in range(7)]
    lh = [_h(b"\x00" + leaf) for leaf in leaves]

    def node(a: bytes, b: bytes) -> bytes:
        return _h(b"\x01" + a + b)

    expected = node(node(node(lh[0], lh[1]), node(lh[2], lh[3])), node(node(lh[4], lh[5]), lh[6]))
    assert mth(leaves) == expected
    assert root_from_leaves(leaves) == expected
    log = MerkleLog(store=MemoryHashStore())
    for leaf in leaves:
        log.append(leaf)
    assert log.root() == expected


def test_rfc_6962_test_vectors(rfc_log: MerkleLog) -> None:
    for n, expected in enumerate(RFC_ROOTS):
        assert mth(RFC_LEAVES[:n]).hex() == expected
        assert root_from_leaves(RFC_LEAVES[:n]).hex() == expected
        assert rfc_log.root(n).hex() == expected
    for index, size, proof in RFC_INCLUSION:
        assert [h.hex() for h in rfc_log.inclusion_proof(index, size)] == proof
        verify_inclusion(
            leaf=RFC_LEAVES[index],
            index=index,
            tree_size=size,
            proof=[bytes.fromhex(h) for h in proof],
            root=bytes.fromhex(RFC_ROOTS[size]),
        )
    for m, n, proof in RFC_CONSISTENCY:
        assert [h.hex() for h in rfc_log.consistency_proof(m, n)] == proof
        verify_consistency(
            first_size=m,
            second_size=n,
            first_root=bytes.fromhex(RFC_ROOTS[m]),
            second_root=bytes.fromhex(RFC_ROOTS[n]),
            proof=[bytes.fromhex(h) for h in proof],
        )


def test_root_of_every_past_size_matches_the_reference(log: MerkleLog) -> None:
    assert log.size == N
    assert log.root() == mth(LEAVES)
    for n in range(N + 1):
        assert log.root(n) == mth(LEAVES[:n]) == root_from_leaves(LEAVES[:n])


def test_root_grows_with_each_append() -> None:
    log = MerkleLog(store=MemoryHashStore())
    for i in range(40):
        assert log.root() == mth(LEAVES[:i])
        log.append(LEAVES[i])


# --- proofs: completeness -------------------------------------------------------------------------


def test_every_inclusion_proof_matches_the_rfc_and_verifies(log: MerkleLog) -> None:
    for n in range(1, N + 1):
        root = mth(LEAVES[:n])
        for i in range(n):
            proof = log.inclusion_proof(i, n)
            assert proof == path(i, LEAVES[:n]), (i, n)
            verify_inclusion(leaf=LEAVES[i], index=i, tree_size=n, proof=proof, root=root)


def test_every_consistency_proof_matches_the_rfc_and_verifies(log: MerkleLog) -> None:
    roots = [mth(LEAVES[:n]) for n in range(N + 1)]
    for n in range(N + 1):
        verify_consistency(
            first_size=0, second_size=n, first_root=EMPTY_ROOT, second_root=roots[n], proof=[]
        )
        assert log.consistency_proof(0, n) == []
        for m in range(1, n + 1):
            proof = log.consistency_proof(m, n)
            assert proof == subproof(m, LEAVES[:n], True), (m, n)
            verify_consistency(
                first_size=m, second_size=n, first_root=roots[m], second_root=roots[n], proof=proof
            )


# --- proofs: soundness ----------------------------------------------------------------------------


def test_inclusion_fails_on_any_flipped_bit(log: MerkleLog) -> None:
    rng = random.Random(6962)
    for n in range(1, 17):
        root = mth(LEAVES[:n])
        for i in range(n):
            proof = log.inclusion_proof(i, n)
            leaf = LEAVES[i]
            for bit in rng.sample(range(256), 3):
                with pytest.raises(InclusionProofError, match="root"):
                    verify_inclusion(
                        leaf=leaf, index=i, tree_size=n, proof=proof, root=_flip(root, bit)
                    )
                for j in range(len(proof)):
                    bad = [*proof[:j], _flip(proof[j], bit), *proof[j + 1 :]]
                    with pytest.raises(InclusionProofError, match="does not match"):
                        verify_inclusion(leaf=leaf, index=i, tree_size=n, proof=bad, root=root)
            for bit in rng.sample(range(len(leaf) * 8), 3):
                with pytest.raises(InclusionProofError, match="does not match"):
                    verify_inclusion(
                        leaf=_flip(leaf, bit), index=i, tree_size=n, proof=proof, root=root
                    )


def test_inclusion_fails_for_another_index_size_or_proof_length(log: MerkleLog) -> None:
    for n in range(1, 17):
        root = mth(LEAVES[:n])
        for i in range(n):
            proof = log.inclusion_proof(i, n)
            for j in range(n):
                if j != i:
                    with pytest.raises(InclusionProofError):
                        verify_inclusion(
                            leaf=LEAVES[i], index=j, tree_size=n, proof=proof, root=root
                        )
            # Another size, checked against that size's own root.  (A proof need not pin the
            # size by itself: the signed checkpoint binds size and root together.)
            for other in range(i + 1, 18):
                if other != n:
                    with pytest.raises(InclusionProofError):
                        verify_inclusion(
                            leaf=LEAVES[i],
                            index=i,
                            tree_size=other,
                            proof=proof,
                            root=mth(LEAVES[:other]),
                        )
            with pytest.raises(InclusionProofError, match="more than"):
                verify_inclusion(
                    leaf=LEAVES[i], index=i, tree_size=n, proof=[*proof, root], root=root
                )
            if proof:
                with pytest.raises(InclusionProofError, match="too few"):
                    verify_inclusion(
                        leaf=LEAVES[i], index=i, tree_size=n, proof=proof[:-1], root=root
                    )


def test_consistency_fails_on_any_flipped_bit(log: MerkleLog) -> None:
    rng = random.Random(9162)
    roots = [mth(LEAVES[:n]) for n in range(18)]
    for n in range(2, 17):
        for m in range(1, n):
            proof = log.consistency_proof(m, n)
            for bit in rng.sample(range(256), 3):
                with pytest.raises(ConsistencyProofError, match="root"):
                    verify_consistency(
                        first_size=m,
                        second_size=n,
                        first_root=_flip(roots[m], bit),
                        second_root=roots[n],
                        proof=proof,
                    )
                with pytest.raises(ConsistencyProofError, match="second root"):
                    verify_consistency(
                        first_size=m,
                        second_size=n,
                        first_root=roots[m],
                        second_root=_flip(roots[n], bit),
                        proof=proof,
                    )
                for j in range(len(proof)):
                    bad = [*proof[:j], _flip(proof[j], bit), *proof[j + 1 :]]
                    with pytest.raises(ConsistencyProofError, match="does not match"):
                        verify_consistency(
                            first_size=m,
                            second_size=n,
                            first_root=roots[m],
                            second_root=roots[n],
                            proof=bad,
                        )


def test_consistency_fails_for_other_sizes_or_proof_length(log: MerkleLog) -> None:
    roots = [mth(LEAVES[:n]) for n in range(18)]
    for n in range(2, 17):
        for m in range(1, n):
            proof = log.consistency_proof(m, n)
            for m2 in range(1, n):
                if m2 != m:
                    with pytest.raises(ConsistencyProofError):
                        verify_consistency(
                            first_size=m2,
                            second_size=n,
                            first_root=roots[m2],
                            second_root=roots[n],
                            proof=proof,
                        )
            for n2 in range(m + 1, 18):
                if n2 != n:
                    with pytest.raises(ConsistencyProofError):
                        verify_consistency(
                            first_size=m,
                            second_size=n2,
                            first_root=roots[m],
                            second_root=roots[n2],
                            proof=proof,
                        )
            with pytest.raises(ConsistencyProofError, match="more hashes than needed"):
                verify_consistency(
                    first_size=m,
                    second_size=n,
                    first_root=roots[m],
                    second_root=roots[n],
                    proof=[*proof, roots[n]],
                )
            with pytest.raises(ConsistencyProofError, match=r"too few|is empty"):
                verify_consistency(
                    first_size=m,
                    second_size=n,
                    first_root=roots[m],
                    second_root=roots[n],
                    proof=proof[:-1],
                )


def test_consistency_edge_cases() -> None:
    a, b = mth([b"a"]), mth([b"a", b"b"])
    verify_consistency(first_size=1, second_size=1, first_root=a, second_root=a, proof=[])
    verify_consistency(
        first_size=0, second_size=0, first_root=EMPTY_ROOT, second_root=EMPTY_ROOT, proof=[]
    )
    cases: list[tuple[int, int, bytes, bytes, list[bytes], str]] = [
        (1, 1, a, b, [], "roots differ"),
        (1, 1, a, a, [a], "must be empty"),
        (0, 2, a, b, [], "empty tree's root"),
        (0, 2, EMPTY_ROOT, b, [a], "must be empty"),
        (0, 0, EMPTY_ROOT, a, [], "second root"),
        (2, 1, b, a, [], "larger than"),
        (1, 2, a, b, [], "is empty"),
    ]
    for m, n, r1, r2, proof, message in cases:
        with pytest.raises(ConsistencyProofError, match=message):
            verify_consistency(
                first_size=m, second_size=n, first_root=r1, second_root=r2, proof=proof
            )


def test_malformed_arguments_are_proof_errors_not_crashes() -> None:
    root = mth([b"a", b"b"])
    proof = [leaf_hash(b"b")]
    good = {"leaf": b"a", "index": 0, "tree_size": 2, "proof": proof, "root": root}
    bad_inclusion: list[tuple[dict[str, object], str]] = [
        ({"index": 2}, "not below tree size"),
        ({"index": -1}, "out of range"),
        ({"tree_size": 0}, "not below tree size"),
        ({"tree_size": 2**64}, "out of range"),
        ({"index": True}, "must be an int"),
        ({"index": "0"}, "must be an int"),
        ({"root": root[:31]}, "32 bytes"),
        ({"root": "00" * 32}, "must be bytes"),
        ({"proof": [proof[0] + b"\x00"]}, "proof hash 0 must be 32 bytes"),
        ({"proof": proof[0]}, "sequence of hashes"),
        ({"proof": None}, "sequence of hashes"),
        ({"leaf": "a"}, "leaf must be bytes"),
    ]
    for change, message in bad_inclusion:
        with pytest.raises(InclusionProofError, match=message):
            verify_inclusion(**{**good, **change})  # type: ignore[arg-type]
    verify_inclusion(**good)  # type: ignore[arg-type]
    # bytes-like arguments (bytearray, memoryview) are accepted too
    loose: dict[str, object] = {
        "leaf": bytearray(b"a"),
        "proof": [bytearray(proof[0])],
        "root": memoryview(root),
    }
    verify_inclusion(**{**good, **loose})  # type: ignore[arg-type]

    with pytest.raises(ConsistencyProofError, match="first_root must be 32 bytes"):
        verify_consistency(first_size=1, second_size=2, first_root=b"", second_root=root, proof=[])
    with pytest.raises(ConsistencyProofError, match="second_size -1 is out of range"):
        verify_consistency(
            first_size=0, second_size=-1, first_root=EMPTY_ROOT, second_root=root, proof=[]
        )


def test_error_hierarchy() -> None:
    assert issubclass(ProofError, VerificationError)
    assert issubclass(InclusionProofError, ProofError)
    assert issubclass(ConsistencyProofError, ProofError)
    assert not issubclass(InclusionProofError, ConsistencyProofError)
    assert not issubclass(ConsistencyProofError, InclusionProofError)


# --- the log's arguments and store ----------------------------------------------------------------


def test_log_rejects_out_of_range_sizes(log: MerkleLog) -> None:
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: log.root(N + 1), "tree_size 65 is out of range"),
        (lambda: log.root(-1), "tree_size -1 is out of range"),
        (lambda: log.inclusion_proof(0, 0), "tree_size 0 is out of range"),
        (lambda: log.inclusion_proof(0, N + 1), "tree_size 65 is out of range"),
        (lambda: log.inclusion_proof(5, 5), r"index 5 is out of range \[0, 5\)"),
        (lambda: log.inclusion_proof(-1, 5), "index -1 is out of range"),
        (lambda: log.consistency_proof(3, 2), "first_size 3 is out of range"),
        (lambda: log.consistency_proof(-1, 2), "first_size -1 is out of range"),
        (lambda: log.consistency_proof(1, N + 1), "second_size 65 is out of range"),
        (lambda: log.inclusion_proof(True, 2), "index must be an integer"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    with pytest.raises(TypeError, match="leaf must be bytes"):
        MerkleLog(store=MemoryHashStore()).append("x")  # type: ignore[arg-type]


def test_memory_store_is_append_only() -> None:
    store = MemoryHashStore()
    h0, h1 = leaf_hash(b"0"), leaf_hash(b"1")
    store.put(0, 0, h0)
    store.put(0, 0, h0)  # idempotent
    assert store.size() == 1
    with pytest.raises(ValueError, match="different value"):
        store.put(0, 0, h1)
    with pytest.raises(ValueError, match="out of order"):
        store.put(0, 2, h1)
    with pytest.raises(ValueError, match="32 bytes"):
        store.put(0, 1, b"short")
    # all or nothing: the bad second entry leaves the first unwritten
    with pytest.raises(ValueError, match="out of order"):
        store.put_many([(0, 1, h1), (0, 3, h1)])
    assert store.size() == 1
    with pytest.raises(KeyError, match="level 0, index 1"):
        store.get(0, 1)
    store.put_many([(0, 1, h1), (1, 0, node_hash(h0, h1))])
    assert store.get_many([(1, 0), (0, 1)]) == {(1, 0): node_hash(h0, h1), (0, 1): h1}


def test_append_stores_leaf_and_completed_subtrees() -> None:
    store = MemoryHashStore()
    log = MerkleLog(store=store)
    for leaf in LEAVES[:8]:
        log.append(leaf)
    lh = [leaf_hash(leaf) for leaf in LEAVES[:8]]
    assert [store.get(0, i) for i in range(8)] == lh
    assert store.get(1, 3) == node_hash(lh[6], lh[7])
    assert store.get(3, 0) == mth(LEAVES[:8])
    assert store.size() == 8


# --- O(log n) reads -------------------------------------------------------------------------------


class CountingStore(MemoryHashStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, level: int, index: int) -> bytes:
        self.reads += 1
        return super().get(level, index)

    def get_many(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        self.reads += len(keys)
        return {key: MemoryHashStore.get(self, *key) for key in keys}


def test_proofs_read_logarithmically_many_hashes() -> None:
    store = CountingStore()
    log = MerkleLog(store=store)
    n = 2**16
    for i in range(n):
        log.append(i.to_bytes(4, "big"))
    assert store.reads < n  # appends: amortised O(1) reads (one per completed subtree)
    bound = 3 * 16
    rng = random.Random(16)
    sizes = [n, n - 1, n // 2 + 1, 12345, *rng.sample(range(1, n), 20)]
    worst = 0
    for size in sizes:
        store.reads = 0
        root = log.root(size)
        worst = max(worst, store.reads)
        for index in [0, size - 1, size // 2, rng.randrange(size)]:
            store.reads = 0
            proof = log.inclusion_proof(index, size)
            worst = max(worst, store.reads)
            verify_inclusion(
                leaf=index.to_bytes(4, "big"), index=index, tree_size=size, proof=proof, root=root
            )
        for first in [1, size // 2, size - 1, rng.randrange(1, size + 1)]:
            store.reads = 0
            proof = log.consistency_proof(first, size)
            worst = max(worst, store.reads)
            verify_consistency(
                first_size=first,
                second_size=size,
                first_root=log.root(first),
                second_root=root,
                proof=proof,
            )
    assert worst <= bound, worst
