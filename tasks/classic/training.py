"""Numerai Classic training: an era split with an embargo on the target's horizon, LightGBM on
int8 features without a float64 copy, one model per target (rank-averaged), registry lineage.

Facts this module builds on (numerai/example-scripts, ``numerai/hello_numerai.ipynb`` and
``numerai/target_ensemble.ipynb``):

- eras are one week apart; a target's number is its horizon in trading days (``_20``: 20 days,
  ``_60``: 60; ``target`` looks 20 days ahead), so a 20-day target spans 4 eras and a 60-day one
  12. Numerai's notebooks drop ("embargo") the 4 eras after the last training era before
  validating a 20-day model. Here a training era ``e`` is kept only when
  ``e + horizon_eras + embargo_eras < first validation era``: no training label overlaps the
  validation period.
- the example model is ``LGBMRegressor(n_estimators=2000, learning_rate=0.01, max_depth=5,
  num_leaves=2**5-1, colsample_bytree=0.1)``: the ``[classic]`` defaults.
- ensembles: one model per target, each prediction percentile-ranked per era before averaging
  (``tasks.model.ensemble.rank_average``, the Signals ensembles' own).

Memory: features stay int8. LightGBM converts any non-float matrix to one float32 copy of the
whole thing; here it reads the rows through a ``lightgbm.Sequence`` instead, one float32 batch
at a time (``fit_classic``, through ``tasks.model.lightgbm_rows``, Signals' training's too), and predictions are made in batches too.

Registry: ``tasks.model.training``'s (``save_model``/``needs_training``/``latest_model``), a
lineage that names the dataset version, the feature set (and a hash of its features), the
targets, weights and LightGBM settings: a model of another version or feature set is never reused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from numerflow.tasks.core.config import ClassicSettings, Settings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, read_json, write_json, write_parquet
from numerflow.tasks.model.ensemble import ensemble_weights, rank_average, register_ensemble
from numerflow.tasks.model.lightgbm_rows import fit_rows, predict_rows
from numerflow.tasks.model.training import (
    CLASSIC_MODEL_PREFIX,
    META_FILE,
    TrainResult,
    new_model_id,
    package_versions,
    save_model,
)

#: Trading days per weekly era.
ERA_TRADING_DAYS = 5
#: ``target`` is Numerai's main target, 20 trading days ahead (hello_numerai: "targets look 20 days
#: (or 4 weeks/eras) into the future").
MAIN_TARGET_DAYS = 20


# --------------------------------------------------------------------------- horizons and eras


def target_horizon_days(target: str) -> int:
    """The target's horizon in trading days: ``target`` → 20, ``…_20`` → 20, ``…_60`` → 60."""
    if target == "target":
        return MAIN_TARGET_DAYS
    match = re.fullmatch(r"target_\w+?_(\d+)", target)
    if match is None:
        raise BadInputError(f"Classic target {target!r} has no horizon: use `target` (20 days) or a target named "
                            "like target_<name>_20 / target_<name>_60 ([classic] targets)", tag="invalid_config")
    return int(match.group(1))


def horizon_eras(target: str) -> int:
    """Weekly eras a target's window spans (20 days → 4, 60 → 12)."""
    return math.ceil(target_horizon_days(target) / ERA_TRADING_DAYS)


def era_numbers(eras: pd.Series | np.ndarray, what: str = "eras") -> np.ndarray:
    """Numerai's zero-padded era strings ("0001") as integers; anything else is refused."""
    values = pd.Series(np.asarray(eras)).astype(str)
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any():
        bad = values[numbers.isna()].unique()[:3].tolist()
        raise BadInputError(f"{what} must be Numerai's numbered eras (e.g. '0001'); got {bad}", tag="invalid_data")
    return numbers.to_numpy(dtype=np.int64)


@dataclass(frozen=True)
class EraSplit:
    """Which training rows a target's model may use, given the validation eras."""

    train: np.ndarray  # boolean mask over the training rows
    first_validation_era: int
    last_train_era: int
    horizon_eras: int
    embargo_eras: int  # horizon + extra: eras between the last training era and validation

    def as_dict(self) -> dict[str, int]:
        return {"first_validation_era": self.first_validation_era, "last_train_era": self.last_train_era,
                "horizon_eras": self.horizon_eras, "embargo_eras": self.embargo_eras,
                "train_rows": int(self.train.sum())}


def era_split(train_eras: pd.Series | np.ndarray, labelled: np.ndarray, validation_eras: pd.Series | np.ndarray,
              target: str, *, extra_embargo: int = 0, era_step: int = 1) -> EraSplit:
    """Training rows with a label whose era ends its target window before validation starts:
    ``era + horizon + extra_embargo < first validation era``; with ``era_step`` > 1, only every
    n-th era (counted from the first)."""
    horizon = horizon_eras(target)
    embargo = horizon + extra_embargo
    valid = era_numbers(validation_eras, "validation eras")
    if valid.size == 0:
        raise BadInputError(f"no validation rows have {target}; the validation file has no labelled eras",
                            tag="not_enough_history")
    first_valid = int(valid.min())
    eras = era_numbers(train_eras, "training eras")
    keep = np.asarray(labelled, dtype=bool) & (eras + embargo < first_valid)
    if era_step > 1 and keep.any():
        keep &= (eras - int(eras[keep].min())) % era_step == 0
    if not keep.any():
        raise BadInputError(f"no training era ends {embargo} eras before the first validation era {first_valid} "
                            f"({target}: {horizon} eras of horizon + {extra_embargo} extra); more training eras "
                            "are needed", tag="not_enough_history")
    return EraSplit(keep, first_valid, int(eras[keep].max()), horizon, embargo)


# --------------------------------------------------------------------------- LightGBM on int8


def feature_matrix(frame: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """The features as one C-ordered matrix in their own narrow type: int8 stays int8 (Classic's
    features), anything else becomes float32 (never float64)."""
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise BadInputError(f"{len(missing)} features are not in the data (e.g. {missing[:3]}); the model was "
                            "trained on another feature set or data version: retrain", tag="invalid_data")
    columns = frame[list(features)]
    dtype = np.int8 if all(t == np.int8 for t in columns.dtypes) else np.float32
    return columns.to_numpy(dtype=dtype)  # a view of read_classic_frame's int8 matrix, not a copy


def lightgbm_setup(settings: ClassicSettings, num_threads: int = 0) -> tuple[dict[str, Any], int]:
    """LightGBM parameters and boosting rounds: ``[classic]``'s, or quick mode's fewer, faster trees."""
    params = dict(settings.params)
    rounds = settings.num_boost_round
    if settings.quick:
        params["learning_rate"] = settings.quick_learning_rate
        rounds = settings.quick_num_boost_round
    params.setdefault("verbose", -1)
    params.setdefault("seed", 0)
    params.setdefault("deterministic", True)
    params["num_threads"] = num_threads
    return params, rounds


def fit_classic(frame: pd.DataFrame, features: Sequence[str], target: str, params: dict[str, Any],
                num_boost_round: int, rows: np.ndarray | None = None,
                matrix: np.ndarray | None = None) -> lgb.Booster:
    """Fit one LightGBM model on ``frame``'s int8 ``features`` against ``target``.

    ``frame``: ``tasks.classic.data.read_classic_frame``'s (era, int8 features, float32 targets).
    ``rows``: positions to train on (default: every row whose target is known; NaN targets are
    never used). ``matrix``: ``feature_matrix(frame, features)`` when the caller already holds it
    (several targets share one). The rows reach LightGBM as float32 batches
    (``tasks.model.lightgbm_rows.fit_rows``)."""
    labels = frame[target].to_numpy(dtype=np.float32, na_value=np.nan)
    positions = np.flatnonzero(~np.isnan(labels)) if rows is None else np.asarray(rows, dtype=np.int64)
    matrix = feature_matrix(frame, features) if matrix is None else matrix
    return fit_rows(matrix, labels, positions, features, params, num_boost_round, target)


# --------------------------------------------------------------------------- lineage and registry


def classic_model_label(settings: Settings) -> str:
    """The registry's name for this Classic model (its lineage's ``model``): its own history,
    apart from Signals models."""
    return f"{CLASSIC_MODEL_PREFIX}{settings.classic.model_name or settings.numerai.model_name or 'model'}"


def effective_feature_set(settings: ClassicSettings) -> str:
    return "small" if settings.quick else settings.feature_set


def classic_lineage(settings: Settings, data_version: str, features: Sequence[str], *,
                    demo: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a Classic model depends on: the dataset version, the feature set (and a hash of its
    features), targets and weights, and the settings that change the fit."""
    from numerflow.tasks.round.neutralization import lineage_entry

    classic = settings.classic
    params, rounds = lightgbm_setup(classic)
    params.pop("num_threads", None)
    lineage: dict[str, Any] = {
        "tournament": "classic",
        "model": classic_model_label(settings),
        "data_version": data_version,
        "feature_set": effective_feature_set(classic),
        "features_sha256": hashlib.sha256("\n".join(features).encode()).hexdigest(),
        "targets": list(classic.targets),
        "weights": ensemble_weights(classic.targets, classic.weights),
        "params": params,
        "num_boost_round": rounds,
        "quick": classic.quick,
        "era_step": classic.quick_era_step if classic.quick else 1,
        "extra_embargo_eras": classic.embargo_eras,
    }
    if lineage_entry(settings):  # a change of neutralisation retrains (the validation figures are of it)
        lineage["neutralize"] = lineage_entry(settings)
    if demo is not None:
        lineage["demo"] = demo
    return lineage


def check_targets(settings: ClassicSettings, available: Sequence[str] | None = None) -> list[float]:
    """Every configured target has a horizon, appears once, and (given ``available``) exists in
    the data; the weights fit them. Returns the weights."""
    for target in settings.targets:
        target_horizon_days(target)
    missing = [t for t in settings.targets if available is not None and t not in available]
    if missing:
        raise BadInputError(f"targets {missing} are not in this dataset's features.json (it has e.g. "
                            f"{list(available or [])[:5]}); fix [classic] targets", tag="invalid_config")
    if len(set(settings.targets)) != len(settings.targets):
        raise BadInputError(f"[classic] targets {settings.targets} repeat a target", tag="invalid_config")
    return ensemble_weights(settings.targets, settings.weights)


def train_classic(store: Store, train: pd.DataFrame, validation: pd.DataFrame, features: Sequence[str],
                  settings: ClassicSettings, *, run_id: str, lineage: dict[str, Any],
                  meta_model: pd.Series | None = None, num_threads: int = 0) -> TrainResult:
    """One model per target on the training eras its horizon allows, predicted on the validation
    eras (rows labelled in the first target), rank-averaged per era when there are several,
    scored (``tasks.classic.scoring``) and registered. Returns the registered model (an
    ensemble directory for several targets) with its metrics."""
    from numerflow.tasks.classic.scoring import classic_metrics

    targets = list(settings.targets)
    weights = check_targets(settings, [c for c in train.columns if c.startswith("target")])
    params, rounds = lightgbm_setup(settings, num_threads)
    scored_on = targets[0]
    valid_mask = validation[scored_on].notna().to_numpy()
    valid = validation.loc[valid_mask]
    valid_eras = valid["era"].astype(str).to_numpy()
    train_matrix = feature_matrix(train, features)
    valid_matrix = feature_matrix(valid, features)
    era_step = settings.quick_era_step if settings.quick else 1

    members: list[dict[str, Any]] = []
    predictions: list[np.ndarray] = []
    splits: list[EraSplit] = []
    for target in targets:
        split = era_split(train["era"], train[target].notna().to_numpy(), valid_eras, target,
                          extra_embargo=settings.embargo_eras, era_step=era_step)
        splits.append(split)
        booster = fit_classic(train, features, target, params, rounds, rows=np.flatnonzero(split.train),
                              matrix=train_matrix)
        predicted = predict_rows(booster, valid_matrix, num_threads)
        predictions.append(predicted)
        member_metrics = classic_metrics(predicted, valid, target, features)
        model_id = new_model_id()
        meta = _meta(model_id, features, params, rounds, {**lineage, "ensemble_member": target} if len(targets) > 1
                     else lineage, split.as_dict() | {"validation_rows": int(valid_mask.sum()), "target": target},
                     member_metrics)
        model_dir = save_model(store, model_id, booster, meta)
        members.append({"target": target, "weight": weights[len(members)], "model_id": model_id,
                        "model_dir": str(model_dir), "corr": member_metrics["corr"]})

    prediction = predictions[0] if len(targets) == 1 else rank_average(predictions, weights, valid_eras)
    frame = pd.DataFrame({"id": valid.index.astype(str), "era": valid_eras, "prediction": prediction,
                          "target": valid[scored_on].to_numpy(dtype=np.float64)})
    if meta_model is not None:
        frame["meta_model"] = meta_model.reindex(valid.index).to_numpy(dtype=np.float64)
    metrics = classic_metrics(prediction, valid, scored_on, features,
                              meta_model=frame["meta_model"].to_numpy() if meta_model is not None else None)
    if len(targets) > 1:
        metrics["members"] = {m["target"]: m["corr"] for m in members}
    predictions_path = write_parquet(store.predictions_path(run_id, "validation"), frame)
    if len(targets) == 1:
        model_dir = Path(members[0]["model_dir"])
        meta_path = model_dir / META_FILE
        meta = read_json(meta_path)
        meta["validation_metrics"] = _summary(metrics)
        meta["validation_predictions"] = str(predictions_path)
        write_json(meta_path, meta)
        return TrainResult(members[0]["model_id"], str(model_dir), str(predictions_path), metrics)
    model_id, model_dir = register_ensemble(store, [{k: m[k] for k in ("target", "weight", "model_id", "model_dir")}
                                                    for m in members], {
        "features": list(features),
        "params": params,
        "num_boost_round": rounds,
        # The widest embargo among the members (each member's own is in its meta).
        "data_range": {**max(splits, key=lambda s: s.embargo_eras).as_dict(), "validation_rows": int(valid_mask.sum()),
                       "last_train_era": max(s.last_train_era for s in splits)},
        "lineage": lineage,
        "validation_metrics": _summary(metrics),
        "validation_predictions": str(predictions_path),
    })
    return TrainResult(model_id, str(model_dir), str(predictions_path), metrics)


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k not in ("per_era",)}


def _meta(model_id: str, features: Sequence[str], params: dict[str, Any], rounds: int, lineage: dict[str, Any],
          data_range: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "model_id": model_id,
        "kind": "classic",
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "features": list(features),
        "params": {k: v for k, v in params.items() if k != "num_threads"},
        "num_boost_round": rounds,
        "data_range": data_range,
        "lineage": lineage,
        "validation_metrics": _summary(metrics),
        "versions": package_versions(),
    }
