"""LightGBM training with a purged, embargoed date split, and the on-disk model registry.

Split: the most recent ``validation_fraction`` of dates (with known targets) is held out.
A training row is kept only if its target ends (``target_end_date``) at least
``embargo_days`` calendar days before the first validation date, so no training label
overlaps the validation period (the target spans lag + horizon trading days).

Registry: ``models/<model_id>/model.txt`` (LightGBM text format) and ``meta.json``
(feature list, params, data ranges, metrics, package versions, created_at).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from numerflow.tasks.core.config import Settings, TrainingSettings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.schemas import as_strings
from numerflow.tasks.core.store import (
    CorruptFileError,
    Store,
    file_sha256,
    quarantine,
    read_json,
    read_parquet,
    write_json,
    write_parquet,
    write_with,
)

logger = logging.getLogger(__name__)

MODEL_FILE = "model.txt"
META_FILE = "meta.json"
#: The registry name (lineage ``model``) of every Numerai Classic model starts with this.
CLASSIC_MODEL_PREFIX = "classic:"


@dataclass(frozen=True)
class DateSplit:
    train: np.ndarray  # boolean masks over the dataset's rows
    validation: np.ndarray
    validation_start: pd.Timestamp
    train_last_target_end: pd.Timestamp


def purged_date_split(
    dates: pd.Series, target_end_dates: pd.Series, has_target: np.ndarray, validation_fraction: float, embargo_days: int
) -> DateSplit:
    """Hold out the last dates; keep training rows whose targets end before validation (+ embargo)."""
    labelled_dates = np.sort(pd.unique(dates[has_target]))
    if len(labelled_dates) < 10:
        raise BadInputError(
            f"only {len(labelled_dates)} dates have targets; need more history to train and validate "
            "(more years of prices, or a shorter target horizon)",
            tag="not_enough_history",
        )
    n_valid = max(1, int(round(len(labelled_dates) * validation_fraction)))
    validation_start = pd.Timestamp(labelled_dates[-n_valid])
    validation = has_target & (dates >= validation_start).to_numpy()
    cutoff = validation_start - pd.Timedelta(days=embargo_days)
    train = has_target & (target_end_dates < cutoff).to_numpy()
    if not train.any() or not validation.any():
        raise BadInputError(
            "the date split left no training or no validation rows; use more years of prices "
            "or a smaller validation_fraction / embargo_days",
            tag="not_enough_history",
        )
    return DateSplit(train, validation, validation_start, pd.Timestamp(target_end_dates[train].max()))


def target_span_trading_days(rows: pd.DataFrame) -> int:
    """Trading days (weekdays) from a row's date to its target's end, the most common over the
    rows: how many consecutive dates' targets overlap (lag + horizon), whatever the target. Dates on
    weekends mean an every-day calendar (Crypto): then every calendar day is a date."""
    if rows.empty:
        return 0
    days = rows["date"].to_numpy().astype("datetime64[D]")
    ends = rows["target_end_date"].to_numpy().astype("datetime64[D]")
    every_day = bool((pd.DatetimeIndex(rows["date"]).day_of_week >= 5).any())
    spans = (ends - days).astype(np.int64) if every_day else np.busday_count(days, ends)
    values, counts = np.unique(spans, return_counts=True)
    return int(values[np.argmax(counts)])


def lightgbm_params(settings: TrainingSettings) -> dict:
    """The parameters every fit uses: the configured ones plus threads, a seed and determinism."""
    params = dict(settings.params)
    params.setdefault("verbose", -1)
    params["num_threads"] = settings.num_threads
    params.setdefault("seed", 0)
    params.setdefault("deterministic", True)
    return params


def fit_lightgbm(features: pd.DataFrame, target: np.ndarray, settings: TrainingSettings) -> lgb.Booster:
    data = lgb.Dataset(features, label=target, free_raw_data=True)
    return lgb.train(lightgbm_params(settings), data, num_boost_round=settings.num_boost_round)


def check_lightgbm_params(settings: TrainingSettings) -> None:
    """Let LightGBM itself judge ``training.params`` (an unknown objective, a bad value) on a
    tiny dataset in milliseconds, so a typo fails before the ingest, not after it."""
    rng = np.random.default_rng(0)
    tiny = lgb.Dataset(rng.random((64, 2)), label=rng.random(64), params={"verbose": -1})
    params = {**lightgbm_params(settings), "num_threads": 1}
    try:
        lgb.train(params, tiny, num_boost_round=1)
    except lgb.basic.LightGBMError as exc:
        raise BadInputError(f"training.params are refused by LightGBM ({str(exc).strip()}); fix them in "
                            "[training] params (NUMERFLOW_TRAINING__PARAMS); parameters: "
                            "https://lightgbm.readthedocs.io/en/latest/Parameters.html", tag="invalid_config") from None


def new_model_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%S%fZ")


def save_model(store: Store, model_id: str, booster: lgb.Booster, meta: dict) -> Path:
    """Write model then metadata; meta.json last (with the model file's sha256), so a model dir
    without it is incomplete and ignored, and a model file damaged later is detected."""
    model_dir = store.model_dir(model_id)
    write_with(model_dir / MODEL_FILE, lambda tmp: booster.save_model(str(tmp)))
    write_json(model_dir / META_FILE, {**meta, "model_sha256": file_sha256(model_dir / MODEL_FILE)})
    return model_dir


def model_damage(model_dir: Path) -> str | None:
    """Why a registered model cannot be used (a truncated or edited model.txt), or None."""
    meta = read_json(model_dir / META_FILE)
    expected = meta.get("model_sha256")
    if expected is not None and file_sha256(model_dir / MODEL_FILE) != expected:
        return f"{model_dir / MODEL_FILE} does not match the sha256 recorded when it was trained (truncated or changed)"
    try:  # models registered before the sha256 was recorded: LightGBM must at least parse them
        lgb.Booster(model_file=str(model_dir / MODEL_FILE))
    except lgb.basic.LightGBMError as exc:
        return f"{model_dir / MODEL_FILE} cannot be read by LightGBM ({str(exc).strip()})"
    return None


def load_model(model_dir: Path) -> tuple[lgb.Booster, dict]:
    damage = model_damage(model_dir)
    if damage is not None:
        raise CorruptFileError(model_dir / MODEL_FILE, f"is damaged: {damage}; run with --retrain")
    meta = read_json(model_dir / META_FILE)
    return lgb.Booster(model_file=str(model_dir / MODEL_FILE)), meta


def latest_model(store: Store, model: str | None = None) -> Path | None:
    """Newest complete model directory (ids sort by creation time), or None. ``model``: the newest
    of that ``[[models]]`` entry (its lineage names it): each entry has its own lineage."""
    root = store.models_dir()
    if not root.exists():
        return None
    complete = sorted(p for p in root.iterdir() if (p / META_FILE).exists() and (p / MODEL_FILE).exists())
    if model is not None:
        complete = [p for p in complete if (read_json(p / META_FILE).get("lineage") or {}).get("model") == model]
    else:  # Numerai Classic's models (their lineage names them "classic:<name>") are never a Signals round's
        complete = [p for p in complete if not str((read_json(p / META_FILE).get("lineage") or {}).get("model")
                                                   or "").startswith(CLASSIC_MODEL_PREFIX)]
    return complete[-1] if complete else None


def latest_model_of(store: Store, tournament: str, entry_name: str | None, classic_label: str) -> Path | None:
    """The newest registered model of one model of the round: a Classic model by its registry label,
    a Signals/Crypto ``[[models]]`` entry by its name (None: the single configured model)."""
    return latest_model(store, classic_label if tournament == "classic" else entry_name)


def model_age_days(meta: dict, now: dt.datetime | None = None) -> float:
    now = now or dt.datetime.now(dt.UTC)
    created = dt.datetime.fromisoformat(meta["created_at"])
    return (now - created).total_seconds() / 86400.0


def needs_training(
    store: Store,
    max_age_days: float,
    feature_names: list[str],
    force: bool = False,
    now: dt.datetime | None = None,
    lineage: dict | None = None,
) -> tuple[bool, str]:
    """Whether a round must train: (decision, reason for the summary).

    ``lineage`` (data source, target and model settings) must equal the latest model's: a
    model trained on other data or with other parameters is never silently reused."""
    if force:
        return True, "retrain requested"
    latest = latest_model(store, (lineage or {}).get("model"))
    if latest is None:
        return True, "no model in the registry"
    damage = model_damage(latest)
    if damage is not None:  # set it aside (kept for a post-mortem) and train a new one
        quarantine(latest, damage)
        logger.warning("model %s is damaged, quarantined, retraining: %s", latest.name, damage)
        return True, f"model {latest.name} is damaged ({damage}); retraining"
    meta = read_json(latest / META_FILE)
    if meta.get("features") != feature_names:
        return True, f"model {latest.name} was trained on other features"
    if lineage is not None and meta.get("lineage") != lineage:
        changed = sorted(k for k in set(lineage) | set(meta.get("lineage") or {})
                         if lineage.get(k) != (meta.get("lineage") or {}).get(k))
        return True, f"model {latest.name} was trained with other settings ({', '.join(changed)})"
    age = model_age_days(meta, now)
    if age > max_age_days:
        return True, f"model {latest.name} is {age:.1f} days old (limit {max_age_days})"
    return False, f"reusing model {latest.name} ({age:.1f} days old)"


def package_versions() -> dict[str, str]:
    versions = {}
    for name in ["numerflow", "lightgbm", "pandas", "numpy", "pyarrow", "prefect", "numerai-tools"]:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@dataclass(frozen=True)
class TrainResult:
    model_id: str
    model_dir: str
    validation_predictions: str
    metrics: dict


def sampled_rows(dates: pd.Series, sample: str) -> np.ndarray:
    """Rows on the dates a model is fitted on: every date (``daily``), or the last trading day of
    each week among ``dates`` (``weekly``: weeks ending Friday, Numerai's eras)."""
    if sample == "daily":
        return np.ones(len(dates), dtype=bool)
    from numerflow.tasks.model.eras import weekly_era_dates

    return dates.isin(weekly_era_dates(dates)).to_numpy()


def read_training_rows(path: Path, settings: TrainingSettings) -> tuple[pd.DataFrame, DateSplit, np.ndarray]:
    """The dataset rows training needs, and nothing else: the split is made on every row's date and
    target columns alone, then only the sampled dates (``training.sample``) and the validation dates
    are read, filtered batch by batch as the file is scanned (tickers as categories). Returns those
    rows, the split's masks over them, and which of them are on the sampled dates."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    light = read_parquet(path, columns=["date", "target", "target_end_date"])
    has_target = light["target"].notna().to_numpy()
    split = purged_date_split(light["date"], light["target_end_date"], has_target, settings.validation_fraction,
                              settings.embargo_days)
    sampled = sampled_rows(light["date"], settings.sample)
    if settings.sample == "daily":
        rows = read_parquet(path, categorical=["ticker"])
    else:
        date_type = ds.dataset(path).schema.field("date").type
        wanted = pa.array(pd.DatetimeIndex(pd.unique(light.loc[sampled, "date"])).to_numpy()).cast(date_type)
        chosen = ds.field("date").isin(wanted) | (ds.field("date") >= pa.scalar(split.validation_start, date_type))
        rows = read_parquet(path, filter_expr=chosen, categorical=["ticker"])
    del light
    # The same split, on the rows read: the cutoff and validation start come from every row.
    has_target = rows["target"].notna().to_numpy()
    cutoff = split.validation_start - pd.Timedelta(days=settings.embargo_days)
    validation = has_target & (rows["date"] >= split.validation_start).to_numpy()
    # Before validation only the sampled dates were read; on the validation dates (all read), the
    # last of each week is: so the sample of the rows read is the sample of the whole file's.
    sampled = sampled_rows(rows["date"], settings.sample)
    train = has_target & (rows["target_end_date"] < cutoff).to_numpy() & sampled
    return rows, DateSplit(train, validation, split.validation_start, split.train_last_target_end), sampled


def train_and_register(
    store: Store, dataset_path: Path, settings: TrainingSettings, run_id: str, lineage: dict | None = None
) -> TrainResult:
    """Fit on the purged training dates (``training.sample``: weekly or daily), score every held-out
    date with Numerai's CORR, then (by default) refit on every labelled sampled date for live use,
    and register the model.

    Memory: only the sampled and validation rows are read; numeric features become one float32
    matrix that LightGBM reads in batches (``tasks.model.lightgbm_rows``): no float64 or pandas copy
    of the training rows is held beside LightGBM's binned data. Numerai's categorical features
    (country, exchange) go through a pandas frame instead (LightGBM maps their categories)."""
    from numerflow.tasks.model.dataset import feature_columns
    from numerflow.tasks.model.eras import era_metrics, feature_scores
    from numerflow.tasks.model.feature_sets import categorical_features, model_frame, numeric_features
    from numerflow.tasks.model.lightgbm_rows import fit_rows, predict_rows
    from numerflow.tasks.model.scoring import corr_and_fnc_by_date, diagnostics, feature_corr_by_date

    dataset, split, sampled = read_training_rows(dataset_path, settings)
    features = feature_columns(dataset)
    has_target = dataset["target"].notna().to_numpy()
    y = dataset["target"].to_numpy(dtype="float32", na_value=np.nan)
    numeric = numeric_features(features)
    if categorical_features(features):
        frame = model_frame(dataset, features)  # Numerai's country/exchange codes as LightGBM categoricals

        def fit(rows: np.ndarray) -> lgb.Booster:
            return fit_lightgbm(frame[rows], y[rows], settings)

        def predict(booster: lgb.Booster, rows: np.ndarray) -> np.ndarray:
            return np.asarray(booster.predict(frame[rows], num_threads=settings.num_threads))

        def numeric_values(rows: np.ndarray) -> np.ndarray:
            return dataset.loc[rows, numeric].to_numpy(dtype="float64", na_value=np.nan)
    else:
        matrix = dataset[features].to_numpy(dtype=np.float32, na_value=np.nan)
        dataset = dataset.drop(columns=features)  # the matrix holds them now
        params = lightgbm_params(settings)
        numeric_columns = np.array([features.index(f) for f in numeric], dtype=np.int64)

        def fit(rows: np.ndarray) -> lgb.Booster:
            return fit_rows(matrix, y, np.flatnonzero(rows), features, params, settings.num_boost_round)

        def predict(booster: lgb.Booster, rows: np.ndarray) -> np.ndarray:
            return predict_rows(booster, matrix, settings.num_threads, rows=np.flatnonzero(rows))

        def numeric_values(rows: np.ndarray) -> np.ndarray:
            return matrix[np.ix_(np.flatnonzero(rows), numeric_columns)].astype("float64")

    started = time.monotonic()
    booster = fit(split.train)
    fit_seconds = {"held_out": round(time.monotonic() - started, 1)}
    # numerai_date (Numerai's data date of each row, when training on its targets) is kept for ALPHA.
    keys = ["ticker", "date", "target", *[c for c in ("numerai_date", "alpha_target") if c in dataset.columns]]
    valid = dataset.loc[split.validation, keys].reset_index(drop=True)
    valid["ticker"] = as_strings(valid["ticker"])
    valid["prediction"] = predict(booster, split.validation)
    valid_features = numeric_values(split.validation)
    metrics = diagnostics(
        valid["prediction"].to_numpy(),
        valid["target"].to_numpy(dtype="float64"),
        valid_features,
        valid["date"].to_numpy(),
        numeric,
    )
    scored_names: tuple[str, ...] = ("corr", "fnc")
    if "score_target" in dataset.columns:  # trained on another target: also scored as Numerai shows CORR
        shown = corr_and_fnc_by_date(valid["prediction"].to_numpy(),
                                     dataset.loc[split.validation, "score_target"].to_numpy(dtype="float64",
                                                                                            na_value=np.nan),
                                     valid_features, valid["date"].to_numpy())
        metrics["per_date"]["corr_target"] = [None if np.isnan(v) else float(v) for v in shown["corr"].to_numpy()]
        metrics["per_date"]["fnc_target"] = [None if np.isnan(v) else float(v) for v in shown["fnc"].to_numpy()]
        scored_names = ("corr", "fnc", "corr_target", "fnc_target")
    span = target_span_trading_days(dataset.loc[has_target, ["date", "target_end_date"]])
    # Numerai-style figures: weekly eras (corr/fnc summaries), daily scores with overlap-adjusted SE.
    metrics.update(era_metrics(metrics["per_date"], span, scores=scored_names))
    predictions_path = write_parquet(store.predictions_path(run_id, "validation"), valid)

    # Gain importance of the held-out model (the one the metrics describe), as shares of the total.
    gains = booster.feature_importance(importance_type="gain")
    total = float(gains.sum()) or 1.0
    metrics["feature_importance"] = dict(sorted(((name, float(g) / total) for name, g in zip(features, gains,
                                                                                                strict=True)),
                                                key=lambda item: -item[1]))
    # Each feature's own CORR per validation date (the feature as the prediction) beside its importance.
    own_corr = feature_corr_by_date(valid_features, valid["target"].to_numpy(dtype="float64"),
                                    valid["date"].to_numpy(), numeric)
    del valid_features
    metrics = feature_scores(metrics, own_corr, span, "corr", metrics["feature_importance"])
    live_rows = has_target & sampled
    if settings.refit_on_all:  # the live model: the same sample, the validation dates included
        started = time.monotonic()
        booster = fit(live_rows)
        fit_seconds["live"] = round(time.monotonic() - started, 1)
    model_id = new_model_id()
    meta = {
        "model_id": model_id,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "features": features,
        "params": dict(settings.params),
        "num_boost_round": settings.num_boost_round,
        "dataset": str(dataset_path),
        "data_range": {
            "first_date": str(dataset["date"].min().date()),
            "last_labelled_date": str(dataset.loc[has_target, "date"].max().date()),
            "sample": settings.sample,
            "train_rows": int(split.train.sum()),
            "train_last_target_end": str(split.train_last_target_end.date()),
            "validation_start": str(split.validation_start.date()),
            "validation_rows": int(split.validation.sum()),
            "embargo_days": settings.embargo_days,
            "target_span_trading_days": span,
        },
        "refit_on_all": settings.refit_on_all,
        "live_rows": int(live_rows.sum()) if settings.refit_on_all else int(split.train.sum()),
        "fit_seconds": fit_seconds,  # wall time of each LightGBM fit (the live one is the refit, if any)
        "lineage": lineage,
        "validation_metrics": {k: v for k, v in metrics.items() if k not in ("per_date", "per_era",
                                                                               "per_date_features")},
        "versions": package_versions(),
        "validation_predictions": str(predictions_path),
    }
    model_dir = save_model(store, model_id, booster, meta)
    return TrainResult(model_id, str(model_dir), str(predictions_path), metrics)


def model_lineage(settings: Settings, source: str) -> dict:
    """What a model depends on besides its features: data source (and the demo market's
    parameters), target definition, and training settings that change the model."""
    training = settings.training.model_dump(include={"params", "num_boost_round", "validation_fraction",
                                                     "embargo_days", "refit_on_all", "feature_set", "sample"})
    lineage = {"source": source, "target": settings.target.model_dump(), "training": training,
               "tournament": settings.tournament}
    if settings.price_source == "demo":
        lineage["demo"] = settings.demo.model_dump()
    return lineage
