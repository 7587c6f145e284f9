"""Price ingest in Prefect: batched tasks over ``tasks.prices.ingest`` (never one task per ticker).

``run_price_ingest`` runs inside a flow: it plans the run (``tasks.prices.ingest.plan_ingest``),
submits one ``ingest-batch`` task per batch to the flow's thread pool, and finishes with the
ledger table + summary artifacts. Tasks pass the plan's run id and batch index, never
DataFrames; every source (demo, yahoo, files) goes through this same path. The Yahoo
source's limiter is process-wide (``tasks.prices.ratelimit.shared_limiter``), so it holds across
the task runner's threads. The Prefect side of the ingest (progress and ledger artifacts)
lives here; ``tasks.prices.ingest`` and ``tasks.prices.configured`` (the source) are plain Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.context import get_run_context

from numerflow.tasks.core.config import Settings
from numerflow.tasks.core.store import Store, read_parquet
from numerflow.tasks.prices.configured import (
    ingest_options,
    ledger_table,
    price_source,
    thread_workers,
    tickers_to_ingest,
)
from numerflow.tasks.prices.ingest import (
    STATUSES,
    RateLimitedError,
    finish_ingest,
    ingest_dir,
    ingest_lock,
    render_failure_groups,
    run_planned_batch,
    start_ingest,
)
from numerflow.tasks.prices.sources.outcomes import TracksFiles


def publish_ledger_artifact(ledger_path: Path, summary: dict[str, Any]) -> None:
    """Prefect table artifact of the ledger + markdown summary (no-op outside a Prefect run)."""
    try:
        get_run_context()
    except Exception:
        return
    ledger = read_parquet(ledger_path)
    source = str(summary.get("source", "prices")).lower()
    create_table_artifact(key=f"ingest-ledger-{source}", table=ledger_table(ledger),
                          description="Per-ticker ingest ledger (problems first)")
    counts = ", ".join(f"{s}: {summary.get(s, 0)}" for s in STATUSES)
    create_markdown_artifact(
        key=f"ingest-summary-{source}",
        markdown=f"### Ingest {summary['run_id']} ({summary['source']})\n\n{summary['tickers']} tickers — {counts}; "
        f"{summary['rows']} new rows, {summary['excluded_rows']} bars excluded, {summary['repulled']} re-pulled."
        + ("\n\n**Tickers without fresh bars, by cause**\n\n" + "\n".join(render_failure_groups(summary["causes"]))
           if summary.get("causes") else ""),
    )


class PrefectProgress:
    """``progress`` callback updating a Prefect progress artifact (no-op outside a Prefect run)."""

    def __init__(self, key: str = "ingest-progress") -> None:
        self._id = None
        try:
            get_run_context()
            self._id = create_progress_artifact(progress=0.0, key=key, description="price ingest batches")
        except Exception:
            self._id = None

    def __call__(self, done: int, total: int) -> None:
        if self._id is None:
            return
        update_progress_artifact(artifact_id=self._id, progress=100.0 * done / max(total, 1))  # type: ignore[arg-type]


# No task timeout: Prefect cannot interrupt blocking I/O in worker threads; every HTTP call
# has its own timeout instead (YahooSettings.timeout_seconds). Retries happen inside, per symbol.
@task(name="ingest-batch", retries=0)
def ingest_batch_task(settings: Settings, run_id: str, index: int, backfill: bool = False) -> dict[str, Any]:
    """One batch: fetch (retries with backoff inside, only failed symbols), check, store, ledger rows."""
    rows = run_planned_batch(price_source(settings), Store(settings.data_dir), run_id, index,
                             options=ingest_options(settings, backfill))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return {"batch_index": index, "tickers": len(rows), **counts}


def run_price_ingest(
    settings: Settings,
    tickers_or_mapping: Sequence[str] | Mapping[str, Sequence[str]],
    *,
    backfill: bool = False,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Plan, run every batch as a task (concurrently on the flow's task runner), finish. Call in a flow."""
    logger = get_run_logger()
    source = price_source(settings)
    store = Store(settings.data_dir)
    options = ingest_options(settings, backfill)
    if isinstance(source, TracksFiles):  # your files: scanned afresh; no usable file is one clear error, before any batch
        source.release()
        source.attach(ingest_dir(store, source.name))
        source.check_folder()
    with ingest_lock(store, source.name):  # a second ingest waits, then plans against what the first stored
        plan = start_ingest(source.name, store, tickers_or_mapping, options=options, run_id=run_id,
                            identity=getattr(source, "identity", None))
        logger.info("ingest %s: run %s, %d batches", source.name, plan.run_id, len(plan.batches))
        progress = PrefectProgress(key=f"ingest-progress-{source.name}")
        futures = [ingest_batch_task.submit(settings, plan.run_id, i, backfill) for i in range(len(plan.batches))]
        limited: RateLimitedError | None = None
        for done, future in enumerate(futures, start=1):
            try:
                future.result()
            except RateLimitedError as exc:  # the other batches stop at once (flag in the run folder)
                limited = limited or exc
            progress(done, len(futures))
        if limited is not None:
            stored = sum(plan.batch_path(b["part"]).exists() for b in plan.batches)
            raise RateLimitedError(f"{str(limited).split(': ', 1)[1]} ({stored} of {len(plan.batches)} batches "
                                   "stored)") from None
        result = finish_ingest(plan)
    if isinstance(source, TracksFiles):  # a long-lived process (serve) keeps the source, not what it read
        source.release()
    publish_ledger_artifact(result.ledger_path, result.summary)
    summary = result.summary
    logger.info(
        "ingest %s: %d tickers, ok %d, stale %d, failed %d, delisted %d",
        source.name, summary["tickers"], summary["ok"], summary["stale"], summary["failed"], summary["delisted"],
    )
    return {
        "source": source.name,
        "prices_dir": str(store.prices_dir(source.name)),
        "ledger_path": str(result.ledger_path),
        **{k: v for k, v in summary.items() if k != "ledger"},
    }


@flow(name="ingest-prices", log_prints=True)
def prices_flow(overrides: dict[str, Any] | None = None, backfill: bool = False, run_id: str | None = None,
                candidates_path: str | None = None) -> dict[str, Any]:
    """``numerflow ingest``: daily bars of the configured source into the store, with a ledger.

    ``candidates_path`` (a round's resolution, a JSON ``{ticker: [symbols]}``) says what to fetch;
    without it, ``tickers_to_ingest`` decides. A path, not the mapping: flow parameters are
    stored by the server, and 5,000 tickers' candidates would be a large one."""
    from numerflow.tasks.core.config import load_settings
    from numerflow.tasks.core.store import read_json

    settings = load_settings(**(overrides or {}))
    wanted = read_json(Path(candidates_path)) if candidates_path else tickers_to_ingest(settings)
    return run_price_ingest(settings, wanted, backfill=backfill, run_id=run_id)


def task_runner_for(settings: Settings) -> Any:
    """The configured task runner for ingest batches: threads (default; how many: ``thread_workers``) or Dask."""
    o = settings.orchestration
    if o.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if o.dask_address:
            return DaskTaskRunner(address=o.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": o.dask_workers, "threads_per_worker":
                                              o.dask_threads_per_worker, "dashboard_address": None})
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=thread_workers(settings))
