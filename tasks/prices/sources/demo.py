"""The built-in demo market: a deterministic synthetic price source.

Offline runs and tests use it instead of Yahoo. It produces daily bars in the store's price
schema for tickers in the real ``numerai_ticker`` format ("AAPL US", "7203 JP", "700 HK",
"005930 KR") across eleven countries, with what real data has that trips pipelines up:
per-country exchange holidays, missing bars, listings and delistings, fat-tailed returns,
dividends (``adj_close`` < ``close`` before an ex-date) and a planted, *known* signal.

Model (log returns, one row per ticker, one column per weekday of the calendar grid)::

    r[i, t] = beta_i * market[t] + gamma_i * sector[s_i, t] + sigma_i * eps[i, t]
              + signal * DRIFT_SCALE * drift[i, t] + signal * sum_j x[i, j] * style[j, t]

``x`` are static style exposures with factor returns ``style`` (style 0 earns a premium of
``STYLE_PREMIUM`` a day, style 1 none); ``neutralizers()`` gives Numerai-style neutralizer
tables spanning beta, styles, sectors and countries, so ALPHA and CORR differ: a signal that is
a style scores CORR but no ALPHA.

``market``, ``sector`` and ``eps`` are i.i.d. unit-variance Student-t(4) shocks; ``drift`` is a
latent per-ticker AR(1) with a half-life of ``DRIFT_HALF_LIFE`` trading days. The drift is the
only persistent component, so with ``signal=0`` no function of the past predicts the
cross-section of future returns, and with ``signal>0`` trailing 20-120 day returns
(momentum) predict the forward 20-day return. Calibration (600 tickers x 6 years): per-date
Spearman correlation of trailing 60-day with forward 20D2L return ~0.00 at signal 0,
~0.04 at 0.5, ~0.13 at 1.0; a LightGBM on momentum/volatility ranks validates at
~0.02-0.045 (signal 0.5) and ~0.12-0.16 (signal 1.0) across seeds.

Determinism: every random draw depends only on (tickers, years, signal, seed) and on which
calendar block ``end`` falls in; each model component has its own random stream, so changing
``signal`` changes the drift and the style returns and nothing else. For a given ``end`` the
output is bit-for-bit reproducible.

A market that appends, as a real source does: the market is drawn on a weekday grid that ends on
the last day of ``end``'s block of ``CALENDAR_BLOCK_DAYS`` weekdays (blocks counted from a fixed
origin) and reaches ``CALENDAR_BLOCK_DAYS`` weekdays further back than the history, and the
``years`` of history ending on ``end`` are a window of it. So moving ``end`` by a day within a block
appends that day's bars and changes no stored bar (only a dividend paid on the new day rescales its
ticker's raw closes, as a real vendor's do); moving it into the next block (about once a quarter)
draws a new market.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.signal import lfilter

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.schemas import PRICE_SCHEMA, UNIVERSE_SCHEMA
from numerflow.tasks.core.store import _string_mapper

if TYPE_CHECKING:
    from numerflow.tasks.core.config import DemoSettings

# Weekdays per year (52.18 weeks x 5).
BUSINESS_DAYS_PER_YEAR = 261
# Above this the smallest national symbol space (JP: 4 digits) runs out.
MAX_TICKERS = 50_000

# country -> (share of tickers, currency, typical price level in that currency)
COUNTRIES: dict[str, tuple[float, str, float]] = {
    "US": (0.34, "USD", 40.0),
    "JP": (0.14, "JPY", 2500.0),
    "IN": (0.08, "INR", 800.0),
    "GB": (0.07, "GBP", 5.0),
    "HK": (0.06, "HKD", 30.0),
    "KR": (0.06, "KRW", 40000.0),
    "CA": (0.05, "CAD", 25.0),
    "DE": (0.05, "EUR", 40.0),
    "FR": (0.05, "EUR", 40.0),
    "TW": (0.05, "TWD", 80.0),
    "AU": (0.05, "AUD", 10.0),
}
COUNTRY_CODES = list(COUNTRIES)
COUNTRY_CURRENCY = {country: spec[1] for country, spec in COUNTRIES.items()}

# Letter symbols: country -> (lengths, probabilities). Real shapes: "F US", "AAPL US",
# "VOD GB", "SAP DE", "MC FR", "BHP AU", "RELIANCE IN".
_LETTER_LENGTHS: dict[str, tuple[list[int], list[float]]] = {
    "US": ([1, 2, 3, 4], [0.03, 0.12, 0.35, 0.50]),
    "CA": ([2, 3, 4], [0.2, 0.5, 0.3]),
    "GB": ([3, 4], [0.6, 0.4]),
    "DE": ([3], [1.0]),
    "FR": ([2, 3], [0.15, 0.85]),
    "AU": ([3], [1.0]),
    "IN": ([3, 4, 5, 6, 7, 8, 9], [0.1, 0.2, 0.2, 0.15, 0.15, 0.1, 0.1]),
}
# Numeric symbols: country -> (lowest code, highest code, step, zero-padded width; 0 = unpadded).
# JP "7203", TW "2330": 4 digits; HK "5", "700": unpadded; KR "005930": 6 digits, mostly x10.
_NUMERIC_CODES: dict[str, tuple[int, int, int, int]] = {
    "JP": (1300, 9999, 1, 4),
    "TW": (1101, 9999, 1, 4),
    "HK": (1, 9999, 1, 0),
    "KR": (20, 999990, 10, 6),
}

N_SECTORS = 10
HOLIDAYS_PER_YEAR = (8, 10)  # inclusive range of weekday exchange holidays per country-year
MISSING_BAR_RATE = 0.003
LATE_LISTING_RATE = 0.15  # share of tickers that list after the first day of the grid
DELISTING_RATE = 0.08  # share of tickers that stop trading before ``end``
DIVIDEND_PAYER_RATE = 0.6
MARKET_VOL = 0.009  # daily, before beta
SECTOR_VOL = 0.006  # daily, before loading
DRIFT_HALF_LIFE = 50.0  # trading days of the latent drift's AR(1)
DRIFT_SCALE = 0.0016  # stationary daily std of the drift at signal=1 (calibrated, see module doc)
STUDENT_T_DF = 4.0
# Style factors: static per-ticker exposures (z-scores) with factor returns. Style 0 earns a
# steady premium (like value), style 1 none (like size); both only when signal > 0, so a
# pure-noise market stays unpredictable. They are what ALPHA removes: the demo's neutralizers
# span them together with beta, sector and country.
N_STYLES = 2
STYLE_PREMIUM = 0.0005  # daily return per unit of style-0 exposure at signal=1
STYLE_VOL = 0.002  # daily std of each style's factor return
_CHUNK_ROWS = 256  # tickers generated per block: bounds float64 temporaries, fixed for determinism
# The market is drawn once per block of this many weekdays (about a quarter), counted from
# _CALENDAR_ORIGIN: a later ``end`` in the same block serves the same draws, one day longer.
CALENDAR_BLOCK_DAYS = 65
_CALENDAR_ORIGIN = np.datetime64("1990-01-01", "D")  # a Monday

# One independent random stream per model component (the ids are part of the seed).
_STREAM = {
    name: index
    for index, name in enumerate(
        [
            "symbols", "figi", "sector", "loadings", "listing", "dividends", "price_level",
            "market", "sectors", "idio", "drift", "intraday", "volume", "missing", "holidays",
            "styles",  # appended last: the earlier streams keep their draws
        ]
    )
}


@dataclass(frozen=True)
class _Market:
    """The generated market: per-ticker attributes (sorted by ticker) and (ticker, day) matrices."""

    dates: pd.DatetimeIndex  # the weekday grid, length T
    tickers: np.ndarray  # object array of "SYMBOL CC", sorted
    figis: np.ndarray
    country: np.ndarray  # index into COUNTRY_CODES
    sector: np.ndarray
    beta: np.ndarray  # market loading
    styles: np.ndarray  # (N, N_STYLES) float32 style exposures
    first_day: np.ndarray  # day index of the first day of life (< 0: listed before the history's first day)
    last_day: np.ndarray  # day index of the last day of life (>= T-1: still listed on the last day)
    div_period: np.ndarray  # trading days between ex-dates; 0 = pays no dividend
    div_offset: np.ndarray
    div_yield: np.ndarray  # per payment
    present: np.ndarray  # (N, T) bool: a bar exists (alive, exchange open, not missing)
    adj_close: np.ndarray  # (N, T) float32, total-return price path (today's adjusted terms)
    adj_open: np.ndarray
    adj_high: np.ndarray
    adj_low: np.ndarray
    volume: np.ndarray  # (N, T) float32 shares


#: Peak memory of a whole demo round per bar (market, prices, features, dataset, LightGBM),
#: measured at Numerai's size (benchmarks/bench_round.py): 5,000 tickers x 20 years (26.1 M bars)
#: peaked at 4.65 GB RSS in the first round, 4.56 GB in a daily one: ~165 B per bar above the
#: interpreter's own ~0.35 GB (dataset stage; ingest 1.9 GB, training 4.0 GB); rounded up for headroom.
ROUND_BYTES_PER_BAR = 200


def available_memory_bytes() -> int:
    """Memory the OS can give this process now (Linux MemAvailable; else all physical memory)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def check_demo_fits(tickers: int, years: float, available: int | None = None) -> None:
    """Refuse, before anything is allocated, a demo market whose round cannot fit in memory."""
    bars = tickers * max(1, round(years * BUSINESS_DAYS_PER_YEAR))
    needed = bars * ROUND_BYTES_PER_BAR
    available = available_memory_bytes() if available is None else available
    if needed > available:
        raise BadInputError(
            f"a demo market of {tickers} tickers x {years:g} years is {bars / 1e6:.1f} M daily bars; its round "
            f"needs about {needed / 1e9:.1f} GB of memory and {available / 1e9:.1f} GB is available: use fewer "
            "--tickers or --years (Numerai's universe is ~5,000 tickers)", tag="invalid_option")


def demo_store_name(tickers: int, years: float, signal: float, seed: int) -> str:
    """The price store of one demo market (``prices/<name>``): keyed by what makes the market, so
    another ``--seed`` or ``--tickers`` in the same data dir never mixes its bars with these.
    The end day is not part of it: tomorrow's market extends today's store. Letters, digits and
    dashes only (it also keys Prefect artifacts): 1.5 is written 1p5."""
    return f"demo-seed{seed}-n{tickers}-y{years:g}-s{signal:g}".replace(".", "p").replace("+", "")


class DemoMarket:
    """Deterministic synthetic market implementing the ``PriceSource`` protocol.

    ``tickers``: number of tickers (1..MAX_TICKERS). ``years``: length of the daily history.
    ``signal``: strength of the planted predictable drift (0 = none). ``seed``: random seed.
    ``end``: last day of the calendar; default the last weekday strictly before today (UTC);
    a weekend date moves back to the Friday before it.
    """

    def __init__(
        self,
        tickers: int = 600,
        years: float = 6.0,
        signal: float = 0.5,
        seed: int = 42,
        end: date | None = None,
    ) -> None:
        self.tickers = _check_int("tickers", tickers, low=1, high=MAX_TICKERS)
        self.years = _check_float("years", years, positive=True)
        self.signal = _check_float("signal", signal, positive=False)
        self.seed = _check_int("seed", seed)
        self.name = demo_store_name(self.tickers, self.years, self.signal, self.seed)
        self.end = _last_weekday(_to_date("end", end)) if end is not None else default_end()
        self._lock = threading.Lock()
        self._cache: _Market | None = None

    @classmethod
    def from_settings(cls, settings: DemoSettings, end: date | None = None) -> DemoMarket:
        """Build from ``Settings.demo``."""
        return cls(tickers=settings.tickers, years=settings.years, signal=settings.signal,
                   seed=settings.seed, end=end)

    @property
    def identity(self) -> dict[str, Any]:
        """What fills this market's store (``ingest.check_store_identity``): not its end day."""
        return {"kind": "demo", "tickers": self.tickers, "years": self.years, "signal": self.signal, "seed": self.seed}

    def __repr__(self) -> str:
        return (f"DemoMarket(tickers={self.tickers}, years={self.years}, signal={self.signal}, "
                f"seed={self.seed}, end={self.end.isoformat()})")

    # Pickling (process pools, Dask) drops the lock and the generated matrices.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_lock")
        state["_cache"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def dates(self) -> pd.DatetimeIndex:
        """The weekday grid of the market (every weekday; each exchange skips its holidays)."""
        return _business_days(self.end, self._n_days)

    @property
    def _n_days(self) -> int:
        return max(1, int(round(self.years * BUSINESS_DAYS_PER_YEAR)))

    @property
    def _market(self) -> _Market:
        """The market: per-ticker attributes, and the bars unless ``release_bars`` dropped them."""
        with self._lock:
            if self._cache is None:
                self._cache = self._draw()
            return self._cache

    def _market_with_bars(self) -> _Market:
        market = self._market
        if market.present.shape[1] == len(market.dates):
            return market
        with self._lock:  # released: drawn again (the same draws)
            self._cache = None
        return self._market

    def _draw(self) -> _Market:
        """Generate the market (called once, under the lock, by ``_market``; Crypto's draws its own)."""
        grid_end, n_grid, lo = _calendar_grid(self.end, self._n_days)
        return _window(_generate(self.tickers, n_grid, self.signal, self.seed, grid_end), lo, lo + self._n_days)

    def release_bars(self) -> None:
        """Free the (ticker, day) matrices (21 bytes a grid cell: 0.55 GB at 5,000 tickers x 20 years)
        once the ingest has stored the bars; the per-ticker attributes the listings, universe and
        neutralizers read stay. A later ``fetch`` draws the market again."""
        with self._lock:
            if self._cache is not None:
                empty = {name: getattr(self._cache, name)[:, :0].copy()
                         for name in ("present", "adj_close", "adj_open", "adj_high", "adj_low", "volume")}
                self._cache = replace(self._cache, **empty)

    def all_tickers(self) -> list[str]:
        """Every ticker that trades at some point of the history (delisted ones included), sorted."""
        return self._market.tickers.tolist()

    def listings(self) -> pd.DataFrame:
        """One row per ticker: numerai_ticker, composite_figi, country, currency, sector,
        first_date (first day of life), last_date (last day of life), delisted (bool)."""
        market = self._market
        countries = np.array(COUNTRY_CODES, dtype=object)[market.country]
        return pd.DataFrame(
            {
                "numerai_ticker": pd.array(market.tickers, dtype=pd.StringDtype()),
                "composite_figi": pd.array(market.figis, dtype=pd.StringDtype()),
                "country": pd.array(countries, dtype=pd.StringDtype()),
                "currency": pd.array(np.array(list(COUNTRY_CURRENCY.values()), dtype=object)[market.country],
                                     dtype=pd.StringDtype()),
                "sector": market.sector.astype(np.int64),
                "first_date": market.dates[np.maximum(market.first_day, 0)],
                "last_date": market.dates[np.minimum(market.last_day, len(market.dates) - 1)],
                "delisted": market.last_day < len(market.dates) - 1,
            }
        )

    def universe(self) -> pd.DataFrame:
        """Tickers live on ``end`` (listed and not delisted): numerai_ticker, composite_figi, country."""
        listings = self.listings()
        live = listings.loc[~listings["delisted"], ["numerai_ticker", "composite_figi", "country"]]
        return live.reset_index(drop=True).astype({name: pd.StringDtype() for name in UNIVERSE_SCHEMA.names})

    def fetch(self, tickers: Sequence[str], start: date | None = None, end: date | None = None) -> pd.DataFrame:
        """Bars for ``tickers`` with ``start <= date <= end``, sorted by (ticker, date), in the
        price schema (the same dtypes ``tasks.core.store.read_parquet`` returns)."""
        if isinstance(tickers, str):
            raise BadInputError(
                f"tickers must be a list of tickers, got the single string {tickers!r}; pass [{tickers!r}]",
                tag="invalid_tickers",
            )
        start_day = _to_date("start", start) if start is not None else None
        end_day = _to_date("end", end) if end is not None else None
        if start_day is not None and end_day is not None and start_day > end_day:
            raise BadInputError(f"start {start_day} is after end {end_day}; swap them", tag="invalid_dates")
        market = self._market_with_bars()
        requested = np.unique(np.asarray([str(t) for t in tickers], dtype=object))
        rows = np.searchsorted(market.tickers, requested) if len(requested) else np.array([], dtype=np.int64)
        known = (rows < len(market.tickers)) & (market.tickers[np.minimum(rows, len(market.tickers) - 1)] == requested)
        if not known.all():
            unknown = requested[~known]
            raise BadInputError(
                f"{len(unknown)} ticker(s) unknown to the demo market, e.g. {unknown[:5].tolist()}; "
                "ask only for tickers from all_tickers() or universe()",
                tag="unknown_tickers",
            )
        day_lo = 0 if start_day is None else int(market.dates.searchsorted(pd.Timestamp(start_day), side="left"))
        day_hi = len(market.dates) if end_day is None else int(
            market.dates.searchsorted(pd.Timestamp(end_day), side="right"))
        return _bars_frame(market, rows, day_lo, max(day_lo, day_hi))


    def neutralizers(self, dates: Sequence[Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Numerai-style neutralizer and sample-weight tables for ``dates`` (each ticker alive on
        the date): ``numerai_ticker``, ``date`` ("YYYY-MM-DD"), ``neutralizer_<j>`` (float32) and
        ``sample_weight`` (1.0). The columns are an orthonormal basis (Nᵀ N = I) of the span of
        [1, beta, styles, sector and country dummies] on the date, zero-padded to a fixed count:
        the factors a real neutralizer removes, so ALPHA keeps only what is not one of them.
        The rows of ``neutralizer_parts`` in one table each."""
        parts = list(self.neutralizer_parts(dates))
        return (pd.concat([n for n, _ in parts], ignore_index=True),
                pd.concat([w for _, w in parts], ignore_index=True))

    def neutralizer_parts(self, dates: Sequence[Any], max_rows: int = 250_000
                          ) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
        """``neutralizers(dates)`` a few dates at a time (sorted by date; at most ``max_rows`` rows
        a part, every date of a part with the same tickers), for writing without the whole table.

        A date's basis depends only on which tickers are alive, which changes only on a listing or a
        delisting day: one SVD per such stretch of dates (the same SVD of the same matrix, so the same
        basis as one per date), not one per date."""
        market = self._market
        stamps = pd.DatetimeIndex(pd.to_datetime(pd.Series(list(dates))).drop_duplicates().sort_values())
        days = market.dates.searchsorted(stamps)
        known = days < len(market.dates)
        known[known] = market.dates[days[known]] == stamps[known]
        stamps, days = stamps[known], days[known]
        if not len(days):
            raise BadInputError("none of the dates is a day of the demo market", tag="invalid_dates")
        # Tickers listed by the day, and delisted before it: two non-decreasing counts, so days with
        # equal counts have the same tickers alive.
        listed = np.searchsorted(np.sort(market.first_day), days, side="right")
        gone = np.searchsorted(np.sort(market.last_day), days, side="left")
        epoch = listed.astype(np.int64) * (len(market.tickers) + 1) + gone
        design = np.column_stack([
            np.ones(len(market.tickers)), market.beta, market.styles,
            np.eye(N_SECTORS)[market.sector], np.eye(len(COUNTRY_CODES))[market.country],
        ])
        width = design.shape[1]
        names = [f"neutralizer_{j}" for j in range(width)]
        labels = np.asarray(stamps.strftime("%Y-%m-%d"), dtype=object)
        bounds = np.flatnonzero(np.r_[True, epoch[1:] != epoch[:-1], True])
        produced = False
        for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            day = int(days[lo])
            alive = np.flatnonzero((market.first_day <= day) & (market.last_day >= day))
            if len(alive) == 0:
                continue
            u, singular, _ = np.linalg.svd(design[alive], full_matrices=False)
            basis = np.zeros((len(alive), width), dtype=np.float32)
            rank = int((singular > 1e-9 * singular[0]).sum())
            basis[:, :rank] = u[:, :rank]
            tickers = pd.array(market.tickers[alive], dtype=pd.StringDtype())
            step = max(1, max_rows // len(alive))
            for first in range(lo, hi, step):
                n_dates = min(step, hi - first)
                ids = {"numerai_ticker": pd.array(np.tile(tickers, n_dates), dtype=pd.StringDtype()),
                       "date": pd.array(np.repeat(labels[first:first + n_dates], len(alive)), dtype="str")}
                yield (pd.DataFrame({**ids, **{name: np.tile(basis[:, j], n_dates) for j, name in enumerate(names)}}),
                       pd.DataFrame({**ids, "sample_weight": np.ones(n_dates * len(alive), dtype=np.float32)}))
                produced = True
        if not produced:
            raise BadInputError("none of the dates is a day of the demo market", tag="invalid_dates")

    def style_exposures(self) -> pd.DataFrame:
        """Per ticker: ``numerai_ticker``, ``beta`` and ``style_<j>`` (the factor exposures)."""
        market = self._market
        frame = pd.DataFrame({"numerai_ticker": pd.array(market.tickers, dtype=pd.StringDtype()),
                              "beta": market.beta})
        for j in range(N_STYLES):
            frame[f"style_{j}"] = market.styles[:, j]
        return frame


# --------------------------------------------------------------------------- validation


def _check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise BadInputError(f"{name} must be an integer, got {value!r}", tag="invalid_demo_market")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        raise BadInputError(f"{name} must be {bounds}, got {value}", tag="invalid_demo_market")
    return value


def _check_float(name: str, value: Any, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise BadInputError(f"{name} must be a number, got {value!r}", tag="invalid_demo_market")
    value = float(value)
    if not math.isfinite(value) or (value <= 0 if positive else value < 0):
        need = "> 0" if positive else ">= 0"
        raise BadInputError(f"{name} must be a finite number {need}, got {value}", tag="invalid_demo_market")
    return value


def _to_date(name: str, value: Any) -> date:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        stamp = pd.NaT
    if pd.isna(stamp):
        raise BadInputError(f"{name} must be a date (e.g. 2024-05-31), got {value!r}", tag="invalid_dates")
    return stamp.date()


def _last_weekday(day: date) -> date:
    return day - timedelta(days=max(0, day.weekday() - 4))


def default_end() -> date:
    """The last weekday strictly before today's UTC date, so a demo round looks current."""
    return _last_weekday(datetime.now(UTC).date() - timedelta(days=1))


def _business_days(end: date, n_days: int) -> pd.DatetimeIndex:
    return pd.bdate_range(end=pd.Timestamp(end), periods=n_days).as_unit("ms")


def _calendar_grid(end: date, n_days: int) -> tuple[date, int, int]:
    """The grid the market for ``end`` is drawn on: its last day (the last weekday of ``end``'s
    calendar block), its length in weekdays, and the grid index of the history's first day (the
    history is grid days [lo, lo + n_days), ending on ``end``)."""
    index = int(np.busday_count(_CALENDAR_ORIGIN, np.datetime64(end, "D")))  # end's weekday number
    block_last = (index // CALENDAR_BLOCK_DAYS + 1) * CALENDAR_BLOCK_DAYS - 1
    grid_end = np.busday_offset(_CALENDAR_ORIGIN, block_last).astype(date)
    n_grid = n_days + CALENDAR_BLOCK_DAYS
    return grid_end, n_grid, n_grid - n_days - (block_last - index)


# --------------------------------------------------------------------------- generation


def _rng(seed: int, stream: str, *extra: int) -> np.random.Generator:
    entropy = [int(seed < 0), abs(seed), _STREAM[stream], *extra]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _country_counts(n_tickers: int) -> np.ndarray:
    """Tickers per country, proportional to the shares (no randomness, sums to n)."""
    bounds = np.round(np.cumsum([spec[0] for spec in COUNTRIES.values()]) * n_tickers).astype(np.int64)
    bounds[-1] = n_tickers
    return np.diff(np.concatenate([[0], bounds]))


def _letter_symbols(rng: np.random.Generator, country: str, count: int) -> list[str]:
    lengths, probabilities = _LETTER_LENGTHS[country]
    symbols: dict[str, None] = {}
    while len(symbols) < count:  # redraw only to replace collisions
        need = 2 * (count - len(symbols)) + 8
        drawn_lengths = rng.choice(lengths, size=need, p=probabilities)
        letters = rng.integers(ord("A"), ord("Z") + 1, size=(need, max(lengths)), dtype=np.uint8)
        raw = letters.view(f"S{max(lengths)}").ravel()
        for length in lengths:  # a handful of lengths, not a per-ticker loop
            chosen = drawn_lengths == length
            for symbol in raw[chosen].astype(f"S{length}").astype(str):
                symbols.setdefault(symbol)
    return list(symbols)[:count]


def _numeric_symbols(rng: np.random.Generator, country: str, count: int) -> list[str]:
    low, high, step, width = _NUMERIC_CODES[country]
    space = (high - low) // step + 1
    if count > space:
        raise BadInputError(
            f"the demo market has only {space} {country} symbols but needs {count}; use fewer tickers",
            tag="invalid_demo_market",
        )
    codes = low + step * rng.choice(space, size=count, replace=False)
    return [str(code).zfill(width) for code in codes.tolist()]


def _make_tickers(seed: int, n_tickers: int) -> tuple[np.ndarray, np.ndarray]:
    """Unique "SYMBOL CC" tickers, sorted, and their country indices."""
    rng = _rng(seed, "symbols")
    tickers: list[str] = []
    countries: list[int] = []
    for index, (country, count) in enumerate(zip(COUNTRY_CODES, _country_counts(n_tickers), strict=False)):
        if count == 0:
            continue
        symbols = (_numeric_symbols if country in _NUMERIC_CODES else _letter_symbols)(rng, country, int(count))
        tickers.extend(f"{symbol} {country}" for symbol in symbols)
        countries.extend([index] * len(symbols))
    ticker_array = np.asarray(tickers, dtype=object)
    order = np.argsort(ticker_array, kind="stable")
    return ticker_array[order], np.asarray(countries, dtype=np.int16)[order]


_FIGI_ALPHABET = np.frombuffer(b"BCDFGHJKLMNPQRSTVWXYZ0123456789", dtype=np.uint8)


def _figi_check_digits(body: np.ndarray) -> np.ndarray:
    """FIGI check digit (modulus 10 double-add-double) of (n, 11) ASCII codes."""
    values = np.where(body >= ord("A"), body.astype(np.int64) - 55, body.astype(np.int64) - 48)
    values[:, 1::2] *= 2
    total = (values // 10 + values % 10).sum(axis=1)
    return ((10 - total % 10) % 10 + ord("0")).astype(np.uint8)


def _make_figis(seed: int, n_tickers: int) -> np.ndarray:
    """Fake but well-formed composite FIGIs: "BBG" + 8 consonants/digits + check digit, unique."""
    rng = _rng(seed, "figi")
    figis: dict[str, None] = {}
    while len(figis) < n_tickers:
        need = n_tickers - len(figis)
        body = np.empty((need, 12), dtype=np.uint8)
        body[:, :3] = np.frombuffer(b"BBG", dtype=np.uint8)
        body[:, 3:11] = _FIGI_ALPHABET[rng.integers(0, len(_FIGI_ALPHABET), size=(need, 8))]
        body[:, 11] = _figi_check_digits(body[:, :11])
        for figi in body.view("S12").ravel().astype(str):
            figis.setdefault(figi)
    return np.asarray(list(figis)[:n_tickers], dtype=object)


def _student_t(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Unit-variance Student-t(4) draws, float32: normal / sqrt(chi2_4 / 4)."""
    normal = rng.standard_normal(shape, dtype=np.float32)
    chi2_over_df = rng.standard_gamma(STUDENT_T_DF / 2, shape, dtype=np.float32) / np.float32(STUDENT_T_DF / 2)
    normal /= np.sqrt(chi2_over_df)
    normal *= np.float32(math.sqrt((STUDENT_T_DF - 2) / STUDENT_T_DF))
    return normal


def _holiday_mask(seed: int, dates: pd.DatetimeIndex, countries: np.ndarray) -> np.ndarray:
    """(n_countries, T) bool: exchange closed. Each country-year draws its own weekday holidays."""
    closed = np.zeros((len(COUNTRY_CODES), len(dates)), dtype=bool)
    years = dates.year.to_numpy()
    for country in np.unique(countries).tolist():
        for year in range(int(years[0]), int(years[-1]) + 1):
            rng = _rng(seed, "holidays", country, year)
            weekdays = pd.bdate_range(f"{year}-01-01", f"{year}-12-31")
            count = int(rng.integers(HOLIDAYS_PER_YEAR[0], HOLIDAYS_PER_YEAR[1] + 1))
            holidays = weekdays[np.sort(rng.choice(len(weekdays), size=count, replace=False))]
            closed[country] |= dates.isin(holidays)
    return closed


def _generate(n_tickers: int, n_days: int, signal: float, seed: int, end: date) -> _Market:
    """The market on the grid of ``n_days`` weekdays ending on ``end`` (``_calendar_grid``): a
    history window plus one calendar block before it."""
    dates = _business_days(end, n_days)
    tickers, country = _make_tickers(seed, n_tickers)
    figis = _make_figis(seed, n_tickers)
    sector = _rng(seed, "sector").integers(0, N_SECTORS, size=n_tickers).astype(np.int16)

    loadings = _rng(seed, "loadings")
    beta = np.clip(loadings.normal(1.0, 0.3, n_tickers), 0.3, 2.0).astype(np.float32)
    gamma = np.clip(loadings.normal(1.0, 0.3, n_tickers), 0.2, 2.0).astype(np.float32)
    sigma = np.clip(loadings.lognormal(math.log(0.015), 0.3, n_tickers), 0.007, 0.028).astype(np.float32)
    size_level = loadings.normal(13.5, 1.3, n_tickers).astype(np.float32)  # log shares per day

    listing = _rng(seed, "listing")
    # Days of life on the grid: listings fall within the first 70% of the history's length and
    # delistings after the grid's first block, so every ticker trades inside any history window.
    history_days = n_days - CALENDAR_BLOCK_DAYS
    late = listing.random(n_tickers) < LATE_LISTING_RATE
    first_day = np.where(late, listing.integers(1, max(2, int(0.7 * history_days)), n_tickers), 0)
    first_day = np.minimum(first_day, history_days - 1)
    min_life = max(1, min(120, history_days // 4))
    earliest_delisting = np.maximum(first_day + min_life, CALENDAR_BLOCK_DAYS)
    delist_room = n_days - 1 - earliest_delisting  # days a delisting may fall on
    delisted = (listing.random(n_tickers) < DELISTING_RATE) & (delist_room > 0)
    last_day = np.where(
        delisted,
        earliest_delisting + np.floor(listing.random(n_tickers) * np.maximum(delist_room, 1)).astype(np.int64),
        n_days - 1,
    )

    dividends = _rng(seed, "dividends")
    payer = dividends.random(n_tickers) < DIVIDEND_PAYER_RATE
    div_period = np.where(payer, dividends.choice([63, 126, 252], size=n_tickers), 0)
    div_offset = np.floor(dividends.random(n_tickers) * np.maximum(div_period, 1)).astype(np.int64)
    annual_yield = dividends.uniform(0.005, 0.04, n_tickers)
    div_yield = annual_yield * np.maximum(div_period, 1) / 252.0

    levels = np.array([spec[2] for spec in COUNTRIES.values()])[country]
    log_start = (np.log(levels) + _rng(seed, "price_level").normal(0.0, 0.8, n_tickers)).astype(np.float64)

    market_factor = (MARKET_VOL * _student_t(_rng(seed, "market"), (n_days,))).astype(np.float32)
    sector_factors = (SECTOR_VOL * _student_t(_rng(seed, "sectors"), (N_SECTORS, n_days))).astype(np.float32)
    closed = _holiday_mask(seed, dates, country)
    style_stream = _rng(seed, "styles")
    styles = style_stream.standard_normal((n_tickers, N_STYLES)).astype(np.float32)
    style_returns = (STYLE_VOL * style_stream.standard_normal((N_STYLES, n_days))).astype(np.float32)
    style_returns[0] += np.float32(STYLE_PREMIUM)

    shape = (n_tickers, n_days)
    present = np.empty(shape, dtype=bool)
    adj_close = np.empty(shape, dtype=np.float32)
    adj_open = np.empty(shape, dtype=np.float32)
    adj_high = np.empty(shape, dtype=np.float32)
    adj_low = np.empty(shape, dtype=np.float32)
    volume = np.empty(shape, dtype=np.float32)

    streams = {name: _rng(seed, name) for name in ("idio", "drift", "intraday", "volume", "missing")}
    phi = 0.5 ** (1.0 / DRIFT_HALF_LIFE)
    day_index = np.arange(n_days)
    for lo in range(0, n_tickers, _CHUNK_ROWS):
        hi = min(lo + _CHUNK_ROWS, n_tickers)
        rows = slice(lo, hi)
        vol = sigma[rows, None]
        returns = _student_t(streams["idio"], (hi - lo, n_days))
        returns *= vol
        returns += beta[rows, None] * market_factor[None, :]
        returns += gamma[rows, None] * sector_factors[sector[rows]]
        if signal > 0:
            # AR(1) drift started from its stationary distribution: no warm-up transient.
            innovations = streams["drift"].standard_normal((hi - lo, n_days), dtype=np.float32)
            innovations *= np.float32(math.sqrt(1.0 - phi * phi))
            start_state = streams["drift"].standard_normal((hi - lo, 1)) * phi
            drift = lfilter([1.0], [1.0, -phi], innovations, axis=1, zi=start_state)[0]
            returns += (signal * DRIFT_SCALE * drift).astype(np.float32)
            returns += (signal * (styles[rows] @ style_returns)).astype(np.float32)
        log_close = np.cumsum(returns, axis=1, dtype=np.float64)
        log_close += log_start[rows, None]
        previous_close = np.concatenate([log_start[rows, None], log_close[:, :-1]], axis=1)

        intraday = streams["intraday"]
        log_open = previous_close + 0.3 * returns + 0.25 * vol * intraday.standard_normal((hi - lo, n_days))
        top = np.maximum(log_open, log_close) + 0.5 * vol * np.abs(intraday.standard_normal((hi - lo, n_days)))
        bottom = np.minimum(log_open, log_close) - 0.5 * vol * np.abs(intraday.standard_normal((hi - lo, n_days)))
        close32 = np.exp(log_close).astype(np.float32)
        open32 = np.exp(log_open).astype(np.float32)
        adj_close[rows] = close32
        adj_open[rows] = open32
        # Re-clamp after float32 rounding so low <= open, close <= high holds exactly.
        adj_high[rows] = np.maximum(np.maximum(np.exp(top).astype(np.float32), open32), close32)
        adj_low[rows] = np.minimum(np.minimum(np.exp(bottom).astype(np.float32), open32), close32)

        # Volume: per-ticker size level, lognormal noise, busier on big moves.
        volume_noise = streams["volume"].standard_normal((hi - lo, n_days), dtype=np.float32)
        log_volume = size_level[rows, None] + 0.4 * volume_noise
        log_volume += 0.3 * np.abs(returns) / vol
        volume[rows] = np.rint(np.exp(log_volume))

        alive = (day_index >= first_day[rows, None]) & (day_index <= last_day[rows, None])
        missing = streams["missing"].random((hi - lo, n_days), dtype=np.float32) < MISSING_BAR_RATE
        present[rows] = alive & ~missing & ~closed[country[rows]]

    return _Market(
        dates=dates, tickers=tickers, figis=figis, country=country, sector=sector, beta=beta, styles=styles,
        first_day=first_day.astype(np.int64), last_day=last_day.astype(np.int64),
        div_period=div_period.astype(np.int64), div_offset=div_offset, div_yield=div_yield,
        present=present, adj_close=adj_close, adj_open=adj_open, adj_high=adj_high, adj_low=adj_low,
        volume=volume,
    )


def _window(market: _Market, lo: int, hi: int) -> _Market:
    """The market on grid days [lo, hi): the (ticker, day) matrices as views, day numbers shifted so
    day 0 is ``lo``. Days of life and the dividend schedule keep their grid dates: a ticker listed
    before the window has ``first_day < 0``, one that delists after it ``last_day >= hi - lo`` (it is
    live on the last day). ``_generate`` draws every life to overlap any window of its grid."""
    period = np.maximum(market.div_period, 1)
    return replace(
        market, dates=market.dates[lo:hi], first_day=market.first_day - lo, last_day=market.last_day - lo,
        div_offset=(market.div_offset - lo) % period,
        **{name: getattr(market, name)[:, lo:hi]
           for name in ("present", "adj_close", "adj_open", "adj_high", "adj_low", "volume")},
    )


# --------------------------------------------------------------------------- output


def _dividend_factors(market: _Market, rows: np.ndarray) -> np.ndarray:
    """(len(rows), T) float64: raw price = adjusted price / factor.

    factor[t] = product of (1 - yield) over ex-dates after t, so adj_close <= close before an
    ex-date and adj_close == close from the last ex-date on. Ex-dates fall on a regular
    schedule inside the ticker's life, ending at least 10 days before its last day.
    """
    n_days = len(market.dates)
    day = np.arange(n_days)
    period = market.div_period[rows, None]
    is_ex = (
        (period > 0)
        & ((day - market.div_offset[rows, None]) % np.maximum(period, 1) == 0)
        & (day > market.first_day[rows, None])
        & (day <= market.last_day[rows, None] - 10)
    )
    # The drop at ex-date e applies to every day t < e: put log(1 - y) at e - 1, sum backwards.
    log_drop = np.zeros((len(rows), n_days))
    shifted = np.zeros_like(is_ex)
    shifted[:, :-1] = is_ex[:, 1:]
    log_drop[shifted] = np.broadcast_to(np.log1p(-market.div_yield[rows, None]), log_drop.shape)[shifted]
    return np.exp(np.cumsum(log_drop[:, ::-1], axis=1)[:, ::-1])


def _bars_frame(market: _Market, rows: np.ndarray, day_lo: int, day_hi: int) -> pd.DataFrame:
    """Long frame of the present bars of ``rows`` (sorted ticker indices) on grid days [lo, hi)."""
    present = market.present[rows, day_lo:day_hi] if len(rows) else np.zeros((0, day_hi - day_lo), dtype=bool)
    bars_per_ticker = present.sum(axis=1)
    n_bars = int(bars_per_ticker.sum())
    # Output columns are allocated once and filled block by block (memory: one copy of the frame).
    out = {name: np.empty(n_bars, dtype=np.float64) for name in PRICE_SCHEMA.names[2:-1]}  # open..volume
    out["date"] = np.empty(n_bars, dtype=np.int32)
    day_numbers = market.dates.to_numpy()[day_lo:day_hi].astype("datetime64[D]").astype(np.int32)
    offset = 0
    for lo in range(0, len(rows), _CHUNK_ROWS):
        block = rows[lo:lo + _CHUNK_ROWS]
        mask = present[lo:lo + _CHUNK_ROWS]
        filled = slice(offset, offset + int(bars_per_ticker[lo:lo + _CHUNK_ROWS].sum()))
        offset = filled.stop
        factors = _dividend_factors(market, block)[:, day_lo:day_hi][mask]
        out["date"][filled] = np.broadcast_to(day_numbers, mask.shape)[mask]
        out["adj_close"][filled] = market.adj_close[block, day_lo:day_hi][mask]
        np.divide(out["adj_close"][filled], factors, out=out["close"][filled])
        for name, adjusted in (("open", market.adj_open), ("high", market.adj_high), ("low", market.adj_low)):
            np.divide(adjusted[block, day_lo:day_hi][mask], factors, out=out[name][filled])
        out["volume"][filled] = market.volume[block, day_lo:day_hi][mask]
    ticker_codes = pa.array(np.repeat(rows.astype(np.int32), bars_per_ticker), pa.int32())
    currencies = [COUNTRY_CURRENCY[COUNTRY_CODES[c]] for c in market.country.tolist()]
    arrays = {
        "ticker": pa.array(market.tickers.tolist(), pa.string()).take(ticker_codes),
        "date": pa.array(out.pop("date"), pa.int32()).cast(pa.date32()),
        **{name: pa.array(values, pa.float64()) for name, values in out.items()},
        "currency": pa.array(currencies, pa.string()).take(ticker_codes),
    }
    del out
    table = pa.table([arrays.pop(name) for name in PRICE_SCHEMA.names], schema=PRICE_SCHEMA)
    # Same conversion as tasks.core.store.read_parquet: a fetched frame equals a stored-and-read one.
    return table.to_pandas(date_as_object=False, types_mapper=_string_mapper, split_blocks=True, self_destruct=True)


