"""Price ingest in Prefect: batched tasks over ``tasks.prices.ingest`` (never one task per ticker).

``run_price_ingest`` runs inside a flow: it plans the run (``tasks.prices.ingest.plan_ingest``),
submits one ``ingest-batch`` task per batch to the flow's thread pool, and finishes with the
ledger table + summary artifacts. Tasks pass the plan's run id and batch index, never
DataFrames; every source (demo, yahoo, files) goes through this same path. The Yahoo
source's limiter is process-wide (``tasks.prices.ratelimit.shared_limiter``), so it holds across
the task runner's threads. The Prefect side of the ingest (progress and ledger artifacts)
lives here; ``tasks.prices.ingest`` is plain Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.context import get_run_context

from numerflow.tasks.core.config import Settings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, exclusive_lock, read_parquet
from numerflow.tasks.prices.ingest import (
    STATUS_DELISTED,
    STATUS_FAILED,
    STATUS_NO_DATA,
    STATUS_OK,
    STATUS_STALE,
    STATUS_UNRESOLVED,
    STATUSES,
    IngestOptions,
    RateLimitedError,
    Source,
    finish_ingest,
    ingest_dir,
    render_failure_groups,
    run_planned_batch,
    start_ingest,
)
from numerflow.tasks.prices.sources.outcomes import TracksFiles

if TYPE_CHECKING:
    from numerflow.tasks.prices.sources.demo import DemoMarket

_sources: dict[tuple, Source] = {}


def ingest_options(settings: Settings, backfill: bool = False) -> IngestOptions:
    y = settings.yahoo
    return IngestOptions(
        batch_size=y.batch_size,
        backfill=backfill,
        overlap_days=y.overlap_days,
        max_attempts=y.max_attempts,
        backoff_base_seconds=y.backoff_base_seconds,
        backoff_cap_seconds=y.backoff_cap_seconds,
        stale_after_days=y.stale_after_days,
        jump_factor=y.jump_factor,
    )


class TournamentSource:
    """A price source whose bars are stored under ``<source>-<tournament>`` (``yahoo-crypto``):
    crypto bars never share a price store, a feature panel (cross-sectional ranks) or a model
    lineage with stocks. Everything else is the wrapped source's (same session and limiter)."""

    def __init__(self, source: Source, tournament: str) -> None:
        self._source = source
        self.tournament = tournament
        self.name = f"{source.name}-{tournament}"

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._source, attr)

    def __repr__(self) -> str:
        return f"TournamentSource({self._source!r}, name={self.name!r})"

    @property
    def identity(self) -> dict[str, Any] | None:
        inner = getattr(self._source, "identity", None)
        return None if inner is None else {**inner, "tournament": self.tournament}


def source_key(settings: Settings) -> tuple:
    """The cache key of the configured source in ``_sources`` (one object per configuration per
    process). Tests seed ``_sources[source_key(settings)]`` to inject a source."""
    kind = settings.price_source
    if kind == "demo":
        d = settings.demo
        from numerflow.tasks.prices.sources.demo import default_end

        # The market ends on the last weekday before today: a process that runs for days (serve)
        # gets the new day's market, not yesterday's.
        return ("demo", d.tickers, d.years, d.signal, d.seed, default_end())
    if kind == "yahoo":
        y = settings.yahoo
        return ("yahoo", y.requests_per_second, y.burst, y.timeout_seconds, y.workers, y.pause_on_429_seconds)
    if kind == "files":
        return ("files", settings.files.model_dump_json(), settings.tournament)
    raise BadInputError(f"unknown price_source {kind!r}", tag="invalid_config")  # pragma: no cover - Literal


def _new_source(settings: Settings) -> Source:
    kind = settings.price_source
    if kind == "demo":
        from numerflow.tasks.prices.sources.demo import DemoMarket

        return DemoMarket.from_settings(settings.demo)
    if kind == "yahoo":
        from numerflow.tasks.prices.sources.yahoo import YahooSource

        y = settings.yahoo
        return YahooSource(
            requests_per_second=y.requests_per_second,
            burst=y.burst,
            timeout_seconds=y.timeout_seconds,
            workers=y.workers,
            pause_on_429_seconds=y.pause_on_429_seconds,
            max_retry_after_seconds=y.max_retry_after_seconds,
        )
    from numerflow.tasks.prices.sources.files import FileLayout, FilePriceSource

    if settings.files.path is None:
        raise BadInputError("price_source is 'files' but files.path is not set; see docs/prices.md", tag="invalid_config")
    return FilePriceSource(settings.files.path, FileLayout.from_settings(settings.files, settings.tournament))


def configured_source(settings: Settings) -> Source:
    """The configured source itself (not wrapped), built once per configuration per process."""
    key = source_key(settings)
    if key not in _sources:
        _sources[key] = _new_source(settings)
    return _sources[key]


def demo_market(settings: Settings) -> DemoMarket:
    """The configured demo market, the same object the demo ingest fetches from: its (lazy,
    seconds-long) generation happens once per process, not once per caller."""
    from numerflow.tasks.prices.sources.demo import DemoMarket

    market = configured_source(settings.model_copy(update={"price_source": "demo"}))
    assert isinstance(market, DemoMarket)
    return market


def price_source(settings: Settings) -> Source:
    """The configured source; one object per configuration per process (shared session/limiter).
    Outside Signals it is wrapped so its bars get their own store (``TournamentSource``)."""
    source = configured_source(settings)
    if settings.tournament != "signals" and settings.price_source != "demo":
        return TournamentSource(source, settings.tournament)
    return source


def lookup_with_yahoo(settings: Settings, tickers: Sequence[str], names: Mapping[str, str] | None = None,
                      convention: str | None = None) -> dict:
    """``tasks.prices.lookup.lookup_tickers`` on the configured Yahoo source's session and limiter:
    Yahoo's search, each hit verified with a price fetch (``{ticker: LookupResult}``); ``convention``
    is the universe's country-code convention (``tasks.prices.tickers.code_convention``)."""
    import datetime as dt

    from numerflow.tasks.prices.lookup import YahooSearch, lookup_tickers, price_verifier
    from numerflow.tasks.prices.sources.yahoo import YahooSource

    source = configured_source(settings)
    if not isinstance(source, YahooSource):
        raise BadInputError(f"the Yahoo search needs price_source = \"yahoo\" (it is {settings.price_source!r})",
                            tag="invalid_config")
    search = YahooSearch(source.session, settings.yahoo.timeout_seconds)
    verify = price_verifier(source, dt.datetime.now(dt.UTC).date())
    return lookup_tickers(tickers, search=search, verify=verify, names=names, limit=settings.yahoo.lookup_limit,
                          convention=convention)


def source_name(settings: Settings) -> str:
    """Name of the configured source's price store (``prices/<name>``), without building it."""
    if settings.price_source == "demo":
        from numerflow.tasks.prices.sources.demo import demo_store_name

        d = settings.demo
        return demo_store_name(d.tickers, d.years, d.signal, d.seed)
    if settings.tournament != "signals":
        return f"{settings.price_source}-{settings.tournament}"
    return settings.price_source


def ledger_table(ledger: pd.DataFrame, limit: int = 500) -> list[dict[str, Any]]:
    """Rows for a Prefect table artifact: problems first (failed, delisted, ...), then the rest."""
    problems_first = [STATUS_FAILED, STATUS_UNRESOLVED, STATUS_DELISTED, STATUS_NO_DATA, STATUS_STALE, STATUS_OK]
    rank = {s: i for i, s in enumerate(problems_first)}
    ordered = ledger.assign(_rank=ledger["status"].map(rank)).sort_values(["_rank", "ticker"]).drop(columns="_rank")
    columns = ["ticker", "symbol", "status", "rows", "first_date", "last_date", "attempts", "last_error",
               "repull_reason"]
    head = ordered[columns].head(limit)
    return head.astype(object).where(head.notna(), None).to_dict("records")


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
    # One ingest per store at a time (two rounds started at once, a manual ingest during a
    # round): the second waits, then plans against what the first stored.
    with exclusive_lock(ingest_dir(store, source.name) / ".ingest.lock"):
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


def with_unresolved(universe_tickers: Sequence[str], candidates: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """{ticker: candidates} for the whole universe: unresolved tickers get [] so the ledger shows them."""
    return {str(t): list(candidates.get(str(t), [])) for t in universe_tickers}


def readiness(settings: Settings, universe_tickers: Sequence[str], source_name: str) -> dict[str, Any]:
    """``check_round_readiness`` on what is stored now: refuses when too much of the universe is stale."""
    import datetime as dt

    from numerflow.tasks.prices.ingest import stored_extent
    from numerflow.tasks.prices.quality import check_round_readiness

    extent = stored_extent(Store(settings.data_dir).prices_dir(source_name))
    return check_round_readiness(
        list(universe_tickers),
        extent["last_date"],
        dt.datetime.now(dt.UTC).date(),
        stale_after_days=settings.yahoo.stale_after_days,
        max_stale_share=settings.yahoo.max_stale_share,
        tournament=settings.tournament,
    )


def tickers_to_ingest(settings: Settings) -> dict[str, list[str]]:
    """What ``numerflow ingest`` fetches: the demo market's tickers, or the latest universe snapshot
    (resolved to Yahoo candidates for ``yahoo``; every ticker in your files if there is no snapshot)."""
    from numerflow.tasks.numerai.universe import latest_universe_snapshot, load_universe_ids

    if settings.price_source == "demo":
        return {t: [t] for t in demo_market(settings).all_tickers()}
    snapshot = latest_universe_snapshot(Store(settings.data_dir), settings.tournament)
    if snapshot is None:
        if settings.price_source == "files":
            from numerflow.tasks.prices.sources.files import FilePriceSource

            files = configured_source(settings)
            assert isinstance(files, FilePriceSource)
            files.attach(ingest_dir(Store(settings.data_dir), source_name(settings)))
            return {t: [t] for t in files.tickers()}
        raise BadInputError(
            f"no universe snapshot under {Store(settings.data_dir).root / 'universe' / settings.tournament}; "
            "run `numerflow universe` first",
            tag="missing_universe",
        )
    from numerflow.tasks.prices.tickers import candidate_map, resolve_for_yahoo

    ids = load_universe_ids(snapshot, settings.tournament).astype(str).tolist()
    if settings.price_source != "yahoo":
        return {t: [t] for t in ids}
    from numerflow.tasks.prices.ingest import remembered_symbols

    remembered = remembered_symbols(Store(settings.data_dir), source_name(settings))
    table = resolve_for_yahoo(ids, settings.tournament, settings.numerai.overrides_path, remembered)
    return with_unresolved(ids, candidate_map(table))


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


class ProgressBar:
    """A text progress bar for the CLI, fed by the run directory (batch files appear as batches finish).

    Polling the store keeps the flow free of callbacks (flow parameters must serialise).
    """

    def __init__(self, run_dir, stream=None, interval: float = 0.5, width: int = 30) -> None:
        import sys
        import threading
        from pathlib import Path

        self.run_dir = Path(run_dir)
        self.stream = stream or sys.stderr
        self.interval = interval
        self.width = width
        self._shown: str | None = None  # the state last drawn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ingest-progress", daemon=True)

    def counts(self) -> tuple[int, int]:
        from numerflow.tasks.core.store import read_json

        plan = self.run_dir / "plan.json"
        if not plan.exists():
            return 0, 0
        total = len(read_json(plan)["batches"])
        return len(list(self.run_dir.glob("batch-*.json"))), total

    def render(self) -> str:
        done, total = self.counts()
        if total == 0:
            return "ingest: planning..."
        filled = int(self.width * done / total)
        return f"ingest [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} batches"

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._draw(self.render())

    def _draw(self, line: str, *, final: bool = False) -> None:
        """Draw a changed state: in place on a terminal, as a new line elsewhere (logs, CI);
        ``final`` ends a terminal's line."""
        tty = self.stream.isatty()
        if line != self._shown:
            self.stream.write("\r" + line if tty else line + "\n")
            self._shown = line
        if final and tty:
            self.stream.write("\n")
        self.stream.flush()

    def __enter__(self) -> ProgressBar:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._draw(self.render(), final=True)
