"""The price ingest stage: batched, resumable, incremental, audited. One path for every source.

Store layout (under the data dir)::

    prices/<source>/part-00000.parquet        bars (PRICE_SCHEMA); each ticker lives in one part
    ingest/<source>/catalog.json              ticker → part, and remembered winning symbols
    ingest/<source>/runs/<run_id>/plan.json   what this run fetches, per batch (= per part)
    ingest/<source>/runs/<run_id>/batch-00000.json   ledger rows of a finished batch
    ingest/<source>/runs/<run_id>/ledger.parquet, summary.json   the run's ledger and summary

How it works:

1. ``plan_ingest`` groups the requested tickers into batches: a ticker already stored keeps
   its part; new tickers fill new parts of ``batch_size``. Each ticker's request starts at its
   last stored date minus ``overlap_days`` (revisions), or at the beginning (new ticker,
   ``backfill=True``). The plan is written before anything is fetched.
2. ``run_batch`` fetches one batch, retrying only transient failures (429, 5xx, timeouts)
   with exponential backoff and jitter; not-found symbols are recorded, never retried;
   candidates are tried in order. A changed close/adjusted close in the overlap window, or
   a split/dividend in the new bars, re-pulls that ticker's whole history. Bars pass the
   quality checks, are merged into the part and written atomically; then the batch's ledger
   rows are written. A batch whose ledger file exists is done: after a crash, re-running with
   the same ``run_id`` skips it.
3. ``finish_ingest`` gathers the ledger, writes it and a summary, remembers winning symbols.

``flows.prices.run_price_ingest`` runs these steps in Prefect (one ``ingest-batch`` task per
batch) and publishes the progress and ledger artifacts; this module is plain Python.
"""

from __future__ import annotations

import functools
import json
import logging
import operator
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from numerflow.tasks.core.errors import BadInputError, NumerflowError, is_transient
from numerflow.tasks.core.price_parts import (
    PartFiles,
    compact_part,
    is_store_file,
    list_parts,
    part_files,
    read_part,
    read_part_retrying,
    should_compact,
    write_delta,
    write_table,
)
from numerflow.tasks.core.row_keys import match_ticker_dates
from numerflow.tasks.core.schemas import PRICE_SCHEMA, as_strings
from numerflow.tasks.core.store import (
    CorruptFileError,
    Store,
    exclusive_lock,
    new_run_id,
    quarantine,
    read_json,
    safe_id,
    write_json,
    write_parquet,
)
from numerflow.tasks.prices.quality import (
    all_excluded_error,
    flag_bad_bars,
    normalise_currency_units,
    trading_days_behind,
)
from numerflow.tasks.prices.sources import PriceSource
from numerflow.tasks.prices.sources.outcomes import (
    ERROR,
    EVENT_COLUMNS,
    NO_DATA,
    NOT_FOUND,
    OK,
    TRANSIENT,
    FetchOutcome,
    FetchRequest,
    OutcomeSource,
    RemembersTimezones,
    TracksFiles,
)

logger = logging.getLogger(__name__)


class RateLimitedError(NumerflowError):
    """The source rate-limited a whole batch: the run stops early (not retried here, so the
    round's window is not spent waiting); every batch stored so far is kept, and the next
    ingest resumes this run."""

    tag = "rate_limited"


#: In a run folder: an earlier batch of the run was rate-limited whole; later batches stop at once.
RATE_LIMITED_FLAG = "rate-limited.json"

#: What ingest accepts: a plain PriceSource (bars), or one that reports per-ticker outcomes.
Source = PriceSource | OutcomeSource

# Ledger statuses.
STATUS_OK = "ok"
STATUS_STALE = "stale"  # fetched (or kept) but the last bar is older than stale_after_days
STATUS_DELISTED = "delisted"  # 404 / possibly delisted on every candidate
STATUS_NO_DATA = "no_data"  # the symbol exists, no bars at all
STATUS_FAILED = "failed"  # transient errors outlived max_attempts, or an unexpected error
STATUS_UNRESOLVED = "unresolved"  # no source symbol to try (ticker resolution found none)
STATUSES = [STATUS_OK, STATUS_STALE, STATUS_DELISTED, STATUS_NO_DATA, STATUS_FAILED, STATUS_UNRESOLVED]

LEDGER_COLUMNS = [
    "run_id",
    "source",
    "ticker",
    "symbol",
    "status",
    "rows",
    "stored_rows",
    "first_date",
    "last_date",
    "attempts",
    "last_error",
    "requested_start",
    "repull_reason",
    "excluded_rows",
    "currency",
    "timezone",
    "batch",
    "deduplicated",
    "excluded_reasons",
    "cause",
]

# Relative change of a stored close / adjusted close that means Yahoo rewrote history.
REVISION_RTOL = 1e-5


@dataclass(frozen=True)
class IngestOptions:
    """Knobs of one ingest run (``YahooSettings`` provides them in the pipeline)."""

    batch_size: int = 100
    backfill: bool = False
    overlap_days: int = 5
    max_attempts: int = 5
    backoff_base_seconds: float = 2.0
    backoff_cap_seconds: float = 60.0
    stale_after_days: int = 3
    jump_factor: float = 50.0
    compact_after_deltas: int = 20


@dataclass(frozen=True)
class IngestResult:
    paths: list[Path]
    ledger_path: Path
    summary: dict[str, Any]


@dataclass(frozen=True)
class IngestPlan:
    source: str
    run_id: str
    root: Path
    as_of: str
    end: str | None
    batches: list[dict[str, Any]]  # {"part": int, "tickers": [...], "candidates": {...}, "starts": {...}}

    @property
    def run_dir(self) -> Path:
        return ingest_dir(Store(self.root), self.source) / "runs" / self.run_id

    def batch_path(self, part: int) -> Path:
        return self.run_dir / f"batch-{part:05d}.json"


def ingest_dir(store: Store, source: str) -> Path:
    return store.root / "ingest" / source


@contextmanager
def ingest_lock(store: Store, source: str) -> Iterator[None]:
    """One ingest of a store at a time, across processes (two rounds started at once, a manual
    ingest during a round): its plan, batches (and their compactions) and finish. Readers never
    wait: every file of the store is written whole and renamed into place."""
    with exclusive_lock(ingest_dir(store, source) / ".ingest.lock"):
        yield


def unfinished_run_id(store: Store, source: str) -> str | None:
    """The latest run of ``source`` that planned but did not finish (to resume), if any."""
    runs = ingest_dir(store, source) / "runs"
    if not runs.is_dir():
        return None
    pending = [d for d in runs.iterdir() if (d / "plan.json").exists() and not (d / "summary.json").exists()]
    return max(pending, key=lambda d: d.name).name if pending else None


def as_mapping(tickers_or_mapping: Sequence[str] | Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """{ticker: [source symbols to try in order]}; a plain list maps each ticker to itself."""
    if isinstance(tickers_or_mapping, Mapping):
        mapping = {str(t): [str(c) for c in cands] for t, cands in tickers_or_mapping.items()}
    elif isinstance(tickers_or_mapping, (str, bytes)):
        raise BadInputError("tickers must be a list or a mapping, not one string", tag="invalid_tickers")
    else:
        mapping = {str(t): [str(t)] for t in tickers_or_mapping}
    if not mapping:
        raise BadInputError("no tickers to ingest: the universe (or ticker list) is empty", tag="empty_universe")
    return mapping


def _check_only_our_parts(prices_dir: Path) -> None:
    """Refuse files this ingest did not write: their tickers would be stored twice."""
    foreign = sorted(p.name for p in prices_dir.glob("*.parquet") if not is_store_file(p.name))
    if foreign:
        raise BadInputError(
            f"{prices_dir} holds files the ingest did not write ({foreign[:3]}); their bars would be duplicated: "
            "move them away (bring your own prices with price_source = \"files\") or use a fresh data dir",
            tag="foreign_price_files",
        )


def stored_extent(prices_dir: Path) -> pd.DataFrame:
    """Per stored ticker: first and last date and row count (index = ticker). Each part is read
    once, here, deltas applied: one that cannot be read is quarantined (``_read_part_keys``), so
    its tickers have no extent and the plan re-pulls them whole."""
    if prices_dir.is_dir():
        _check_only_our_parts(prices_dir)
    tables = [table for files in list_parts(prices_dir).values() if (table := _read_part_keys(files)) is not None]
    if not tables:
        return pd.DataFrame(columns=["first_date", "last_date", "rows"]).rename_axis("ticker")
    extents = [_sorted_extent(table) for table in tables]  # each ticker lives in one part
    frame = pd.concat(extents)
    return frame.rename(columns={"min": "first_date", "max": "last_date", "size": "rows"})


def _sorted_extent(keys: pa.Table) -> pd.DataFrame:
    """``min``/``max`` date and ``size`` per ticker of a part's (ticker, date) keys, which are sorted
    by ticker and date: read at each ticker's first and last row, no group-by over millions of rows."""
    ticker = keys.column("ticker").combine_chunks()
    if pa.types.is_dictionary(ticker.type):
        codes = ticker.indices.to_numpy(zero_copy_only=False)
        names = np.asarray(ticker.dictionary.to_pylist(), dtype=object)
    else:
        codes, uniques = pd.factorize(ticker.to_numpy(zero_copy_only=False))
        names = np.asarray(uniques, dtype=object)
    dates = keys.column("date").to_numpy().astype("datetime64[s]")
    if not len(codes):
        return pd.DataFrame(columns=["min", "max", "size"]).rename_axis("ticker")
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], len(codes)]
    index = pd.Index(names[codes[starts]].astype(str), name="ticker")
    return pd.DataFrame({"min": dates[starts], "max": dates[ends - 1], "size": ends - starts}, index=index)


def _read_part_keys(files: PartFiles) -> pa.Table | None:
    """A part's (ticker, date) columns, deltas applied; None, with the part's files set aside, when
    one cannot be read as Parquet (truncated, overwritten)."""
    try:
        if not files.deltas and files.base is not None:
            return pq.read_table(files.base, columns=["ticker", "date"], read_dictionary=["ticker"])
        return read_part(files, ["ticker", "date"], categorical=["ticker"])
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        names = [p for p in [files.base, *files.deltas] if p is not None]
        why = (f"part {files.number} ({', '.join(p.name for p in names)}) cannot be read as Parquet "
               f"({type(exc).__name__}: {exc}); its tickers are re-pulled")
        for path in names:
            logger.warning("%s; %s set aside as %s", why, path.name, quarantine(path, why))
        return None


def remembered_symbols(store: Store, source: str) -> dict[str, str]:
    """``{ticker: Yahoo symbol that last returned prices}`` from the ingest catalog (the one
    place winners are remembered; the ticker resolver reports them as ``remembered``)."""
    return {ticker: entry["symbol"] for ticker, entry in _load_catalog(store, source)["symbols"].items()
            if isinstance(entry, dict) and entry.get("symbol")}


def looked_up_symbols(store: Store, source: str) -> dict[str, str]:
    """The catalog's winners that Yahoo's search found (``tasks.prices.lookup``), reported as ``lookup``."""
    return {ticker: entry["symbol"] for ticker, entry in _load_catalog(store, source)["symbols"].items()
            if isinstance(entry, dict) and entry.get("symbol") and entry.get("via") == "lookup"}


def remember_lookups(store: Store, source: str, found: Mapping[str, tuple[str, str | None]]) -> None:
    """Put verified search winners (``{ticker: (symbol, company name)}``) in the catalog."""
    if not found:
        return
    catalog = _load_catalog(store, source)
    for ticker, (symbol, name) in found.items():
        catalog["symbols"][ticker] = {"symbol": symbol, "via": "lookup", "name": name}
    write_json(ingest_dir(store, source) / "catalog.json", catalog)


def failing_tickers(store: Store, source: str, min_runs: int = 1) -> dict[str, dict[str, Any]]:
    """Tickers whose last ``min_runs`` or more finished ingests all ended delisted / no data /
    unresolved: ``{ticker: {"runs": n, "reason": last error}}`` (renamed or moved listings)."""
    misses = _load_catalog(store, source).get("misses", {})
    return {t: m for t, m in misses.items() if int(m.get("runs", 0)) >= min_runs}


def _load_catalog(store: Store, source: str) -> dict[str, Any]:
    """The ingest catalog. A damaged one is set aside and rebuilt from the parts themselves
    (ticker → part); only the remembered symbols are lost (resolution finds them again)."""
    path = ingest_dir(store, source) / "catalog.json"
    if not path.exists():
        return {"parts": {}, "symbols": {}}
    try:
        catalog = read_json(path)
        if not (isinstance(catalog, dict) and isinstance(catalog.get("parts"), dict)
                and isinstance(catalog.get("symbols"), dict)):
            raise CorruptFileError(path, "is not an ingest catalog")
        return catalog
    except CorruptFileError as exc:
        rebuilt = {"parts": parts_from_store(store.prices_dir(source)), "symbols": {}}
        moved = quarantine(path, str(exc))
        write_json(path, rebuilt)
        logger.warning("%s; set aside as %s and rebuilt from %d stored tickers", exc, moved, len(rebuilt["parts"]))
        return rebuilt


def parts_from_store(prices_dir: Path) -> dict[str, int]:
    """ticker → part number, read from the stored parts (what the catalog records)."""
    parts: dict[str, int] = {}
    for number, files in list_parts(prices_dir).items():
        tickers = read_part(files, ["ticker"]).column("ticker").unique().to_pylist()
        parts.update(dict.fromkeys(map(str, tickers), number))
    return parts


def check_store_identity(prices_dir: Path, identity: Mapping[str, Any] | None) -> None:
    """One market per store: ``prices/<source>/_source.json`` records what filled it; another
    source (other files, another market) under the same name is refused, never mixed in."""
    if identity is None:
        return
    path = prices_dir / "_source.json"
    wanted = json.loads(json.dumps(dict(identity), default=str))
    if path.exists():
        held = read_json(path)
        if held != wanted:
            raise BadInputError(
                f"{prices_dir} holds bars from {held}, but the configured source is {wanted}; their bars "
                f"would be mixed. Use another data_dir, or delete {prices_dir} and "
                f"{prices_dir.parent.parent / 'ingest' / prices_dir.name} to start this store again",
                tag="store_mismatch")
        return
    write_json(path, wanted)


#: Plans read in this process, by path: every batch task reloads its run's plan (a megabyte of
#: JSON at 5,000 tickers); a plan file is written once and never changed, so its stat says it is the same.
_plans: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}


def _saved_plan(path: Path) -> dict[str, Any]:
    stat = path.stat()
    key = (stat.st_mtime_ns, stat.st_size)
    cached = _plans.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    saved = read_json(path)
    if len(_plans) >= 4:
        _plans.pop(next(iter(_plans)))
    _plans[path] = (key, saved)
    return saved


def plan_ingest(
    source_name: str,
    store: Store,
    tickers_or_mapping: Sequence[str] | Mapping[str, Sequence[str]],
    *,
    run_id: str,
    options: IngestOptions = IngestOptions(),
    as_of: date | None = None,
    end: date | None = None,
    identity: Mapping[str, Any] | None = None,
) -> IngestPlan:
    """Write (or, for an existing ``run_id``, reload) the run's plan. See the module docstring."""
    if options.batch_size < 1:
        raise BadInputError(f"batch_size must be >= 1, got {options.batch_size}", tag="invalid_config")
    run_dir = ingest_dir(store, source_name) / "runs" / run_id
    plan_file = run_dir / "plan.json"
    if plan_file.exists():
        saved = _saved_plan(plan_file)
        return IngestPlan(source_name, run_id, store.root, saved["as_of"], saved["end"], saved["batches"])
    mapping = as_mapping(tickers_or_mapping)
    check_store_identity(store.prices_dir(source_name), identity)
    as_of = as_of or datetime.now(UTC).date()
    catalog = _load_catalog(store, source_name)
    parts: dict[str, int] = catalog["parts"]
    winners: dict[str, dict] = catalog["symbols"]
    extent = stored_extent(store.prices_dir(source_name))
    # Plain dicts: a .loc per ticker costs seconds over 5,000 tickers.
    recorded = {str(t): [str(pd.Timestamp(f).date()), str(pd.Timestamp(la).date()), int(n)]
                for t, f, la, n in zip(extent.index, extent["first_date"], extent["last_date"], extent["rows"], strict=True)}

    new_tickers = sorted(t for t in mapping if t not in parts)
    next_part = max(parts.values(), default=-1) + 1
    for i in range(0, len(new_tickers), options.batch_size):
        for ticker in new_tickers[i : i + options.batch_size]:
            parts[ticker] = next_part
        next_part += 1

    batches: dict[int, dict[str, Any]] = {}
    for ticker in sorted(mapping):
        candidates = list(dict.fromkeys(mapping[ticker]))
        winner = winners.get(ticker, {}).get("symbol")
        if winner in candidates:  # the symbol that worked last time goes first
            candidates.remove(winner)
            candidates.insert(0, winner)
        start = None
        if not options.backfill and ticker in recorded and winner in candidates:
            start = (date.fromisoformat(str(recorded[ticker][1])) - timedelta(days=options.overlap_days)).isoformat()
        batch = batches.setdefault(parts[ticker], {"part": parts[ticker], "tickers": [], "candidates": {}, "starts": {},
                                                   "stored": {}})
        batch["tickers"].append(ticker)
        batch["candidates"][ticker] = candidates
        batch["starts"][ticker] = start
        if ticker in recorded:  # what is stored now: a batch with nothing new needs no read of its part
            batch["stored"][ticker] = recorded[ticker]
    # The catalog first: a crash before the plan is written re-plans into the same parts.
    write_json(ingest_dir(store, source_name) / "catalog.json", {"parts": parts, "symbols": winners})
    ordered = [batches[p] for p in sorted(batches)]
    write_json(plan_file, {"as_of": as_of.isoformat(), "end": end.isoformat() if end else None, "batches": ordered})
    return IngestPlan(source_name, run_id, store.root, as_of.isoformat(), end.isoformat() if end else None, ordered)


def outcomes_via_fetch(source: PriceSource, requests: Sequence[FetchRequest], end: date | None) -> list[FetchOutcome]:
    """Outcomes from a plain PriceSource (``fetch(tickers, start, end)``), one call per start date.

    Tickers the source returned no bars for become ``no_data``; an exception fails the whole
    call (transient or not, as ``tasks.core.errors.is_transient`` says).
    """
    outcomes: dict[str, FetchOutcome] = {}
    by_start: dict[date | None, list[FetchRequest]] = {}
    for request in requests:
        by_start.setdefault(request.start, []).append(request)
    for start, group in by_start.items():
        symbols = {r.candidates[0] if r.candidates else r.ticker: r.ticker for r in group}
        try:
            bars = source.fetch(list(symbols), start, end)
        except Exception as exc:
            kind = TRANSIENT if is_transient(exc) else ERROR
            for r in group:
                outcomes[r.ticker] = FetchOutcome(r.ticker, kind, error=f"{type(exc).__name__}: {exc}", remaining=r.candidates)
            continue
        bars = bars.copy()
        bars["ticker"] = bars["ticker"].astype("string").map(symbols).astype("string")
        found = {t: frame for t, frame in bars.groupby("ticker", sort=False)}
        for r in group:
            frame = found.get(r.ticker)
            if frame is not None and len(frame):
                currency = frame["currency"].iloc[0] if "currency" in frame.columns else None
                outcomes[r.ticker] = FetchOutcome(r.ticker, OK, r.candidates[0] if r.candidates else r.ticker, frame, currency=currency)
            elif start is not None:
                outcomes[r.ticker] = FetchOutcome(r.ticker, OK, r.candidates[0] if r.candidates else r.ticker, bars.iloc[0:0])
            else:
                outcomes[r.ticker] = FetchOutcome(r.ticker, NO_DATA, error=f"no_data: {source.name} returned no bars")
    return [outcomes[r.ticker] for r in requests]


def _fetch(source: Source, requests: Sequence[FetchRequest], end: date | None) -> list[FetchOutcome]:
    if isinstance(source, OutcomeSource):
        return source.fetch_outcomes(requests, end=end)
    return outcomes_via_fetch(source, requests, end)


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: uniform in [½, 1] × min(cap, base·2^(attempt-1))."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return ceiling * rng.uniform(0.5, 1.0)


def fetch_with_retries(
    source: Source,
    requests: Sequence[FetchRequest],
    *,
    end: date | None,
    options: IngestOptions,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> tuple[dict[str, FetchOutcome], dict[str, int]]:
    """Final outcome and attempt count per ticker; only transient failures are asked again."""
    rng = rng or random.Random()
    final: dict[str, FetchOutcome] = {}
    attempts: dict[str, int] = {r.ticker: 0 for r in requests}
    for request in requests:
        if not request.candidates:
            final[request.ticker] = FetchOutcome(
                request.ticker, NOT_FOUND, error="unresolved: no source symbol for this ticker; add one to the overrides file"
            )
    pending = [r for r in requests if r.candidates]
    for attempt in range(1, options.max_attempts + 1):
        if not pending:
            break
        if attempt > 1:
            sleep(backoff_delay(attempt - 1, options.backoff_base_seconds, options.backoff_cap_seconds, rng))
        outcomes = _fetch(source, pending, end)
        retry: list[FetchRequest] = []
        for request, outcome in zip(pending, outcomes, strict=True):
            attempts[request.ticker] += 1
            final[request.ticker] = outcome
            if outcome.kind == TRANSIENT:
                # Candidates found missing are not asked again.
                retry.append(FetchRequest(request.ticker, outcome.remaining or request.candidates, request.start))
        pending = retry
    return final, attempts


def _repull_reasons(fetched: pd.DataFrame, stored: pd.DataFrame, starts: dict[str, date]) -> dict[str, str]:
    """Tickers whose stored history must be re-pulled, with why (split / dividend / revision).

    Compares overlapping bars (same ticker and date) and looks for corporate actions in the
    bars after the last stored date, all vectorised.
    """
    reasons: dict[str, str] = {}
    if fetched.empty:
        return reasons
    incremental = fetched[fetched["ticker"].isin(list(starts))]
    if incremental.empty:
        return reasons
    last_stored = stored.groupby("ticker")["date"].max() if len(stored) else pd.Series(dtype="datetime64[s]")
    previous_last = last_stored.reindex(incremental["ticker"].to_numpy()).to_numpy(dtype="datetime64[s]")
    after = ~np.isnat(previous_last) & (incremental["date"].to_numpy(dtype="datetime64[s]") > previous_last)
    for column, reason in (("splits", "split"), ("dividends", "dividend")):
        if column in incremental.columns:
            hit = after & (incremental[column].fillna(0).to_numpy() != 0)
            for ticker in pd.unique(incremental.loc[hit, "ticker"]):
                reasons.setdefault(str(ticker), reason)
    if len(stored):
        found, match = match_ticker_dates(incremental, stored)  # the overlap: bars fetched again
        changed = np.zeros(int(found.sum()), dtype=bool)
        for column in ("close", "adj_close"):
            new = incremental[column].to_numpy(dtype="float64", na_value=np.nan)[found]
            old = stored[column].to_numpy(dtype="float64", na_value=np.nan)[match[found]]
            changed |= ~np.isclose(new, old, rtol=REVISION_RTOL, atol=0, equal_nan=True)
        for ticker in pd.unique(incremental["ticker"].to_numpy()[found][changed]):
            reasons.setdefault(str(ticker), "revision")
    return reasons


def _as_price_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy(deep=False)  # copy-on-write: only the columns written below are new
    if out["date"].dtype != "datetime64[s]":
        out["date"] = pd.to_datetime(out["date"]).astype("datetime64[s]")
    if out["ticker"].dtype != "string":
        out["ticker"] = as_strings(out["ticker"])
    if "currency" not in out.columns:
        out["currency"] = pd.array([None] * len(out), dtype="string")
    for column in EVENT_COLUMNS:
        if column not in out.columns:
            out[column] = 0.0
    return out


def start_ingest(
    source_name: str,
    store: Store,
    tickers_or_mapping: Sequence[str] | Mapping[str, Sequence[str]],
    *,
    options: IngestOptions,
    run_id: str | None = None,
    as_of: date | None = None,
    end: date | None = None,
    identity: Mapping[str, Any] | None = None,
) -> IngestPlan:
    """Step 1 of a run: its id (``ingest_run_id``) and its plan. ``identity`` (the source's)
    is checked against the store's (``check_store_identity``)."""
    run_id = ingest_run_id(store, source_name, run_id)
    # A resumed run that stopped on a rate limit tries again: the flag belonged to the last attempt.
    (ingest_dir(store, source_name) / "runs" / run_id / RATE_LIMITED_FLAG).unlink(missing_ok=True)
    return plan_ingest(source_name, store, tickers_or_mapping, run_id=run_id, options=options, as_of=as_of,
                       end=end, identity=identity)


def ingest_run_id(store: Store, source_name: str, run_id: str | None = None) -> str:
    """The run to work on: the given one, else this source's unfinished run (a crash resumes), else a new one."""
    return safe_id(run_id, "ingest run id") if run_id else unfinished_run_id(store, source_name) or new_run_id()


def run_planned_batch(
    source: Source,
    store: Store,
    run_id: str,
    index: int,
    *,
    options: IngestOptions,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> list[dict[str, Any]]:
    """Step 2, one batch as a worker gets it: the run id and the batch index, never the plan
    (it is reloaded from the run folder, so a batch can run in any process)."""
    plan = plan_ingest(source.name, store, [], run_id=run_id, options=options)
    return run_batch(source, plan, index, options=options, sleep=sleep, rng=rng)


def run_batch(
    source: Source,
    plan: IngestPlan,
    index: int,
    *,
    options: IngestOptions = IngestOptions(),
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> list[dict[str, Any]]:
    """Fetch, check, merge and store one batch; return its ledger rows. Idempotent per run."""
    batch = plan.batches[index]
    done = plan.batch_path(batch["part"])
    if done.exists():
        return read_json(done)
    store = Store(plan.root)
    end = date.fromisoformat(plan.end) if plan.end else None
    starts = {t: (date.fromisoformat(s) if s else None) for t, s in batch["starts"].items()}
    requests = [FetchRequest(t, tuple(batch["candidates"][t]), starts[t]) for t in batch["tickers"]]
    if isinstance(source, TracksFiles):  # your files: what each stored ticker's bars came from lives here
        source.attach(ingest_dir(store, plan.source))
    if isinstance(source, RemembersTimezones):
        # Exchange timezones Yahoo answered last time: the source need not ask for them again.
        winners = _load_catalog(store, plan.source)["symbols"]
        source.learn_timezones(
            {w["symbol"]: w["timezone"] for t in batch["tickers"] if (w := winners.get(t)) and w.get("symbol") and w.get("timezone")}
        )
    flag = plan.run_dir / RATE_LIMITED_FLAG
    if flag.exists():
        raise RateLimitedError(f"batch {batch['part']} not fetched: batch {read_json(flag)['part']} of run "
                               f"{plan.run_id} was rate-limited whole; resume with `numerflow ingest`")
    outcomes, attempts = fetch_with_retries(source, requests, end=end, options=options, sleep=sleep, rng=rng)
    asked = [o for t, o in outcomes.items() if batch["candidates"][t]]
    if asked and all(o.kind == TRANSIENT and (o.error or "").startswith("rate_limited") for o in asked):
        write_json(flag, {"part": batch["part"], "at": datetime.now(UTC).isoformat()})
        raise RateLimitedError(f"{source.name} rate-limited every ticker of batch {batch['part']} "
                               f"({len(asked)} tickers, {options.max_attempts} attempts each); stopping early, "
                               f"batches already stored are kept: resume with `numerflow ingest` (run {plan.run_id})")

    prices_dir = store.prices_dir(plan.source)
    files = part_files(prices_dir, batch["part"])
    exists = files.base is not None or bool(files.deltas)
    ok = {t: o for t, o in outcomes.items() if o.kind == OK and o.bars is not None}
    fetched = _fetched_frame(ok)
    planned = _planned_extent(batch)
    if fetched.empty and exists:
        # Nothing new for any ticker of the batch (unchanged files): the part stays as it is; the
        # ledger's extent is the plan's (a plan from an older version: the part's keys).
        extent = planned if planned is not None else _extent_of(files, None)
        return _finish_batch(plan, batch, outcomes, attempts, {}, options, source, extent,
                             pd.Series(dtype="int64"), pd.DataFrame(columns=["ticker", "date", "reason"]))
    # Only the stored rows this batch can change: each fetched ticker's recent tail (its whole
    # history for a full pull), not the whole part.
    stored = _stored_rows(prices_dir, files, fetched, starts, planned) if exists else _as_price_frame(_empty_prices())

    # Split / dividend / revision since the last run → that ticker's whole history again.
    incremental = {t: start for t in ok if (start := starts[t]) is not None}
    repull = _repull_reasons(fetched, stored, incremental)
    if repull:
        again = [FetchRequest(t, (ok[t].symbol or t,), None) for t in sorted(repull)]  # OK outcomes carry their symbol
        more, more_attempts = fetch_with_retries(source, again, end=end, options=options, sleep=sleep, rng=rng)
        for ticker, outcome in more.items():
            attempts[ticker] += more_attempts[ticker]
            outcomes[ticker] = outcome
            if outcome.kind == OK and outcome.bars is not None:
                ok[ticker] = outcome
                starts[ticker] = None
            else:  # keep the old rows rather than a half-updated history
                ok.pop(ticker, None)
        fetched = _fetched_frame(ok)
        if exists:  # the re-pulled tickers' whole stored history, the others' tails as before
            whole = [t for t in repull if t in ok]
            stored = pd.concat([stored[~stored["ticker"].isin(whole).to_numpy()], _read_rows(files, whole, None)],
                               ignore_index=True).sort_values(["ticker", "date"], kind="stable")

    # Drop the stored rows that fetched rows replace: all of a full pull; from the first
    # fetched bar on for an incremental one (an empty answer replaces nothing).
    first_fetched = fetched.groupby("ticker")["date"].min()
    fetched_tickers = np.array(list(first_fetched.index), dtype=object)
    cutoff = pd.Series(
        {t: (pd.Timestamp(first_fetched[t]) if starts[t] else pd.Timestamp.min) for t in first_fetched.index},
        dtype="datetime64[ns]",
    )
    codes, names = pd.factorize(stored["ticker"])  # per distinct ticker, not per row (millions of rows)
    stored_cut = cutoff.reindex(np.asarray(names, dtype=object)).to_numpy(dtype="datetime64[ns]")[codes] if len(
        codes) else np.array([], dtype="datetime64[ns]")
    replaced = stored["ticker"].isin(fetched_tickers).to_numpy() & (stored["date"].to_numpy(dtype="datetime64[ns]") >= stored_cut)
    fetched = fetched.assign(_new=~same_bars(fetched, stored.loc[replaced]))
    merged = pd.concat([stored.loc[~replaced], fetched], ignore_index=True)
    merged["_new"] = merged["_new"].fillna(False).astype(bool)
    if not _sorted_unique(merged):  # a first ingest's bars come sorted: no sort of 500 k string keys
        merged = merged.sort_values(["ticker", "date"], kind="stable").drop_duplicates(["ticker", "date"], keep="last")
    kept, excluded = _exclude_bad_new_bars(merged, options.jump_factor)
    new_rows = kept[kept["_new"]].groupby("ticker").size()  # bars that are new or changed, not re-fetched copies
    table = kept[PRICE_SCHEMA.names].reset_index(drop=True)
    if not exists:
        write_table(files.base or prices_dir / f"part-{batch['part']:05d}.parquet", _price_table(table))
        extent = _extent(kept)
    else:
        stored = stored[PRICE_SCHEMA.names].reset_index(drop=True)
        changed = _changed_tails(table, stored, cutoff)
        extent = planned
        if changed:  # an unchanged part gets no file: its bytes, and the features snapshot keyed on them, stay
            delta = table[_rows_from(table, changed)]
            write_delta(prices_dir, batch["part"], _price_table(delta), changed)
            files = part_files(prices_dir, batch["part"])
            extent = _extent_after(files, planned, stored, delta, changed)
            if should_compact(files, options.compact_after_deltas):
                compact_part(prices_dir, batch["part"])
        else:  # what the part holds now, read (a resumed batch finds its own earlier delta: the plan's is stale)
            extent = _extent_of(files, planned, sorted(map(str, first_fetched.index)))
    return _finish_batch(plan, batch, outcomes, attempts, repull, options, source, extent, new_rows, excluded)


#: Stored days read before the earliest requested start, so each new bar has the bars before it
#: to be judged against (the bad-bar check's window; fewer found → that ticker is read whole).
TAIL_LOOKBACK = timedelta(days=30)


def _planned_extent(batch: Mapping[str, Any]) -> pd.DataFrame | None:
    """The plan's record of what the batch's tickers had stored (``min``, ``max``, ``size``), or
    None for a plan written by an older version."""
    if "stored" not in batch:
        return None
    stored = batch["stored"]
    return pd.DataFrame({"min": pd.to_datetime([v[0] for v in stored.values()]).astype("datetime64[s]"),
                         "max": pd.to_datetime([v[1] for v in stored.values()]).astype("datetime64[s]"),
                         "size": np.array([v[2] for v in stored.values()], dtype=np.int64)},
                        index=pd.Index(list(stored), name="ticker", dtype=object))


def _read_rows(files: PartFiles, tickers: Sequence[str], since: Mapping[str, date] | None,
               columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The part's stored rows of ``tickers`` (each from its own ``since`` date on; None: all), as a
    price frame; with ``columns``, the other price columns are left empty (NaN)."""
    if not len(tickers):
        return _as_price_frame(_empty_prices())
    if since is None:
        where = pc.field("ticker").isin(pa.array(list(tickers), pa.string()))
    else:  # one filter term per distinct date (a handful: calendars differ)
        by_date: dict[date, list[str]] = {}
        for ticker in tickers:
            by_date.setdefault(since[ticker], []).append(ticker)
        terms = [pc.field("ticker").isin(pa.array(group, pa.string())) & (pc.field("date") >= pa.scalar(day, pa.date32()))
                 for day, group in by_date.items()]
        where = functools.reduce(operator.or_, terms)
    frame = read_part(files, columns, filter_expr=where).to_pandas(date_as_object=False, types_mapper=_string_type)
    for column in PRICE_SCHEMA.names:
        if column not in frame.columns and column != "currency":
            frame[column] = np.nan
    return _as_price_frame(frame)


#: What a batch that only appends bars reads of the stored ones (the bad-bar check's inputs).
LIGHT_COLUMNS = ["ticker", "date", "close"]


def _string_type(arrow_type: pa.DataType) -> Any:
    return pd.StringDtype() if pa.types.is_string(arrow_type) else None


def _stored_rows(prices_dir: Path, files: PartFiles, fetched: pd.DataFrame, starts: Mapping[str, date | None],
                 planned: pd.DataFrame | None, window: int = 5) -> pd.DataFrame:
    """What a batch can change of its stored part: per fetched ticker, its rows from
    TAIL_LOOKBACK before its incremental start on (a ticker with fewer than ``window``
    of them before its first fetched bar, but older history, and every full pull: all its rows).
    Per ticker, not from the batch's earliest start: one long-delisted ticker in a batch would
    otherwise read years of every other ticker's rows."""
    tickers = [str(t) for t in pd.unique(fetched["ticker"])]
    if planned is not None:
        tickers = [t for t in tickers if t in planned.index]
    tails = [t for t in tickers if starts.get(t) is not None]
    whole = [t for t in tickers if starts.get(t) is None]
    since = {t: start - TAIL_LOOKBACK for t in tails if (start := starts[t]) is not None}
    first_fetched = fetched.groupby("ticker")["date"].min()
    # Only bars after each ticker's last stored one (appended rows): no stored row can be replaced
    # or compared, so only what the bad-bar check looks at is read (the rest left empty).
    columns = LIGHT_COLUMNS if planned is not None and not whole and tails and bool(
        (first_fetched.reindex(tails).to_numpy() > planned["max"].reindex(tails).to_numpy()).all()) else None
    stored = _read_rows(files, tails, since, columns)
    if tails and planned is not None:
        before = stored.assign(first=stored["ticker"].map(first_fetched)).query("date < first").groupby("ticker").size()
        older = planned["min"].reindex(tails) < pd.Series({t: pd.Timestamp(d) for t, d in since.items()}).reindex(tails)
        short = [t for t in tails if before.get(t, 0) < window and bool(older.get(t, False))]
        if short:
            whole += short
            stored = stored[~stored["ticker"].isin(short).to_numpy()]
    if whole:
        stored = pd.concat([stored, _read_rows(files, whole, None, columns)], ignore_index=True)
        stored = stored.sort_values(["ticker", "date"], kind="stable", ignore_index=True)
    return stored


def _changed_tails(table: pd.DataFrame, stored: pd.DataFrame, since: pd.Series) -> dict[str, date | None]:
    """Per ticker whose rows differ between ``table`` (the batch's new state of the rows it read)
    and ``stored`` (those rows as stored): the first date at which they differ, a row added,
    changed or removed. Its rows from then on are the ticker's delta. Only rows from ``since``
    (per fetched ticker: its first fetched bar, or all for a full pull) can differ: the rows
    before are stored rows the batch kept as they were."""
    def changeable(frame: pd.DataFrame) -> pd.DataFrame:
        # reindex, not map: ``since`` is empty when every fetched ticker's re-pull failed
        start = pd.Series(since.reindex(frame["ticker"].astype(str)).to_numpy(), index=frame.index)
        return frame[(start.notna() & (frame["date"] >= start)).to_numpy(dtype=bool)].reset_index(drop=True)

    table, stored = changeable(table), changeable(stored)
    new_differs = ~same_bars(table, stored)
    old_differs = ~same_bars(stored, table)
    firsts = pd.concat([table.loc[new_differs, ["ticker", "date"]], stored.loc[old_differs, ["ticker", "date"]]])
    if firsts.empty:
        return {}
    earliest = firsts.groupby(firsts["ticker"].astype(str))["date"].min()
    return {str(t): pd.Timestamp(d).date() for t, d in earliest.items()}


def _rows_from(table: pd.DataFrame, since: Mapping[str, date | None]) -> np.ndarray:
    """Rows of ``table`` whose ticker is in ``since`` and dated on or after its date (None: all)."""
    start = table["ticker"].astype(str).map(
        {t: (pd.Timestamp(d) if d is not None else pd.Timestamp.min) for t, d in since.items()})
    return (start.notna() & (table["date"] >= start)).to_numpy(dtype=bool)


def _price_table(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame[PRICE_SCHEMA.names], schema=PRICE_SCHEMA, preserve_index=False)


def _extent_after(files: PartFiles, planned: pd.DataFrame | None, stored: pd.DataFrame, delta: pd.DataFrame,
                  changed: Mapping[str, date | None]) -> pd.DataFrame:
    """``_extent_of`` after a delta, from what the batch holds: per changed ticker, the plan's rows
    minus the stored rows the delta replaced, plus the delta's. (A ticker whose last row is
    neither in the delta nor in the rows read is read from the part.)"""
    if planned is None:
        return _extent_of(files, None)
    tickers = pd.Index(sorted(changed), dtype=object)
    since = pd.Series({t: (pd.Timestamp(d) if d is not None else pd.Timestamp.min) for t, d in changed.items()},
                      dtype="datetime64[ns]")
    s_ticker = stored["ticker"].astype(str)
    s_cut = s_ticker.map(since)
    replaced = s_cut.notna() & (stored["date"] >= s_cut)
    removed = s_ticker[replaced].value_counts().reindex(tickers, fill_value=0)
    below = stored.loc[s_cut.notna() & ~replaced].groupby(s_ticker[s_cut.notna() & ~replaced])["date"].max()
    added = delta.groupby(delta["ticker"].astype(str))["date"].agg(["min", "max", "size"]).reindex(tickers)
    before = planned.reindex(tickers)
    remaining = before["size"].fillna(0).astype("int64") - removed
    size = remaining + added["size"].fillna(0).astype("int64")
    first = before["min"].where(remaining > 0, added["min"])
    last = added["max"].where(added["size"].fillna(0) > 0, below.reindex(tickers))
    now = pd.DataFrame({"min": first.astype("datetime64[s]"), "max": last.astype("datetime64[s]"), "size": size},
                       index=tickers)
    unknown = [t for t in tickers if size[t] > 0 and pd.isna(now.at[t, "max"])]
    now = now[(now["size"] > 0).to_numpy()].drop(index=unknown)
    out = pd.concat([planned.drop(index=[t for t in tickers if t in planned.index]), now])
    return _extent_of(files, out, unknown) if unknown else out


def _extent_of(files: PartFiles, planned: pd.DataFrame | None, tickers: Sequence[str] | None = None) -> pd.DataFrame:
    """What the part stores now per ticker (``min``, ``max``, ``size``): the plan's record, with
    ``tickers`` (those written by this batch) read from the part; without a plan, the whole part's keys."""
    if planned is None:
        return _sorted_extent(read_part_retrying(files.base.parent if files.base else files.deltas[0].parent,
                                                 files.number, ["ticker", "date"], categorical=["ticker"]))
    if not tickers:
        return planned
    where = pc.field("ticker").isin(pa.array(list(tickers), pa.string()))
    now = _sorted_extent(read_part(files, ["ticker", "date"], where, categorical=["ticker"]))
    return pd.concat([planned.drop(index=[t for t in tickers if t in planned.index]), now])


def _sorted_unique(frame: pd.DataFrame) -> bool:
    """Rows already in (ticker, date) order with no (ticker, date) twice."""
    if len(frame) < 2:
        return True
    codes, names = pd.factorize(frame["ticker"])
    names = np.asarray(names, dtype=object)
    if (codes < 0).any() or not (names[1:] > names[:-1]).all():
        return False
    step_t, step_d = np.diff(codes), np.diff(frame["date"].to_numpy(dtype="datetime64[s]").view("int64"))
    return bool(((step_t > 0) | ((step_t == 0) & (step_d > 0))).all())


def _exclude_bad_new_bars(merged: pd.DataFrame, jump_factor: float, window: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``exclude_bad_bars`` judging only the bars new or changed in this run (``_new``), each with
    the ``window`` bars before its ticker's first new one as its history: stored bars were judged
    when they were stored, and re-judging a whole 25 M-bar store for one new day costs minutes.
    ``merged``: sorted by ticker and date. Returns (kept bars, excluded bars with a reason)."""
    new = merged["_new"].to_numpy(dtype=bool)
    if not new.any():
        return merged.reset_index(drop=True), pd.DataFrame(columns=["ticker", "date", "reason"])
    position = np.arange(len(merged))
    tickers = pd.factorize(merged["ticker"])[0]
    first_new = pd.Series(np.where(new, position, len(merged))).groupby(tickers).transform("min").to_numpy()
    judged = position >= first_new - window  # rows are sorted: the window stays inside the ticker
    reasons = flag_bad_bars(merged.loc[judged], jump_factor=jump_factor, window=window,
                            ticker_codes=tickers[judged]).to_numpy()
    bad = np.zeros(len(merged), dtype=bool)
    bad[np.flatnonzero(judged)[reasons != ""]] = True
    bad &= new
    excluded = merged.loc[bad, ["ticker", "date"]].assign(reason=reasons[bad[judged]]).reset_index(drop=True)
    return merged.loc[~bad].reset_index(drop=True), excluded


def _extent(bars: pd.DataFrame) -> pd.DataFrame:
    """Per ticker (index): ``min`` and ``max`` date and ``size`` (rows)."""
    return bars.groupby("ticker", observed=True)["date"].agg(["min", "max", "size"])


def _finish_batch(plan: IngestPlan, batch: dict[str, Any], outcomes: Mapping[str, FetchOutcome],
                  attempts: Mapping[str, int], repull: Mapping[str, str], options: IngestOptions, source: Source,
                  extent: pd.DataFrame, new_rows: pd.Series, excluded: pd.DataFrame) -> list[dict[str, Any]]:
    """The batch's ledger rows from what is stored now (``extent``: ``_extent`` of the part),
    written as the batch's done-file; a files source then remembers what it stored."""
    excluded_by = excluded.groupby(["ticker", "reason"]).size() if len(excluded) else pd.Series(dtype="int64")
    as_of = date.fromisoformat(plan.as_of)
    behind = trading_days_behind(extent["max"], as_of) if len(extent) else pd.Series(dtype="float64")
    rows = []
    for ticker in batch["tickers"]:
        outcome = outcomes[ticker]
        has = ticker in extent.index
        status = {OK: STATUS_OK, NOT_FOUND: STATUS_DELISTED, NO_DATA: STATUS_NO_DATA}.get(outcome.kind, STATUS_FAILED)
        if not batch["candidates"][ticker]:
            status = STATUS_UNRESOLVED
        reasons = dict(outcome.excluded)
        if ticker in excluded_by.index.get_level_values(0):
            for reason, n in excluded_by[ticker].items():
                reasons[str(reason)] = reasons.get(str(reason), 0) + int(n)
        error, cause = outcome.error, outcome.cause
        if status == STATUS_OK and not has and reasons:  # bars came, none could be kept: not stale, failed
            status, error, cause = STATUS_FAILED, all_excluded_error(reasons), "all_bars_excluded"
        if status == STATUS_OK and (not has or behind.get(ticker, np.inf) > options.stale_after_days):
            status = STATUS_STALE
        rows.append(
            {
                "run_id": plan.run_id,
                "source": plan.source,
                "ticker": ticker,
                "symbol": outcome.symbol,
                "status": status,
                "rows": int(new_rows.get(ticker, 0)),
                "stored_rows": int(extent["size"][ticker]) if has else 0,
                "first_date": str(pd.Timestamp(extent["min"][ticker]).date()) if has else None,
                "last_date": str(pd.Timestamp(extent["max"][ticker]).date()) if has else None,
                "attempts": int(attempts.get(ticker, 0)),
                "last_error": error,
                "requested_start": batch["starts"][ticker],
                "repull_reason": repull.get(ticker) if ticker in repull else ("backfill" if options.backfill else None),
                "excluded_rows": sum(reasons.values()),
                "currency": outcome.currency,
                "timezone": outcome.timezone,
                "batch": batch["part"],
                "deduplicated": int(outcome.deduplicated),
                "excluded_reasons": ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())) or None,
                "cause": failure_cause(status, cause, error),
            }
        )
    write_json(plan.batch_path(batch["part"]), rows)
    if isinstance(source, TracksFiles):
        source.stored(batch["part"], [r["ticker"] for r in rows if r["status"] in (STATUS_OK, STATUS_STALE)])
    return rows


def failure_cause(status: str, cause: str | None, error: str | None) -> str | None:
    """A short name of why a ticker has no fresh bars, to group the ledger's failures by: the
    source's own (``conflicting_close``), else the error's tag (``rate_limited: …`` → ``rate_limited``)."""
    if status in (STATUS_OK, STATUS_STALE):
        return None
    if cause:
        return cause
    head = (error or status).split(":", 1)[0].strip()
    return head if re.fullmatch(r"[a-z_]+", head) else status


def same_bars(fetched: pd.DataFrame, stored: pd.DataFrame) -> np.ndarray:
    """Per fetched row: a stored bar of the same (ticker, date) has exactly these values
    (NaN equal to NaN): a re-fetched overlap bar, not a bar written by this run."""
    columns = [c for c in PRICE_SCHEMA.names if c not in ("ticker", "date")]
    if not len(fetched) or not len(stored):
        return np.zeros(len(fetched), dtype=bool)
    same, match = match_ticker_dates(fetched, stored)
    for column in columns:
        if column == "currency":  # nullable strings: NA equals NA
            new = fetched[column].to_numpy(dtype=object, na_value=None)[same]
            old = stored[column].to_numpy(dtype=object, na_value=None)[match[same]]
            equal = np.asarray(new == old, dtype=bool)  # element-wise on objects: None == None
        else:
            new = fetched[column].to_numpy(dtype="float64", na_value=np.nan)[same]
            old = stored[column].to_numpy(dtype="float64", na_value=np.nan)[match[same]]
            equal = (new == old) | (np.isnan(new) & np.isnan(old))
        same[same] = equal
    return same


def _fetched_frame(ok: Mapping[str, FetchOutcome]) -> pd.DataFrame:
    """The fetched bars as stored: price frame, sub-unit currencies (GBp, ZAc, ILA) in major units.
    Normalised *before* the overlap is compared with the stored (major-unit) bars: comparing raw
    pence with stored pounds would call every London, Johannesburg and Tel Aviv ticker revised."""
    frames = [o.bars for o in ok.values() if o.bars is not None and len(o.bars)]  # "nothing new" answers add nothing
    if not frames:
        return _as_price_frame(_empty_prices())
    return normalise_currency_units(_as_price_frame(pd.concat(frames, ignore_index=True)))


def _empty_prices() -> pd.DataFrame:
    return PRICE_SCHEMA.empty_table().to_pandas(date_as_object=False)


def finish_ingest(plan: IngestPlan) -> IngestResult:
    """Gather the batches' ledger rows, write ledger + summary, remember winning symbols."""
    store = Store(plan.root)
    missing = [b["part"] for b in plan.batches if not plan.batch_path(b["part"]).exists()]
    if missing:
        raise BadInputError(
            f"ingest run {plan.run_id} has {len(missing)} unfinished batches (parts {missing[:5]}...); "
            "run the ingest again with the same run id to resume",
            tag="ingest_unfinished",
        )
    rows = [row for b in plan.batches for row in read_json(plan.batch_path(b["part"]))]
    ledger = pd.DataFrame(rows)
    ledger_path = write_parquet(plan.run_dir / "ledger.parquet", ledger)

    catalog = _load_catalog(store, plan.source)
    misses = catalog.setdefault("misses", {})
    for row in rows:
        if row["status"] in (STATUS_OK, STATUS_STALE) and row["symbol"]:
            before = catalog["symbols"].get(row["ticker"]) or {}
            # How the winner was found (a search) stays known while it keeps winning.
            kept = {k: before[k] for k in ("via", "name") if k in before and before.get("symbol") == row["symbol"]}
            catalog["symbols"][row["ticker"]] = {"symbol": row["symbol"], "currency": row.get("currency"),
                                                 "timezone": row.get("timezone"), **kept}
            misses.pop(row["ticker"], None)
        elif row["status"] in (STATUS_DELISTED, STATUS_NO_DATA, STATUS_UNRESOLVED):
            runs = int(misses.get(row["ticker"], {}).get("runs", 0)) + 1
            misses[row["ticker"]] = {"runs": runs, "reason": row.get("last_error"), "last_run": plan.run_id}
    write_json(ingest_dir(store, plan.source) / "catalog.json", catalog)

    counts = ledger["status"].value_counts()
    summary = {
        "run_id": plan.run_id,
        "source": plan.source,
        "as_of": plan.as_of,
        "tickers": int(len(ledger)),
        **{status: int(counts.get(status, 0)) for status in STATUSES},
        "rows": int(ledger["rows"].sum()),
        "excluded_rows": int(ledger["excluded_rows"].sum()),
        "repulled": int(ledger["repull_reason"].isin(["split", "dividend", "revision"]).sum()),
        "deduplicated": int(ledger["deduplicated"].sum()) if "deduplicated" in ledger else 0,
        "excluded_reasons": excluded_totals(ledger),
        "causes": failure_groups(ledger),
        "batches": len(plan.batches),
        "ledger": str(ledger_path),
    }
    write_json(plan.run_dir / "summary.json", summary)
    parts = list_parts(store.prices_dir(plan.source))
    paths = [p for b in plan.batches if (f := parts.get(b["part"])) for p in ([f.base] if f.base else []) + f.deltas]
    return IngestResult(paths, ledger_path, summary)


def excluded_totals(ledger: pd.DataFrame) -> dict[str, int]:
    """Bars excluded this run per reason, over the ledger's ``excluded_reasons`` ("weekend 2, …")."""
    totals: dict[str, int] = {}
    for text in ledger.get("excluded_reasons", pd.Series(dtype="string")).dropna():
        for item in str(text).split(", "):
            reason, _, n = item.rpartition(" ")
            totals[reason] = totals.get(reason, 0) + int(n)
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def failure_groups(ledger: pd.DataFrame, examples: int = 3) -> list[dict[str, Any]]:
    """Tickers without fresh bars grouped by cause, largest first: ``{cause, status, count,
    message (one example's error), tickers (up to ``examples``)}``. Failed, delisted, no data and
    unresolved tickers all appear; ok and stale ones do not."""
    if "cause" not in ledger or ledger["cause"].isna().all():
        return []
    problems = ledger[ledger["cause"].notna()]
    groups = []
    for (cause, status), rows in problems.groupby(["cause", "status"], sort=False):
        groups.append({"cause": str(cause), "status": str(status), "count": int(len(rows)),
                       "message": None if pd.isna(rows["last_error"].iloc[0]) else str(rows["last_error"].iloc[0]),
                       "tickers": rows["ticker"].astype(str).head(examples).tolist()})
    return sorted(groups, key=lambda g: (g["status"] != STATUS_FAILED, -g["count"]))


def ingest_verdict(summary: Mapping[str, Any], max_failed_share: float) -> str | None:
    """Why an ingest must end with a non-zero exit, or None: no ticker has usable bars, or more
    than ``max_failed_share`` of the tickers failed."""
    tickers = int(summary.get("tickers", 0))
    failed = int(summary.get(STATUS_FAILED, 0))
    usable = int(summary.get(STATUS_OK, 0)) + int(summary.get(STATUS_STALE, 0))
    if tickers and usable == 0:
        return f"no ticker has usable bars ({failed} failed of {tickers})"
    if tickers and failed / tickers > max_failed_share:
        return (f"{failed} of {tickers} tickers failed ({failed / tickers:.0%}, more than the "
                f"{max_failed_share:.0%} allowed by yahoo.max_failed_share)")
    return None


def render_failure_groups(groups: Sequence[Mapping[str, Any]], limit: int = 10) -> list[str]:
    """Lines for a screen: count, status, cause, up to 3 tickers and one example message per group."""
    lines = []
    for g in list(groups)[:limit]:
        lines.append(f"  {g['count']:>6} {g['status']:<10}{g['cause']}: {', '.join(g['tickers'])}"
                     + (", …" if g["count"] > len(g["tickers"]) else ""))
        if g.get("message"):
            lines.append(f"         e.g. {g['message']}")
    if len(groups) > limit:
        lines.append(f"  … and {len(groups) - limit} more causes (see the ledger)")
    return lines
