"""Numerai Classic model side: era embargo, no leakage (noise scores ~0, a planted signal is
found), CORR/FNC/MMC equal to numerai-tools, lineage, the int8 → float32-batch fit, live file."""

from __future__ import annotations

import math
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from numerai_tools import scoring as nt

from numerflow.tasks.classic.live import classic_submission, predict_classic, validate_classic_submission
from numerflow.tasks.classic.scoring import classic_metrics, mmc_by_era
from numerflow.tasks.classic.training import (
    classic_lineage,
    era_split,
    feature_matrix,
    fit_classic,
    horizon_eras,
    lightgbm_setup,
    predict_rows,
    target_horizon_days,
    train_classic,
)
from numerflow.tasks.core.config import load_settings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store
from numerflow.tasks.model.training import latest_model, needs_training

TARGETS = ["target", "target_alpha_20", "target_beta_60"]


def classic_frame(eras: int, per_era: int, n_features: int, signal: float, *, first_era: int = 1,
                  seed: int = 0) -> pd.DataFrame:
    """Classic's shape: index id, era strings, int8 features 0..4, targets in 5 bins per era."""
    rng = np.random.default_rng(seed)
    n = eras * per_era
    x = rng.integers(0, 5, (n, n_features)).astype(np.int8)
    era = np.repeat([f"{e:04d}" for e in range(first_era, first_era + eras)], per_era)
    frame = pd.DataFrame(x, columns=[f"feature_{i}" for i in range(n_features)])
    frame.insert(0, "era", era)
    latent = signal * (x[:, 0].astype(float) - 2) + rng.normal(size=n)
    for target in TARGETS:
        ranks = pd.Series(latent + 0.5 * rng.normal(size=n)).groupby(era).rank(pct=True).to_numpy()
        frame[target] = (np.ceil(ranks * 5) - 1).clip(0, 4).astype(np.float32) / 4
    frame.index = pd.Index([f"n{seed}{first_era:04d}{i:06d}" for i in range(n)], name="id")
    return frame


def settings_for(tmp_path, **classic):
    return load_settings(data_dir=str(tmp_path), tournament="classic", classic={"quick": True, **classic})


# ------------------------------------------------------------------------ horizons and embargo


def test_horizons_come_from_the_target_name():
    assert target_horizon_days("target") == 20 and horizon_eras("target") == 4
    assert horizon_eras("target_cyrus_20") == 4
    assert horizon_eras("target_ender_60") == 12
    for bad in ("target_cyrus", "prediction", "target_20x"):
        with pytest.raises(BadInputError, match="has no horizon"):
            target_horizon_days(bad)


@pytest.mark.parametrize(("target", "extra"), [("target", 0), ("target_alpha_20", 2), ("target_beta_60", 0)])
def test_no_training_era_within_the_horizon_of_the_first_validation_era(target, extra):
    train_eras = pd.Series([f"{e:04d}" for e in range(1, 101) for _ in range(3)])
    validation_eras = np.array([f"{e:04d}" for e in range(95, 131)])  # overlaps the training file's end
    split = era_split(train_eras, np.ones(len(train_eras), bool), validation_eras, target, extra_embargo=extra)
    kept = train_eras[split.train].astype(int)
    horizon = horizon_eras(target)
    assert split.first_validation_era == 95
    assert (kept + horizon + extra < 95).all()
    # and nothing more is dropped than the embargo: the last allowed era is kept
    assert kept.max() == 95 - horizon - extra - 1
    assert split.embargo_eras == horizon + extra


def test_unlabelled_training_rows_are_never_used_and_era_step_downsamples():
    train_eras = pd.Series([f"{e:04d}" for e in range(1, 41)])
    labelled = np.arange(40) % 5 != 0
    split = era_split(train_eras, labelled, np.array(["0050"]), "target", era_step=4)
    assert not (split.train & ~labelled).any()
    kept = train_eras[split.train].astype(int).to_numpy()
    assert ((kept - kept.min()) % 4 == 0).all()


def test_a_split_without_room_for_the_embargo_is_refused():
    with pytest.raises(BadInputError, match="no training era"):
        era_split(pd.Series(["0001", "0002"]), np.ones(2, bool), np.array(["0005"]), "target_x_60")


# ------------------------------------------------------------------------ the fit


def test_the_batched_int8_fit_equals_lightgbm_on_a_float32_matrix():
    frame = classic_frame(12, 80, 6, 0.5)
    features = [c for c in frame.columns if c.startswith("feature_")]
    matrix = feature_matrix(frame, features)
    assert matrix.dtype == np.int8  # no float copy of the whole feature matrix
    params = {"objective": "regression", "learning_rate": 0.1, "num_leaves": 7, "verbose": -1, "num_threads": 1,
              "deterministic": True, "seed": 0}
    ours = fit_classic(frame, features, "target", params, 20)
    reference = lgb.train(params, lgb.Dataset(matrix.astype(np.float32), label=frame["target"].to_numpy()),
                          num_boost_round=20)
    np.testing.assert_allclose(predict_rows(ours, matrix, batch_rows=100),
                               reference.predict(matrix.astype(np.float32)), rtol=0, atol=1e-12)


def test_numerai_example_parameters_are_the_default():
    params, rounds = lightgbm_setup(load_settings().classic)
    assert rounds == 2000
    assert {k: params[k] for k in ("learning_rate", "max_depth", "num_leaves", "colsample_bytree")} == {
        "learning_rate": 0.01, "max_depth": 5, "num_leaves": 31, "colsample_bytree": 0.1}
    quick, quick_rounds = lightgbm_setup(load_settings(classic={"quick": True}).classic)
    assert quick_rounds < rounds and quick["learning_rate"] > params["learning_rate"]


# ------------------------------------------------------------------------ no leakage


def _train(tmp_path, signal: float, **classic):
    settings = settings_for(tmp_path, **classic)
    train = classic_frame(120, 150, 8, signal, seed=1)
    validation = classic_frame(40, 150, 8, signal, first_era=121, seed=2)
    features = [c for c in train.columns if c.startswith("feature_")]
    result = train_classic(Store(settings.data_dir), train, validation, features, settings.classic, run_id="t",
                           lineage=classic_lineage(settings, "v5.0", features), num_threads=1)
    return settings, result, validation, features


def test_noise_features_score_within_three_standard_errors_of_zero(tmp_path):
    _, result, _, _ = _train(tmp_path, 0.0)
    corr = result.metrics["corr"]
    assert corr["n_eras"] == 40
    assert abs(corr["mean"]) < 3 * corr["std"] / math.sqrt(corr["n_eras"])


def test_a_planted_signal_is_found_by_an_ensemble_of_targets(tmp_path):
    settings, result, validation, features = _train(tmp_path, 0.4, targets=TARGETS, weights=[2, 1, 1])
    corr = result.metrics["corr"]
    assert corr["mean"] > 5 * corr["std"] / math.sqrt(corr["n_eras"])
    assert corr["positive_share"] > 0.9 and corr["sharpe"] > 1
    assert set(result.metrics["members"]) == set(TARGETS)
    # the registered ensemble predicts live rows: rank averages in (0, 1), every id once
    live = validation[validation["era"] == "0121"].drop(columns=TARGETS).assign(era="X")
    predictions = predict_classic(live, result.model_dir)
    submission = classic_submission(predictions)
    checks = validate_classic_submission(submission, live.index.to_series())
    assert checks["rows"] == len(live) and 0 < checks["signal_min"] and checks["signal_max"] < 1


def test_a_model_of_another_data_version_or_feature_set_is_not_reused(tmp_path):
    settings, result, _, features = _train(tmp_path, 0.2)
    store = Store(settings.data_dir)
    same = classic_lineage(settings, "v5.0", features)
    assert needs_training(store, 7, features, lineage=same) == (False, needs_training(store, 7, features,
                                                                                       lineage=same)[1])
    for other in (classic_lineage(settings, "v5.1", features),
                  classic_lineage(settings_for(tmp_path, feature_set="all", quick=False), "v5.0", features)):
        must, reason = needs_training(store, 7, features, lineage=other)
        assert must and "other settings" in reason
    assert needs_training(store, 7, features[:-1], lineage=same)[0]
    # a Signals round (no model name) never sees the Classic model as its latest
    assert latest_model(store) is None and latest_model(store, same["model"]) == Path(result.model_dir)


# ------------------------------------------------------------------------ equal to numerai-tools


def test_corr_fnc_mmc_equal_numerai_tools_per_era():
    rng = np.random.default_rng(7)
    frame = classic_frame(6, 120, 5, 0.3, seed=3)
    features = [c for c in frame.columns if c.startswith("feature_")]
    prediction = frame["feature_0"].to_numpy() * 0.3 + rng.normal(size=len(frame))
    prediction[::17] = prediction[1::17][: len(prediction[::17])]  # ties
    meta = 0.5 * prediction + rng.normal(size=len(frame))
    frame.loc[frame.index[::29], "target"] = np.nan  # missing targets are dropped per era
    metrics = classic_metrics(prediction, frame, "target", features, meta_model=meta)
    ours = pd.DataFrame({k: metrics["per_era"][k] for k in ("corr", "fnc", "mmc")}, index=metrics["per_era"]["era"])
    frame = frame.assign(prediction=prediction, meta=meta)
    for era, rows in frame.groupby("era"):
        # float64 targets for the reference: on float32 ones pandas would centre in float32 (1e-8 off)
        rows = rows.dropna(subset=["target"]).astype({"target": np.float64})
        expected_corr = nt.numerai_corr(rows[["prediction"]], rows["target"]).iloc[0]
        expected_fnc = nt.feature_neutral_corr(rows[["prediction"]], rows[features], rows["target"]).iloc[0]
        expected_mmc = nt.correlation_contribution(rows[["prediction"]], rows["meta"], rows["target"]).iloc[0]
        assert ours.loc[era, "corr"] == pytest.approx(expected_corr, abs=1e-9)
        assert ours.loc[era, "fnc"] == pytest.approx(expected_fnc, abs=1e-9)
        assert ours.loc[era, "mmc"] == pytest.approx(expected_mmc, abs=1e-9)
    assert metrics["mmc"]["n_eras"] == 6 and set(metrics["corr"]) >= {"sharpe", "max_drawdown", "positive_share"}


def test_mmc_keeps_targets_outside_zero_one_unscaled_and_drops_missing_meta_model():
    rng = np.random.default_rng(1)
    n = 300
    prediction, meta, target = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    meta[::10] = np.nan
    eras = np.repeat(["0001", "0002", "0003"], 100)
    ours = mmc_by_era(prediction, meta, target, eras)
    for i, era in enumerate(["0001", "0002", "0003"]):
        rows = slice(100 * i, 100 * (i + 1))
        frame = pd.DataFrame({"p": prediction[rows], "m": meta[rows], "t": target[rows]})
        expected = nt.correlation_contribution(frame[["p"]], frame["m"].dropna(), frame["t"]).iloc[0]
        assert ours[era] == pytest.approx(expected, abs=1e-9)


# ------------------------------------------------------------------------ the live file


def test_the_live_submission_holds_every_live_id_exactly_once():
    ids = pd.Series([f"id{i}" for i in range(150)])
    good = classic_submission(pd.DataFrame({"id": ids, "prediction": np.r_[np.zeros(10), np.arange(140)]}))
    assert list(good.columns) == ["id", "prediction"]
    assert good["prediction"].between(0, 1, inclusive="neither").all()
    assert good["prediction"].iloc[:10].nunique() == 1  # ties kept
    assert validate_classic_submission(good, ids)["live_ids"] == 150
    with pytest.raises(BadInputError, match="1 of the 150 live ids are missing"):
        validate_classic_submission(good.iloc[1:], ids)
    with pytest.raises(BadInputError, match="not live"):
        validate_classic_submission(good, ids.iloc[1:])
    with pytest.raises(BadInputError, match="duplicate"):
        validate_classic_submission(pd.concat([good, good.iloc[:1]]), ids)
    with pytest.raises(BadInputError, match="NaN"):
        validate_classic_submission(good.assign(prediction=good["prediction"].where(good.index != 3)), ids)
    with pytest.raises(BadInputError, match="columns"):
        validate_classic_submission(good.rename(columns={"prediction": "signal"}), ids)
