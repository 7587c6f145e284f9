"""The Numerai Classic round, top to bottom:

    preflight → data → train (or reuse) → report → predict → validate → upload

The data is Numerai's own (``tasks.classic.data``: version discovery, downloads once per version,
live once per round; or ``tasks.classic.demo`` offline), so there is no universe resolution or
price ingest. Everything after the live file is the Signals round's machinery: the named stages
(``flows.round.stage``), the validation report artifact, the exactly-once upload through
``tasks.numerai.submit.submit_file`` (ledger, round window, dry run without keys) or the demo's
dry-run record, and the round guard (``flows.guard``) for unattended runs. The live ids are
written as the round's universe snapshot (``universe/classic/round-<n>.parquet``, column ``id``),
so the shared submit path checks the file against exactly this round's ids.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from numerflow.flows.guard import GuardDecision, demo_round_guard, live_round_guard
from numerflow.flows.policies import network_task
from numerflow.flows.results import ModelChoice, ModelRun, ReportPaths, RoundParts, SubmissionFile, UniverseRef
from numerflow.flows.round import (
    Mode,
    clear_interrupted_writes,
    record_demo_upload,
    round_window_task,
    stage,
    upload_submission_task,
)
from numerflow.flows.scheduled import notify_missed_round, notify_round_failure
from numerflow.tasks.classic.data import ClassicFiles, write_live_ids
from numerflow.tasks.core.config import Settings, TrainingSettings, load_settings, merge_overrides, settings_overrides
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, new_run_id, read_json
from numerflow.tasks.model.predict import LivePredictions
from numerflow.tasks.model.training import (
    META_FILE,
    TrainResult,
    check_lightgbm_params,
    latest_model,
    needs_training,
)
from numerflow.tasks.numerai.client import client_for
from numerflow.tasks.numerai.ledger import SubmissionLedger
from numerflow.tasks.numerai.submission import write_submission

TOURNAMENT = "classic"


@dataclass(frozen=True)
class ClassicRoundResult(RoundParts):
    """A whole Classic round: the data it used, the model run, the guard and Numerai's window."""

    mode: str
    universe: UniverseRef  # the live ids as the round's universe (path, rows, round, remote file)
    data: dict[str, Any]  # ClassicFiles as strings
    models: tuple[ModelRun, ...]
    failures: dict[str, str] = field(default_factory=dict)
    guard: GuardDecision | None = None
    window: dict[str, Any] | None = None


# ---------------------------------------------------------------- settings


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


def check_classic_settings(settings: Settings) -> None:
    """What can be judged before anything runs: the targets' horizons and weights, and LightGBM's
    view of the parameters (a typo must not cost a download)."""
    from numerflow.tasks.classic.training import check_targets, lightgbm_setup

    check_targets(settings.classic)
    params, rounds = lightgbm_setup(settings.classic)
    check_lightgbm_params(TrainingSettings(params=params, num_boost_round=rounds))


def preflight(settings: Settings) -> None:
    """``check_classic_settings``, and the temp files that killed runs left behind cleared."""
    check_classic_settings(settings)
    clear_interrupted_writes(settings)


def demo_parameters(settings: Settings) -> dict[str, Any]:
    c = settings.classic
    return {"train_eras": c.demo_train_eras, "validation_eras": c.demo_validation_eras,
            "ids_per_era": c.demo_ids_per_era, "n_features": c.demo_features, "signal": c.demo_signal, "seed": 42}


# ---------------------------------------------------------------- tasks: data


def demo_key(settings: Settings) -> str:
    return hashlib.sha256(json.dumps(demo_parameters(settings), sort_keys=True).encode()).hexdigest()[:12]


def demo_label(settings: Settings) -> str:
    """The demo's round: one per set of demo parameters (its data never changes)."""
    return f"demo-{demo_key(settings)}"


@task(name="classic-demo-data", retries=0, timeout_seconds=1800)
def demo_data_task(settings: Settings) -> ClassicFiles:
    """The synthetic Classic dataset (Numerai's schemas, a planted signal), one folder per set of
    demo parameters (deterministic: the same parameters write the same files)."""
    from numerflow.tasks.classic.demo import write_demo_classic

    folder = Store(settings.data_dir).root / "numerai" / "classic-demo" / demo_key(settings)
    return write_demo_classic(folder, **demo_parameters(settings))


@network_task(name="classic-data", timeout_seconds=3 * 3600)
def live_data_task(settings: Settings, round_number: int | None) -> ClassicFiles:
    """Numerai's Classic files: the version from list_datasets, train and features once per version,
    validation and meta model again whenever Numerai's copy changed, live.parquet once per round."""
    from numerflow.tasks.classic.data import fetch_classic_data

    return fetch_classic_data(client_for(settings, TOURNAMENT), Store(settings.data_dir), round_number)


@task(name="classic-live-ids", retries=0, timeout_seconds=600)
def universe_task(settings: Settings, files: ClassicFiles, mode: Mode) -> UniverseRef:
    """This round's live ids as its universe snapshot (column ``id``): what the submission must
    hold, each exactly once."""
    label = f"round-{files.round_number}" if mode == "live" else demo_label(settings)
    path, rows = write_live_ids(Store(settings.data_dir), files.live, label)
    return UniverseRef(TOURNAMENT, label, str(path), rows, files.round_number if mode == "live" else None,
                       f"{files.version}/live.parquet")


# ---------------------------------------------------------------- tasks: model


@dataclass(frozen=True)
class ClassicPlan:
    features: list[str]
    lineage: dict[str, Any]
    must_train: bool
    reason: str


def plan_training(settings: Settings, files: ClassicFiles, mode: Mode, retrain: bool) -> ClassicPlan:
    """Train or reuse: reuse needs a fresh registry model of the same lineage (data version, feature
    set and its features, targets, weights, LightGBM settings; the demo's parameters)."""
    from numerflow.tasks.classic.data import load_feature_metadata
    from numerflow.tasks.classic.training import check_targets, classic_lineage, effective_feature_set

    metadata = load_feature_metadata(files.features_json)
    features = metadata.feature_set(effective_feature_set(settings.classic))
    check_targets(settings.classic, metadata.targets)
    lineage = classic_lineage(settings, files.version, features, demo=demo_parameters(settings) if mode == "demo"
                              else None)
    must, reason = needs_training(Store(settings.data_dir), settings.training.model_max_age_days, features,
                                  force=retrain, lineage=lineage)
    get_run_logger().info("Training decision: %s", reason)
    return ClassicPlan(features, lineage, must, reason)


@task(name="train-classic-model", retries=0, timeout_seconds=6 * 3600)
def train_task(settings: Settings, files: ClassicFiles, features: list[str], lineage: dict[str, Any],
               run_id: str) -> TrainResult:
    """Read the chosen feature set and targets (int8 / float32), train every target's model,
    score on validation (MMC against meta_model.parquet when published), register."""
    from numerflow.tasks.classic.data import read_classic_frame
    from numerflow.tasks.classic.training import train_classic

    targets = list(settings.classic.targets)
    train = read_classic_frame(files.train, features, targets)
    validation = read_classic_frame(files.validation, features, targets)
    meta_model = None
    if files.meta_model is not None and Path(files.meta_model).exists():
        table = pd.read_parquet(files.meta_model, columns=["numerai_meta_model"])
        meta_model = table["numerai_meta_model"].rename(index=str)
    return train_classic(Store(settings.data_dir), train, validation, features, settings.classic, run_id=run_id,
                         lineage=lineage, meta_model=meta_model, num_threads=settings.training.num_threads)


@task(name="publish-report", retries=0, timeout_seconds=600)
def report_task(settings: Settings, model_dir: str, metrics: dict[str, Any], run_id: str) -> ReportPaths:
    from numerflow.tasks.classic.scoring import write_classic_report

    meta = read_json(Path(model_dir) / META_FILE)
    report = write_classic_report(Store(settings.data_dir), run_id, metrics, meta)
    create_markdown_artifact(report["markdown_text"], key="validation-report",
                             description=f"Classic validation diagnostics of model {meta['model_id']}")
    return ReportPaths(report["json"], report["markdown"], report["chart"])


def choose_model(settings: Settings, files: ClassicFiles, mode: Mode, retrain: bool, run_id: str) -> ModelChoice:
    plan = plan_training(settings, files, mode, retrain)
    source = f"numerai-classic:{files.version}:{plan.lineage['feature_set']}"
    if plan.must_train:
        trained = train_task(settings, files, plan.features, plan.lineage, run_id)
        report = report_task(settings, trained.model_dir, trained.metrics, run_id)
        return ModelChoice(trained.model_id, trained.model_dir, True, plan.reason, trained.metrics["corr"], source,
                           report)
    model_dir = latest_model(Store(settings.data_dir), plan.lineage["model"])
    if model_dir is None:  # needs_training said "reuse", so the registry has one
        raise BadInputError("the model registry is empty; run with --retrain", tag="no_model")
    meta = read_json(model_dir / META_FILE)
    return ModelChoice(meta["model_id"], str(model_dir), False, plan.reason, meta["validation_metrics"]["corr"],
                       source, None)


# ---------------------------------------------------------------- tasks: live


@task(name="predict-live", retries=0, timeout_seconds=1800)
def predict_task(settings: Settings, files: ClassicFiles, model_dir: str, run_id: str) -> LivePredictions:
    from numerflow.tasks.classic.data import read_classic_frame
    from numerflow.tasks.classic.live import write_live_predictions

    features = list(read_json(Path(model_dir) / META_FILE)["features"])
    live = read_classic_frame(files.live, features, [])
    return write_live_predictions(Store(settings.data_dir), live, Path(model_dir), run_id,
                                  settings.training.num_threads)


@task(name="write-submission", retries=0, timeout_seconds=600)
def submission_task(settings: Settings, predictions_path: str, universe: UniverseRef) -> SubmissionFile:
    """``id,prediction`` (tie-kept ranks in (0, 1)), every live id exactly once, numerai-tools'
    validator; written atomically only when every check passed."""
    from numerflow.tasks.classic.live import classic_submission, validate_classic_submission
    from numerflow.tasks.core.store import read_parquet

    submission = classic_submission(read_parquet(Path(predictions_path)))
    ids = read_parquet(Path(universe.path), columns=["id"])["id"]
    checks = validate_classic_submission(submission, ids)
    path, sha256 = write_submission(submission, Store(settings.data_dir).submission_dir(TOURNAMENT, universe.round_label)
                                    / "submission.csv")
    create_table_artifact([checks], key="submission-checks",
                          description=f"Classic submission checks, round {universe.round_label}")
    return SubmissionFile(str(path), sha256, int(checks["rows"]), checks)


# ---------------------------------------------------------------- the chain


def run_classic_round(settings: Settings, mode: Mode, *, force: bool = False, retrain: bool = False,
                      unattended: bool = False, round_number: int | None = None) -> ClassicRoundResult:
    """The whole Classic round, stage by stage (call inside a flow). ``settings``: ``classic_settings``'."""
    run_id = new_run_id()
    with stage("preflight", unattended=unattended):
        preflight(settings)
    with stage("data", unattended=unattended):
        files: ClassicFiles = (demo_data_task(settings) if mode == "demo"
                               else live_data_task(settings, round_number))
    with stage("live ids", unattended=unattended):
        universe = universe_task(settings, files, mode)
    with stage("train", unattended=unattended):
        model = choose_model(settings, files, mode, retrain, run_id)
    with stage("predict", unattended=unattended):
        live = predict_task(settings, files, model.model_dir, run_id)
    with stage("validate", unattended=unattended):
        submission = submission_task(settings, live.path, universe)
    with stage("upload", unattended=unattended):
        upload = (record_demo_upload(settings, submission, universe.round_label) if mode == "demo"
                  else upload_submission_task(settings, submission, force))
    data = {k: (str(v) if v is not None else None) for k, v in asdict(files).items()}
    return ClassicRoundResult(mode, universe, data, (ModelRun(settings.numerai.model_name, model, live, submission,
                                                              upload),))


@flow(name="classic-round", log_prints=True)
def classic_round_flow(
    mode: Literal["demo", "live"] = "demo",
    model_name: str | None = None,
    force: bool = False,
    retrain: bool = False,
    quick: bool | None = None,
    data_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> ClassicRoundResult:
    """A whole Numerai Classic round now (``numerflow run --tournament classic``): the synthetic
    Classic dataset offline (demo), or this round's Numerai data and upload (live; refused early
    when the round is closed and keys are set).

    Args:
        mode: "demo": the offline synthetic Classic dataset; "live": this Numerai Classic round.
        model_name: Numerai Classic model name; empty: classic.model_name, else numerai.model_name.
        force: upload again even if this round was already submitted.
        retrain: train a new model even when a fresh one of the same lineage exists.
        quick: the small feature set and fewer trees (minutes); empty: classic.quick.
        data_dir: data store directory; empty: the configured data_dir.
        overrides: any settings as nested JSON; they win over numerflow.toml and the environment.
    """
    settings = classic_settings(load_settings(**classic_overrides(data_dir, model_name, quick, overrides)))
    window = None
    if mode == "live":
        window = round_window_task(settings)
    result = run_classic_round(settings, mode, force=force, retrain=retrain)
    return replace(result, window=window) if window is not None else result


def classic_overrides(data_dir: str | None, model_name: str | None, quick: bool | None,
                      overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Settings overrides of a Classic run: its options over ``overrides`` (nested JSON)."""
    options = {k: v for k, v in {"model_name": model_name, "quick": quick}.items() if v is not None}
    extra = merge_overrides(overrides or {}, {"classic": options} if options else None)
    return settings_overrides(data_dir=data_dir, tournament=TOURNAMENT, extra=extra)


# ---------------------------------------------------------------- unattended


def classic_guard(settings: Settings, mode: Mode, force: bool) -> GuardDecision:
    """Should this firing run? Demo: not when the demo round was recorded. Live: not when the
    round is closed or too close to its close, nor when this model already submitted."""
    if mode == "demo":
        label = demo_label(settings)
        return demo_round_guard(Store(settings.data_dir).submission_dir(TOURNAMENT, label), label, force=force)
    current = client_for(settings, TOURNAMENT).current_round()
    name = settings.numerai.model_name
    entry = (SubmissionLedger.for_settings(settings).get(TOURNAMENT, current.number, name)
             if current is not None and name else None)
    return live_round_guard(current, entry, now=dt.datetime.now(dt.UTC), force=force,
                            min_time_left=dt.timedelta(minutes=settings.schedule.min_minutes_before_deadline))


def render_classic_report(result: ClassicRoundResult) -> str:
    """The run report of a Classic round (one Markdown artifact)."""
    model, upload = result.model, result.upload
    v = model.validation or {}

    def fmt(value: Any, spec: str = ".4f") -> str:
        return "—" if value is None else format(value, spec)

    lines = [f"# numerflow Classic round {result.round_label} ({result.mode})", "",
             f"- data {result.universe.dataset}: {result.universe.tickers} live rows"
             + (f"; validation data to era {result.data['validation_last_era']}"
                if result.data.get("validation_last_era") else ""),
             f"- model `{model.model_id}` ({'trained' if model.trained else 'reused'}: {model.decision})",
             f"- validation CORR per era: mean {fmt(v.get('mean'))}, sharpe {fmt(v.get('sharpe'), '.2f')}, "
             f"max drawdown {fmt(v.get('max_drawdown'))}, positive {fmt(v.get('positive_share'), '.0%')} "
             f"of {v.get('n_eras')} eras",
             f"- submission {result.submission.path} ({result.submission.rows} rows, sha256 "
             f"{result.submission.sha256[:12]})",
             f"- upload **{upload.status}**: {upload.message}"]
    if result.guard is not None:
        lines.insert(2, f"- guard: {result.guard.reason}")
    if model.report is not None:
        lines.append(f"- validation report: {model.report.markdown}")
    return "\n".join(lines) + "\n"


# No flow retries (the schedule's next firing retries; network tasks retry briefly); a failure or
# crash posts to the configured webhook naming the stage, as the Signals round does.
@flow(name="scheduled-classic", log_prints=True, retries=0, timeout_seconds=240 * 60,
      on_failure=[notify_round_failure], on_crashed=[notify_round_failure])
def scheduled_classic_flow(
    mode: Literal["live", "demo"] = "live",
    force: bool = False,
    retrain: bool = False,
    model_name: str | None = None,
    data_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """The Numerai Classic round, unattended (Tuesday-Saturday): skips at once when the round is
    closed or already submitted.

    Args:
        mode: "live": this Numerai Classic round (download, upload); "demo": the offline synthetic dataset.
        force: upload again even if this round was already submitted (never opens a closed round).
        retrain: train a new model even when a fresh one of the same lineage exists.
        model_name: Numerai Classic model name; empty: classic.model_name, else numerai.model_name.
        data_dir: data store directory; empty: the configured data_dir.
        overrides: any settings as nested JSON, e.g. {"classic": {"quick": true}}.
    """
    from prefect.states import Completed

    with stage("settings", unattended=True):
        settings = classic_settings(load_settings(**classic_overrides(data_dir, model_name, None, overrides)))
    with stage("guard", unattended=True):
        decision = classic_guard(settings, mode, force)
    if not decision.proceed:
        notify_missed_round(settings, decision, [None])  # once per round missed for time, as for Signals
        get_run_logger().info(decision.reason)
        return Completed(name="Skipped", message=decision.reason, data={"skipped": True, **decision.as_dict()})
    result = run_classic_round(settings, mode, force=force, retrain=retrain, unattended=True,
                               round_number=decision.round_number)
    result = replace(result, guard=decision)
    with stage("report", unattended=True):
        create_markdown_artifact(render_classic_report(result), key="round-report",
                                 description=f"numerflow Classic round {result.round_label}")
    return result


# ---------------------------------------------------------------- the CLI's summary


def classic_summary(result: ClassicRoundResult) -> dict[str, Any]:
    model, upload = result.model, result.upload
    return {
        "tournament": TOURNAMENT,
        "round": result.round_label,
        "mode": result.mode,
        "data": result.data,
        "live_rows": result.universe.tickers,
        "model": {"id": model.model_id, "trained": model.trained, "decision": model.decision},
        "validation": {k: model.validation.get(k) for k in ("mean", "std", "sharpe", "max_drawdown",
                                                             "positive_share", "n_eras")},
        "report": model.report.markdown if model.report else None,
        "submission": {"path": result.submission.path, "rows": result.submission.rows,
                       "sha256": result.submission.sha256},
        "upload": {"dry_run": upload.dry_run, "reason": upload.message, "record": upload.record,
                   "status": upload.status, "submission_id": upload.submission_id},
        "window": result.window,
    }


def render_classic_summary(s: dict[str, Any]) -> str:
    v = s["validation"]

    def fmt(value: Any, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    upload = s["upload"]
    return "\n".join([
        f"numerflow Classic round {s['round']} ({s['mode']})",
        f"  data        {s['data']['version']}: {s['live_rows']} live rows"
        + (f", validation to era {s['data']['validation_last_era']}" if s['data'].get('validation_last_era') else ""),
        f"  model       {s['model']['id']} ({s['model']['decision']})",
        f"  validation  CORR per era: mean {fmt(v.get('mean'), '.4f')}, sharpe {fmt(v.get('sharpe'), '.2f')}, "
        f"max drawdown {fmt(v.get('max_drawdown'), '.4f')}, positive {fmt(v.get('positive_share'), '.0%')} of "
        f"{v.get('n_eras')} eras",
        f"  submission  {s['submission']['path']} ({s['submission']['rows']} rows)",
        f"  upload      {upload['reason'] if str(upload['reason']).startswith('DRY RUN') else upload['status'] + ' — ' + str(upload['reason'])}",
        f"  report      {s['report'] or 'unchanged model: see its earlier report'}",
    ])
