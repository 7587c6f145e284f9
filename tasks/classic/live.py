"""Numerai Classic live: predict every row of the round's ``live.parquet``, write ``id,prediction``
with tie-kept ranks strictly inside (0, 1), and validate it before anything can be uploaded.

The submission is Numerai Classic's format (numerai-tools ``submissions``: id column ``id``,
value column ``prediction``; ``validate_submission_numerai`` needs every live id). Ranks are
``tasks.numerai.submission.to_signal`` (``(rank - 0.5) / n``, ties kept), the Signals file's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from numerflow.tasks.classic.training import feature_matrix, predict_rows
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, read_json, write_parquet
from numerflow.tasks.model.ensemble import ensemble_members, is_ensemble, rank_average
from numerflow.tasks.model.predict import LivePredictions
from numerflow.tasks.model.training import META_FILE, load_model
from numerflow.tasks.numerai.submission import check_classic_ids, to_signal, validate_submission

TOURNAMENT = "classic"


def predict_classic(live: pd.DataFrame, model_dir: Path, num_threads: int = 0) -> pd.DataFrame:
    """``live`` (index ``id``, ``era``, the model's int8 features) → ``id, prediction`` for every
    row. An ensemble predicts with each member and rank-averages with its weights."""
    meta = read_json(Path(model_dir) / META_FILE)
    features = list(meta["features"])
    matrix = feature_matrix(live, features)  # refuses a live file without the model's features
    if is_ensemble(Path(model_dir)):
        members = ensemble_members(Path(model_dir))
        parts = [predict_rows(load_model(Path(m["model_dir"]))[0], matrix, num_threads) for m in members]
        eras = live["era"].astype(str).to_numpy() if "era" in live.columns else np.zeros(len(live), dtype=np.int64)
        values = rank_average(parts, [float(m["weight"]) for m in members], eras)
    else:
        values = predict_rows(load_model(Path(model_dir))[0], matrix, num_threads)
    return pd.DataFrame({"id": live.index.astype(str), "prediction": values})


def write_live_predictions(store: Store, live: pd.DataFrame, model_dir: Path, run_id: str,
                           num_threads: int = 0) -> LivePredictions:
    """Predict ``live`` and keep the raw predictions (``predictions/<run>-live.parquet``)."""
    predictions = predict_classic(live, model_dir, num_threads)
    bad = ~np.isfinite(predictions["prediction"].to_numpy())
    if bad.any():
        raise BadInputError(f"{int(bad.sum())} live predictions are NaN or infinite (e.g. "
                            f"{predictions.loc[bad, 'id'].head(3).tolist()}): check live.parquet's features",
                            tag="invalid_predictions")
    path = write_parquet(store.predictions_path(run_id, "live"), predictions)
    era = str(live["era"].iloc[0]) if "era" in live.columns and len(live) else ""
    meta = read_json(Path(model_dir) / META_FILE)
    return LivePredictions(str(path), era, int(len(predictions)), int(len(live)), meta["model_id"])


def classic_submission(predictions: pd.DataFrame) -> pd.DataFrame:
    """``id, prediction`` → the submission: the same ids, tie-kept ranks in (0, 1)."""
    return pd.DataFrame({"id": predictions["id"].astype(str).to_numpy(),
                         "prediction": to_signal(predictions["prediction"])})


def validate_classic_submission(submission: pd.DataFrame, live_ids: pd.Series | pd.Index) -> dict[str, Any]:
    """Every live id exactly once and nothing else, no NaN, values strictly inside (0, 1) that
    vary (``tasks.numerai.submission``'s rules), then numerai-tools' ``validate_submission_numerai``
    on a copy. Tagged ``BadInputError`` on the first problem; a summary dict otherwise."""
    live = pd.Index(pd.Series(live_ids).astype(str))
    if live.has_duplicates:
        raise BadInputError(f"live.parquet repeats ids (e.g. {live[live.duplicated()][:3].tolist()}): the live "
                            "file is damaged; download it again", tag="invalid_data")
    check_classic_ids(submission["id"] if "id" in submission.columns else pd.Series(dtype=str), live)
    summary = validate_submission(submission, pd.Series(live), tournament=TOURNAMENT, min_tickers=len(live))
    return {**summary, "live_ids": int(len(live))}
