"""The ingest bench's "share of R outside the 429 periods" (benchmarks/bench_ingest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fakes.yahoo import RecordedRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_ingest import window_shares  # noqa: E402


def _log(answers):
    """``answers``: (seconds since start, status) of chart requests; one cookie request too."""
    log = [RecordedRequest("GET", "fc.yahoo.com", "/", None, {}, None, 404, 0.0)]
    log += [RecordedRequest("GET", "query2.finance.yahoo.com", "/v8/finance/chart/S", "S", {}, None, status, at)
            for at, status in answers]
    return log


def test_windows_with_or_just_after_a_429_are_left_out():
    # R = 10/s for 10 s: full rate, except a 429 in second 3 and half rate while the limiter slows down.
    answers = [(s + i / 10, 200) for s in range(10) for i in range(10) if s not in (3, 4)]
    answers += [(3.05, 429)] + [(s + i / 5, 200) for s in (3, 4) for i in range(5)]
    answers.append((10.0, 200))  # closes the last full window
    shares = window_shares(_log(answers), rate=10, window=1.0, pause=1.0)
    assert shares["windows"] == 10
    # Second 3 holds the 429, second 4 lies within the 1-s pause after it: 8 clean windows at full rate.
    assert shares["clean_windows"] == 8 and shares["share_clean"] == pytest.approx(1.0)
    assert shares["share_all"] == pytest.approx((80 + 10) / 100)
    # Without the pause only the window holding the 429 is left out; the slow one counts against R.
    no_pause = window_shares(_log(answers), rate=10, window=1.0, pause=0.0)
    assert no_pause["clean_windows"] == 9 and no_pause["share_clean"] == pytest.approx((80 + 5) / 90)


def test_no_chart_requests():
    assert window_shares(_log([]), rate=10, window=1.0, pause=1.0)["windows"] == 0
