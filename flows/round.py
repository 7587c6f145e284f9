"""One round, top to bottom, for the demo market and for Numerai alike:

    universe → resolution → ingest → dataset → train (or reuse) → predict → validate → upload

``run_round`` is the chain; each step is a named stage (its own failure point in the UI and
the webhook). What differs between a demo round and a live one is a ``RoundKind``: where the
universe comes from, how its ids become price-source symbols, what the model trains on, and
how the submission leaves (a dry-run record, or numerapi's upload once per round and model).
``round_flow`` is the ad-hoc run (``numerflow run``); flows/scheduled.py adds the guard and
the run report for unattended runs. Tasks state their retries and timeouts where they are
defined, and pass references (paths, ids, small dataclasses), never DataFrames.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from numerflow.flows.guard import DEMO_RECORD, demo_round_label
from numerflow.flows.news import news_stage, news_wanted
from numerflow.flows.policies import network_task
from numerflow.flows.prices import (
    ProgressBar,
    demo_market,
    lookup_with_yahoo,
    prices_flow,
    readiness,
    source_name,
    task_runner_for,
    with_unresolved,
)
from numerflow.flows.results import (
    IngestSummary,
    ModelChoice,
    ModelRun,
    NumeraiTargets,
    PreparedRound,
    ReportPaths,
    Resolution,
    RoundResult,
    SubmissionFile,
    UniverseRef,
)
from numerflow.tasks.core.config import (
    ModelSettings,
    Settings,
    load_settings,
    merge_overrides,
    model_table,
    settings_for_model,
    settings_overrides,
)
from numerflow.tasks.core.errors import BadInputError, NumerflowError
from numerflow.tasks.core.failures import describe_failure, note_stage
from numerflow.tasks.core.store import (
    Store,
    new_run_id,
    read_json,
    read_parquet,
    remove_stale_temp_files,
    safe_id,
    write_json,
    write_parquet,
)
from numerflow.tasks.model.dataset import DatasetInfo, build_dataset, feature_columns_of
from numerflow.tasks.model.ensemble import check_model_targets, check_objective, ensemble_weights, train_ensemble
from numerflow.tasks.model.eras import feature_scores, with_score
from numerflow.tasks.model.plugins import check_sources
from numerflow.tasks.model.predict import LivePredictions, predict_live
from numerflow.tasks.model.report import write_report
from numerflow.tasks.model.targets import numerai_target_horizon
from numerflow.tasks.model.training import (
    META_FILE,
    TrainResult,
    check_lightgbm_params,
    latest_model,
    model_lineage,
    needs_training,
    train_and_register,
)
from numerflow.tasks.numerai.churn import check_against_history, churn_message, record_submission
from numerflow.tasks.numerai.client import client_for, numerai_dir, require_open_window, tournament_spec
from numerflow.tasks.numerai.data import TRAIN_FILES, fetch_training_data, numerai_live_path, numerai_training_frame
from numerflow.tasks.numerai.neutralizer import (
    NEUTRALIZER_FILES,
    WEIGHT_FILES,
    NeutralizerFiles,
    fetch_neutralizer_files,
    validation_alpha,
    validation_feature_alpha,
    write_neutralizer_files,
)
from numerflow.tasks.numerai.submission import (
    build_submission,
    validate_submission,
    write_dry_run_record,
    write_submission,
)
from numerflow.tasks.numerai.submit import SubmitOutcome, read_submission_file, submit_file
from numerflow.tasks.numerai.universe import fetch_universe, load_universe_ids, write_universe
from numerflow.tasks.prices.ingest import (
    failing_tickers,
    ingest_dir,
    ingest_run_id,
    looked_up_symbols,
    remember_lookups,
    remembered_symbols,
)
from numerflow.tasks.prices.lookup import lookup_targets
from numerflow.tasks.prices.quality import universe_coverage
from numerflow.tasks.prices.tickers import (
    candidate_map,
    resolution_lines,
    resolution_report,
    resolution_summary,
    resolve_for_yahoo,
    universe_convention,
)

Mode = Literal["demo", "live"]

# ---------------------------------------------------------------- named stages

# Which stage each running round is in, by flow run id: read by the failure hook (flows/scheduled.py).
STAGES: dict[str, str] = {}


class StageFailed(NumerflowError):
    """A round stage failed; the message names the stage and the original cause."""

    tag = "stage_failed"


def _current_flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    return flow_run.id


#: Streams that get one line when each stage starts and one when it ends (``numerflow run``: stderr).
STAGE_ECHO: list[TextIO] = []


@contextlib.contextmanager
def echo_stages(stream: TextIO) -> Iterator[None]:
    """While inside: print each stage's start, and its end with the duration, to ``stream``."""
    STAGE_ECHO.append(stream)
    try:
        yield
    finally:
        STAGE_ECHO.remove(stream)


def _echo(line: str) -> None:
    for stream in STAGE_ECHO:  # write, not print: a flow's log_prints would send print() to the run log
        stream.write(line + "\n")
        stream.flush()


@dataclass
class StageOutcome:
    """What a stage's closing line says besides its duration: ``failed`` when its work failed without
    raising (every model of a train stage), else an optional ``note`` (1 of 3 models failed)."""

    failed: str | None = None
    note: str | None = None


@contextlib.contextmanager
def _timed(name: str) -> Iterator[StageOutcome]:
    _echo(f"numerflow: {name} …")
    started = time.monotonic()
    outcome = StageOutcome()
    try:
        yield outcome
    except BaseException as exc:
        note_stage(exc, name)  # the command line names the stage a failure (or Ctrl-C) left
        _echo(f"numerflow: {name} FAILED after {time.monotonic() - started:.1f} s")
        raise
    took = f"{time.monotonic() - started:.1f} s"
    if outcome.failed:
        _echo(f"numerflow: {name} FAILED after {took} ({outcome.failed})")
    else:
        _echo(f"numerflow: {name} done in {took}" + (f" ({outcome.note})" if outcome.note else ""))


@contextlib.contextmanager
def stage(name: str, *, unattended: bool = False) -> Iterator[StageOutcome]:
    """Name the running stage (logged, kept for the failure hook, and printed with its duration).

    ``unattended`` (the scheduled round): a failure is re-raised as ``StageFailed`` naming the
    stage. An ad-hoc run lets the original error through, so the CLI prints it as it is.
    """
    STAGES[_current_flow_run_id() or "local"] = name
    get_run_logger().info("stage %s", name)
    if not unattended:
        with _timed(name) as outcome:
            yield outcome
        return
    try:
        with _timed(name) as outcome:
            yield outcome
    except BadInputError as exc:
        raise StageFailed(f"stage '{name}' failed (bad input): {exc}") from exc
    except Exception as exc:
        raise StageFailed(f"stage '{name}' failed: {type(exc).__name__}: {exc}") from exc


# ---------------------------------------------------------------- what differs: the round's kind


class RoundKind(Protocol):
    """The parts of a round that differ between the demo market and a live Numerai round."""

    mode: Mode

    def universe(self, settings: Settings) -> UniverseRef: ...

    def resolve(self, settings: Settings, universe: UniverseRef) -> Resolution: ...

    def check_prices(self, settings: Settings, universe: UniverseRef, source: str) -> dict[str, Any] | None: ...

    def training_data(self, settings: Settings, dataset: DatasetInfo,
                      round_number: int | None) -> tuple[str, str, NumeraiTargets | None]: ...

    def upload(self, settings: Settings, submission: SubmissionFile, universe: UniverseRef,
               force: bool) -> SubmitOutcome: ...


class DemoRound:
    """The built-in market: its own universe (delisted tickers ingested too: survivorship-free
    history), ids that are their own symbols, our own targets, and a dry-run record."""

    mode: Mode = "demo"

    def universe(self, settings: Settings) -> UniverseRef:
        check_demo_settings(settings)
        return demo_universe_task(settings)

    def resolve(self, settings: Settings, universe: UniverseRef) -> Resolution:
        market = demo_market(settings)
        path = write_json(Path(universe.path).with_suffix(".candidates.json"),
                          {t: [t] for t in market.all_tickers()})
        return Resolution(str(path))

    def check_prices(self, settings: Settings, universe: UniverseRef, source: str) -> dict[str, Any] | None:
        return None  # the demo market is complete by construction

    def training_data(self, settings: Settings, dataset: DatasetInfo,
                      round_number: int | None) -> tuple[str, str, NumeraiTargets | None]:
        check_own_features(settings)
        return dataset.path, source_name(settings), None

    def upload(self, settings: Settings, submission: SubmissionFile, universe: UniverseRef,
               force: bool) -> SubmitOutcome:
        return record_demo_upload(settings, submission, universe.round_label)


class LiveRound:
    """A Numerai round: its live universe, ids resolved to Yahoo symbols, Numerai's targets when
    its training data is listed, and the real upload (once per round and model; a dry run
    without keys)."""

    mode: Mode = "live"

    def __init__(self, round_number: int | None = None) -> None:
        self.round_number = round_number  # None: the open round (the daily prepare names the next one)

    def universe(self, settings: Settings) -> UniverseRef:
        return numerai_universe_task(settings, self.round_number)

    def resolve(self, settings: Settings, universe: UniverseRef) -> Resolution:
        return resolve_tickers_task(settings, universe)

    def check_prices(self, settings: Settings, universe: UniverseRef, source: str) -> dict[str, Any] | None:
        ready = readiness(settings, universe_ids(universe).tolist(), source)
        get_run_logger().info("Price readiness: %s", ready)
        return ready

    def training_data(self, settings: Settings, dataset: DatasetInfo,
                      round_number: int | None) -> tuple[str, str, NumeraiTargets | None]:
        targets = numerai_targets_task(settings, dataset.path, round_number)
        if targets is None:
            return dataset.path, source_name(settings), None
        features = "" if settings.training.feature_set == "own" else f"+features:{settings.training.feature_set}"
        columns = targets.target_column
        if targets.members:
            weights = ensemble_weights([t for t, _ in targets.members], settings.numerai.ensemble_weights)
            columns = ",".join(f"{t}@{w:.3g}" for (t, _), w in zip(targets.members, weights, strict=True))
        return targets.path, f"{source_name(settings)}+numerai:{columns}{features}", targets

    def upload(self, settings: Settings, submission: SubmissionFile, universe: UniverseRef,
               force: bool) -> SubmitOutcome:
        return upload_submission_task(settings, submission, force)


def round_kind(mode: Mode, round_number: int | None = None) -> RoundKind:
    return DemoRound() if mode == "demo" else LiveRound(round_number)


def check_demo_settings(settings: Settings) -> None:
    """A demo round that cannot succeed is refused before anything is generated: another
    tournament, fewer tickers than a submission needs, or a market too big for this machine."""
    from numerflow.tasks.prices.sources.demo import check_demo_fits

    if settings.tournament != "signals":
        raise BadInputError(
            f"the demo market is a Signals market (stocks with numerai_ticker ids); it cannot run a "
            f"{settings.tournament} round: drop --tournament {settings.tournament} (or run it live without --demo)",
            tag="invalid_config")
    if settings.demo.tickers < settings.submission.min_tickers:
        raise BadInputError(f"--tickers {settings.demo.tickers} is below Numerai's minimum of "
                            f"{settings.submission.min_tickers} tickers per submission "
                            "(submission.min_tickers): use --tickers 100 or more", tag="invalid_option")
    check_demo_fits(settings.demo.tickers, settings.demo.years)


def mode_overrides(mode: Mode, overrides: dict[str, Any]) -> dict[str, Any]:
    """The settings overrides a round of ``mode`` runs with. A demo round never touches the network:
    Yahoo (the live commands' source, the default) becomes the demo market; ``files`` stays (offline)."""
    if mode == "demo" and load_settings(**overrides).price_source == "yahoo":
        return merge_overrides(overrides, {"price_source": "demo"})
    return overrides


def check_own_features(settings: Settings) -> None:
    """Numerai's features exist only in Numerai's training data and live.parquet."""
    if settings.training.feature_set != "own":
        raise BadInputError(
            f"training.feature_set = {settings.training.feature_set!r} needs Numerai's train/validation data and "
            "live.parquet, which this round does not use (the demo market, or Numerai's targets switched off): "
            "set training.feature_set = \"own\" or run a live Signals round", tag="invalid_config")


def check_live_price_source(settings: Settings) -> None:
    """Live rounds take Numerai's tickers from Yahoo (resolved to Yahoo symbols) or from the user's
    own files (keyed by Numerai's ids themselves); the demo market has no Numerai tickers."""
    if settings.price_source not in ("yahoo", "files"):
        raise BadInputError(
            f"live rounds ingest Numerai tickers through Yahoo or your own files (price_source is "
            f"{settings.price_source!r}); set price_source = \"yahoo\" or \"files\" (NUMERFLOW_PRICE_SOURCE) "
            "or run with --demo", tag="invalid_config")
    if settings.price_source == "files" and settings.files.path is None:
        raise BadInputError("price_source is \"files\" but files.path is not set: point NUMERFLOW_FILES__PATH "
                            "at your CSV/Parquet prices (docs/prices.md)", tag="invalid_config")


# ---------------------------------------------------------------- the chain


def run_round(settings: Settings, overrides: dict[str, Any], kind: RoundKind, *, force: bool = False,
              retrain: bool = False, unattended: bool = False,
              models: list[ModelSettings | None] | None = None, prepared: bool = False) -> RoundResult:
    """The whole round, stage by stage (call inside a flow). ``overrides`` made ``settings``:
    the ingest subflow rebuilds its settings from them (flow parameters must serialise).

    Universe, resolution, ingest and dataset run once; then each model of ``models`` (default:
    the whole ``model_table``) trains or reuses, predicts, validates and uploads on its own. With a
    ``[[models]]`` table one model's failure never stops the others: it is kept in the result's
    ``failures`` (``raise_failures`` turns them into one error naming each). The single
    configured model (no table) fails the round directly, as one model always did. ``prepared``
    (the daily submit): no ingest, the prices the prepare run stored are used as they are."""
    run_id = new_run_id()
    table, failures, universe, resolution, prices, dataset = shared_stages(
        settings, overrides, kind, model_table(settings) if models is None else models, unattended=unattended,
        prepared=prepared)
    runs: list[ModelRun] = []
    chosen = choose_models(settings, overrides, kind, dataset, universe.round_number, table, retrain=retrain,
                           run_id=run_id, unattended=unattended)
    for entry, choice in zip(table, chosen, strict=True):
        if entry is None:  # the single configured model: its errors are the round's (raised while choosing)
            assert not isinstance(choice, str)
            runs.append(run_model(settings, kind, dataset, universe, None, choice, force=force,
                                  unattended=unattended, run_id=run_id))
            continue
        try:
            if isinstance(choice, str):  # why it did not train, as it is (already one line)
                failures[entry.name] = choice
                get_run_logger().error("model %s failed: %s", entry.name, choice)
                continue
            mine = settings_for_model(settings, entry)
            runs.append(run_model(mine, kind, model_dataset(settings, mine, dataset), universe, entry, choice,
                                  force=force, unattended=unattended, run_id=run_id))
        except Exception as exc:  # noqa: BLE001 - one model never blocks the others; named below
            failures[entry.name] = describe_failure(exc)
            get_run_logger().error("model %s failed: %s", entry.name, failures[entry.name])
    return RoundResult(kind.mode, universe, resolution, prices, dataset, tuple(runs), failures)


def judge_models(settings: Settings, table: list[ModelSettings | None], mode: Mode
                 ) -> tuple[list[ModelSettings | None], dict[str, str]]:
    """Before any data moves, each model's own LightGBM parameters (a ``[[models]]`` entry's over
    ``[training]``; the single configured model's ``[training]``) judged by LightGBM, once, its
    targets and ensemble weights (``check_model_targets``, in every mode) and its feature sources
    (tables exist, plug-ins load: ``check_sources``). The single model's refusal
    is the round's error; an entry's fails that entry alone. So a top-level parameter that every
    entry overrides is never judged on its own. The entries that pass, and why each other one fails."""
    failures: dict[str, str] = {}
    for entry in table:
        try:
            mine = settings_for_model(settings, entry)
            check_objective(mine.training.params)  # first: its reason is about these targets, LightGBM's is generic
            check_lightgbm_params(mine.training)
            check_model_targets(mine.numerai, own_targets_only=mode == "demo" or not mine.numerai.use_numerai_targets)
            check_sources(mine.features)
        except BadInputError as exc:
            if entry is None:
                raise
            failures[entry.name] = describe_failure(exc)
    return [m for m in table if m is None or m.name not in failures], failures


def shared_stages(settings: Settings, overrides: dict[str, Any], kind: RoundKind, table: list[ModelSettings | None],
                  *, unattended: bool, prepared: bool = False,
                  ) -> tuple[list[ModelSettings | None], dict[str, str], UniverseRef, Resolution, IngestSummary,
                             DatasetInfo]:
    """The stages every model shares, once per round: preflight (which of ``table``'s models can
    run, and why the others cannot) → universe → resolution → ingest (``prepared``: the stored
    prices) → dataset."""
    with stage("preflight", unattended=unattended):
        table, failures = preflight(settings, table, kind.mode)
    with stage("universe", unattended=unattended):
        universe = kind.universe(settings)
    with stage("resolution", unattended=unattended):
        resolution = kind.resolve(settings, universe)
    with stage("prices" if prepared else "ingest", unattended=unattended):
        prices = (prepared_prices(settings, kind, universe) if prepared
                  else ingest_stage(settings, overrides, kind, universe, resolution))
    if news_wanted(settings, kind.mode, universe):  # headlines for the news_sentiment plug-in
        with stage("news", unattended=unattended):
            news_stage(settings, universe)
    with stage("dataset", unattended=unattended):
        dataset = build_dataset_task(settings, prices.source)
    return table, failures, universe, resolution, prices, dataset


def prepare_round(settings: Settings, overrides: dict[str, Any], kind: RoundKind, *, retrain: bool = False,
                  unattended: bool = False, models: list[ModelSettings | None] | None = None) -> PreparedRound:
    """The daily prepare: the shared stages, then each model trained when due (else reused), so
    the submit after the open only predicts. A failing model is named, never blocks the others."""
    run_id = new_run_id()
    table, failures, universe, resolution, prices, dataset = shared_stages(
        settings, overrides, kind, model_table(settings) if models is None else models, unattended=unattended)
    chosen: dict[str, ModelChoice] = {}
    choices = choose_models(settings, overrides, kind, dataset, universe.round_number, table, retrain=retrain,
                            run_id=run_id, unattended=unattended)
    for entry, choice in zip(table, choices, strict=True):
        label = entry.name if entry is not None else settings.numerai.model_name or "model"
        if isinstance(choice, str):
            failures[label] = choice
        else:
            chosen[label] = choice
    return PreparedRound(kind.mode, universe, prices, dataset, chosen, failures)


def prepared_prices(settings: Settings, kind: RoundKind, universe: UniverseRef) -> IngestSummary:
    """The prices the last finished ingest stored (the prepare run's), with the kind's readiness check."""
    name = source_name(settings)
    store = Store(settings.data_dir)
    runs = ingest_dir(store, name) / "runs"
    finished = sorted(d for d in runs.iterdir() if (d / "summary.json").exists()) if runs.is_dir() else []
    prices_dir = store.prices_dir(name)
    if not finished or not prices_dir.exists():
        raise BadInputError(f"no prepared {name} prices in {prices_dir}: run the prepare flow (or a whole round) "
                            "first", tag="not_prepared")
    summary = read_json(finished[-1] / "summary.json")
    ready = kind.check_prices(settings, universe, name)
    last = read_parquet(prices_dir, columns=["date"])["date"].max()
    return IngestSummary.from_summary({"source": name, **summary}, prices_dir=str(prices_dir),
                                      last_date=str(last.date()), readiness=ready)


class ModelsFailed(NumerflowError):
    """Some models of the round failed (the others were submitted); the message names each."""

    tag = "models_failed"
    result: RoundResult | None = None  # what did succeed (the command line's --json shows it)


def failures_message(result: RoundResult) -> str:
    done = ", ".join(f"{run.name} {run.upload.status}" for run in result.models) or "none"
    failed = "; ".join(f"{name}: {cause}" for name, cause in result.failures.items())
    return (f"{len(result.failures)} of {len(result.failures) + len(result.models)} models failed in round "
            f"{result.round_label} — {failed} (the others: {done})")


def raise_failures(result: RoundResult) -> RoundResult:
    """The round's result, or ``ModelsFailed`` naming each failed model and why."""
    if result.failures:
        error = ModelsFailed(failures_message(result))
        error.result = result
        raise error
    return result


def run_model(settings: Settings, kind: RoundKind, dataset: DatasetInfo, universe: UniverseRef,
              entry: ModelSettings | None, model: ModelChoice, *, force: bool, unattended: bool,
              run_id: str) -> ModelRun:
    """One model's stages after training: predict → validate → upload (``submit = false``: not
    uploaded). ``settings`` are the model's own (``settings_for_model``)."""
    name = entry.name if entry is not None else None
    suffix, model_run_id = (f" {name}", f"{run_id}-{name}") if name else ("", run_id)
    with stage(f"predict{suffix}", unattended=unattended):
        live = predict_live_task(settings, dataset.path, model.model_dir, universe.path, model_run_id,
                                 numerai_live_path(Store(settings.data_dir), universe))
    with stage(f"validate{suffix}", unattended=unattended):
        submission = write_submission_task(settings, live.path, universe, name)
    with stage(f"upload{suffix}", unattended=unattended):
        if entry is not None and not entry.submit:
            upload = SubmitOutcome("not_submitted", settings.tournament,
                                   f"model {name}: submit = false, validated and not uploaded", submission.path,
                                   submission.sha256, model_name=name, validation=submission.checks)
        else:
            upload = kind.upload(settings, submission, universe, force)
    return ModelRun(name or settings.numerai.model_name, model, live, submission, upload)


def model_submission_dir(settings: Settings, round_label: str, name: str | None) -> Path:
    """Where a model's submission file (and a demo's upload record) goes: the round's folder for
    the single configured model, a folder per model for a ``[[models]]`` entry."""
    base = Store(settings.data_dir).submission_dir(settings.tournament, round_label)
    return base / safe_id(name, "model name") if name else base


def preflight(settings: Settings, table: list[ModelSettings | None], mode: Mode
              ) -> tuple[list[ModelSettings | None], dict[str, str]]:
    """What can be judged before any data moves: LightGBM accepts each model's parameters (a typo
    must not cost an ingest; ``judge_models``), and temp files that killed runs left behind are
    cleared. The models that can run, and why each other one cannot."""
    judged = judge_models(settings, table, mode)
    if not judged[0]:  # every entry refused: nothing would use the ingest
        raise BadInputError("every model of the [[models]] table is refused: " + "; ".join(
            f"{name}: {why}" for name, why in judged[1].items()) + "; fix them in numerflow.toml",
            tag="invalid_config")
    clear_interrupted_writes(settings)
    return judged


def clear_interrupted_writes(settings: Settings) -> None:
    """The temp files that killed runs left behind, removed before a round writes anything."""
    removed = remove_stale_temp_files(settings.data_dir)
    if removed:
        get_run_logger().info("removed %d temp files left by interrupted runs", len(removed))


def ingest_stage(settings: Settings, overrides: dict[str, Any], kind: RoundKind, universe: UniverseRef,
                 resolution: Resolution) -> IngestSummary:
    """The batched ingest subflow (``numerflow ingest``'s own) on the configured task runner,
    then the kind's readiness check. With stage lines echoed (``numerflow run``): a progress bar."""
    store, name = Store(settings.data_dir), source_name(settings)
    run_id = ingest_run_id(store, name)  # the unfinished run (resumed) or a new one, as the subflow would
    bar = (ProgressBar(ingest_dir(store, name) / "runs" / run_id, stream=STAGE_ECHO[0]) if STAGE_ECHO
           else contextlib.nullcontext())
    with bar:
        summary = prices_flow.with_options(task_runner=task_runner_for(settings))(
            overrides=overrides, candidates_path=resolution.candidates_path, run_id=run_id)
    ready = kind.check_prices(settings, universe, summary["source"])
    stored = read_parquet(Path(summary["prices_dir"]), columns=["ticker", "date"])
    last = stored["date"].max()
    coverage = universe_coverage(universe_ids(universe), list(stored["ticker"].unique()))
    return IngestSummary.from_summary(summary, prices_dir=summary["prices_dir"], last_date=str(last.date()),
                                      readiness=ready, coverage=coverage)


@dataclass(frozen=True)
class TrainPlan:
    """One model's training decision: what it trains on, its lineage, and whether it must train."""

    settings: Settings  # the model's own
    entry: ModelSettings | None
    training_path: str
    lineage_source: str
    numerai_targets: NumeraiTargets | None
    lineage: dict[str, Any]
    must_train: bool
    reason: str
    run_id: str
    mode: Mode = "live"  # where ALPHA's neutralizer comes from: the demo market's, or Numerai's
    round_number: int | None = None

    @property
    def members(self) -> list[tuple[str, str]] | None:
        """An ensemble's (target, training file) per member, or None for one model."""
        return self.numerai_targets.members if self.numerai_targets else None


def plan_training(settings: Settings, kind: RoundKind, dataset: DatasetInfo, round_number: int | None,
                  retrain: bool, run_id: str, entry: ModelSettings | None = None) -> TrainPlan:
    """Train or reuse? Reuse needs a fresh registry model of the same lineage (a ``[[models]]``
    entry's name is part of its lineage: each entry has its own). ``settings`` are the model's own."""
    name = entry.name if entry is not None else None
    training_path, lineage_source, numerai_targets = kind.training_data(settings, dataset, round_number)
    lineage = model_lineage(settings, lineage_source)
    if name is not None:
        lineage["model"] = name
    features = feature_columns_of(Path(training_path))  # ours, Numerai's or both
    must_train, reason = needs_training(Store(settings.data_dir), settings.training.model_max_age_days,
                                        features, force=retrain, lineage=lineage)
    get_run_logger().info("Training decision%s: %s", f" ({name})" if name else "", reason)
    return TrainPlan(settings, entry, training_path, lineage_source, numerai_targets, lineage, must_train, reason,
                     f"{run_id}-{name}" if name else run_id, kind.mode, round_number)


def finish_choice(plan: TrainPlan, trained: TrainResult | None) -> ModelChoice:
    """The model a plan ends with: the one trained (its report published), or the registry's."""
    settings = plan.settings
    if trained is not None:
        neutralizers = (demo_neutralizer_task(settings, trained.validation_predictions) if plan.mode == "demo"
                        else numerai_neutralizer_task(settings, plan.round_number))
        metrics = validation_alpha_task(settings, trained, neutralizers)
        report = publish_report_task(settings, trained.model_dir, metrics, plan.run_id)
        return ModelChoice(trained.model_id, trained.model_dir, True, plan.reason, trained.metrics["corr"],
                           plan.lineage_source, report, plan.numerai_targets, alpha=metrics.get("alpha"))
    model_dir = latest_model(Store(settings.data_dir), plan.entry.name if plan.entry is not None else None)
    if model_dir is None:  # needs_training said "reuse", so the registry has one
        raise BadInputError("the model registry is empty; run with --retrain", tag="no_model")
    meta = read_json(model_dir / META_FILE)
    return ModelChoice(meta["model_id"], str(model_dir), False, plan.reason, meta["validation_metrics"]["corr"],
                       plan.lineage_source, None, plan.numerai_targets, alpha=meta["validation_metrics"].get("alpha"))


def choose_models(settings: Settings, overrides: dict[str, Any], kind: RoundKind, dataset: DatasetInfo,
                  round_number: int | None, table: list[ModelSettings | None], *, retrain: bool, run_id: str,
                  unattended: bool) -> list[ModelChoice | str]:
    """The ``train`` stage for every model of ``table``: plan each, train those that must (several
    at once: each its own task on the configured task runner, threads or Dask), reuse the rest.
    Per model its ``ModelChoice``, or for a ``[[models]]`` entry the reason it failed (the single
    configured model's failure is the round's)."""
    results: list[ModelChoice | str] = []
    with stage("train", unattended=unattended) as train_echo:
        plans: list[TrainPlan | str] = []
        for entry in table:
            try:
                mine = settings_for_model(settings, entry)
                plans.append(plan_training(mine, kind, model_dataset(settings, mine, dataset), round_number,
                                           retrain, run_id, entry))
            except Exception as exc:  # noqa: BLE001 - named in the round's failures
                if entry is None:
                    raise
                plans.append(describe_failure(exc))
        jobs = [p for p in plans if isinstance(p, TrainPlan) and p.must_train]
        if len(jobs) > 1:
            outcomes = train_models_flow.with_options(task_runner=task_runner_for(settings))(
                overrides=overrides, jobs=[{"model": p.entry.model_dump() if p.entry is not None else None,
                                            "dataset_path": p.training_path, "run_id": p.run_id,
                                            "lineage": p.lineage, "members": p.members} for p in jobs])
            trained: dict[str, TrainResult | str] = {p.run_id: o for p, o in zip(jobs, outcomes, strict=True)}
        else:
            trained = {}
        for entry, plan in zip(table, plans, strict=True):
            if isinstance(plan, str):
                results.append(plan)
                continue
            try:
                if not plan.must_train:
                    results.append(finish_choice(plan, None))
                    continue
                outcome = trained.get(plan.run_id) or train_model_task(plan.settings, plan.training_path,
                                                                       plan.run_id, plan.lineage, plan.members)
                if isinstance(outcome, str):
                    if entry is None:
                        raise StageFailed(outcome)
                    results.append(outcome)  # why the model failed, already one line
                    continue
                results.append(finish_choice(plan, outcome))
            except Exception as exc:  # noqa: BLE001 - named in the round's failures
                if entry is None:
                    raise
                results.append(describe_failure(exc))
        failed = [entry.name for entry, r in zip(table, results, strict=True) if entry is not None and isinstance(r, str)]
        if failed:  # the echo never says "train done" for models that did not train
            count = f"{len(failed)} of {len(results)} models failed: {', '.join(failed)}"
            train_echo.failed, train_echo.note = (count, None) if len(failed) == len(results) else (None, count)
    return results


@flow(name="train-models", log_prints=True)
def train_models_flow(overrides: dict[str, Any], jobs: list[dict[str, Any]]) -> list[TrainResult | str]:
    """Several models at once, each its own ``train-model`` task on the flow's task runner (threads,
    or a Dask cluster: one Dask task per model). Per job its result, or why it failed.

    Args:
        overrides: the round's settings overrides (the settings are rebuilt from them).
        jobs: per model: its [[models]] entry (or null), the dataset it trains on, its run id and lineage.
    """
    settings = load_settings(**overrides)
    futures = [train_model_task.submit(
        settings_for_model(settings, ModelSettings(**job["model"]) if job["model"] is not None else None),
        job["dataset_path"], job["run_id"], job["lineage"], job.get("members")) for job in jobs]
    outcomes: list[TrainResult | str] = []
    for future in futures:
        result = future.result(raise_on_failure=False)
        outcomes.append(describe_failure(result) if isinstance(result, BaseException) else result)
    return outcomes


def universe_ids(universe: UniverseRef) -> Any:
    return load_universe_ids(Path(universe.path), universe.tournament)


# ---------------------------------------------------------------- tasks: the universe and its ids


@task(name="demo-universe", retries=0, timeout_seconds=600)
def demo_universe_task(settings: Settings) -> UniverseRef:
    market = demo_market(settings)
    label = demo_round_label(market.end)
    universe = market.universe()
    path = write_universe(Store(settings.data_dir), settings.tournament, label, universe)
    return UniverseRef(settings.tournament, label, str(path), int(len(universe)))


@network_task(name="numerai-universe", timeout_seconds=900)
def numerai_universe_task(settings: Settings, round_number: int | None = None) -> UniverseRef:
    """This round's live universe from Numerai (public data: no keys needed); ``round_number``
    names the round when none is open yet (the daily prepare)."""
    snapshot = fetch_universe(client_for(settings, settings.tournament), Store(settings.data_dir), round_number)
    return UniverseRef(snapshot.tournament, f"round-{snapshot.round_number}", str(snapshot.snapshot_path),
                       snapshot.tickers, snapshot.round_number, snapshot.dataset)


def resolve_universe(settings: Settings, universe_path: Path, round_number: int) -> Resolution:
    """Resolve the universe to Yahoo candidates (rules, the catalog's winners, overrides; then
    Yahoo's search for what they miss); write the map; return it with the report."""
    tournament = settings.tournament
    ids = load_universe_ids(Path(universe_path), tournament).astype(str).tolist()
    store, source = Store(settings.data_dir), source_name(settings)
    failing = failing_tickers(store, source)

    def resolve() -> Any:
        return resolve_for_yahoo(ids, tournament, settings.numerai.overrides_path, remembered_symbols(store, source),
                                 looked_up_symbols(store, source))

    table = resolve()
    reasons: dict[str, str] = {}
    if tournament == "signals" and settings.price_source == "yahoo" and settings.yahoo.lookup:
        targets = lookup_targets(table, failing)
        if targets:
            found = lookup_with_yahoo(settings, targets, convention=universe_convention(ids))
            remember_lookups(store, source, {t: (r.symbol, r.name) for t, r in found.items() if r.symbol})
            reasons = {t: r.reason for t, r in found.items() if r.reason}
            table = resolve()
    report = resolution_report(table)
    needs = {t: m for t, m in failing.items() if int(m.get("runs", 0)) >= settings.yahoo.needs_override_after}
    details = resolution_summary(table, reasons, needs)
    # Unresolved tickers go in with no candidates, so the ingest ledger lists them too.
    path = write_json(numerai_dir(store, tournament) / f"round-{round_number}"
                      / "yahoo-candidates.json", with_unresolved(ids, candidate_map(table)))
    total = report[report["country"] == "TOTAL"].iloc[0]
    return Resolution(str(path), {k: int(total[k]) for k in ("resolved", "ambiguous", "unresolved", "total")},
                      report.to_dict("records"), details)


@task(name="resolve-tickers", retries=0, timeout_seconds=600)
def resolve_tickers_task(settings: Settings, universe: UniverseRef) -> Resolution:
    check_live_price_source(settings)
    assert universe.round_number is not None  # a live universe always has its round
    if settings.price_source == "files":
        # Your own files are keyed by Numerai's ids: each id is its own (only) candidate.
        ids = universe_ids(universe).astype(str).tolist()
        path = write_json(numerai_dir(Store(settings.data_dir), settings.tournament) / f"round-{universe.round_number}"
                          / "files-candidates.json", {t: [t] for t in ids})
        return Resolution(str(path))
    result = resolve_universe(settings, Path(universe.path), universe.round_number)
    create_markdown_artifact("\n".join(f"- {line}" for line in resolution_lines(result.details or {})),
                             key="ticker-resolution-report",
                             description=f"Ticker resolution, {settings.tournament} round {universe.round_number}")
    create_table_artifact(result.report or [], key="ticker-resolution",
                          description=f"{tournament_spec(settings.tournament).ticker_column} → Yahoo resolution, "
                          f"{settings.tournament} round {universe.round_number}")
    get_run_logger().info("Ticker resolution: %s", result.totals)
    return result


# ---------------------------------------------------------------- tasks: data and model


def model_dataset(settings: Settings, mine: Settings, shared: DatasetInfo) -> DatasetInfo:
    """A model's dataset: the round's, or for a ``[[models]]`` entry with its own feature groups the dataset of
    those. The snapshot id covers the feature sources, so each distinct configuration is built once: the
    next model with the same groups (or this one at predict time) finds it stored."""
    if mine.features == settings.features:
        return shared
    return build_dataset_task(mine, source_name(mine))


@task(name="build-dataset", retries=0, timeout_seconds=3600)
def build_dataset_task(settings: Settings, source: str) -> DatasetInfo:
    return build_dataset(Store(settings.data_dir), source, settings.target, settings.features)


@network_task(name="numerai-targets", timeout_seconds=3 * 3600)
def numerai_targets_task(settings: Settings, dataset_path: str, round_number: int | None) -> NumeraiTargets | None:
    """Our features joined with Numerai's targets, when wanted (``use_numerai_targets``) and
    Numerai lists training data for the tournament; None → the round trains on our own targets."""
    tournament = settings.tournament
    if not settings.numerai.use_numerai_targets or round_number is None:
        check_own_features(settings)
        return None
    for column in settings.numerai.ensemble_targets or [settings.numerai.target_column]:
        numerai_target_horizon(column)  # an unknown horizon is refused before downloads
    store = Store(settings.data_dir)
    client = client_for(settings, tournament)
    if not any(name.rpartition("/")[2] in TRAIN_FILES[tournament] for name in client.list_datasets()):
        get_run_logger().info("Numerai lists no %s training data (%s): training on our own targets",
                              tournament, "/".join(TRAIN_FILES[tournament]))
        check_own_features(settings)
        return None
    files = fetch_training_data(client, store, round_number)
    feature_set = settings.training.feature_set
    targets = settings.numerai.ensemble_targets or [settings.numerai.target_column]
    ensemble_weights(targets, settings.numerai.ensemble_weights)  # bad weights refused before the work
    ours = read_parquet(Path(dataset_path))
    members = []
    for column in targets:  # one training file per target: its own column and its own purge
        joined = numerai_training_frame(ours, files.paths, tournament, column, feature_set)
        path = write_parquet(Path(dataset_path).with_name(
            f"{Path(dataset_path).stem}-numerai-{column}-{feature_set}.parquet"), joined)
        members.append((column, str(path)))
    return NumeraiTargets(members[0][1], int(len(joined)), files.version, targets[0],
                          members if settings.numerai.ensemble_targets else None)


@task(name="train-model", retries=0, timeout_seconds=3 * 3600)
def train_model_task(settings: Settings, dataset_path: str, run_id: str, lineage: dict[str, Any],
                     members: list[tuple[str, str]] | None = None) -> TrainResult:
    """One model, or (``members``: target and training file each) a rank-averaged ensemble."""
    store = Store(settings.data_dir)
    if members:
        return train_ensemble(store, [(t, Path(p)) for t, p in members], settings.numerai.ensemble_weights,
                              settings.training, run_id, lineage=lineage)
    return train_and_register(store, Path(dataset_path), settings.training, run_id, lineage=lineage)


@task(name="demo-neutralizer", retries=0, timeout_seconds=1800)
def demo_neutralizer_task(settings: Settings, validation_predictions: str) -> NeutralizerFiles:
    """The demo market's neutralizer and sample weights on the validation dates (Numerai's layout)."""
    market = demo_market(settings)
    dates = read_parquet(Path(validation_predictions), columns=["date"])["date"].unique()
    folder = Store(settings.data_dir).root / "neutralizers" / "demo" / hashlib.sha256(
        f"{market!r}:{len(dates)}:{dates.min()}:{dates.max()}".encode()).hexdigest()[:16]
    if (folder / NEUTRALIZER_FILES["validation"]).exists() and (folder / WEIGHT_FILES["validation"]).exists():
        return NeutralizerFiles("demo", "validation", folder / NEUTRALIZER_FILES["validation"],
                                folder / WEIGHT_FILES["validation"])
    return write_neutralizer_files(folder, *market.neutralizers(dates))


@network_task(name="numerai-neutralizer", timeout_seconds=3 * 3600)
def numerai_neutralizer_task(settings: Settings, round_number: int | None) -> NeutralizerFiles | None:
    """Numerai's validation neutralizer and sample weights (Signals, when listed)."""
    if round_number is None or settings.tournament != "signals" or not settings.numerai.use_numerai_targets:
        return None
    return fetch_neutralizer_files(client_for(settings, settings.tournament), Store(settings.data_dir), round_number)


@task(name="validation-alpha", retries=0, timeout_seconds=3600)
def validation_alpha_task(settings: Settings, trained: TrainResult, files: NeutralizerFiles | None) -> dict:
    """The validation metrics plus ALPHA per date and per era (kept in the model's meta too);
    unchanged, with the reason logged, when there is no neutralizer to score against."""
    logger = get_run_logger()
    if files is None:
        logger.info("No neutralizer file for the validation dates: ALPHA not scored")
        return trained.metrics
    try:
        alpha = validation_alpha(Path(trained.validation_predictions), files.neutralizer_path, files.weights_path)
    except BadInputError as exc:  # scoring is diagnostics: the round goes on
        logger.warning("ALPHA not scored: %s", exc)
        return trained.metrics
    meta_path = Path(trained.model_dir) / META_FILE
    meta = read_json(meta_path)
    metrics = with_score(trained.metrics, "alpha", alpha, int(meta["data_range"].get("target_span_trading_days") or 0))
    metrics["alpha_scored_on"] = alpha.attrs.get("scored_on")
    metrics = feature_alpha(metrics, trained, files, meta)
    meta["validation_metrics"] = {**meta["validation_metrics"], "alpha": metrics["alpha"], "daily": metrics["daily"]}
    write_json(meta_path, meta)
    logger.info("Validation ALPHA per weekly era: mean %.5f over %s eras", metrics["alpha"]["mean"] or float("nan"),
                metrics["alpha"]["n_eras"])
    return metrics


def feature_alpha(metrics: dict, trained: TrainResult, files: NeutralizerFiles, meta: dict) -> dict:
    """``metrics`` plus each feature's own ALPHA on the validation dates (diagnostics: a failure is logged)."""
    names = [n for n in (metrics.get("features") or {}) if "corr" in metrics["features"][n]]  # the numeric ones
    if not names:
        return metrics
    try:
        per_date = validation_feature_alpha(Path(trained.validation_predictions), Path(meta["dataset"]), names,
                                            files.neutralizer_path, files.weights_path)
    except (BadInputError, KeyError, ValueError, OSError) as exc:  # diagnostics: the round goes on
        get_run_logger().warning("Per-feature ALPHA not scored: %s", exc)
        return metrics
    return feature_scores(metrics, per_date, int(meta["data_range"].get("target_span_trading_days") or 0), "alpha")


@task(name="publish-report", retries=0, timeout_seconds=600)
def publish_report_task(settings: Settings, model_dir: str, metrics: dict, run_id: str) -> ReportPaths:
    meta = read_json(Path(model_dir) / META_FILE)
    report = write_report(Store(settings.data_dir), run_id, metrics, meta)
    create_markdown_artifact(report["markdown_text"], key="validation-report",
                             description=f"Validation diagnostics of model {meta['model_id']}")
    return ReportPaths(report["json"], report["markdown"], report["chart"])


# ---------------------------------------------------------------- tasks: predict, validate, upload


@task(name="predict-live", retries=0, timeout_seconds=1800)
def predict_live_task(settings: Settings, dataset_path: str, model_dir: str, universe_path: str,
                      run_id: str, numerai_live: str | None = None) -> LivePredictions:
    return predict_live(
        Store(settings.data_dir), Path(dataset_path), Path(model_dir), load_universe_ids(Path(universe_path), settings.tournament),
        run_id, min_tickers=settings.submission.min_tickers, num_threads=settings.training.num_threads,
        numerai_live_path=Path(numerai_live) if numerai_live else None,
    )


@task(name="write-submission", retries=0, timeout_seconds=600)
def write_submission_task(settings: Settings, predictions_path: str, universe: UniverseRef,
                          name: str | None = None) -> SubmissionFile:
    submission = build_submission(read_parquet(Path(predictions_path)), settings.tournament)
    checks = validate_submission(submission, universe_ids(universe), tournament=settings.tournament,
                                 min_tickers=settings.submission.min_tickers)
    # Churn/turnover against this model's recent submissions (the gate may refuse here, before any file).
    churn = check_against_history(Store(settings.data_dir), settings.submission, settings.tournament, settings.numerai.model_name,
                                  universe.round_label, submission)
    checks = {**checks, "max_churn": churn["max_churn"], "max_turnover": churn["max_turnover"],
              "churn": churn_message(churn)}
    if churn["warning"]:
        get_run_logger().warning(churn["warning"])
    path, sha256 = write_submission(
        submission, model_submission_dir(settings, universe.round_label, name) / "submission.csv")
    create_table_artifact([checks], key="submission-checks",
                          description=f"Submission checks, round {universe.round_label}"
                          f"{f', model {name}' if name else ''}")
    return SubmissionFile(str(path), sha256, int(checks["rows"]), checks)


# Not retried: a repeat could double-submit; a transient failure leaves no ledger entry, so the
# next run (the schedule's next firing) tries again.
@task(name="upload-submission", retries=0, timeout_seconds=900)
def upload_submission_task(settings: Settings, submission: SubmissionFile, force: bool = False) -> SubmitOutcome:
    """The real upload (window guard, once per round and model, dry run without keys)."""
    outcome = submit_file(Path(submission.path), settings, force=force)
    get_run_logger().info(outcome.message)
    return outcome


@task(name="record-demo-upload", retries=0, timeout_seconds=60)
def record_demo_upload(settings: Settings, submission: SubmissionFile, round_label: str) -> SubmitOutcome:
    """The demo market's upload: a dry-run record of exactly what would be sent."""
    reason = "demo market: nothing leaves the machine"
    store = Store(settings.data_dir)
    # Kept as if it had left, so the next demo round's churn has something to compare with.
    record_submission(store, settings.tournament, settings.numerai.model_name, round_label,
                      read_submission_file(Path(submission.path)))
    record = write_dry_run_record(
        Path(submission.path).parent / DEMO_RECORD,
        reason=reason, tournament=settings.tournament, round_label=round_label,
        model_name=settings.numerai.model_name, file=submission.path, sha256=submission.sha256,
        rows=submission.rows, validated_against_universe=True,
        would_call=f"{tournament_spec(settings.tournament).api_class.__name__}.upload_predictions",
    )
    message = (f"DRY RUN — {reason}. Would upload {submission.path} ({submission.rows} rows, "
               f"sha256 {submission.sha256[:12]}); record: {record}")
    get_run_logger().info(message)
    return SubmitOutcome("dry_run", settings.tournament, message, submission.path, submission.sha256,
                         model_name=settings.numerai.model_name, record=str(record), validation=submission.checks)


# ---------------------------------------------------------------- the ad-hoc flow


@network_task(name="numerai-round-window", timeout_seconds=300)
def round_window_task(settings: Settings) -> dict[str, Any] | None:
    """The current round's window. With keys (a real upload ahead), a closed window refuses the
    round here, before hours of ingest and training, with the times in the message; without
    keys the round goes on as a dry run."""
    client = client_for(settings, settings.tournament)
    current = client.current_round()
    if client.keys is not None:
        require_open_window(current)
    elif current is None or not current.is_open():
        get_run_logger().warning("No open %s round, and no keys: a dry run", settings.tournament)
    return current.as_dict() if current is not None else None


@flow(name="round", log_prints=True)
def round_flow(
    mode: Mode = "demo",
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
    (refused early when it is closed and keys are set).

    Args:
        mode: "demo": the offline demo market; "live": this Numerai round.
        tournament: Numerai tournament; empty: the configured one (signals).
        model_name: Numerai model name; empty: numerai.model_name. With a [[models]] table: run that
            model only.
        force: upload again even if this round was already submitted.
        retrain: train new models even when fresh ones exist.
        tickers: Demo only: number of tickers of the demo market.
        years: Demo only: years of daily bars of the demo market.
        signal: Demo only: planted signal strength (0 = pure noise).
        seed: Demo only: random seed of the demo market.
        data_dir: data store directory; empty: the configured data_dir.
        overrides: any settings as nested JSON; they win over numerflow.toml and the environment.
    """
    overrides = mode_overrides(mode, settings_overrides(data_dir=data_dir, tournament=tournament, model_name=model_name,
                                                        tickers=tickers, years=years, signal=signal, seed=seed,
                                                        extra=overrides))
    settings = load_settings(**overrides)
    window = None
    if mode == "live":
        check_live_price_source(settings)
        window = round_window_task(settings)
    # --model with a [[models]] table: that model only (an unknown name fails here, before any work).
    table = model_table(settings, model_name if settings.models else None)
    result = run_round(settings, overrides, round_kind(mode), force=force, retrain=retrain, models=table)
    return raise_failures(replace(result, window=window) if window is not None else result)
