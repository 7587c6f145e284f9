"""Live prediction: the registered model scores each live-universe ticker's latest features."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, read_parquet, write_parquet
from numerflow.tasks.model.dataset import live_rows
from numerflow.tasks.model.training import load_model


@dataclass(frozen=True)
class LivePredictions:
    path: str
    live_date: str
    tickers: int
    universe_size: int
    model_id: str


def predict_live(
    store: Store,
    dataset_path: Path,
    model_dir: Path,
    universe_ids: pd.Series,
    run_id: str,
    *,
    min_tickers: int,
    max_staleness_days: int = 5,
    num_threads: int = 0,
) -> LivePredictions:
    booster, meta = load_model(Path(model_dir))
    features = meta["features"]
    missing = [f for f in features if f not in pq.read_schema(dataset_path).names]
    if missing:
        raise BadInputError(f"dataset lacks the model's features {missing}; retrain (--retrain)", tag="feature_mismatch")
    # Only the last few days are live: read the dates, then just the rows in that window
    # (the full dataset is millions of rows on a real universe).
    window_start = read_parquet(dataset_path, columns=["date"])["date"].max() - pd.Timedelta(days=max_staleness_days)
    dataset = read_parquet(dataset_path, columns=["ticker", "date", *features],
                           filter_expr=ds.field("date") >= window_start.to_pydatetime())
    live = live_rows(dataset, universe_ids, max_staleness_days)
    if len(live) < min_tickers:
        raise BadInputError(
            f"only {len(live)} live-universe tickers have recent features (need {min_tickers}); "
            f"the universe has {universe_ids.nunique()} tickers: ingest more prices or check the ingest ledger",
            tag="not_enough_tickers",
        )
    predictions = booster.predict(live[features], num_threads=num_threads)
    if not np.isfinite(predictions).all():
        raise BadInputError("the model produced NaN or infinite predictions", tag="invalid_predictions")
    frame = pd.DataFrame(
        {"ticker": live["ticker"].astype(str).to_numpy(), "date": live["date"].to_numpy(), "prediction": predictions}
    )
    path = write_parquet(store.predictions_path(run_id, "live"), frame)
    return LivePredictions(
        path=str(path),
        live_date=str(pd.Timestamp(live.attrs["live_date"]).date()),
        tickers=int(len(frame)),
        universe_size=int(universe_ids.nunique()),
        model_id=str(meta["model_id"]),
    )
