"""The network key: the HMAC secret behind every borrower pseudonym.

Kept like a signing key (file mode 0600, refused if anyone else can read it). The gateway shares
it with partner banks out of band (``colending-gateway keys export-network-key``) so they can
compute pseudonyms themselves and never send a raw identifier. It is never rotated in place:
a new key would give every borrower a new pseudonym and orphan the whole list.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from colending_core import NETWORK_KEY_BYTES
from gateway.signing.keyring import InsecureKeyFileError, KeyRingError

NETWORK_KEY_NAME = "network.key"


def open_network_key(directory: Path, *, create: bool = True) -> bytes:
    """Read ``directory/network.key`` (hex), creating a fresh random key on first use."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / NETWORK_KEY_NAME
    if create and not path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it first: read theirs
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(NETWORK_KEY_BYTES) + "\n")
                f.flush()
                os.fsync(f.fileno())
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise KeyRingError(f"the network key is missing: {path}") from None
    with os.fdopen(fd) as f:
        st = os.fstat(f.fileno())
        if st.st_mode & 0o077:
            raise InsecureKeyFileError(
                f"refusing to load network key {path}: mode is {stat.S_IMODE(st.st_mode):04o}, "
                f"expected 0600 (fix with: chmod 600 {path})"
            )
        text = f.read().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise KeyRingError(f"network key {path} is not hex") from None
    if len(key) < NETWORK_KEY_BYTES:
        raise KeyRingError(f"network key {path} is shorter than {NETWORK_KEY_BYTES} bytes")
    return key
