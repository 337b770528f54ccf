"""The per-key rate limit: one token bucket per API key, shared by the fast path and the routes.

``NBO_RATE_LIMIT_PER_KEY=200/second`` gives each key a bucket of 200 tokens that refills at 200
a second: a key may send a burst of one period's requests, then as many as the rate allows.
A request that finds no token is answered 429 with ``Retry-After`` (whole seconds until a token
is back) before any work is done. Every request with a known key takes one token, once: the
fast path (:mod:`nbo.serving.fastpath`) and the dependency of the routes
(:mod:`nbo.serving.deps`) both call :meth:`RateLimiter.take`, and a request the fast path hands
to FastAPI has not taken one yet.

Each worker keeps its own buckets (no shared state to wait on): with ``--workers N`` a key that
spreads its connections over the workers may make up to N times the rate.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from fastapi import HTTPException, status

from nbo.settings import RateLimit

__all__ = ["RateLimiter", "too_many"]


class RateLimiter:
    """Token buckets by key digest; :meth:`take` is all a request needs."""

    def __init__(self, rate: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._per_second = rate.requests / rate.seconds
        self._buckets: dict[str, tuple[float, float]] = {}  # digest -> (tokens, when)
        self._lock = threading.Lock()  # requests run on the loop; this keeps threads safe too

    def take(self, digest: str) -> float:
        """Take a token for the key; 0.0 when granted, else the seconds until one is back."""
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.get(digest, (float(self.rate.requests), now))
            tokens = min(float(self.rate.requests), tokens + (now - then) * self._per_second)
            if tokens >= 1.0:
                self._buckets[digest] = (tokens - 1.0, now)
                return 0.0
            self._buckets[digest] = (tokens, now)
            return (1.0 - tokens) / self._per_second

    def keep_only(self, digests: frozenset[str]) -> None:
        """Forget the buckets of keys no longer in force (after a rotation)."""
        with self._lock:
            for gone in self._buckets.keys() - digests:
                del self._buckets[gone]


def _detail(rate: RateLimit) -> str:
    period = "second" if rate.seconds == 1 else f"{rate.seconds:g} seconds"
    return f"rate limit of {rate.requests} requests per {period} for this key exceeded"


def _retry_after(wait: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(wait)))}


def too_many(rate: RateLimit, wait: float) -> HTTPException:
    """The 429 a route raises for a key out of tokens."""
    return HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, _detail(rate), _retry_after(wait))
