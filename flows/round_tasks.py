"""The round's Prefect tasks: each a named, retried or time-bounded call into ``tasks/round/``.

Network steps use ``network_task`` (flows/policies.py: 3 retries 10/30/90 s, transient errors
only); the rest are not retried (bad input, or an upload that must not repeat). Inputs and
results are references (paths, ids, the small dataclasses of ``tasks/round/results.py``).
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from numerflow.flows.policies import network_task
from numerflow.tasks.classic.data import ClassicFiles
from numerflow.tasks.core.config import Settings
from numerflow.tasks.core.store import Store
from numerflow.tasks.crypto.scoring import score_mmc
from numerflow.tasks.model.dataset import DatasetInfo, build_dataset
from numerflow.tasks.model.predict import LivePredictions
from numerflow.tasks.model.training import TrainResult
from numerflow.tasks.numerai.client import client_for, require_open_window, tournament_spec
from numerflow.tasks.numerai.neutralizer import NeutralizerFiles
from numerflow.tasks.numerai.payout import RoundPayout
from numerflow.tasks.numerai.submit import SubmitOutcome, submit_file
from numerflow.tasks.prices.tickers import resolution_lines
from numerflow.tasks.round import classic, neutralization, signals, verdict
from numerflow.tasks.round.models import RoundModel
from numerflow.tasks.round.results import (
    DiagnosticsOutcome,
    Mode,
    NumeraiTargets,
    ReportPaths,
    Resolution,
    RoundInputs,
    RoundKind,
    SubmissionFile,
    UniverseRef,
)
from numerflow.tasks.round.submit import demo_upload, write_checked
from numerflow.tasks.round.tournaments import tournament_of

# ---------------------------------------------------------------- the round's window


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


# ---------------------------------------------------------------- universe (Signals, Crypto) or data (Classic)


@task(name="demo-universe", retries=0, timeout_seconds=600)
def demo_universe_task(settings: Settings) -> UniverseRef:
    return signals.demo_universe(settings)


@network_task(name="numerai-universe", timeout_seconds=900)
def numerai_universe_task(settings: Settings, round_number: int | None = None) -> UniverseRef:
    return signals.numerai_universe(settings, round_number)


@task(name="resolve-tickers", retries=0, timeout_seconds=600)
def resolve_tickers_task(settings: Settings, universe: UniverseRef) -> Resolution:
    result = signals.live_resolution(settings, universe)
    if result.details is not None:  # Yahoo's resolution: its report as artifacts
        create_markdown_artifact("\n".join(f"- {line}" for line in resolution_lines(result.details)),
                                 key="ticker-resolution-report",
                                 description=f"Ticker resolution, {settings.tournament} round {universe.round_number}")
        create_table_artifact(result.report or [], key="ticker-resolution",
                              description=f"{tournament_spec(settings.tournament).ticker_column} → Yahoo resolution, "
                              f"{settings.tournament} round {universe.round_number}")
        get_run_logger().info("Ticker resolution: %s", result.totals)
    return result


@task(name="classic-demo-data", retries=0, timeout_seconds=1800)
def classic_demo_data_task(settings: Settings) -> ClassicFiles:
    return classic.demo_data(settings)


@network_task(name="classic-data", timeout_seconds=3 * 3600)
def classic_data_task(settings: Settings, round_number: int | None) -> ClassicFiles:
    return classic.live_data(settings, round_number)


@task(name="classic-live-ids", retries=0, timeout_seconds=600)
def classic_live_ids_task(settings: Settings, files: ClassicFiles, kind: RoundKind) -> UniverseRef:
    return classic.live_ids(settings, files, kind)


# ---------------------------------------------------------------- data and model


@task(name="build-dataset", retries=0, timeout_seconds=3600)
def build_dataset_task(settings: Settings, source: str) -> DatasetInfo:
    return build_dataset(Store(settings.data_dir), source, settings.target, settings.features,
                         calendar_days=settings.tournament == "crypto")  # tokens trade every day


@network_task(name="numerai-targets", timeout_seconds=3 * 3600)
def numerai_targets_task(settings: Settings, dataset_path: str, round_number: int | None) -> NumeraiTargets | None:
    return signals.numerai_targets(settings, dataset_path, round_number)


@task(name="demo-numerai-targets", retries=0, timeout_seconds=3600)
def demo_numerai_targets_task(settings: Settings, dataset_path: str) -> NumeraiTargets | None:
    return signals.demo_numerai_targets(settings, dataset_path)


@task(name="train-model", retries=0, timeout_seconds=3 * 3600)
def train_model_task(settings: Settings, dataset_path: str, run_id: str, lineage: dict[str, Any],
                     members: list[tuple[str, str]] | None = None) -> TrainResult:
    return signals.train(settings, dataset_path, run_id, lineage, members)


@task(name="train-classic-model", retries=0, timeout_seconds=6 * 3600)
def train_classic_task(settings: Settings, files: ClassicFiles, features: list[str], lineage: dict[str, Any],
                       run_id: str) -> TrainResult:
    return classic.train(settings, files, features, lineage, run_id)


@task(name="demo-neutralizer", retries=0, timeout_seconds=1800)
def demo_neutralizer_task(settings: Settings, validation_predictions: str) -> NeutralizerFiles:
    return signals.demo_neutralizer(settings, validation_predictions)


@network_task(name="numerai-neutralizer", timeout_seconds=3 * 3600)
def numerai_neutralizer_task(settings: Settings, round_number: int | None) -> NeutralizerFiles | None:
    return signals.numerai_neutralizer(settings, round_number)


@task(name="validation-alpha", retries=0, timeout_seconds=3600)
def validation_alpha_task(settings: Settings, trained: TrainResult, files: NeutralizerFiles | None) -> dict:
    return signals.score_alpha(trained, files)


@task(name="neutralize-validation", retries=0, timeout_seconds=1800)
def neutralize_validation_task(settings: Settings, trained: TrainResult, own_dataset: str,
                               files: NeutralizerFiles | None) -> TrainResult:
    """[neutralize]: the validation predictions neutralised, CORR recomputed, the figures before kept."""
    return neutralization.neutralize_validation(settings, trained, own_dataset, files)


@task(name="validation-mmc", retries=0, timeout_seconds=3600)
def validation_mmc_task(settings: Settings, trained: TrainResult, mode: Mode) -> dict:
    """Crypto: MMC against the meta model (the demo's synthetic one; none published for live rounds)."""
    return score_mmc(settings, trained, mode)


@task(name="neutralize-classic-validation", retries=0, timeout_seconds=3600)
def neutralize_classic_validation_task(settings: Settings, trained: TrainResult, files: ClassicFiles) -> TrainResult:
    """[neutralize], Classic: the validation predictions neutralised per era, CORR/FNC/MMC recomputed."""
    return classic.neutralize_validation(settings, trained, files)


@task(name="publish-report", retries=0, timeout_seconds=600)
def publish_report_task(settings: Settings, model_dir: str, metrics: dict, run_id: str) -> ReportPaths:
    """The tournament's validation report, written and published as the ``validation-report`` artifact."""
    report = tournament_of(settings).report(settings, model_dir, metrics, run_id)
    artifact = create_markdown_artifact(report["markdown_text"], key="validation-report",
                                        description=report["description"])
    return ReportPaths(report["json"], report["markdown"], report["chart"], str(artifact) if artifact else None)


# ---------------------------------------------------------------- predict, validate, upload


@task(name="predict-live", retries=0, timeout_seconds=1800)
def predict_live_task(settings: Settings, inputs: RoundInputs, model_dir: str, run_id: str) -> LivePredictions:
    return tournament_of(settings).predict(settings, inputs, model_dir, run_id)


@task(name="neutralize-live", retries=0, timeout_seconds=600)
def neutralize_live_task(settings: Settings, inputs: RoundInputs, live: LivePredictions,
                         model_dir: str) -> LivePredictions:
    """[neutralize]: the live predictions neutralised as the model's validation ones were."""
    return neutralization.neutralize_live(settings, inputs, live, model_dir)


@task(name="write-submission", retries=0, timeout_seconds=600)
def write_submission_task(model: RoundModel, predictions_path: str, universe: UniverseRef,
                          verdict_checks: dict[str, Any] | None = None) -> SubmissionFile:
    """The tournament's checks (the churn gate may refuse here), then the file, written only when all
    passed; ``verdict_checks`` (``submission_verdict_task``'s) are kept with them."""
    frame, checks = tournament_of(model.settings).checked_submission(model.settings, predictions_path, universe)
    checks = {**checks, **(verdict_checks or {})}
    submission = write_checked(model, universe.round_label, frame, checks)
    create_table_artifact([checks], key="submission-checks",
                          description=f"Submission checks ({model.settings.tournament}), round {universe.round_label}"
                          f"{f', model {model.name}' if model.in_table else ''}")
    return submission


# Not retried: a repeat could double-submit; a transient failure leaves no ledger entry, so the
# next run (the schedule's next firing) tries again.
@task(name="upload-submission", retries=0, timeout_seconds=900)
def upload_submission_task(settings: Settings, submission: SubmissionFile, force: bool = False) -> SubmitOutcome:
    """The real upload (window guard, once per round and model, dry run without keys)."""
    from pathlib import Path

    outcome = submit_file(Path(submission.path), settings, force=force)
    get_run_logger().info(outcome.message)
    return outcome


@task(name="record-demo-upload", retries=0, timeout_seconds=60)
def record_demo_upload(settings: Settings, submission: SubmissionFile, round_label: str) -> SubmitOutcome:
    """The demo's upload: a dry-run record of exactly what would be sent."""
    outcome = demo_upload(settings, submission, round_label)
    get_run_logger().info(outcome.message)
    return outcome


# ---------------------------------------------------------------- Numerai's verdict (tasks/round/verdict.py)


@network_task(name="numerai-payout", timeout_seconds=300)
def round_payout_task(settings: Settings, round_number: int | None) -> RoundPayout | None:
    """What Numerai pays this round (its roundScoreConfigs), once for every model's preview."""
    return verdict.round_payout(settings, round_number)


@task(name="submission-verdict", retries=0, timeout_seconds=600)
def submission_verdict_task(model: RoundModel, live: LivePredictions, inputs: RoundInputs,
                            model_dir: str) -> dict[str, Any]:
    """Neutral churn (Signals; the churn gate may refuse here) and the payout preview of a submission."""
    return verdict.submission_verdict(model.settings, live.path, inputs.universe.round_label, model_dir=model_dir,
                                      dataset_path=inputs.dataset.path if inputs.dataset else None,
                                      live_date=live.live_date, payout=inputs.payout,
                                      live=inputs.universe.round_number is not None)


@network_task(name="numerai-diagnostics-upload", timeout_seconds=900)
def upload_diagnostics_task(settings: Settings, model_dir: str) -> str:
    """A (re)trained model's validation predictions sent to Numerai's diagnostics: its id."""
    return verdict.upload_model_diagnostics(settings, model_dir)


# Bounded by the poll schedule ([diagnostics] poll_waits_seconds: at most an hour in all) plus the queries.
@network_task(name="numerai-diagnostics", timeout_seconds=3600 + 900)
def diagnostics_task(settings: Settings, uploaded: str | None) -> DiagnosticsOutcome:
    """The model's diagnostics polled (``uploaded``: this round's, on the whole schedule) and its latest
    result with the agreement table, published as the ``diagnostics-agreement`` artifact."""
    outcome = verdict.model_diagnostics(settings, uploaded)
    if outcome.agreement:
        create_table_artifact(list(outcome.agreement), key="diagnostics-agreement",
                              description=f"numerflow vs Numerai per-era figures, model {outcome.model}, "
                              f"diagnostics {outcome.diagnostics_id} ({outcome.status})")
    return outcome
