"""The purge uses the chosen target's real horizon: a 60-day Numerai target never leaks.

Numerai's targets span 20 or 60 trading days (the number ending their name, lag 2). A 60-day
target purged as if it spanned 20 keeps ~40 days of training labels whose windows reach into
validation. On a pure-noise market the held-out CORR must stay within 3 standard errors of 0
and every training row's real target window must end before validation starts.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from numerflow.tasks.core.config import TargetSettings, TrainingSettings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, read_json, write_parquet
from numerflow.tasks.model.dataset import build_dataset_frame
from numerflow.tasks.model.scoring import overlap_adjusted_sem
from numerflow.tasks.model.targets import NUMERAI_TARGET_LAG, compute_targets, numerai_target_horizon
from numerflow.tasks.model.training import train_and_register
from numerflow.tasks.numerai.data import join_numerai_targets
from numerflow.tasks.prices.sources.demo import DemoMarket

END = dt.date(2025, 6, 27)


@pytest.mark.parametrize(("column", "horizon"), [
    ("target", 20), ("target_chili_60", 60), ("target_factor_neutral_60", 60), ("target_factor_neutral_20", 20),
    ("target_raw_return_20", 20), ("target_factor_feat_neutral_60", 60),
])
def test_horizon_is_read_from_the_target_name(column, horizon):
    assert numerai_target_horizon(column) == horizon


@pytest.mark.parametrize("column", ["target_chili", "signal_60", "target_0", "my_label"])
def test_a_name_without_a_horizon_is_refused(column):
    with pytest.raises(BadInputError, match="invalid_targets"):
        numerai_target_horizon(column)


def _numerai_like(prices: pd.DataFrame, column: str, horizon: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A Numerai-style file for the demo market: ``column`` = the binned forward return over
    ``horizon`` trading days, lag 2; also each row's real window end (from the bars)."""
    truth = compute_targets(prices, horizon=horizon, lag=NUMERAI_TARGET_LAG)
    truth = truth[truth["target"].notna()]
    numerai = pd.DataFrame({"ticker": truth["ticker"].astype("string"), "date": truth["date"],
                            "target": truth["target"]})
    return numerai, truth[["ticker", "date", "target_end_date"]].rename(columns={"target_end_date": "real_end"})


def test_sixty_day_target_on_noise_does_not_leak(tmp_path):
    market = DemoMarket(tickers=200, years=3.0, signal=0.0, seed=21, end=END)
    prices = market.fetch(market.all_tickers())
    ours = build_dataset_frame(prices, TargetSettings())
    numerai, truth = _numerai_like(prices, "target_chili_60", 60)

    joined = join_numerai_targets(ours, numerai, "target_chili_60")
    # The purge's end date covers the whole 62-trading-day window plus a holiday margin of 16 weekdays.
    spans = np.busday_count(joined["numerai_date"].to_numpy().astype("datetime64[D]"),
                            joined["target_end_date"].to_numpy().astype("datetime64[D]"))
    assert (spans == 78).all()

    path = write_parquet(tmp_path / "joined.parquet", joined)
    settings = TrainingSettings(num_boost_round=60, validation_fraction=0.3, num_threads=1, refit_on_all=False,
                                embargo_days=0)
    result = train_and_register(Store(tmp_path / "store"), path, settings, run_id="t")
    meta = read_json(tmp_path / "store" / "models" / result.model_id / "meta.json")
    validation_start = pd.Timestamp(meta["data_range"]["validation_start"])
    assert meta["data_range"]["target_span_trading_days"] == 78

    # Every training row's real target window (from the bars, per ticker) ends before validation.
    train_end = pd.Timestamp(meta["data_range"]["train_last_target_end"])
    assert train_end < validation_start
    kept = joined[joined["target_end_date"] < validation_start]
    windows = kept.merge(truth, left_on=["ticker", "numerai_date"], right_on=["ticker", "date"], how="left")
    assert windows["real_end"].notna().all()
    assert (windows["real_end"] < validation_start).all()
    # The test can fail: a 20-day purge (the old behaviour) would have kept rows whose real
    # window reaches into validation.
    old_end = np.busday_offset(joined["numerai_date"].to_numpy().astype("datetime64[D]"), 22, roll="forward")
    old_kept = joined[pd.Series(old_end.astype("datetime64[ns]")) < validation_start]
    old_windows = old_kept.merge(truth, left_on=["ticker", "numerai_date"], right_on=["ticker", "date"])
    assert (old_windows["real_end"] >= validation_start).sum() > 1000

    per_date = result.metrics["per_date"]
    corr = pd.Series(per_date["corr"], index=pd.to_datetime(per_date["date"]), dtype="float64").dropna()
    sem = overlap_adjusted_sem(corr, overlap=62)
    assert len(corr) > 100
    assert abs(corr.mean()) < 3 * sem, (corr.mean(), sem)
