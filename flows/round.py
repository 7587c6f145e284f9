"""One round engine for Signals, Crypto and Classic, top to bottom:

    preflight → the tournament's shared stages → train (or reuse) → per model: predict → validate → upload

    live: the round's payout configuration (every model's payout preview); numerai.upload_diagnostics:
    each (re)trained model's diagnostics uploaded beside the models' stages, polled at the end

    Signals, Crypto: universe → resolution → ingest (or the prepared prices) → news → dataset
    Classic:         data (Numerai's files) → live ids

Each step is a named stage (its own failure point in the UI and the webhook). What differs between
tournaments is a ``Tournament`` (tasks/round/tournaments.py); demo or live is a ``RoundKind``.
Every model of the round (``RoundModel``: the ``[[models]]`` table, or the single configured
model) trains or reuses, predicts, validates and uploads on its own; a table entry's failure is
kept as a ``ModelFailure`` and never stops the others. ``round_flow`` is the ad-hoc run
(``numerflow run``); flows/scheduled.py adds the guard and the run report.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Any, Literal

from prefect import flow, get_run_logger

from numerflow.flows.news import news_stage, news_wanted
from numerflow.flows.prices import prices_flow, task_runner_for
from numerflow.flows.round_tasks import (
    build_dataset_task,
    classic_data_task,
    classic_demo_data_task,
    classic_live_ids_task,
    demo_neutralizer_task,
    demo_numerai_targets_task,
    demo_universe_task,
    diagnostics_task,
    neutralize_classic_validation_task,
    neutralize_live_task,
    neutralize_validation_task,
    numerai_neutralizer_task,
    numerai_targets_task,
    numerai_universe_task,
    predict_live_task,
    publish_report_task,
    record_demo_upload,
    resolve_tickers_task,
    round_payout_task,
    round_window_task,
    submission_verdict_task,
    train_classic_task,
    train_model_task,
    upload_diagnostics_task,
    upload_submission_task,
    validation_alpha_task,
    validation_mmc_task,
    write_submission_task,
)
from numerflow.flows.stages import STAGE_ECHO, StageFailed, current_stage, stage
from numerflow.tasks.classic.data import ClassicFiles
from numerflow.tasks.core.config import Settings, settings_overrides
from numerflow.tasks.core.errors import NumerflowError
from numerflow.tasks.core.store import Store, new_run_id
from numerflow.tasks.model.dataset import DatasetInfo
from numerflow.tasks.model.training import TrainResult
from numerflow.tasks.prices.configured import source_name
from numerflow.tasks.prices.ingest import ingest_dir, ingest_run_id
from numerflow.tasks.prices.progress import ProgressBar
from numerflow.tasks.round import classic, signals, verdict
from numerflow.tasks.round.models import RoundModel, failures_text, round_models
from numerflow.tasks.round.neutralization import neutralizing
from numerflow.tasks.round.results import (
    DiagnosticsOutcome,
    IngestSummary,
    ModelChoice,
    ModelFailure,
    ModelRun,
    PreparedRound,
    RoundInputs,
    RoundKind,
    RoundResult,
    TrainPlan,
)
from numerflow.tasks.round.submit import not_submitted, reused_choice, trained_choice
from numerflow.tasks.round.tournaments import Tournament, preflight, round_settings, tournament_of


@dataclass(frozen=True)
class RoundRun:
    """One run of the engine: the round's settings (and the overrides that made them: subflows
    rebuild their settings from them), its tournament, kind and models, and the run's options."""

    settings: Settings
    overrides: dict[str, Any]
    kind: RoundKind
    models: list[RoundModel]
    force: bool = False
    retrain: bool = False
    unattended: bool = False  # a failure is a StageFailed naming the stage
    prepared: bool = False  # the daily submit: the prices the prepare stored, no ingest
    run_id: str = ""

    @property
    def tournament(self) -> Tournament:
        return tournament_of(self.settings)


def new_round(overrides: dict[str, Any], kind: RoundKind, *, only: str | None = None, **options: Any) -> RoundRun:
    """A round of the settings ``overrides`` make (``only``: that [[models]] entry alone)."""
    settings = round_settings(overrides)
    models = round_models(settings, only)
    return RoundRun(settings, overrides, kind, models, run_id=new_run_id(), **options)


# ---------------------------------------------------------------- the chain


def run_round(run: RoundRun) -> RoundResult:
    """The whole round, stage by stage (call inside a flow): preflight, the shared stages once,
    then each model. The single configured model's failure is the round's error; a table entry's
    is kept in the result's ``failures`` (``raise_failures`` turns them into one error naming each)."""
    models, failures = preflight_stage(run)
    inputs = with_payout(run, shared_stages(run))
    chosen, failed = train_stage(run, models, dataset=inputs.dataset, files=inputs.data,
                                 round_number=inputs.universe.round_number)
    diagnostics = start_diagnostics(run, chosen)  # beside the models' stages: never delays an upload
    runs: list[ModelRun] = []
    for model, choice in chosen:
        try:
            runs.append(run_model(run, inputs, model, choice))
        except Exception as exc:  # noqa: BLE001 - one model never blocks the others; named in the result
            if not model.in_table:
                raise
            failed.append(ModelFailure.of(model.label, current_stage(), exc))
            get_run_logger().error("model %s failed: %s", model.label, failed[-1].message)
    outcomes = finish_diagnostics(diagnostics)
    runs = [replace(r, diagnostics=outcomes.get(r.name or "model")) for r in runs]
    return RoundResult(run.settings.tournament, run.kind.mode, inputs.universe, tuple(runs),
                       tuple(failures + failed), inputs.resolution, inputs.prices, inputs.dataset, inputs.data,
                       payout=inputs.payout)


def prepare_round(run: RoundRun) -> PreparedRound:
    """The daily prepare: the shared stages, then each model trained when due (else reused), so the
    submit after the open only predicts."""
    models, failures = preflight_stage(run)
    inputs = shared_stages(run)
    chosen, failed = train_stage(run, models, dataset=inputs.dataset, files=inputs.data,
                                 round_number=inputs.universe.round_number)
    finish_diagnostics(start_diagnostics(run, chosen))
    return PreparedRound(run.kind.mode, inputs.universe, inputs.prices, inputs.dataset,
                         {model.label: choice for model, choice in chosen}, tuple(failures + failed))


def preflight_stage(run: RoundRun) -> tuple[list[RoundModel], list[ModelFailure]]:
    with stage("preflight", unattended=run.unattended):
        return preflight(run.settings, run.models, run.kind.mode)


def shared_stages(run: RoundRun) -> RoundInputs:
    """What every model shares, once per round: the tournament's own stages."""
    return price_stages(run) if run.tournament.ingests_prices else classic_stages(run)


def price_stages(run: RoundRun) -> RoundInputs:
    """Signals, Crypto: universe → resolution → ingest (``prepared``: the stored prices) → news → dataset."""
    settings, demo, unattended = run.settings, run.kind.mode == "demo", run.unattended
    with stage("universe", unattended=unattended):
        universe = demo_universe_task(settings) if demo else numerai_universe_task(settings, run.kind.round_number)
    with stage("resolution", unattended=unattended):
        resolution = (signals.demo_resolution(settings, universe) if demo
                      else resolve_tickers_task(settings, universe))
    with stage("prices" if run.prepared else "ingest", unattended=unattended):
        prices = (signals.prepared_prices(settings, run.kind, universe) if run.prepared
                  else ingest_stage(run, universe, resolution.candidates_path))
    if demo:
        signals.release_demo_bars(settings)
    if news_wanted(settings, run.kind.mode, universe):  # headlines for the news_sentiment plug-in
        with stage("news", unattended=unattended):
            news_stage(settings, universe)
    with stage("dataset", unattended=unattended):
        dataset = build_dataset_task(settings, prices.source)
    return RoundInputs(universe, resolution, prices, dataset)


def classic_stages(run: RoundRun) -> RoundInputs:
    """Classic: Numerai's files (or the synthetic demo files) → their live ids as the round's universe."""
    settings = run.settings
    with stage("data", unattended=run.unattended):
        files = (classic_demo_data_task(settings) if run.kind.mode == "demo"
                 else classic_data_task(settings, run.kind.round_number))
    with stage("live ids", unattended=run.unattended):
        universe = classic_live_ids_task(settings, files, run.kind)
    return RoundInputs(universe, data=files)


def ingest_stage(run: RoundRun, universe: Any, candidates_path: str) -> IngestSummary:
    """The batched ingest subflow (``numerflow ingest``'s own) on the configured task runner, then
    the readiness check. With stage lines echoed (``numerflow run``): a progress bar."""
    settings = run.settings
    store, name = Store(settings.data_dir), source_name(settings)
    run_id = ingest_run_id(store, name)  # the unfinished run (resumed) or a new one, as the subflow would
    bar = (ProgressBar(ingest_dir(store, name) / "runs" / run_id, stream=STAGE_ECHO[0]) if STAGE_ECHO
           else contextlib.nullcontext())
    with bar:
        summary = subflow_result(prices_flow.with_options(task_runner=task_runner_for(settings))(
            overrides=run.overrides, candidates_path=candidates_path, run_id=run_id, return_state=True))
    return signals.ingested_prices(settings, run.kind, universe, summary)


def subflow_result(state: Any) -> Any:
    """A subflow's result, taken from its final state (raising its error when it failed). Returned as a
    value instead, Prefect would link it and everything in it (even interned strings such as its dict
    keys) to the subflow run, and every later task input holding an equal-identity value would show as
    "a flow run", an input Prefect's v1 UI cannot render (its Task Runs tab then shows no runs)."""
    return state.result()


def train_stage(run: RoundRun, models: list[RoundModel], *, dataset: DatasetInfo | None = None,
                files: ClassicFiles | None = None, round_number: int | None = None,
                ) -> tuple[list[tuple[RoundModel, ModelChoice]], list[ModelFailure]]:
    """The ``train`` stage for every model: plan each (train or reuse, by its own lineage), train
    those that must (several Signals models at once: each its own task on the configured task
    runner), reuse the rest. Each model's choice, and each table entry's failure."""
    chosen: list[tuple[RoundModel, ModelChoice]] = []
    failures: list[ModelFailure] = []

    @contextlib.contextmanager
    def alone(model: RoundModel) -> Any:
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - a table entry fails alone, named in the result
            if not model.in_table:
                raise
            failures.append(ModelFailure.of(model.label, "train", exc))

    with stage("train", unattended=run.unattended) as echo:
        plans: list[TrainPlan] = []
        for model in models:
            with alone(model):
                plans.append(plan_model(run, model, dataset, files, round_number))
        trained = train_together(run, [p for p in plans if p.must_train and files is None])
        for plan in plans:
            outcome = trained.get(plan.run_id)
            if isinstance(outcome, ModelFailure) and plan.model.in_table:  # failed in the train-models subflow
                failures.append(outcome)
                continue
            with alone(plan.model):
                chosen.append((plan.model, finish_model(run, plan, outcome, files, round_number)))
        if failures:  # the echo never says "train done" for models that did not train
            count = f"{len(failures)} of {len(models)} models failed: {', '.join(f.name for f in failures)}"
            echo.failed, echo.note = (count, None) if not chosen else (None, count)
    return chosen, failures


def plan_model(run: RoundRun, model: RoundModel, dataset: DatasetInfo | None, files: ClassicFiles | None,
               round_number: int | None) -> TrainPlan:
    if files is not None:
        return classic.plan_training(model, files, run.kind, retrain=run.retrain, run_id=run.run_id)
    assert dataset is not None
    mine = model_dataset(run, model, dataset)
    targets = (numerai_targets_task(model.settings, mine.path, round_number) if run.kind.mode == "live"
               else demo_numerai_targets_task(model.settings, mine.path))
    return signals.plan_training(model, mine, targets, retrain=run.retrain, run_id=run.run_id)


def model_dataset(run: RoundRun, model: RoundModel, shared: DatasetInfo) -> DatasetInfo:
    """A model's dataset: the round's, or for a table entry with its own feature groups the dataset of
    those. The snapshot id covers the feature sources, so each distinct configuration is built once: the
    next model with the same groups (or this one at predict time) finds it stored."""
    if signals.shared_dataset(run.settings, model):
        return shared
    return build_dataset_task(model.settings, source_name(model.settings))


def finish_model(run: RoundRun, plan: TrainPlan, trained: TrainResult | ModelFailure | None,
                 files: ClassicFiles | None, round_number: int | None) -> ModelChoice:
    """The model a plan ends with: the registry's (reuse), or the one trained, scored and reported."""
    if not plan.must_train:
        return reused_choice(plan)
    if isinstance(trained, ModelFailure):  # the single model failed in the train-models subflow
        raise StageFailed(trained.message)
    settings = plan.model.settings
    if files is not None:
        trained = train_classic_task(settings, files, list(plan.features), plan.lineage, plan.run_id)
        if neutralizing(settings):  # [neutralize]: the figures are of the neutralised predictions
            trained = neutralize_classic_validation_task(settings, trained, files)
    elif trained is None:
        trained = train_model_task(settings, plan.training_path, plan.run_id, plan.lineage, plan.members)
    metrics = trained.metrics
    if files is None:
        crypto = settings.tournament == "crypto"
        if crypto:  # Crypto scores MMC: it has no neutralizer, no ALPHA
            neutralizers = None
        elif run.kind.mode == "demo":
            neutralizers = demo_neutralizer_task(settings, trained.validation_predictions)
        else:
            neutralizers = numerai_neutralizer_task(settings, round_number)
        if neutralizing(settings):  # [neutralize]: the figures are of the neutralised predictions
            trained = neutralize_validation_task(settings, trained, plan.own_dataset, neutralizers)
        metrics = (validation_mmc_task(settings, trained, run.kind.mode) if crypto
                   else validation_alpha_task(settings, trained, neutralizers))
    report = publish_report_task(settings, trained.model_dir, metrics, plan.run_id)
    return trained_choice(plan, trained, metrics, report)


def train_together(run: RoundRun, plans: list[TrainPlan]) -> dict[str, TrainResult | ModelFailure]:
    """Several models at once in the ``train-models`` subflow: each one's result or failure. One model
    trains in the round's own flow."""
    if len(plans) < 2:
        return {}
    outcomes = subflow_result(train_models_flow.with_options(task_runner=task_runner_for(run.settings))(
        overrides=run.overrides, jobs=[{"model": p.model.label, "dataset_path": p.training_path, "run_id": p.run_id,
                                        "lineage": p.lineage, "members": p.members} for p in plans],
        return_state=True))
    return {p.run_id: o for p, o in zip(plans, outcomes, strict=True)}


@flow(name="train-models", log_prints=True)
def train_models_flow(overrides: dict[str, Any], jobs: list[dict[str, Any]]) -> list[TrainResult | ModelFailure]:
    """Several models at once, each its own ``train-model`` task on the flow's task runner (threads,
    or a Dask cluster: one Dask task per model). Per job its result, or why it failed.

    Args:
        overrides: the round's settings overrides (the settings are rebuilt from them).
        jobs: per model: its name, the dataset it trains on, its run id, lineage and ensemble members.
    """
    models = {m.label: m for m in round_models(round_settings(overrides))}
    futures = [train_model_task.submit(models[job["model"]].settings, job["dataset_path"], job["run_id"],
                                       job["lineage"], job.get("members")) for job in jobs]
    outcomes: list[TrainResult | ModelFailure] = []
    for job, future in zip(jobs, futures, strict=True):
        result = future.result(raise_on_failure=False)
        outcomes.append(ModelFailure.of(job["model"], "train", result) if isinstance(result, BaseException)
                        else result)
    return outcomes


def run_model(run: RoundRun, inputs: RoundInputs, model: RoundModel, choice: ModelChoice) -> ModelRun:
    """One model's stages after training: predict → validate → upload (``submit = false``: not uploaded)."""
    settings, suffix, unattended = model.settings, model.stage_suffix, run.unattended
    if inputs.dataset is not None:
        inputs = replace(inputs, dataset=model_dataset(run, model, inputs.dataset))
    with stage(f"predict{suffix}", unattended=unattended):
        live = predict_live_task(settings, inputs, choice.model_dir, model.run_id(run.run_id))
        if neutralizing(settings):  # as its validation predictions were
            live = neutralize_live_task(settings, inputs, live, choice.model_dir)
    with stage(f"validate{suffix}", unattended=unattended):
        verdict_checks = submission_verdict_task(model, live, inputs, choice.model_dir)
        submission = write_submission_task(model, live.path, inputs.universe, verdict_checks)
    with stage(f"upload{suffix}", unattended=unattended):
        if not model.submit:
            upload = not_submitted(model, submission)
        elif run.kind.mode == "demo":
            upload = record_demo_upload(settings, submission, inputs.universe.round_label)
        else:
            upload = upload_submission_task(settings, submission, run.force)
    return ModelRun(model.name, choice, live, submission, upload)


# ---------------------------------------------------------------- Numerai's verdict (tasks/round/verdict.py)


def with_payout(run: RoundRun, inputs: RoundInputs) -> RoundInputs:
    """Live: what Numerai pays this round, read once for every model's payout preview (a failure
    costs the preview only, and is logged)."""
    if run.kind.mode != "live":
        return inputs
    try:
        return replace(inputs, payout=round_payout_task(run.settings, inputs.universe.round_number))
    except Exception as exc:  # noqa: BLE001 - the preview is extra; the round goes on
        get_run_logger().warning("Numerai's payout configuration not read (no payout preview this round): %s", exc)
        return inputs


def start_diagnostics(run: RoundRun, chosen: list[tuple[RoundModel, ModelChoice]]) -> dict[str, Any]:
    """Each model's diagnostics (``numerai.upload_diagnostics``) started: a (re)trained model's validation
    predictions uploaded in a task that runs beside the models' own stages (a reused model uploads
    nothing). Per model: its settings and upload's future (None: nothing to upload), or why it has no
    diagnostics step."""
    started: dict[str, Any] = {}
    for model, choice in chosen:
        if not model.settings.numerai.upload_diagnostics:
            continue
        skipped = verdict.diagnostics_skipped(model.settings, run.kind.mode)
        if skipped:
            started[model.label] = DiagnosticsOutcome(model.label, "skipped", skipped)
            continue
        started[model.label] = (model.settings, upload_diagnostics_task.submit(model.settings, choice.model_dir)
                                if choice.trained else None)
    return started


def finish_diagnostics(started: dict[str, Any]) -> dict[str, DiagnosticsOutcome]:
    """Each model's diagnostics outcome: its upload's end, then its polls (every model's at once: this
    round's upload on the whole schedule, older pending ones once). A failure is the model's outcome
    (logged), never raised: the round's uploads stand."""
    outcomes: dict[str, DiagnosticsOutcome] = {}
    polls = {}
    for label, item in started.items():
        if isinstance(item, DiagnosticsOutcome):
            outcomes[label] = item
            continue
        settings, upload = item
        uploaded = upload.result(raise_on_failure=False) if upload is not None else None
        if isinstance(uploaded, BaseException):
            outcomes[label] = verdict.failed_diagnostics(label, uploaded)
            get_run_logger().warning("model %s: %s", label, outcomes[label].message)
            continue
        polls[label] = diagnostics_task.submit(settings, uploaded)
    for label, poll in polls.items():
        result = poll.result(raise_on_failure=False)
        if not isinstance(result, DiagnosticsOutcome):
            result = verdict.failed_diagnostics(label, result if isinstance(result, BaseException)
                                                else RuntimeError(str(result)))
            get_run_logger().warning("model %s: %s", label, result.message)
        outcomes[label] = result
    for label, outcome in outcomes.items():  # a disagreement with Numerai's scoring is a warning
        (get_run_logger().warning if outcome.flagged else get_run_logger().info)(
            "diagnostics of %s: %s", label, verdict.diagnostics_line(outcome))
    return outcomes


class ModelsFailed(NumerflowError):
    """Some models of the round failed (the others were submitted); the message names each."""

    tag = "models_failed"
    result: RoundResult | None = None  # what did succeed (the command line's --json shows it)


def raise_failures(result: RoundResult) -> RoundResult:
    """The round's result, or ``ModelsFailed`` naming each failed model and why."""
    if result.failures:
        done = ", ".join(f"{run.name} {run.upload.status}" for run in result.models) or "none"
        error = ModelsFailed(f"{len(result.failures)} of {len(result.failures) + len(result.models)} models failed "
                             f"in round {result.round_label} — {failures_text(result.failures)} (the others: {done})")
        error.result = result
        raise error
    return result


# ---------------------------------------------------------------- the ad-hoc flow


@flow(name="round", log_prints=True)
def round_flow(
    mode: Literal["demo", "live"] = "demo",
    tournament: Literal["signals", "crypto"] | None = None,
    model_name: str | None = None,
    force: bool = False,
    retrain: bool = False,
    tickers: int | None = None,
    years: float | None = None,
    signal: float | None = None,
    seed: int | None = None,
    data_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> RoundResult:
    """A whole round now (``numerflow run``): the demo market offline, or the live Numerai round
    (refused early when it is closed and keys are set). Options left empty take the configured value.

    Args:
        mode: "demo": the offline demo market; "live": this Numerai round.
        tournament: Numerai tournament; empty: the configured one (a Classic round is the classic-round flow).
        model_name: Numerai model name; empty: numerai.model_name. With a [[models]] table: run that
            model only.
        force: upload again even if this round was already submitted.
        retrain: train new models even when fresh ones exist.
        tickers: Demo only: number of tickers of the demo market; empty: demo.tickers.
        years: Demo only: years of daily bars of the demo market; empty: demo.years.
        signal: Demo only: planted signal strength (0 = pure noise); empty: demo.signal.
        seed: Demo only: random seed of the demo market; empty: demo.seed.
        data_dir: data store directory; empty: the configured data_dir.
        overrides: any settings as nested JSON; they win over numerflow.toml and the environment.
    """
    overrides = signals.mode_overrides(mode, settings_overrides(
        data_dir=data_dir, tournament=tournament, model_name=model_name, tickers=tickers, years=years, signal=signal,
        seed=seed, extra=overrides))
    return adhoc_round(overrides, mode, model_name=model_name, force=force, retrain=retrain)


def adhoc_round(overrides: dict[str, Any], mode: Literal["demo", "live"], *, model_name: str | None, force: bool,
                retrain: bool) -> RoundResult:
    """A round now, for any tournament: the window first (live), then the engine; fails naming each failed model."""
    run = new_round(overrides, RoundKind(mode), only=model_name, force=force, retrain=retrain)
    window = None
    if mode == "live":
        if run.tournament.ingests_prices:
            signals.check_live_price_source(run.settings)
        window = round_window_task(run.settings)
    result = run_round(run)
    return raise_failures(replace(result, window=window) if window is not None else result)

