"""A model's prediction neutralisation in a round (``[neutralize]``, or a ``[[models]]`` entry's
``neutralize``; the method in ``tasks.model.neutralize``): after training, its validation predictions
are neutralised and its CORR and FNC (and ALPHA, scored next) recomputed on them, the figures before kept
beside (Classic: per era, CORR, FNC and MMC, in ``tasks.classic.neutralize``); at predict time its live predictions are neutralised the same way, with the proportion and
features the model recorded when it was trained (they are part of its lineage)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from numerflow.tasks.core.config import Settings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, read_json, read_parquet, write_json, write_parquet
from numerflow.tasks.model.eras import era_metrics, with_score
from numerflow.tasks.model.feature_sets import numeric_features
from numerflow.tasks.model.neutralize import against_columns, feature_values, neutralize, numeric_columns
from numerflow.tasks.model.predict import LivePredictions
from numerflow.tasks.model.scoring import corr_and_fnc_by_date, numerai_corr_by_date
from numerflow.tasks.model.training import META_FILE, TrainResult
from numerflow.tasks.numerai.data import numerai_live_path
from numerflow.tasks.numerai.neutralizer import NeutralizerFiles, validation_alpha
from numerflow.tasks.round.results import RoundInputs

log = logging.getLogger(__name__)

#: The metrics of the raw predictions that neutralisation makes stale (recomputed: CORR, FNC; the others dropped).
STALE_METRICS = ("corr", "fnc", "corr_target", "fnc_target", "feature_exposure", "rows", "daily", "per_date",
                 "per_era", "alpha", "alpha_scored_on", "per_date_alpha")


def neutralizing(settings: Settings) -> bool:
    return settings.neutralize.proportion > 0


def check_neutralize(settings: Settings) -> None:
    """What preflight can judge: ``numerai`` needs Numerai's features (Signals, Crypto), and means nothing
    more than ``own`` or feature names for Classic (whose features are all Numerai's)."""
    if not neutralizing(settings):
        return
    if settings.tournament == "classic":
        from numerflow.tasks.classic.neutralize import refuse_numerai

        refuse_numerai(list(settings.neutralize.against))
        return
    if "numerai" in settings.neutralize.against and settings.training.feature_set == "own":
        raise BadInputError("neutralize.against = [\"numerai\"] needs Numerai's features, and training.feature_set "
                            "is \"own\": set it to \"numerai\" or \"both\", or neutralise against \"own\"",
                            tag="invalid_config")


def lineage_entry(settings: Settings) -> dict[str, Any] | None:
    """The neutralisation a model's lineage records (None: off, and lineages stay as they were)."""
    return settings.neutralize.model_dump() if neutralizing(settings) else None


def _training_file(meta: dict) -> Path:
    """The file a model trained on (an ensemble's: its first member's)."""
    if meta.get("dataset"):
        return Path(meta["dataset"])
    first = read_json(Path(meta["members"][0]["model_dir"]) / META_FILE)
    return Path(first["dataset"])


def neutralize_validation(settings: Settings, trained: TrainResult, own_dataset: str,
                          files: NeutralizerFiles | None) -> TrainResult:
    """The model's validation predictions neutralised per date (written beside the raw ones, which its
    meta.json keeps as ``validation_predictions_raw``), its CORR and FNC recomputed on them, and the figures
    before (CORR, FNC, ALPHA when ``files`` score it) kept under ``neutralization.before``."""
    rules = settings.neutralize
    meta_path = Path(trained.model_dir) / META_FILE
    meta = read_json(meta_path)
    raw = Path(trained.validation_predictions)
    frame = read_parquet(raw)
    training_file = _training_file(meta)
    own = numeric_columns(Path(own_dataset))
    numerai = [c for c in numeric_columns(training_file) if c not in own]
    mine, theirs = against_columns(rules.against, own, numerai)
    exposures = np.hstack([feature_values(Path(own_dataset), frame, mine, on=("ticker", "date")),
                           feature_values(training_file, frame, theirs, on=("ticker", "date"))])
    frame["prediction"] = neutralize(frame["prediction"].to_numpy(), exposures, frame["date"].to_numpy(),
                                     rules.proportion)
    path = write_parquet(raw.with_name(f"{raw.stem}-neutralized.parquet"), frame)
    span = int(meta["data_range"].get("target_span_trading_days") or 0)
    before: dict[str, Any] = {"corr": trained.metrics.get("corr"), "fnc": trained.metrics.get("fnc"), "alpha": None}
    if files is not None:
        try:
            before["alpha"] = with_score({}, "alpha", validation_alpha(raw, files.neutralizer_path, files.weights_path),
                                         span)["alpha"]
        except BadInputError as exc:  # scoring is diagnostics: the round goes on
            log.warning("ALPHA before neutralisation not scored: %s", exc)
    scores = rescored(frame, training_file, meta["features"], fnc="fnc" in trained.metrics)
    per_date = {"date": [pd.Timestamp(d).date().isoformat() for d in scores.index],
                **{name: [None if np.isnan(v) else float(v) for v in scores[name].to_numpy()] for name in scores}}
    block: dict[str, Any] = {"proportion": rules.proportion, "against": list(rules.against), "features": [*mine, *theirs],
             "before": before}
    metrics = {**{k: v for k, v in trained.metrics.items() if k not in STALE_METRICS}, "per_date": per_date,
               **era_metrics(per_date, span, scores=tuple(scores.columns)), "neutralization": block}
    meta.update(validation_predictions=str(path), validation_predictions_raw=str(raw), neutralization=block,
                validation_metrics={k: v for k, v in metrics.items() if k not in ("per_date", "per_era",
                                                                                   "per_date_features")})
    write_json(meta_path, meta)
    log.info("Validation predictions neutralised (%.2f against %d features): CORR %s → %.5f", rules.proportion,
             len(block["features"]), (before["corr"] or {}).get("mean"), metrics["corr"]["mean"] or float("nan"))
    return replace(trained, validation_predictions=str(path), metrics=metrics)


def rescored(frame: pd.DataFrame, training_file: Path, features: list[str], *, fnc: bool) -> pd.DataFrame:
    """CORR per date of the neutralised validation predictions and, when the model was scored on it
    (not an ensemble), FNC against the model's numeric features (as training scored them)."""
    predictions, targets = frame["prediction"].to_numpy(), frame["target"].to_numpy(dtype="float64")
    dates = frame["date"].to_numpy()
    if not fnc:
        return numerai_corr_by_date(predictions, targets, dates).to_frame("corr")
    numeric = [f for f in numeric_features(features) if f in set(numeric_columns(training_file))]
    values = feature_values(training_file, frame, numeric, on=("ticker", "date")).astype("float64")
    return corr_and_fnc_by_date(predictions, targets, values, dates)


def neutralize_live(settings: Settings, inputs: RoundInputs, live: LivePredictions, model_dir: str) -> LivePredictions:
    """The live predictions neutralised as the model's validation ones were (its meta.json's
    ``neutralization``: proportion and features), written beside the raw ones."""
    block = read_json(Path(model_dir) / META_FILE).get("neutralization")
    if not block:
        raise BadInputError(f"the model in {model_dir} was trained without neutralisation, which the settings ask "
                            "for: retrain it (--retrain)", tag="no_model")
    if settings.tournament == "classic":
        from numerflow.tasks.classic.neutralize import neutralize_classic_live

        assert inputs.data is not None  # a Classic round always has Numerai's files
        frame = neutralize_classic_live(block, Path(inputs.data.live), read_parquet(Path(live.path)))
        path = write_parquet(Path(live.path).with_name(f"{Path(live.path).stem}-neutralized.parquet"), frame)
        return replace(live, path=str(path))
    assert inputs.dataset is not None  # a Signals/Crypto round always builds its dataset
    frame = read_parquet(Path(live.path))
    own = Path(inputs.dataset.path)
    mine = [c for c in block["features"] if c in set(numeric_columns(own))]
    theirs = [c for c in block["features"] if c not in mine]
    numerai_live = numerai_live_path(Store(settings.data_dir), inputs.universe)
    if theirs and numerai_live is None:
        raise BadInputError(f"the model is neutralised against Numerai's features {theirs[:5]}, which only the "
                            "round's live.parquet holds: run a live round", tag="feature_mismatch")
    exposures = np.hstack([feature_values(own, frame, mine, on=("ticker", "date")),
                           feature_values(Path(numerai_live), frame, theirs, on=("ticker",))
                           if theirs and numerai_live is not None else np.empty((len(frame), 0), dtype="float32")])
    frame["prediction"] = neutralize(frame["prediction"].to_numpy(), exposures, np.zeros(len(frame)),
                                     float(block["proportion"]))
    path = write_parquet(Path(live.path).with_name(f"{Path(live.path).stem}-neutralized.parquet"), frame)
    return replace(live, path=str(path))
