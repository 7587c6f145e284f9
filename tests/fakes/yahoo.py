"""A fake Yahoo Finance, answering real yfinance through its ``session=`` seam.

``FakeYahoo`` is a ``requests`` transport adapter. Mounted on a plain
``requests.Session`` (yfinance 1.7 accepts any ``requests.sessions.Session`` subclass, see
``yfinance/_http.py: is_supported_session``), it answers what yfinance asks:

- ``https://fc.yahoo.com`` (cookie; answered 404 without a cookie, so nothing is cached),
- ``https://query1.finance.yahoo.com/v1/test/getcrumb`` (crumb text),
- ``https://guce.yahoo.com/consent`` (yfinance's "csrf" cookie strategy, tried after any
  HTTP >= 400; answered with a page without a form so it falls back to "basic"),
- ``https://query2.finance.yahoo.com/v8/finance/chart/SYMBOL`` with the real v8 JSON:
  ``meta``, exchange-local session timestamps, ``events.dividends/splits``,
  ``indicators.quote`` (split-adjusted OHLCV, like Yahoo) and ``indicators.adjclose``
  (split- and dividend-adjusted),
- ``v10/finance/quoteSummary`` (yfinance's timezone fallback): 404,
- ``https://query2.finance.yahoo.com/v1/finance/search?q=…`` (``yf.Search``) in Yahoo's JSON
  (``quotes`` with ``symbol``, ``exchange``, ``quoteType``, ``shortname``/``longname``,
  ``exchDisp``, ``score``; empty ``news``/``nav``/``lists``…): a listing matches when the query is its
  symbol (with or without the suffix), one of its ``search_terms``, or a word run of its name;
  ``fail_search`` scripts 429 / 5xx / malformed answers.

A 429 carries ``Retry-After: <retry_after>`` when ``retry_after`` is set.

Programmable: listings (currency, timezone, dividends, splits, extra bars later), per-symbol
fault scripts (429, 5xx, timeout, connection error, malformed JSON, empty result, 404),
a server-side throttle (R requests/s, 429 beyond), and a request log with the parsed
``period1``/``period2``/``range`` params and the timeout every request carried.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import requests
from requests.adapters import BaseAdapter

EXCHANGE_OPEN = {"America/New_York": (9, 30)}  # session open, local time; default 09:00
CRUMB = "fakeCrumb.42"
FAULT_KINDS = {"429", "500", "502", "503", "404", "timeout", "connection", "malformed", "empty"}


@dataclass
class FakeListing:
    """One Yahoo symbol: raw (as traded) daily bars and corporate actions."""

    symbol: str
    currency: str
    timezone: str
    bars: pd.DataFrame  # index: date; columns open, high, low, close, volume (as traded)
    dividends: dict[date, float] = field(default_factory=dict)  # ex-date -> amount per share then
    splits: dict[date, tuple[int, int]] = field(default_factory=dict)  # date -> (numerator, denominator)
    instrument_type: str = "EQUITY"
    name: str | None = None  # company name the search answers with
    exchange: str = "FAKE"  # Yahoo's exchange code (KLS, SES, ISE, ...)
    search_terms: tuple[str, ...] = ()  # other queries that find it (e.g. the Bloomberg symbol)

    def adjusted(self) -> pd.DataFrame:
        """What Yahoo serves: OHLC/volume split-adjusted; ``adjclose`` split+dividend-adjusted."""
        frame = self.bars.copy()
        dates = np.array(frame.index, dtype="datetime64[D]")
        split_factor = np.ones(len(frame))
        for day, (num, den) in self.splits.items():
            split_factor[dates < np.datetime64(day)] *= num / den
        for column in ["open", "high", "low", "close"]:
            frame[column] = frame[column] / split_factor
        frame["volume"] = frame["volume"] * split_factor
        dividend_factor = np.ones(len(frame))
        for day, amount in self.dividends.items():
            before = dates < np.datetime64(day)
            if not before.any():
                continue
            prev_close = frame["close"].to_numpy()[np.flatnonzero(before)[-1]]
            split_since = np.prod([n / d for s, (n, d) in self.splits.items() if s > day] or [1.0])
            dividend_factor[before] *= 1.0 - (amount / split_since) / prev_close
        frame["adjclose"] = frame["close"] * dividend_factor
        return frame


@dataclass
class RecordedRequest:
    method: str
    host: str
    path: str
    symbol: str | None
    params: dict[str, str]
    timeout: object
    status: int | str
    at: float


def make_bars(
    start: str | date,
    end: str | date,
    *,
    price: float = 100.0,
    seed: int = 0,
    volume: float = 1e6,
) -> pd.DataFrame:
    """Deterministic business-day random-walk bars, as traded."""
    days = pd.bdate_range(start, end)
    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0, 0.01, len(days))))
    open_ = close * np.exp(rng.normal(0, 0.003, len(days)))
    high = np.maximum(open_, close) * 1.005
    low = np.minimum(open_, close) * 0.995
    vol = np.round(volume * np.exp(rng.normal(0, 0.2, len(days))))
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": vol},
        index=pd.Index(days.date, name="date"),
    )


class FakeYahoo(BaseAdapter):
    """The fake service. ``session()`` gives a requests.Session wired to it."""

    def __init__(self, *, rate_limit: float | None = None, burst: int = 1) -> None:
        super().__init__()
        self.listings: dict[str, FakeListing] = {}
        self.faults: dict[str, deque[str]] = {}
        self.global_faults: deque[str] = deque()
        self.log: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._rate_limit = rate_limit
        self._burst = burst
        self._tat = time.monotonic()
        self.throttled = 0
        self.served = 0
        self.search_faults: deque[str] = deque()
        self.retry_after: float | None = None  # seconds sent in Retry-After with every 429

    # ---- programming the fake -------------------------------------------------------
    def add(
        self,
        symbol: str,
        bars: pd.DataFrame | None = None,
        *,
        currency: str = "USD",
        timezone: str = "America/New_York",
        dividends: dict[date, float] | None = None,
        splits: dict[date, tuple[int, int]] | None = None,
        start: str = "2024-01-01",
        end: str = "2024-03-29",
        price: float = 100.0,
        seed: int | None = None,
        instrument_type: str = "EQUITY",
        name: str | None = None,
        exchange: str = "FAKE",
        search_terms: tuple[str, ...] = (),
    ) -> FakeListing:
        if bars is None:
            bars = make_bars(start, end, price=price, seed=seed if seed is not None else len(self.listings))
        listing = FakeListing(symbol, currency, timezone, bars, dict(dividends or {}), dict(splits or {}), instrument_type,
                              name, exchange, tuple(search_terms))
        self.listings[symbol] = listing
        return listing

    def extend(self, symbol: str, end: str | date, *, seed: int = 99) -> None:
        """Append new business-day bars up to ``end`` continuing from the last close."""
        listing = self.listings[symbol]
        last_day = listing.bars.index[-1]
        last_close = float(listing.bars["close"].iloc[-1])
        more = make_bars(last_day + timedelta(days=1), end, price=last_close, seed=seed)
        listing.bars = pd.concat([listing.bars, more])

    def fail(self, symbol: str, *kinds: str, history_only: bool = False) -> None:
        """The next chart requests for ``symbol`` fail with ``kinds``, in order.

        ``history_only``: only requests with a ``period1`` (not yfinance's timezone probe).
        """
        unknown = set(kinds) - FAULT_KINDS
        assert not unknown, unknown
        key = f"{symbol}#history" if history_only else symbol
        self.faults.setdefault(key, deque()).extend(kinds)

    def fail_search(self, *kinds: str) -> None:
        """The next search requests fail with ``kinds`` (429, 5xx, malformed), in order."""
        unknown = set(kinds) - {"429", "500", "502", "503", "malformed"}
        assert not unknown, unknown
        self.search_faults.extend(kinds)

    def search_requests(self) -> list[RecordedRequest]:
        return [r for r in self.log if r.path.endswith("/v1/finance/search")]

    def fail_any(self, *kinds: str) -> None:
        """The next chart requests, whatever the symbol, fail with ``kinds`` (a 429 burst)."""
        self.global_faults.extend(kinds)

    def session(self) -> requests.Session:
        session = requests.Session()
        session.mount("https://", self)
        session.mount("http://", self)
        return session

    def chart_requests(self, symbol: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.log if r.symbol is not None and (symbol is None or r.symbol == symbol)]

    def history_requests(self, symbol: str | None = None) -> list[RecordedRequest]:
        """Chart requests with an explicit range start (not yfinance's timezone probe)."""
        return [r for r in self.chart_requests(symbol) if "period1" in r.params]

    # ---- transport ------------------------------------------------------------------
    def close(self) -> None:  # BaseAdapter API
        pass

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):  # noqa: D401
        parts = urlsplit(request.url)
        params = dict(parse_qsl(parts.query))
        symbol = None
        if parts.path.startswith("/v8/finance/chart/"):
            symbol = requests.utils.unquote(parts.path.rsplit("/", 1)[-1])
        record = RecordedRequest(request.method, parts.hostname or "", parts.path, symbol, params, timeout, 0, time.monotonic())
        with self._lock:
            self.log.append(record)
        status, body, content_type = self._answer(parts.hostname or "", parts.path, symbol, params, timeout, request)
        record.status = status
        response = requests.Response()
        response.status_code = status
        response._content = body.encode("utf-8") if isinstance(body, str) else body
        response.headers["Content-Type"] = content_type
        response.encoding = "utf-8"
        response.url = request.url
        response.request = request
        if status == 429 and self.retry_after is not None:
            response.headers["Retry-After"] = f"{self.retry_after:g}"
        response.reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests"}.get(status, "Error")
        if parts.hostname == "fc.yahoo.com":
            response.raw = _raw_with_cookie()
        return response

    def _throttled(self) -> bool:
        if self._rate_limit is None:
            return False
        with self._lock:
            now = time.monotonic()
            interval = 1.0 / self._rate_limit
            tolerance = (self._burst - 1) * interval
            tat = max(self._tat, now)
            if tat - tolerance > now:
                self.throttled += 1
                return True
            self._tat = tat + interval
            return False

    def _answer(self, host, path, symbol, params, timeout, request):
        if host == "fc.yahoo.com":
            # Like Yahoo: a 404 page that sets the A3 cookie yfinance then caches.
            return 404, "<html>404</html>", "text/html"
        if path.endswith("/v1/test/getcrumb"):
            return 200, CRUMB, "text/plain"
        if host.endswith("consent.yahoo.com") or host == "guce.yahoo.com":
            return 200, "<html><body>no consent form</body></html>", "text/html"
        if path.endswith("/v1/finance/search"):
            return self._search(params)
        if symbol is None:
            return 404, json.dumps({"finance": {"result": None, "error": {"code": "Not Found", "description": "fake"}}}), "application/json"
        if self._throttled():
            return 429, "Too Many Requests\r\n", "text/plain"
        with self._lock:
            fault = None
            if self.global_faults:
                fault = self.global_faults.popleft()
            elif "period1" in params and self.faults.get(f"{symbol}#history"):
                fault = self.faults[f"{symbol}#history"].popleft()
            elif self.faults.get(symbol):
                fault = self.faults[symbol].popleft()
        if fault == "timeout":
            raise requests.exceptions.ReadTimeout(f"fake: read timed out (timeout={timeout})", request=request)
        if fault == "connection":
            raise requests.exceptions.ConnectionError("fake: connection reset", request=request)
        if fault in {"429", "500", "502", "503"}:
            return int(fault), (
                "Too Many Requests\r\n" if fault == "429" else "<html><body>Internal Server Error</body></html>"
            ), "text/plain"
        listing = self.listings.get(symbol)
        if fault == "404" or listing is None:
            error = {"code": "Not Found", "description": "No data found, symbol may be delisted"}
            return 404, json.dumps({"chart": {"result": None, "error": error}}), "application/json"
        if fault == "malformed":
            return 200, '{"chart":{"result":[{"meta":{"currency":"USD","symbol":', "application/json"
        with self._lock:
            self.served += 1
        return 200, json.dumps(self._chart(listing, params, empty=fault == "empty")), "application/json"

    # ---- v1 search JSON -------------------------------------------------------------
    def _search(self, params: dict[str, str]):
        with self._lock:
            fault = self.search_faults.popleft() if self.search_faults else None
        if fault == "429":
            return 429, "Too Many Requests\r\n", "text/plain"
        if fault in {"500", "502", "503"}:
            return int(fault), "<html><body>Internal Server Error</body></html>", "text/html"
        if fault == "malformed":
            return 200, '{"explains":[],"count":1,"quotes":[{"symbol":', "application/json"
        query = params.get("q", "").strip().upper()
        quotes = []
        for listing in self.listings.values():
            base = listing.symbol.rsplit(".", 1)[0].upper()
            terms = {listing.symbol.upper(), base, *(t.upper() for t in listing.search_terms)}
            name = (listing.name or "").upper()
            score = 30000.0 if query in terms else (20000.0 if query and query in name else 0.0)
            if score:
                quotes.append({
                    "exchange": listing.exchange, "shortname": name[:30] or listing.symbol,
                    "quoteType": listing.instrument_type, "symbol": listing.symbol, "index": "quotes",
                    "score": score, "typeDisp": listing.instrument_type.title(), "longname": listing.name or listing.symbol,
                    "exchDisp": listing.exchange, "isYahooFinance": True,
                })
        quotes.sort(key=lambda q: -q["score"])
        quotes = quotes[: int(params.get("quotesCount", 8))]
        body = {"explains": [], "count": len(quotes), "quotes": quotes, "news": [], "nav": [], "lists": [],
                "researchReports": [], "screenerFieldResults": [], "totalTime": 12, "timeTakenForQuotes": 400,
                "timeTakenForNews": 0, "timeTakenForAlgowatchlist": 400, "timeTakenForPredefinedScreener": 400,
                "timeTakenForCrunchbase": 0, "timeTakenForNav": 400, "timeTakenForResearchReports": 0,
                "timeTakenForScreenerField": 0, "timeTakenForCulturalAssets": 0, "timeTakenForSearchLists": 0}
        return 200, json.dumps(body), "application/json"

    # ---- v8 chart JSON --------------------------------------------------------------
    def _served_frame(self, listing: FakeListing) -> tuple[pd.DataFrame, np.ndarray]:
        """Adjusted bars and their session timestamps, cached until the listing changes."""
        key = (id(listing.bars), len(listing.bars), tuple(sorted(listing.splits.items())), tuple(sorted(listing.dividends.items())))
        cached = getattr(listing, "_served", None)
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        tz = ZoneInfo(listing.timezone)
        hour, minute = EXCHANGE_OPEN.get(listing.timezone, (9, 0))
        frame = listing.adjusted()
        stamps = np.array(
            [int(datetime(d.year, d.month, d.day, hour, minute, tzinfo=tz).timestamp()) for d in frame.index],
            dtype=np.int64,
        )
        listing._served = (key, frame, stamps)
        return frame, stamps

    def _chart(self, listing: FakeListing, params: dict[str, str], *, empty: bool) -> dict:
        tz = ZoneInfo(listing.timezone)
        hour, minute = EXCHANGE_OPEN.get(listing.timezone, (9, 0))
        frame, stamps = self._served_frame(listing)
        if "period1" in params:
            keep = stamps >= int(params["period1"])
            if "period2" in params:
                keep &= stamps < int(params["period2"])
        elif params.get("range") == "1d":
            keep = np.zeros(len(stamps), dtype=bool)
            keep[-1:] = True
        else:
            keep = np.ones(len(stamps), dtype=bool)
        first_stamp = int(stamps[0]) if len(stamps) else 0
        now_offset = int(datetime.now(tz).utcoffset().total_seconds())
        last_price = float(frame["close"].iloc[-1]) if len(frame) else None
        meta = {
            "currency": listing.currency,
            "symbol": listing.symbol,
            "exchangeName": "FAKE",
            "fullExchangeName": "Fake Exchange",
            "instrumentType": listing.instrument_type,
            "firstTradeDate": first_stamp,
            "regularMarketTime": int(stamps[-1]) if len(stamps) else 0,
            "hasPrePostMarketData": False,
            "gmtoffset": now_offset,
            "timezone": "FAKE",
            "exchangeTimezoneName": listing.timezone,
            "regularMarketPrice": last_price,
            "chartPreviousClose": last_price,
            "priceHint": 2,
            "currentTradingPeriod": {
                name: {"timezone": "FAKE", "start": first_stamp, "end": first_stamp + 23400, "gmtoffset": now_offset}
                for name in ("pre", "regular", "post")
            },
            "dataGranularity": params.get("interval", "1d"),
            "range": params.get("range", ""),
            "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"],
        }
        result: dict = {"meta": meta}
        if empty or not keep.any():
            result["indicators"] = {"quote": [{}], "adjclose": [{}]}
            return {"chart": {"result": [result], "error": None}}
        chosen = frame[keep]
        chosen_stamps = stamps[keep]
        lo, hi = int(chosen_stamps[0]), int(chosen_stamps[-1])

        def stamp_of(day: date) -> int:
            return int(datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz).timestamp())

        events: dict = {}
        dividends = {str(stamp_of(d)): {"amount": a, "date": stamp_of(d)} for d, a in listing.dividends.items() if lo <= stamp_of(d) <= hi}
        splits = {
            str(stamp_of(d)): {"date": stamp_of(d), "numerator": n, "denominator": m, "splitRatio": f"{n}:{m}"}
            for d, (n, m) in listing.splits.items()
            if lo <= stamp_of(d) <= hi
        }
        if dividends:
            events["dividends"] = dividends
        if splits:
            events["splits"] = splits
        result["timestamp"] = chosen_stamps.tolist()
        if events:
            result["events"] = events
        result["indicators"] = {
            "quote": [
                {
                    "open": chosen["open"].round(6).tolist(),
                    "high": chosen["high"].round(6).tolist(),
                    "low": chosen["low"].round(6).tolist(),
                    "close": chosen["close"].round(6).tolist(),
                    "volume": chosen["volume"].round().astype("int64").tolist(),
                }
            ],
            "adjclose": [{"adjclose": chosen["adjclose"].round(6).tolist()}],
        }
        return {"chart": {"result": [result], "error": None}}


def _raw_with_cookie():
    """A stand-in for urllib3's response carrying Set-Cookie, so requests fills the jar."""
    from http.client import HTTPMessage
    from types import SimpleNamespace

    headers = HTTPMessage()
    expires = (datetime.now(ZoneInfo("UTC")) + timedelta(days=365)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    headers["Set-Cookie"] = f"A3=d=fake&S=fake; Expires={expires}; Domain=.yahoo.com; Path=/; Secure; HttpOnly"
    return SimpleNamespace(_original_response=SimpleNamespace(msg=headers), close=lambda: None)


def reset_yfinance(tz_cache_dir) -> None:
    """Isolate yfinance's process-global state between tests.

    Clears the response LRU cache, points the timezone cache at a fresh directory (the
    private ``_tz_cache`` reset is needed because yfinance keeps the opened DB), and
    forgets the crumb so each test sees the cookie/crumb handshake.
    """
    import yfinance as yf
    from yfinance import cache as yf_cache
    from yfinance.data import YfData

    YfData.cache_get.cache_clear()
    yf.set_tz_cache_location(str(tz_cache_dir))
    yf_cache._TzCacheManager._tz_cache = None
    yf_cache._CookieCacheManager._Cookie_cache = None
    data = YfData()
    data._crumb = None
    data._cookie = None
