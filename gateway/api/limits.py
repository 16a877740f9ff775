"""Per-partner rate limits: a token bucket per bank, so one bank's burst cannot starve the rest.

A bank may make ``burst`` calls at once and ``rate`` a second on average; beyond that it gets
RESOURCE_EXHAUSTED with a RetryInfo saying when a token is next free (the SDK waits that long).
The platform and the operator are not limited: they are one party each, and the gateway's own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


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
