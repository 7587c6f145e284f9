"""Yahoo symbols no rule can spell, found through Yahoo's own search and verified by a price fetch.

Malaysia (``5099.KL``), Singapore (``C52.SI``), Ireland (``A5G.IR``) and some Oslo listings are
spelt on Yahoo with the exchange's code, not the Bloomberg-style symbol in ``numerai_ticker``; a
renamed listing no longer answers to its old symbol. For those tickers this module asks the
endpoint ``yfinance.Search`` wraps (``GET https://query2.finance.yahoo.com/v1/finance/search``,
``q=<query>``; the answer's ``quotes`` list holds ``symbol``, ``exchange``, ``quoteType``,
``shortname``/``longname``), through our throttled session (the shared limiter; a 429 is raised
before yfinance retries it, and its ``Retry-After`` pauses every thread):

1. query by the local symbol, then by the company name when one is known (the universe's, or the
   name a previous search answered with);
2. keep equities listed where the ticker's country trades (the Yahoo suffixes of
   ``tasks.prices.tickers.COUNTRY_SUFFIXES``);
3. verify each hit, best first, with a price fetch (bars in the last ``verify_days``): a symbol
   that returns no prices is never taken;
4. the winner goes into the ingest catalog (``remember_lookups``) with ``via = "lookup"``, so the
   next resolution puts it first and reports it as resolved by lookup, without asking again.

Transient failures (429, 5xx, timeouts) leave the ticker for the next round (its reason says so);
they never fail the resolution.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from numerflow.tasks.prices.sources.outcomes import OK, FetchRequest
from numerflow.tasks.prices.tickers import COUNTRY_SUFFIXES, split_numerai_ticker, ticker_markets, universe_convention

#: Where Yahoo spells listings by exchange code: the rules' candidates are known to miss there.
LOOKUP_COUNTRIES = frozenset({"MY", "SG", "IE"})
#: Yahoo quote types a Signals ticker can be.
EQUITY_TYPES = frozenset({"EQUITY"})


@dataclass
class LookupResult:
    """What the search found for one ticker: the verified ``symbol`` (None when none), the
    queries asked, the hits tried, and why it failed (``reason``)."""

    ticker: str
    symbol: str | None = None
    name: str | None = None
    queries: list[str] = field(default_factory=list)
    tried: list[str] = field(default_factory=list)
    reason: str | None = None
    transient: bool = False


class YahooSearch:
    """``query → quotes`` via ``yfinance.Search`` on the source's throttled session."""

    def __init__(self, session: Any, timeout_seconds: float = 10.0, max_results: int = 8) -> None:
        self.session = session
        self.timeout_seconds = float(timeout_seconds)
        self.max_results = int(max_results)

    def __call__(self, query: str) -> list[dict[str, Any]]:
        import yfinance as yf

        search = yf.Search(query, max_results=self.max_results, news_count=0, lists_count=0, include_cb=False,
                           recommended=0, session=self.session, timeout=self.timeout_seconds, raise_errors=True)
        return list(search.quotes)


def is_transient_search_error(exc: BaseException) -> bool:
    """429 / 5xx / timeouts / connection errors / a malformed answer: worth asking again later."""
    import json

    from numerflow.tasks.prices.sources.yahoo import _exception_kind

    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int) and (status == 429 or status >= 500):
        return True
    if type(exc).__name__ in ("YFRateLimitError", "YFDataException"):
        return True
    return _exception_kind(exc) is not None or isinstance(exc, json.JSONDecodeError)


def expected_suffixes(country: str | None) -> tuple[str, ...]:
    """The Yahoo suffixes of the exchanges a country's tickers trade on ("" = US, no suffix)."""
    return COUNTRY_SUFFIXES.get(country or "", ())


def matching_symbols(quotes: Iterable[Mapping[str, Any]], suffixes: Sequence[str]) -> list[str]:
    """Equity hits listed on one of ``suffixes``' exchanges, in the search's order, once each."""
    out: list[str] = []
    for quote in quotes:
        symbol = str(quote.get("symbol") or "")
        if not symbol or quote.get("quoteType") not in EQUITY_TYPES:
            continue
        head, dot, tail = symbol.rpartition(".")
        suffix = f".{tail}" if dot and head else ""
        if suffix in suffixes and symbol not in out:
            out.append(symbol)
    return out


def lookup_ticker(
    ticker: str,
    *,
    search: Callable[[str], list[dict[str, Any]]],
    verify: Callable[[str], bool],
    name: str | None = None,
    max_verify: int = 3,
    convention: str = "unknown",
) -> LookupResult:
    """Search by symbol, then by name; verify the hits on the exchanges of the ticker's market(s)
    (``tasks.prices.tickers.ticker_markets`` in the universe's country-code ``convention``) with a price fetch."""
    parts = split_numerai_ticker(pd.Series([ticker]))
    symbol, country = parts["symbol"].iloc[0], parts["country"].iloc[0]
    result = LookupResult(ticker, name=name)
    if pd.isna(symbol) or pd.isna(country):
        result.reason = "lookup: not a 'SYMBOL CC' ticker"
        return result
    suffixes = tuple(s for market in ticker_markets(ticker, convention) for s in expected_suffixes(market))
    if not suffixes:
        result.reason = f"lookup: no known Yahoo exchange for country {country}"
        return result
    local = str(symbol).rstrip("/*").replace("/", "-")
    queries = [local] + ([name] if name and name.strip() and name.strip().upper() != local.upper() else [])
    for query in queries:
        result.queries.append(query)
        try:
            quotes = search(query)
        except Exception as exc:  # noqa: BLE001 - classified: transient → next round, else recorded
            result.transient = is_transient_search_error(exc)
            result.reason = f"lookup: search {query!r} failed ({type(exc).__name__}: {exc})"
            if result.transient:
                return result
            continue
        hits = [s for s in matching_symbols(quotes, suffixes) if s not in result.tried]
        for hit in hits[:max_verify]:
            result.tried.append(hit)
            if verify(hit):
                result.symbol, result.reason = hit, None
                found = next((q for q in quotes if q.get("symbol") == hit), {})
                result.name = name or found.get("longname") or found.get("shortname")
                return result
    if result.reason is None:
        where = "/".join(s or "US" for s in suffixes)
        result.reason = (f"lookup: no {where} equity with prices among Yahoo's answers to {result.queries}"
                         + (f" (tried {result.tried})" if result.tried else ""))
    return result


def price_verifier(source: Any, as_of: dt.date, verify_days: int = 14) -> Callable[[str], bool]:
    """``symbol → True`` when the source returns at least one bar in the last ``verify_days``."""
    start = as_of - dt.timedelta(days=verify_days)

    def verify(symbol: str) -> bool:
        (outcome,) = source.fetch_outcomes([FetchRequest(symbol, (symbol,), start)])
        return outcome.kind == OK and outcome.bars is not None and len(outcome.bars) > 0

    return verify


def lookup_tickers(
    tickers: Sequence[str],
    *,
    search: Callable[[str], list[dict[str, Any]]],
    verify: Callable[[str], bool],
    names: Mapping[str, str] | None = None,
    limit: int | None = None,
    convention: str | None = None,
) -> dict[str, LookupResult]:
    """``lookup_ticker`` for each ticker (at most ``limit``; the rest wait for the next round), in the
    universe's country-code ``convention`` (by default the one these tickers themselves use). Once the
    search itself is rate-limited, the remaining tickers are not asked this round."""
    names = names or {}
    convention = convention or universe_convention(tickers)
    results: dict[str, LookupResult] = {}
    todo = list(dict.fromkeys(tickers))
    cut = todo if limit is None else todo[:limit]
    stopped: str | None = None
    for ticker in cut:
        if stopped:
            results[ticker] = LookupResult(ticker, reason=f"lookup: not asked this round ({stopped})", transient=True)
            continue
        result = lookup_ticker(ticker, search=search, verify=verify, name=names.get(ticker), convention=convention)
        results[ticker] = result
        if result.transient:
            stopped = "Yahoo's search is rate-limiting or failing: resume with `numerflow universe`"
    for ticker in todo[len(cut):]:
        results[ticker] = LookupResult(ticker, reason=f"lookup: over this round's limit of {limit} lookups",
                                       transient=True)
    return results


def lookup_targets(resolution: pd.DataFrame, failing: Iterable[str] = ()) -> list[str]:
    """Tickers worth a search: no rule candidate, a market spelt by exchange codes, or failing in
    the ingest; never those with an override or a remembered winner."""
    status = resolution["status"].astype(str)
    open_ = ~status.isin(["override", "remembered", "lookup"])
    wanted = (status == "unresolved") | resolution["country"].isin(list(LOOKUP_COUNTRIES)).fillna(False)
    wanted |= resolution["numerai_ticker"].isin(list(failing))
    return resolution.loc[open_ & wanted, "numerai_ticker"].astype(str).tolist()
