"""The crypto calendar (tasks/crypto/calendar.py): tokens trade every day, so Crypto's features,
targets, purge, staleness and readiness count calendar days, gaps included."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from numerflow.tasks.core.config import TargetSettings, TrainingSettings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, read_json, write_parquet
from numerflow.tasks.crypto.calendar import CARRIED, on_daily_calendar
from numerflow.tasks.crypto.demo import CryptoDemoMarket
from numerflow.tasks.model.dataset import build_dataset_frame
from numerflow.tasks.model.scoring import overlap_adjusted_sem
from numerflow.tasks.model.training import train_and_register
from numerflow.tasks.prices.quality import check_round_readiness

END = dt.date(2025, 6, 29)  # a Sunday: tokens trade on it


def _panel(days: int = 400, gap: tuple[int, int] = (100, 110)) -> pd.DataFrame:
    """Two tokens with a bar every day; ``GAP`` misses the days in ``gap``."""
    dates = pd.date_range("2024-01-01", periods=days, freq="D")
    rng = np.random.default_rng(3)
    frames = []
    for ticker in ("FULL", "GAP"):
        close = 10 * np.exp(np.cumsum(rng.normal(0, 0.03, days)))
        frame = pd.DataFrame({"ticker": ticker, "date": dates, "open": close, "high": close, "low": close,
                              "close": close, "adj_close": close, "volume": 1e6, "currency": "USD"})
        frames.append(frame if ticker == "FULL" else frame.drop(index=range(*gap)))
    return pd.concat(frames, ignore_index=True)


def test_seven_day_bars_span_calendar_days_and_gaps_are_filled():
    prices = _panel()
    filled = on_daily_calendar(prices)
    gap = filled[filled["ticker"] == "GAP"].set_index("date")
    assert gap[CARRIED].sum() == 10 and len(gap) == 400
    assert (gap.loc["2024-04-10":"2024-04-19", "adj_close"] == gap.loc["2024-04-09", "adj_close"]).all()
    assert (gap.loc[gap[CARRIED], "volume"] == 0).all()

    dataset = build_dataset_frame(prices, TargetSettings(), calendar_days=True)
    assert len(dataset) == len(prices)  # the carried days get no row of their own
    assert not ((dataset["ticker"] == "GAP") & dataset["date"].between("2024-04-10", "2024-04-19")).any()
    labelled = dataset[dataset["target_end_date"].notna()]
    # 20D2L on the crypto calendar: the window ends 22 calendar days later, across the gap too.
    assert ((labelled["target_end_date"] - labelled["date"]).dt.days == 22).all()
    raw = labelled.set_index(["ticker", "date"])["target_raw"]
    closes = filled.set_index(["ticker", "date"])["adj_close"]
    day = pd.Timestamp("2024-04-01")  # window: 2024-04-03 → 2024-04-23, through the gap
    expected = closes[("GAP", day + pd.Timedelta(days=22))] / closes[("GAP", day + pd.Timedelta(days=2))] - 1
    assert raw[("GAP", day)] == pytest.approx(expected)
    # Counted in bars instead, the same row's window would reach 10 days further.
    bars = build_dataset_frame(prices, TargetSettings())
    row = bars[(bars["ticker"] == "GAP") & (bars["date"] == day)].iloc[0]
    assert (row["target_end_date"] - day).days == 32


def test_features_on_the_calendar_never_see_later_bars():
    market = CryptoDemoMarket(tickers=60, years=1.0, signal=0.0, seed=5, end=END)
    prices = market.fetch(market.all_tickers())
    cut = pd.Timestamp("2025-03-01")
    before = build_dataset_frame(prices, TargetSettings(), calendar_days=True)
    changed = prices.copy()
    later = changed["date"] > cut
    shock = np.exp(np.random.default_rng(1).normal(0, 0.2, int(later.sum())))
    for column in ("close", "adj_close"):
        changed.loc[later, column] *= shock
    after = build_dataset_frame(changed, TargetSettings(), calendar_days=True)
    features = [c for c in before.columns if c.startswith("feature_")]
    left = before[before["date"] <= cut].set_index(["ticker", "date"])[features]
    right = after[after["date"] <= cut].set_index(["ticker", "date"])[features]
    pd.testing.assert_frame_equal(left, right)
    # Targets whose window ended by the cut are unchanged too.
    done = before["target_end_date"] <= cut
    pd.testing.assert_series_equal(before.loc[done, "target_raw"], after.loc[done, "target_raw"])


@pytest.mark.slow
def test_noise_market_on_seven_day_bars_scores_zero_and_the_purge_covers_the_calendar_span(tmp_path):
    market = CryptoDemoMarket(tickers=250, years=3.0, signal=0.0, seed=17, end=END)
    dataset = build_dataset_frame(market.fetch(market.all_tickers()), TargetSettings(), calendar_days=True)
    path = write_parquet(tmp_path / "dataset.parquet", dataset)
    settings = TrainingSettings(num_boost_round=80, validation_fraction=0.3, num_threads=1, refit_on_all=False,
                                embargo_days=0)
    result = train_and_register(Store(tmp_path / "store"), path, settings, run_id="t")
    meta = read_json(tmp_path / "store" / "models" / result.model_id / "meta.json")
    validation_start = pd.Timestamp(meta["data_range"]["validation_start"])
    # Every training label's window (22 calendar days, its real end date) ends before validation.
    assert pd.Timestamp(meta["data_range"]["train_last_target_end"]) < validation_start
    assert (pd.Timestamp(meta["data_range"]["train_last_target_end"])
            >= validation_start - pd.Timedelta(days=8))  # …and the purge is not wider than the span needs
    per_date = result.metrics["per_date"]
    corr = pd.Series(per_date["corr"], index=pd.to_datetime(per_date["date"]), dtype="float64").dropna()
    assert len(corr) > 200  # validation dates include weekends
    sem = overlap_adjusted_sem(corr, overlap=22)
    assert abs(corr.mean()) < 3 * sem, (corr.mean(), sem)


def test_a_coin_stale_for_n_calendar_days_is_refused_by_readiness():
    monday = dt.date(2024, 1, 8)
    coins = [f"C{i:03d}" for i in range(100)]
    last = pd.Series(pd.Timestamp("2024-01-07"), index=coins)
    last.iloc[:20] = pd.Timestamp("2024-01-05")  # Friday: 3 calendar days, 1 weekday behind
    with pytest.raises(BadInputError, match=r"prices_not_ready: 20 of 100 .* no bar within 2 calendar days"):
        check_round_readiness(coins, last, monday, stale_after_days=2, tournament="crypto")
    ok = check_round_readiness(coins, last, monday, stale_after_days=3, tournament="crypto")
    assert ok["stale_or_missing"] == 0
    # The same last bars for stocks count weekdays: one day behind, ready.
    assert check_round_readiness([f"T{i} US" for i in range(100)], last.set_axis([f"T{i} US" for i in range(100)]),
                                 monday, stale_after_days=2)["stale_or_missing"] == 0
