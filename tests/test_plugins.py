"""Feature sources (tasks/model/plugins.py): the point-in-time as-of join, bad sources, the dataset hook."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from numerflow.tasks.core.config import FeatureSourceSettings, FeaturesSettings, TargetSettings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, write_parquet
from numerflow.tasks.model.dataset import build_dataset
from numerflow.tasks.model.plugins import (
    Availability,
    LoadedSource,
    PluginOutput,
    asof_join,
    load_sources,
    validate_source,
)

DAYS = pd.bdate_range("2024-03-04", periods=6)  # Mon 4 .. Mon 11 March 2024 (US on EST until 10 March)


def keys(tickers=("AAA US", "BBB US")):
    return pd.DataFrame({"ticker": np.repeat(list(tickers), len(DAYS)), "date": np.tile(DAYS, len(tickers))})


def source_of(rows, tz="UTC", lag=0.0, max_age=None, name="s"):
    frame = pd.DataFrame(rows, columns=["numerai_ticker", "timestamp", "value"])
    settings = FeatureSourceSettings(name=name, path=Path("s.csv"))
    checked = validate_source(frame.astype(str), "s.csv", settings, Availability(tz, lag, max_age), "numerai_ticker")
    return LoadedSource(name, checked, max_age, ["value"])


def joined(source):
    out = asof_join(keys(), source)
    return pd.concat([keys(), out], axis=1).pivot(index="date", columns="ticker", values="feature_s_value")


def test_published_after_the_close_of_d_is_first_used_on_d_plus_1_in_its_own_time_zone():
    # 16:30 New York on Tue 5 March is after that day's 16:00 close: first used Wed 6 March.
    # 21:10 UTC on Tue 5 March is 16:10 New York (EST, UTC-5): also after the close, also the 6th.
    # 20:50 UTC is 15:50 New York: before the close, used on the 5th itself.
    src = source_of([("AAA US", "2024-03-05 16:30", 1.0), ("BBB US", "2024-03-05 21:10:00+00:00", 2.0)],
                    tz="America/New_York")
    wide = joined(src)
    assert np.isnan(wide.loc["2024-03-05", "AAA US"]) and wide.loc["2024-03-06", "AAA US"] == 1.0
    assert np.isnan(wide.loc["2024-03-05", "BBB US"]) and wide.loc["2024-03-06", "BBB US"] == 2.0
    before_close = joined(source_of([("AAA US", "2024-03-05 20:50:00Z", 3.0)]))
    assert before_close.loc["2024-03-05", "AAA US"] == 3.0 and np.isnan(before_close.loc["2024-03-04", "AAA US"])
    # The same wall-clock time read as UTC (no zone given, source zone UTC) is 11:30 New York: usable on the 5th.
    utc = joined(source_of([("AAA US", "2024-03-05 16:30", 1.0)], tz="UTC"))
    assert utc.loc["2024-03-05", "AAA US"] == 1.0


def test_lag_max_age_and_missing_stays_nan():
    # Published Friday 8 March 10:00 New York with a 24 h lag: usable Sat 10:00 → first bar Monday 11 March.
    src = source_of([("AAA US", "2024-03-08 10:00", 5.0)], tz="America/New_York", lag=24)
    wide = joined(src)
    assert np.isnan(wide.loc["2024-03-08", "AAA US"]) and wide.loc["2024-03-11", "AAA US"] == 5.0
    assert wide["BBB US"].isna().all()  # no rows for BBB: NaN, never a filler value
    stale = joined(source_of([("AAA US", "2024-03-04 09:00", 1.0)], tz="America/New_York", max_age=2))
    # Usable Mon 09:00; 2 days later (Wed 09:00) it is stale: used at Tuesday's close, not Wednesday's.
    assert stale.loc["2024-03-05", "AAA US"] == 1.0 and np.isnan(stale.loc["2024-03-06", "AAA US"])


def test_a_value_dated_after_d_never_reaches_d_and_later_values_replace_earlier():
    src = source_of([("AAA US", "2024-03-04", 1.0), ("AAA US", "2024-03-07", 2.0), ("AAA US", "2024-03-20", 9.0)])
    wide = joined(src)
    assert wide["AAA US"].tolist() == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]


@pytest.mark.parametrize(("text", "problem"), [
    ("numerai_ticker,when,value\nAAA US,2024-03-04,1\n", "no column 'timestamp'"),
    ("numerai_ticker,timestamp,value\nAAA US,2024-03-04,1\nAAA US,2024-03-04,2\n", "line 2: duplicate (ticker, timestamp)"),
    ("numerai_ticker,timestamp,value\nAAA US,2024-03-04,1\nAAA US,next tuesday,2\n", "line 3, column 'timestamp'"),
    ("numerai_ticker,timestamp,value\nAAA US,2024-03-04,1\nAAA US,2024-03-05,high\n", "line 3, column 'value': 'high' is not a number"),
    ("numerai_ticker,timestamp,value\nAAA US,2024-03-04,1\nAAPL,2024-03-05,2\n", "line 3, column 'numerai_ticker': 'AAPL'"),
])
def test_a_bad_source_fails_naming_file_line_and_column(tmp_path, text, problem):
    path = tmp_path / "mine.csv"
    path.write_text(text)
    settings = FeaturesSettings(sources=[FeatureSourceSettings(name="mine", path=path)])
    with pytest.raises(BadInputError, match="invalid_feature_source") as info:
        load_sources(settings, pd.DataFrame({"date": DAYS}), tmp_path, "demo")
    assert str(path) in str(info.value) and problem in str(info.value)


def _prices(tickers=("AAA US", "BBB US", "CCC US"), n=60):
    days = pd.bdate_range("2024-01-01", periods=n)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"ticker": np.repeat(list(tickers), n), "date": np.tile(days, len(tickers))})
    frame["adj_close"] = 10 * np.exp(np.cumsum(rng.normal(0, 0.01, len(frame))))
    frame["close"] = frame["open"] = frame["high"] = frame["low"] = frame["adj_close"]
    frame["volume"] = 1000.0
    frame["currency"] = "USD"
    frame["ticker"] = frame["ticker"].astype("string")
    return frame


def my_plugin(context):
    """A test plug-in (module:function): one value per ticker and bar date, known the next day."""
    prices = context.prices
    frame = pd.DataFrame({"ticker": prices["ticker"].astype(str), "timestamp": prices["date"],
                          "momentum": prices["adj_close"] * context.options.get("scale", 1.0)})
    return PluginOutput(frame, Availability("UTC", lag_hours=24, max_age_days=None))


def test_dataset_gets_ranked_source_features_coverage_and_a_snapshot_that_tracks_the_source(tmp_path):
    store = Store(tmp_path / "data")
    write_parquet(store.prices_dir("files") / "part-00000.parquet", _prices())
    table = tmp_path / "mine.csv"
    table.write_text("numerai_ticker,timestamp,score\nAAA US,2024-01-10,1\nBBB US,2024-01-10,2\nCCC US,2024-01-10,\n")
    settings = FeaturesSettings(sources=[FeatureSourceSettings(name="mine", path=table, max_age_days=None),
                                         FeatureSourceSettings(name="plug", plugin=f"{__name__}:my_plugin")],
                                min_live_coverage=0.5)
    plain = build_dataset(store, "files", TargetSettings(horizon=5, lag=1))
    info = build_dataset(store, "files", TargetSettings(horizon=5, lag=1), settings)
    assert info.snapshot != plain.snapshot
    assert {"feature_mine_score", "feature_plug_momentum"} <= set(info.feature_names)
    frame = pd.read_parquet(info.path)
    late = frame[frame["date"] == frame["date"].max()].set_index("ticker")
    assert late.loc["AAA US", "feature_mine_score"] == 0.25 and late.loc["BBB US", "feature_mine_score"] == 0.75
    assert np.isnan(late.loc["CCC US", "feature_mine_score"])  # missing stays NaN
    # Date-only 2024-01-10 = midnight UTC, before that day's close in New York: first used on the 10th.
    assert frame.loc[frame["date"] < "2024-01-10", "feature_mine_score"].isna().all()
    assert frame.loc[frame["date"] == "2024-01-10", "feature_mine_score"].notna().sum() == 2
    import json

    report = json.loads(Path(info.path).with_suffix(".coverage.json").read_text())
    assert report["features"]["feature_mine_score"]["live_coverage"] == pytest.approx(2 / 3, abs=1e-3)
    assert report["excluded"] == []
    per_date = pd.read_parquet(Path(info.path).with_suffix(".coverage.parquet")).set_index("date")
    assert per_date.loc["2024-01-09", "feature_mine_score"] == 0 and per_date.loc["2024-01-10", "feature_mine_score"] == pytest.approx(2 / 3)
    assert (per_date["feature_plug_momentum"].iloc[1:] == 1).all() and per_date["feature_plug_momentum"].iloc[0] == 0
    # A changed source row: a new snapshot, rebuilt.
    table.write_text("numerai_ticker,timestamp,score\nAAA US,2024-01-10,3\nBBB US,2024-01-10,2\nCCC US,2024-01-10,\n")
    assert build_dataset(store, "files", TargetSettings(horizon=5, lag=1), settings).snapshot != info.snapshot
    # Live coverage below the threshold: reported and left out of the model.
    strict = settings.model_copy(update={"min_live_coverage": 0.9})
    low = build_dataset(store, "files", TargetSettings(horizon=5, lag=1), strict)
    assert "feature_mine_score" not in low.feature_names and "feature_plug_momentum" in low.feature_names
    assert json.loads(Path(low.path).with_suffix(".coverage.json").read_text())["excluded"] == ["feature_mine_score"]


def test_source_features_are_ranked_per_date_like_numerai_tools_in_grid_and_sparse_layouts(monkeypatch):
    """The grid join (dense panels) equals merge_asof (sparse panels), max age included, and the ranks
    equal numerai-tools' tie_kept_rank per date."""
    from numerai_tools.scoring import tie_kept_rank

    from numerflow.tasks.model import plugins

    rng = np.random.default_rng(4)
    tickers = [f"T{i:02d} US" for i in range(40)]
    days = pd.bdate_range("2024-01-01", periods=30)
    dataset = pd.DataFrame({"ticker": np.tile(tickers, len(days)), "date": np.repeat(days, len(tickers))})
    dataset = dataset[rng.random(len(dataset)) < 0.8].reset_index(drop=True)  # holidays, gaps
    sample = dataset.sample(frac=0.3, random_state=1)  # sparse updates, at any hour: before and after the close
    rows = pd.DataFrame({"numerai_ticker": sample["ticker"].to_numpy(),
                         "timestamp": sample["date"].to_numpy() + pd.to_timedelta(rng.integers(0, 40 * 60, len(sample)), "min"),
                         "value": np.round(rng.normal(size=len(sample)), 1)})  # ties
    rows.loc[rng.random(len(rows)) < 0.1, "value"] = np.nan
    settings = FeatureSourceSettings(name="s", path=Path("s.parquet"))
    src = LoadedSource("s", validate_source(rows, "s.parquet", settings, Availability(max_age_days=3), "numerai_ticker"),
                       3, ["value"])
    # Weekly values held for up to 9 days (the grid ranks each distinct held row once, HeldRowRanks).
    weekly = rows[pd.to_datetime(rows["timestamp"]).dt.dayofweek == 4].copy()
    weekly["other"] = np.round(rng.normal(size=len(weekly)), 1)
    held = LoadedSource("w", validate_source(weekly, "w.parquet", settings.model_copy(update={"name": "w"}),
                                             Availability(max_age_days=9), "numerai_ticker"), 9, ["value", "other"])
    raw = pd.concat([asof_join(dataset, src), asof_join(dataset, held)], axis=1)
    assert 0.3 < raw["feature_s_value"].notna().mean() < 0.95  # values held for up to 3 days, then stale
    expected = pd.concat([tie_kept_rank(raw[dataset["date"] == d]) for d in days])
    for dense in (True, False):
        if not dense:  # the sorted rank_by_date path of sparse panels
            monkeypatch.setattr(plugins, "_MAX_GRID_CELLS_PER_ROW", 0)
            monkeypatch.setattr(plugins, "_GRID_ALWAYS_CELLS", 0)
        for threads in (1, 2):
            joined = plugins.add_source_features(dataset, [src, held], threads=threads)
            for name in raw.columns:
                out = joined[name]
                assert out.dtype == np.float32 and out.isna().equals(raw[name].isna()), name
                np.testing.assert_allclose(out.to_numpy(float), expected.loc[out.index, name].to_numpy(float),
                                           rtol=0, atol=1e-6)
