"""Per-partner rate limits: a token bucket per bank, so one bank's burst cannot starve the rest;
and bounds on live streams, in all and per caller.

A bank may make ``burst`` calls at once and ``rate`` a second on average; beyond that it gets
RESOURCE_EXHAUSTED with a RetryInfo saying when a token is next free (the SDK waits that long).
The platform and the operator are not limited: they are one party each, and the gateway's own.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from gateway.errors import ResourceExhausted

# A live stream re-reads the database at least this often, which bounds how late it sees a write
# made through another replica (writes made here wake it at once).
STREAM_POLL_SECONDS = 0.5


class RateLimiter:
    def __init__(
        self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    @property
    def rate(self) -> float:
        return self._rate

    def take(self, key: str) -> float | None:
        """Spend a token of ``key``'s bucket: None if there was one, else seconds to wait."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self._burst), now))
            tokens = min(float(self._burst), tokens + (now - at) * self._rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return None
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self._rate


class StreamSlots:
    """Bounds on live server streams: each holds a worker thread for as long as it lives, so
    without a bound a few idle followers could starve every unary RPC; and a bound per caller,
    so one bank's leaked or runaway streams cannot take every slot from the others."""

    def __init__(self, *, limit: int, per_caller: int) -> None:
        if not 1 <= per_caller <= limit:
            raise ValueError("per_caller must be between 1 and limit")
        self._limit = limit
        self._per_caller = per_caller
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self, caller: str) -> Iterator[None]:
        with self._lock:
            if sum(self._held.values()) >= self._limit:
                raise ResourceExhausted(
                    f"all {self._limit} stream slots are in use; retry later",
                    retry_after_seconds=5,
                )
            mine = self._held.get(caller, 0)
            if mine >= self._per_caller:
                raise ResourceExhausted(
                    f"{caller} already has {mine} live streams, the most one caller may hold; "
                    "close one or retry later",
                    retry_after_seconds=5,
                )
            self._held[caller] = mine + 1
        try:
            yield
        finally:
            with self._lock:
                self._held[caller] -= 1
                if not self._held[caller]:
                    del self._held[caller]
