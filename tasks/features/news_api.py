"""Client of the news API the news-sentiment plug-in reads (Stock News API wire format).

``GET <api_url>?tickers=AAPL&items=50&page=1&days=7&type=article&token=KEY`` answers
``{"data": [articles…], "total_pages": N}``. Pages are fetched until one is empty or short, the last
page, or ``max_pages``. Requests share one token bucket (tasks/prices/ratelimit.py); every request has
a timeout; only transient failures (429, 5xx, timeouts, connection errors) are retried, with
exponential backoff (a 429 also slows the bucket down). A body that is not the expected JSON is bad
input, not retried. The token goes only into the request's query: it is never in a log line, an
exception or a repr (error messages name the ticker and page, not the URL).

``fetch_news`` writes each run's articles to ``<data_dir>/news/api/<stamp>.json`` (what the plug-in
reads) and asks for the days since the previous run only (incremental). ``fetch_universe_news`` does it
for a universe's US listings (the CLI's ``numerflow news fetch`` and the round's ``news`` stage, which
runs when ``api_fetch_wanted``: a key is configured, the news_sentiment plug-in is selected and no
headlines file is named).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests

from numerflow.tasks.core.config import FeaturesSettings, NewsSettings
from numerflow.tasks.core.errors import BadInputError, TransientError
from numerflow.tasks.core.store import read_json, write_json
from numerflow.tasks.prices.ratelimit import TokenBucket

log = logging.getLogger(__name__)


class _RedactToken(logging.Filter):
    """urllib3 logs every request line at DEBUG, query string included: mask ``token=`` there."""

    _TOKEN = re.compile(r"(token=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            record.msg, record.args = self._TOKEN.sub(r"\1***", message), ()
        return True


_REDACT = _RedactToken()


class NewsClient:
    def __init__(self, settings: NewsSettings, session: requests.Session | None = None,
                 limiter: TokenBucket | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        if settings.api_key is None:
            raise BadInputError("no news API key: set features.news.api_key (env NUMERFLOW_FEATURES__NEWS__API_KEY)",
                                tag="invalid_config")
        self.settings = settings
        self._session = session or requests.Session()
        self._limiter = limiter or TokenBucket(settings.requests_per_second, 1)
        self._sleep = sleep
        self.requests = 0
        urllib3_log = logging.getLogger("urllib3.connectionpool")
        if _REDACT not in urllib3_log.filters:
            urllib3_log.addFilter(_REDACT)

    def __repr__(self) -> str:
        return f"NewsClient(api_url={self.settings.api_url!r}, api_key=***)"

    def fetch_ticker(self, symbol: str, days: int = 7) -> list[dict[str, Any]]:
        """Every article about ``symbol`` of the last ``days`` days, page by page."""
        articles: list[dict[str, Any]] = []
        items = self.settings.items_per_page
        for page in range(1, self.settings.max_pages + 1):
            payload = self._get({"tickers": symbol, "items": items, "page": page, "days": days, "type": "article"},
                                f"{symbol} page {page}")
            data = payload["data"]
            articles.extend(data)
            total = payload.get("total_pages")
            if len(data) < items or (isinstance(total, int) and page >= total):
                break
        return articles

    def _get(self, params: dict[str, Any], what: str) -> dict[str, Any]:
        settings = self.settings
        assert settings.api_key is not None
        query = {**params, "token": settings.api_key.get_secret_value()}
        for attempt in range(1, settings.max_attempts + 1):
            self._limiter.acquire()
            self.requests += 1
            try:
                response = self._session.get(settings.api_url, params=query, timeout=settings.timeout_seconds)
            except (requests.Timeout, requests.ConnectionError) as exc:
                problem = f"{type(exc).__name__}"  # the exception text holds the URL, token included
            else:
                status = response.status_code
                if status == 200:
                    return _payload(response, what)
                if status != 429 and status < 500:
                    raise BadInputError(f"news API answered HTTP {status} for {what}; check the API key and "
                                        "features.news.api_url", tag="news_api")
                problem = f"HTTP {status}"
                if status == 429:
                    self._limiter.slow_down(60.0)
            if attempt == settings.max_attempts:
                raise TransientError(f"news API failed for {what} after {attempt} tries ({problem}); try later",
                                     tag="news_api")
            delay = min(settings.backoff_cap_seconds, settings.backoff_base_seconds * 2 ** (attempt - 1))
            log.info("news API %s for %s; retry %d in %.1fs", problem, what, attempt, delay)
            self._sleep(delay)
        raise AssertionError("unreachable")


def _payload(response: requests.Response, what: str) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        raise BadInputError(f"news API answered {what} with a body that is not JSON ({len(response.content)} bytes, "
                            f"starts {response.content[:40]!r})", tag="news_api") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise BadInputError(f"news API answered {what} without a data list; is features.news.api_url the "
                            "articles endpoint?", tag="news_api")
    return payload


def fetch_news(client: NewsClient, symbols: Sequence[str], data_dir: Path,
               now: dt.datetime | None = None) -> Path:
    """Articles of the days since the last fetch (7 the first time, at most 30) for every symbol, written
    to ``<data_dir>/news/api/<UTC stamp>.json``; the fetch time is remembered in ``_state.json``."""
    now = now or dt.datetime.now(dt.UTC)
    folder = Path(data_dir) / "news" / "api"
    state_path = folder / "_state.json"
    days = 7
    if state_path.exists():
        last = dt.datetime.fromisoformat(read_json(state_path)["last_fetch"])
        days = max(1, min(30, (now - last).days + 1))
    articles = [a for symbol in symbols for a in client.fetch_ticker(symbol, days)]
    path = folder / f"{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    n = 1
    while path.exists():  # two fetches in one second: keep both (the plug-in reads every file)
        path, n = folder / f"{now.strftime('%Y%m%dT%H%M%SZ')}-{n}.json", n + 1
    path = write_json(path, {"data": articles})
    write_json(state_path, {"last_fetch": now.isoformat(), "articles": len(articles)})
    return path


def news_symbols(tickers: Sequence[str]) -> list[str]:
    """The provider's symbols of the US listings among Numerai tickers ("AAPL US" → "AAPL", distinct, in
    order); the news API covers US stocks, so other listings are not asked for."""
    return list(dict.fromkeys(t[:-3] for t in map(str, tickers) if t.endswith(" US") and len(t) > 3))


def api_fetch_wanted(features: FeaturesSettings) -> bool:
    """Fetch from the news API before the dataset is built? When a key is configured, the news_sentiment
    plug-in is among the selected sources, and no headlines file overrides the fetched ones."""
    from numerflow.tasks.model.plugins import selected_sources

    news = features.news
    if news.api_key is None or news.headlines_path is not None:
        return False
    _, sources = selected_sources(features)
    return any((s.plugin or "").split(":")[-1] == "news_sentiment" and "path" not in s.options for s in sources)


def fetch_universe_news(settings: NewsSettings, tickers: Sequence[str], data_dir: Path,
                        session: requests.Session | None = None) -> dict[str, Any]:
    """``fetch_news`` for the US listings of ``tickers``: what was fetched (no key in it)."""
    symbols = news_symbols(tickers)
    if not symbols:
        raise BadInputError("no US listings (\"AAPL US\") among the tickers: the news API has nothing to fetch",
                            tag="invalid_config")
    client = NewsClient(settings, session=session)
    path = fetch_news(client, symbols, data_dir)
    articles = len(read_json(path)["data"])
    log.info("news: %d articles for %d symbols in %d requests → %s", articles, len(symbols), client.requests, path)
    return {"path": str(path), "symbols": len(symbols), "articles": articles, "requests": client.requests}
