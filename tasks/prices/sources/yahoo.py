"""Daily bars from Yahoo Finance through yfinance, with a truthful outcome per ticker.

Why ``Ticker.history`` per symbol and not ``yf.download``: download hides failures (a 429
and a delisted symbol both come back as NaN columns). Here every HTTP call goes through a
session of ours (:class:`ThrottledRequestsSession` / :class:`ThrottledCurlSession`) that

- draws a token from the process-wide shared limiter (``tasks.prices.ratelimit``) before sending,
  and slows that limiter (every thread) for a while after a 429;
- forces a timeout on every call (yfinance's own defaults are 10–30 s, some hard-coded);
- records, per thread, the HTTP status or exception each chart request got;
- raises :class:`ChartStatusError` on a chart 429 or 404. yfinance 1.7 answers any
  HTTP >= 400 by switching its process-wide cookie strategy (consent page + new crumb) and
  sending the request again: for a 429 that is 2–4 more requests into a limit we already hit,
  for a 404 a second request for a definitive answer. Our retries (ingest) handle 429s.

Exchange timezones without a request: yfinance asks Yahoo for a symbol's timezone with a
separate chart request (``range=1d``) unless its SQLite tz cache has it, doubling requests on
a first run. We know it already: from the Yahoo suffix (``.T`` → Asia/Tokyo,
``guess_timezone``), or from a previous answer (``learn_timezones``; the ingest passes the
timezones its catalog remembered). The guess is given to the yfinance ``Ticker`` object
(``_tz``, per instance: no disk write, no shared state). yfinance dates every bar with the
*answer's* ``exchangeTimezoneName``, so a wrong guess can only move the requested window's
edges (``period1``/``period2`` are local midnights): the answer's timezone is checked, and
if the window would have been different the request is sent again with the right one.

After each ``history()`` call the recorded statuses say what really happened (404 →
not found; 429/5xx/timeout/connection/malformed → transient; 200 with no bars → empty),
independent of which exception yfinance chose to raise.

Prices are requested with ``auto_adjust=False``: raw (split-adjusted, as Yahoo serves
them) OHLC, ``adj_close`` and volume, plus dividends and splits so the ingest stage can
decide when stored history must be re-pulled. Currency is the listing's as reported
(``GBp`` etc.); ``tasks.prices.quality.normalise_currency_units`` converts sub-units.

Process-global yfinance settings touched: ``yf.config.debug.hide_exceptions = False``
(errors raised, not only logged), and yfinance's one shared session is ours. yfinance's tz
cache (SQLite) is opened once in the calling thread before worker threads start: opened
concurrently on a fresh cache dir, SQLite answers "database is locked" to one of them.
"""

from __future__ import annotations

import json
import re
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.schemas import PRICE_COLUMNS
from numerflow.tasks.prices.ratelimit import TokenBucket, shared_limiter
from numerflow.tasks.prices.sources.outcomes import (
    ERROR,
    NO_DATA,
    NOT_FOUND,
    OK,
    TRANSIENT,
    FetchOutcome,
    FetchRequest,
)

_CHART_PATH = re.compile(r"/v8/finance/chart/([^/?]+)")
_SEARCH_PATH = re.compile(r"/v1/finance/search")
_TRANSIENT_EXCEPTION_NAMES = {
    "Timeout",
    "ReadTimeout",
    "ConnectTimeout",
    "TimeoutError",
    "ConnectionError",
    "ChunkedEncodingError",
    "RemoteDisconnected",
    "ProxyError",
    "SSLError",
}
_BROWSER_HEADERS = {  # what yfinance sends when it falls back to plain requests
    "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.5",
}
# Yahoo symbol suffix → the exchangeTimezoneName Yahoo reports (suffixes of tasks.prices.tickers).
SUFFIX_TIMEZONES: dict[str, str] = {
    "": "America/New_York",  # every US listing, whatever the exchange
    ".TO": "America/Toronto", ".V": "America/Toronto", ".CN": "America/Toronto", ".NE": "America/Toronto",
    ".SA": "America/Sao_Paulo", ".MX": "America/Mexico_City", ".SN": "America/Santiago",
    ".BA": "America/Argentina/Buenos_Aires",
    ".L": "Europe/London", ".IL": "Europe/London", ".IR": "Europe/Dublin", ".DE": "Europe/Berlin",
    ".F": "Europe/Berlin", ".PA": "Europe/Paris", ".AS": "Europe/Amsterdam", ".BR": "Europe/Brussels",
    ".MI": "Europe/Rome", ".MC": "Europe/Madrid", ".LS": "Europe/Lisbon", ".SW": "Europe/Zurich",
    ".VI": "Europe/Vienna", ".ST": "Europe/Stockholm", ".OL": "Europe/Oslo", ".CO": "Europe/Copenhagen",
    ".HE": "Europe/Helsinki", ".WA": "Europe/Warsaw", ".AT": "Europe/Athens", ".PR": "Europe/Prague",
    ".BD": "Europe/Budapest", ".IS": "Europe/Istanbul",
    ".TA": "Asia/Jerusalem", ".JO": "Africa/Johannesburg", ".SR": "Asia/Riyadh", ".QA": "Asia/Qatar",
    ".KW": "Asia/Kuwait", ".CA": "Africa/Cairo",
    ".T": "Asia/Tokyo", ".HK": "Asia/Hong_Kong", ".SS": "Asia/Shanghai", ".SZ": "Asia/Shanghai",
    ".TW": "Asia/Taipei", ".TWO": "Asia/Taipei", ".KS": "Asia/Seoul", ".KQ": "Asia/Seoul",
    ".NS": "Asia/Kolkata", ".BO": "Asia/Kolkata", ".SI": "Asia/Singapore", ".AX": "Australia/Sydney",
    ".NZ": "Pacific/Auckland", ".JK": "Asia/Jakarta", ".KL": "Asia/Kuala_Lumpur", ".BK": "Asia/Bangkok",
    ".PS": "Asia/Manila",
}
_SUFFIX = re.compile(r"(\.[A-Z]{1,3})$")
_CRYPTO = re.compile(r"^[A-Z0-9]+-(USD|USDT|EUR|GBP|BTC|ETH)$")


def guess_timezone(symbol: str) -> str | None:
    """Exchange timezone of a Yahoo symbol from its suffix; None when the form is unknown.

    ``AAPL``/``BRK-B`` → America/New_York, ``7203.T`` → Asia/Tokyo, ``BTC-USD`` → UTC;
    indices (``^GSPC``), currencies (``EUR=X``), futures (``ES=F``) and unknown suffixes → None
    (yfinance then asks Yahoo, as it would anyway).
    """
    symbol = symbol.upper()
    if not symbol or symbol[0] == "^" or "=" in symbol:
        return None
    if _CRYPTO.match(symbol):
        return "UTC"
    match = _SUFFIX.search(symbol)
    if match is None and "." in symbol:
        return None
    return SUFFIX_TIMEZONES.get(match.group(1) if match else "")


def window_bounds(start: date | None, end: date | None, tz: str) -> tuple[int | None, int | None]:
    """The epoch seconds yfinance requests for ``start``/``end`` in ``tz`` (local midnights).

    None for an open edge: no start = from 1960 (no bars that early either way), no end = now
    (the same instant in every timezone).
    """
    first = int(pd.Timestamp(start).tz_localize(tz).timestamp()) if start is not None else None
    last = int(pd.Timestamp(end + timedelta(days=1)).tz_localize(tz).timestamp()) if end is not None else None
    return first, last


def _seed_ticker_timezone(yf_ticker: Any, tz: str) -> None:
    """Give a yfinance Ticker its exchange timezone so it does not ask Yahoo for it."""
    if hasattr(yf_ticker, "_tz"):
        yf_ticker._tz = tz  # yfinance 1.7: Ticker._get_ticker_tz returns it without a request
    else:  # a yfinance without the attribute: its public tz cache (one SQLite write)
        from yfinance.cache import get_tz_cache

        get_tz_cache().store(yf_ticker.ticker, tz)


_tz_cache_lock = threading.Lock()


def open_yfinance_tz_cache() -> None:
    """Open yfinance's tz cache in this thread, once, before worker threads use it.

    On a fresh cache directory, threads opening the SQLite file together (each sets WAL mode)
    get "database is locked", which yfinance raises out of ``history()``.
    """
    from yfinance.cache import get_tz_cache

    with _tz_cache_lock:
        get_tz_cache().lookup("")


class ChartStatusError(Exception):
    """A chart request answered 429 or 404 (a search request 429), raised by our session before
    yfinance retries it. ``retry_after``: the seconds Yahoo's ``Retry-After`` asked for, if any."""

    def __init__(self, status: int, url: str, retry_after: float | None = None) -> None:
        path = _CHART_PATH.search(url) or _SEARCH_PATH.search(url)
        super().__init__(f"HTTP {status} for {path.group(0) if path else url}")
        self.status_code = status
        self.retry_after = retry_after


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None when absent or
    unreadable."""
    import datetime as dt
    import math
    from email.utils import parsedate_to_datetime

    if not value or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - dt.datetime.now(dt.UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


# Full history: Yahoo's daily data starts in the 1960s at the earliest.
FULL_HISTORY_START = date(1960, 1, 1)
PRICE_FRAME_COLUMNS = ["ticker", "date", *PRICE_COLUMNS, "currency", "dividends", "splits"]


def _exception_kind(exc: BaseException) -> str | None:
    """"timeout" / "connection" for network-level exceptions of requests or curl_cffi."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"Timeout", "ReadTimeout", "ConnectTimeout", "TimeoutError"}:
        return "timeout"
    if names & _TRANSIENT_EXCEPTION_NAMES:
        return "connection"
    # Socket-level errors; requests' HTTPError is an OSError too but carries a status instead.
    if isinstance(exc, OSError) and not names & {"RequestException", "HTTPError", "RequestsError"}:
        return "connection"
    return None


class _ThrottleMixin:
    """Limiter + forced timeout + per-thread record of chart statuses, for any Session class."""

    def _init_throttle(self, limiter: TokenBucket, timeout_seconds: float, pause_on_429_seconds: float,
                       max_retry_after_seconds: float = 300.0) -> None:
        self._limiter = limiter
        self._max_retry_after = float(max_retry_after_seconds)
        self.retry_after_pauses: list[float] = []
        self._timeout_seconds = float(timeout_seconds)
        self._slow_on_429 = float(pause_on_429_seconds)
        self._local = threading.local()
        self.http_requests = 0
        self._count_lock = threading.Lock()

    # Per-thread record of what each chart request got: list of (symbol, status | "timeout" | ...).
    def begin_record(self) -> None:
        self._local.record = []

    def record(self) -> list[tuple[str, int | str]]:
        return list(getattr(self._local, "record", []))

    def _note(self, url: str, outcome: int | str) -> None:
        match = _CHART_PATH.search(url)
        if match is not None and hasattr(self._local, "record"):
            self._local.record.append((match.group(1), outcome))

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        timeout = kwargs.get("timeout")
        if not isinstance(timeout, (int, float)) or timeout <= 0 or timeout > self._timeout_seconds:
            kwargs["timeout"] = self._timeout_seconds
        self._limiter.acquire()
        with self._count_lock:
            self.http_requests += 1
        try:
            response = super().request(method, url, *args, **kwargs)  # type: ignore[misc]
        except Exception as exc:
            self._note(str(url), _exception_kind(exc) or type(exc).__name__)
            raise
        status = int(response.status_code)
        self._note(str(url), status)
        retry_after = None
        if status == 429:
            # Yahoo says "too fast": slow every thread for a while, not only this one; when it says
            # for how long (Retry-After), nobody in the process sends before then.
            self._limiter.slow_down(self._slow_on_429)
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            if retry_after:
                retry_after = min(retry_after, self._max_retry_after)
                self._limiter.pause(retry_after)
                self.retry_after_pauses.append(retry_after)
        if (status in (404, 429) and _CHART_PATH.search(str(url))) or (status == 429 and _SEARCH_PATH.search(str(url))):
            # Before yfinance's cookie-strategy switch + second request (module docstring).
            raise ChartStatusError(status, str(url), retry_after)
        return response


def _requests_session_class() -> type:
    import requests

    class ThrottledRequestsSession(_ThrottleMixin, requests.Session):  # type: ignore[misc]  # the mixin wraps request()
        pass

    return ThrottledRequestsSession


def _curl_session_class() -> type | None:
    try:
        from curl_cffi import requests as curl_requests
    except ImportError:
        return None

    class ThrottledCurlSession(_ThrottleMixin, curl_requests.Session):
        pass

    return ThrottledCurlSession


def make_session(
    limiter: TokenBucket,
    timeout_seconds: float,
    *,
    pause_on_429_seconds: float = 5.0,
    transport: Any = None,
    max_retry_after_seconds: float = 300.0,
) -> Any:
    """The HTTP session yfinance will use.

    ``transport``: a ``requests`` adapter mounted for http(s) (the fake Yahoo in tests); a
    plain requests session is then used. Without it: curl_cffi (browser TLS fingerprint,
    what yfinance prefers) unless it is missing or ``YF_DISABLE_CURL_CFFI`` is set.
    """
    import os

    session_class = None
    if transport is None and os.environ.get("YF_DISABLE_CURL_CFFI", "").lower() not in ("1", "true", "yes"):
        session_class = _curl_session_class()
    if session_class is not None:
        session = session_class(impersonate="chrome")
    else:
        session = _requests_session_class()()
        session.headers.update(_BROWSER_HEADERS)
        if transport is not None:
            session.mount("https://", transport)
            session.mount("http://", transport)
    session._init_throttle(limiter, timeout_seconds, pause_on_429_seconds, max_retry_after_seconds)
    return session


def classify(record: list[tuple[str, int | str]], symbol: str, exc: BaseException | None) -> tuple[str, str]:
    """(kind, reason) for one history() call from what its chart requests got.

    Precedence: any transient answer wins (retry may succeed), then an explicit 404, then
    the exception yfinance raised.
    """
    seen = [outcome for sym, outcome in record if sym == symbol]
    for outcome in reversed(seen):
        if outcome == 429:
            return TRANSIENT, "rate_limited: HTTP 429 Too Many Requests"
        if isinstance(outcome, int) and outcome >= 500:
            return TRANSIENT, f"server_error: HTTP {outcome}"
        if outcome in ("timeout", "connection"):
            return TRANSIENT, f"{outcome}: {exc}" if exc is not None else str(outcome)
    if 404 in seen:
        return NOT_FOUND, f"not_found: {symbol}: HTTP 404, possibly delisted"
    if exc is not None:
        kind = _exception_kind(exc)
        if kind is not None:
            return TRANSIENT, f"{kind}: {exc}"
        if type(exc).__name__ == "YFRateLimitError":
            return TRANSIENT, "rate_limited: HTTP 429 Too Many Requests"
    if exc is None:
        return OK, ""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status == 404:  # e.g. yfinance's quoteSummary timezone fallback
        return NOT_FOUND, f"not_found: {symbol}: HTTP 404, possibly delisted"
    if isinstance(status, int) and (status == 429 or status >= 500):
        return TRANSIENT, f"server_error: HTTP {status}"
    name = type(exc).__name__
    if isinstance(exc, json.JSONDecodeError) or isinstance(exc, ValueError) and "JSON" in str(exc):
        return TRANSIENT, f"malformed_response: {symbol}: {exc}"
    if name in ("YFPricesMissingError", "YFTzMissingError", "YFTickerMissingError"):
        if reason := getattr(exc, "yahoo_reason", None):
            return NOT_FOUND, f"not_found: {symbol}: {reason}"
        if seen and seen[-1] == 200:
            return NO_DATA, f"empty: {symbol}: Yahoo answered with no bars"
        return NOT_FOUND, f"not_found: {symbol}: {exc}"
    return ERROR, f"unexpected: {symbol}: {name}: {exc}"


def history_to_frame(history: pd.DataFrame, ticker: str, currency: str | None) -> pd.DataFrame:
    """yfinance ``history(auto_adjust=False, actions=True)`` → long frame in PRICE_SCHEMA order + events."""
    index = history.index
    if isinstance(index, pd.DatetimeIndex) and index.tz is not None:
        index = index.tz_localize(None)
    dates = pd.DatetimeIndex(index).normalize().astype("datetime64[s]")
    n = len(history)

    def column(name: str) -> np.ndarray:
        if name in history.columns:
            return history[name].to_numpy(dtype="float64", na_value=np.nan)
        return np.zeros(n) if name in ("Dividends", "Stock Splits") else np.full(n, np.nan)

    frame = pd.DataFrame(
        {
            "ticker": pd.array([ticker] * n, dtype="string"),
            "date": dates,
            "open": column("Open"),
            "high": column("High"),
            "low": column("Low"),
            "close": column("Close"),
            "adj_close": column("Adj Close"),
            "volume": column("Volume"),
            "currency": pd.array([currency] * n, dtype="string"),
            "dividends": column("Dividends"),
            "splits": column("Stock Splits"),
        }
    )
    # Rows without any price are Yahoo's placeholders (e.g. a holiday in a merged index).
    return frame[~np.isnan(frame[["open", "high", "low", "close", "adj_close"]].to_numpy()).all(axis=1)].reset_index(
        drop=True
    )


class YahooSource:
    """Yahoo Finance daily bars. ``fetch_outcomes`` is what the ingest stage uses.

    ``requests_per_second``/``burst`` configure the process's one shared ``"yahoo"``
    limiter (pass ``limiter=`` to use another, e.g. in tests). ``workers`` threads fetch
    symbols concurrently; the limiter, not the thread count, sets the pace.
    ``pause_on_429_seconds``: how long the limiter runs at half rate after a 429.
    ``seed_timezones``: give yfinance each symbol's timezone (learned, else guessed from
    the suffix) instead of letting it ask Yahoo; see the module docstring.
    """

    name = "yahoo"

    def __init__(
        self,
        *,
        requests_per_second: float = 1.0,
        burst: int = 2,
        timeout_seconds: float = 10.0,
        workers: int = 4,
        pause_on_429_seconds: float = 5.0,
        limiter: TokenBucket | None = None,
        transport: Any = None,
        session: Any = None,
        seed_timezones: bool = True,
        max_retry_after_seconds: float = 300.0,
    ) -> None:
        import yfinance as yf

        if workers < 1:
            raise BadInputError(f"workers must be >= 1, got {workers}", tag="invalid_config")
        if not timeout_seconds > 0:
            raise BadInputError(f"timeout_seconds must be > 0, got {timeout_seconds}", tag="invalid_config")
        yf.config.debug.hide_exceptions = False
        # yfinance 1.7 trips pandas 3's inplace deprecation on every call; emitting it per
        # symbol costs time and floods logs. Targeted, process-wide (filters are global).
        warnings.filterwarnings("ignore", message="The inplace keyword", module="yfinance")
        self.limiter = limiter or shared_limiter("yahoo", requests_per_second, burst)
        self.timeout_seconds = float(timeout_seconds)
        self.workers = int(workers)
        self.seed_timezones = bool(seed_timezones)
        # Symbol → exchangeTimezoneName Yahoo answered (or the ingest's catalog remembered).
        self._timezones: dict[str, str] = {}
        self.timezone_refetches = 0
        self.session = session or make_session(
            self.limiter, timeout_seconds, pause_on_429_seconds=pause_on_429_seconds, transport=transport,
            max_retry_after_seconds=max_retry_after_seconds,
        )

    def __repr__(self) -> str:
        return f"YahooSource(rate={self.limiter.rate}/s, burst={self.limiter.burst}, workers={self.workers})"

    @property
    def http_requests(self) -> int:
        return int(getattr(self.session, "http_requests", 0))

    def learn_timezones(self, timezones: dict[str, str]) -> None:
        """Remember exchange timezones (Yahoo symbol → tz name), e.g. from a previous run."""
        self._timezones.update({str(k): str(v) for k, v in timezones.items() if k and v})

    def timezone_for(self, symbol: str) -> str | None:
        """The timezone we give yfinance for ``symbol``: learned, else guessed, else None."""
        return self._timezones.get(symbol) or guess_timezone(symbol)

    # ---- PriceSource protocol -------------------------------------------------------
    def fetch(self, tickers: Sequence[str], start: date | None = None, end: date | None = None) -> pd.DataFrame:
        """Bars for Yahoo symbols ``tickers`` (no retries, failures dropped: use ingest for a ledger)."""
        outcomes = self.fetch_outcomes([FetchRequest(t, (t,), start) for t in tickers], end=end)
        frames = [o.bars for o in outcomes if o.kind == OK and o.bars is not None and len(o.bars)]
        if not frames:
            return pd.DataFrame({c: [] for c in PRICE_FRAME_COLUMNS})
        return pd.concat(frames, ignore_index=True)

    # ---- per-ticker outcomes ----------------------------------------------------------
    def fetch_outcomes(self, requests: Sequence[FetchRequest], end: date | None = None) -> list[FetchOutcome]:
        if not requests:
            return []
        open_yfinance_tz_cache()
        if self.workers == 1 or len(requests) == 1:
            return [self._fetch_one(r, end) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(requests)), thread_name_prefix="yahoo") as pool:
            return list(pool.map(lambda r: self._fetch_one(r, end), requests))

    def _fetch_one(self, request: FetchRequest, end: date | None) -> FetchOutcome:
        remaining = list(request.candidates)
        outcome = FetchOutcome(request.ticker, NOT_FOUND)
        reasons: list[str] = []
        empty_seen = False
        while remaining:
            symbol = remaining[0]
            outcome.tried.append(symbol)
            kind, bars, reason, meta = self._history(request.ticker, symbol, request.start, end)
            outcome.http_requests += meta.get("http", 0)
            if kind == OK or (kind == NO_DATA and request.start is not None):
                # No bars after an incremental start is normal (no new session yet).
                if bars is None:
                    bars = pd.DataFrame({c: [] for c in PRICE_FRAME_COLUMNS})
                outcome.kind, outcome.symbol, outcome.bars = OK, symbol, bars
                outcome.currency, outcome.timezone = meta.get("currency"), meta.get("timezone")
                outcome.error = "; ".join(reasons) or None
                return outcome
            if kind in (NOT_FOUND, NO_DATA):
                reasons.append(reason)
                empty_seen |= kind == NO_DATA
                remaining.pop(0)
                continue
            outcome.kind, outcome.symbol, outcome.error = kind, symbol, reason
            outcome.remaining = tuple(remaining)
            return outcome
        outcome.kind = NO_DATA if empty_seen else NOT_FOUND
        outcome.error = "; ".join(reasons) or f"no candidate symbols for {request.ticker}"
        return outcome

    def _history(
        self, ticker: str, symbol: str, start: date | None, end: date | None, tz: str | None = None, checked: bool = False
    ) -> tuple[str, pd.DataFrame | None, str, dict[str, Any]]:
        import yfinance as yf
        from yfinance.data import YfData

        session = self.session
        session.begin_record()
        exc: BaseException | None = None
        history = None
        yf_ticker = yf.Ticker(symbol, session=session)
        if tz is None and self.seed_timezones:
            tz = self.timezone_for(symbol)
        if tz is not None:
            _seed_ticker_timezone(yf_ticker, tz)
        try:
            history = yf_ticker.history(
                start=(start or FULL_HISTORY_START).isoformat(),
                # yfinance's end is exclusive; None = up to now.
                end=(end + timedelta(days=1)).isoformat() if end is not None else None,
                interval="1d",
                auto_adjust=False,
                actions=True,
                repair=False,
                timeout=self.timeout_seconds,
            )
        except Exception as caught:  # classified below from what the HTTP calls really got
            exc = caught
        record = session.record()
        meta: dict[str, Any] = {"http": len(record)}
        kind, reason = classify(record, symbol, exc)
        if kind == TRANSIENT:
            # yfinance memoises past-range responses (an error page too): forget them so the
            # retry really asks again.
            YfData.cache_get.cache_clear()
        if kind in (OK, NO_DATA) and (symbol, 200) in record:
            answered_tz = _answered_timezone(yf_ticker)
            if answered_tz:
                self._timezones[symbol] = answered_tz
            if tz is not None and answered_tz and answered_tz != tz and not checked:
                if window_bounds(start, end, tz) != window_bounds(start, end, answered_tz):
                    # The guess moved the window's edges: ask again with Yahoo's timezone.
                    self.timezone_refetches += 1
                    YfData.cache_get.cache_clear()
                    kind, bars, reason, again = self._history(ticker, symbol, start, end, answered_tz, checked=True)
                    again["http"] += meta["http"]
                    return kind, bars, reason, again
        if kind != OK:
            return kind, None, reason, meta
        if history is None or history.empty:
            return NO_DATA, None, f"empty: {symbol}: no bars", meta
        try:
            info = yf_ticker.history_metadata
            meta["currency"] = info.get("currency")
            meta["timezone"] = info.get("exchangeTimezoneName")
        except Exception:  # metadata is informative only
            pass
        return OK, history_to_frame(history, ticker, meta.get("currency")), "", meta


def _answered_timezone(yf_ticker: Any) -> str | None:
    """exchangeTimezoneName of the chart answer yfinance just parsed.

    Only call after a 200 chart answer: without one, yfinance's metadata getter fetches.
    """
    try:
        tz = yf_ticker.history_metadata.get("exchangeTimezoneName")
    except Exception:  # no answer parsed (e.g. an error before the request)
        return None
    return str(tz) if tz else None
