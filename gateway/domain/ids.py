"""Resource ids: a type prefix plus a ULID (time-ordered, 26 Crockford base32 characters).

Time-ordered ids keep B-tree inserts local and let operators read an id's age at a glance; the
80 random bits make them unguessable, so ids cannot be probed.
"""

from __future__ import annotations

import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id(prefix: str) -> str:
    value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def has_prefix(value: str, prefix: str) -> bool:
    """True if ``value`` looks like an id made by ``new_id(prefix)``."""
    head, sep, tail = value.partition("_")
    return sep == "_" and head == prefix and len(tail) == 26 and all(c in _CROCKFORD for c in tail)
