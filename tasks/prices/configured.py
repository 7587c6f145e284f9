"""The configured price source and what is read from it, plain Python: one source object per
configuration per process (the Yahoo source's session and rate limiter are shared by every task
thread), the demo market, the store name, Yahoo's search on that source, the round's readiness check
and what ``numerflow ingest`` fetches. flows/prices.py runs the ingest on it."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from numerflow.tasks.core.config import Settings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store
from numerflow.tasks.prices.ingest import (
    STATUS_DELISTED,
    STATUS_FAILED,
    STATUS_NO_DATA,
    STATUS_OK,
    STATUS_STALE,
    STATUS_UNRESOLVED,
    IngestOptions,
    Source,
)

if TYPE_CHECKING:
    from numerflow.tasks.prices.sources.demo import DemoMarket

_sources: dict[tuple, Source] = {}


def thread_workers(settings: Settings) -> int | None:
    """Threads of the thread task runner (ingest batches, several models at once):
    ``orchestration.thread_workers`` when set; else, for the offline sources (demo, your files), whose
    batches are CPU work, one per core; else (Yahoo: waiting on the network) Prefect's default (no
    limit). Each batch in flight holds its bars and their merged part (~250 MB for 100 tickers x 20
    years): with no limit, the demo's 50 batches at 5,000 tickers all ran at once (11 GB)."""
    if settings.orchestration.thread_workers is not None:
        return settings.orchestration.thread_workers
    if settings.price_source in ("demo", "files"):
        return max(1, os.cpu_count() or 1)
    return None


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
        compact_after_deltas=y.compact_after_deltas,
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
        # gets the new day's market, not yesterday's. Crypto's token market ends yesterday.
        if settings.tournament == "crypto":
            from numerflow.tasks.crypto.demo import crypto_demo_size, default_crypto_end

            return ("demo-crypto", *crypto_demo_size(d), d.signal, d.seed, default_crypto_end())
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

        if settings.tournament == "crypto":  # tokens with symbol ids on the every-day calendar
            from numerflow.tasks.crypto.demo import CryptoDemoMarket

            return CryptoDemoMarket.from_settings(settings.demo)
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
        if settings.tournament == "crypto":
            from numerflow.tasks.crypto.demo import crypto_demo_size, crypto_store_name

            return crypto_store_name(*crypto_demo_size(d), d.signal, d.seed)
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
            from numerflow.tasks.prices.ingest import ingest_dir
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
