"""The shared token bucket, driven by a fake clock (no real sleeping, no timing asserts)."""

from __future__ import annotations

import threading

import pytest

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.prices.ratelimit import TokenBucket, shared_limiter


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        pass  # the bucket computes waits from its own bookkeeping; we only record them


def test_burst_goes_at_once_then_requests_are_spaced_at_rate():
    clock = FakeClock()
    bucket = TokenBucket(2.0, burst=3, clock=clock, sleep=clock.sleep)
    waits = [bucket.reserve() for _ in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.5, 1.0, 1.5])


def test_idle_time_refills_up_to_burst_only():
    clock = FakeClock()
    bucket = TokenBucket(1.0, burst=2, clock=clock, sleep=clock.sleep)
    [bucket.reserve() for _ in range(2)]
    clock.now = 100.0
    waits = [bucket.reserve() for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.0, 1.0, 2.0])


def test_pause_holds_everyone_then_resumes_at_rate_without_burst():
    clock = FakeClock()
    bucket = TokenBucket(10.0, burst=5, clock=clock, sleep=clock.sleep)
    bucket.pause(3.0)
    waits = [bucket.reserve() for _ in range(3)]
    assert waits == pytest.approx([3.0, 3.1, 3.2])


def test_threads_share_one_bucket_and_never_exceed_rate():
    clock = FakeClock()
    bucket = TokenBucket(5.0, burst=1, clock=clock, sleep=clock.sleep)
    waits: list[float] = []
    lock = threading.Lock()

    def worker():
        for _ in range(25):
            w = bucket.reserve()
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    # 200 reservations at 5/s with the clock frozen: send times 0, 0.2, ..., 39.8, each once.
    assert sorted(round(w, 6) for w in waits) == [round(i * 0.2, 6) for i in range(200)]
    assert bucket.acquired == 200


class SleepingClock(FakeClock):
    """Sleeping moves the fake clock forward (and records the sleep)."""

    def __init__(self):
        super().__init__()
        self.slept = []

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_acquire_sleeps_the_reserved_wait():
    clock = SleepingClock()
    bucket = TokenBucket(4.0, burst=1, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    bucket.acquire()
    assert clock.slept == [0.25]
    assert bucket.waited_seconds == pytest.approx(0.25)


def test_late_wakers_do_not_go_out_together_beyond_burst():
    # Three threads reserved slots 0, 0.1, 0.2 at 10/s (burst 1); the first two woke 0.5 s
    # late (a loaded CPU). Sending on wake-up would put 3 requests inside 0.2 s.
    clock = SleepingClock()
    bucket = TokenBucket(10.0, burst=1, clock=clock, sleep=clock.sleep)
    waits = [bucket.reserve() for _ in range(3)]
    assert waits == pytest.approx([0.0, 0.1, 0.2])
    clock.now = 0.5
    assert bucket._conform() == 0.0  # the first late one goes
    # The next one, on wake-up at the same instant, must wait one interval...
    assert bucket._conform() == pytest.approx(0.1)
    clock.now = 0.6
    assert bucket._conform() == 0.0
    # ... and acquire() does that wait itself: sends stay 0.1 s apart.
    sent = []
    for _ in range(3):
        bucket.acquire()
        sent.append(clock.now)
    assert all(b - a >= 0.1 - 1e-9 for a, b in zip([0.6, *sent], sent, strict=False))


def test_slow_down_after_429_keeps_requests_flowing_at_a_lower_rate_then_recovers():
    clock = SleepingClock()
    bucket = TokenBucket(10.0, burst=3, clock=clock, sleep=clock.sleep)
    bucket.slow_down(2.0, factor=0.5)
    assert bucket.slowdowns == 1
    sent = []
    for _ in range(4):
        bucket.acquire()
        sent.append(round(clock.now, 6))
    # No saved-up burst; the first send waits an interval; 5/s (0.2 s apart) while slowed,
    # not a full stop for 2 s.
    assert sent[0] > 0
    assert [round(b - a, 6) for a, b in zip(sent, sent[1:], strict=False)] == [0.2, 0.2, 0.2]
    assert sent[-1] < 2.0
    clock.now = 10.0  # the slow window is over: back to 10/s, burst 3 refilled
    waits = [bucket.reserve() for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.1])


def test_slow_down_factor_is_checked():
    with pytest.raises(BadInputError, match="invalid_rate_limit"):
        TokenBucket(1.0).slow_down(1.0, factor=0)


def test_shared_limiter_is_one_object_per_name_and_reconfigures_in_place():
    first = shared_limiter("test-shared", 2.0, 1)
    again = shared_limiter("test-shared", 4.0, 3)
    assert again is first and first.rate == 4.0 and first.burst == 3
    assert shared_limiter("test-other", 1.0, 1) is not first


@pytest.mark.parametrize("rate,burst", [(0, 1), (-1, 1), (1, 0)])
def test_invalid_limits_are_bad_input(rate, burst):
    with pytest.raises(BadInputError, match="invalid_rate_limit"):
        TokenBucket(rate, burst)
