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


def test_neutralizer_parts_equal_one_svd_per_date_and_skip_days_off_the_grid(tmp_path):
    """One SVD per stretch of dates with the same live tickers gives each date's own basis (a
    reference computed date by date), in parts of at most ``max_rows`` rows; the files written from
    the parts hold the same rows, one row group per date."""
    import pyarrow.parquet as pq

    from numerflow.tasks.numerai.neutralizer import write_neutralizer_parts
    from numerflow.tasks.prices.sources.demo import COUNTRY_CODES, N_SECTORS

    market = DemoMarket(tickers=150, years=4.0, signal=0.5, seed=3, end=END)
    dates = [*market.dates[-300:], pd.Timestamp("2025-06-28"), market.dates[3]]  # a Saturday: not a market day
    m = market._market
    design = np.column_stack([np.ones(len(m.tickers)), m.beta, m.styles, np.eye(N_SECTORS)[m.sector],
                              np.eye(len(COUNTRY_CODES))[m.country]])
    expected = []
    for stamp in sorted({pd.Timestamp(d) for d in dates} - {pd.Timestamp("2025-06-28")}):
        day = int(m.dates.searchsorted(stamp))
        alive = np.flatnonzero((m.first_day <= day) & (m.last_day >= day))
        u, singular, _ = np.linalg.svd(design[alive], full_matrices=False)
        basis = np.zeros((len(alive), design.shape[1]), dtype=np.float32)
        rank = int((singular > 1e-9 * singular[0]).sum())
        basis[:, :rank] = u[:, :rank]
        expected.append(pd.DataFrame({"numerai_ticker": pd.array(m.tickers[alive], dtype=pd.StringDtype()),
                                      "date": stamp.strftime("%Y-%m-%d"),
                                      **{f"neutralizer_{j}": basis[:, j] for j in range(design.shape[1])}}))
    reference = pd.concat(expected, ignore_index=True)
    assert m.last_day.min() < len(m.dates) - 1 and m.first_day.max() > len(m.dates) - 1000  # tickers come and go
    parts = list(market.neutralizer_parts(dates, max_rows=2000))
    assert all(len(n) <= 2000 for n, _ in parts) and len(parts) > len(dates) * 150 // 2000
    pd.testing.assert_frame_equal(pd.concat([n for n, _ in parts], ignore_index=True), reference)
    neutral, weights = market.neutralizers(dates)
    pd.testing.assert_frame_equal(neutral, reference)
    assert (weights["sample_weight"] == 1).all() and len(weights) == len(reference)

    files = write_neutralizer_parts(tmp_path, market.neutralizer_parts(dates, max_rows=2000), row_group_rows=500)
    stored = pd.read_parquet(files.neutralizer_path)
    pd.testing.assert_frame_equal(stored.astype(reference.dtypes.to_dict()), reference, check_dtype=False)
    file = pq.ParquetFile(files.neutralizer_path)
    groups = [file.read_row_group(i, columns=["date"]).column("date").to_pandas() for i in range(file.num_row_groups)]
    assert len(groups) > len(parts) and all(len(g) <= 500 for g in groups)
    assert sum(g.nunique() for g in groups) == reference["date"].nunique()  # whole dates: none in two row groups
    with pytest.raises(Exception, match="none of the dates"):
        list(market.neutralizer_parts([pd.Timestamp("1990-01-02")]))
