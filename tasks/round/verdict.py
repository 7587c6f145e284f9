"""Numerai's own verdict inside a round, plain Python: each (re)trained model's diagnostics uploaded
and read back, and each submission's payout preview and neutral churn, before it leaves.

- **Diagnostics** (``numerai.upload_diagnostics``, per ``[[models]]`` entry too): after a model is
  (re)trained in a live round, its validation predictions go to Numerai's diagnostics
  (``upload_model_diagnostics``, a task that runs beside the models' predict and upload) and the
  answer is polled on ``[diagnostics] poll_waits_seconds`` once the models are done
  (``model_diagnostics``): a diagnostics failure never costs an upload, and is shown. A reused model uploads nothing; its
  uploads still pending are polled once and its latest result shown. Numerai's figures are put
  beside numerflow's own on the same eras (the agreement table of ``tasks.numerai.diagnostics``).
- **Payout preview** (live rounds): the round's ``roundScoreConfigs`` (read once per round) and
  each model's estimate from its validation figures (``tasks.numerai.payout``).
- **Neutral churn** (Signals): Numerai publishes no live neutralizer, so the submission and each of
  the model's recent ones are neutralised against numerflow's own features of the round's dataset at
  their dates; the churn left and its payout penalty are shown beside plain churn, and the churn
  gate acts on a penalty below ``submission.min_neutral_churn_penalty``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.dataset as ds

from numerflow.tasks.core.config import Settings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.failures import describe_failure
from numerflow.tasks.core.store import Store, read_json, read_parquet
from numerflow.tasks.model.training import META_FILE
from numerflow.tasks.numerai.churn import (
    PastSubmission,
    neutral_churn_gate,
    neutral_churn_message,
    neutral_churn_report,
    recent_submissions,
)
from numerflow.tasks.numerai.client import client_for, resolve_keys
from numerflow.tasks.numerai.diagnostics import (
    history,
    latest_verdict,
    refresh_pending,
    upload_validation,
)
from numerflow.tasks.numerai.payout import RoundPayout, local_estimates, payout_preview
from numerflow.tasks.numerai.submission import build_submission
from numerflow.tasks.round.results import DiagnosticsOutcome, Mode

log = logging.getLogger(__name__)

#: Calendar days a ticker's last feature row may be older than the date it stands for (as live predictions).
MAX_STALENESS_DAYS = 5

# ---------------------------------------------------------------- diagnostics


def diagnostics_skipped(settings: Settings, mode: Mode) -> str | None:
    """Why a model with ``numerai.upload_diagnostics`` gets no diagnostics step this round (None: it gets one)."""
    if mode != "live":
        return "a demo round sends nothing to Numerai"
    if settings.tournament == "crypto":
        return "Numerai documents no diagnostics file for Crypto"
    if not settings.numerai.model_name:
        return "no model name (numerai.model_name)"
    if resolve_keys(settings.numerai) is None:
        return "no Numerai API keys (NUMERAI_PUBLIC_ID / NUMERAI_SECRET_KEY)"
    return None


def upload_model_diagnostics(settings: Settings, model_dir: str) -> str:
    """Upload the validation predictions of the model in ``model_dir`` (registered this round) to
    Numerai's diagnostics for ``numerai.model_name``, kept as pending at once; its diagnostics id."""
    predictions = read_json(Path(model_dir) / META_FILE).get("validation_predictions")
    if not predictions or not Path(predictions).exists():
        raise BadInputError(f"the model in {model_dir} has no validation predictions to send to Numerai's "
                            "diagnostics; retrain it (--retrain)", tag="no_model")
    name = str(settings.numerai.model_name)
    client = client_for(settings, settings.tournament)
    diagnostics_id, path = upload_validation(Store(settings.data_dir), client, name, Path(predictions),
                                             client.resolve_model_id(name),
                                             min_tickers=settings.submission.min_tickers,
                                             model_dir=Path(model_dir))
    log.info("diagnostics of %s uploaded (%s): %s", name, path.name, diagnostics_id)
    return diagnostics_id


def model_diagnostics(settings: Settings, uploaded: str | None = None, *,
                      sleep: Callable[[float], None] = time.sleep) -> DiagnosticsOutcome:
    """Poll the model's uploads not done yet (``uploaded``, this round's: on the whole
    ``[diagnostics] poll_waits_seconds`` schedule; older ones once) and its newest result with the
    agreement table."""
    name = str(settings.numerai.model_name)
    tournament, store = settings.tournament, Store(settings.data_dir)
    client = client_for(settings, tournament)
    if not history(store, tournament, name).empty:
        refresh_pending(store, tournament, {name: client.resolve_model_id(name)}, client.diagnostics,
                        waits=settings.diagnostics.poll_waits_seconds, patient={uploaded} if uploaded else set(),
                        sleep=sleep)
    if history(store, tournament, name).empty:
        return DiagnosticsOutcome(name, "none", "no diagnostics kept for this model yet: it uploads after its next "
                                  "(re)training, or run `numerflow diagnostics --upload`")
    result, agreement = latest_verdict(store, tournament, name, settings.diagnostics.agreement_tolerance)
    fresh = uploaded is not None and result.diagnostics_id == uploaded
    status = result.status if result.status in ("done", "pending") else "failed"
    message = ("Numerai's scoring of the validation predictions of the model trained this round" if fresh
               else f"the latest diagnostics, uploaded {history(store, tournament, name).iloc[-1]['uploaded_at']:%Y-%m-%d}")
    if status == "pending":
        message += "; still pending: the next round or `numerflow diagnostics` polls it again"
    elif status == "failed":
        message += f"; Numerai answered {result.status!r}: {result.raw.get('message') or 'no message'}"
    return DiagnosticsOutcome(name, status, message, result.diagnostics_id, fresh,
                              {k: v for k, v in result.summary("mean").items() if v is not None} or None,
                              tuple(row.as_dict() for row in agreement))


def failed_diagnostics(name: str, exc: BaseException) -> DiagnosticsOutcome:
    """A diagnostics step that failed: why, in one line (the round's upload stands)."""
    return DiagnosticsOutcome(name, "failed", f"diagnostics failed (the round's upload stands): "
                              f"{describe_failure(exc)}")


def diagnostics_line(outcome: DiagnosticsOutcome) -> str:
    """One line for summaries: status, Numerai's figures and the agreement verdict."""
    head = f"{outcome.status}" + (f" {outcome.diagnostics_id}" if outcome.diagnostics_id else "")
    figures = ", ".join(f"{k} {v:+.4f}" for k, v in (outcome.numerai or {}).items())
    rows = outcome.agreement
    agreement = ("; agreement: " + ", ".join(
        f"{r['score']} {'—' if r['difference'] is None else format(r['difference'], '+.4f')} on {r['eras']} eras"
        + (" CHECK" if r["flagged"] else " ok") for r in rows)) if rows else ""
    return f"{head}" + (f" (Numerai {figures})" if figures else "") + agreement + f" — {outcome.message}"


# ---------------------------------------------------------------- payout preview and neutral churn


def round_payout(settings: Settings, round_number: int | None) -> RoundPayout | None:
    """What Numerai pays this round (``roundScoreConfigs``); None without a round number."""
    if round_number is None:
        return None
    return client_for(settings, settings.tournament).round_payout(round_number)


def dataset_window(dataset_path: Path, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
    """numerflow's own numeric features of the dataset's rows from ``MAX_STALENESS_DAYS`` before
    ``first`` to ``last`` (one read for every date a neutral churn needs)."""
    start = (first - pd.Timedelta(days=MAX_STALENESS_DAYS)).to_pydatetime()
    frame = read_parquet(dataset_path, filter_expr=(ds.field("date") >= start) & (ds.field("date") <= last.to_pydatetime()))
    columns = [c for c in frame.columns if c.startswith("feature_") and pd.api.types.is_numeric_dtype(frame[c])]
    return frame[["ticker", "date", *columns]].assign(ticker=frame["ticker"].astype(str))


def features_at(window: pd.DataFrame, day: pd.Timestamp, tickers: pd.Index) -> pd.DataFrame:
    """The features of ``tickers`` at ``day``: each ticker's last row at most ``MAX_STALENESS_DAYS``
    before it (as live predictions take them), a missing value as the day's mean (neutral); by ticker."""
    rows = window[(window["date"] <= day) & (window["date"] >= day - pd.Timedelta(days=MAX_STALENESS_DAYS))
                  & window["ticker"].isin(tickers)]
    latest = rows.sort_values(["ticker", "date"]).drop_duplicates("ticker", keep="last")
    values = latest.set_index("ticker").drop(columns=["date"]).astype("float64")
    return values.fillna(values.mean()).fillna(0.0)


def neutral_churn_check(settings: Settings, submission: pd.DataFrame, round_label: str, dataset_path: Path,
                        live_date: str, now: dt.datetime | None = None) -> dict:
    """Neutral churn of a Signals submission against the model's recent ones, neutralised against
    numerflow's own features of the round's dataset (at the live date, and at the day before each past
    submission was sent), gated on ``submission.min_neutral_churn_penalty``: raises in ``refuse`` mode below the
    floor; else the report carries the ``warning`` (or None)."""
    rules = settings.submission
    previous = recent_submissions(Store(settings.data_dir), settings.tournament, settings.numerai.model_name,
                                  lookback_days=rules.churn_lookback_days, limit=rules.churn_history,
                                  exclude_round=round_label, now=now)
    today = pd.Timestamp(live_date)
    # A round's live data are the close before it opens: a past submission used the features of the day
    # before it was sent (or the last trading day before that).
    days = {past.round_label: pd.Timestamp(past.submitted_at.date()) - pd.Timedelta(days=1) for past in previous}
    window = dataset_window(dataset_path, min([today, *days.values()]), max([today, *days.values()]))
    current = features_at(window, today, pd.Index(submission.iloc[:, 0].astype(str)))

    def at(past: PastSubmission) -> pd.DataFrame:
        return features_at(window, days[past.round_label], pd.Index(past.signal.index.astype(str)))[current.columns]

    used = f"numerflow's own {len(current.columns)} features ({', '.join(current.columns[:6])}" + (
        ", …)" if len(current.columns) > 6 else ")") + " (Numerai publishes no live neutralizer)"
    report = neutral_churn_report(submission, previous, current, at, rules, used)
    report["warning"] = neutral_churn_gate(report)
    return report


def submission_verdict(settings: Settings, predictions_path: str, round_label: str, *, model_dir: str,
                       dataset_path: str | None, live_date: str, payout: RoundPayout | None,
                       live: bool) -> dict[str, Any]:
    """A submission's extra checks before it is written: Signals' neutral churn (the gate may refuse
    here) and the payout preview of the round's configuration for the model's stake, from its
    validation figures with the neutral-churn penalty. Keys added to the submission's checks."""
    checks: dict[str, Any] = {}
    penalty = None
    if settings.tournament == "signals" and dataset_path is not None:
        submission = build_submission(read_parquet(Path(predictions_path)), settings.tournament)
        report = neutral_churn_check(settings, submission, round_label, Path(dataset_path), live_date)
        if report["warning"]:
            log.warning(report["warning"])
        penalty = report["neutral_churn_penalty"]
        checks.update(neutral_churn=neutral_churn_message(report), max_neutral_churn=report["max_neutral_churn"],
                      neutral_churn_penalty=penalty, neutral_churn_warning=report["warning"])
    if payout is None:
        checks["payout"] = "no payout preview: " + ("Numerai gave no payout configuration for this round (not "
                                                    "listed yet, or not read: see the log)"
                                                    if live else "a demo round has no Numerai payout")
        return checks
    metrics = read_json(Path(model_dir) / META_FILE).get("validation_metrics") or {}
    estimates, sources = local_estimates(metrics, settings.tournament)
    preview = payout_preview(payout, estimates, sources=sources, stake=settings.numerai.stake, churn_penalty=penalty)
    checks.update(payout=preview.text(), payout_preview={**preview.as_dict(), "lines": [
        {"name": line.display_name, "multiplier": line.multiplier, "estimate": line.estimate, "source": line.source}
        for line in preview.lines]})
    return checks


def verdict_numbers(checks: dict[str, Any]) -> dict[str, Any]:
    """The verdict's figures of a submission's checks (for --json summaries)."""
    preview = checks.get("payout_preview") or {}
    return {"payout": checks.get("payout"), "payout_fraction": preview.get("fraction"),
            "payout_amount": preview.get("amount"), "partial": preview.get("partial"),
            "neutral_churn": checks.get("max_neutral_churn"), "neutral_churn_penalty": checks.get("neutral_churn_penalty")}
