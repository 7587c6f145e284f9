"""The demo market: a deterministic synthetic price source with real-data quirks and a planted signal."""

from __future__ import annotations

import pickle
import re
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.schemas import PRICE_SCHEMA, validate_price_panel
from numerflow.tasks.core.store import read_parquet, write_parquet
from numerflow.tasks.prices.sources import PriceSource
from numerflow.tasks.prices.sources.demo import DemoMarket, _calendar_grid

END = date(2026, 11, 13)  # a Friday

# Symbol shapes of real numerai_tickers, written independently of the module under test.
TICKER_PATTERNS = {
    "US": r"[A-Z]{1,5}",
    "CA": r"[A-Z]{2,4}",
    "GB": r"[A-Z]{3,4}",
    "DE": r"[A-Z]{3}",
    "FR": r"[A-Z]{2,3}",
    "AU": r"[A-Z]{3}",
    "IN": r"[A-Z]{3,10}",
    "JP": r"[1-9]\d{3}",
    "TW": r"[1-9]\d{3}",
    "HK": r"[1-9]\d{0,3}",  # unpadded: "5 HK", "700 HK"
    "KR": r"\d{6}",
}
CURRENCY = {"US": "USD", "CA": "CAD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "AU": "AUD", "IN": "INR",
            "JP": "JPY", "TW": "TWD", "HK": "HKD", "KR": "KRW"}


@pytest.fixture(scope="module")
def market() -> DemoMarket:
    return DemoMarket(tickers=300, years=3.0, signal=0.5, seed=7, end=END)


@pytest.fixture(scope="module")
def bars(market: DemoMarket) -> pd.DataFrame:
    return market.fetch(market.all_tickers())


@pytest.fixture(scope="module")
def listings(market: DemoMarket) -> pd.DataFrame:
    return market.listings()


def _closed_days(bars: pd.DataFrame, listings: pd.DataFrame, grid: pd.DatetimeIndex) -> dict[str, set]:
    """Per country: grid days with no bar at all although some of its tickers were alive."""
    country_of = dict(zip(listings["numerai_ticker"], listings["country"], strict=True))
    traded = {
        country: set(dates)
        for country, dates in bars.assign(country=bars["ticker"].map(country_of)).groupby("country")["date"]
    }
    closed = {}
    for country, group in listings.groupby("country"):
        alive = [(grid >= first) & (grid <= last) for first, last in zip(group["first_date"], group["last_date"], strict=True)]
        any_alive = grid[np.any(alive, axis=0)]
        closed[country] = {d for d in any_alive if d not in traded[country]}
    return closed


# --------------------------------------------------------------------------- determinism


def test_same_arguments_give_identical_bars_and_another_seed_differs(bars: pd.DataFrame) -> None:
    again = DemoMarket(tickers=300, years=3.0, signal=0.5, seed=7, end=END)
    pd.testing.assert_frame_equal(again.fetch(again.all_tickers()), bars)
    other = DemoMarket(tickers=300, years=3.0, signal=0.5, seed=8, end=END)
    assert other.all_tickers() != again.all_tickers()
    assert not other.fetch(other.all_tickers())["close"].head(1000).equals(bars["close"].head(1000))


def test_signal_changes_only_the_drift(market: DemoMarket, bars: pd.DataFrame) -> None:
    noise_only = DemoMarket(tickers=300, years=3.0, signal=0.0, seed=7, end=END)
    noise_bars = noise_only.fetch(noise_only.all_tickers())
    # Same tickers, calendar, holidays, missing bars and volumes; different prices.
    pd.testing.assert_frame_equal(noise_bars[["ticker", "date", "currency"]], bars[["ticker", "date", "currency"]])
    pd.testing.assert_frame_equal(noise_only.listings(), market.listings())
    assert not np.allclose(noise_bars["adj_close"], bars["adj_close"])


def test_end_moves_the_calendar_not_the_random_draws() -> None:
    early = DemoMarket(tickers=50, years=1.0, signal=0.5, seed=3, end=date(2025, 6, 30))
    late = DemoMarket(tickers=50, years=1.0, signal=0.5, seed=3, end=END)
    assert early.all_tickers() == late.all_tickers()
    assert early.dates[-1] == pd.Timestamp("2025-06-30") and late.dates[-1] == pd.Timestamp(END)
    assert len(early.dates) == len(late.dates) == 261


def test_a_day_later_appends_a_day_and_keeps_every_stored_bar() -> None:
    # 2026-11-12 and 2026-11-13 are in the same calendar block (blocks of CALENDAR_BLOCK_DAYS weekdays).
    today = DemoMarket(tickers=120, years=2.0, signal=0.5, seed=3, end=date(2026, 11, 12))
    tomorrow = DemoMarket(tickers=120, years=2.0, signal=0.5, seed=3, end=END)
    assert _calendar_grid(date(2026, 11, 12), 522)[0] == _calendar_grid(END, 522)[0]
    old, new = today.fetch(today.all_tickers()), tomorrow.fetch(tomorrow.all_tickers())
    both = old.merge(new, on=["ticker", "date"], suffixes=("_old", "_new"))
    # Every day both serve is the same bar: only the oldest day left the window.
    assert len(both) == len(old) - (old["date"] == old["date"].min()).sum()
    assert (both["adj_close_old"] == both["adj_close_new"]).all()
    assert (both["volume_old"] == both["volume_new"]).all()
    # A dividend paid on the new day rescales its payer's raw closes, as a vendor's file does; no one else's.
    rescaled = set(both.loc[both["close_old"] != both["close_new"], "ticker"])
    assert len(rescaled) <= 5
    added = new[new["date"] == pd.Timestamp(END)]
    assert len(added) > 100 and (added["ticker"].isin(old["ticker"])).all()


def test_the_next_calendar_block_draws_a_new_market() -> None:
    last_of_block = _calendar_grid(END, 261)[0]
    first_of_next = (pd.Timestamp(last_of_block) + pd.offsets.BDay(1)).date()
    before = DemoMarket(tickers=50, years=1.0, seed=3, end=last_of_block)
    after = DemoMarket(tickers=50, years=1.0, seed=3, end=first_of_next)
    both = before.fetch(before.all_tickers()).merge(after.fetch(after.all_tickers()), on=["ticker", "date"])
    assert len(both) > 10_000 and (both["adj_close_x"] != both["adj_close_y"]).mean() > 0.9


def test_released_bars_are_freed_and_drawn_again_when_fetched(market: DemoMarket, bars: pd.DataFrame) -> None:
    clone = DemoMarket(tickers=market.tickers, years=market.years, signal=market.signal, seed=market.seed,
                       end=market.end)
    some = clone.all_tickers()[:20]
    first = clone.fetch(some)
    neutralizer, _ = clone.neutralizers(clone.dates[-3:])
    clone.release_bars()
    assert clone._market.adj_close.size == 0  # the matrices are gone, the attributes stay
    pd.testing.assert_frame_equal(clone.neutralizers(clone.dates[-3:])[0], neutralizer)
    pd.testing.assert_frame_equal(clone.listings(), market.listings())
    pd.testing.assert_frame_equal(clone.fetch(some), first)


def test_pickled_market_regenerates_the_same_bars(market: DemoMarket, bars: pd.DataFrame) -> None:
    clone = pickle.loads(pickle.dumps(market))
    some = market.all_tickers()[:20]
    pd.testing.assert_frame_equal(clone.fetch(some), market.fetch(some))


# --------------------------------------------------------------------------- schema


def test_bars_have_the_price_schema_and_survive_the_store(bars: pd.DataFrame, tmp_path) -> None:
    assert isinstance(DemoMarket(tickers=5, years=0.1, end=END), PriceSource)
    # The store is keyed by the market's parameters (not its end day): two markets never share one.
    assert DemoMarket(tickers=5, years=0.1, end=END).name == "demo-seed42-n5-y0p1-s0p5"
    assert DemoMarket(tickers=5, years=0.1, seed=7, end=END).name != DemoMarket(tickers=5, years=0.1, end=END).name
    assert DemoMarket(tickers=5, years=0.1).name == DemoMarket(tickers=5, years=0.1, end=END).name
    assert list(bars.columns) == PRICE_SCHEMA.names
    assert pd.api.types.is_datetime64_dtype(bars["date"])
    assert isinstance(bars["ticker"].dtype, pd.StringDtype) and isinstance(bars["currency"].dtype, pd.StringDtype)
    for column in ["open", "high", "low", "close", "adj_close", "volume"]:
        assert bars[column].dtype == np.float64
        assert np.isfinite(bars[column]).all()
    validate_price_panel(bars)
    assert list(bars.columns) == PRICE_SCHEMA.names
    # Sorted by (ticker, date) with no duplicates.
    assert bars.equals(bars.sort_values(["ticker", "date"], ignore_index=True))
    assert not bars.duplicated(["ticker", "date"]).any()
    # A stored-and-read panel is identical to the fetched one.
    write_parquet(tmp_path / "prices.parquet", bars, schema=PRICE_SCHEMA)
    pd.testing.assert_frame_equal(read_parquet(tmp_path / "prices.parquet"), bars)


def test_tickers_have_real_numerai_shapes_currencies_and_figis(
    market: DemoMarket, bars: pd.DataFrame, listings: pd.DataFrame
) -> None:
    tickers = market.all_tickers()
    assert len(tickers) == 300 and len(set(tickers)) == 300 and tickers == sorted(tickers)
    countries = set()
    for ticker in tickers:
        symbol, country = ticker.split(" ")
        assert re.fullmatch(TICKER_PATTERNS[country], symbol), ticker
        countries.add(country)
    assert countries == set(TICKER_PATTERNS)
    currency_by_ticker = bars.groupby("ticker")["currency"].agg(["nunique", "first"])
    assert (currency_by_ticker["nunique"] == 1).all()
    for ticker, currency in currency_by_ticker["first"].items():
        assert currency == CURRENCY[ticker.split(" ")[1]], ticker
    figis = listings["composite_figi"]
    assert figis.is_unique
    assert figis.str.fullmatch(r"BBG[B-DF-HJ-NP-TV-Z0-9]{8}\d").all()
    for figi in figis:  # FIGI check digit: modulus 10 double-add-double
        values = [int(c) if c.isdigit() else ord(c) - 55 for c in figi[:11]]
        total = sum(v * 2 // 10 + v * 2 % 10 if i % 2 else v // 10 + v % 10 for i, v in enumerate(values))
        assert int(figi[11]) == (10 - total % 10) % 10, figi
    hk = [t.split(" ")[0] for t in tickers if t.endswith(" HK")]
    assert all(not s.startswith("0") for s in hk)


def test_a_large_market_keeps_symbols_unique() -> None:
    tickers = DemoMarket(tickers=20_000, years=0.05, end=END).all_tickers()
    assert len(set(tickers)) == 20_000


# --------------------------------------------------------------------------- calendar


def test_no_weekend_bars_and_dates_inside_the_grid(market: DemoMarket, bars: pd.DataFrame) -> None:
    assert (bars["date"].dt.dayofweek < 5).all()
    assert bars["date"].max() <= pd.Timestamp(END)
    assert set(bars["date"].unique()) <= set(market.dates)
    assert (market.dates.dayofweek < 5).all() and market.dates.is_monotonic_increasing


def test_each_country_has_its_own_holidays(market: DemoMarket, bars: pd.DataFrame, listings: pd.DataFrame) -> None:
    closed = _closed_days(bars, listings, market.dates)
    assert len(closed) == 11
    full_years = [y for y in range(2024, 2026)]  # calendar years fully inside the 3-year grid
    for country, days in closed.items():
        for year in full_years:
            assert 8 <= sum(d.year == year for d in days) <= 10, (country, year)
    distinct = {frozenset(days) for days in closed.values()}
    assert len(distinct) == len(closed)  # no two countries share a holiday calendar


def test_missing_bars_are_absent_rows_at_a_low_rate(
    market: DemoMarket, bars: pd.DataFrame, listings: pd.DataFrame
) -> None:
    closed = _closed_days(bars, listings, market.dates)
    grid = market.dates
    expected = 0
    for row in listings.itertuples():
        alive = grid[(grid >= row.first_date) & (grid <= row.last_date)]
        expected += len(alive) - len(closed[row.country] & set(alive))
    missing = expected - len(bars)
    assert 0.001 < missing / expected < 0.006


def test_listings_and_delistings(market: DemoMarket, bars: pd.DataFrame, listings: pd.DataFrame) -> None:
    universe = market.universe()
    assert list(universe.columns) == ["numerai_ticker", "composite_figi", "country"]
    delisted = listings[listings["delisted"]]
    late = listings[listings["first_date"] > market.dates[0]]
    assert len(delisted) >= 5 and len(late) >= 20
    assert set(universe["numerai_ticker"]) == set(market.all_tickers()) - set(delisted["numerai_ticker"])
    assert (universe["country"] == universe["numerai_ticker"].str.split(" ").str[1]).all()
    span = bars.groupby("ticker")["date"].agg(["min", "max"])
    for row in delisted.itertuples():
        assert row.last_date < pd.Timestamp(END)
        assert span.loc[row.numerai_ticker, "max"] <= row.last_date
    for row in late.itertuples():
        assert span.loc[row.numerai_ticker, "min"] >= row.first_date > market.dates[0]
    # Live tickers trade into the last week.
    live_last = span.loc[universe["numerai_ticker"], "max"]
    assert (live_last >= pd.Timestamp(END) - pd.Timedelta(days=7)).all()


# --------------------------------------------------------------------------- prices


def test_ohlc_is_consistent_and_volume_positive(bars: pd.DataFrame) -> None:
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] > 0).all()
    assert (bars["high"] > bars["low"]).mean() > 0.99
    assert (bars["volume"] > 0).all() and (bars["volume"] == np.rint(bars["volume"])).all()
    # Volume has a per-ticker size level: tickers differ far more than days within a ticker.
    log_volume = np.log(bars["volume"])
    by_ticker = log_volume.groupby(bars["ticker"])
    assert by_ticker.mean().std() > 2 * by_ticker.std().median()


def test_dividends_make_adj_close_at_most_close_and_equal_at_the_last_bar(bars: pd.DataFrame) -> None:
    ratio = bars["adj_close"] / bars["close"]
    assert (ratio <= 1.0).all()
    last = bars.groupby("ticker").tail(1)
    assert (last["adj_close"] == last["close"]).all()
    payers = (ratio < 1).groupby(bars["ticker"]).any()
    assert 0.4 < payers.mean() < 0.8
    # The adjustment only steps up towards 1 (at ex-dates), never back down.
    step = ratio.groupby(bars["ticker"]).diff().dropna()
    assert (step >= -1e-12).all() and (step > 1e-4).sum() > 0


def test_daily_volatility_is_realistic_and_fat_tailed(bars: pd.DataFrame) -> None:
    log_return = np.log(bars["adj_close"]).groupby(bars["ticker"]).diff().dropna()
    vol = log_return.groupby(bars.loc[log_return.index, "ticker"]).std()
    assert 0.01 <= vol.median() <= 0.03
    assert vol.quantile(0.05) > 0.008 and vol.quantile(0.95) < 0.04
    standardised = log_return / bars.loc[log_return.index, "ticker"].map(vol).to_numpy()
    assert standardised.kurt() > 1.0  # fatter tails than a normal (excess kurtosis 0)


def test_start_end_filter_and_ticker_subset(market: DemoMarket, bars: pd.DataFrame) -> None:
    tickers = market.all_tickers()
    subset = [tickers[10], tickers[3], tickers[3], tickers[200]]
    start, end = date(2025, 3, 1), date(2025, 8, 29)
    window = market.fetch(subset, start=start, end=end)
    expected = bars[
        bars["ticker"].isin(subset) & (bars["date"] >= pd.Timestamp(start)) & (bars["date"] <= pd.Timestamp(end))
    ].reset_index(drop=True)
    pd.testing.assert_frame_equal(window, expected)
    assert window["ticker"].unique().tolist() == sorted(set(subset))
    assert window["date"].min() >= pd.Timestamp(start) and window["date"].max() <= pd.Timestamp(end)
    assert market.fetch(subset, start=date(2030, 1, 1)).empty
    assert market.fetch([]).columns.tolist() == PRICE_SCHEMA.names


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"tickers": 0}, "tickers"),
        ({"tickers": 2.5}, "tickers"),
        ({"tickers": True}, "tickers"),
        ({"tickers": 10**6}, "tickers"),
        ({"years": 0}, "years"),
        ({"years": -1.0}, "years"),
        ({"years": float("nan")}, "years"),
        ({"signal": -0.1}, "signal"),
        ({"signal": float("inf")}, "signal"),
        ({"seed": "x"}, "seed"),
        ({"end": "not a date"}, "end"),
    ],
)
def test_bad_arguments_raise_bad_input(kwargs: dict, words: str) -> None:
    with pytest.raises(BadInputError, match=words):
        DemoMarket(**kwargs)


def test_bad_fetch_requests_raise_bad_input(market: DemoMarket) -> None:
    with pytest.raises(BadInputError, match=r"unknown_tickers: 2 ticker\(s\).*NOPE US"):
        market.fetch([market.all_tickers()[0], "NOPE US", "ZZZZZZ XX"])
    with pytest.raises(BadInputError, match="single string"):
        market.fetch(market.all_tickers()[0])
    with pytest.raises(BadInputError, match="after end"):
        market.fetch(market.all_tickers()[:1], start=date(2025, 2, 1), end=date(2025, 1, 1))


def test_default_end_is_the_last_weekday_before_today_utc() -> None:
    today = datetime.now(UTC).date()
    end = DemoMarket(tickers=5, years=0.1).end
    assert end < today and end.weekday() < 5
    assert all((end + timedelta(days=k)).weekday() >= 5 for k in range(1, (today - end).days))
    # A weekend end moves back to the Friday.
    assert DemoMarket(tickers=5, years=0.1, end=date(2026, 11, 15)).end == date(2026, 11, 13)


# --------------------------------------------------------------------------- planted signal


def _momentum_corr_samples(signal: float) -> pd.Series:
    """Per-date Spearman corr of trailing 60-day return with the forward 20D2L return, on dates 22
    weekdays apart so forward windows never overlap (the per-date values are then uncorrelated
    under the null and the naive standard error is valid)."""
    demo = DemoMarket(tickers=1000, years=6.0, signal=signal, seed=11, end=END)
    prices = demo.fetch(demo.all_tickers())
    wide = prices.pivot(index="date", columns="ticker", values="adj_close").ffill(limit=5)
    trailing = wide / wide.shift(60) - 1
    forward = wide.shift(-22) / wide.shift(-2) - 1
    sample = trailing.index[60:-22:22]
    return trailing.loc[sample].rank(axis=1).corrwith(forward.loc[sample].rank(axis=1), axis=1).dropna()


def test_no_signal_means_momentum_predicts_nothing() -> None:
    corr = _momentum_corr_samples(0.0)
    assert len(corr) >= 60
    standard_error = corr.std() / np.sqrt(len(corr))
    assert abs(corr.mean()) < 3 * standard_error


def test_planted_signal_makes_momentum_predictive_and_grows_with_strength() -> None:
    half = _momentum_corr_samples(0.5)
    standard_error = half.std() / np.sqrt(len(half))
    assert half.mean() > 0.02 and half.mean() > 4 * standard_error
    full = _momentum_corr_samples(1.0)
    assert full.mean() > half.mean() + 4 * standard_error
