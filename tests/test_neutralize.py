"""Per-model prediction neutralisation (tasks/model/neutralize.py, tasks/round/neutralization.py):
numerai-tools' ``neutralize`` per date, applied alike to validation and live predictions, in lineage."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from numerai_tools import scoring as nt_scoring

from numerflow.tasks.core.config import load_settings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import read_json, read_parquet
from numerflow.tasks.model.neutralize import against_columns, neutralize


def _panel(rng: np.random.Generator, dates: int = 6, tickers: int = 120, k: int = 3):
    groups = np.repeat(np.arange(dates), tickers)
    exposures = rng.normal(size=(dates * tickers, k))
    values = exposures @ np.array([1.0, -0.5, 0.3][:k]) + rng.normal(size=dates * tickers)
    return values, exposures, groups


def _corr_by_group(values: np.ndarray, column: np.ndarray, groups: np.ndarray) -> np.ndarray:
    return np.array([np.corrcoef(values[groups == g], column[groups == g])[0, 1] for g in np.unique(groups)])


def test_proportion_one_leaves_no_exposure_to_the_features_and_zero_changes_nothing():
    values, exposures, groups = _panel(np.random.default_rng(0))
    neutral = neutralize(values, exposures, groups, 1.0)
    for j in range(exposures.shape[1]):
        assert np.abs(_corr_by_group(values, exposures[:, j], groups)).max() > 0.1  # exposed before
        assert np.abs(_corr_by_group(neutral, exposures[:, j], groups)).max() < 1e-10
    assert np.array_equal(neutralize(values, exposures, groups, 0.0), values)
    half = neutralize(values, exposures, groups, 0.5)
    assert np.allclose(half, (values + neutral) / 2)


@pytest.mark.parametrize("proportion", [0.25, 1.0])
def test_each_date_equals_numerai_tools_neutralize(proportion):
    values, exposures, groups = _panel(np.random.default_rng(1))
    ours = neutralize(values, exposures, groups, proportion)
    for g in np.unique(groups):
        rows = groups == g
        theirs = nt_scoring.neutralize(pd.DataFrame({"p": values[rows]}), pd.DataFrame(exposures[rows]), proportion)
        assert np.allclose(ours[rows], theirs["p"].to_numpy(), atol=1e-9)


@pytest.mark.parametrize("case", ["collinear", "constant", "few_rows", "int8_many"])
def test_ill_conditioned_constant_and_int8_features_still_equal_numerai_tools(case):
    """The Gram fast path and lstsq's fallback (collinear features, a feature constant on a date, fewer
    rows than features) both give numerai-tools' fit; int8 bins as Classic holds them too."""
    rng = np.random.default_rng(4)
    values, exposures, groups = _panel(rng, dates=3, tickers=60 if case == "few_rows" else 400, k=3)
    if case == "collinear":
        exposures = np.column_stack([exposures, exposures[:, 0] + exposures[:, 1]])
    elif case == "constant":
        exposures = np.column_stack([exposures, np.full(len(values), 2.0)])
    elif case == "few_rows":
        exposures = np.column_stack([exposures, rng.normal(size=(len(values), 80))])
    else:
        exposures = rng.integers(0, 5, size=(len(values), 120), dtype=np.int8)
    ours = neutralize(values, exposures, groups, 1.0)
    for g in np.unique(groups):
        rows = groups == g
        theirs = nt_scoring.neutralize(pd.DataFrame({"p": values[rows]}),
                                       pd.DataFrame(exposures[rows].astype("float64")), 1.0)
        assert np.allclose(ours[rows], theirs["p"].to_numpy(), atol=1e-9), (case, g)


def test_a_missing_feature_value_is_the_dates_mean_and_a_bad_proportion_is_refused():
    values, exposures, groups = _panel(np.random.default_rng(2), dates=2)
    holes = exposures.copy()
    holes[::7, 0] = np.nan
    filled = holes.copy()
    for g in np.unique(groups):
        rows = groups == g
        column = filled[rows, 0]
        column[np.isnan(column)] = np.nanmean(holes[rows, 0])
        filled[rows, 0] = column
    assert np.allclose(neutralize(values, holes, groups, 1.0), neutralize(values, filled, groups, 1.0))
    with pytest.raises(BadInputError, match="neutralize.proportion"):
        neutralize(values, exposures, groups, 1.5)


def test_against_resolves_own_numerai_and_names_and_refuses_what_it_cannot_find():
    own, numerai = ["feature_ret_20d", "feature_vol_20d"], ["feature_momentum"]
    assert against_columns(["own"], own, numerai) == (own, [])
    assert against_columns(["numerai", "feature_vol_20d"], own, numerai) == (["feature_vol_20d"], numerai)
    with pytest.raises(BadInputError, match="feature_nope"):
        against_columns(["feature_nope"], own, numerai)
    with pytest.raises(BadInputError, match="training.feature_set"):
        against_columns(["numerai"], own, [])


def test_a_model_entry_neutralizes_and_classic_refuses_numerai(monkeypatch, tmp_path):
    from numerflow.tasks.round.models import round_models
    from numerflow.tasks.round.neutralization import check_neutralize

    monkeypatch.setenv("NUMERFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("NUMERFLOW_NEUTRALIZE__PROPORTION", "0.25")
    monkeypatch.setenv("NUMERFLOW_MODELS", json.dumps([{"name": "a"}, {"name": "b", "neutralize": {
        "proportion": 1, "against": ["feature_ret_20d"]}}]))
    a, b = round_models(load_settings())
    assert (a.settings.neutralize.proportion, a.settings.neutralize.against) == (0.25, ["own"])
    assert (b.settings.neutralize.proportion, b.settings.neutralize.against) == (1.0, ["feature_ret_20d"])
    with pytest.raises(BadInputError, match="Classic model is neutralised against"):
        check_neutralize(load_settings(tournament="classic", neutralize={"proportion": 1, "against": ["numerai"]}))


# --------------------------------------------------------------------------- in a round, live and validation alike


@pytest.mark.slow
def test_a_demo_round_neutralizes_validation_and_live_predictions_alike(prefect_harness, monkeypatch, tmp_path):
    from numerflow.flows.round import round_flow
    from numerflow.tasks.round.summary import summary_of

    monkeypatch.setenv("NUMERFLOW_TRAINING__NUM_BOOST_ROUND", "40")
    monkeypatch.setenv("NUMERFLOW_TRAINING__NUM_THREADS", "1")
    monkeypatch.setenv("NUMERFLOW_NEUTRALIZE__PROPORTION", "1")
    small = {"tickers": 160, "years": 3.0, "signal": 1.0, "seed": 5, "data_dir": str(tmp_path)}

    result = round_flow(**small)

    model = result.model
    meta = read_json(f"{model.model_dir}/meta.json")
    assert meta["lineage"]["neutralize"] == {"proportion": 1.0, "against": ["own"]}
    features = meta["neutralization"]["features"]
    assert features and set(features) <= set(meta["features"])

    # Validation: the predictions the figures (and any diagnostics upload) are made of are neutralised.
    validation = read_parquet(meta["validation_predictions"])
    assert meta["validation_predictions"].endswith("-neutralized.parquet")
    rows = validation.merge(read_parquet(meta["dataset"], columns=["ticker", "date", *features]),
                            on=["ticker", "date"])
    for day, group in list(rows.groupby("date"))[-5:]:
        filled = group[features].fillna(group[features].mean())
        for name in features:
            if filled[name].std() > 0:
                assert abs(np.corrcoef(group["prediction"], filled[name])[0, 1]) < 1e-8, (day, name)
    before, after = model.neutralization["before"]["corr"]["mean"], model.validation["mean"]
    assert before is not None and after is not None and not math.isclose(before, after)
    assert meta["validation_metrics"]["corr"]["mean"] == after
    fnc_before, fnc_after = model.neutralization["before"]["fnc"]["mean"], meta["validation_metrics"]["fnc"]["mean"]
    assert fnc_before is not None and fnc_after is not None and not math.isclose(fnc_before, fnc_after)

    # Live: neutralised the same way on the live date; what is submitted is its rank.
    live = read_parquet(result.live.path)
    assert result.live.path.endswith("-neutralized.parquet")
    at = live.merge(read_parquet(result.dataset.path, columns=["ticker", "date", *features]), on=["ticker", "date"])
    filled = at[features].fillna(at[features].mean())
    for name in features:
        if filled[name].std() > 0:
            assert abs(np.corrcoef(at["prediction"], filled[name])[0, 1]) < 1e-8, name
    submitted = pd.read_csv(result.submission.path).set_index("numerai_ticker")["signal"]
    assert submitted.corr(live.set_index("ticker")["prediction"], method="spearman") > 0.999

    # ALPHA (the demo market's neutralizer) before and after: the after one is of the neutralised predictions.
    alpha_before, alpha_after = model.neutralization["before"]["alpha"]["mean"], model.alpha["mean"]
    assert alpha_before is not None and alpha_after is not None and not math.isclose(alpha_before, alpha_after)
    text = summary_of(result)[1]
    assert "neutralized proportion 1 against own" in text and f"{before:.5f} → {after:.5f}" in text
    assert f"ALPHA mean {alpha_before:.5f} → {alpha_after:.5f}" in text

    # Reused next time: the same lineage; the live predictions neutralised again from the model's record.
    again = round_flow(**small, force=True)
    assert again.model.trained is False and again.model.neutralization["features"] == features
    assert again.live.path.endswith("-neutralized.parquet")
