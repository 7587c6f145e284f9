"""The stages of a Numerai Classic round, plain Python: its settings, Numerai's files (or the
synthetic demo files), the live ids as the round's universe, training on Numerai's int8 features,
the Classic report, live predictions and the checked ``id,prediction`` file.

No universe resolution and no price ingest: the data is Numerai's own (``tasks.classic.data``).
The live ids are written as the round's universe snapshot (``universe/classic/round-<n>.parquet``,
column ``id``), so the shared submit path checks the file against exactly this round's ids.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from numerflow.tasks.classic.data import ClassicFiles, write_live_ids
from numerflow.tasks.core.config import Settings, TrainingSettings, merge_overrides, settings_overrides
from numerflow.tasks.core.store import Store, read_json, read_parquet
from numerflow.tasks.model.predict import LivePredictions
from numerflow.tasks.model.training import META_FILE, TrainResult, check_lightgbm_params, needs_training
from numerflow.tasks.numerai.client import client_for
from numerflow.tasks.round.models import RoundModel
from numerflow.tasks.round.results import Mode, RoundInputs, RoundKind, TrainPlan, UniverseRef

TOURNAMENT = "classic"
log = logging.getLogger(__name__)


def classic_settings(settings: Settings) -> Settings:
    """The settings a Classic round runs with: tournament ``classic``, ``classic.model_name`` (when
    set) as the Numerai model the shared submit path uploads to, and no Signals ticker minimum
    (``submission.min_tickers``): a Classic file must hold every live id, which its own check
    and numerai-tools' ``validate_submission_numerai`` require."""
    numerai = settings.numerai
    if settings.classic.model_name:
        numerai = numerai.model_copy(update={"model_name": settings.classic.model_name})
    submission = settings.submission.model_copy(update={"min_tickers": 1})
    return settings.model_copy(update={"tournament": TOURNAMENT, "numerai": numerai, "submission": submission})


def classic_overrides(data_dir: str | None, model_name: str | None, quick: bool | None,
                      overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Settings overrides of a Classic run: its options over ``overrides`` (nested JSON)."""
    options = {k: v for k, v in {"model_name": model_name, "quick": quick}.items() if v is not None}
    extra = merge_overrides(overrides or {}, {"classic": options} if options else None)
    return settings_overrides(data_dir=data_dir, tournament=TOURNAMENT, extra=extra)


def check_classic_settings(settings: Settings) -> None:
    """What can be judged before anything runs: the targets' horizons and weights, and LightGBM's
    view of the parameters (a typo must not cost a download)."""
    from numerflow.tasks.classic.training import check_targets, lightgbm_setup

    check_targets(settings.classic)
    params, rounds = lightgbm_setup(settings.classic)
    check_lightgbm_params(TrainingSettings(params=params, num_boost_round=rounds))


def check_model(model: RoundModel, mode: Mode) -> None:
    from numerflow.tasks.round.neutralization import check_neutralize

    check_classic_settings(model.settings)
    check_neutralize(model.settings)


def demo_parameters(settings: Settings) -> dict[str, Any]:
    c = settings.classic
    return {"train_eras": c.demo_train_eras, "validation_eras": c.demo_validation_eras,
            "ids_per_era": c.demo_ids_per_era, "n_features": c.demo_features, "signal": c.demo_signal, "seed": 42}


def demo_key(settings: Settings) -> str:
    return hashlib.sha256(json.dumps(demo_parameters(settings), sort_keys=True).encode()).hexdigest()[:12]


def demo_label(settings: Settings) -> str:
    """The demo's round: one per set of demo parameters (its data never changes)."""
    return f"demo-{demo_key(settings)}"


# ---------------------------------------------------------------- data and live ids


def demo_data(settings: Settings) -> ClassicFiles:
    """The synthetic Classic dataset (Numerai's schemas, a planted signal), one folder per set of
    demo parameters (deterministic: the same parameters write the same files)."""
    from numerflow.tasks.classic.demo import write_demo_classic

    folder = Store(settings.data_dir).root / "numerai" / "classic-demo" / demo_key(settings)
    return write_demo_classic(folder, **demo_parameters(settings))


def live_data(settings: Settings, round_number: int | None) -> ClassicFiles:
    """Numerai's Classic files: the version from list_datasets, train and features once per version,
    validation and meta model again whenever Numerai's copy changed, live.parquet once per round."""
    from numerflow.tasks.classic.data import fetch_classic_data

    return fetch_classic_data(client_for(settings, TOURNAMENT), Store(settings.data_dir), round_number)


def live_ids(settings: Settings, files: ClassicFiles, kind: RoundKind) -> UniverseRef:
    """This round's live ids as its universe snapshot (column ``id``): what the submission must
    hold, each exactly once."""
    label = f"round-{files.round_number}" if kind.mode == "live" else demo_label(settings)
    path, rows = write_live_ids(Store(settings.data_dir), files.live, label)
    return UniverseRef(TOURNAMENT, label, str(path), rows, files.round_number if kind.mode == "live" else None,
                       f"{files.version}/live.parquet")


# ---------------------------------------------------------------- training


def lineage_source(files: ClassicFiles, lineage: dict[str, Any]) -> str:
    return f"numerai-classic:{files.version}:{lineage['feature_set']}"


def plan_training(model: RoundModel, files: ClassicFiles, kind: RoundKind, *, retrain: bool,
                  run_id: str) -> TrainPlan:
    """Train or reuse: reuse needs a fresh registry model of the same lineage (data version, feature
    set and its features, targets, weights, LightGBM settings; the demo's parameters)."""
    from numerflow.tasks.classic.data import load_feature_metadata
    from numerflow.tasks.classic.training import check_targets, classic_lineage, effective_feature_set

    settings = model.settings
    metadata = load_feature_metadata(files.features_json)
    features = metadata.feature_set(effective_feature_set(settings.classic))
    check_targets(settings.classic, metadata.targets)
    lineage = classic_lineage(settings, files.version, features,
                              demo=demo_parameters(settings) if kind.mode == "demo" else None)
    must, reason = needs_training(Store(settings.data_dir), settings.training.model_max_age_days, features,
                                  force=retrain, lineage=lineage)
    log.info("Training decision%s: %s", f" ({model.name})" if model.in_table else "", reason)
    return TrainPlan(model, lineage_source(files, lineage), lineage, must, reason, model.run_id(run_id),
                     features=tuple(features))


def train(settings: Settings, files: ClassicFiles, features: list[str], lineage: dict[str, Any],
          run_id: str) -> TrainResult:
    """Read the chosen feature set and targets (int8 / float32), train every target's model,
    score on validation (MMC against meta_model.parquet when published), register."""
    from numerflow.tasks.classic.data import read_classic_frame
    from numerflow.tasks.classic.training import train_classic

    targets = list(settings.classic.targets)
    train_frame = read_classic_frame(files.train, features, targets)
    validation = read_classic_frame(files.validation, features, targets)
    meta_model = None
    if files.meta_model is not None and Path(files.meta_model).exists():
        table = pd.read_parquet(files.meta_model, columns=["numerai_meta_model"])
        meta_model = table["numerai_meta_model"].rename(index=str)
    return train_classic(Store(settings.data_dir), train_frame, validation, features, settings.classic,
                         run_id=run_id, lineage=lineage, meta_model=meta_model,
                         num_threads=settings.training.num_threads)


def neutralize_validation(settings: Settings, trained: TrainResult, files: ClassicFiles) -> TrainResult:
    """The model's validation predictions neutralised per era, CORR, FNC and MMC recomputed, before kept."""
    from numerflow.tasks.classic.neutralize import neutralize_classic_validation

    return neutralize_classic_validation(settings.neutralize, trained, files)


def report(settings: Settings, model_dir: str, metrics: dict, run_id: str) -> dict[str, Any]:
    """The Classic validation report (per-era CORR, FNC, MMC) of a model trained this round."""
    from numerflow.tasks.classic.scoring import write_classic_report

    meta = read_json(Path(model_dir) / META_FILE)
    return {**write_classic_report(Store(settings.data_dir), run_id, metrics, meta),
            "description": f"Classic validation diagnostics of model {meta['model_id']}"}


# ---------------------------------------------------------------- live predictions and the submission


def predict(settings: Settings, inputs: RoundInputs, model_dir: str, run_id: str) -> LivePredictions:
    from numerflow.tasks.classic.data import read_classic_frame
    from numerflow.tasks.classic.live import write_live_predictions

    assert inputs.data is not None  # a Classic round always has Numerai's files
    features = list(read_json(Path(model_dir) / META_FILE)["features"])
    live = read_classic_frame(inputs.data.live, features, [])
    return write_live_predictions(Store(settings.data_dir), live, Path(model_dir), run_id,
                                  settings.training.num_threads)


def checked_submission(settings: Settings, predictions_path: str,
                       universe: UniverseRef) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``id,prediction`` (tie-kept ranks in (0, 1)), every live id exactly once, numerai-tools' validator."""
    from numerflow.tasks.classic.live import classic_submission, validate_classic_submission

    submission = classic_submission(read_parquet(Path(predictions_path)))
    ids = read_parquet(Path(universe.path), columns=["id"])["id"]
    return submission, validate_classic_submission(submission, ids)
