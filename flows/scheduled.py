"""The flows numerflow runs unattended (served by deployments/serve.py or a worker):

- ``scheduled_round_flow``: guard (round open? already submitted?) → the round's stages
  (flows/round.py, each a named failure point) → one Markdown run report. Retried as a whole
  (flow retries), except for bad input; bounded by a timeout; a failure or crash posts to the
  configured webhook naming the stage and cause.
- ``scheduled_train_flow``: fresh prices, then retrain.
- ``ingest_backfill_flow``: re-pull every ticker's whole history (manual).

Retries/timeouts in the decorators are the defaults of ``OrchestrationSettings``; serve.py
applies the configured values with ``with_options`` (flows/deployments.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State
from prefect.states import Completed

from numerflow.flows.guard import GuardDecision, demo_round_guard, demo_round_label, live_round_guard
from numerflow.flows.prices import demo_market, prices_flow, source_name, task_runner_for
from numerflow.flows.results import ModelChoice, RoundResult
from numerflow.flows.round import (
    STAGES,
    Mode,
    build_dataset_task,
    check_live_price_source,
    mode_overrides,
    round_kind,
    run_round,
    stage,
    train_or_reuse,
)
from numerflow.tasks.core.config import Settings, load_settings, merge_overrides, settings_overrides
from numerflow.tasks.core.store import Store, new_run_id
from numerflow.tasks.numerai.client import client_for
from numerflow.tasks.numerai.ledger import SubmissionLedger


def round_overrides(params: dict[str, Any]) -> dict[str, Any]:
    """Settings overrides from the scheduled round's parameters (also read by the failure hook)."""
    return settings_overrides(data_dir=params.get("data_dir"), tournament=params.get("tournament"),
                              model_name=params.get("model_name"), tickers=params.get("tickers"),
                              years=params.get("years"), seed=params.get("seed"), signal=params.get("signal"),
                              extra=params.get("overrides"))


def notify_round_failure(flow, flow_run, state) -> None:
    """on_failure / on_crashed hook: POST stage + cause to the webhook (flows/alerts.py). Never raises."""
    from prefect.settings import PREFECT_UI_URL

    from numerflow.flows.alerts import notify_failure

    params = dict(getattr(flow_run, "parameters", None) or {})
    try:
        settings = load_settings(**round_overrides(params))
    except Exception:  # noqa: BLE001 - the run's parameters may be what was wrong
        settings = load_settings()
    stage_name = STAGES.pop(str(flow_run.id), "start")
    notify_failure(settings, flow_name=flow.name, flow_run_name=flow_run.name, stage=stage_name,
                   cause=state.message or state.name, state_name=state.name, flow_run_id=str(flow_run.id),
                   ui_url=PREFECT_UI_URL.value())


def round_guard(settings: Settings, mode: Mode, force: bool) -> GuardDecision:
    """Should this firing run at all? Demo: not if its round was recorded. Live: not if the round
    is closed, this model already submitted, or too little time is left before the close."""
    if mode == "demo":
        label = demo_round_label(demo_market(settings).end)
        return demo_round_guard(Store(settings.data_dir).submission_dir(settings.tournament, label), label,
                                force=force)
    current = client_for(settings, settings.tournament).current_round()
    model = settings.numerai.model_name
    entry = (SubmissionLedger.for_settings(settings).get(settings.tournament, current.number, model)
             if current is not None and model else None)
    decision = live_round_guard(current, entry, now=dt.datetime.now(dt.UTC), force=force,
                                min_time_left=dt.timedelta(minutes=settings.schedule.min_minutes_before_deadline))
    if decision.proceed:  # a round that will run: refuse a configuration it cannot run with, before any work
        check_live_price_source(settings)
    return decision


def _skipped(decision: GuardDecision) -> State:
    get_run_logger().info(decision.reason)
    return Completed(name="Skipped", message=decision.reason, data={"skipped": True, **decision.as_dict()})


def publish_round_report(result: RoundResult) -> str:
    from prefect.runtime import flow_run
    from prefect.settings import PREFECT_UI_URL

    from numerflow.flows.run_report import render_round_report

    ui = PREFECT_UI_URL.value()
    url = f"{ui.rstrip('/')}/runs/flow-run/{flow_run.id}" if ui and flow_run.id else None
    markdown = render_round_report(result, flow_run_url=url)
    create_markdown_artifact(markdown, key="round-report", description=f"numerflow round {result.round_label}")
    return markdown


@flow(name="scheduled-round", log_prints=True, retries=2, retry_delay_seconds=900, timeout_seconds=240 * 60,
      on_failure=[notify_round_failure], on_crashed=[notify_round_failure])
def scheduled_round_flow(
    mode: Literal["live", "demo"] = "live",
    force: bool = False,
    retrain: bool = False,
    tournament: Literal["signals", "crypto"] | None = None,
    model_name: str | None = None,
    tickers: int | None = None,
    years: float | None = None,
    seed: int | None = None,
    data_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """A round that may run unattended: skips at once when the round is closed or already submitted
    (``force`` re-submits an open round). ``tickers``/``years``/``seed`` shape the demo market;
    ``overrides`` are any settings, e.g. ``{"training": {"num_boost_round": 50}}``."""
    params = {"tournament": tournament, "model_name": model_name, "tickers": tickers, "years": years,
              "seed": seed, "data_dir": data_dir, "overrides": overrides}
    with stage("settings", unattended=True):
        overrides_all = mode_overrides(mode, round_overrides(params))
        settings = load_settings(**overrides_all)
    with stage("guard", unattended=True):
        decision = round_guard(settings, mode, force)
    if not decision.proceed:
        return _skipped(decision)
    result = run_round(settings, overrides_all, round_kind(mode), force=force, retrain=retrain, unattended=True)
    result = replace(result, guard=decision)
    with stage("report", unattended=True):
        publish_round_report(result)
    return result


@flow(name="scheduled-train", log_prints=True, timeout_seconds=360 * 60)
def scheduled_train_flow(retrain: bool = True, ingest_first: bool = True,
                         overrides: dict[str, Any] | None = None) -> ModelChoice:
    """Retrain on its own schedule: fresh prices first (incremental), then a new model."""
    settings = load_settings(**(overrides or {}))
    if ingest_first:
        prices_flow.with_options(task_runner=task_runner_for(settings))(overrides=overrides)
    # The tournament's own price store (crypto bars live apart from stocks).
    dataset = build_dataset_task(settings, source_name(settings))
    # The same kind as the round's, so the model has the lineage the next round looks for.
    kind = round_kind("demo" if settings.price_source == "demo" else "live")
    return train_or_reuse(settings, kind, dataset, latest_round_number(settings), retrain, new_run_id())


def latest_round_number(settings: Settings) -> int | None:
    """Training alone has no round: the latest universe snapshot's (for Numerai's training data)."""
    from numerflow.tasks.numerai.universe import latest_universe_snapshot

    path = latest_universe_snapshot(Store(settings.data_dir), settings.tournament)
    if path is None or not path.stem.startswith("round-"):  # none yet, or a demo store
        return None
    return int(path.stem.removeprefix("round-"))


@flow(name="ingest-backfill", log_prints=True, timeout_seconds=720 * 60)
def ingest_backfill_flow(backfill: bool = True, source: Literal["demo", "yahoo", "files"] | None = None,
                         overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Manual: re-pull every ticker's whole history (``backfill``) from the configured or given source."""
    overrides = merge_overrides(overrides or {}, {"price_source": source} if source else None)
    settings = load_settings(**overrides)
    return prices_flow.with_options(task_runner=task_runner_for(settings))(overrides=overrides, backfill=backfill)
