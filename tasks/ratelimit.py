"""One process-wide token-bucket rate limiter per remote service.

Yahoo's limits are unpublished and per client IP, so every request the process makes
(any thread: yfinance's workers, Prefect's task-runner threads) must draw from the same
bucket. ``shared_limiter("yahoo", ...)`` returns that one bucket; ``TokenBucket`` is the
plain object (tests build their own with a fake clock).

A 429 answer means the service thinks we are too fast *now*: ``pause(seconds)`` makes
every thread wait, not only the one that saw it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tasks.errors import BadInputError


class TokenBucket:
    """Thread-safe token bucket: ``rate`` tokens per second, at most ``burst`` saved up.

    ``acquire()`` reserves a token under the lock and sleeps outside it, so waiting threads
    queue in arrival order without holding the lock while asleep.
    """

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._check(rate, burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self.rate = float(rate)
        self.burst = int(burst)
        # Generic cell rate algorithm: ``_tat`` is the theoretical arrival time of the
        # next request at exactly ``rate``; up to ``burst - 1`` requests may run ahead of it.
        self._tat = clock()
        self._paused_until = float("-inf")
        self.acquired = 0
        self.waited_seconds = 0.0

    @staticmethod
    def _check(rate: float, burst: int) -> None:
        if not rate > 0:
            raise BadInputError(f"requests_per_second must be > 0, got {rate}", tag="invalid_rate_limit")
        if burst < 1:
            raise BadInputError(f"burst must be >= 1, got {burst}", tag="invalid_rate_limit")

    def configure(self, rate: float, burst: int) -> None:
        """Change rate/burst in place (every holder of the bucket sees the change)."""
        self._check(rate, burst)
        with self._lock:
            self.rate = float(rate)
            self.burst = int(burst)

    def reserve(self) -> float:
        """Take one slot; return how many seconds the caller must wait before using it."""
        with self._lock:
            now = self._clock()
            interval = 1.0 / self.rate
            tolerance = (self.burst - 1) * interval
            # After a pause, resume at ``rate`` from the pause's end: no saved-up burst.
            floor = max(now, self._paused_until + tolerance)
            tat = max(self._tat, floor)
            send_at = max(now, tat - tolerance)
            self._tat = tat + interval
            self.acquired += 1
            return send_at - now

    def acquire(self) -> float:
        """Block until the caller may send one request; return the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
            with self._lock:
                self.waited_seconds += wait
        return wait

    def pause(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` from now (e.g. after a 429)."""
        if seconds <= 0:
            return
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)


_registry: dict[str, TokenBucket] = {}
_registry_lock = threading.Lock()


def shared_limiter(name: str, rate: float, burst: int) -> TokenBucket:
    """The process's one bucket called ``name``; created on first use, reconfigured after.

    Reconfiguring (a new rate from settings) keeps the same object so threads already
    holding it obey the new rate too.
    """
    with _registry_lock:
        bucket = _registry.get(name)
        if bucket is None:
            bucket = _registry[name] = TokenBucket(rate, burst)
        elif bucket.rate != rate or bucket.burst != burst:
            bucket.configure(rate, burst)
        return bucket
