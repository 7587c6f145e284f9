import json
import math

import numpy as np
import pandas as pd
import pytest
from numerai_tools import scoring as nt

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.model.scoring import (
    corr_and_fnc_by_date,
    diagnostics,
    feature_exposures_by_date,
    feature_neutral_corr_by_date,
    max_feature_exposure_by_date,
    mean_max_feature_exposure,
    numerai_corr_by_date,
    summarize_scores,
)

N_DATES, N_TICKERS, N_FEATURES = 40, 150, 5


def make_panel(seed: int = 0, shuffle: bool = True):
    """Long panel with ties (rounded predictions, binned targets and features) and NaNs,
    rows shuffled so nothing relies on date-sorted input."""
    rng = np.random.default_rng(seed)
    date_values = pd.date_range("2024-01-01", periods=N_DATES, freq="B").to_numpy()
    dates = np.repeat(date_values, N_TICKERS)
    n = dates.shape[0]
    predictions = np.round(rng.normal(size=n), 1)
    predictions[rng.random(n) < 0.05] = np.nan
    targets = rng.integers(0, 5, n) / 4
    targets[rng.random(n) < 0.05] = np.nan
    features = np.round(rng.random((n, N_FEATURES)), 2)
    features[rng.random((n, N_FEATURES)) < 0.03] = np.nan
    features[dates == date_values[3], 2] = np.nan  # a feature with no value at all on one date
    features[dates == date_values[5], 1] = 0.5  # a constant feature on one date (collinear with intercept)
    on_7 = dates == date_values[7]
    features[on_7, 4] = features[on_7, 0]  # duplicated feature column: rank-deficient regression
    on_9 = dates == date_values[9]
    # Nearly collinear: singular value below lstsq's rcond=1e-6 cut, so that direction is ignored.
    features[on_9, 4] = features[on_9, 0] + 1e-7 * rng.normal(size=int(on_9.sum()))
    if shuffle:
        order = rng.permutation(n)
        dates, predictions, targets, features = dates[order], predictions[order], targets[order], features[order]
    return dates, predictions, targets, features


def rows_of(dates, predictions, targets, features, date):
    selected = dates == date
    frame = pd.DataFrame({"p": predictions[selected], "t": targets[selected]})
    return frame.join(pd.DataFrame(features[selected]))


def test_numerai_corr_by_date_equals_numerai_tools_on_every_date():
    dates, predictions, targets, features = make_panel()
    ours = numerai_corr_by_date(predictions, targets, dates)
    assert ours.name == "corr"
    assert list(ours.index) == sorted(set(dates))
    for date in ours.index:
        frame = rows_of(dates, predictions, targets, features, date).dropna(subset=["p", "t"]).reset_index(drop=True)
        expected = nt.numerai_corr(frame[["p"]].copy(), frame["t"].copy())["p"]
        assert ours[date] == pytest.approx(expected, abs=1e-9)
    assert ours.notna().all()


def test_feature_neutral_corr_by_date_equals_numerai_tools_on_every_date():
    dates, predictions, targets, features = make_panel(seed=1)
    ours = feature_neutral_corr_by_date(predictions, targets, features, dates)
    assert ours.name == "fnc"
    for date in ours.index:
        frame = rows_of(dates, predictions, targets, features, date).dropna(subset=["p", "t"])
        # Documented NaN policy: features absent on the whole date are left out, then rows
        # with any remaining NaN feature are dropped.
        observed = [j for j in range(N_FEATURES) if frame[j].notna().any()]
        frame = frame.dropna(subset=observed).reset_index(drop=True)
        expected = nt.feature_neutral_corr(frame[["p"]].copy(), frame[observed].copy(), frame["t"].copy())["p"]
        assert ours[date] == pytest.approx(expected, abs=1e-9), date
    assert ours.notna().all()


@pytest.mark.parametrize("with_nan_features", [True, False])
def test_corr_and_fnc_by_date_equals_the_separate_functions(with_nan_features):
    dates, predictions, targets, features = make_panel(seed=7)
    if not with_nan_features:  # the path that shares one ranking between CORR and FNC
        features = np.where(np.isnan(features), 0.37, features)
    both = corr_and_fnc_by_date(predictions, targets, features, dates)
    assert list(both.columns) == ["corr", "fnc"]
    np.testing.assert_array_equal(both["corr"].to_numpy(), numerai_corr_by_date(predictions, targets, dates).to_numpy())
    np.testing.assert_array_equal(
        both["fnc"].to_numpy(), feature_neutral_corr_by_date(predictions, targets, features, dates).to_numpy())
    assert both["fnc"].notna().all() and not np.allclose(both["fnc"], both["corr"])


def test_feature_neutral_corr_differs_from_corr_when_predictions_load_on_a_feature():
    dates, _, targets, features = make_panel(seed=2, shuffle=False)
    rng = np.random.default_rng(2)
    filled = np.nan_to_num(features[:, 0], nan=0.5)
    # Target driven by feature 0; predictions = feature 0 plus a little noise: high CORR, but
    # nothing left after neutralising against the features.
    targets = np.where(np.isnan(targets), np.nan, np.round(filled * 4) / 4)
    predictions = filled + 0.05 * rng.normal(size=filled.shape[0])
    corr = numerai_corr_by_date(predictions, targets, dates)
    fnc = feature_neutral_corr_by_date(predictions, targets, features, dates)
    assert corr.mean() > 0.8
    assert abs(fnc.mean()) < 0.1


def test_max_feature_exposure_equals_numerai_tools_max_feature_correlation():
    dates, predictions, _, features = make_panel(seed=3)
    per_feature = feature_exposures_by_date(predictions, features, dates, [f"f{j}" for j in range(N_FEATURES)])
    ours = max_feature_exposure_by_date(predictions, features, dates)
    for date in ours.index:
        frame = rows_of(dates, predictions, np.zeros_like(predictions), features, date).dropna(subset=["p"])
        for j in range(N_FEATURES):  # pairwise-complete rows per feature
            pair = frame[["p", j]].dropna().reset_index(drop=True)
            expected = nt.pearson_correlation(pair[j], pair["p"]) if len(pair) else np.nan
            if np.isnan(expected) or pair[j].nunique() == 1:
                assert np.isnan(per_feature.loc[date, f"f{j}"])
            else:
                assert per_feature.loc[date, f"f{j}"] == pytest.approx(expected, abs=1e-9)
    # max_feature_correlation itself needs NaN-free features: compare on a filled copy.
    filled = np.where(np.isnan(features), 0.37, features)
    ours_filled = max_feature_exposure_by_date(predictions, filled, dates)
    for date in ours_filled.index:
        frame = rows_of(dates, predictions, np.zeros_like(predictions), filled, date).dropna(subset=["p"])
        frame = frame.reset_index(drop=True)
        _, expected_max = nt.max_feature_correlation(frame["p"], frame[list(range(N_FEATURES))])
        assert ours_filled[date] == pytest.approx(expected_max, abs=1e-9)
    assert mean_max_feature_exposure(predictions, features, dates) == pytest.approx(ours.mean())


def test_perfect_predictor_scores_far_above_noise_and_noise_scores_about_zero():
    rng = np.random.default_rng(4)
    n_dates, n_tickers = 200, 200
    dates = np.repeat(np.arange(n_dates), n_tickers)
    latent = rng.normal(size=dates.shape[0])
    targets = np.digitize(latent, [-1.0, -0.3, 0.3, 1.0]) / 4  # 5 bins like Numerai targets
    features = rng.random((dates.shape[0], 3))
    perfect = numerai_corr_by_date(latent, targets, dates)
    noise = numerai_corr_by_date(rng.normal(size=dates.shape[0]), targets, dates)
    assert perfect.mean() > 0.8
    assert abs(noise.mean()) < 4 * noise.std() / math.sqrt(n_dates)
    assert abs(noise.mean()) < 0.02
    assert feature_neutral_corr_by_date(latent, targets, features, dates).mean() > 0.8


def test_degenerate_dates_score_nan_and_stay_in_the_index():
    dates = np.array(["a"] * 4 + ["b"] * 4 + ["c"] + ["d"] * 3)
    predictions = np.array([1, 2, 3, 4, 7, 7, 7, 7, 1, np.nan, np.nan, np.nan], dtype=float)
    targets = np.array([0, 0.25, 0.75, 1, 0, 0.5, 1, 1, 0.5, 0.5, 0.5, 0.5])
    features = np.arange(24, dtype=float).reshape(12, 2) % 5
    corr = numerai_corr_by_date(predictions, targets, dates)
    assert list(corr.index) == ["a", "b", "c", "d"]
    assert corr["a"] > 0.9  # monotone predictor
    assert corr[["b", "c", "d"]].isna().all()  # constant predictions, one row, no rows
    fnc = feature_neutral_corr_by_date(predictions, targets, features, dates)
    assert fnc[["b", "c", "d"]].isna().all()
    constant_target = numerai_corr_by_date([1.0, 2.0, 3.0], [0.3, 0.3, 0.3], ["x"] * 3)
    assert constant_target.isna().all()


def test_dataframe_features_and_row_order_do_not_change_results():
    dates, predictions, targets, features = make_panel(seed=5, shuffle=False)
    frame = pd.DataFrame(features, columns=[f"f{j}" for j in range(N_FEATURES)])
    order = np.random.default_rng(5).permutation(dates.shape[0])
    base = feature_neutral_corr_by_date(predictions, targets, features, dates)
    from_frame = feature_neutral_corr_by_date(pd.Series(predictions), pd.Series(targets), frame, pd.Series(dates))
    shuffled = feature_neutral_corr_by_date(predictions[order], targets[order], features[order], dates[order])
    np.testing.assert_allclose(from_frame.to_numpy(), base.to_numpy(), atol=1e-12)
    np.testing.assert_allclose(shuffled.to_numpy(), base.to_numpy(), atol=1e-12)


def test_summarize_scores_on_a_hand_made_series():
    scores = pd.Series([0.02, -0.01, -0.03, 0.04, np.nan, 0.01])
    summary = summarize_scores(scores)
    clean = np.array([0.02, -0.01, -0.03, 0.04, 0.01])
    assert summary["n_dates"] == 5
    assert summary["mean"] == pytest.approx(0.006)
    assert summary["std"] == pytest.approx(clean.std(ddof=1))
    assert summary["sharpe"] == pytest.approx(0.006 / clean.std(ddof=1))
    assert summary["sem"] == pytest.approx(clean.std(ddof=1) / math.sqrt(5))
    # cumulative: 0.02, 0.01, -0.02, 0.02, 0.03 -> peak 0.02 then trough -0.02
    assert summary["max_drawdown"] == pytest.approx(-0.04)


def test_summarize_scores_drawdown_counts_an_initial_loss_and_zero_std_is_nan_safe():
    assert summarize_scores(pd.Series([-0.01, -0.02, 0.05]))["max_drawdown"] == pytest.approx(-0.03)
    assert summarize_scores(pd.Series([0.01, 0.02]))["max_drawdown"] == 0.0
    flat = summarize_scores(pd.Series([0.01, 0.01, 0.01]))
    assert flat["std"] == 0.0 and math.isnan(flat["sharpe"])
    empty = summarize_scores(pd.Series([np.nan], dtype=float))
    assert empty["n_dates"] == 0 and math.isnan(empty["mean"]) and math.isnan(empty["max_drawdown"])


def test_diagnostics_is_strict_json_and_agrees_with_the_per_date_functions():
    dates, predictions, targets, features = make_panel(seed=6)
    rng = np.random.default_rng(6)
    # Make feature 3 the one the predictions lean on.
    predictions = np.where(np.isnan(predictions), np.nan, np.nan_to_num(features[:, 3], nan=0.5) + 0.3 * rng.normal(size=predictions.shape[0]))
    names = [f"feature_{name}" for name in "abcde"]
    result = diagnostics(predictions, targets, features, dates, names)
    json.dumps(result, allow_nan=False)  # raises on NaN / numpy types
    corr = numerai_corr_by_date(predictions, targets, dates)
    fnc = feature_neutral_corr_by_date(predictions, targets, features, dates)
    assert result["corr"] == pytest.approx(summarize_scores(corr))
    assert result["fnc"] == pytest.approx(summarize_scores(fnc))
    assert result["feature_exposure"]["worst_feature"] == "feature_d"
    assert result["feature_exposure"]["mean"] == pytest.approx(max_feature_exposure_by_date(predictions, features, dates).mean())
    assert result["per_date"]["date"][0] == "2024-01-01"
    assert result["per_date"]["corr"] == pytest.approx(corr.tolist())
    assert 0 < result["rows"]["fnc"] < result["rows"]["scored"] < result["rows"]["total"]


def test_diagnostics_writes_none_for_undefined_values():
    result = diagnostics([1.0, 2.0, 3.0], [0.5, 0.5, 0.5], np.array([[0.1], [0.2], [0.3]]), ["d"] * 3, ["f"])
    json.dumps(result, allow_nan=False)
    assert result["corr"]["mean"] is None and result["per_date"]["corr"] == [None]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"predictions": [1.0, 2.0], "targets": [0.5, 0.5, 0.5], "dates": ["a"] * 3}, "predictions has 2 rows"),
        ({"predictions": [1.0, 2.0, 3.0], "targets": [0.5] * 3, "dates": ["a", None, "a"]}, "missing values"),
        ({"predictions": [1.0, np.inf, 3.0], "targets": [0.5] * 3, "dates": ["a"] * 3}, "infinite"),
        ({"predictions": ["x", "y", "z"], "targets": [0.5] * 3, "dates": ["a"] * 3}, "non-numeric"),
    ],
)
def test_bad_inputs_raise_bad_input_error_naming_the_problem(kwargs, message):
    with pytest.raises(BadInputError, match=message):
        numerai_corr_by_date(kwargs["predictions"], kwargs["targets"], kwargs["dates"])


def test_bad_features_raise_bad_input_error():
    frame = pd.DataFrame({"feature_country": ["US", "JP", "GB"], "feature_x": [0.1, 0.2, 0.3]})
    with pytest.raises(BadInputError, match="feature_country"):
        feature_neutral_corr_by_date([1.0, 2.0, 3.0], [0.0, 0.5, 1.0], frame, ["a"] * 3)
    with pytest.raises(BadInputError, match="feature names"):
        diagnostics([1.0, 2.0, 3.0], [0.0, 0.5, 1.0], np.ones((3, 2)), ["a"] * 3, ["only_one"])
    with pytest.raises(BadInputError, match="features have 2 rows"):
        max_feature_exposure_by_date([1.0, 2.0, 3.0], np.ones((2, 1)), ["a"] * 3)
