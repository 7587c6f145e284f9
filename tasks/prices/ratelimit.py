"""One process-wide token-bucket rate limiter per remote service.

Yahoo's limits are unpublished and per client IP, so every request the process makes
(any thread: yfinance's workers, Prefect's task-runner threads) must draw from the same
bucket. ``shared_limiter("yahoo", ...)`` returns that one bucket; ``TokenBucket`` is the
plain object (tests build their own with a fake clock).

Two checks per request: ``reserve()`` hands out send times at ``rate`` in arrival order;
after sleeping, ``acquire()`` re-checks against the *actual* send times, so threads that woke
late (GIL, a loaded CPU) cannot then go out together in a bunch larger than ``burst``.

A 429 answer means the service thinks we are too fast *now*: ``slow_down(seconds)`` drops
any saved-up burst, holds the next send for one interval and runs the bucket at a fraction
of its rate for ``seconds`` (every thread, not only the one that saw it). ``pause(seconds)``
holds everyone completely.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from numerflow.tasks.core.errors import BadInputError


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
        # Same algorithm over the times requests really go out (see ``acquire``).
        self._send_tat = self._tat
        self._paused_until = float("-inf")
        self._slow_until = float("-inf")
        self._slow_factor = 1.0
        self.acquired = 0
        self.waited_seconds = 0.0
        self.slowdowns = 0

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

    def _interval(self, now: float) -> float:
        """Seconds between requests now (longer while slowed down after a 429)."""
        factor = self._slow_factor if now < self._slow_until else 1.0
        return 1.0 / (self.rate * factor)

    def reserve(self) -> float:
        """Take one slot; return how many seconds the caller must wait before using it."""
        with self._lock:
            now = self._clock()
            interval = self._interval(now)
            tolerance = (self.burst - 1) * interval
            # After a pause, resume at ``rate`` from the pause's end: no saved-up burst.
            floor = max(now, self._paused_until + tolerance)
            tat = max(self._tat, floor)
            send_at = max(now, tat - tolerance)
            self._tat = tat + interval
            self.acquired += 1
            return send_at - now

    def _conform(self) -> float:
        """0 and book the send if sending now keeps actual sends within rate/burst, else the wait."""
        with self._lock:
            now = self._clock()
            interval = self._interval(now)
            tolerance = (self.burst - 1) * interval
            if self._send_tat - tolerance > now + 1e-9:
                return self._send_tat - tolerance - now
            self._send_tat = max(self._send_tat, now) + interval
            return 0.0

    def acquire(self) -> float:
        """Block until the caller may send one request; return the seconds waited.

        The reserved wait keeps arrival order; the re-check after it keeps the actual sends
        within ``rate``/``burst`` when earlier threads woke late and would go out together.
        """
        waited = 0.0
        wait = self.reserve()
        while True:
            if wait > 0:
                self._sleep(wait)
                waited += wait
            wait = self._conform()
            if wait <= 0:
                break
        if waited > 0:
            with self._lock:
                self.waited_seconds += waited
        return waited

    def slow_down(self, seconds: float, factor: float = 0.5) -> None:
        """After a 429: no saved-up burst, next send one interval away, ``factor`` × rate for ``seconds``.

        Cheaper than ``pause``: requests keep flowing at a lower pace instead of stopping.
        """
        if not 0 < factor <= 1:
            raise BadInputError(f"slow_down factor must be in (0, 1], got {factor}", tag="invalid_rate_limit")
        with self._lock:
            now = self._clock()
            self.slowdowns += 1
            if seconds > 0:
                self._slow_until = max(self._slow_until, now + seconds)
                self._slow_factor = factor
            interval = self._interval(now)
            tolerance = (self.burst - 1) * interval
            # The server's bucket is empty: the next request waits one (slowed) interval.
            self._tat = max(self._tat, now + interval + tolerance)
            self._send_tat = max(self._send_tat, now + interval + tolerance)

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
