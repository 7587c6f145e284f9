"""YahooSource against the fake Yahoo, through real yfinance: outcomes, limiter, timeouts."""

from __future__ import annotations

import threading
from datetime import date

import numpy as np
import pandas as pd
import pytest
from fakes.yahoo import FakeYahoo, reset_yfinance

from numerflow.tasks.prices.ratelimit import TokenBucket
from numerflow.tasks.prices.sources import PriceSource
from numerflow.tasks.prices.sources.outcomes import NO_DATA, NOT_FOUND, OK, TRANSIENT, FetchRequest
from numerflow.tasks.prices.sources.yahoo import YahooSource


@pytest.fixture
def fake(tmp_path):
    reset_yfinance(tmp_path / "yf-cache")
    return FakeYahoo()


class RecordingBucket(TokenBucket):
    def __init__(self):
        super().__init__(1e6, 1000)
        self.pauses = []
        self.slowed = []

    def pause(self, seconds):
        self.pauses.append(seconds)

    def slow_down(self, seconds, factor=0.5):
        self.slowed.append(seconds)


def test_every_http_call_draws_from_the_shared_limiter_and_carries_our_timeout(fake):
    for i in range(12):
        fake.add(f"S{i}", seed=i)
    bucket = RecordingBucket()
    source = YahooSource(limiter=bucket, transport=fake, workers=4, timeout_seconds=7.5)
    outcomes = source.fetch_outcomes([FetchRequest(f"S{i} US", (f"S{i}",)) for i in range(12)])
    assert [o.kind for o in outcomes] == [OK] * 12
    assert [o.ticker for o in outcomes] == [f"S{i} US" for i in range(12)]  # order kept
    assert bucket.acquired == len(fake.log) == source.http_requests
    # yfinance asks fc.yahoo.com with 30 s and the timezone probe with 10 s: we cap them all.
    assert {r.timeout for r in fake.log} == {7.5}


def test_429_slows_the_shared_limiter_once_and_yfinance_does_not_ask_again(fake):
    fake.add("A")
    fake.fail("A", "429")
    bucket = RecordingBucket()
    source = YahooSource(limiter=bucket, transport=fake, pause_on_429_seconds=4.0)
    (outcome,) = source.fetch_outcomes([FetchRequest("A US", ("A",))])
    assert outcome.kind == TRANSIENT and "429" in outcome.error
    # One 429 = one slow-down of every thread's limiter, no full stop.
    assert bucket.slowed == [4.0] and bucket.pauses == []
    # yfinance neither re-sent the chart request nor switched cookie strategy (consent page).
    assert [r.status for r in fake.chart_requests("A")] == [429]
    assert not [r for r in fake.log if r.host == "guce.yahoo.com"]
    (again,) = source.fetch_outcomes([FetchRequest("A US", ("A",))])
    assert again.kind == OK
    assert [r.status for r in fake.chart_requests("A")] == [429, 200]


def test_404_is_answered_once_not_retried_by_yfinance(fake):
    source = YahooSource(limiter=RecordingBucket(), transport=fake)
    (outcome,) = source.fetch_outcomes([FetchRequest("GONE US", ("GONE",))])
    assert outcome.kind == NOT_FOUND and "delisted" in outcome.error
    assert [r.status for r in fake.chart_requests("GONE")] == [404]


@pytest.mark.parametrize(
    "fault,expected,needle",
    [
        ("timeout", TRANSIENT, "timeout"),
        ("connection", TRANSIENT, "connection"),
        ("malformed", TRANSIENT, "malformed_response"),
        ("500", TRANSIENT, "server_error: HTTP 500"),
        ("404", NOT_FOUND, "delisted"),
        ("empty", NO_DATA, "empty"),
    ],
)
def test_fault_kinds_are_classified_truthfully(fake, fault, expected, needle):
    fake.add("A")
    fake.fail("A", *([fault] * 2), history_only=True)
    source = YahooSource(limiter=RecordingBucket(), transport=fake, pause_on_429_seconds=0)
    (outcome,) = source.fetch_outcomes([FetchRequest("A US", ("A",))])
    assert outcome.kind == expected
    assert needle in outcome.error


def test_candidates_tried_in_order_and_transient_keeps_remaining(fake):
    fake.add("000660.KQ", currency="KRW", timezone="Asia/Seoul")
    source = YahooSource(limiter=RecordingBucket(), transport=fake)
    (outcome,) = source.fetch_outcomes([FetchRequest("000660 KR", ("000660.KS", "000660.KQ"))])
    assert outcome.kind == OK and outcome.symbol == "000660.KQ" and outcome.tried == ["000660.KS", "000660.KQ"]
    assert "000660.KS" in outcome.error  # the miss is explained
    fake.fail("000660.KQ", "503", "503", history_only=True)
    (outcome,) = source.fetch_outcomes([FetchRequest("000660 KR", ("000660.KS", "000660.KQ"))])
    assert outcome.kind == TRANSIENT and outcome.remaining == ("000660.KQ",)


def test_split_and_dividend_served_and_parsed_raw_and_adjusted(fake):
    listing = fake.add("NVDA", splits={date(2024, 2, 15): (4, 1)}, dividends={date(2024, 3, 1): 0.4})
    source = YahooSource(limiter=RecordingBucket(), transport=fake)
    (outcome,) = source.fetch_outcomes([FetchRequest("NVDA US", ("NVDA",))])
    bars = outcome.bars.set_index("date")
    served = listing.adjusted()
    np.testing.assert_allclose(bars["close"].to_numpy(), served["close"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(bars["adj_close"].to_numpy(), served["adjclose"].to_numpy(), rtol=1e-6)
    assert bars["splits"].loc[bars["splits"] != 0].to_dict() == {np.datetime64("2024-02-15"): 4.0}
    assert bars.loc[np.datetime64("2024-03-01"), "dividends"] == pytest.approx(0.4)
    # Pre-split raw close is a quarter of the traded price (Yahoo split-adjusts "close").
    assert bars["close"].iloc[0] == pytest.approx(listing.bars["close"].iloc[0] / 4, rel=1e-6)


def test_crypto_symbol_and_price_source_protocol(fake):
    fake.add("BTC-USD", timezone="UTC", price=60000, instrument_type="CRYPTOCURRENCY")
    source = YahooSource(limiter=RecordingBucket(), transport=fake)
    assert isinstance(source, PriceSource)
    bars = source.fetch(["BTC-USD", "NOPE-USD"], start=date(2024, 3, 1), end=date(2024, 3, 8))
    assert set(bars["ticker"]) == {"BTC-USD"}
    assert bars["date"].min() >= np.datetime64("2024-03-01") and bars["date"].max() <= np.datetime64("2024-03-08")
    assert len(bars) == 6


def test_guess_timezone_from_yahoo_suffix():
    from numerflow.tasks.prices.sources.yahoo import guess_timezone

    assert guess_timezone("AAPL") == "America/New_York"
    assert guess_timezone("BRK-B") == "America/New_York"
    assert guess_timezone("7203.T") == "Asia/Tokyo"
    assert guess_timezone("0001.HK") == "Asia/Hong_Kong"
    assert guess_timezone("000660.KQ") == "Asia/Seoul"
    assert guess_timezone("VOD.L") == "Europe/London"
    assert guess_timezone("BTC-USD") == "UTC"
    # Unknown forms: no guess, yfinance asks Yahoo as usual.
    assert guess_timezone("^GSPC") is None and guess_timezone("EURUSD=X") is None
    assert guess_timezone("X.UNKNOWN") is None and guess_timezone("X.ZZ") is None


def _count_tz_cache_calls(monkeypatch):
    """Calls to yfinance's SQLite tz cache, by thread name."""
    import threading

    from yfinance import cache as yf_cache

    calls = []
    for name in ("lookup", "store"):
        original = getattr(yf_cache._TzCache, name)

        def wrapper(self, *args, _original=original, _name=name):
            calls.append((_name, threading.current_thread().name))
            return _original(self, *args)

        monkeypatch.setattr(yf_cache._TzCache, name, wrapper)
    return calls


def test_seeded_timezones_one_request_per_symbol_and_exchange_local_dates(fake, monkeypatch):
    fake.add("AAPL", seed=1)
    fake.add("7203.T", currency="JPY", timezone="Asia/Tokyo", price=2500, seed=2)
    calls = _count_tz_cache_calls(monkeypatch)
    source = YahooSource(limiter=RecordingBucket(), transport=fake, workers=2)
    start = date(2024, 3, 11)
    outcomes = source.fetch_outcomes([FetchRequest("AAPL US", ("AAPL",), start), FetchRequest("7203 JP", ("7203.T",), start)])
    assert [o.kind for o in outcomes] == [OK, OK]
    # No timezone probe (range=1d): one chart request per symbol, with the window's start at
    # the exchange's local midnight.
    for symbol, tz in (("AAPL", "America/New_York"), ("7203.T", "Asia/Tokyo")):
        (request,) = fake.chart_requests(symbol)
        assert int(request.params["period1"]) == int(pd.Timestamp("2024-03-11", tz=tz).timestamp())
    # Dates are the exchange-local trading days (a Tokyo 09:00 bar is the previous day in UTC).
    for outcome, symbol in zip(outcomes, ("AAPL", "7203.T"), strict=True):
        expected = [d for d in fake.listings[symbol].bars.index if d >= start]
        assert outcome.bars["date"].dt.date.tolist() == expected
        assert outcome.timezone == fake.listings[symbol].timezone
    # Worker threads never touched yfinance's SQLite tz cache.
    assert [c for c in calls if c[1] != threading.current_thread().name] == []


def test_wrong_timezone_guess_is_caught_and_the_window_asked_again(fake):
    fake.add("7203.T", currency="JPY", timezone="Asia/Tokyo", price=2500, seed=2)
    source = YahooSource(limiter=RecordingBucket(), transport=fake)
    source.learn_timezones({"7203.T": "America/New_York"})  # a stale / wrong hint
    start, end = date(2024, 3, 11), date(2024, 3, 22)
    (outcome,) = source.fetch_outcomes([FetchRequest("7203 JP", ("7203.T",), start)], end=end)
    assert outcome.kind == OK and outcome.timezone == "Asia/Tokyo"
    first, second = fake.chart_requests("7203.T")
    # The guessed window started at New York's midnight; the answer said Tokyo: asked again.
    assert int(first.params["period1"]) == int(pd.Timestamp("2024-03-11", tz="America/New_York").timestamp())
    assert int(second.params["period1"]) == int(pd.Timestamp("2024-03-11", tz="Asia/Tokyo").timestamp())
    assert int(second.params["period2"]) == int(pd.Timestamp("2024-03-23", tz="Asia/Tokyo").timestamp())
    assert source.timezone_refetches == 1
    expected = [d for d in fake.listings["7203.T"].bars.index if start <= d <= end]
    assert outcome.bars["date"].dt.date.tolist() == expected
    # Learned: the next request uses Tokyo straight away (past windows are memoised by
    # yfinance: forget them so the request really goes out).
    from yfinance.data import YfData

    YfData.cache_get.cache_clear()
    fake.log.clear()
    source.fetch_outcomes([FetchRequest("7203 JP", ("7203.T",), start)], end=end)
    assert len(fake.chart_requests("7203.T")) == 1 and source.timezone_refetches == 1


def test_wrong_guess_on_an_open_window_needs_no_second_request(fake):
    fake.add("7203.T", currency="JPY", timezone="Asia/Tokyo", price=2500, seed=2)
    source = YahooSource(limiter=RecordingBucket(), transport=fake)
    source.learn_timezones({"7203.T": "America/New_York"})
    (outcome,) = source.fetch_outcomes([FetchRequest("7203 JP", ("7203.T",))])
    assert len(fake.chart_requests("7203.T")) == 1 and source.timezone_refetches == 0
    # Full history from 1960 to now: every bar, on its Tokyo date.
    assert outcome.bars["date"].dt.date.tolist() == list(fake.listings["7203.T"].bars.index)


def test_unseeded_symbols_open_yfinance_tz_cache_in_the_calling_thread_only(fake, monkeypatch):
    # Opened by two worker threads at once on a fresh cache dir, SQLite raised "database is
    # locked" out of history() now and then: the flaky ingest tests.
    from yfinance import cache as yf_cache

    opened = []
    original = yf_cache._TzCache.initialise

    def initialise(self):
        if self.initialised == -1:
            opened.append(threading.current_thread().name)
        return original(self)

    monkeypatch.setattr(yf_cache._TzCache, "initialise", initialise)
    for i in range(4):
        fake.add(f"S{i}", seed=i)
    source = YahooSource(limiter=RecordingBucket(), transport=fake, workers=4, seed_timezones=False)
    outcomes = source.fetch_outcomes([FetchRequest(f"S{i} US", (f"S{i}",)) for i in range(4)])
    assert [o.kind for o in outcomes] == [OK] * 4
    assert opened == [threading.current_thread().name]
    # Unseeded, yfinance asks Yahoo for each timezone (range=1d) before the history.
    assert sum("range" in r.params for r in fake.chart_requests()) == 4
