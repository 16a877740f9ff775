"""The shared blacklist from a bank's side: a verified local copy and a client of BlacklistService.

The gateway keeps the list as an append-only Merkle log (RFC 9162) of changes, each a canonical
JSON leaf (:mod:`colending_core._leaf`), and signs checkpoints of its size and root with its log key
(:mod:`colending_core._checkpoint`). A bank mirrors it without trusting the gateway's word:

* :class:`CompactRange` folds leaf hashes into the root of the tree so far in O(log n) memory;
* :class:`LocalBlacklist` applies changes strictly in log order and checks each signed checkpoint
  against the root of the copy it built, so a dropped, repeated or altered change is caught;
* :meth:`BlacklistClient.sync` first proves the latest checkpoint extends the last one the copy
  verified (no rewritten history), then streams the missing changes and verifies the copy.

Checks (:meth:`BlacklistClient.check`) are answered by the gateway and are *not* verified: use
them for a quick answer and the local copy for decisions that must stand up later.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Self

import grpc
from colending.v1 import (
    blacklist_pb2,
    blacklist_service_pb2,
    blacklist_service_pb2_grpc,
    common_pb2,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from colending_core import (
    EMPTY_ROOT,
    HASH_SIZE,
    IN_FORCE,
    NETWORK_KEY_BYTES,
    PSEUDONYM_BYTES,
    Checkpoint,
    ColendingError,
    ConsistencyProofError,
    CorruptStateError,
    IdentifierKind,
    LeafChange,
    LeafEntry,
    LogConsistencyError,
    MalformedEnvelopeError,
    MalformedLeafError,
    MissingKeyError,
    SyncGapError,
    decode_leaf,
    format_checkpoint,
    leaf_hash,
    node_hash,
    normalize,
    parse_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from colending_core import pseudonym as _pseudonym
from colending_core import verify_checkpoint as _verify_checkpoint
from partners.sdk._client import _Client, _new_request_id, _open_channel
from partners.sdk._errors import InternalError, ResourceExhaustedError, RpcError, UnavailableError
from partners.sdk._rpc import DEFAULT_TIMEOUT, RETRYABLE_CODES, RetryPolicy, translate
from partners.sdk._verify import envelope_from_proto

__all__ = [
    "CHECK_BATCH_SIZE",
    "BlacklistClient",
    "BorrowerCheck",
    "CompactRange",
    "LocalBlacklist",
    "SyncSummary",
]

CHECK_BATCH_SIZE: Final = 1000
"""Most borrowers the gateway checks in one ``CheckBorrowers`` call."""

_STATE_FORMAT: Final = "colending.local-blacklist"
_STATE_VERSION: Final = 1
_STOP_POLL: Final = 0.1  # seconds between looks at a sync's stop event while a stream blocks

_PROTO_KIND: Final = {
    IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE: (
        blacklist_pb2.IDENTIFIER_KIND_UNIFIED_SOCIAL_CREDIT_CODE
    ),
    IdentifierKind.RESIDENT_ID: blacklist_pb2.IDENTIFIER_KIND_RESIDENT_ID,
}

Borrower = bytes | tuple[IdentifierKind, str]
"""A pseudonym (32 bytes) or a raw identifier as ``(kind, value)``."""


# --- compact range --------------------------------------------------------------------------------


class CompactRange:
    """The right edge of an RFC 9162 Merkle tree: one subtree hash per set bit of its size.

    Appending a leaf hash merges equal-sized subtrees like a binary counter carries, so memory is
    O(log n) and :meth:`root` equals ``root_from_leaves`` of every leaf appended so far.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []  # largest (leftmost) subtree first

    @property
    def size(self) -> int:
        """Number of leaves appended."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The perfect subtrees' hashes, leftmost (largest) first."""
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes) -> None:
        """Append the hash of the next leaf (``leaf_hash(leaf)``, not the leaf itself)."""
        if not isinstance(leaf_hash, bytes) or len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes")
        merged, carry = leaf_hash, self._size
        # Each trailing 1 bit of the old size is a subtree as large as the one being carried.
        while carry & 1:
            merged = node_hash(self._hashes.pop(), merged)
            carry >>= 1
        self._hashes.append(merged)
        self._size += 1

    def root(self) -> bytes:
        """The Merkle tree hash of the leaves appended (:data:`EMPTY_ROOT` when there are none)."""
        if not self._hashes:
            return EMPTY_ROOT
        # MTH splits at the largest power of two, so the subtrees fold from the right.
        root = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            root = node_hash(left, root)
        return root

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form: ``{"size": n, "hashes": [lowercase hex, ...]}``."""
        return {"size": self._size, "hashes": [h.hex() for h in self._hashes]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild from :meth:`to_dict`; :class:`CorruptStateError` if it is not one."""
        try:
            size = data["size"]
            hexes = data["hashes"]
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise ValueError(f"size {size!r} is not a non-negative integer")
            if not isinstance(hexes, list) or not all(isinstance(h, str) for h in hexes):
                raise ValueError("hashes is not a list of hex strings")
            hashes = [bytes.fromhex(h) for h in hexes]
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptStateError(f"compact range is malformed: {exc}") from None
        if len(hashes) != size.bit_count():
            raise CorruptStateError(
                f"compact range of size {size} needs {size.bit_count()} hashes, has {len(hashes)}"
            )
        if any(len(h) != HASH_SIZE for h in hashes):
            raise CorruptStateError(f"compact range hashes must be {HASH_SIZE} bytes")
        compact = cls()
        compact._size, compact._hashes = size, hashes
        return compact

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return (self._size, self._hashes) == (other._size, other._hashes)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()[:16]}...)"


# --- local copy -----------------------------------------------------------------------------------


class LocalBlacklist:
    """A bank's copy of the blacklist, built from the log's changes and checked against its roots.

    ``size`` counts the changes applied (the next expected log index); :attr:`checkpoint` is the
    last signed checkpoint the copy was verified against (``None`` before the first). Changes
    applied after it are not vouched for until the next :meth:`verify`. Thread-safe: one thread
    may sync while others read.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._range = CompactRange()
        self._entries: dict[str, LeafEntry] = {}
        # entry id -> (log index, exact bytes) of its latest change: the evidence, kept verbatim
        self._leaves: dict[str, tuple[int, bytes]] = {}
        self._by_pseudonym: dict[bytes, list[str]] = {}
        self._checkpoint: Checkpoint | None = None

    @property
    def size(self) -> int:
        """Changes applied: the log index the next change must have."""
        return self._range.size

    @property
    def root(self) -> bytes:
        """Merkle root of the changes applied."""
        with self._lock:
            return self._range.root()

    @property
    def checkpoint(self) -> Checkpoint | None:
        """The last checkpoint the copy matched, or ``None``."""
        return self._checkpoint

    @property
    def entries(self) -> Mapping[str, LeafEntry]:
        """Every entry seen, by entry id, in its latest state: a read-only live view.

        While another thread syncs, iterate over a snapshot (``dict(local.entries)``).
        """
        return MappingProxyType(self._entries)

    def __len__(self) -> int:
        """Number of distinct entries seen (in force or not)."""
        return len(self._entries)

    def latest_leaf(self, entry_id: str) -> bytes:
        """The exact bytes of the entry's latest change (its ``log_index`` proves inclusion)."""
        with self._lock:
            return self._leaves[entry_id][1]

    def in_force(self, pseudonym: bytes) -> list[LeafEntry]:
        """The borrower's entries that are active or under appeal, oldest first."""
        with self._lock:
            entries = (self._entries[i] for i in self._by_pseudonym.get(bytes(pseudonym), ()))
            return [e for e in entries if e.status in IN_FORCE]

    def apply(self, *, log_index: int, leaf: bytes) -> LeafChange:
        """Apply the change at ``log_index``, which must be :attr:`size`, and return it decoded.

        Raises :class:`SyncGapError` for a gap or a repeat and :class:`MalformedLeafError` for a
        leaf that does not decode or names another index; the copy is unchanged then.
        """
        leaf = bytes(leaf)
        with self._lock:
            if log_index != self.size:
                raise SyncGapError(expected=self.size, got=log_index)
            change = decode_leaf(leaf)
            if change.log_index != log_index:
                raise MalformedLeafError(
                    f"leaf at log index {log_index} says it is at index {change.log_index}"
                )
            self._range.append(leaf_hash(leaf))
            self._put(change, leaf)
            return change

    def _put(self, change: LeafChange, leaf: bytes) -> None:
        entry = change.entry
        previous = self._entries.get(entry.entry_id)
        if previous is not None and previous.pseudonym != entry.pseudonym:
            # Not expected from the gateway, but the index must follow whatever the log says.
            self._by_pseudonym[previous.pseudonym].remove(entry.entry_id)
        if previous is None or previous.pseudonym != entry.pseudonym:
            self._by_pseudonym.setdefault(entry.pseudonym, []).append(entry.entry_id)
        self._entries[entry.entry_id] = entry
        self._leaves[entry.entry_id] = (change.log_index, leaf)

    def verify(self, checkpoint: Checkpoint) -> None:
        """Check the copy against a signed checkpoint of the same size and remember it.

        ``checkpoint`` must already be signature-checked (``verify_checkpoint``). Raises
        :class:`LogConsistencyError` if its size or root differs from the copy's.
        """
        with self._lock:
            if checkpoint.tree_size != self.size:
                raise LogConsistencyError(
                    f"the log's signed checkpoint is of size {checkpoint.tree_size} but the copy "
                    f"built from its changes has {self.size}"
                )
            if checkpoint.root_hash != self._range.root():
                raise LogConsistencyError(
                    f"the log's signed root at size {checkpoint.tree_size} differs from the copy "
                    "built from its changes: the log was rewritten or the changes were altered"
                )
            self._checkpoint = checkpoint

    # --- persistence ---------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the copy to ``path`` atomically (temporary file, then rename), mode 0600."""
        with self._lock:
            leaves = [leaf for _, leaf in sorted(self._leaves.values())]
            document = {
                "format": _STATE_FORMAT,
                "v": _STATE_VERSION,
                "size": self.size,
                "range": self._range.to_dict(),
                "leaves": [leaf.decode("utf-8") for leaf in leaves],
                "checkpoint": None
                if self._checkpoint is None
                else format_checkpoint(self._checkpoint).decode("utf-8"),
            }
        data = json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")
        target = Path(path)
        # mkstemp creates the file 0600 in the target's directory, so the rename stays atomic.
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Read a copy written by :meth:`save`; :class:`CorruptStateError` if it is not sound."""
        try:
            document = json.loads(Path(path).read_bytes().decode("utf-8"))
            if document.get("format") != _STATE_FORMAT or document.get("v") != _STATE_VERSION:
                raise ValueError("not a local blacklist file of this version")
            size = document["size"]
            compact = CompactRange.from_dict(document["range"])
            leaves = [str(text).encode("utf-8") for text in document["leaves"]]
            body = document["checkpoint"]
            checkpoint = None if body is None else parse_checkpoint(str(body).encode("utf-8"))
        except CorruptStateError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, ColendingError) as exc:
            raise CorruptStateError(f"{os.fspath(path)!r} is no saved blacklist: {exc}") from None
        if size != compact.size:
            raise CorruptStateError(f"size {size} differs from the range's {compact.size}")
        local = cls()
        local._range = compact
        for leaf in leaves:
            try:
                change = decode_leaf(leaf)
            except MalformedLeafError as exc:
                raise CorruptStateError(f"saved leaf does not decode: {exc}") from None
            if not 0 <= change.log_index < size or change.entry.entry_id in local._entries:
                raise CorruptStateError(
                    f"saved leaf at index {change.log_index} is out of place (size {size})"
                )
            local._put(change, leaf)
        if checkpoint is not None:
            # Saved after a verify, or mid-sync with changes past it; never ahead of the copy.
            if checkpoint.tree_size > size or (
                checkpoint.tree_size == size and checkpoint.root_hash != compact.root()
            ):
                raise CorruptStateError("saved checkpoint does not match the saved copy")
            local._checkpoint = checkpoint
        return local

    def __repr__(self) -> str:
        verified = None if self._checkpoint is None else self._checkpoint.tree_size
        return f"LocalBlacklist(size={self.size}, entries={len(self)}, verified_size={verified})"


# --- client ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BorrowerCheck:
    """The gateway's answer for one borrower of :meth:`BlacklistClient.check`.

    ``index`` is the borrower's position in the caller's input; ``entries`` are the entries in
    force as the gateway reports them (protobuf ``BlacklistEntry``, unverified); ``tree_size``
    is the log size the answer reflects.
    """

    index: int
    pseudonym: bytes
    clear: bool
    entries: tuple[blacklist_pb2.BlacklistEntry, ...]
    tree_size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncSummary:
    """What one :meth:`BlacklistClient.sync` did."""

    applied: int
    """Changes applied to the local copy."""
    checkpoint: Checkpoint | None
    """The last checkpoint the copy matched (``local.checkpoint``)."""
    reconnects: int = 0
    """Streams reopened after a transient failure."""


class BlacklistClient(_Client):
    """A client of ``BlacklistService`` for banks (and the platform, for appeals).

    ``caller`` is the development-mode identity (e.g. ``"partner/bank-a"``); with TLS the client
    certificate identifies the caller. ``network_key`` (shared by the gateway out of band) lets
    the client compute pseudonyms itself so raw identifiers never leave the bank. ``log_keys``
    are the gateway's checkpoint keys by key id, pinned out of band; checkpoints, proofs and
    :meth:`sync` need them. Mutating calls take a ``request_id`` (a fresh UUID when omitted) that
    stays the same across the client's own retries.
    """

    def __init__(
        self,
        *,
        channel: grpc.Channel,
        caller: str | None = None,
        network_key: bytes | None = None,
        log_keys: Mapping[str, Ed25519PublicKey] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> None:
        if network_key is not None and len(network_key) < NETWORK_KEY_BYTES:
            raise ValueError(f"the network key must be at least {NETWORK_KEY_BYTES} bytes")
        super().__init__(channel=channel, caller=caller, timeout=timeout, retry=retry)
        self._stub = blacklist_service_pb2_grpc.BlacklistServiceStub(channel)
        self._network_key = None if network_key is None else bytes(network_key)
        self._log_keys = None if log_keys is None else dict(log_keys)

    @classmethod
    def connect(
        cls,
        target: str,
        *,
        caller: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        network_key: bytes | None = None,
        log_keys: Mapping[str, Ed25519PublicKey] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        options: Sequence[tuple[str, str | int]] | None = None,
    ) -> Self:
        """Open a channel to ``target`` that the client owns and closes.

        Without ``credentials`` the channel is plaintext: for development only.
        """
        client = cls(
            channel=_open_channel(target, credentials, options),
            caller=caller,
            network_key=network_key,
            log_keys=log_keys,
            timeout=timeout,
            retry=retry,
        )
        client._owns_channel = True
        return client

    # --- pseudonyms and checks -----------------------------------------------------------

    def pseudonym(self, kind: IdentifierKind, raw: str) -> bytes:
        """The borrower's pseudonym, computed locally; ``IdentifierError`` for a bad identifier."""
        if self._network_key is None:
            raise MissingKeyError("computing a pseudonym needs the network key (network_key=...)")
        return _pseudonym(self._network_key, kind, raw)

    def check(self, borrowers: Sequence[Borrower]) -> list[BorrowerCheck]:
        """Check borrowers against the gateway's list; one result per input, in input order.

        A borrower is a 32-byte pseudonym or ``(IdentifierKind, raw identifier)``. With a network
        key, raw identifiers are turned into pseudonyms here and never sent; without one they
        are sent for the gateway to pseudonymise. Sent in batches of :data:`CHECK_BATCH_SIZE`.
        """
        # Build every request before the first call, so a bad identifier fails before any I/O.
        identifiers = [self._identifier(b) for b in borrowers]
        results: list[BorrowerCheck] = []
        for start in range(0, len(identifiers), CHECK_BATCH_SIZE):
            batch = identifiers[start : start + CHECK_BATCH_SIZE]
            response = self._call(
                self._stub.CheckBorrowers,
                blacklist_service_pb2.CheckBorrowersRequest(borrowers=batch),
            )
            if len(response.results) != len(batch):
                raise InternalError(
                    f"gateway answered {len(response.results)} results for {len(batch)} borrowers"
                )
            for position, (sent, result) in enumerate(zip(batch, response.results, strict=True)):
                if result.index != position or (
                    sent.HasField("pseudonym") and result.pseudonym != sent.pseudonym
                ):
                    raise InternalError(
                        f"gateway's result {position} answers for another borrower "
                        f"(index {result.index})"
                    )
                results.append(
                    BorrowerCheck(
                        index=start + position,
                        pseudonym=bytes(result.pseudonym),
                        clear=result.clear,
                        entries=tuple(result.entries),
                        tree_size=response.tree_size,
                    )
                )
        return results

    def _identifier(self, borrower: Borrower) -> blacklist_pb2.BorrowerIdentifier:
        if isinstance(borrower, bytes):
            if len(borrower) != PSEUDONYM_BYTES:
                raise ValueError(f"a pseudonym is {PSEUDONYM_BYTES} bytes, got {len(borrower)}")
            return blacklist_pb2.BorrowerIdentifier(pseudonym=borrower)
        kind, raw = borrower
        if self._network_key is not None:
            return blacklist_pb2.BorrowerIdentifier(pseudonym=self.pseudonym(kind, raw))
        return blacklist_pb2.BorrowerIdentifier(
            raw=blacklist_pb2.RawIdentifier(kind=_PROTO_KIND[kind], value=raw)
        )

    # --- reports and appeals -------------------------------------------------------------

    def report_default(
        self,
        *,
        borrower: tuple[IdentifierKind, str],
        reason: blacklist_pb2.BlacklistReason.ValueType,
        outstanding_minor: int,
        default_date: date,
        evidence_case_id: str = "",
        currency: str = "CNY",
        request_id: str | None = None,
    ) -> blacklist_service_pb2.ReportDefaultResponse:
        """Report a defaulting borrower (raw identifier: the gateway checks it too).

        ``outstanding_minor`` is in minor units (fen). The identifier is validated and
        normalised here first, so a typo fails before the call. The answer carries the new
        entry and its change's ``log_index``, which :meth:`prove_inclusion` takes.
        """
        if not isinstance(outstanding_minor, int) or isinstance(outstanding_minor, bool):
            raise TypeError("outstanding_minor must be an int of minor units")
        kind, raw = borrower
        request = blacklist_service_pb2.ReportDefaultRequest(
            request_id=request_id or _new_request_id(),
            borrower=blacklist_pb2.RawIdentifier(
                kind=_PROTO_KIND[kind], value=normalize(kind, raw)
            ),
            reason=reason,
            outstanding=common_pb2.Money(currency_code=currency, amount_minor=outstanding_minor),
            default_date=common_pb2.Date(
                year=default_date.year, month=default_date.month, day=default_date.day
            ),
            evidence_case_id=evidence_case_id,
        )
        return self._call(self._stub.ReportDefault, request)

    def file_appeal(
        self, entry_id: str, *, grounds: str, request_id: str | None = None
    ) -> blacklist_pb2.BlacklistEntry:
        """Dispute an entry; it stays in force, flagged, until the appeal is resolved."""
        request = blacklist_service_pb2.FileAppealRequest(
            request_id=request_id or _new_request_id(), entry_id=entry_id, grounds=grounds
        )
        return self._call(self._stub.FileAppeal, request).entry

    def resolve_appeal(
        self,
        entry_id: str,
        *,
        outcome: blacklist_pb2.AppealOutcome.ValueType,
        reason: str,
        request_id: str | None = None,
    ) -> blacklist_pb2.BlacklistEntry:
        """End an entry's appeal: ``APPEAL_OUTCOME_UPHELD`` or ``APPEAL_OUTCOME_REMOVED``."""
        request = blacklist_service_pb2.ResolveAppealRequest(
            request_id=request_id or _new_request_id(),
            entry_id=entry_id,
            outcome=outcome,
            reason=reason,
        )
        return self._call(self._stub.ResolveAppeal, request).entry

    # --- the log -------------------------------------------------------------------------

    def checkpoint(self) -> Checkpoint:
        """The log's latest checkpoint, signature-checked with the pinned log keys."""
        response = self._call(
            self._stub.GetCheckpoint, blacklist_service_pb2.GetCheckpointRequest()
        )
        return self._verify_signed(response.checkpoint)

    def _verify_signed(self, signed: blacklist_pb2.SignedCheckpoint) -> Checkpoint:
        if self._log_keys is None:
            raise MissingKeyError("verifying checkpoints needs the pinned log keys (log_keys=...)")
        if not signed.HasField("envelope"):
            raise MalformedEnvelopeError("signed checkpoint has no envelope")
        checkpoint = _verify_checkpoint(
            envelope_from_proto(signed.envelope), log_keys=self._log_keys
        )
        # The parsed copy is unsigned: a caller reading it must see what was signed, or nothing.
        parsed = signed.checkpoint
        try:
            parsed_time = parsed.timestamp.ToDatetime(tzinfo=UTC)
        except (ValueError, OverflowError):
            parsed_time = None
        if (parsed.origin, parsed.tree_size, bytes(parsed.root_hash), parsed_time) != (
            checkpoint.origin,
            checkpoint.tree_size,
            checkpoint.root_hash,
            checkpoint.timestamp,
        ):
            raise MalformedEnvelopeError(
                f"checkpoint's parsed form (size {parsed.tree_size}) differs from its signed "
                f"body (size {checkpoint.tree_size})"
            )
        return checkpoint

    def prove_inclusion(self, log_index: int, checkpoint: Checkpoint) -> bytes:
        """The leaf at ``log_index``, proved to be in the tree of ``checkpoint``.

        Returns the exact leaf bytes (``decode_leaf`` them); raises ``InclusionProofError`` if
        the proof does not lead to the checkpoint's root.
        """
        if not 0 <= log_index < checkpoint.tree_size:
            raise ValueError(
                f"log index {log_index} is not in a tree of {checkpoint.tree_size} leaves"
            )
        response = self._call(
            self._stub.GetInclusionProof,
            blacklist_service_pb2.GetInclusionProofRequest(
                log_index=log_index, tree_size=checkpoint.tree_size
            ),
        )
        if (response.log_index, response.tree_size) != (log_index, checkpoint.tree_size):
            raise InternalError(
                f"gateway proved leaf {response.log_index} in a tree of {response.tree_size}, "
                f"not leaf {log_index} in a tree of {checkpoint.tree_size}"
            )
        leaf = bytes(response.leaf)
        verify_inclusion(
            leaf=leaf,
            index=log_index,
            tree_size=checkpoint.tree_size,
            proof=[bytes(h) for h in response.hashes],
            root=checkpoint.root_hash,
        )
        if decode_leaf(leaf).log_index != log_index:
            raise MalformedLeafError(f"leaf at log index {log_index} names another index")
        return leaf

    def _check_extends(self, older: Checkpoint, newer: Checkpoint) -> None:
        """Raise :class:`LogConsistencyError` unless ``newer``'s tree extends ``older``'s."""
        if newer.tree_size < older.tree_size:
            raise LogConsistencyError(
                f"the log shrank: its latest checkpoint has {newer.tree_size} leaves, an earlier "
                f"one had {older.tree_size}"
            )
        proof: list[bytes] = []
        # Sizes 0 and equal sizes need no proof (and the server would read 0 as "latest").
        if 0 < older.tree_size < newer.tree_size:
            response = self._call(
                self._stub.GetConsistencyProof,
                blacklist_service_pb2.GetConsistencyProofRequest(
                    first_tree_size=older.tree_size, second_tree_size=newer.tree_size
                ),
            )
            if (response.first_tree_size, response.second_tree_size) != (
                older.tree_size,
                newer.tree_size,
            ):
                raise InternalError("gateway's consistency proof is for other tree sizes")
            proof = [bytes(h) for h in response.hashes]
        try:
            verify_consistency(
                first_size=older.tree_size,
                second_size=newer.tree_size,
                first_root=older.root_hash,
                second_root=newer.root_hash,
                proof=proof,
            )
        except ConsistencyProofError as exc:
            raise LogConsistencyError(
                f"the log's checkpoint at size {newer.tree_size} does not extend the one at size "
                f"{older.tree_size} verified earlier: {exc.message}"
            ) from exc

    def sync(
        self,
        local: LocalBlacklist,
        *,
        follow: bool = False,
        on_change: Callable[[LeafChange], None] | None = None,
        on_checkpoint: Callable[[Checkpoint], None] | None = None,
        stop: threading.Event | None = None,
        stream_timeout: float | None = None,
    ) -> SyncSummary:
        """Bring ``local`` up to the log's latest checkpoint, verifying as it goes.

        First the latest checkpoint is fetched and proved to extend ``local.checkpoint`` (else
        :class:`LogConsistencyError`). Then the missing changes are streamed and applied, and
        each checkpoint on the stream is checked against the copy. Without ``follow`` it returns
        once the copy matches a checkpoint at least as new as that latest one; with ``follow``
        it keeps applying live changes until ``stop`` is set. A stream broken by a transient
        status is reopened from ``local.size`` with backoff (the retry policy's attempts count
        failures in a row), so nothing is applied twice or skipped.

        ``on_change`` sees each change once applied, before a checkpoint vouches for it;
        ``on_checkpoint`` sees each checkpoint the copy matched (a good moment to ``save``).
        ``stream_timeout`` is each stream's deadline in seconds (``None``: none); on expiry the
        stream is reopened where it left off.
        """
        watched = stop is not None
        stop = stop if stop is not None else threading.Event()
        applied = reconnects = 0

        def summary() -> SyncSummary:
            return SyncSummary(applied=applied, checkpoint=local.checkpoint, reconnects=reconnects)

        def matched(checkpoint: Checkpoint) -> None:
            local.verify(checkpoint)
            if on_checkpoint is not None:
                on_checkpoint(checkpoint)

        latest = self.checkpoint()
        if local.checkpoint is not None:
            self._check_extends(local.checkpoint, latest)
        # Changes past the latest checkpoint (saved mid-sync) wait for a newer one, which must
        # then extend the latest too (the copy passed its size without comparing roots).
        target = max(latest.tree_size, local.size)
        unmatched = latest if local.size > latest.tree_size else None
        if local.size == latest.tree_size:
            matched(latest)
            if not follow:
                return summary()

        failures = 0
        while not stop.is_set():
            call = self._stub.SyncBlacklist(
                blacklist_service_pb2.SyncBlacklistRequest(from_log_index=local.size),
                timeout=stream_timeout,
                metadata=self._metadata,
            )
            finished = threading.Event()
            if watched:
                threading.Thread(
                    target=_cancel_on_stop, args=(stop, finished, call), daemon=True
                ).start()
            try:
                for response in call:
                    item = response.WhichOneof("item")
                    if item == "change":
                        change = local.apply(
                            log_index=response.change.log_index, leaf=response.change.leaf
                        )
                        applied += 1
                        failures = 0
                        if on_change is not None:
                            on_change(change)
                        # The streamed changes must also rebuild the latest checkpoint's root.
                        if local.size == latest.tree_size:
                            matched(latest)
                            if not follow:
                                return summary()
                    elif item == "checkpoint":
                        streamed = self._verify_signed(response.checkpoint)
                        # Prove it extends the checkpoint the copy is ahead of before the copy
                        # records it as verified (and a caller saves it).
                        if unmatched is not None:
                            self._check_extends(unmatched, streamed)
                            unmatched = None
                        matched(streamed)
                        failures = 0
                        if not follow and local.size >= target:
                            return summary()
                    # Any other item is from a newer contract: nothing to apply.
                error: RpcError = UnavailableError("the sync stream ended before the log did")
            except grpc.RpcError as exc:
                if stop.is_set():
                    break
                error = translate(exc)
                if error.code not in RETRYABLE_CODES:
                    raise error from exc
            finally:
                finished.set()
                call.cancel()
            failures += 1
            delay = self._retry_delay(error, failures)
            if delay is None:
                raise error
            reconnects += 1
            stop.wait(delay)
        return summary()

    def _retry_delay(self, error: RpcError, failures: int) -> float | None:
        """Seconds to wait before reopening a stream, or ``None`` to give up (as ``call_unary``)."""
        if failures >= self._retry.max_attempts:
            return None
        delay = self._retry.backoff(failures)
        if isinstance(error, ResourceExhaustedError | UnavailableError) and error.retry_after:
            hinted = error.retry_after.total_seconds()
            if hinted > self._retry.max_retry_delay:
                return None
            delay = max(delay, hinted)
        return delay


def _cancel_on_stop(stop: threading.Event, finished: threading.Event, call: grpc.Call) -> None:
    # A blocked stream read cannot watch an event, so a helper cancels the call when asked to.
    while not finished.wait(_STOP_POLL):
        if stop.is_set():
            call.cancel()
            return
