"""LightGBM on a narrow matrix without whole-matrix copies: shared by Signals' and Classic's training.

LightGBM converts a DataFrame (or any non-float32 matrix) into one float32 or float64 copy of
every row before it bins them, and keeps the pandas frame alive beside it. Here the rows reach
it through a ``lightgbm.Sequence`` instead, one float32 batch at a time (``fit_rows``): the
only full-size things held are the caller's matrix (int8 or float32) and LightGBM's own binned
data (one byte per value). Predictions are made in batches too (``predict_rows``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightgbm as lgb
import numpy as np

from numerflow.tasks.core.errors import BadInputError

#: Rows per float32 batch handed to LightGBM (64k rows x 700 features = 180 MB).
BATCH_ROWS = 65536
#: Rows LightGBM builds its feature bins from (its ``bin_construct_sample_cnt`` default).
BIN_SAMPLE_ROWS = 200_000


class Float32Rows(lgb.Sequence):
    """Rows ``rows`` of an int8 (or float32) matrix, handed to LightGBM as float32 one batch at a
    time: the Dataset is built without a float32 (let alone float64) copy of the whole matrix."""

    def __init__(self, matrix: np.ndarray, rows: np.ndarray, batch_size: int = BATCH_ROWS) -> None:
        self.matrix = matrix
        self.rows = rows
        self.batch_size = batch_size

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def __getitem__(self, idx: Any) -> np.ndarray:
        if isinstance(idx, (int, np.integer)):  # one row (LightGBM samples rows as float64)
            return self.matrix[self.rows[idx]].astype(np.float64)
        return self.matrix[self.rows[idx]].astype(np.float32)


def fit_rows(matrix: np.ndarray, labels: np.ndarray, positions: np.ndarray, feature_names: Sequence[str],
             params: dict[str, Any], num_boost_round: int, what: str = "the target") -> lgb.Booster:
    """Fit LightGBM on rows ``positions`` of ``matrix`` (rows whose label is NaN are dropped).

    LightGBM's bins come from a row sample; reading that sample row by row through a Sequence
    costs ~30 us a row, so the bins are built from one gathered float32 sample (all rows when
    there are at most BIN_SAMPLE_ROWS, as LightGBM itself would), then every row is pushed in
    float32 batches (``Float32Rows``)."""
    labels = np.asarray(labels, dtype=np.float32)
    positions = np.asarray(positions, dtype=np.int64)
    positions = positions[~np.isnan(labels[positions])]
    if positions.size < 2:
        raise BadInputError(f"no training rows have {what}", tag="not_enough_history")
    rng = np.random.default_rng(int(params.get("seed", 0)))
    sample = positions if positions.size <= BIN_SAMPLE_ROWS else np.sort(
        rng.choice(positions, BIN_SAMPLE_ROWS, replace=False))
    bins = lgb.Dataset(matrix[sample].astype(np.float32), label=labels[sample], feature_name=list(feature_names),
                       params={"verbose": -1}, free_raw_data=True).construct()
    data = lgb.Dataset(Float32Rows(matrix, positions), label=labels[positions], feature_name=list(feature_names),
                       reference=bins, params={"verbose": -1}, free_raw_data=True)
    return lgb.train(params, data, num_boost_round=num_boost_round)


def predict_rows(booster: lgb.Booster, matrix: np.ndarray, num_threads: int = 0,
                 batch_rows: int = BATCH_ROWS, rows: np.ndarray | None = None) -> np.ndarray:
    """Predictions for every row of ``matrix`` (or rows ``rows`` of it, in that order), converted to
    float32 one batch at a time."""
    count = matrix.shape[0] if rows is None else int(rows.shape[0])
    out = np.empty(count, dtype=np.float64)
    for start in range(0, count, batch_rows):
        stop = min(start + batch_rows, count)
        part = matrix[start:stop] if rows is None else matrix[rows[start:stop]]
        out[start:stop] = booster.predict(part.astype(np.float32), num_threads=num_threads)
    return out
