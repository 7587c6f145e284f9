"""Per-ticker fetch requests and outcomes: the contract between sources and the ingest stage.

A plain :class:`~tasks.prices.sources.PriceSource` only returns bars; a source that can say *why*
a ticker has no bars (Yahoo) implements ``fetch_outcomes``. The ingest stage drives retries,
the ledger and storage from these outcomes, whatever the source.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Protocol, runtime_checkable

import pandas as pd

# Outcome kinds. "transient" may succeed on retry; the others are final for this run.
OK = "ok"
NOT_FOUND = "not_found"  # 404 / "possibly delisted" on every candidate
NO_DATA = "no_data"  # the symbol exists but has no bars at all
TRANSIENT = "transient"  # 429, 5xx, timeout, connection error, malformed answer
ERROR = "error"  # anything else: a bug or an answer we do not understand; not retried

# Extra columns a source may add next to PRICE_SCHEMA's, used for re-pull decisions only.
EVENT_COLUMNS = ["dividends", "splits"]


@dataclass(frozen=True)
class FetchRequest:
    """Bars wanted for one ticker: source symbols to try in order, from ``start`` (None = all)."""

    ticker: str
    candidates: tuple[str, ...]
    start: date | None = None


@dataclass
class FetchOutcome:
    """What happened to one request. ``bars`` is in PRICE_SCHEMA (+ EVENT_COLUMNS) when ok."""

    ticker: str
    kind: str
    symbol: str | None = None
    bars: pd.DataFrame | None = None
    error: str | None = None
    # Candidates still worth trying after a transient failure (not-found ones are dropped).
    remaining: tuple[str, ...] = ()
    currency: str | None = None
    timezone: str | None = None
    http_requests: int = 0
    tried: list[str] = field(default_factory=list)
    # What the source did to the bars before handing them over (vendor files): duplicate days
    # kept once, and bars excluded per reason; ``cause`` is a short name of why it failed.
    deduplicated: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    cause: str | None = None


@runtime_checkable
class OutcomeSource(Protocol):
    """A price source that reports a truthful outcome per ticker."""

    name: str

    def fetch_outcomes(self, requests: Sequence[FetchRequest], end: date | None = None) -> list[FetchOutcome]:
        """One outcome per request, in the same order; never raises for a single ticker's failure."""
        ...


@runtime_checkable
class TracksFiles(Protocol):
    """A source over local files that remembers, in the ingest folder, which file contents each
    stored ticker's bars came from, so unchanged files are not read again."""

    def attach(self, state_dir: Path) -> None: ...

    def check_folder(self) -> None: ...

    def stored(self, part: int, tickers: Iterable[str]) -> None: ...

    def release(self) -> None: ...


@runtime_checkable
class RemembersTimezones(Protocol):
    """A source that can be told exchange timezones it answered before (saves a probe per symbol)."""

    def learn_timezones(self, timezones: dict[str, str]) -> None: ...
