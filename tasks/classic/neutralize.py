"""A Classic model's prediction neutralisation (its ``neutralize = {proportion, against}``): each era's
predictions less ``proportion`` of their least-squares fit on Numerai's int8 features plus a constant
(``tasks.model.neutralize.neutralize``, numerai-tools' ``neutralize`` per era), applied alike to the
validation predictions (per ``era``) and to the live ones (one era), so the validation figures describe
what is uploaded.

``against`` for Classic: ``own`` is the Classic features the model trains on (its feature set); feature
names are any ``feature_*`` columns of Numerai's Classic files, in the model's set or not.

Memory: the features stay int8 as read; the neutraliser converts one era's rows at a time to float64
(~5,000 rows × 700 features: 28 MB), never the whole validation panel.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from numerflow.tasks.classic.data import ClassicFiles, read_classic_frame
from numerflow.tasks.classic.scoring import classic_metrics
from numerflow.tasks.classic.training import _summary, feature_matrix
from numerflow.tasks.core.config import NeutralizeSettings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import read_json, read_parquet, write_json, write_parquet
from numerflow.tasks.model.neutralize import against_columns, neutralize, numeric_columns
from numerflow.tasks.model.training import META_FILE, TrainResult

log = logging.getLogger(__name__)

#: The validation figures neutralisation recomputes; the ones before are kept under ``neutralization.before``.
RESCORED = ("corr", "fnc", "mmc")


def refuse_numerai(against: list[str]) -> None:
    """``numerai`` means Numerai's features beside numerflow's own (Signals, Crypto); every Classic feature is
    Numerai's, so for Classic it is refused rather than read as all 2,000+ of them."""
    if "numerai" in against:
        raise BadInputError("neutralize.against = [\"numerai\"] is for Signals and Crypto: a Classic model is "
                            "neutralised against \"own\" (the Classic features it trains on) and/or named "
                            "feature_* columns of Numerai's Classic data", tag="invalid_config")


def classic_against(against: list[str], model_features: list[str], data_file: Path) -> list[str]:
    """``against`` resolved to feature columns: ``own`` → the model's features; a name → that ``feature_*``
    column of ``data_file`` (Numerai's Classic file). ``numerai`` and unknown names are refused."""
    refuse_numerai(against)
    others = [c for c in numeric_columns(data_file) if c not in set(model_features)]
    mine, theirs = against_columns(against, model_features, others)
    return [*mine, *theirs]


def neutralize_classic_validation(rules: NeutralizeSettings, trained: TrainResult, files: ClassicFiles) -> TrainResult:
    """The model's validation predictions neutralised per era (written beside the raw ones, which its meta.json
    keeps as ``validation_predictions_raw``), CORR, FNC and MMC recomputed on them, and the figures before and
    after kept under ``neutralization``."""
    meta_path = Path(trained.model_dir) / META_FILE
    meta = read_json(meta_path)
    features = list(meta["features"])
    against = classic_against(list(rules.against), features, Path(files.validation))
    raw = Path(trained.validation_predictions)
    frame = read_parquet(raw)
    target = str(trained.metrics["scored_on"])
    columns = [*features, *[c for c in against if c not in set(features)]]
    validation = read_classic_frame(Path(files.validation), columns, [target])
    valid = validation.loc[validation[target].notna().to_numpy()]  # the rows training scored, in its order
    del validation
    if not np.array_equal(valid.index.astype(str).to_numpy(), frame["id"].astype(str).to_numpy()):
        raise BadInputError(f"{files.validation} no longer matches the model's validation predictions ({raw}): "
                            "Numerai's file changed since training; retrain (--retrain)", tag="invalid_classic_data")
    eras = frame["era"].astype(str).to_numpy()
    frame["prediction"] = neutralize(frame["prediction"].to_numpy(), feature_matrix(valid, against), eras,
                                     rules.proportion)
    path = write_parquet(raw.with_name(f"{raw.stem}-neutralized.parquet"), frame)
    meta_model = frame["meta_model"].to_numpy(dtype=np.float64) if "meta_model" in frame.columns else None
    after = classic_metrics(frame["prediction"].to_numpy(), valid, target, features, meta_model=meta_model)
    block: dict[str, Any] = {
        "proportion": rules.proportion, "against": list(rules.against), "features": against,
        "before": {k: trained.metrics.get(k) for k in RESCORED if k in trained.metrics},
        "after": {k: after.get(k) for k in RESCORED if k in after}}
    metrics = {**trained.metrics, **after, "neutralization": block}
    meta.update(validation_predictions=str(path), validation_predictions_raw=str(raw), neutralization=block,
                validation_metrics=_summary(metrics))
    write_json(meta_path, meta)
    log.info("Validation predictions neutralised per era (%.2f against %d features): CORR %s → %s",
             rules.proportion, len(against), (block["before"].get("corr") or {}).get("mean"),
             (block["after"].get("corr") or {}).get("mean"))
    return replace(trained, validation_predictions=str(path), metrics=metrics)


def neutralize_classic_live(block: dict[str, Any], live_file: Path, predictions: pd.DataFrame) -> pd.DataFrame:
    """``predictions`` (``id, prediction``) neutralised against ``live_file``'s features as the model's
    validation ones were (``block``: its meta.json's ``neutralization``); the live file is one era."""
    features = list(block["features"])
    live = read_classic_frame(Path(live_file), features, [])
    positions = live.index.astype(str).get_indexer(predictions["id"].astype(str))
    if (positions < 0).any():
        missing = predictions["id"][positions < 0].head(3).tolist()
        raise BadInputError(f"live predictions for ids not in {live_file} (e.g. {missing}): predict this round's "
                            "live file again", tag="invalid_data")
    exposures = feature_matrix(live, features)[positions]
    out = predictions.copy()
    out["prediction"] = neutralize(predictions["prediction"].to_numpy(), exposures, np.zeros(len(out)),
                                   float(block["proportion"]))
    return out
