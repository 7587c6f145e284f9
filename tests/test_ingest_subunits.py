"""Sub-unit currencies (GBp, ZAc, ILA) on an incremental ingest: stored in major units, compared
like with like, so an unchanged history is never re-pulled as a 'revision'."""

from __future__ import annotations

import random
from datetime import date

import numpy as np
import pytest
from fakes.ingest_steps import ingest_like_the_flow
from fakes.yahoo import FakeYahoo, reset_yfinance

from numerflow.tasks.core.store import Store, read_parquet
from numerflow.tasks.prices.ingest import IngestOptions
from numerflow.tasks.prices.ratelimit import TokenBucket
from numerflow.tasks.prices.sources.yahoo import YahooSource

LISTINGS = {  # numerai_ticker: (Yahoo symbol, quote currency, timezone, price in the quote unit)
    "VOD GB": ("VOD.L", "GBp", "Europe/London", 7000.0),
    "NPN ZA": ("NPN.JO", "ZAc", "Africa/Johannesburg", 300000.0),
    "TEVA IL": ("TEVA.TA", "ILA", "Asia/Jerusalem", 5000.0),
    "AAPL US": ("AAPL", "USD", "America/New_York", 180.0),
}


@pytest.fixture
def fake(tmp_path):
    reset_yfinance(tmp_path / "yf-cache")
    fake = FakeYahoo()
    for n, (symbol, currency, tz, price) in enumerate(LISTINGS.values()):
        fake.add(symbol, currency=currency, timezone=tz, price=price, seed=n, end="2024-03-15")
    return fake


def _run(fake, store, as_of):
    source = YahooSource(limiter=TokenBucket(10_000, 100), transport=fake, pause_on_429_seconds=0, workers=2)
    mapping = {t: [s] for t, (s, *_) in LISTINGS.items()}
    result = ingest_like_the_flow(source, store, mapping, options=IngestOptions(batch_size=10), as_of=as_of,
                                  sleep=lambda s: None, rng=random.Random(0))
    return read_parquet(result.ledger_path).set_index("ticker"), result.summary


def test_unchanged_sub_unit_history_is_not_repulled_on_the_next_run(fake, tmp_path):
    store = Store(tmp_path / "data")
    _run(fake, store, date(2024, 3, 15))
    for symbol, *_ in LISTINGS.values():
        fake.extend(symbol, "2024-03-29")
    fake.log.clear()

    ledger, summary = _run(fake, store, date(2024, 3, 29))

    assert summary["repulled"] == 0, ledger[["repull_reason", "currency"]]
    assert ledger["repull_reason"].isna().all()
    for ticker, (symbol, *_) in LISTINGS.items():
        # One incremental request from the overlap window, never a second full one.
        (request,) = fake.history_requests(symbol)
        assert ledger.loc[ticker, "requested_start"] == "2024-03-10"
        assert ledger.loc[ticker, "rows"] == 10, ticker  # 10 new bars; the 5 overlap bars are unchanged
    bars = read_parquet(store.prices_dir("yahoo"))
    vod = bars[bars["ticker"] == "VOD GB"].set_index("date")
    raw = fake.listings["VOD.L"].bars
    np.testing.assert_allclose(vod["close"].to_numpy(), raw["close"].to_numpy() / 100, rtol=1e-6)
    assert set(bars.loc[bars["ticker"] != "AAPL US", "currency"]) == {"GBP", "ZAR", "ILS"}


def test_a_real_sub_unit_revision_is_still_repulled(fake, tmp_path):
    store = Store(tmp_path / "data")
    _run(fake, store, date(2024, 3, 15))
    listing = fake.listings["VOD.L"]
    listing.bars.loc[listing.bars.index[-2], "close"] *= 1.02  # Yahoo rewrote a bar in the overlap
    fake.extend("VOD.L", "2024-03-29")

    ledger, summary = _run(fake, store, date(2024, 3, 29))

    assert ledger.loc["VOD GB", "repull_reason"] == "revision"
    assert summary["repulled"] == 1
