"""Page sizes and opaque page tokens / cursors shared by every list RPC."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Generic, TypeVar

from gateway.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_POSITION_DIGITS = 18  # below 2**63: fits a BIGINT on every backend

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Page(Generic[T]):
    """One page of a list and the token of the next (empty on the last page)."""

    items: list[T]
    next_page_token: str


def page_size(requested: int, *, field: str = "page_size") -> int:
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= requested <= MAX_PAGE_SIZE:
        raise InvalidArgument.single(field, f"must be between 1 and {MAX_PAGE_SIZE} (0 means 50)")
    return requested


def encode_token(kind: str, position: str | int) -> str:
    raw = f"{kind}:{position}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_token(token: str, kind: str, *, field: str = "page_token") -> str:
    """The position inside a token made by ``encode_token(kind, ...)``."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    prefix, sep, position = raw.partition(":")
    # isprintable(): a forged token must not smuggle NUL or control characters into a query.
    if prefix != kind or not sep or not position.isprintable():
        raise InvalidArgument.single(field, "is not a token returned by this list")
    return position


def decode_int_token(token: str, kind: str, *, field: str = "page_token") -> int:
    position = decode_token(token, kind, field=field)
    # isascii() too: isdigit() accepts digits such as "²" that int() refuses.
    if not (position.isascii() and position.isdigit() and len(position) <= MAX_POSITION_DIGITS):
        raise InvalidArgument.single(field, "is not a token returned by this list")
    return int(position)
