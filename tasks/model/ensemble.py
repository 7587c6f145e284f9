"""Multi-target ensembles: one model per target, rank-averaged with configurable weights.

Each member trains on its own file (the same rows and features, its own target and its own
purge: a 60-day member is purged on 60 days, a 20-day one on 20) and is registered as a model of
its own. The ensemble's prediction on a date is the weighted mean of the members' per-date
tie-kept ranks. The ensemble is registered last (so it is the registry's latest model):
``models/<id>/ensemble.json`` lists the members (target, weight, model dir); its ``model.txt``
is a copy of the first member's, so every registry reader sees a complete, loadable model
directory; ``predict_live`` predicts with every member.

The ensemble is scored (CORR per weekly era, daily, and ALPHA when a neutralizer is scored) on
the rows all members predicted, against the **first** target in the list: list the target you
want to be judged on (e.g. Numerai's payout target) first. Each member's own CORR is reported next
to it.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from numerflow.tasks.core.config import NumeraiSettings, TrainingSettings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.ranking import group_codes, rank_by_group
from numerflow.tasks.core.store import Store, read_json, read_parquet, write_json, write_parquet, write_with
from numerflow.tasks.model.eras import era_metrics
from numerflow.tasks.model.scoring import numerai_corr_by_date
from numerflow.tasks.model.training import (
    META_FILE,
    MODEL_FILE,
    TrainResult,
    new_model_id,
    package_versions,
    train_and_register,
)

ENSEMBLE_FILE = "ensemble.json"


def ensemble_weights(targets: Sequence[str], weights: Sequence[float] | None) -> list[float]:
    """Equal weights by default; else one finite, non-negative weight per target, not all zero."""
    if not weights:
        return [1.0 / len(targets)] * len(targets)
    if (len(weights) != len(targets) or not all(math.isfinite(w) and w >= 0 for w in weights)
            or sum(weights) <= 0):
        raise BadInputError(f"ensemble weights {list(weights)} do not fit the targets {list(targets)}: give one "
                            "non-negative weight per target (not all zero), or none for equal weights",
                            tag="invalid_config")
    total = float(sum(weights))
    return [float(w) / total for w in weights]


def check_model_targets(numerai: NumeraiSettings, own_targets_only: bool) -> None:
    """A model's targets and ensemble weights judged before any data moves. Each Numerai target name
    must carry its horizon (``numerai_target_horizon``) and the weights must fit the targets. A round
    on its own targets (the demo market, or ``use_numerai_targets = false``) has one target, its own
    20D2L return: naming another would be silently ignored, so it is refused."""
    from numerflow.tasks.model.targets import numerai_target_horizon

    targets = numerai.ensemble_targets or [numerai.target_column]
    if own_targets_only and (targets != ["target"] or numerai.ensemble_weights):
        raise BadInputError(f"targets {targets} name Numerai's targets, but this round trains on its own target (the "
                            "demo market, or numerai.use_numerai_targets = false), so they would be ignored: drop "
                            "target / ensemble_targets / ensemble_weights from this model, or run it live on "
                            "Numerai's targets", tag="invalid_targets")
    for target in targets:
        numerai_target_horizon(target)
    if len(set(targets)) != len(targets):
        raise BadInputError(f"ensemble targets {targets} list a target twice; list each once", tag="invalid_targets")
    ensemble_weights(targets, numerai.ensemble_weights)


# LightGBM objectives that cannot fit Numerai-style targets (ranks binned to 0, .25, .5, .75, 1), and why.
_UNFIT_OBJECTIVES = {
    **dict.fromkeys(("multiclass", "softmax", "multiclassova", "multiclass_ova", "ova", "ovr"),
                    "predicts one score per class, and the targets are ranks, not classes"),
    **dict.fromkeys(("lambdarank", "rank_xendcg", "xendcg", "xe_ndcg", "xe_ndcg_mart", "xendcg_mart"),
                    "ranks within query groups, which the dataset does not have"),
    "binary": "needs 0/1 labels, and the targets are ranks in [0, 1]",
    "gamma": "needs targets above 0, and the targets include 0",
}


def check_objective(params: dict) -> None:
    """A LightGBM objective that LightGBM accepts but that cannot fit these targets is refused before any
    data moves (LightGBM would fail mid-fit, or predict a matrix where one score per row is needed)."""
    objective = params.get("objective", params.get("objective_type", params.get("app", params.get("application"))))
    why = _UNFIT_OBJECTIVES.get(str(objective).strip().lower()) if isinstance(objective, str) else None
    if why:
        raise BadInputError(f"objective {objective!r} {why}: use objective = \"regression\" (or huber, l1, "
                            "cross_entropy)", tag="invalid_config")


def rank_average(predictions: Sequence[np.ndarray], weights: Sequence[float], dates: np.ndarray) -> np.ndarray:
    """Weighted mean of each member's per-date tie-kept ranks (rows aligned across members)."""
    codes = group_codes(dates)
    total = np.zeros(len(dates))
    for values, weight in zip(predictions, weights, strict=True):
        total += weight * rank_by_group(np.asarray(values, dtype=np.float64), codes)
    return total


def is_ensemble(model_dir: Path) -> bool:
    return (Path(model_dir) / ENSEMBLE_FILE).exists()


def ensemble_members(model_dir: Path) -> list[dict]:
    return read_json(Path(model_dir) / ENSEMBLE_FILE)["members"]


def train_ensemble(store: Store, members: Sequence[tuple[str, Path]], weights: Sequence[float] | None,
                   settings: TrainingSettings, run_id: str, lineage: dict | None = None) -> TrainResult:
    """Train one model per (target, training file), combine their held-out predictions, register."""
    if not members:
        raise BadInputError("an ensemble needs at least one target", tag="invalid_config")
    targets = [target for target, _ in members]
    if len(set(targets)) != len(targets):
        raise BadInputError(f"ensemble targets {targets} repeat a target", tag="invalid_config")
    shares = ensemble_weights(targets, weights)
    trained = [train_and_register(store, Path(path), settings, f"{run_id}-{target}",
                                  lineage={**(lineage or {}), "ensemble_member": target}) for target, path in members]

    # The held-out rows every member predicted; the first member's target scores the ensemble.
    keys = ["ticker", "date"]
    frames = [read_parquet(Path(r.validation_predictions)) for r in trained]
    combined = frames[0].rename(columns={"prediction": "prediction_0"})
    for i, frame in enumerate(frames[1:], start=1):
        combined = combined.merge(frame[[*keys, "prediction"]].rename(columns={"prediction": f"prediction_{i}"}),
                                  on=keys, how="inner")
    if combined.empty:
        raise BadInputError("the ensemble's members share no held-out rows", tag="not_enough_history")
    combined = combined.sort_values(keys, kind="stable").reset_index(drop=True)
    combined["prediction"] = rank_average([combined[f"prediction_{i}"].to_numpy() for i in range(len(trained))],
                                          shares, combined["date"].to_numpy())
    valid = combined[[c for c in ("ticker", "date", "target", "numerai_date", "prediction") if c in combined.columns]]
    corr = numerai_corr_by_date(valid["prediction"].to_numpy(), valid["target"].to_numpy(dtype="float64"),
                                valid["date"].to_numpy())
    member_metas = [read_json(Path(r.model_dir) / META_FILE) for r in trained]
    span = max(int(m["data_range"].get("target_span_trading_days") or 0) for m in member_metas)
    per_date = {"date": [pd.Timestamp(d).date().isoformat() for d in corr.index],
                "corr": [None if np.isnan(v) else float(v) for v in corr.to_numpy()]}
    metrics = {"per_date": per_date, **era_metrics(per_date, span, scores=("corr",)),
               "members": {target: r.metrics["corr"] for target, r in zip(targets, trained, strict=True)},
               "member_daily": {target: r.metrics["daily"]["corr"] for target, r in zip(targets, trained, strict=True)}}

    predictions_path = write_parquet(store.predictions_path(f"{run_id}-ensemble", "validation"), valid)
    first = member_metas[0]
    members_meta = [{"target": t, "weight": w, "model_id": r.model_id, "model_dir": r.model_dir}
                    for t, w, r in zip(targets, shares, trained, strict=True)]
    model_id, model_dir = register_ensemble(store, members_meta, {
        "features": first["features"],
        "data_range": {**first["data_range"], "target_span_trading_days": span,
                       "validation_rows": int(len(valid))},
        "lineage": lineage,
        "validation_metrics": {k: v for k, v in metrics.items() if k not in ("per_date", "per_era")},
        "validation_predictions": str(predictions_path),
    })
    return TrainResult(model_id, str(model_dir), str(predictions_path), metrics)


def register_ensemble(store: Store, members: list[dict], meta: dict) -> tuple[str, Path]:
    """Register an ensemble of already registered members (``target``, ``weight``, ``model_id``,
    ``model_dir`` each; the first is the target it is scored on) with ``meta`` (features, lineage,
    metrics, ...). Returns its id and directory, the registry's latest model.

    model.txt first (a copy of the first member's: the directory is a complete model for every
    registry reader), then ensemble.json, meta.json last (a directory without it is ignored)."""
    model_id = new_model_id()
    model_dir = store.model_dir(model_id)
    scored_on = members[0]["target"]
    full = {"model_id": model_id, "kind": "ensemble", "created_at": dt.datetime.now(dt.UTC).isoformat(),
            **meta, "members": members, "scored_on": scored_on, "versions": package_versions()}
    write_with(model_dir / MODEL_FILE, lambda tmp: shutil.copyfile(Path(members[0]["model_dir"]) / MODEL_FILE, tmp))
    write_json(model_dir / ENSEMBLE_FILE, {"members": members, "scored_on": scored_on})
    write_json(model_dir / META_FILE, full)
    return model_id, model_dir
