"""The demo market's factors make ALPHA and CORR differ: a planted signal that IS a neutralizer
factor scores CORR but no ALPHA; the planted drift (orthogonal to the factors), seen through
momentum, keeps its ALPHA."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from numerflow.tasks.core.config import TargetSettings
from numerflow.tasks.model.alpha import alpha_by_date
from numerflow.tasks.model.dataset import build_dataset_frame
from numerflow.tasks.model.scoring import numerai_corr_by_date, overlap_adjusted_sem
from numerflow.tasks.prices.sources.demo import DemoMarket

END = dt.date(2025, 6, 27)


@pytest.fixture(scope="module")
def scored():
    market = DemoMarket(tickers=400, years=3.0, signal=1.0, seed=5, end=END)
    dataset = build_dataset_frame(market.fetch(market.all_tickers()), TargetSettings())
    fridays = dataset["date"][dataset["date"].dt.dayofweek == 4].drop_duplicates().sort_values()
    weeks = fridays.iloc[60:-6]  # features warmed up, targets known
    rows = dataset[dataset["date"].isin(weeks) & dataset["target"].notna()]
    neutral, weights = market.neutralizers(weeks)
    neutral = neutral.rename(columns={"numerai_ticker": "ticker"}).assign(date=lambda f: pd.to_datetime(f["date"]))
    weights = weights.rename(columns={"numerai_ticker": "ticker"}).assign(date=lambda f: pd.to_datetime(f["date"]))
    merged = (rows.merge(market.style_exposures().rename(columns={"numerai_ticker": "ticker"}), on="ticker")
              .merge(neutral, on=["ticker", "date"]).merge(weights, on=["ticker", "date"]))
    return market, weeks, merged


def _scores(frame: pd.DataFrame, prediction: str) -> tuple[pd.Series, pd.Series]:
    columns = [c for c in frame.columns if c.startswith("neutralizer_")]
    keep = frame[prediction].notna()
    f = frame[keep]
    corr = numerai_corr_by_date(f[prediction], f["target"], f["date"])
    alpha = alpha_by_date(f[prediction], f["target"], f[columns].to_numpy(), f["sample_weight"], f["date"])
    return corr, alpha


def _t(series: pd.Series) -> float:
    series = series.dropna()
    return float(series.mean() / overlap_adjusted_sem(series, overlap=5))  # 22-day targets: ~5 weeks overlap


def test_neutralizers_are_orthonormal_and_span_the_factors(scored):
    market, weeks, _ = scored
    neutral, weights = market.neutralizers(weeks.iloc[:1])
    assert (weights["sample_weight"] == 1).all() and neutral["neutralizer_0"].dtype == np.float32
    columns = [c for c in neutral.columns if c.startswith("neutralizer_")]
    n = neutral[columns].to_numpy(np.float64)
    rank = int(np.round(np.trace(n.T @ n)))
    assert rank == 1 + 1 + 2 + 10 + 11 - 2  # constant = sum of sector dummies = sum of country dummies
    np.testing.assert_allclose((n.T @ n)[:rank, :rank], np.eye(rank), atol=1e-5)
    style = neutral[["numerai_ticker"]].merge(market.style_exposures(), on="numerai_ticker")["style_0"].to_numpy()
    residual = style - n @ (n.T @ style)
    assert np.abs(residual).max() < 1e-4 * np.abs(style).max()


def test_a_factor_signal_has_corr_but_no_alpha(scored):
    corr, alpha = _scores(scored[2], "style_0")
    assert corr.mean() > 0.02 and _t(corr) > 3, (corr.mean(), _t(corr))
    assert abs(_t(alpha)) < 3, _t(alpha)


def test_the_orthogonal_planted_signal_keeps_its_alpha(scored):
    corr, alpha = _scores(scored[2], "feature_ret_60d")
    assert alpha.mean() > 0 and _t(alpha) > 4, _t(alpha)
    assert corr.mean() > 0
