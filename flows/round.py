"""numerflow's flows, read top to bottom like the pipeline:

    universe → ingest prices → features + targets → train (or reuse) → predict live → submit

Each task is a thin wrapper over a ``tasks/`` function, states its retries and timeout here,
and passes references (paths, ids, small dicts), never DataFrames.
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from numerflow.flows.policies import NETWORK_RETRY_DELAYS, RETRY_JITTER, retry_only_transient
from numerflow.tasks.core.config import Settings, load_settings
from numerflow.tasks.model.dataset import build_dataset
from numerflow.tasks.model.predict import predict_live
from numerflow.tasks.model.report import write_report
from numerflow.tasks.prices.sources.demo import DemoMarket
from numerflow.tasks.core.store import Store, read_json, read_parquet, write_json
from numerflow.tasks.numerai.submission import build_submission, validate_submission, write_submission
from numerflow.tasks.model.training import META_FILE, latest_model, model_lineage, needs_training, train_and_register
from numerflow.tasks.numerai.universe import load_universe_ids, write_universe


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def demo_market(settings: Settings) -> DemoMarket:
    return DemoMarket.from_settings(settings.demo)


# ---------------------------------------------------------------- tasks


@task(
    name="fetch-universe",
    retries=3,
    retry_delay_seconds=NETWORK_RETRY_DELAYS,
    retry_jitter_factor=RETRY_JITTER,
    retry_condition_fn=retry_only_transient,
    timeout_seconds=600,
)
def fetch_universe(settings: Settings) -> str:
    market = demo_market(settings)
    snapshot = f"demo-{market.end.isoformat()}"
    return str(write_universe(Store(settings.data_dir), settings.tournament, snapshot, market.universe()))


def ingest_prices(settings: Settings, backfill: bool = False) -> dict[str, Any]:
    """Batched ingest tasks through ``tasks.ingest`` (flows/prices.py); call inside a flow.

    The demo market is ingested whole (delisted tickers included: survivorship-free history).
    """
    from numerflow.flows.prices import run_price_ingest, tickers_to_ingest

    summary = run_price_ingest(settings, tickers_to_ingest(settings), backfill=backfill)
    last = read_parquet(Path(summary["prices_dir"]), columns=["date"])["date"].max()
    return {**summary, "last_date": str(last.date())}


@task(name="build-dataset", retries=0, timeout_seconds=3600)
def build_dataset_task(settings: Settings, source: str) -> dict[str, Any]:
    return build_dataset(Store(settings.data_dir), source, settings.target).to_dict()


@task(name="train-model", retries=0, timeout_seconds=3 * 3600)
def train_model(settings: Settings, dataset_path: str, run_id: str, source: str) -> dict[str, Any]:
    result = train_and_register(Store(settings.data_dir), Path(dataset_path), settings.training, run_id,
                                lineage=model_lineage(settings, source))
    return {"model_id": result.model_id, "model_dir": result.model_dir,
            "validation_predictions": result.validation_predictions, "metrics": result.metrics}


@task(name="publish-report", retries=0, timeout_seconds=600)
def publish_report(settings: Settings, model_dir: str, metrics: dict, run_id: str) -> dict[str, str]:
    meta = read_json(Path(model_dir) / META_FILE)
    report = write_report(Store(settings.data_dir), run_id, metrics, meta)
    create_markdown_artifact(report["markdown_text"], key="validation-report",
                             description=f"Validation diagnostics of model {meta['model_id']}")
    return {k: v for k, v in report.items() if k != "markdown_text"}


@task(name="predict-live", retries=0, timeout_seconds=1800)
def predict_live_task(settings: Settings, dataset_path: str, model_dir: str, universe_path: str, run_id: str) -> dict:
    result = predict_live(
        Store(settings.data_dir), Path(dataset_path), Path(model_dir), load_universe_ids(Path(universe_path)),
        run_id, min_tickers=settings.submission.min_tickers, num_threads=settings.training.num_threads,
    )
    return result.__dict__


@task(name="write-submission", retries=0, timeout_seconds=600)
def write_submission_task(settings: Settings, predictions_path: str, universe_path: str, round_label: str) -> dict:
    store = Store(settings.data_dir)
    predictions = read_parquet(Path(predictions_path))
    submission = build_submission(predictions, settings.tournament)
    checks = validate_submission(
        submission, load_universe_ids(Path(universe_path)),
        tournament=settings.tournament, min_tickers=settings.submission.min_tickers,
    )
    path, sha256 = write_submission(submission, store.submission_dir(settings.tournament, round_label) / "submission.csv")
    create_table_artifact([checks], key="submission-checks", description=f"Submission checks, round {round_label}")
    return {"path": str(path), "sha256": sha256, "rows": checks["rows"], "checks": checks}


@task(name="upload-submission", retries=0, timeout_seconds=900)
def upload_submission(settings: Settings, submission: dict, round_label: str, live: bool = False,
                      force: bool = False) -> dict:
    if live:
        # A live round: the real upload (tasks/numerai.py): window guard, once per round and
        # model (ledger), dry run when there are no keys. Not retried here: a repeat could
        # double-submit; transient failures leave no ledger entry, so a re-run tries again.
        from numerflow.tasks.numerai.submit import submit_file

        outcome = submit_file(Path(submission["path"]), settings, force=force)
        get_run_logger().info(outcome.message)
        return {**outcome.as_dict(), "dry_run": outcome.dry_run, "reason": outcome.message}
    # Demo market: a dry run whose record says exactly what would be sent.
    store = Store(settings.data_dir)
    record = {
        "dry_run": True,
        "reason": "demo market: nothing leaves the machine",
        "tournament": settings.tournament,
        "round": round_label,
        "model_name": settings.numerai.model_name,
        "file": submission["path"],
        "sha256": submission["sha256"],
        "rows": submission["rows"],
        "recorded_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    path = write_json(store.submission_dir(settings.tournament, round_label) / "upload-record.json", record)
    get_run_logger().info("Dry run: would upload %s (%d rows, sha256 %s)", submission["path"],
                          submission["rows"], submission["sha256"][:12])
    return {**record, "record": str(path)}


# ---------------------------------------------------------------- flows


@flow(name="ingest", log_prints=True)
def ingest_flow(overrides: dict[str, Any] | None = None, backfill: bool = False) -> dict[str, Any]:
    """Universe snapshot and daily prices into the store."""
    settings = load_settings(**(overrides or {}))
    universe_path = fetch_universe(settings)
    prices = ingest_prices(settings, backfill=backfill)
    return {"universe_path": universe_path, "prices": prices}


@flow(name="train", log_prints=True)
def train_flow(overrides: dict[str, Any] | None = None, retrain: bool = False, source: str = "demo") -> dict[str, Any]:
    """Features + targets for the current price snapshot, then train unless a fresh model exists."""
    settings = load_settings(**(overrides or {}))
    run_id = new_run_id()
    dataset = build_dataset_task(settings, source)
    model, reason = train_or_reuse(settings, dataset["path"], dataset["feature_names"], source, retrain, run_id)
    return {"dataset": dataset, "model": model, "decision": reason}


def train_or_reuse(
    settings: Settings, training_path: str, feature_names: list[str], lineage_source: str, retrain: bool, run_id: str
) -> tuple[dict[str, Any], str]:
    """Train (and publish the report) unless the registry has a fresh model of the same lineage.
    Call inside a flow. Returns (model summary, the decision's reason)."""
    store = Store(settings.data_dir)
    lineage = model_lineage(settings, lineage_source)
    must_train, reason = needs_training(
        store, settings.training.model_max_age_days, feature_names, force=retrain, lineage=lineage
    )
    get_run_logger().info("Training decision: %s", reason)
    if must_train:
        trained = train_model(settings, training_path, run_id, lineage_source)
        report = publish_report(settings, trained["model_dir"], trained["metrics"], run_id)
        return {"model_id": trained["model_id"], "model_dir": trained["model_dir"], "trained": True,
                "validation": trained["metrics"]["corr"], "report": report}, reason
    model_dir = latest_model(store)
    meta = read_json(model_dir / META_FILE)
    return {"model_id": meta["model_id"], "model_dir": str(model_dir), "trained": False,
            "validation": meta["validation_metrics"]["corr"], "report": None}, reason


@flow(name="predict-and-submit", log_prints=True)
def predict_submit_flow(
    dataset_path: str, model_dir: str, universe_path: str, overrides: dict[str, Any] | None = None,
    round_label: str | None = None, live: bool = False, force: bool = False,
) -> dict[str, Any]:
    """Score the live universe, build and validate the submission, upload (a live round:
    the real upload, see tasks/numerai.py; the demo: a dry run)."""
    settings = load_settings(**(overrides or {}))
    run_id = new_run_id()
    live_predictions = predict_live_task(settings, dataset_path, model_dir, universe_path, run_id)
    round_label = round_label or f"demo-{live_predictions['live_date']}"
    submission = write_submission_task(settings, live_predictions["path"], universe_path, round_label)
    upload = upload_submission(settings, submission, round_label, live=live, force=force)
    return {"live": live_predictions, "submission": submission, "upload": upload, "round": round_label}


@flow(name="round", log_prints=True)
def round_flow(
    tickers: int | None = None,
    years: float | None = None,
    signal: float | None = None,
    seed: int | None = None,
    retrain: bool = False,
    data_dir: str | None = None,
) -> dict[str, Any]:
    """A whole Numerai Signals round on the demo market: ingest → train → predict → submit."""
    overrides = demo_overrides(tickers=tickers, years=years, signal=signal, seed=seed, data_dir=data_dir)
    ingested = ingest_flow(overrides)
    trained = train_flow(overrides, retrain=retrain, source=ingested["prices"]["source"])
    submitted = predict_submit_flow(
        trained["dataset"]["path"], trained["model"]["model_dir"], ingested["universe_path"], overrides
    )
    return {"ingest": ingested, "train": trained, "submit": submitted}


def demo_overrides(**values: Any) -> dict[str, Any]:
    """Flow parameters → settings overrides (None = keep the configured value)."""
    overrides: dict[str, Any] = {}
    demo = {k: values[k] for k in ("tickers", "years", "signal", "seed") if values.get(k) is not None}
    if demo:
        overrides["demo"] = demo
    if values.get("data_dir"):
        overrides["data_dir"] = values["data_dir"]
    return overrides
