import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numerai_tools.scoring import tie_kept_rank

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.model.features import FEATURE_NAMES, compute_features, compute_raw_features, rank_by_date

DOCS = Path(__file__).resolve().parents[1] / "docs" / "features.md"


def make_panel(closes: dict[str, list[float]], dates: dict[str, list] | None = None, volume: float = 1000.0):
    """Long price panel from per-ticker closes (and optional per-ticker dates)."""
    frames = []
    for ticker, values in closes.items():
        days = dates[ticker] if dates and ticker in dates else pd.bdate_range("2021-01-04", periods=len(values))
        values = np.asarray(values, dtype=float)
        frames.append(
            pd.DataFrame(
                {
                    "ticker": ticker,
                    "date": pd.to_datetime(list(days)),
                    "open": values,
                    "high": values,
                    "low": values,
                    "close": values,
                    "adj_close": values,
                    "volume": volume,
                    "currency": "USD",
                }
            )
        )
    panel = pd.concat(frames, ignore_index=True)
    panel["ticker"] = panel["ticker"].astype("string")
    return panel


def random_panel(n_tickers=25, n_days=320, seed=0):
    """Random walks with late listings, holidays, NaN bars and unsorted rows."""
    rng = np.random.default_rng(seed)
    calendar = pd.bdate_range("2020-01-01", periods=n_days)
    frames = []
    for i in range(n_tickers):
        start = 0 if i % 3 else int(rng.integers(0, 100))
        keep = rng.random(n_days - start) > 0.03  # own holidays
        days = calendar[start:][keep]
        prices = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, len(days))))
        frame = pd.DataFrame({"ticker": f"T{i:02d} US", "date": days, "adj_close": prices})
        frame["close"] = frame["adj_close"] * 1.5
        frame["open"] = frame["high"] = frame["low"] = frame["close"]
        frame["volume"] = rng.integers(0, 10_000, len(days)).astype(float)
        frame["currency"] = "USD"
        frames.append(frame)
    panel = pd.concat(frames, ignore_index=True)
    panel.loc[rng.random(len(panel)) < 0.01, "adj_close"] = np.nan
    panel["ticker"] = panel["ticker"].astype("string")
    return panel.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def rows_of(frame, ticker):
    return frame[frame["ticker"] == ticker].reset_index(drop=True)


# --- names and docs -----------------------------------------------------------------------


def test_feature_names_are_unique_prefixed_and_documented():
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) >= 15
    assert all(name.startswith("feature_") for name in FEATURE_NAMES)
    text = DOCS.read_text(encoding="utf-8")
    undocumented = [name for name in FEATURE_NAMES if f"`{name}`" not in text]
    assert undocumented == []


# --- hand-computed values -------------------------------------------------------------------


def test_returns_are_log_ratios_over_own_bars_and_nan_without_history():
    closes = [100, 110, 99, 121, 120, 130, 125]
    raw = rows_of(compute_raw_features(make_panel({"A US": closes})), "A US")
    np.testing.assert_allclose(raw["feature_ret_1d"][1:], np.log(np.array(closes[1:]) / closes[:-1]), rtol=1e-6)
    assert np.isnan(raw["feature_ret_1d"][0])
    assert np.isnan(raw["feature_ret_5d"][:5]).all()
    assert raw["feature_ret_5d"][5] == pytest.approx(math.log(130 / 100), rel=1e-6)
    assert raw["feature_ret_5d"][6] == pytest.approx(math.log(125 / 110), rel=1e-6)
    assert raw["feature_ret_20d"].isna().all()


def test_windows_count_own_bars_across_other_tickers_holidays_and_nan_rows():
    calendar = pd.bdate_range("2021-01-04", periods=12)
    a_days = calendar.delete([3, 7])  # A's exchange is closed on two of B's trading days
    a_closes = [10.0, 11, 12, 13, 14, 15, 16, 17, 18, 19]
    panel = make_panel(
        {"A US": a_closes, "B JP": list(range(50, 62))},
        dates={"A US": a_days, "B JP": calendar},
    )
    # A NaN adj_close row on a day A did not trade must be an absent bar, not a gap in the window.
    ghost = panel.iloc[[0]].assign(date=calendar[7], adj_close=np.nan)
    panel = pd.concat([panel, ghost], ignore_index=True)
    raw = compute_raw_features(panel)
    a = rows_of(raw, "A US")
    assert list(a["date"]) == list(a_days)  # the NaN row produced no output row
    # The 5-bar return of A's 6th bar spans A's bars 1..6 (7 calendar business days).
    assert a["feature_ret_5d"][5] == pytest.approx(math.log(15 / 10), rel=1e-6)
    assert a["feature_ret_5d"][9] == pytest.approx(math.log(19 / 14), rel=1e-6)
    b = rows_of(raw, "B JP")
    assert b["feature_ret_5d"][5] == pytest.approx(math.log(55 / 50), rel=1e-6)


def test_volatility_is_sample_std_of_last_20_daily_log_returns():
    rng = np.random.default_rng(3)
    closes = list(100 * np.exp(np.cumsum(rng.normal(0, 0.02, 30))))
    raw = rows_of(compute_raw_features(make_panel({"A US": closes}), dtype="float64"), "A US")
    log_returns = np.diff(np.log(closes))
    assert np.isnan(raw["feature_vol_20d"][19])  # 19 returns only
    for bar in (20, 29):
        expected = np.std(log_returns[bar - 20 : bar], ddof=1)
        assert raw["feature_vol_20d"][bar] == pytest.approx(expected, rel=1e-9)
    assert raw["feature_vol_60d"].isna().all()


def test_rsi_is_share_of_gains_in_last_14_changes():
    # 14 changes: +2 seven times, -1 seven times -> gains 14, losses 7 -> 14 / 21.
    closes = [100.0]
    for step in [2, -1] * 7 + [5]:
        closes.append(closes[-1] + step)
    raw = rows_of(compute_raw_features(make_panel({"A US": closes}), dtype="float64"), "A US")
    assert np.isnan(raw["feature_rsi_14"][13])
    assert raw["feature_rsi_14"][14] == pytest.approx(14 / 21)
    # Next bar drops the first +2 and adds +5: gains 17, losses 7.
    assert raw["feature_rsi_14"][15] == pytest.approx(17 / 24)
    flat = rows_of(compute_raw_features(make_panel({"F US": [7.0] * 16})), "F US")
    assert flat["feature_rsi_14"][15] == 0.5


def test_macd_matches_recursive_ema_divided_by_price():
    rng = np.random.default_rng(5)
    closes = 20 * np.exp(np.cumsum(rng.normal(0, 0.03, 60)))
    raw = rows_of(compute_raw_features(make_panel({"A US": list(closes)}), dtype="float64"), "A US")

    def ema(values, span):
        alpha, out = 2 / (span + 1), [values[0]]
        for value in values[1:]:
            out.append(alpha * value + (1 - alpha) * out[-1])
        return np.array(out)

    line = ema(closes, 12) - ema(closes, 26)
    hist = line - ema(line, 9)
    assert np.isnan(raw["feature_macd_12_26"][24]) and np.isnan(raw["feature_macd_hist_12_26_9"][32])
    np.testing.assert_allclose(raw["feature_macd_12_26"][25:], (line / closes)[25:], rtol=1e-10)
    np.testing.assert_allclose(raw["feature_macd_hist_12_26_9"][33:], (hist / closes)[33:], rtol=1e-9)


def test_turnover_volume_ratio_and_distance_from_high_low():
    rng = np.random.default_rng(11)
    n = 260
    closes = 30 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    panel = make_panel({"A US": list(closes)})
    volume = rng.integers(100, 5000, n).astype(float)
    panel["volume"] = volume
    panel["close"] = closes * 2  # turnover uses the raw close
    raw = rows_of(compute_raw_features(panel, dtype="float64"), "A US")
    last = n - 1
    assert raw["feature_log_turnover_20d"][last] == pytest.approx(
        np.log1p(np.mean(closes[-20:] * 2 * volume[-20:])), rel=1e-12
    )
    assert raw["feature_volume_ratio_5_60"][last] == pytest.approx(
        np.log1p(volume[-5:].mean()) - np.log1p(volume[-60:].mean()), rel=1e-9
    )
    assert np.isnan(raw["feature_dist_high_250d"][248])
    window = closes[last - 249 :]
    assert raw["feature_dist_high_250d"][last] == pytest.approx(np.log(closes[-1] / window.max()), abs=1e-12)
    assert raw["feature_dist_low_250d"][last] == pytest.approx(np.log(closes[-1] / window.min()), abs=1e-12)


# --- leakage ------------------------------------------------------------------------------


def test_features_up_to_d_ignore_everything_after_d():
    panel = random_panel(seed=1)
    cutoff = panel["date"].sort_values().iloc[len(panel) // 2]
    altered = panel.copy()
    later = altered["date"] > cutoff
    for column in ["open", "high", "low", "close", "adj_close"]:
        altered.loc[later, column] *= 10
    altered.loc[later, "volume"] = 1.0
    newcomer = random_panel(n_tickers=3, seed=9).assign(ticker=lambda f: "NEW" + f["ticker"])
    newcomer = newcomer[newcomer["date"] > cutoff]
    altered = pd.concat([altered, newcomer], ignore_index=True)
    for compute in (compute_raw_features, compute_features):
        before = compute(panel)
        after = compute(altered)
        before = before[before["date"] <= cutoff].reset_index(drop=True)
        after = after[after["date"] <= cutoff].reset_index(drop=True)
        pd.testing.assert_frame_equal(before, after, check_exact=True)
    # And the alteration did change something after d, so the comparison has teeth.
    assert not compute_raw_features(panel)["feature_ret_1d"].equals(compute_raw_features(altered)["feature_ret_1d"])


def test_a_tickers_raw_features_ignore_other_tickers():
    panel = random_panel(seed=2)
    other = panel["ticker"] != "T01 US"
    changed = panel.copy()
    changed.loc[other, "adj_close"] *= np.random.default_rng(0).uniform(0.5, 2.0, int(other.sum()))
    changed.loc[other, "volume"] = 3.0
    changed = changed[~(other & (changed.index % 7 == 0))]  # other tickers lose bars too
    pd.testing.assert_frame_equal(
        rows_of(compute_raw_features(panel), "T01 US"), rows_of(compute_raw_features(changed), "T01 US")
    )


def test_row_order_of_the_input_does_not_matter_and_input_is_not_mutated():
    panel = random_panel(seed=4)
    snapshot = panel.copy()
    shuffled = panel.sample(frac=1.0, random_state=99)
    pd.testing.assert_frame_equal(compute_features(panel), compute_features(shuffled))
    pd.testing.assert_frame_equal(panel, snapshot)


# --- ranks --------------------------------------------------------------------------------


def test_ranks_equal_numerai_tools_tie_kept_rank_per_date():
    panel = random_panel(seed=6)
    # Two tickers with identical prices make tied feature values.
    twin = panel[panel["ticker"] == "T02 US"].assign(ticker="TWIN US")
    panel = pd.concat([panel, twin], ignore_index=True)
    raw = compute_raw_features(panel, dtype="float64")
    ranked = compute_features(panel)
    pd.testing.assert_frame_equal(raw[["ticker", "date"]], ranked[["ticker", "date"]])
    compared = 0
    for _, block in raw.groupby("date"):
        expected = tie_kept_rank(block[FEATURE_NAMES])
        got = ranked.loc[block.index, FEATURE_NAMES]
        np.testing.assert_allclose(got.to_numpy(float), expected.to_numpy(float), atol=1e-7, equal_nan=True)
        compared += 1
    assert compared > 200
    last = ranked[ranked["date"] == ranked["date"].max()].set_index("ticker")
    assert last.loc["T02 US", "feature_ret_20d"] == last.loc["TWIN US", "feature_ret_20d"]


def test_ranked_output_is_sorted_float32_strictly_inside_unit_interval_and_keeps_nan():
    panel = random_panel(seed=8)
    ranked = compute_features(panel)
    raw = compute_raw_features(panel)
    assert list(ranked.columns) == ["ticker", "date", *FEATURE_NAMES]
    assert (ranked[FEATURE_NAMES].dtypes == np.float32).all()
    assert (raw[FEATURE_NAMES].dtypes == np.float32).all()
    keys = ranked[["date", "ticker"]]
    assert keys.equals(keys.sort_values(["date", "ticker"]).reset_index(drop=True))
    values = ranked[FEATURE_NAMES].to_numpy()
    finite = values[~np.isnan(values)]
    assert (finite > 0).all() and (finite < 1).all()
    np.testing.assert_array_equal(np.isnan(values), np.isnan(raw[FEATURE_NAMES].to_numpy()))


def test_rank_by_date_slices_never_split_a_date():
    rng = np.random.default_rng(0)
    dates = np.repeat(np.arange(40), rng.integers(1000, 3000, 40))  # > one 50k-row slice
    values = rng.normal(size=len(dates))
    ranked = rank_by_date(values, dates)
    frame = pd.DataFrame({"d": dates, "v": values})
    expected = frame.groupby("d")["v"].rank(method="average").to_numpy() - 0.5
    expected /= frame.groupby("d")["v"].transform("count").to_numpy()
    np.testing.assert_allclose(ranked, expected, atol=1e-12)
    with pytest.raises(ValueError):
        rank_by_date(values, dates[::-1])


# --- bad input ----------------------------------------------------------------------------


def test_bad_input_raises_bad_input_error_naming_the_problem():
    panel = make_panel({"A US": [1.0, 2.0, 3.0]})
    with pytest.raises(BadInputError, match="duplicate"):
        compute_features(pd.concat([panel, panel.iloc[[0]]], ignore_index=True))
    with pytest.raises(BadInputError, match="adj_close <= 0"):
        compute_features(panel.assign(adj_close=[1.0, -2.0, 3.0]))
    with pytest.raises(BadInputError, match="lacks columns"):
        compute_raw_features(panel.drop(columns=["volume"]))
    with pytest.raises(BadInputError, match="dates"):
        compute_raw_features(panel.assign(date=["x", "y", "z"]))


# --- execution paths: threads, grid vs sorted layout, per-ticker windows ------------------------


def test_threads_give_bit_identical_output_to_serial():
    panel = random_panel(seed=12)
    for compute in (compute_features, compute_raw_features):
        pd.testing.assert_frame_equal(compute(panel, threads=1), compute(panel, threads=3), check_exact=True)


def test_sorted_layout_fallback_equals_grid_layout(monkeypatch):
    from numerflow.tasks.model import features
    from numerflow.tasks.model.targets import compute_targets

    panel = random_panel(seed=13)
    grid = (features.compute_features(panel), features.compute_raw_features(panel, dtype="float64"),
            compute_targets(panel))
    assert features.bar_layout(panel).date_cell is not None
    # No grid is small enough: every panel takes the sorting path.
    monkeypatch.setattr(features, "_MAX_GRID_CELLS_PER_ROW", 0)
    monkeypatch.setattr(features, "_GRID_ALWAYS_CELLS", 0)
    assert features.bar_layout(panel).date_cell is None
    sorted_ = (features.compute_features(panel), features.compute_raw_features(panel, dtype="float64"),
               compute_targets(panel))
    for a, b in zip(grid, sorted_, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    with pytest.raises(BadInputError, match="2 duplicate"):
        features.compute_features(pd.concat([panel, panel.iloc[[5]]], ignore_index=True))


@pytest.mark.parametrize("force_sorted", [False, True])
def test_duplicates_are_found_even_when_one_copy_is_a_nan_bar(monkeypatch, force_sorted):
    from numerflow.tasks.model import features

    if force_sorted:
        monkeypatch.setattr(features, "_MAX_GRID_CELLS_PER_ROW", 0)
        monkeypatch.setattr(features, "_GRID_ALWAYS_CELLS", 0)
    panel = make_panel({"A US": [1.0, 2.0, 3.0], "B US": [4.0, 5.0, 6.0]})
    nan_copy = panel.iloc[[4]].assign(adj_close=np.nan)
    with pytest.raises(BadInputError, match=r"2 duplicate \(ticker, date\) rows.*B US 2021-01-05") as caught:
        compute_features(pd.concat([panel, nan_copy], ignore_index=True))
    assert caught.value.tag == "duplicate_prices"


def test_rolling_windows_restart_at_each_ticker_no_residue_from_the_previous_one():
    # "A" sorts before "B": in the flattened ticker x bar matrix A's row comes right before B's.
    # A's huge turnover must leave no floating-point residue in B's running sums.
    rng = np.random.default_rng(21)
    n = 300
    b_closes = list(3 * np.exp(np.cumsum(rng.normal(0, 0.02, n))))
    alone = make_panel({"B US": b_closes})
    alone["volume"] = rng.integers(0, 50, n).astype(float)
    huge = make_panel({"A US": list(1e6 * np.exp(np.cumsum(rng.normal(0, 0.05, n))))})
    huge["volume"] = rng.uniform(1e8, 1e9, n)
    together = pd.concat([huge, alone], ignore_index=True)
    pd.testing.assert_frame_equal(
        rows_of(compute_raw_features(alone, dtype="float64"), "B US"),
        rows_of(compute_raw_features(together, dtype="float64"), "B US"),
        check_exact=True,
    )


def test_dates_with_only_nan_bars_get_no_rows_and_ranks_stay_per_date():
    panel = random_panel(n_tickers=8, n_days=160, seed=14)
    dead_day = panel["date"].sort_values().unique()[30]
    panel.loc[panel["date"] == dead_day, "adj_close"] = np.nan
    raw = compute_raw_features(panel, dtype="float64")
    ranked = compute_features(panel)
    assert dead_day not in set(ranked["date"])
    for _, block in raw.groupby("date"):
        expected = tie_kept_rank(block[FEATURE_NAMES]).to_numpy(float)
        np.testing.assert_allclose(ranked.loc[block.index, FEATURE_NAMES].to_numpy(float), expected,
                                   atol=1e-7, equal_nan=True)


def test_blocks_of_tickers_give_bit_identical_output(monkeypatch):
    from numerflow.tasks.model import features

    panel = random_panel(seed=15)
    whole = (features.compute_features(panel), features.compute_raw_features(panel, dtype="float64"))
    monkeypatch.setattr(features, "_BLOCK_CELLS", 1)  # one ticker per block
    assert len(features._ticker_blocks(25, 320)) == 25
    blocked = (features.compute_features(panel), features.compute_raw_features(panel, dtype="float64"))
    for a, b in zip(whole, blocked, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)


# --- memory-saving paths: categorical tickers, inputs freed per stage ----------------------------


@pytest.mark.parametrize("force_sorted", [False, True])
def test_categorical_tickers_read_from_the_store_give_the_same_output(tmp_path, monkeypatch, force_sorted):
    from numerflow.tasks.core.store import read_parquet, write_parquet
    from numerflow.tasks.model import features
    from numerflow.tasks.model.targets import compute_targets

    if force_sorted:
        monkeypatch.setattr(features, "_MAX_GRID_CELLS_PER_ROW", 0)
        monkeypatch.setattr(features, "_GRID_ALWAYS_CELLS", 0)
    panel = random_panel(seed=16).sort_values("ticker", ascending=False, ignore_index=True)
    # Two files: each has its own dictionary, in reverse name order (category order != name order).
    write_parquet(tmp_path / "prices" / "part-1.parquet", panel.iloc[: len(panel) // 2])
    write_parquet(tmp_path / "prices" / "part-2.parquet", panel.iloc[len(panel) // 2 :])
    as_strings = read_parquet(tmp_path / "prices")
    as_categories = read_parquet(tmp_path / "prices", categorical=["ticker"])
    assert as_strings["ticker"].dtype == "string"
    assert isinstance(as_categories["ticker"].dtype, pd.CategoricalDtype)
    # Unused categories, one sorting before every real ticker, get no code and no rows.
    as_categories["ticker"] = as_categories["ticker"].cat.add_categories(["AAA unused", "ZZZ unused"])
    for compute in (features.compute_features, lambda p: features.compute_raw_features(p, dtype="float64"),
                    compute_targets):
        expected, got = compute(as_strings), compute(as_categories)
        assert isinstance(got["ticker"].dtype, pd.CategoricalDtype)
        pd.testing.assert_frame_equal(got.astype({"ticker": "string"}), expected, check_exact=True)


def test_each_feature_reads_only_the_inputs_it_declares():
    # Inputs are freed once their last declared reader is done: an undeclared read would fail
    # (or, racing another thread, read a freed input) only in some runs.
    from numerflow.tasks.model import features

    panel = random_panel(seed=17)
    layout = features.bar_layout(panel)
    every_input = features._wide_inputs(panel, layout)
    assert set(features._COMPUTE_ORDER) == set(features._FEATURE_INPUTS) == set(FEATURE_NAMES)
    assert len(features._COMPUTE_ORDER) == len(FEATURE_NAMES)
    whole = slice(0, layout.n_tickers)
    for name in FEATURE_NAMES:
        declared = {key: every_input[key] for key in features._FEATURE_INPUTS[name]}
        np.testing.assert_array_equal(
            features._feature_recipes(declared, layout.n_bars)[name](whole),
            features._feature_recipes(every_input, layout.n_bars)[name](whole),
        )


def test_plugin_features_up_to_d_ignore_source_rows_after_d():
    """The look-ahead guard over plug-in features: altering or adding source rows dated after d
    (and prices after d) leaves every feature, built-in or plug-in, unchanged at dates <= d."""
    from numerflow.tasks.core.config import FeatureSourceSettings, FeaturesSettings, TargetSettings
    from numerflow.tasks.model.dataset import build_dataset_frame
    from numerflow.tasks.model.plugins import Availability, LoadedSource, validate_source

    panel = random_panel(seed=1)
    cutoff = panel["date"].sort_values().iloc[len(panel) // 2]
    rng = np.random.default_rng(3)
    tickers = panel["ticker"].unique()
    stamps = pd.date_range(panel["date"].min(), panel["date"].max(), freq="37h")
    source = pd.DataFrame({"numerai_ticker": np.repeat(np.asarray(tickers, dtype=object), len(stamps)),
                           "timestamp": np.tile(stamps, len(tickers))})
    source["score"] = rng.normal(size=len(source))
    source["other"] = rng.normal(size=len(source))
    settings = FeatureSourceSettings(name="mine", path=Path("mine.parquet"), timezone="America/New_York")
    rule = Availability("America/New_York", 0, None)
    # "After d" in the source's own time: anything stamped after d's close (16:00 New York).
    later = (source["timestamp"] > cutoff + pd.Timedelta(hours=16)).to_numpy()
    altered = source.copy()
    altered.loc[later, ["score", "other"]] *= -7
    extra = source[later].assign(timestamp=lambda f: f["timestamp"] + pd.Timedelta(minutes=5), score=99.0)
    altered = pd.concat([altered, extra], ignore_index=True)
    prices_altered = panel.copy()
    prices_altered.loc[prices_altered["date"] > cutoff, ["close", "adj_close"]] *= 3
    features = FeaturesSettings(use=["own", "mine"])

    def dataset(prices, table):
        src = LoadedSource("mine", validate_source(table, "mine.parquet", settings, rule, "numerai_ticker"),
                           None, ["score", "other"])
        return build_dataset_frame(prices, TargetSettings(), [src], features).drop(
            columns=["target", "target_raw", "target_end_date"])

    before, after = dataset(panel, source), dataset(prices_altered, altered)
    assert {"feature_mine_score", "feature_mine_other"} <= set(before.columns)
    early_before = before[before["date"] <= cutoff].reset_index(drop=True)
    early_after = after[after["date"] <= cutoff].reset_index(drop=True)
    assert early_before["feature_mine_score"].notna().mean() > 0.5
    pd.testing.assert_frame_equal(early_before, early_after, check_exact=True)
    # The alteration did change the plug-in feature after d, so the comparison has teeth.
    late = before["date"] > cutoff
    assert not np.allclose(before.loc[late, "feature_mine_score"].fillna(-1),
                           after.loc[late, "feature_mine_score"].fillna(-1))


def test_a_trailing_slice_and_its_ema_state_give_the_whole_historys_raw_features_bit_for_bit():
    # What appending a day relies on (tasks/model/increment.py): every window sum depends only on
    # its window, and the EMAs continue from their state, so a new bar's raw features computed from
    # the ticker's last LOOKBACK_BARS bars have the same bits as over its whole history.
    from numerflow.tasks.model.features import EMA_STATE_COLUMNS, LOOKBACK_BARS, FeatureTail

    panel = random_panel(n_tickers=14, n_days=LOOKBACK_BARS + 160, seed=6)
    panel.loc[panel["ticker"] == "T02 US", "volume"] *= 1e9  # huge sums beside small ones
    dates = pd.to_datetime(panel["date"])
    cut = dates.sort_values().iloc[int(len(panel) * 0.85)]
    old = panel.loc[dates <= cut]
    states = np.full((old["ticker"].nunique(), len(EMA_STATE_COLUMNS)), np.nan)
    compute_raw_features(old, dtype="float64", ema_states=states)
    state_of = dict(zip(sorted(old["ticker"].unique()), states, strict=True))
    whole = compute_raw_features(panel, dtype="float64")

    valid = old.dropna(subset=["adj_close"]).sort_values("date")
    slices, first_bar, new_column, ema_state = [], [], [], []
    for ticker in sorted(panel.loc[dates > cut].dropna(subset=["adj_close"])["ticker"].unique()):
        own_dates = valid.loc[valid["ticker"] == ticker, "date"].to_numpy()
        first = max(len(own_dates) - LOOKBACK_BARS, 0)
        start = own_dates[first] if len(own_dates) else pd.Timestamp.min
        slices.append(panel.loc[(panel["ticker"] == ticker) & (dates >= start)])
        first_bar.append(first)
        new_column.append(len(own_dates) - first)
        ema_state.append(state_of.get(ticker, np.full(len(EMA_STATE_COLUMNS), np.nan)))
    tail = FeatureTail(first_bar=np.array(first_bar), new_column=np.array(new_column), ema_state=np.array(ema_state))
    assert (tail.first_bar > 0).any()  # some windows really start mid-history
    sliced = compute_raw_features(pd.concat(slices, ignore_index=True), dtype="float64", tail=tail)
    expected = whole.loc[pd.to_datetime(whole["date"]) > cut].reset_index(drop=True)
    got = sliced.loc[pd.to_datetime(sliced["date"]) > cut].reset_index(drop=True)
    assert len(got) > 100
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
