"""The bank's blacklist copy: compact range, LocalBlacklist, and BlacklistClient on a fake stub.

The client tests replace the gRPC stub with an in-memory fake log (no server, no sockets): they
cover the client's own logic (batching, verification, resuming a broken sync); the wire-level
tests run later against the real BlacklistService.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import stat
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from colending.v1 import blacklist_pb2, blacklist_service_pb2, common_pb2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from colending_core import (
    CHECKPOINT_PAYLOAD_TYPE,
    EMPTY_ROOT,
    Envelope,
    LeafAppeal,
    LeafChange,
    LeafEntry,
    Signature,
    encode_leaf,
    format_checkpoint,
    key_id,
    leaf_hash,
    pae,
    root_from_leaves,
)
from partners.sdk import (
    CHECK_BATCH_SIZE,
    LOG_ORIGIN,
    BlacklistClient,
    Checkpoint,
    CompactRange,
    CorruptStateError,
    IdentifierError,
    IdentifierKind,
    InclusionProofError,
    LocalBlacklist,
    LogConsistencyError,
    MalformedEnvelopeError,
    MalformedLeafError,
    MissingKeyError,
    PermissionDeniedError,
    RetryPolicy,
    SyncGapError,
    UnavailableError,
    VerificationError,
    decode_leaf,
    pseudonym,
    verify_checkpoint,
)

T0 = datetime(2026, 11, 28, 11, 25, 12, 123456, tzinfo=UTC)
P1 = hashlib.sha256(b"borrower-1").digest()
P2 = hashlib.sha256(b"borrower-2").digest()
NETWORK_KEY = bytes(range(32))
USCC = "91330106673959654P"
RID = "11010519491231002X"


# --- helpers -------------------------------------------------------------------------------------


def make_leaf(
    log_index: int,
    *,
    entry_id: str = "bl_1",
    pseudonym: bytes = P1,
    status: str = "active",
    change: str = "added",
    reporter: str = "bank-a",
    appeal: LeafAppeal | None = None,
) -> bytes:
    entry = LeafEntry(
        entry_id=entry_id,
        pseudonym=pseudonym,
        identifier_kind="uscc",
        reporter=reporter,
        reason="default_overdue",
        outstanding_minor=12_345_00,
        currency="CNY",
        default_date=date(2026, 9, 1),
        evidence_case_id="case_1",
        reported_at=T0,
        expires_at=T0 + timedelta(days=5 * 365),
        status=status,
        appeal=appeal,
    )
    return encode_leaf(
        LeafChange(
            log_index=log_index,
            change=change,
            logged_at=T0 + timedelta(seconds=log_index),
            entry=entry,
        )
    )


def sample_leaves(n: int) -> list[bytes]:
    """``n`` changes: entries added in turn, alternating between two borrowers."""
    return [make_leaf(i, entry_id=f"bl_{i}", pseudonym=P1 if i % 2 == 0 else P2) for i in range(n)]


class LogSigner:
    """The gateway's side of a checkpoint: format, sign in a DSSE envelope."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.keyid = key_id(self.key.public_key())

    @property
    def log_keys(self) -> dict[str, Ed25519PublicKey]:
        return {self.keyid: self.key.public_key()}

    def envelope(self, size: int, root: bytes, *, when: datetime = T0) -> Envelope:
        body = format_checkpoint(
            Checkpoint(origin=LOG_ORIGIN, tree_size=size, root_hash=root, timestamp=when)
        )
        sig = self.key.sign(pae(CHECKPOINT_PAYLOAD_TYPE, body))
        return Envelope(
            payload=body,
            payload_type=CHECKPOINT_PAYLOAD_TYPE,
            signatures=(Signature(keyid=self.keyid, sig=sig),),
        )

    def checkpoint(self, leaves: Sequence[bytes]) -> Checkpoint:
        """A verified checkpoint of ``leaves`` (signed, then checked like a bank would)."""
        envelope = self.envelope(len(leaves), root_from_leaves(leaves))
        return verify_checkpoint(envelope, log_keys=self.log_keys)

    def signed_proto(self, leaves: Sequence[bytes]) -> blacklist_pb2.SignedCheckpoint:
        envelope = self.envelope(len(leaves), root_from_leaves(leaves))
        parsed = blacklist_pb2.Checkpoint(
            origin=LOG_ORIGIN, tree_size=len(leaves), root_hash=root_from_leaves(leaves)
        )
        parsed.timestamp.FromDatetime(T0)
        return blacklist_pb2.SignedCheckpoint(
            envelope=common_pb2.Envelope(
                payload=envelope.payload,
                payload_type=envelope.payload_type,
                signatures=[
                    common_pb2.Signature(keyid=s.keyid, sig=s.sig) for s in envelope.signatures
                ],
            ),
            checkpoint=parsed,
        )


@pytest.fixture
def signer() -> LogSigner:
    return LogSigner()


def applied(leaves: Sequence[bytes]) -> LocalBlacklist:
    local = LocalBlacklist()
    for i, leaf in enumerate(leaves):
        local.apply(log_index=i, leaf=leaf)
    return local


# --- CompactRange --------------------------------------------------------------------------------


def test_compact_range_root_matches_the_rfc_definition_for_every_size() -> None:
    leaves = [f"leaf-{i}".encode() for i in range(71)]
    compact = CompactRange()
    assert compact.size == 0
    assert compact.root() == EMPTY_ROOT == root_from_leaves([])
    for n in range(1, 71):
        compact.append(leaf_hash(leaves[n - 1]))
        assert compact.size == n
        assert compact.root() == root_from_leaves(leaves[:n]), n
        # One hash per set bit of the size: O(log n) state.
        assert len(compact.hashes) == n.bit_count()


def test_compact_range_survives_a_json_round_trip_at_every_size() -> None:
    leaves = [f"leaf-{i}".encode() for i in range(71)]
    compact = CompactRange()
    for n in range(71):
        restored = CompactRange.from_dict(json.loads(json.dumps(compact.to_dict())))
        assert restored == compact
        assert restored.size == n
        assert restored.root() == root_from_leaves(leaves[:n])
        if n < 70:
            # The restored range keeps growing exactly like the original.
            restored.append(leaf_hash(leaves[n]))
            assert restored.root() == root_from_leaves(leaves[: n + 1])
            compact.append(leaf_hash(leaves[n]))


@pytest.mark.parametrize(
    "data",
    [
        {"size": 3, "hashes": ["00" * 32]},  # size 3 needs two subtree hashes
        {"size": 1, "hashes": ["00" * 31]},  # not a SHA-256 hash
        {"size": 1, "hashes": ["zz" * 32]},  # not hex
        {"size": -1, "hashes": []},
        {"size": True, "hashes": ["00" * 32]},
        {"size": 1, "hashes": "00" * 32},
        {"hashes": []},
    ],
)
def test_compact_range_rejects_malformed_state(data: dict[str, Any]) -> None:
    with pytest.raises(CorruptStateError):
        CompactRange.from_dict(data)


def test_compact_range_takes_leaf_hashes_only() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange().append(b"a leaf, not its hash")


# --- LocalBlacklist: applying and verifying ------------------------------------------------------


def test_apply_then_verify_records_the_checkpoint(signer: LogSigner) -> None:
    leaves = sample_leaves(5)
    local = applied(leaves)
    assert local.size == 5
    assert local.root == root_from_leaves(leaves)
    assert local.checkpoint is None
    checkpoint = signer.checkpoint(leaves)
    local.verify(checkpoint)
    assert local.checkpoint == checkpoint


def test_apply_returns_the_decoded_change() -> None:
    change = LocalBlacklist().apply(log_index=0, leaf=make_leaf(0))
    assert change.log_index == 0
    assert change.entry.entry_id == "bl_1"
    assert change.entry.pseudonym == P1


def test_a_gap_is_refused_and_leaves_the_copy_unchanged() -> None:
    local = applied(sample_leaves(2))
    root = local.root
    with pytest.raises(SyncGapError, match="log index 3, expected 2") as caught:
        local.apply(log_index=3, leaf=make_leaf(3, entry_id="bl_3"))
    assert (caught.value.expected, caught.value.got) == (2, 3)
    assert isinstance(caught.value, VerificationError)
    assert (local.size, local.root, len(local)) == (2, root, 2)


def test_a_repeat_is_refused() -> None:
    leaves = sample_leaves(2)
    local = applied(leaves)
    with pytest.raises(SyncGapError, match="log index 1, expected 2") as caught:
        local.apply(log_index=1, leaf=leaves[1])
    assert (caught.value.expected, caught.value.got) == (2, 1)
    assert local.size == 2


def test_a_leaf_naming_another_index_is_refused() -> None:
    local = LocalBlacklist()
    with pytest.raises(MalformedLeafError, match="at index 7"):
        local.apply(log_index=0, leaf=make_leaf(7))
    with pytest.raises(MalformedLeafError):
        local.apply(log_index=0, leaf=b"not json")
    assert local.size == 0


def test_a_tampered_leaf_makes_verify_fail(signer: LogSigner) -> None:
    leaves = sample_leaves(4)
    checkpoint = signer.checkpoint(leaves)  # what the log signed
    tampered = leaves[2].replace(b'"reporter":"bank-a"', b'"reporter":"bank-b"')
    assert tampered != leaves[2]
    assert decode_leaf(tampered).entry.reporter == "bank-b"  # still a valid leaf
    local = applied([*leaves[:2], tampered, leaves[3]])
    with pytest.raises(LogConsistencyError, match="signed root at size 4 differs") as caught:
        local.verify(checkpoint)
    assert "rewritten or the changes were altered" in str(caught.value)
    assert local.checkpoint is None


def test_verify_needs_a_checkpoint_of_the_applied_size(signer: LogSigner) -> None:
    leaves = sample_leaves(4)
    local = applied(leaves[:3])
    with pytest.raises(LogConsistencyError, match="size 4 but the copy built from its changes"):
        local.verify(signer.checkpoint(leaves))


def test_empty_copy_verifies_against_the_empty_tree(signer: LogSigner) -> None:
    local = LocalBlacklist()
    local.verify(signer.checkpoint([]))
    assert local.checkpoint is not None
    assert local.checkpoint.tree_size == 0


def test_a_later_leaf_replaces_the_entry() -> None:
    appeal = LeafAppeal(
        appeal_id="ap_1", filed_by="platform", filed_at=T0, deadline=T0 + timedelta(days=20)
    )
    leaves = [
        make_leaf(0),
        make_leaf(1, status="under_appeal", change="appealed", appeal=appeal),
        make_leaf(2, status="removed", change="removed", appeal=appeal),
    ]
    local = applied(leaves[:2])
    assert len(local) == 1
    assert local.entries["bl_1"].status == "under_appeal"
    assert local.entries["bl_1"].appeal == appeal
    assert [e.entry_id for e in local.in_force(P1)] == ["bl_1"]
    local.apply(log_index=2, leaf=leaves[2])
    assert len(local) == 1
    assert local.entries["bl_1"].status == "removed"
    assert local.latest_leaf("bl_1") == leaves[2]
    assert local.in_force(P1) == []


def test_in_force_filters_removed_and_expired() -> None:
    leaves = [
        make_leaf(0, entry_id="a", status="active"),
        make_leaf(1, entry_id="b", status="under_appeal", change="appealed"),
        make_leaf(2, entry_id="c", status="removed", change="removed"),
        make_leaf(3, entry_id="d", status="expired", change="expired"),
        make_leaf(4, entry_id="e", status="active", pseudonym=P2),
    ]
    local = applied(leaves)
    assert [e.entry_id for e in local.in_force(P1)] == ["a", "b"]
    assert [e.entry_id for e in local.in_force(P2)] == ["e"]
    assert local.in_force(hashlib.sha256(b"nobody").digest()) == []
    assert len(local) == 5
    assert sorted(local.entries) == ["a", "b", "c", "d", "e"]


def test_entries_is_read_only() -> None:
    local = applied(sample_leaves(1))
    with pytest.raises(TypeError):
        local.entries["x"] = local.entries["bl_0"]  # type: ignore[index]


# --- LocalBlacklist: persistence -----------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path, signer: LogSigner) -> None:
    leaves = [*sample_leaves(6), make_leaf(6, entry_id="bl_2", status="removed", change="removed")]
    local = applied(leaves)
    local.verify(signer.checkpoint(leaves))
    path = tmp_path / "blacklist.json"
    local.save(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["blacklist.json"]  # no temporary left

    loaded = LocalBlacklist.load(path)
    assert loaded.size == local.size == 7
    assert loaded.root == local.root
    assert loaded.checkpoint == local.checkpoint
    assert dict(loaded.entries) == dict(local.entries)
    assert all(loaded.latest_leaf(i) == local.latest_leaf(i) for i in local.entries)
    assert loaded.in_force(P1) == local.in_force(P1)
    assert loaded.in_force(P2) == local.in_force(P2)

    # The loaded copy carries on: applies the next change and verifies the next checkpoint.
    more = [*leaves, make_leaf(7, entry_id="bl_7")]
    loaded.apply(log_index=7, leaf=more[7])
    loaded.verify(signer.checkpoint(more))
    with pytest.raises(SyncGapError):
        loaded.apply(log_index=7, leaf=more[7])


def test_save_replaces_an_existing_file(tmp_path: Path, signer: LogSigner) -> None:
    path = tmp_path / "blacklist.json"
    LocalBlacklist().save(path)
    leaves = sample_leaves(3)
    local = applied(leaves)
    local.save(path)
    assert LocalBlacklist.load(path).size == 3
    assert LocalBlacklist.load(path).checkpoint is None


def test_load_keeps_changes_applied_past_the_last_checkpoint(
    tmp_path: Path, signer: LogSigner
) -> None:
    leaves = sample_leaves(5)
    local = applied(leaves[:3])
    local.verify(signer.checkpoint(leaves[:3]))
    local.apply(log_index=3, leaf=leaves[3])
    local.apply(log_index=4, leaf=leaves[4])
    local.save(tmp_path / "b.json")
    loaded = LocalBlacklist.load(tmp_path / "b.json")
    assert loaded.size == 5
    assert loaded.checkpoint is not None
    assert loaded.checkpoint.tree_size == 3
    loaded.verify(signer.checkpoint(leaves))


def _other_root(body: str) -> str:
    lines = body.split("\n")
    lines[2] = base64.b64encode(bytes(32)).decode()
    return "\n".join(lines)


def _edit(path: Path, **changes: Any) -> None:
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda d: {"size": d["size"] + 1}, id="size"),
        pytest.param(lambda d: {"v": 2}, id="version"),
        pytest.param(lambda d: {"leaves": [*d["leaves"], d["leaves"][0]]}, id="duplicate-leaf"),
        pytest.param(lambda d: {"leaves": [d["leaves"][0][:-2]]}, id="bad-leaf"),
        pytest.param(lambda d: {"checkpoint": _other_root(d["checkpoint"])}, id="checkpoint-root"),
        pytest.param(
            lambda d: {"checkpoint": d["checkpoint"].replace("\n3\n", "\n4\n")},
            id="checkpoint-ahead",
        ),
        pytest.param(lambda d: {"range": {"size": 3, "hashes": []}}, id="range"),
        pytest.param(lambda d: {"checkpoint": "garbage"}, id="checkpoint-body"),
    ],
)
def test_load_rejects_an_altered_file(tmp_path: Path, signer: LogSigner, edit: Any) -> None:
    leaves = sample_leaves(3)
    local = applied(leaves)
    local.verify(signer.checkpoint(leaves))
    path = tmp_path / "b.json"
    local.save(path)
    _edit(path, **edit(json.loads(path.read_text())))
    with pytest.raises(CorruptStateError):
        LocalBlacklist.load(path)


def test_load_rejects_a_file_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_bytes(b"\xff not json")
    with pytest.raises(CorruptStateError):
        LocalBlacklist.load(path)


# --- BlacklistClient on a fake stub --------------------------------------------------------------


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def _path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 PATH(m, D[n]), leaf side first."""
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return [*_path(m, leaves[:k]), root_from_leaves(leaves[k:])]
    return [*_path(m - k, leaves[k:]), root_from_leaves(leaves[:k])]


def _subproof(m: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    """RFC 9162 SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if whole else [root_from_leaves(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], whole), root_from_leaves(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), root_from_leaves(leaves[:k])]


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class FakeStream:
    """A server stream: the items, then (unless ``end`` is set) an error or a clean end."""

    def __init__(self, items: list[blacklist_service_pb2.SyncBlacklistResponse], end: Any) -> None:
        self.items, self.end, self.cancelled = items, end, False

    def __iter__(self) -> Iterator[blacklist_service_pb2.SyncBlacklistResponse]:
        for item in self.items:
            if self.cancelled:
                raise FakeRpcError(grpc.StatusCode.CANCELLED)
            yield item
        if isinstance(self.end, BaseException):
            raise self.end
        if self.end == "block":  # a live stream with nothing new: wait to be cancelled
            while not self.cancelled:
                threading.Event().wait(0.01)
            raise FakeRpcError(grpc.StatusCode.CANCELLED)

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class FakeLog:
    """BlacklistService's log RPCs over an in-memory list of leaves."""

    def __init__(self, signer: LogSigner, leaves: Sequence[bytes]) -> None:
        self.signer = signer
        self.leaves = list(leaves)
        self.calls: list[tuple[str, Any, Any]] = []
        self.stream_faults: list[tuple[int, BaseException]] = []  # (items to send, then error)
        self.altered: dict[int, bytes] = {}  # log index -> leaf sent on the stream instead
        self.stream_end: Any = "block"
        self.check_batches: list[list[blacklist_pb2.BorrowerIdentifier]] = []

    def _record(self, name: str, request: Any, metadata: Any) -> None:
        self.calls.append((name, request, metadata))

    def GetCheckpoint(
        self, request: Any, *, timeout: float | None = None, metadata: Any = ()
    ) -> blacklist_service_pb2.GetCheckpointResponse:
        self._record("GetCheckpoint", request, metadata)
        return blacklist_service_pb2.GetCheckpointResponse(
            checkpoint=self.signer.signed_proto(self.leaves)
        )

    def GetConsistencyProof(
        self, request: Any, *, timeout: float | None = None, metadata: Any = ()
    ) -> blacklist_service_pb2.GetConsistencyProofResponse:
        self._record("GetConsistencyProof", request, metadata)
        first, second = request.first_tree_size, request.second_tree_size
        return blacklist_service_pb2.GetConsistencyProofResponse(
            first_tree_size=first,
            second_tree_size=second,
            hashes=_subproof(first, self.leaves[:second], True),
        )

    def GetInclusionProof(
        self, request: Any, *, timeout: float | None = None, metadata: Any = ()
    ) -> blacklist_service_pb2.GetInclusionProofResponse:
        self._record("GetInclusionProof", request, metadata)
        index, size = request.log_index, request.tree_size
        return blacklist_service_pb2.GetInclusionProofResponse(
            log_index=index,
            tree_size=size,
            leaf=self.altered.get(index, self.leaves[index]),
            hashes=_path(index, self.leaves[:size]),
        )

    def SyncBlacklist(
        self, request: Any, *, timeout: float | None = None, metadata: Any = ()
    ) -> FakeStream:
        self._record("SyncBlacklist", request, metadata)
        items = [
            blacklist_service_pb2.SyncBlacklistResponse(
                change=blacklist_pb2.BlacklistChange(
                    log_index=i, leaf=self.altered.get(i, self.leaves[i])
                )
            )
            for i in range(request.from_log_index, len(self.leaves))
        ]
        items.append(
            blacklist_service_pb2.SyncBlacklistResponse(
                checkpoint=self.signer.signed_proto(self.leaves)
            )
        )
        if self.stream_faults:
            count, error = self.stream_faults.pop(0)
            return FakeStream(items[:count], error)
        return FakeStream(items, self.stream_end)

    def CheckBorrowers(
        self, request: Any, *, timeout: float | None = None, metadata: Any = ()
    ) -> blacklist_service_pb2.CheckBorrowersResponse:
        self._record("CheckBorrowers", request, metadata)
        self.check_batches.append(list(request.borrowers))
        results = []
        for i, borrower in enumerate(request.borrowers):
            listed = borrower.pseudonym == P1
            results.append(
                blacklist_service_pb2.BorrowerCheckResult(
                    index=i,
                    pseudonym=borrower.pseudonym
                    or hashlib.sha256(borrower.raw.value.encode()).digest(),
                    clear=not listed,
                    entries=[blacklist_pb2.BlacklistEntry(entry_id="bl_1")] if listed else [],
                )
            )
        return blacklist_service_pb2.CheckBorrowersResponse(
            results=results, tree_size=len(self.leaves)
        )


FAST = RetryPolicy(max_attempts=3, initial_backoff=0.0, max_backoff=0.0)


def make_client(
    log: FakeLog, *, network_key: bytes | None = NETWORK_KEY, log_keys: Any = "signer"
) -> BlacklistClient:
    client = BlacklistClient(
        channel=grpc.insecure_channel("localhost:1"),  # never used: the stub is replaced
        caller="partner/bank-a",
        network_key=network_key,
        log_keys=log.signer.log_keys if log_keys == "signer" else log_keys,
        retry=FAST,
    )
    client._stub = log  # type: ignore[assignment]
    return client


def test_sync_builds_and_verifies_a_copy_from_empty(signer: LogSigner) -> None:
    log = FakeLog(signer, sample_leaves(9))
    local = LocalBlacklist()
    summary = make_client(log).sync(local)
    assert summary.applied == 9
    assert summary.reconnects == 0
    assert summary.checkpoint is not None
    assert summary.checkpoint.tree_size == 9
    assert local.checkpoint == summary.checkpoint
    assert local.root == root_from_leaves(log.leaves)
    assert [name for name, _, _ in log.calls] == ["GetCheckpoint", "SyncBlacklist"]
    assert all(("x-colending-caller", "partner/bank-a") in md for _, _, md in log.calls)


def test_sync_proves_consistency_then_streams_only_the_new_changes(signer: LogSigner) -> None:
    leaves = sample_leaves(12)
    log = FakeLog(signer, leaves[:5])
    client = make_client(log)
    local = LocalBlacklist()
    client.sync(local)
    log.leaves = leaves
    log.calls.clear()
    seen: list[int] = []
    checkpoints: list[int] = []
    summary = client.sync(
        local,
        on_change=lambda change: seen.append(change.log_index),
        on_checkpoint=lambda c: checkpoints.append(c.tree_size),
    )
    assert summary.applied == 7
    assert seen == list(range(5, 12))
    assert checkpoints == [12]
    names = [name for name, _, _ in log.calls]
    assert names == ["GetCheckpoint", "GetConsistencyProof", "SyncBlacklist"]
    proof_request = log.calls[1][1]
    assert (proof_request.first_tree_size, proof_request.second_tree_size) == (5, 12)
    assert log.calls[2][1].from_log_index == 5


def test_sync_when_up_to_date_opens_no_stream(signer: LogSigner) -> None:
    log = FakeLog(signer, sample_leaves(4))
    client = make_client(log)
    local = LocalBlacklist()
    client.sync(local)
    log.calls.clear()
    assert client.sync(local).applied == 0
    assert [name for name, _, _ in log.calls] == ["GetCheckpoint"]


def test_sync_resumes_after_unavailable_without_repeating(signer: LogSigner) -> None:
    log = FakeLog(signer, sample_leaves(10))
    log.stream_faults = [
        (3, FakeRpcError(grpc.StatusCode.UNAVAILABLE, "gateway restarting")),
        (4, FakeRpcError(grpc.StatusCode.UNAVAILABLE)),
    ]
    local = LocalBlacklist()
    seen: list[int] = []
    summary = make_client(log).sync(local, on_change=lambda c: seen.append(c.log_index))
    assert seen == list(range(10))
    assert summary.applied == 10
    assert summary.reconnects == 2
    starts = [req.from_log_index for name, req, _ in log.calls if name == "SyncBlacklist"]
    assert starts == [0, 3, 7]
    assert local.root == root_from_leaves(log.leaves)


def test_sync_gives_up_after_the_retry_policy_attempts(signer: LogSigner) -> None:
    log = FakeLog(signer, sample_leaves(3))
    log.stream_faults = [(0, FakeRpcError(grpc.StatusCode.UNAVAILABLE))] * 3
    with pytest.raises(UnavailableError):
        make_client(log).sync(LocalBlacklist())


def test_sync_does_not_retry_a_permanent_error(signer: LogSigner) -> None:
    log = FakeLog(signer, sample_leaves(3))
    log.stream_faults = [(1, FakeRpcError(grpc.StatusCode.PERMISSION_DENIED, "not a bank"))]
    local = LocalBlacklist()
    with pytest.raises(PermissionDeniedError, match="not a bank"):
        make_client(log).sync(local)
    assert local.size == 1


def test_sync_detects_a_rewritten_history(signer: LogSigner) -> None:
    log = FakeLog(signer, sample_leaves(6))
    client = make_client(log)
    local = LocalBlacklist()
    client.sync(local)
    # The log now shows another history for the first 6 changes, plus more.
    log.leaves = [make_leaf(i, entry_id=f"other_{i}") for i in range(9)]
    with pytest.raises(LogConsistencyError, match="does not extend the one at size 6"):
        client.sync(local)
    assert local.size == 6


def test_sync_detects_a_shrunken_log(signer: LogSigner) -> None:
    log = FakeLog(signer, sample_leaves(6))
    client = make_client(log)
    local = LocalBlacklist()
    client.sync(local)
    log.leaves = log.leaves[:4]
    with pytest.raises(LogConsistencyError, match="the log shrank"):
        client.sync(local)


def test_sync_detects_a_change_altered_on_the_stream(signer: LogSigner) -> None:
    log = FakeLog(signer, sample_leaves(5))
    log.altered[2] = log.leaves[2].replace(b'"reporter":"bank-a"', b'"reporter":"bank-z"')
    local = LocalBlacklist()
    with pytest.raises(LogConsistencyError, match="signed root at size 5 differs"):
        make_client(log).sync(local)
    assert local.checkpoint is None


def test_sync_refuses_a_stream_that_repeats_a_change(signer: LogSigner) -> None:
    log = FakeLog(signer, sample_leaves(3))
    original = log.SyncBlacklist

    def repeating(request: Any, **kwargs: Any) -> FakeStream:
        stream = original(request, **kwargs)
        stream.items.insert(1, stream.items[0])
        return stream

    log.SyncBlacklist = repeating  # type: ignore[method-assign]
    with pytest.raises(SyncGapError):
        make_client(log).sync(LocalBlacklist())


def test_sync_follow_stops_when_asked(signer: LogSigner) -> None:
    log = FakeLog(signer, sample_leaves(4))
    stop = threading.Event()
    local = LocalBlacklist()

    def on_checkpoint(checkpoint: Checkpoint) -> None:
        if checkpoint.tree_size == 4:
            stop.set()  # the stream now blocks, waiting for live changes, until cancelled

    summary = make_client(log).sync(local, follow=True, stop=stop, on_checkpoint=on_checkpoint)
    assert summary.applied == 4
    assert local.checkpoint is not None
    assert local.checkpoint.tree_size == 4


def test_checkpoint_needs_pinned_log_keys(signer: LogSigner) -> None:
    client = make_client(FakeLog(signer, []), log_keys=None)
    with pytest.raises(MissingKeyError, match="log keys"):
        client.checkpoint()


def test_checkpoint_signed_by_another_key_is_refused(signer: LogSigner) -> None:
    client = make_client(FakeLog(signer, []), log_keys=LogSigner().log_keys)
    with pytest.raises(VerificationError):
        client.checkpoint()


def test_checkpoint_whose_parsed_form_disagrees_is_refused(signer: LogSigner) -> None:
    log = FakeLog(signer, sample_leaves(3))
    signed_proto = signer.signed_proto

    def lying(leaves: Sequence[bytes]) -> blacklist_pb2.SignedCheckpoint:
        signed = signed_proto(leaves)
        signed.checkpoint.tree_size += 1
        return signed

    signer.signed_proto = lying  # type: ignore[method-assign]
    with pytest.raises(MalformedEnvelopeError, match="parsed form"):
        make_client(log).checkpoint()


def test_prove_inclusion_returns_the_proved_leaf(signer: LogSigner) -> None:
    log = FakeLog(signer, sample_leaves(11))
    client = make_client(log)
    checkpoint = client.checkpoint()
    for index in (0, 5, 10):
        leaf = client.prove_inclusion(index, checkpoint)
        assert leaf == log.leaves[index]
        assert decode_leaf(leaf).log_index == index
    log.altered[5] = log.leaves[5].replace(b"bank-a", b"bank-b")
    with pytest.raises(InclusionProofError):
        client.prove_inclusion(5, checkpoint)
    with pytest.raises(ValueError, match="not in a tree of 11"):
        client.prove_inclusion(11, checkpoint)


def test_check_pseudonymises_locally_batches_and_keeps_input_order(signer: LogSigner) -> None:
    log = FakeLog(signer, [])
    client = make_client(log)
    borrowers: list[bytes | tuple[IdentifierKind, str]] = [P2] * (CHECK_BATCH_SIZE + 1)
    borrowers[3] = P1
    borrowers[CHECK_BATCH_SIZE] = (IdentifierKind.RESIDENT_ID, RID.lower())
    results = client.check(borrowers)
    assert [len(b) for b in log.check_batches] == [CHECK_BATCH_SIZE, 1]
    assert [r.index for r in results] == list(range(CHECK_BATCH_SIZE + 1))
    assert [r.index for r in results if not r.clear] == [3]
    assert [e.entry_id for e in results[3].entries] == ["bl_1"]
    # The raw identifier never left: only its pseudonym was sent.
    sent = log.check_batches[1][0]
    assert sent.WhichOneof("value") == "pseudonym"
    assert sent.pseudonym == pseudonym(NETWORK_KEY, IdentifierKind.RESIDENT_ID, RID)
    assert results[-1].pseudonym == sent.pseudonym


def test_check_without_network_key_sends_raw_identifiers(signer: LogSigner) -> None:
    log = FakeLog(signer, [])
    client = make_client(log, network_key=None)
    client.check([(IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE, USCC)])
    sent = log.check_batches[0][0]
    assert sent.WhichOneof("value") == "raw"
    assert sent.raw.kind == blacklist_pb2.IDENTIFIER_KIND_UNIFIED_SOCIAL_CREDIT_CODE
    assert sent.raw.value == USCC
    assert client.check([]) == []
    assert len(log.check_batches) == 1


def test_check_refuses_bad_input_before_any_call(signer: LogSigner) -> None:
    log = FakeLog(signer, [])
    client = make_client(log)
    with pytest.raises(IdentifierError):
        client.check([P1, (IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE, "91330106673959654X")])
    with pytest.raises(ValueError, match="32 bytes"):
        client.check([P1[:31]])
    assert log.check_batches == []


def test_client_pseudonym_matches_the_sdk_function_and_needs_the_key(signer: LogSigner) -> None:
    client = make_client(FakeLog(signer, []))
    expected = hmac.new(NETWORK_KEY, f"uscc:{USCC}".encode(), hashlib.sha256).digest()
    assert client.pseudonym(IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE, USCC.lower()) == expected
    keyless = make_client(FakeLog(signer, []), network_key=None)
    with pytest.raises(MissingKeyError, match="network key") as caught:
        keyless.pseudonym(IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE, USCC)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(ValueError, match="at least 32 bytes"):
        make_client(FakeLog(signer, []), network_key=b"short")


def test_leaf_helpers_round_trip() -> None:
    # Guards the helpers above: a leaf decodes to what was encoded.
    change = decode_leaf(make_leaf(3, entry_id="x", status="under_appeal", change="appealed"))
    assert dataclasses.astuple(change)[:2] == (3, "appealed")
    assert change.entry.status == "under_appeal"


def test_sync_of_a_copy_ahead_of_a_lagging_checkpoint_proves_it_too(signer: LogSigner) -> None:
    log = FakeLog(signer, sample_leaves(8))
    local = applied(log.leaves[:6])  # saved mid-sync, past the checkpoint the gateway now serves
    lagging = signer.signed_proto(log.leaves[:4])
    log.GetCheckpoint = lambda request, **kwargs: (  # type: ignore[method-assign]
        blacklist_service_pb2.GetCheckpointResponse(checkpoint=lagging)
    )
    summary = make_client(log).sync(local)
    assert summary.applied == 2
    assert summary.checkpoint is not None
    assert summary.checkpoint.tree_size == 8
    proofs = [req for name, req, _ in log.calls if name == "GetConsistencyProof"]
    assert [(p.first_tree_size, p.second_tree_size) for p in proofs] == [(4, 8)]
