"""Each model's end of a round, the same for every tournament: the model it ends with (trained or
reused), where its submission file goes, the file written once every check passed, and how it
leaves in a demo round (a dry-run record) or when the model is not submitted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from numerflow.tasks.core.config import Settings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, read_json, safe_id
from numerflow.tasks.model.training import META_FILE, TrainResult, latest_model
from numerflow.tasks.numerai.churn import record_submission
from numerflow.tasks.numerai.client import tournament_spec
from numerflow.tasks.numerai.submission import write_dry_run_record, write_submission
from numerflow.tasks.numerai.submit import SubmitOutcome, read_submission_file
from numerflow.tasks.round.guard import DEMO_RECORD
from numerflow.tasks.round.models import RoundModel
from numerflow.tasks.round.results import ModelChoice, ReportPaths, SubmissionFile, TrainPlan


def trained_choice(plan: TrainPlan, trained: TrainResult, metrics: dict[str, Any],
                   report: ReportPaths | None) -> ModelChoice:
    return ModelChoice(trained.model_id, trained.model_dir, True, plan.reason, trained.metrics["corr"],
                       plan.lineage_source, report, plan.numerai_targets, alpha=metrics.get("alpha"),
                       neutralization=metrics.get("neutralization"),
                       mmc=metrics.get("mmc"))


def reused_choice(plan: TrainPlan) -> ModelChoice:
    """The registry's fresh model of the plan's lineage (``needs_training`` said "reuse")."""
    settings = plan.model.settings
    model_dir = latest_model(Store(settings.data_dir), plan.lineage.get("model"))
    if model_dir is None:  # needs_training said "reuse", so the registry has one
        raise BadInputError("the model registry is empty; run with --retrain", tag="no_model")
    meta = read_json(model_dir / META_FILE)
    return ModelChoice(meta["model_id"], str(model_dir), False, plan.reason, meta["validation_metrics"]["corr"],
                       plan.lineage_source, None, plan.numerai_targets, alpha=meta["validation_metrics"].get("alpha"),
                       neutralization=meta.get("neutralization"),
                       mmc=meta["validation_metrics"].get("mmc"))


def model_submission_dir(settings: Settings, round_label: str, folder: str | None) -> Path:
    """Where a model's submission file (and a demo's upload record) goes: the round's folder for
    the single configured model, a folder per model for a table entry."""
    base = Store(settings.data_dir).submission_dir(settings.tournament, round_label)
    return base / safe_id(folder, "model name") if folder else base


def write_checked(model: RoundModel, round_label: str, submission: pd.DataFrame,
                  checks: dict[str, Any]) -> SubmissionFile:
    """The checked submission written atomically, with its sha256."""
    path, sha256 = write_submission(
        submission, model_submission_dir(model.settings, round_label, model.folder) / "submission.csv")
    return SubmissionFile(str(path), sha256, int(checks["rows"]), checks)


def not_submitted(model: RoundModel, submission: SubmissionFile) -> SubmitOutcome:
    return SubmitOutcome("not_submitted", model.settings.tournament,
                         f"model {model.name}: submit = false, validated and not uploaded", submission.path,
                         submission.sha256, model_name=model.name, validation=submission.checks)


def demo_upload(settings: Settings, submission: SubmissionFile, round_label: str) -> SubmitOutcome:
    """The demo's upload: a dry-run record of exactly what would be sent, and the submission kept
    as if it had left, so the next demo round's churn has something to compare with."""
    reason = "demo market: nothing leaves the machine"
    record_submission(Store(settings.data_dir), settings.tournament, settings.numerai.model_name, round_label,
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
    return SubmitOutcome("dry_run", settings.tournament, message, submission.path, submission.sha256,
                         model_name=settings.numerai.model_name, record=str(record), validation=submission.checks)
