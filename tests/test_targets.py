import numpy as np
import pandas as pd
import pytest

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.model.features import compute_features
from numerflow.tasks.model.targets import bin_ranks, compute_targets, target_bin_edges
from tests.test_features import make_panel, random_panel, rows_of


def test_target_alignment_lag_horizon_and_end_date_over_own_bars():
    calendar = pd.bdate_range("2021-03-01", periods=10)
    a_days = calendar.delete([2, 6])  # A misses two of B's trading days
    a_closes = [10.0, 11, 13, 16, 20, 25, 31, 38]
    panel = make_panel({"A US": a_closes, "B GB": list(range(100, 110))}, dates={"A US": a_days, "B GB": calendar})
    targets = compute_targets(panel, horizon=3, lag=1)
    a = rows_of(targets, "A US")
    assert list(a["date"]) == list(a_days)
    # Bar i: return from A's bar i+1 to A's bar i+4.
    for i in range(4):
        assert a["target_raw"][i] == pytest.approx(a_closes[i + 4] / a_closes[i + 1] - 1, rel=1e-12)
        assert a["target_end_date"][i] == a_days[i + 4]
    # The last lag + horizon = 4 bars have no future yet: NaN, NaT, NaN (not B's returns).
    assert a["target_raw"][4:].isna().all()
    assert a["target_end_date"][4:].isna().all()
    assert a["target"][4:].isna().all()
    b = rows_of(targets, "B GB")
    assert b["target_raw"][5] == pytest.approx(109 / 106 - 1)
    assert b["target_raw"][6:].isna().all()


def test_default_20d2l_alignment():
    closes = list(np.linspace(10, 40, 30))
    t = rows_of(compute_targets(make_panel({"A US": closes})), "A US")
    assert t["target_raw"][0] == pytest.approx(closes[22] / closes[2] - 1)
    assert t["target_raw"][7] == pytest.approx(closes[29] / closes[9] - 1)
    assert t["target_raw"][8:].isna().all()


def test_five_bins_have_numerai_values_and_proportions():
    rng = np.random.default_rng(0)
    n = 1000
    closes = {f"T{i:04d} US": [10.0, 10.0, 10.0, 10.0 * (1 + r)] for i, r in enumerate(rng.normal(0, 0.1, n))}
    targets = compute_targets(make_panel(closes), horizon=1, lag=2)
    first = targets[targets["date"] == targets["date"].min()]
    assert first["target"].dtype == np.float32
    counts = first["target"].value_counts().sort_index()
    assert list(counts.index) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert list(counts) == [50, 200, 500, 200, 50]
    # Bins are monotone in the raw return.
    ordered = first.sort_values("target_raw")["target"].to_numpy()
    assert (np.diff(ordered) >= 0).all()
    assert targets.loc[targets["date"] > targets["date"].min(), "target"].isna().all()


def test_other_bin_counts_are_equal_frequency_and_ties_share_a_bin():
    ranks = (np.arange(300) + 0.5) / 300
    binned = bin_ranks(ranks, 3)
    assert sorted(set(binned.tolist())) == [0.0, 0.5, 1.0]
    assert np.bincount((binned * 2).astype(int)).tolist() == [100, 100, 100]
    assert np.isnan(bin_ranks(np.array([np.nan]), 5)).all()
    np.testing.assert_allclose(target_bin_edges(5), [0.05, 0.25, 0.75, 0.95])
    tied = make_panel({"A US": [1.0, 2.0], "B US": [1.0, 2.0], "C US": [1.0, 1.0]})
    t = compute_targets(tied, horizon=1, lag=0)
    first = t[t["date"] == t["date"].min()].set_index("ticker")
    assert first.loc["A US", "target"] == first.loc["B US", "target"]


def test_a_tickers_targets_ignore_other_tickers():
    panel = random_panel(seed=3)
    other = panel["ticker"] != "T04 US"
    changed = panel.copy()
    changed.loc[other, "adj_close"] *= np.random.default_rng(1).uniform(0.5, 2, int(other.sum()))
    changed = changed[~(other & (changed.index % 5 == 0))]
    columns = ["ticker", "date", "target_raw", "target_end_date"]
    pd.testing.assert_frame_equal(
        rows_of(compute_targets(panel), "T04 US")[columns], rows_of(compute_targets(changed), "T04 US")[columns]
    )


def test_targets_rows_match_features_rows_and_nan_rows_are_absent():
    panel = random_panel(seed=5)
    targets = compute_targets(panel)
    features = compute_features(panel)
    pd.testing.assert_frame_equal(targets[["ticker", "date"]], features[["ticker", "date"]])
    assert len(targets) == int(panel["adj_close"].notna().sum())
    assert targets["target_raw"].dtype == np.float64
    # Each ticker's last 22 bars have no target; earlier ones all do.
    per_ticker = targets.groupby("ticker")["target_raw"]
    assert (per_ticker.apply(lambda s: s.iloc[-22:].isna().all())).all()
    assert (per_ticker.apply(lambda s: s.iloc[:-22].notna().all())).all()
    assert (targets["target_end_date"].dropna() > targets.loc[targets["target_end_date"].notna(), "date"]).all()


def test_invalid_options_raise_bad_input_error():
    panel = make_panel({"A US": [1.0, 2.0, 3.0]})
    with pytest.raises(BadInputError, match="horizon"):
        compute_targets(panel, horizon=0)
    with pytest.raises(BadInputError, match="bins"):
        compute_targets(panel, bins=1)


def test_dataset_shares_one_layout_with_identical_results():
    """tasks.model.dataset computes the bar layout once for features and targets: same output as alone."""
    import datetime as dt

    from numerflow.tasks.core.config import TargetSettings
    from numerflow.tasks.model.dataset import build_dataset_frame
    from numerflow.tasks.prices.sources.demo import DemoMarket

    market = DemoMarket(tickers=60, years=2, signal=0.5, seed=3, end=dt.date(2025, 6, 27))
    prices = market.fetch(market.all_tickers())
    dataset = build_dataset_frame(prices, TargetSettings())
    alone_features = compute_features(prices)
    alone_targets = compute_targets(prices)
    merged = alone_features.merge(alone_targets, on=["ticker", "date"])
    pd.testing.assert_frame_equal(
        dataset[merged.columns.tolist()].reset_index(drop=True),
        merged.sort_values(["date", "ticker"], kind="stable").reset_index(drop=True),
    )
