"""The flows numerflow runs unattended (served by deployments/serve.py or a worker):

- ``scheduled_round_flow``: guard (round open? already submitted?) → the round, stage by stage →
  one Markdown run report. Retried as a whole (flow retries), except for bad input; bounded
  by a timeout; a failure or crash posts to the configured webhook naming the stage and cause.
- ``scheduled_train_flow``: fresh prices, then retrain.
- ``ingest_backfill_flow``: re-pull every ticker's whole history (manual).

Retries/timeouts in the decorators are the defaults of ``OrchestrationSettings``; serve.py
applies the configured values with ``with_options`` (flows/deployments.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.states import Completed

from numerflow.tasks.core.config import Settings, load_settings
from numerflow.tasks.core.errors import BadInputError, NumerflowError
from numerflow.flows.guard import GuardDecision, demo_round_guard, demo_round_label, live_round_guard

# Which stage each running round is in, by flow run id: read by the failure hook.
_STAGES: dict[str, str] = {}


class StageFailed(NumerflowError):
    """A round stage failed; the message names the stage and the original cause."""

    tag = "stage_failed"


def task_runner_for(settings: Settings):
    """The configured task runner for ingest batches: threads (default) or Dask."""
    o = settings.orchestration
    if o.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if o.dask_address:
            return DaskTaskRunner(address=o.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": o.dask_workers, "threads_per_worker":
                                              o.dask_threads_per_worker, "dashboard_address": None})
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=o.thread_workers)


def merge_overrides(base: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    """Nested merge: ``extra`` wins key by key (``{"training": {...}}`` keeps other training keys)."""
    out = dict(base)
    for key, value in (extra or {}).items():
        out[key] = merge_overrides(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _current_flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    return flow_run.id


def stop_flow_retries() -> None:
    """Bad input: tell the server not to re-run this flow (Prefect's flow retries have no condition)."""
    from prefect import get_client

    run_id = _current_flow_run_id()
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        policy = client.read_flow_run(run_id).empirical_policy
        client.update_flow_run(run_id, empirical_policy=policy.model_copy(update={"retries": 0}))


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Name the running stage (for the failure message); a failure is re-raised naming it."""
    run_id = _current_flow_run_id() or "local"
    _STAGES[run_id] = name
    get_run_logger().info("stage %s", name)
    try:
        yield
    except BadInputError as exc:
        with contextlib.suppress(Exception):  # best effort: the failure itself must surface
            stop_flow_retries()
        raise StageFailed(f"stage '{name}' failed (bad input, not retried): {exc}") from exc
    except Exception as exc:
        raise StageFailed(f"stage '{name}' failed: {type(exc).__name__}: {exc}") from exc


def notify_round_failure(flow, flow_run, state) -> None:
    """on_failure / on_crashed hook: POST stage + cause to the webhook (tasks/notify.py). Never raises."""
    from prefect.settings import PREFECT_UI_URL

    from numerflow.flows.alerts import notify_failure

    params = dict(getattr(flow_run, "parameters", None) or {})
    try:
        settings = load_settings(**round_overrides(params))
    except Exception:  # noqa: BLE001 - the run's parameters may be what was wrong
        settings = load_settings()
    stage_name = _STAGES.pop(str(flow_run.id), "start")
    notify_failure(settings, flow_name=flow.name, flow_run_name=flow_run.name, stage=stage_name,
                   cause=state.message or state.name, state_name=state.name, flow_run_id=str(flow_run.id),
                   ui_url=PREFECT_UI_URL.value())


def round_overrides(params: dict[str, Any]) -> dict[str, Any]:
    """Settings overrides from the round flow's parameters."""
    from numerflow.flows.round import demo_overrides

    base = demo_overrides(tickers=params.get("tickers"), years=params.get("years"), seed=params.get("seed"),
                          signal=params.get("signal"), data_dir=params.get("data_dir"))
    if params.get("model_name"):
        base = merge_overrides(base, {"numerai": {"model_name": params["model_name"]}})
    if params.get("tournament"):
        base["tournament"] = params["tournament"]
    return merge_overrides(base, params.get("overrides"))


def _skipped(decision: GuardDecision) -> Completed:
    get_run_logger().info(decision.reason)
    return Completed(name="Skipped", message=decision.reason, data={"skipped": True, **decision.as_dict()})


def _publish_report(result: dict[str, Any], mode: str, round_label: str) -> str:
    from prefect.runtime import flow_run
    from prefect.settings import PREFECT_UI_URL

    from numerflow.flows.run_report import render_round_report, universe_size

    ui = PREFECT_UI_URL.value()
    url = f"{ui.rstrip('/')}/runs/flow-run/{flow_run.id}" if ui and flow_run.id else None
    markdown = render_round_report(result, mode=mode, round_label=round_label, flow_run_url=url,
                                   universe_tickers=universe_size(result["ingest"].get("universe_path")))
    create_markdown_artifact(markdown, key="round-report", description=f"numerflow round {round_label}")
    return markdown


def _demo_round(settings: Settings, overrides: dict[str, Any], force: bool, retrain: bool) -> Any:
    from numerflow.flows.round import demo_market, ingest_flow, predict_submit_flow, train_flow
    from numerflow.tasks.core.store import Store

    with stage("guard"):
        label = demo_round_label(demo_market(settings).end)
        decision = demo_round_guard(Store(settings.data_dir).submission_dir(settings.tournament, label), label,
                                    force=force)
    if not decision.proceed:
        return _skipped(decision)
    with stage("ingest"):
        ingested = ingest_flow.with_options(task_runner=task_runner_for(settings))(overrides)
    with stage("train"):
        trained = train_flow(overrides, retrain=retrain, source=ingested["prices"]["source"])
    with stage("predict-and-submit"):
        submitted = predict_submit_flow(trained["dataset"]["path"], trained["model"]["model_dir"],
                                        ingested["universe_path"], overrides, round_label=label, force=force)
    result = {"ingest": ingested, "train": trained, "submit": submitted}
    with stage("report"):
        _publish_report(result, "demo", label)
    return {**result, "round": label, "guard": decision.as_dict()}


def _live_round(settings: Settings, force: bool, retrain: bool, data_dir: str | None) -> Any:
    from numerflow.flows.numerai_round import numerai_round_flow
    from numerflow.tasks.numerai.client import client_for
    from numerflow.tasks.numerai.ledger import SubmissionLedger

    with stage("guard"):
        current = client_for(settings, settings.tournament).current_round()
        model = settings.numerai.model_name
        entry = (SubmissionLedger.for_settings(settings).get(settings.tournament, current.number, model)
                 if current is not None and model else None)
        decision = live_round_guard(
            current, entry, now=dt.datetime.now(dt.UTC), force=force,
            min_time_left=dt.timedelta(minutes=settings.schedule.min_minutes_before_deadline))
    if not decision.proceed:
        return _skipped(decision)
    with stage("numerai-round"):
        result = numerai_round_flow.with_options(task_runner=task_runner_for(settings))(
            tournament=settings.tournament, force=force, retrain=retrain, data_dir=data_dir,
            model_name=settings.numerai.model_name)
    with stage("report"):
        _publish_report(result, "live", decision.round_label or "")
    return {**result, "round": decision.round_label, "guard": decision.as_dict()}


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
    with stage("settings"):
        overrides_all = round_overrides(params)
        settings = load_settings(**overrides_all)
    if mode == "demo":
        return _demo_round(settings, overrides_all, force, retrain)
    return _live_round(settings, force, retrain, data_dir)


@flow(name="scheduled-train", log_prints=True, timeout_seconds=360 * 60)
def scheduled_train_flow(retrain: bool = True, ingest_first: bool = True,
                         overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Retrain on its own schedule: fresh prices first (incremental), then a new model."""
    from numerflow.flows.prices import prices_flow, source_name
    from numerflow.flows.round import train_flow

    settings = load_settings(**(overrides or {}))
    if ingest_first:
        prices_flow.with_options(task_runner=task_runner_for(settings))(overrides=overrides)
    # The tournament's own price store (crypto bars live apart from stocks).
    return train_flow(overrides, retrain=retrain, source=source_name(settings))


@flow(name="ingest-backfill", log_prints=True, timeout_seconds=720 * 60)
def ingest_backfill_flow(backfill: bool = True, source: Literal["demo", "yahoo", "files"] | None = None,
                         overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Manual: re-pull every ticker's whole history (``backfill``) from the configured or given source."""
    from numerflow.flows.prices import prices_flow

    overrides = merge_overrides(overrides or {}, {"price_source": source} if source else None)
    settings = load_settings(**overrides)
    return prices_flow.with_options(task_runner=task_runner_for(settings))(overrides=overrides, backfill=backfill)
