"""The gateway's signing key ring, kept in a directory (the data directory's ``keys/``).

Layout::

    keys/                 mode 0700
      keyring.json        index: key id, public key, created_at, retired_at (no secrets)
      <keyid>.pem         PKCS#8 PEM private key, mode 0600
      keyring.lock        advisory lock for writers in other processes (the CLI)

Exactly one key is active (signs); rotated-out keys keep a ``retired_at`` and stay published
until every referral they signed has expired. A CLI ``keys rotate`` may rewrite the index while
the server runs, so a ring re-reads the index when it changes (checked at most once per
``recheck_interval``). Exceptions and reprs never contain private key material.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from colending_core import Envelope, key_id, public_key_from_raw, sign_envelope

_log = logging.getLogger(__name__)

INDEX_NAME = "keyring.json"
LOCK_NAME = "keyring.lock"
INDEX_VERSION = 1
DIRECTORY_MODE = 0o700
PRIVATE_KEY_MODE = 0o600


class KeyRingError(Exception):
    """The key ring is missing, inconsistent or unsafe to use."""


class InsecureKeyFileError(KeyRingError):
    """A private key file is readable or writable by group/other."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishedKey:
    """A public signing key as the gateway publishes it to banks."""

    keyid: str
    public_key: bytes = field(repr=False)  # raw 32 bytes; the keyid already identifies it
    algorithm: str = "ed25519"
    created_at: datetime
    retired_at: datetime | None

    @property
    def active(self) -> bool:
        return self.retired_at is None

    def ed25519_public_key(self) -> Ed25519PublicKey:
        return public_key_from_raw(self.public_key)


# Index stat identity: mtime alone can repeat within a coarse timestamp tick, but os.replace
# always installs a new inode, so (mtime_ns, ino, size) changes on every rewrite.
_StatKey = tuple[int, int, int]


def _stat_key(st: os.stat_result) -> _StatKey:
    return (st.st_mtime_ns, st.st_ino, st.st_size)


class KeyRing:
    """Thread-safe key ring. Build with :meth:`KeyRing.open`."""

    def __init__(
        self,
        *,
        directory: Path,
        clock: Callable[[], datetime] = _utc_now,
        recheck_interval: float = 1.0,
    ) -> None:
        self._directory = directory
        self._index_path = directory / INDEX_NAME
        self._clock = clock
        self._recheck_interval = recheck_interval
        self._lock = threading.RLock()
        self._keys: tuple[PublishedKey, ...] = ()
        self._active: PublishedKey | None = None
        self._index_stat: _StatKey | None = None
        self._last_check = float("-inf")
        # Private keys are read once per key id: signing is on a hot path.
        self._private: dict[str, Ed25519PrivateKey] = {}

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: Path,
        *,
        clock: Callable[[], datetime] = _utc_now,
        create: bool = True,
        recheck_interval: float = 1.0,
    ) -> KeyRing:
        """Open the ring in ``directory``; with ``create``, make the directory and a first key.

        The active private key is loaded here so a missing or insecure key file fails at start,
        not on the first referral.
        """
        ring = cls(directory=directory, clock=clock, recheck_interval=recheck_interval)
        with ring._lock:
            if not ring._index_path.exists():
                if not create:
                    raise KeyRingError(f"no key ring index at {ring._index_path}")
                ring._create()
            else:
                ring._load_index()
            ring._active_private()
        return ring

    def _create(self) -> None:
        if not self._directory.exists():
            self._directory.mkdir(mode=DIRECTORY_MODE, parents=True)
            os.chmod(self._directory, DIRECTORY_MODE)  # mkdir's mode is filtered by the umask
        with self._file_lock():
            # Another process may have created the ring while we waited for the lock.
            if self._index_path.exists():
                self._load_index()
                return
            new_key = self._new_key(now=self._now())
            self._write_index((new_key,))

    # --- public API -----------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        return self._directory

    def active_key(self) -> PublishedKey:
        with self._lock:
            self._refresh_if_stale()
            assert self._active is not None
            return self._active

    def sign(self, payload: bytes, *, payload_type: str) -> Envelope:
        """Sign with the active key."""
        with self._lock:
            self._refresh_if_stale()
            private_key = self._active_private()
        # Sign outside the lock so concurrent RPCs do not serialise on Ed25519.
        return sign_envelope(payload, payload_type=payload_type, private_key=private_key)

    def rotate(self) -> PublishedKey:
        """Make a new active key; the previous one is retired now but stays published."""
        with self._lock, self._file_lock():
            # Re-read under the file lock so a concurrent rotation elsewhere is not lost.
            self._load_index()
            now = self._now()
            retired = tuple(_replace_retired(k, now) if k.active else k for k in self._keys)
            new_key = self._new_key(now=now)
            self._write_index((*retired, new_key))
            _log.info("rotated signing key: %s is now active", new_key.keyid)
            return new_key

    def published_keys(
        self, *, now: datetime | None = None, retain_for: timedelta
    ) -> list[PublishedKey]:
        """The active key, then retired keys (newest first) still inside ``retain_for``.

        ``retain_for`` should be the longest referral TTL: a retired key is kept until every
        referral it could have signed has expired.
        """
        at = _as_utc(now) if now is not None else self._now()
        with self._lock:
            self._refresh_if_stale()
            active = self._active
            assert active is not None
            retired = [
                k for k in self._keys if k.retired_at is not None and k.retired_at + retain_for > at
            ]
        retired.sort(key=lambda k: k.retired_at or at, reverse=True)
        return [active, *retired]

    def trusted_public_keys(
        self, *, now: datetime | None = None, retain_for: timedelta | None = None
    ) -> dict[str, Ed25519PublicKey]:
        """Public keys by key id, for verifying the gateway's own envelopes.

        Without ``retain_for`` every key in the ring is trusted (expiry inside the payload
        bounds how long an old signature matters); with it, only the published keys.
        """
        if retain_for is not None:
            keys = self.published_keys(now=now, retain_for=retain_for)
        else:
            with self._lock:
                self._refresh_if_stale()
                keys = list(self._keys)
        return {k.keyid: k.ed25519_public_key() for k in keys}

    def __repr__(self) -> str:
        active = self._active.keyid if self._active is not None else None
        return f"KeyRing(directory={str(self._directory)!r}, active_keyid={active!r})"

    # --- index ----------------------------------------------------------------------------

    def _now(self) -> datetime:
        return _as_utc(self._clock())

    def _refresh_if_stale(self) -> None:
        mono = time.monotonic()
        if mono - self._last_check < self._recheck_interval:
            return
        self._last_check = mono
        try:
            current = _stat_key(os.stat(self._index_path))
        except FileNotFoundError:
            # Keep signing with what we have; a vanished index is an operator problem.
            _log.warning("key ring index %s disappeared; using cached keys", self._index_path)
            return
        if current != self._index_stat:
            self._load_index()

    def _load_index(self) -> None:
        try:
            with open(self._index_path, "rb") as f:
                st = os.fstat(f.fileno())
                raw = f.read()
        except FileNotFoundError:
            raise KeyRingError(f"no key ring index at {self._index_path}") from None
        keys = _parse_index(raw, self._index_path)
        self._install(keys, _stat_key(st))

    def _install(self, keys: tuple[PublishedKey, ...], index_stat: _StatKey) -> None:
        active = [k for k in keys if k.active]
        if len(active) != 1:
            raise KeyRingError(
                f"key ring index {self._index_path} has {len(active)} active keys, expected 1"
            )
        self._keys = keys
        self._active = active[0]
        self._index_stat = index_stat
        self._last_check = time.monotonic()

    def _write_index(self, keys: tuple[PublishedKey, ...]) -> None:
        document = {
            "version": INDEX_VERSION,
            "keys": [
                {
                    "keyid": k.keyid,
                    "algorithm": k.algorithm,
                    "public_key": k.public_key.hex(),
                    "created_at": k.created_at.isoformat(),
                    "retired_at": k.retired_at.isoformat() if k.retired_at else None,
                }
                for k in keys
            ],
        }
        data = (json.dumps(document, indent=2) + "\n").encode("utf-8")
        _atomic_write(self._index_path, data, mode=0o644)
        self._install(keys, _stat_key(os.stat(self._index_path)))

    # --- private keys ---------------------------------------------------------------------

    def _new_key(self, *, now: datetime) -> PublishedKey:
        private_key = Ed25519PrivateKey.generate()
        public_raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        keyid = key_id(private_key.public_key())
        pem = private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        # The key file lands before the index names it, so no reader sees a dangling key id.
        _atomic_write(self._key_path(keyid), pem, mode=PRIVATE_KEY_MODE)
        self._private[keyid] = private_key
        return PublishedKey(keyid=keyid, public_key=public_raw, created_at=now, retired_at=None)

    def _key_path(self, keyid: str) -> Path:
        return self._directory / f"{keyid}.pem"

    def _active_private(self) -> Ed25519PrivateKey:
        assert self._active is not None
        keyid = self._active.keyid
        cached = self._private.get(keyid)
        if cached is None:
            cached = _load_private_key(self._key_path(keyid), keyid)
            self._private[keyid] = cached
        return cached

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        """Serialise writers across processes (server and CLI) on an advisory lock."""
        fd = os.open(self._directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock


def _replace_retired(key: PublishedKey, now: datetime) -> PublishedKey:
    return PublishedKey(
        keyid=key.keyid,
        public_key=key.public_key,
        algorithm=key.algorithm,
        created_at=key.created_at,
        retired_at=now,
    )


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("key ring times must be timezone-aware")
    return value.astimezone(UTC)


def _parse_index(raw: bytes, path: Path) -> tuple[PublishedKey, ...]:
    try:
        document: Any = json.loads(raw)
        if document.get("version") != INDEX_VERSION:
            raise KeyRingError(f"{path}: unsupported index version {document.get('version')!r}")
        keys: list[PublishedKey] = []
        for entry in document["keys"]:
            public_raw = bytes.fromhex(entry["public_key"])
            keyid = entry["keyid"]
            # The id is derived from the key; a mismatch means a hand-edited or corrupt index.
            if key_id(public_key_from_raw(public_raw)) != keyid:
                raise KeyRingError(f"{path}: key id {keyid!r} does not match its public key")
            retired = entry.get("retired_at")
            keys.append(
                PublishedKey(
                    keyid=keyid,
                    public_key=public_raw,
                    algorithm=entry.get("algorithm", "ed25519"),
                    created_at=_as_utc(datetime.fromisoformat(entry["created_at"])),
                    retired_at=_as_utc(datetime.fromisoformat(retired)) if retired else None,
                )
            )
    except KeyRingError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise KeyRingError(f"{path}: malformed key ring index ({type(exc).__name__})") from None
    return tuple(keys)


def _load_private_key(path: Path, keyid: str) -> Ed25519PrivateKey:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise KeyRingError(f"private key file for key id {keyid!r} is missing: {path}") from None
    with os.fdopen(fd, "rb") as f:
        # fstat on the open descriptor: the file checked is the file read.
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise KeyRingError(f"private key {path} is not a regular file")
        if st.st_mode & 0o077:
            raise InsecureKeyFileError(
                f"refusing to load private key {path}: mode is {stat.S_IMODE(st.st_mode):04o}, "
                f"expected 0600 (fix with: chmod 600 {path})"
            )
        pem = f.read()
    try:
        private_key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        # Do not chain: the parser's exception could quote the file's contents.
        raise KeyRingError(f"private key {path} is not a readable PKCS#8 PEM key") from None
    if not isinstance(private_key, Ed25519PrivateKey):
        raise KeyRingError(f"private key {path} is not an Ed25519 key")
    if key_id(private_key.public_key()) != keyid:
        raise KeyRingError(f"private key {path} does not match key id {keyid!r}")
    return private_key


def _atomic_write(path: Path, data: bytes, *, mode: int) -> None:
    """Write via a same-directory temp file created with ``mode``, then rename over ``path``."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # Make the rename itself durable.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
