"""Signed checkpoints of the blacklist log: a C2SP tlog-checkpoint body inside a DSSE envelope.

The body (https://c2sp.org/tlog-checkpoint) is UTF-8 text, each line ending in ``\\n``::

    colending.v1/blacklist
    42
    <base64 of the 32-byte root hash, standard alphabet, padded>
    time 2026-11-28T11:25:12.123456Z

The first three lines are the C2SP origin, tree size and root hash; the fourth is an extension
line with the time the gateway made it (RFC 3339, UTC, microseconds). The envelope's payload type
is :data:`CHECKPOINT_PAYLOAD_TYPE` and its signature is by the gateway's *log* key. Parsing is
strict: the gateway writes exactly this form, so anything else is a forgery or a bug.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from colending_core._dsse import CHECKPOINT_PAYLOAD_TYPE, Envelope, verify_envelope
from colending_core._errors import MalformedEnvelopeError
from colending_core._merkle import HASH_SIZE

__all__ = ["LOG_ORIGIN", "Checkpoint", "format_checkpoint", "parse_checkpoint", "verify_checkpoint"]

LOG_ORIGIN = "colending.v1/blacklist"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_MAX_TREE_SIZE = 2**64 - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """The log had ``tree_size`` leaves with Merkle root ``root_hash`` at ``timestamp``."""

    origin: str
    tree_size: int
    root_hash: bytes
    timestamp: datetime


def format_checkpoint(checkpoint: Checkpoint) -> bytes:
    """The exact bytes the gateway signs for ``checkpoint``."""
    stamp = checkpoint.timestamp.astimezone(UTC).strftime(_TIME_FORMAT)
    root = base64.b64encode(checkpoint.root_hash).decode("ascii")
    return f"{checkpoint.origin}\n{checkpoint.tree_size}\n{root}\ntime {stamp}\n".encode()


def parse_checkpoint(body: bytes) -> Checkpoint:
    """Parse a checkpoint body; :class:`MalformedEnvelopeError` says what is wrong with it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedEnvelopeError("checkpoint is not UTF-8") from None
    lines = text.split("\n")
    if len(lines) != 5 or lines[4] != "":
        raise MalformedEnvelopeError("checkpoint must be four lines, each ending in a newline")
    origin, size, root_b64, time_line = lines[:4]
    if not origin:
        raise MalformedEnvelopeError("checkpoint origin line is empty")
    if not _SIZE.fullmatch(size):
        raise MalformedEnvelopeError(f"checkpoint tree size {size!r} is not a decimal integer")
    try:
        root = base64.b64decode(root_b64, validate=True)
    except binascii.Error:
        raise MalformedEnvelopeError("checkpoint root hash is not base64") from None
    if len(root) != HASH_SIZE:
        raise MalformedEnvelopeError(f"checkpoint root hash is {len(root)} bytes, not {HASH_SIZE}")
    keyword, _, stamp = time_line.partition(" ")
    try:
        if keyword != "time":
            raise ValueError
        moment = datetime.strptime(stamp, _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise MalformedEnvelopeError(
            f"checkpoint time line {time_line!r} is not 'time <RFC 3339 UTC>'"
        ) from None
    checkpoint = Checkpoint(origin=origin, tree_size=int(size), root_hash=root, timestamp=moment)
    if checkpoint.tree_size > _MAX_TREE_SIZE:
        raise MalformedEnvelopeError(f"checkpoint tree size {size} is above 2**64 - 1")
    # One checkpoint has one spelling: anything the gateway would not have written is refused.
    if format_checkpoint(checkpoint) != body:
        raise MalformedEnvelopeError("checkpoint is not in its canonical form")
    return checkpoint


def verify_checkpoint(
    envelope: Envelope,
    *,
    log_keys: Mapping[str, Ed25519PublicKey],
    origin: str = LOG_ORIGIN,
) -> Checkpoint:
    """Verify a signed checkpoint with the trusted ``log_keys`` and return what it states."""
    body = verify_envelope(envelope, trusted_keys=log_keys, payload_type=CHECKPOINT_PAYLOAD_TYPE)
    checkpoint = parse_checkpoint(body)
    if checkpoint.origin != origin:
        raise MalformedEnvelopeError(
            f"checkpoint is for log {checkpoint.origin!r}, expected {origin!r}"
        )
    return checkpoint
