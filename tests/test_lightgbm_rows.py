"""The held-out fit scores its validation rows while it trains: the scores are LightGBM's own
predictions of the model it returns, the fit is the plain one, and the scored rows never steer it."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import numerflow.tasks.model.lightgbm_rows as lightgbm_rows
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.model.lightgbm_rows import fit_and_score_rows, fit_rows, predict_rows

PARAMS = {"objective": "regression", "learning_rate": 0.1, "num_leaves": 7, "min_data_in_leaf": 20,
          "bagging_fraction": 0.8, "bagging_freq": 1, "colsample_bytree": 0.8, "verbose": -1, "num_threads": 1,
          "deterministic": True, "seed": 0}


def panel(seed: int = 0, rows: int = 6000, features: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(rows, features)).astype(np.float32)
    matrix[rng.random(matrix.shape) < 0.05] = np.nan  # missing values take LightGBM's missing branch
    matrix[:, 2] = np.round(matrix[:, 2])  # a feature of few values (and zeros)
    labels = (0.3 * np.nan_to_num(matrix[:, 0]) + rng.normal(size=rows)).astype(np.float32)
    labels[rng.random(rows) < 0.02] = np.nan  # unlabelled rows are not fitted on
    return matrix, labels


def test_scores_are_the_returned_models_predictions_and_the_fit_is_the_plain_one():
    matrix, labels = panel()
    train, scored = np.arange(0, 4000), np.arange(4500, 6000)[::-1]  # any order of rows
    names = [f"f{i}" for i in range(matrix.shape[1])]
    booster, scores = fit_and_score_rows(matrix, labels, train, scored, names, PARAMS, 40, num_threads=1)
    np.testing.assert_allclose(scores, predict_rows(booster, matrix, 1, rows=scored), rtol=0, atol=1e-12)
    plain = fit_rows(matrix, labels, train, names, PARAMS, 40)
    np.testing.assert_allclose(predict_rows(plain, matrix, 1, rows=scored), scores, rtol=0, atol=1e-12)
    assert booster.num_trees() == 40 and booster.feature_name() == names
    assert np.std(scores) > 0.01  # a real model, not a constant


def test_the_scored_rows_never_stop_the_fit_early():
    matrix, labels = panel(1)
    names = [f"f{i}" for i in range(matrix.shape[1])]
    params = {**PARAMS, "early_stopping_round": 1, "metric": "l2"}  # would stop on the scored rows at once
    booster, _ = fit_and_score_rows(matrix, labels, np.arange(3000), np.arange(3500, 6000), names, params, 60,
                                    num_threads=1)
    assert booster.num_trees() == 60


def test_scores_that_disagree_with_lightgbm_predictions_are_replaced_by_them(monkeypatch, caplog):
    matrix, labels = panel(2)
    names = [f"f{i}" for i in range(matrix.shape[1])]
    real_predict = lightgbm_rows.predict_rows

    def shifted(booster, matrix, num_threads=0, batch_rows=lightgbm_rows.BATCH_ROWS, rows=None):
        return real_predict(booster, matrix, num_threads, batch_rows, rows) + 1.0  # "the truth" moved

    monkeypatch.setattr(lightgbm_rows, "predict_rows", shifted)
    scored = np.arange(4000, 6000)
    with caplog.at_level(logging.WARNING):
        booster, scores = fit_and_score_rows(matrix, labels, np.arange(3500), scored, names, PARAMS, 20,
                                             num_threads=1)
    assert "predicting every row instead" in caplog.text
    np.testing.assert_allclose(scores, real_predict(booster, matrix, 1, rows=scored) + 1.0, rtol=0, atol=1e-12)


def test_too_few_labelled_rows_are_refused():
    matrix, labels = panel(3)
    labels[:] = np.nan
    with pytest.raises(BadInputError, match="no training rows"):
        fit_and_score_rows(matrix, labels, np.arange(100), np.arange(100, 200), ["a", "b", "c", "d", "e"], PARAMS, 5)
