"""Live prediction: the registered model scores each live-universe ticker's latest features."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, read_columns, read_json, read_parquet, write_parquet
from numerflow.tasks.model.dataset import live_rows
from numerflow.tasks.model.feature_sets import model_frame
from numerflow.tasks.model.training import META_FILE, load_model


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
    numerai_live_path: Path | None = None,
) -> LivePredictions:
    """Predict each live-universe ticker. Our features come from the dataset's latest rows; a
    model on Numerai's features (feature set ``numerai`` or ``both``) takes them from the round's
    ``live.parquet`` (``numerai_live_path``), whose date is the close its features use; with both,
    our row must be from that date or before (as in training). An ensemble
    (``tasks.model.ensemble``) predicts with every member and rank-averages with its weights."""
    from numerflow.tasks.model.ensemble import ensemble_members, is_ensemble, rank_average

    meta = read_json(Path(model_dir) / META_FILE)
    def one(directory: Path) -> pd.DataFrame:
        return _predict_one(directory, dataset_path, universe_ids, max_staleness_days=max_staleness_days,
                            num_threads=num_threads, numerai_live_path=numerai_live_path)

    if is_ensemble(Path(model_dir)):
        members = ensemble_members(Path(model_dir))
        parts = [one(Path(m["model_dir"])) for m in members]
        frame = parts[0].rename(columns={"prediction": "prediction_0"})
        for i, part in enumerate(parts[1:], start=1):
            frame = frame.merge(part[["ticker", "prediction"]].rename(columns={"prediction": f"prediction_{i}"}),
                                on="ticker", how="inner")
        frame["prediction"] = rank_average([frame[f"prediction_{i}"].to_numpy() for i in range(len(parts))],
                                           [m["weight"] for m in members], np.zeros(len(frame)))
        frame = frame[["ticker", "date", "prediction"]].copy()
        frame.attrs["live_date"] = parts[0].attrs["live_date"]
    else:
        frame = one(Path(model_dir))
    if len(frame) < min_tickers:
        raise BadInputError(
            f"only {len(frame)} live-universe tickers have recent features (need {min_tickers}); "
            f"the universe has {universe_ids.nunique()} tickers: ingest more prices or check the ingest ledger",
            tag="not_enough_tickers",
        )
    live_date = frame.attrs.pop("live_date")  # not a column: kept out of the file's metadata
    path = write_parquet(store.predictions_path(run_id, "live"), frame)
    return LivePredictions(
        path=str(path),
        live_date=str(pd.Timestamp(live_date).date()),
        tickers=int(len(frame)),
        universe_size=int(universe_ids.nunique()),
        model_id=str(meta["model_id"]),
    )


def _predict_one(model_dir: Path, dataset_path: Path, universe_ids: pd.Series, *, max_staleness_days: int,
                 num_threads: int, numerai_live_path: Path | None) -> pd.DataFrame:
    """One LightGBM model's live predictions: ``ticker``, ``date``, ``prediction`` (attr ``live_date``)."""
    booster, meta = load_model(model_dir)
    features = meta["features"]
    ours = [f for f in features if f in pq.read_schema(dataset_path).names]
    theirs = [f for f in features if f not in ours]
    if theirs:
        if numerai_live_path is None or not Path(numerai_live_path).exists():
            raise BadInputError(f"the model uses Numerai's features {theirs[:5]}, which only the round's live.parquet "
                                "holds: run a live round, or retrain on our own features (training.feature_set = "
                                "\"own\")", tag="feature_mismatch")
        absent = [f for f in theirs if f not in pq.read_schema(numerai_live_path).names]
        if absent:
            raise BadInputError(f"neither the dataset nor {numerai_live_path} has the model's features {absent}; "
                                "retrain (--retrain)", tag="feature_mismatch")
    numerai_live = (_numerai_live_rows(Path(numerai_live_path), theirs, universe_ids)
                    if theirs and numerai_live_path is not None else None)
    if ours:
        # Only the last few days are live: read the dates, then just the rows in that window
        # (the full dataset is millions of rows on a real universe).
        last = read_parquet(dataset_path, columns=["date"])["date"].max()
        if numerai_live is not None:
            last = min(last, numerai_live.attrs["live_date"])  # never a bar after Numerai's live date
        window_start = last - pd.Timedelta(days=max_staleness_days)
        dataset = read_parquet(dataset_path, columns=["ticker", "date", *ours],
                               filter_expr=(ds.field("date") >= window_start.to_pydatetime())
                               & (ds.field("date") <= last.to_pydatetime()))
        live = live_rows(dataset, universe_ids, max_staleness_days)
        if numerai_live is not None:
            live_date = numerai_live.attrs["live_date"]
            live = live.merge(numerai_live.drop(columns=["date"]), on="ticker", how="inner", validate="one_to_one")
            live.attrs["live_date"] = live_date
    else:
        assert numerai_live is not None
        live = numerai_live
    predictions = booster.predict(model_frame(live, features), num_threads=num_threads) if len(live) else np.array([])
    if not np.isfinite(predictions).all():
        raise BadInputError("the model produced NaN or infinite predictions", tag="invalid_predictions")
    frame = pd.DataFrame(
        {"ticker": live["ticker"].astype(str).to_numpy(), "date": live["date"].to_numpy(), "prediction": predictions}
    )
    frame.attrs["live_date"] = live.attrs["live_date"]
    return frame


def _numerai_live_rows(path: Path, features: list[str], universe_ids: pd.Series) -> pd.DataFrame:
    """The live universe's rows of Numerai's live.parquet at its (latest) date: ticker, date, features."""
    names = pq.read_schema(path).names
    id_column = "numerai_ticker" if "numerai_ticker" in names else "symbol"
    frame = read_columns(path, [id_column, "date", *features]).rename(columns={id_column: "ticker"})
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    live_date = frame["date"].max()
    frame = frame[(frame["date"] == live_date) & frame["ticker"].astype(str).isin(universe_ids.astype(str))]
    frame = frame.assign(ticker=frame["ticker"].astype(str)).drop_duplicates("ticker").reset_index(drop=True)
    frame.attrs["live_date"] = live_date
    return frame
