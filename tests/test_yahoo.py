"""YahooSource against the fake Yahoo, through real yfinance: outcomes, limiter, timeouts."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from fakes.yahoo import FakeYahoo, reset_yfinance
from tasks.ratelimit import TokenBucket
from tasks.sources import PriceSource
from tasks.sources.outcomes import NO_DATA, NOT_FOUND, OK, TRANSIENT, FetchRequest
from tasks.sources.yahoo import YahooSource


@pytest.fixture
def fake(tmp_path):
    reset_yfinance(tmp_path / "yf-cache")
    return FakeYahoo()


class RecordingBucket(TokenBucket):
    def __init__(self):
        super().__init__(1e6, 1000)
        self.pauses = []

    def pause(self, seconds):
        self.pauses.append(seconds)


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


def test_429_pauses_every_thread_and_is_transient(fake):
    fake.add("A")
    fake.fail("A", "429", "429")
    bucket = RecordingBucket()
    source = YahooSource(limiter=bucket, transport=fake, pause_on_429_seconds=4.0)
    (outcome,) = source.fetch_outcomes([FetchRequest("A US", ("A",))])
    assert outcome.kind == TRANSIENT and "429" in outcome.error
    assert bucket.pauses == [4.0, 4.0]
    (again,) = source.fetch_outcomes([FetchRequest("A US", ("A",))])
    assert again.kind == OK


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
