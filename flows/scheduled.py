"""The flows numerflow runs unattended (served by deployments/serve.py or a worker):

- ``scheduled_round_flow``: guard (round open? already submitted?) → the round's stages
  (flows/round.py, each a named failure point) → one Markdown run report. Never retried as a
  whole (the schedule's next firing is the retry; network tasks retry briefly); bounded by a
  timeout; a failure or crash posts to the configured webhook naming the stage and cause; a
  cancelled run posts nothing.
- ``scheduled_train_flow``: fresh prices, then retrain.
- ``ingest_backfill_flow``: re-pull every ticker's whole history (manual).

Timeouts in the decorators are the defaults of ``OrchestrationSettings``; serve.py applies the
configured values with ``with_options`` (flows/deployments.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State
from prefect.states import Completed

from numerflow.flows.policies import INGEST_TIMEOUT_SECONDS, ROUND_TIMEOUT_SECONDS, TRAIN_TIMEOUT_SECONDS
from numerflow.flows.prices import prices_flow, task_runner_for
from numerflow.flows.round import (
    ModelsFailed,
    RoundRun,
    build_dataset_task,
    finish_diagnostics,
    new_round,
    prepare_round,
    raise_failures,
    run_round,
    start_diagnostics,
    train_stage,
)
from numerflow.flows.stages import STAGES, stage
from numerflow.tasks.core.config import Settings, load_settings, merge_overrides, settings_overrides
from numerflow.tasks.core.store import Store, new_run_id, write_json
from numerflow.tasks.numerai.client import client_for
from numerflow.tasks.prices.configured import source_name
from numerflow.tasks.round.guard import GuardDecision, missed_round
from numerflow.tasks.round.models import RoundModel, failures_text, round_models
from numerflow.tasks.round.pending import models_to_run, unsubmitted
from numerflow.tasks.round.results import Mode, ModelChoice, RoundKind, RoundResult
from numerflow.tasks.round.signals import check_live_price_source, mode_overrides


def round_overrides(params: dict[str, Any]) -> dict[str, Any]:
    """Settings overrides from the scheduled round's parameters (also read by the failure hook)."""
    return settings_overrides(data_dir=params.get("data_dir"), tournament=params.get("tournament"),
                              model_name=params.get("model_name"), tickers=params.get("tickers"),
                              years=params.get("years"), seed=params.get("seed"), signal=params.get("signal"),
                              extra=params.get("overrides"))


def notify_round_failure(flow, flow_run, state) -> None:
    """on_failure / on_crashed hook: POST stage + cause to the webhook (tasks/round/alerts.py). Never raises."""
    from prefect.settings import PREFECT_UI_URL

    from numerflow.tasks.round.alerts import notify_failure

    if _cancelled(flow_run):  # a run the user cancelled is not a failure to report
        return
    params = dict(getattr(flow_run, "parameters", None) or {})
    try:
        settings = load_settings(**round_overrides(params))
    except Exception:  # noqa: BLE001 - the run's parameters may be what was wrong
        settings = load_settings()
    stage_name = STAGES.pop(str(flow_run.id), "start")
    notify_failure(settings, flow_name=flow.name, flow_run_name=flow_run.name, stage=stage_name,
                   cause=state.message or state.name, state_name=state.name, flow_run_id=str(flow_run.id),
                   ui_url=PREFECT_UI_URL.value())


def _cancelled(flow_run: Any) -> bool:
    """Whether the server has this run cancelling or cancelled (a kill can surface as a crash)."""
    from prefect import get_client

    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(flow_run.id).state
    except Exception:  # noqa: BLE001 - no server to ask: report the failure
        return False
    return state is not None and state.type.value in ("CANCELLING", "CANCELLED")


def notify_missed_round(settings: Settings, decision: GuardDecision, models: list[RoundModel]) -> None:
    """One notification per round that could not run before its close (``missed_round``): a marker
    in the store keeps the later firings of the same round quiet. Never raises."""
    from prefect.runtime import flow_run

    from numerflow.tasks.round.alerts import notify_failure

    try:
        if decision.round_number is None:
            return
        why = missed_round(decision, expected_start=flow_run.scheduled_start_time,
                           unsubmitted=unsubmitted(settings, decision.round_number, models))
        marker = Store(settings.data_dir).root / "notify" / f"missed-{settings.tournament}-{decision.round_number}.json"
        if why is None or marker.exists():
            return
        get_run_logger().warning(why)
        notify_failure(settings, flow_name=flow_run.flow_name or "scheduled-round", flow_run_name=flow_run.name or "",
                       stage="guard", cause=why, state_name="Missed", flow_run_id=flow_run.id)
        write_json(marker, {"round": decision.round_number, "reason": why, "at": dt.datetime.now(dt.UTC).isoformat()})
    except Exception as exc:  # noqa: BLE001 - a notice must never fail the run
        get_run_logger().warning("missed-round notice not sent: %s", exc)


def round_scores(settings: Settings, mode: Mode) -> Any:
    """After a live round with keys: the models' live scores (fetched into the history, alerts sent),
    for the report. Best effort: a failure is logged and never fails the round."""
    from numerflow.tasks.numerai.client import resolve_keys
    from numerflow.tasks.numerai.live_scores import refresh_scores

    if mode != "live":
        return None
    try:
        if resolve_keys(settings.numerai) is None:
            return None
        return refresh_scores(settings)
    except Exception as exc:  # noqa: BLE001 - scores are extra; the round's own outcome stands
        get_run_logger().warning("live scores not fetched: %s", exc)
        return None


def _skipped(decision: GuardDecision) -> State:
    get_run_logger().info(decision.reason)
    return Completed(name="Skipped", message=decision.reason, data={"skipped": True, **decision.as_dict()})


def publish_round_report(result: RoundResult) -> str:
    from prefect.runtime import flow_run
    from prefect.settings import PREFECT_UI_URL

    from numerflow.tasks.round.report import render_round_report

    ui = (PREFECT_UI_URL.value() or "").rstrip("/") or None
    markdown = render_round_report(result, ui_url=ui, flow_run_id=flow_run.id)
    create_markdown_artifact(markdown, key="round-report", description=f"numerflow round {result.round_label}")
    return markdown


# No flow retries: a retry would sleep in this process holding the deployment's only concurrency
# slot, and come back after a cancel. The schedule's later firings (and the short task retries of
# network steps) are the retries.
@flow(name="scheduled-round", log_prints=True, retries=0, timeout_seconds=ROUND_TIMEOUT_SECONDS,
      on_failure=[notify_round_failure], on_crashed=[notify_round_failure])
def scheduled_round_flow(
    mode: Literal["live", "demo"] = "live",
    force: bool = False,
    retrain: bool = False,
    tournament: Literal["signals", "crypto"] | None = None,
    model_name: str | None = None,
    tickers: int | None = None,
    years: float | None = None,
    signal: float | None = None,
    seed: int | None = None,
    data_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """A round that may run unattended: skips at once when the round is closed or already submitted.
    Options left empty take the configured value.

    Args:
        mode: "live": this Numerai round (universe, prices, upload); "demo": the offline demo market
            (nothing leaves the machine).
        force: upload again even if this round was already submitted (never opens a closed round).
        retrain: train new models even when fresh ones of the same lineage exist.
        tournament: Numerai tournament; empty: the configured one (signals).
        model_name: Numerai model name; empty: numerai.model_name. With a [[models]] table: run that
            model only.
        tickers: Demo only: number of tickers of the demo market (empty: demo.tickers).
        years: Demo only: years of daily bars of the demo market (empty: demo.years).
        signal: Demo only: planted signal strength, 0 = pure noise (empty: demo.signal).
        seed: Demo only: random seed of the demo market (empty: demo.seed).
        data_dir: data store directory; empty: the configured data_dir.
        overrides: any settings as nested JSON, e.g. {"training": {"num_boost_round": 50}}; they win
            over numerflow.toml and the environment.
    """
    params = {"tournament": tournament, "model_name": model_name, "tickers": tickers, "years": years,
              "signal": signal, "seed": seed, "data_dir": data_dir, "overrides": overrides}
    return guarded_round(round_overrides(params), mode, model_name=model_name, force=force, retrain=retrain)


def guarded_round(overrides: dict[str, Any], mode: Mode, *, model_name: str | None, force: bool, retrain: bool,
                  prepared: bool = False) -> Any:
    """settings → guard (skip, or the models still to submit) → the round (``prepared``: from the
    stored prices, no ingest) → report → fail naming each failed model. Call inside a flow."""
    with stage("settings", unattended=True):
        run = new_round(mode_overrides(mode, overrides), RoundKind(mode), only=model_name, force=force,
                        retrain=retrain, unattended=True, prepared=prepared)
    with stage("guard", unattended=True):
        decision, models = models_to_run(run.settings, mode, force, run.models)
        if models and mode == "live" and run.tournament.ingests_prices:  # refused before any work
            check_live_price_source(run.settings)
    if not models:
        notify_missed_round(run.settings, decision, run.models)
        return _skipped(decision)
    result = run_round(replace(run, models=models))
    result = replace(result, guard=decision, scores=round_scores(run.settings, mode))
    with stage("report", unattended=True):
        publish_round_report(result)
    with stage("models", unattended=True):  # a failed model fails the round, naming each (the rest uploaded)
        return raise_failures(result)


@flow(name="scheduled-prepare", log_prints=True, retries=0, timeout_seconds=ROUND_TIMEOUT_SECONDS,
      on_failure=[notify_round_failure], on_crashed=[notify_round_failure])
def scheduled_prepare_flow(
    mode: Literal["live", "demo"] = "live",
    retrain: bool = False,
    tournament: Literal["signals", "crypto"] | None = None,
    tickers: int | None = None,
    years: float | None = None,
    signal: float | None = None,
    seed: int | None = None,
    data_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """The daily cadence's first stage, before the round opens: universe, prices, features, and
    every model trained when due, so the submit after the open only predicts. Options left empty
    take the configured value.

    Args:
        mode: "live": prepare Numerai's next round (its window read from Numerai); "demo": the
            offline demo market.
        retrain: train new models even when fresh ones of the same lineage exist.
        tournament: Numerai tournament; empty: the configured one (signals).
        tickers: Demo only: number of tickers of the demo market (empty: demo.tickers).
        years: Demo only: years of daily bars of the demo market (empty: demo.years).
        signal: Demo only: planted signal strength, 0 = pure noise (empty: demo.signal).
        seed: Demo only: random seed of the demo market (empty: demo.seed).
        data_dir: data store directory; empty: the configured data_dir.
        overrides: any settings as nested JSON, e.g. {"training": {"num_boost_round": 50}}.
    """
    params = {"tournament": tournament, "tickers": tickers, "years": years, "signal": signal, "seed": seed,
              "data_dir": data_dir, "overrides": overrides}
    with stage("settings", unattended=True):
        run = new_round(mode_overrides(mode, round_overrides(params)), RoundKind(mode), retrain=retrain,
                        unattended=True)
    if mode == "live":
        with stage("window", unattended=True):
            check_live_price_source(run.settings)
            client = client_for(run.settings, run.settings.tournament)
            window = client.current_round() or client.upcoming_round()
        if window is None:
            return _skipped(GuardDecision(False, "skipped: Numerai lists no open or upcoming "
                                          f"{run.settings.tournament} round to prepare"))
        get_run_logger().info("preparing %s round %d (%s)", run.settings.tournament, window.number, window.window())
        run = replace(run, kind=RoundKind(mode, window.number))
    prepared = prepare_round(run)
    with stage("models", unattended=True):
        if prepared.failures:
            raise ModelsFailed(failures_text(prepared.failures))
    return prepared


@flow(name="scheduled-submit", log_prints=True, retries=0, timeout_seconds=ROUND_TIMEOUT_SECONDS,
      on_failure=[notify_round_failure], on_crashed=[notify_round_failure])
def scheduled_submit_flow(
    mode: Literal["live", "demo"] = "live",
    force: bool = False,
    tournament: Literal["signals", "crypto"] | None = None,
    model_name: str | None = None,
    tickers: int | None = None,
    years: float | None = None,
    signal: float | None = None,
    seed: int | None = None,
    data_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """The daily cadence's second stage, after the round opens: this round's universe, the prepared
    prices and features, then every model predicted, validated and uploaded once. Skips at once
    when the round is closed or every model already submitted. Options left empty take the
    configured value.

    Args:
        mode: "live": this Numerai round; "demo": the offline demo market.
        force: upload again even if this round was already submitted (never opens a closed round).
        tournament: Numerai tournament; empty: the configured one (signals).
        model_name: Numerai model name; empty: numerai.model_name. With a [[models]] table: submit
            that model only.
        tickers: Demo only: number of tickers of the demo market (empty: demo.tickers).
        years: Demo only: years of daily bars of the demo market (empty: demo.years).
        signal: Demo only: planted signal strength, 0 = pure noise (empty: demo.signal).
        seed: Demo only: random seed of the demo market (empty: demo.seed).
        data_dir: data store directory; empty: the configured data_dir.
        overrides: any settings as nested JSON, e.g. {"training": {"num_boost_round": 50}}.
    """
    params = {"tournament": tournament, "model_name": model_name, "tickers": tickers, "years": years,
              "signal": signal, "seed": seed, "data_dir": data_dir, "overrides": overrides}
    return guarded_round(round_overrides(params), mode, model_name=model_name, force=force, retrain=False,
                         prepared=True)


@flow(name="scheduled-train", log_prints=True, timeout_seconds=TRAIN_TIMEOUT_SECONDS)
def scheduled_train_flow(retrain: bool = True, ingest_first: bool = True,
                         overrides: dict[str, Any] | None = None) -> ModelChoice | dict[str, ModelChoice]:
    """Retrain on its own schedule: fresh prices first (incremental), then a new model (with a
    [[models]] table: every model, by name; a failed one is named).

    Args:
        retrain: train a new model even when a fresh one of the same lineage exists.
        ingest_first: fetch new prices (incremental) before training.
        overrides: any settings as nested JSON, e.g. {"training": {"num_boost_round": 50}}.
    """
    settings = load_settings(**(overrides or {}))
    if ingest_first:
        prices_flow.with_options(task_runner=task_runner_for(settings))(overrides=overrides)
    # The tournament's own price store (crypto bars live apart from stocks).
    dataset = build_dataset_task(settings, source_name(settings))
    # The same kind as the round's, so the model has the lineage the next round looks for.
    mode: Mode = "demo" if settings.price_source == "demo" else "live"
    run = RoundRun(settings, overrides or {}, RoundKind(mode), round_models(settings), retrain=retrain,
                   run_id=new_run_id())
    chosen, failures = train_stage(run, run.models, dataset=dataset, round_number=latest_round_number(settings))
    finish_diagnostics(start_diagnostics(run, chosen))  # numerai.upload_diagnostics: after each (re)training
    if failures:
        raise ModelsFailed(failures_text(failures))
    if not run.models[0].in_table:  # the single configured model
        return chosen[0][1]
    return {model.label: choice for model, choice in chosen}


def latest_round_number(settings: Settings) -> int | None:
    """Training alone has no round: the latest universe snapshot's (for Numerai's training data)."""
    from numerflow.tasks.numerai.universe import latest_universe_snapshot

    path = latest_universe_snapshot(Store(settings.data_dir), settings.tournament)
    if path is None or not path.stem.startswith("round-"):  # none yet, or a demo store
        return None
    return int(path.stem.removeprefix("round-"))


@flow(name="ingest-backfill", log_prints=True, timeout_seconds=INGEST_TIMEOUT_SECONDS)
def ingest_backfill_flow(backfill: bool = True, source: Literal["demo", "yahoo", "files"] | None = None,
                         overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Manual: re-pull every ticker's whole history from the configured or given source.

    Args:
        backfill: re-pull every ticker's whole history (false: only new bars, as a round does).
        source: price source; empty: the configured price_source ("demo" is the offline demo market).
        overrides: any settings as nested JSON, e.g. {"yahoo": {"requests_per_second": 1.0}}.
    """
    overrides = merge_overrides(overrides or {}, {"price_source": source} if source else None)
    settings = load_settings(**overrides)
    return prices_flow.with_options(task_runner=task_runner_for(settings))(overrides=overrides, backfill=backfill)
