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

from numerflow.flows.guard import (
    GuardDecision,
    demo_round_guard,
    demo_round_label,
    live_round_guard,
    missed_round,
)
from numerflow.flows.prices import demo_market, prices_flow, source_name, task_runner_for
from numerflow.flows.results import ModelChoice, RoundResult
from numerflow.flows.round import (
    STAGES,
    Mode,
    ModelsFailed,
    build_dataset_task,
    check_live_price_source,
    choose_models,
    mode_overrides,
    model_submission_dir,
    prepare_round,
    raise_failures,
    round_kind,
    run_round,
    stage,
)
from numerflow.tasks.core.config import (
    ModelSettings,
    Settings,
    load_settings,
    merge_overrides,
    model_table,
    settings_overrides,
)
from numerflow.tasks.core.store import Store, new_run_id, write_json
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


def round_guard(settings: Settings, mode: Mode, force: bool,
                models: list[ModelSettings | None]) -> tuple[GuardDecision, list[ModelSettings | None]]:
    """Should this firing run at all, and for which models? Demo: not for a model whose round was
    recorded. Live: not if the round is closed or too little time is left before the close, and
    not for a model already submitted. A ``submit = false`` model runs whenever another does."""
    names = [m.name if m is not None else settings.numerai.model_name for m in models]
    if mode == "demo":
        label = demo_round_label(demo_market(settings).end)
        decisions = [demo_round_guard(model_submission_dir(settings, label, m.name if m is not None else None),
                                      label, force=force) for m in models]
    else:
        current = client_for(settings, settings.tournament).current_round()
        ledger = SubmissionLedger.for_settings(settings)
        now = dt.datetime.now(dt.UTC)
        min_left = dt.timedelta(minutes=settings.schedule.min_minutes_before_deadline)
        decisions = [live_round_guard(current, ledger.get(settings.tournament, current.number, name)
                                      if current is not None and name else None,
                                      now=now, force=force, min_time_left=min_left) for name in names]
    submitting = [i for i, m in enumerate(models) if m is None or m.submit] or list(range(len(models)))
    pending = [i for i in submitting if decisions[i].proceed]
    if not pending:
        return decisions[submitting[0]], []
    if mode == "live":  # a round that will run: refuse a configuration it cannot run with, before any work
        check_live_price_source(settings)
    keep = [m for i, m in enumerate(models) if i in pending or (m is not None and not m.submit)]
    decision = decisions[pending[0]]
    if len(models) > 1:
        decision = replace(decision, reason=f"{decision.reason}; models to run: "
                           f"{', '.join(str(m.name) for m in keep if m is not None)}")
    return decision, keep


def notify_missed_round(settings: Settings, decision: GuardDecision, models: list[ModelSettings | None]) -> None:
    """One notification per round that could not run before its close (``missed_round``): a marker
    in the store keeps the later firings of the same round quiet. Never raises."""
    from prefect.runtime import flow_run

    from numerflow.flows.alerts import notify_failure

    try:
        if decision.round_number is None:
            return
        ledger = SubmissionLedger.for_settings(settings)
        names = [m.name if m is not None else settings.numerai.model_name for m in models
                 if m is None or m.submit]
        unsubmitted = [str(n) for n in names
                       if not n or ledger.get(settings.tournament, decision.round_number, n) is None]
        expected = flow_run.scheduled_start_time
        why = missed_round(decision, expected_start=expected, unsubmitted=unsubmitted)
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
    from numerflow.flows.scores import refresh_scores
    from numerflow.tasks.numerai.client import resolve_keys

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

    from numerflow.flows.run_report import render_round_report

    ui = PREFECT_UI_URL.value()
    url = f"{ui.rstrip('/')}/runs/flow-run/{flow_run.id}" if ui and flow_run.id else None
    markdown = render_round_report(result, flow_run_url=url)
    create_markdown_artifact(markdown, key="round-report", description=f"numerflow round {result.round_label}")
    return markdown


# No flow retries: a retry would sleep in this process holding the deployment's only concurrency
# slot, and come back after a cancel. The schedule's later firings (and the short task retries of
# network steps) are the retries.
@flow(name="scheduled-round", log_prints=True, retries=0, timeout_seconds=240 * 60,
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
    """A round that may run unattended: skips at once when the round is closed or already submitted.

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
        seed: Demo only: random seed of the demo market (empty: demo.seed).
        data_dir: data store directory; empty: the configured data_dir.
        overrides: any settings as nested JSON, e.g. {"training": {"num_boost_round": 50}}; they win
            over numerflow.toml and the environment.
    """
    params = {"tournament": tournament, "model_name": model_name, "tickers": tickers, "years": years,
              "seed": seed, "data_dir": data_dir, "overrides": overrides}
    return guarded_round(params, mode, force=force, retrain=retrain)


def guarded_round(params: dict[str, Any], mode: Mode, *, force: bool, retrain: bool, prepared: bool = False) -> Any:
    """settings → guard (skip, or the models still to submit) → the round (``prepared``: from the
    stored prices, no ingest) → report → fail naming each failed model. Call inside a flow."""
    with stage("settings", unattended=True):
        overrides_all = mode_overrides(mode, round_overrides(params))
        settings = load_settings(**overrides_all)
    with stage("guard", unattended=True):
        model_name = params.get("model_name")
        table = model_table(settings, model_name if settings.models else None)
        decision, models = round_guard(settings, mode, force, table)
    if not models:
        notify_missed_round(settings, decision, table)
        return _skipped(decision)
    result = run_round(settings, overrides_all, round_kind(mode), force=force, retrain=retrain, unattended=True,
                       models=models, prepared=prepared)
    result = replace(result, guard=decision, scores=round_scores(settings, mode))
    with stage("report", unattended=True):
        publish_round_report(result)
    with stage("models", unattended=True):  # a failed model fails the round, naming each (the rest uploaded)
        return raise_failures(result)


@flow(name="scheduled-prepare", log_prints=True, retries=0, timeout_seconds=240 * 60,
      on_failure=[notify_round_failure], on_crashed=[notify_round_failure])
def scheduled_prepare_flow(
    mode: Literal["live", "demo"] = "live",
    retrain: bool = False,
    tournament: Literal["signals", "crypto"] | None = None,
    tickers: int | None = None,
    years: float | None = None,
    seed: int | None = None,
    data_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """The daily cadence's first stage, before the round opens: universe, prices, features, and
    every model trained when due, so the submit after the open only predicts.

    Args:
        mode: "live": prepare Numerai's next round (its window read from Numerai); "demo": the
            offline demo market.
        retrain: train new models even when fresh ones of the same lineage exist.
        tournament: Numerai tournament; empty: the configured one (signals).
        tickers: Demo only: number of tickers of the demo market (empty: demo.tickers).
        years: Demo only: years of daily bars of the demo market (empty: demo.years).
        seed: Demo only: random seed of the demo market (empty: demo.seed).
        data_dir: data store directory; empty: the configured data_dir.
        overrides: any settings as nested JSON, e.g. {"training": {"num_boost_round": 50}}.
    """
    params = {"tournament": tournament, "tickers": tickers, "years": years, "seed": seed, "data_dir": data_dir,
              "overrides": overrides}
    with stage("settings", unattended=True):
        overrides_all = mode_overrides(mode, round_overrides(params))
        settings = load_settings(**overrides_all)
    round_number = None
    if mode == "live":
        with stage("window", unattended=True):
            check_live_price_source(settings)
            client = client_for(settings, settings.tournament)
            window = client.current_round() or client.upcoming_round()
        if window is None:
            return _skipped(GuardDecision(False, f"skipped: Numerai lists no open or upcoming {settings.tournament} "
                                          "round to prepare"))
        get_run_logger().info("preparing %s round %d (%s)", settings.tournament, window.number, window.window())
        round_number = window.number
    prepared = prepare_round(settings, overrides_all, round_kind(mode, round_number), retrain=retrain,
                             unattended=True)
    with stage("models", unattended=True):
        if prepared.failures:
            raise ModelsFailed("; ".join(f"{name}: {cause}" for name, cause in prepared.failures.items()))
    return prepared


@flow(name="scheduled-submit", log_prints=True, retries=0, timeout_seconds=240 * 60,
      on_failure=[notify_round_failure], on_crashed=[notify_round_failure])
def scheduled_submit_flow(
    mode: Literal["live", "demo"] = "live",
    force: bool = False,
    tournament: Literal["signals", "crypto"] | None = None,
    model_name: str | None = None,
    tickers: int | None = None,
    years: float | None = None,
    seed: int | None = None,
    data_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """The daily cadence's second stage, after the round opens: this round's universe, the prepared
    prices and features, then every model predicted, validated and uploaded once. Skips at once
    when the round is closed or every model already submitted.

    Args:
        mode: "live": this Numerai round; "demo": the offline demo market.
        force: upload again even if this round was already submitted (never opens a closed round).
        tournament: Numerai tournament; empty: the configured one (signals).
        model_name: Numerai model name; empty: numerai.model_name. With a [[models]] table: submit
            that model only.
        tickers: Demo only: number of tickers of the demo market (empty: demo.tickers).
        years: Demo only: years of daily bars of the demo market (empty: demo.years).
        seed: Demo only: random seed of the demo market (empty: demo.seed).
        data_dir: data store directory; empty: the configured data_dir.
        overrides: any settings as nested JSON, e.g. {"training": {"num_boost_round": 50}}.
    """
    params = {"tournament": tournament, "model_name": model_name, "tickers": tickers, "years": years,
              "seed": seed, "data_dir": data_dir, "overrides": overrides}
    return guarded_round(params, mode, force=force, retrain=False, prepared=True)


@flow(name="scheduled-train", log_prints=True, timeout_seconds=360 * 60)
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
    kind = round_kind("demo" if settings.price_source == "demo" else "live")
    table = model_table(settings)
    choices = choose_models(settings, overrides or {}, kind, dataset, latest_round_number(settings), table,
                            retrain=retrain, run_id=new_run_id(), unattended=False)
    if table == [None]:
        assert not isinstance(choices[0], str)  # the single model's failure was raised
        return choices[0]
    failed = {m.name: c for m, c in zip(table, choices, strict=True) if m is not None and isinstance(c, str)}
    if failed:
        raise ModelsFailed("; ".join(f"{name}: {cause}" for name, cause in failed.items()))
    return {m.name: c for m, c in zip(table, choices, strict=True) if m is not None and not isinstance(c, str)}


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
    """Manual: re-pull every ticker's whole history from the configured or given source.

    Args:
        backfill: re-pull every ticker's whole history (false: only new bars, as a round does).
        source: price source; empty: the configured price_source ("demo" is the offline demo market).
        overrides: any settings as nested JSON, e.g. {"yahoo": {"requests_per_second": 1.0}}.
    """
    overrides = merge_overrides(overrides or {}, {"price_source": source} if source else None)
    settings = load_settings(**overrides)
    return prices_flow.with_options(task_runner=task_runner_for(settings))(overrides=overrides, backfill=backfill)
