"""``numerai_ticker`` → Yahoo Finance symbol resolution.

Numerai no longer publishes a ticker map (every public one is stale), so the mapping is
ours: a per-country suffix rule, a few symbol normalisations, ordered candidate lists
for markets with more than one exchange, a remembered winner per ticker (the candidate
that last returned prices, kept in the ingest catalog), and a user overrides CSV that always wins.

``numerai_ticker`` is ``"SYMBOL CC"`` with CC the ISO-2 country (``AAPL US``,
``7203 JP``, ``VOD GB``): Numerai's Signals example notebook builds it from a Bloomberg ticker by
replacing Bloomberg's country code with the ISO one (``000640 KS`` → ``000640 KR``, ``ABBN SW`` →
``ABBN CH``). Older universes, Numerai's old ticker map and ``bloomberg_ticker`` columns use Bloomberg's
codes (``VOD LN``, ``ERICB SS``, ``SAP GR``, ``RY CN``); both are accepted (``BLOOMBERG_COUNTRIES``).
Six codes mean one market in ISO and another in Bloomberg's convention (``CODE_COLLISIONS``): the symbol
settles CN and CH (Chinese A-shares are all digits, Canadian and Swiss symbols are letters); GR, ID, IT
and PL are read in the universe's own convention, told by its unambiguous codes (GB/SE/DE vs
LN/SS/GY). Only when none decides (a lone ``SAP GR``) is the ISO market tried first and the other one
second: a decided universe never tries the other market, whose same symbol is another company.

Rules (Yahoo's conventions):

- share classes ``/`` → ``-`` (``BRK/B US`` → ``BRK-B``, ``BT/A GB`` → ``BT-A.L``);
- a trailing ``/`` or ``*`` is Bloomberg's marker, not Yahoo's (``BP/ GB`` → ``BP.L``,
  ``WALMEX* MX`` → ``WALMEX.MX``);
- Nordic share classes glued to the symbol: ``ERICB SE`` → ``ERIC-B.ST`` first, then the plain
  ``ERICB.ST`` (some plain names only look like a class: ``TELIA``, ``GMAB``); Sweden and Denmark,
  classes A/B/C and Swedish depositary receipts (``KINDSDB`` → ``KIND-SDB``);
- Toronto units: ``-U`` → ``-UN`` (``BEP-U CA`` → ``BEP-UN.TO``);
- Mexican series: Yahoo dashes some series numbers and not others (``SITESB1`` → ``SITESB-1.MX`` but
  ``GCARSOA1.MX``; ``LIVEPOLC`` → ``LIVEPOLC-1.MX``): the Bloomberg spelling first, then the dashed
  series (``-1`` when the symbol has no number);
- Hong Kong codes zero-padded to 4 digits (``1 HK`` → ``0001.HK``, ``09988 HK`` → ``9988.HK``);
- Korean and Chinese numeric codes zero-padded to 6 digits;
- ambiguous markets give ordered candidates that the price ingest tries in turn:
  KR ``.KS``/``.KQ``, TW ``.TW``/``.TWO``, CN ``.SS``/``.SZ`` (order by code prefix),
  IN ``.NS``/``.BO`` (``.BO`` first for numeric BSE codes), CA ``.TO``/``.V``, DE ``.DE``/``.F``
  (Xetra, then Frankfurt).

Markets where Yahoo spells a listing by the exchange's own code (Malaysia's numeric ``.KL`` codes,
Singapore's ``C52.SI``, Ireland's ``A5G.IR``) have no rule: ``tasks.prices.lookup`` asks Yahoo's
search for those and the catalog remembers the verified winner.

Numerai Crypto ``symbol`` values map to ``SYMBOL-USD`` (``resolve_crypto_universe``), in the
same resolution table, so the crypto round shares the report and the ingest.

Everything is vectorised over the universe (pandas string ops per rule, not per ticker).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from numerflow.tasks.core.errors import BadInputError

#: country (ISO-2, as in numerai_ticker) → Yahoo suffixes, in the order to try them.
#: A single suffix means the mapping is unambiguous.
COUNTRY_SUFFIXES: dict[str, tuple[str, ...]] = {
    # Americas
    "US": ("",),
    "CA": (".TO", ".V"),
    "BR": (".SA",),
    "MX": (".MX",),
    "CL": (".SN",),
    "AR": (".BA",),
    # Europe
    "GB": (".L",),
    "IE": (".IR",),
    "DE": (".DE", ".F"),
    "FR": (".PA",),
    "NL": (".AS",),
    "BE": (".BR",),
    "IT": (".MI",),
    "ES": (".MC",),
    "PT": (".LS",),
    "CH": (".SW",),
    "AT": (".VI",),
    "SE": (".ST",),
    "NO": (".OL",),
    "DK": (".CO",),
    "FI": (".HE",),
    "PL": (".WA",),
    "GR": (".AT",),
    "CZ": (".PR",),
    "HU": (".BD",),
    "TR": (".IS",),
    # Middle East / Africa
    "IL": (".TA",),
    "ZA": (".JO",),
    "SA": (".SR",),
    "QA": (".QA",),
    "KW": (".KW",),
    "EG": (".CA",),
    # Asia-Pacific
    "JP": (".T",),
    "HK": (".HK",),
    "CN": (".SS", ".SZ"),
    "TW": (".TW", ".TWO"),
    "KR": (".KS", ".KQ"),
    "IN": (".NS", ".BO"),
    "SG": (".SI",),
    "AU": (".AX",),
    "NZ": (".NZ",),
    "ID": (".JK",),
    "MY": (".KL",),
    "TH": (".BK",),
    "PH": (".PS",),
}

#: Bloomberg's country code (the composite, or the exchange where a country has none) → the ISO-2
#: country of ``COUNTRY_SUFFIXES``. Codes the same in both conventions (``SAME_IN_BOTH``) are not
#: listed. A code that is ISO for a country with no market here (SS South Sudan, SM San
#: Marino, NA Namibia, MK North Macedonia, TT Trinidad and Tobago, ...) is read as Bloomberg's.
BLOOMBERG_COUNTRIES: dict[str, str] = {
    "AV": "AT", "BB": "BE", "BZ": "BR", "CN": "CA", "CP": "CZ", "DC": "DK", "EY": "EG", "FH": "FI",
    "FP": "FR", "GA": "GR", "GR": "DE", "GY": "DE", "HB": "HU", "ID": "IE", "IJ": "ID", "IM": "IT",
    "IT": "IL", "KS": "KR", "LN": "GB", "MF": "MX", "MK": "MY", "NA": "NL", "PL": "PT", "PM": "PH",
    "PW": "PL", "QD": "QA", "SJ": "ZA", "SM": "ES", "SP": "SG", "SS": "SE", "SW": "CH", "TB": "TH",
    "TI": "TR", "TT": "TW", "UQ": "US", "UN": "US", "CH": "CN", "CI": "CL", "AB": "SA", "KK": "KW",
    "CB": "CO", "RM": "RU", "UH": "AE",
}

#: Codes the same in Bloomberg's convention and ISO's.
SAME_IN_BOTH = frozenset({"US", "JP", "HK", "AU", "NZ", "NO", "IN", "CA", "AR", "PE"})

#: Codes that are one market's ISO code here and another market's Bloomberg code:
#: CN China/Canada, CH Switzerland/China, GR Greece/Germany, ID Indonesia/Ireland, IT Italy/Israel,
#: PL Poland/Portugal.
CODE_COLLISIONS = frozenset(c for c, iso in BLOOMBERG_COUNTRIES.items() if c in COUNTRY_SUFFIXES and iso != c)

#: Collisions the symbol settles: code → (market of an all-digit symbol, market of any other symbol).
#: Chinese A-shares are 6-digit codes; Canadian and Swiss symbols are letters.
_BY_SYMBOL_SHAPE = {"CN": ("CN", "CA"), "CH": ("CN", "CH")}

#: Codes that exist in one convention only: they tell which one a universe uses.
_ISO_ONLY = frozenset(set(COUNTRY_SUFFIXES) - set(BLOOMBERG_COUNTRIES) - SAME_IN_BOTH)
_BLOOMBERG_ONLY = frozenset(set(BLOOMBERG_COUNTRIES) - set(COUNTRY_SUFFIXES))

#: Country-code conventions: a universe's, or ``unknown`` when none of its codes decides.
CONVENTIONS = ("iso", "bloomberg", "unknown")

#: Markets whose rules give more than one candidate: the ingest tries them in order.
AMBIGUOUS_COUNTRIES = frozenset(c for c, s in COUNTRY_SUFFIXES.items() if len(s) > 1)

#: Resolution statuses, best first.
STATUSES = ("override", "lookup", "remembered", "resolved", "ambiguous", "unresolved")

#: How a resolution was reached, for the report: status → category.
RESOLVED_BY = {"resolved": "rule", "ambiguous": "candidate", "remembered": "candidate", "lookup": "lookup",
               "override": "override", "unresolved": "unresolved"}


RESOLUTION_COLUMNS = ["numerai_ticker", "country", "yahoo_symbol", "candidates", "status"]


def split_numerai_ticker(tickers: pd.Series) -> pd.DataFrame:
    """Split ``"SYMBOL CC"`` into ``symbol`` and ``country`` (both <NA> when malformed)."""
    text = tickers.astype("string").str.strip()
    parts = text.str.extract(r"^(?P<symbol>\S+(?: \S+)*?) (?P<country>[A-Z]{2})$")
    return parts.astype("string")


def code_convention(codes: pd.Series) -> str:
    """``"iso"``, ``"bloomberg"`` or ``"unknown"``: the convention of a universe's country codes, by
    majority of the codes that exist in only one of them (GB, SE, DE, KR... vs LN, SS, GY, KS...);
    ``"unknown"`` when none does (only US, JP, HK... or a tie)."""
    codes = pd.Series(codes, dtype="string")
    bloomberg, iso = int(codes.isin(_BLOOMBERG_ONLY).sum()), int(codes.isin(_ISO_ONLY).sum())
    return "bloomberg" if bloomberg > iso else "iso" if iso > bloomberg else "unknown"


def universe_convention(tickers: Iterable[str] | pd.Series) -> str:
    """``code_convention`` of a universe's ``"SYMBOL CC"`` tickers."""
    return code_convention(split_numerai_ticker(pd.Series(list(tickers), dtype="string"))["country"])


def market_countries(symbol: pd.Series, code: pd.Series, convention: str = "unknown") -> tuple[pd.Series, pd.Series]:
    """The ISO-2 market of each ticker's country code, and a second market to try after it (<NA>
    unless the convention is ``unknown`` and the code is GR/ID/IT/PL: then ISO's market, Bloomberg's
    second). Bloomberg-only codes are translated, CN/CH are settled by the symbol's shape. A code of
    no market stays as it is (no suffix rule: unresolved)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"country-code convention {convention!r} is not one of {CONVENTIONS}")
    code = pd.Series(code, dtype="string")
    bloomberg = code.map(BLOOMBERG_COUNTRIES).astype("string")
    primary = code.mask(code.isin(_BLOOMBERG_ONLY).fillna(False).astype(bool), bloomberg)
    numeric = symbol.str.fullmatch(r"\d+").fillna(False).astype(bool)
    for collision, (digits, letters) in _BY_SYMBOL_SHAPE.items():
        at = (code == collision).fillna(False).astype(bool)
        primary = primary.mask(at & numeric, digits).mask(at & ~numeric, letters)
    fallback = pd.Series(pd.NA, index=code.index, dtype="string")
    open_question = code.isin(CODE_COLLISIONS - set(_BY_SYMBOL_SHAPE)).fillna(False).astype(bool)
    if convention == "bloomberg":
        primary = primary.mask(open_question, bloomberg)
    elif convention == "unknown":
        fallback = fallback.mask(open_question, bloomberg)
    return primary.astype("string"), fallback.astype("string")


def ticker_markets(numerai_ticker: str, convention: str = "unknown") -> list[str]:
    """The ISO-2 markets one ticker may trade on, in the order its candidates try them ([] if malformed)."""
    parts = split_numerai_ticker(pd.Series([numerai_ticker]))
    if parts.isna().any(axis=None):
        return []
    primary, fallback = market_countries(parts["symbol"], parts["country"], convention)
    return [str(m.iloc[0]) for m in (primary, fallback) if not pd.isna(m.iloc[0])]


#: Markets whose share classes Bloomberg glues to the symbol and Yahoo spells with a dash.
GLUED_CLASS_COUNTRIES = ("SE", "DK")
_GLUED_CLASS = r"^(?P<base>[A-Z0-9&]{2,}?)(?P<cls>SDB|[ABC])$"


def _normalised_symbols(symbol: pd.Series, country: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Yahoo spelling of the local symbol, and an alternative spelling to try after it (<NA> when
    none): ``/``→``-``, trailing ``/``/``*`` dropped, HK 4-digit, KR/CN 6-digit codes, Toronto
    units ``-UN``; the alternative is the plain form of a Nordic glued share class."""
    out = symbol.str.replace(r"[/*]+$", "", regex=True)
    out = out.str.replace("/", "-", regex=False).str.replace(" ", "-", regex=False)
    numeric = out.str.fullmatch(r"\d+").fillna(False).astype(bool)
    hk = (country == "HK").fillna(False).astype(bool) & numeric
    # Yahoo spells HK codes with exactly 4 digits when they fit (00005 → 0005, 1 → 0001).
    out = out.mask(hk, out.str.lstrip("0").str.zfill(4))
    six = country.isin(["KR", "CN"]).fillna(False).astype(bool) & numeric
    out = out.mask(six, out.str.zfill(6))
    canada = (country == "CA").fillna(False).astype(bool)
    out = out.mask(canada, out.str.replace(r"-U$", "-UN", regex=True))
    nordic = country.isin(GLUED_CLASS_COUNTRIES).fillna(False).astype(bool)
    glued = out.str.extract(_GLUED_CLASS)
    has_class = nordic & glued["base"].notna().to_numpy()
    alternative = out.where(has_class).astype("string")
    out = out.mask(has_class, glued["base"] + "-" + glued["cls"])
    mexico = (country == "MX").fillna(False).astype(bool)
    series = out.str.extract(r"^(?P<base>.*[A-Z&])(?P<number>\d)$")
    numbered = mexico & series["base"].notna().to_numpy()
    alternative = alternative.mask(numbered, series["base"] + "-" + series["number"])
    alternative = alternative.mask(mexico & ~numbered & out.str.match(r".*[A-Z]$").fillna(False).astype(bool),
                                   out + "-1")
    return out, alternative


def _suffix_pair(symbol: pd.Series, country: pd.Series) -> tuple[pd.Series, pd.Series]:
    """First and second Yahoo suffix per row (<NA> where none), reordered where the code
    itself hints at the exchange."""
    first = country.map({c: s[0] for c, s in COUNTRY_SUFFIXES.items()}).astype("string")
    second = country.map({c: s[1] for c, s in COUNTRY_SUFFIXES.items() if len(s) > 1}).astype("string")
    starts = symbol.str.match(r"[023]").fillna(False).astype(bool)
    numeric = symbol.str.fullmatch(r"\d+").fillna(False).astype(bool)
    # Shenzhen codes start with 0, 2 or 3 (Shanghai 6 or 9); numeric Indian codes are BSE
    # scrip codes (NSE symbols are letters): the other exchange goes first.
    swap = ((country == "CN").fillna(False).astype(bool) & starts) | ((country == "IN").fillna(False).astype(bool) & numeric)
    return first.mask(swap, second), second.mask(swap, first)


def _market_columns(raw_symbol: pd.Series, country: pd.Series) -> list[np.ndarray]:
    """The candidates of one market per row, as up to four object columns (None where absent): the
    symbol then its alternative spelling on the first suffix, then both on the second."""
    symbol, alternative = _normalised_symbols(raw_symbol, country)
    first_suffix, second_suffix = _suffix_pair(symbol, country)
    # One vectorised concatenation per (spelling, suffix) position, not per ticker.
    return [(spelling + suffix).to_numpy(dtype=object, na_value=None)
            for suffix in (first_suffix, second_suffix) for spelling in (symbol, alternative)]


def rule_candidates(tickers: pd.Series, convention: str | None = None) -> pd.Series:
    """Ordered Yahoo candidates from the country rules alone (empty list when none apply): the
    market's candidates, then those of the second market a colliding code may mean.
    ``convention`` (one of ``CONVENTIONS``) defaults to the one the tickers themselves use."""
    parts = split_numerai_ticker(pd.Series(tickers, dtype="string").reset_index(drop=True))
    primary, fallback = market_countries(parts["symbol"], parts["country"],
                                         convention or code_convention(parts["country"]))
    columns = _market_columns(parts["symbol"], primary) + _market_columns(parts["symbol"], fallback)
    return pd.Series(
        [list(dict.fromkeys(c for c in row if c is not None)) for row in zip(*columns, strict=True)],
        index=parts.index,
        dtype=object,
    )


def yahoo_candidates(numerai_ticker: str, convention: str | None = None) -> list[str]:
    """Ordered Yahoo symbols to try for one ticker (rules only; [] if no rule applies), in its
    universe's ``convention`` (by default the one its own code tells, ``unknown`` for GR/ID/IT/PL)."""
    return list(rule_candidates(pd.Series([numerai_ticker]), convention=convention).iloc[0])


def resolve_universe(
    tickers: Iterable[str] | pd.Series,
    overrides: Mapping[str, str] | None = None,
    remembered: Mapping[str, str] | None = None,
    looked_up: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Resolve every ticker: overrides win, then a remembered winner (``looked_up``: one Yahoo's
    search found, status ``lookup``), then the rules.

    Returns one row per distinct input ticker with columns ``numerai_ticker``,
    ``country``, ``yahoo_symbol`` (the first candidate, <NA> when unresolved),
    ``candidates`` (ordered list to try), ``status`` (one of ``STATUSES``).
    A remembered winner is moved to the front of the rule candidates (the others stay
    as fallbacks, in case the listing moved).
    """
    series = pd.Series(list(tickers) if not isinstance(tickers, pd.Series) else tickers, dtype="string")
    series = series.dropna().drop_duplicates().reset_index(drop=True)
    parts = split_numerai_ticker(series)
    convention = code_convention(parts["country"])
    market, _ = market_countries(parts["symbol"], parts["country"], convention)
    candidates = rule_candidates(series, convention)
    n_candidates = candidates.map(len).to_numpy()
    status = np.where(n_candidates == 0, "unresolved", np.where(n_candidates > 1, "ambiguous", "resolved")).astype(object)

    if remembered:
        won = series.map(dict(remembered))
        has = won.notna().to_numpy()
        if has.any():
            idx = np.flatnonzero(has)
            winners = won.to_numpy()[idx]
            candidates.iloc[idx] = [[w] + [c for c in cands if c != w]
                                    for w, cands in zip(winners, candidates.iloc[idx], strict=True)]
            status[idx] = "remembered"
    if looked_up:
        found = series.map(dict(looked_up))
        has = found.notna().to_numpy()
        if has.any():
            idx = np.flatnonzero(has)
            candidates.iloc[idx] = [[w] + [c for c in cands if c != w]
                                    for w, cands in zip(found.to_numpy()[idx], candidates.iloc[idx], strict=True)]
            status[idx] = "lookup"
    if overrides:
        forced = series.map(dict(overrides))
        has = forced.notna().to_numpy()
        if has.any():
            idx = np.flatnonzero(has)
            candidates.iloc[idx] = [[s] for s in forced.to_numpy()[idx]]
            status[idx] = "override"

    first = pd.Series([c[0] if c else None for c in candidates], dtype="string")
    return pd.DataFrame(
        {
            "numerai_ticker": series,
            "country": market,
            "yahoo_symbol": first,
            "candidates": candidates,
            "status": pd.Series(status, dtype="string"),
        }
    )


#: Yahoo quotes crypto assets against the US dollar as ``SYMBOL-USD`` (``BTC-USD``).
CRYPTO_QUOTE_SUFFIX = "-USD"


def resolve_crypto_universe(
    symbols: Iterable[str] | pd.Series, overrides: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Numerai Crypto ``symbol`` → Yahoo ``SYMBOL-USD``, in the same table as ``resolve_universe``
    (id column ``numerai_ticker`` holds the symbol, ``country`` is ``"CRYPTO"``), so the
    candidate map, the report and the ingest are shared with Signals. A symbol that is
    empty or has spaces (no Yahoo spelling) is unresolved. ``overrides`` ({symbol: Yahoo
    symbol}, e.g. ``UNI`` → ``UNI7083-USD`` where Yahoo disambiguates) always win."""
    series = pd.Series(list(symbols) if not isinstance(symbols, pd.Series) else symbols, dtype="string")
    series = series.dropna().drop_duplicates().reset_index(drop=True)
    clean = series.str.strip().str.upper()
    usable = clean.str.fullmatch(r"[A-Z0-9._]+").fillna(False).astype(bool).to_numpy()
    quoted = (clean + CRYPTO_QUOTE_SUFFIX).to_numpy(dtype=object, na_value=None)
    candidates = pd.Series([[q] if ok else [] for q, ok in zip(quoted, usable, strict=True)], dtype=object)
    status = np.where(usable, "resolved", "unresolved").astype(object)
    if overrides:
        forced = series.map(dict(overrides)).to_numpy(dtype=object, na_value=None)
        has_override = np.array([value is not None for value in forced], dtype=bool)
        quoted = np.where(has_override, forced, quoted)
        usable = usable | has_override
        status[has_override] = "override"
        candidates = pd.Series([[q] if ok else [] for q, ok in zip(quoted, usable, strict=True)], dtype=object)
    return pd.DataFrame(
        {
            "numerai_ticker": series,
            "country": pd.Series(["CRYPTO"] * len(series), dtype="string"),
            "yahoo_symbol": pd.Series(np.where(usable, quoted, None), dtype="string"),
            "candidates": candidates,
            "status": pd.Series(status, dtype="string"),
        }
    )


def resolve_for_yahoo(
    ids: Iterable[str] | pd.Series,
    tournament: str = "signals",
    overrides_path: Path | str | None = None,
    remembered: Mapping[str, str] | None = None,
    looked_up: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The tournament's universe ids resolved to Yahoo candidates: Signals by the country rules,
    Crypto as ``SYMBOL-USD``; the overrides file (``numerai_ticker,yahoo_symbol`` for Signals,
    ``symbol,yahoo_symbol`` for Crypto) always wins; ``remembered`` winners (the ingest
    catalog's, ``tasks.prices.ingest.remembered_symbols``) go first among a Signals ticker's candidates."""
    if tournament == "crypto":
        overrides = load_overrides(overrides_path, id_column="symbol") if overrides_path else None
        return resolve_crypto_universe(ids, overrides=overrides)
    overrides = load_overrides(overrides_path) if overrides_path else None
    return resolve_universe(ids, overrides=overrides, remembered=remembered, looked_up=looked_up)


def candidate_map(resolution: pd.DataFrame) -> dict[str, list[str]]:
    """``{numerai_ticker: [yahoo candidates in order]}`` for the price ingest (unresolved left out)."""
    usable = resolution[resolution["candidates"].map(len) > 0]
    return dict(zip(usable["numerai_ticker"].astype(str), usable["candidates"].map(list), strict=True))


def resolution_report(resolution: pd.DataFrame) -> pd.DataFrame:
    """Counts per country: resolved (override, remembered or a single rule), ambiguous, unresolved.

    One row per country (unparseable tickers under country ``"??"``) plus a ``TOTAL`` row,
    columns ``country, resolved, ambiguous, unresolved, total`` (and the breakdown
    ``override``/``remembered``). Ready for ``create_table_artifact(table.to_dict("records"))``.
    """
    frame = pd.DataFrame(
        {"country": resolution["country"].fillna("??").astype(str), "status": resolution["status"].astype(str)}
    )
    counts = pd.crosstab(frame["country"], frame["status"]).reindex(columns=list(STATUSES), fill_value=0)
    table = pd.DataFrame(
        {
            "resolved": counts["override"] + counts["lookup"] + counts["remembered"] + counts["resolved"],
            "ambiguous": counts["ambiguous"],
            "unresolved": counts["unresolved"],
            "override": counts["override"],
            "remembered": counts["remembered"],
            "lookup": counts["lookup"],
        }
    )
    table["total"] = table[["resolved", "ambiguous", "unresolved"]].sum(axis=1)
    table = table.sort_values("total", ascending=False)
    table.loc["TOTAL"] = table.sum(axis=0)
    table = table.astype("int64").rename_axis("country").reset_index()
    return table[["country", "resolved", "ambiguous", "unresolved", "total", "override", "remembered", "lookup"]]


def unresolved_reasons(resolution: pd.DataFrame, reasons: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{ticker: why it has no candidate}`` for the unresolved rows (a lookup's reason when one ran)."""
    reasons = reasons or {}
    rows = resolution[resolution["status"] == "unresolved"]
    out = {}
    for ticker, country in zip(rows["numerai_ticker"].astype(str), rows["country"], strict=True):
        rule = ("not 'SYMBOL CC' (CC = ISO-2 or Bloomberg country code)" if pd.isna(country)
                else f"no Yahoo suffix rule for country {country}")
        out[ticker] = f"{rule}; {reasons[ticker]}" if ticker in reasons else rule
    return out


def resolution_summary(resolution: pd.DataFrame, reasons: Mapping[str, str] | None = None,
                       needs_override: Mapping[str, Mapping[str, object]] | None = None) -> dict[str, object]:
    """The report ``numerflow universe`` prints: counts resolved by rule / candidate / lookup /
    override, the universe's ``country_codes`` convention (``iso``/``bloomberg``/``unknown``), the
    unresolved with their reason, and ``needs_override`` (tickers failing round after round,
    ``{ticker: {"runs": n, "reason": ...}}``) with the exact overrides-file line to add."""
    by = resolution["status"].astype(str).map(RESOLVED_BY).value_counts()
    needs = {str(t): {"runs": int(m.get("runs", 0) or 0), "reason": m.get("reason"),  # type: ignore[call-overload]
                      "line": f"{t},<yahoo symbol>"}
             for t, m in (needs_override or {}).items()}
    return {
        "by": {k: int(by.get(k, 0)) for k in ("rule", "candidate", "lookup", "override", "unresolved")},
        "total": int(len(resolution)),
        "country_codes": universe_convention(resolution["numerai_ticker"]),
        "unresolved": unresolved_reasons(resolution, reasons),
        "needs_override": needs,
    }


def resolution_lines(summary: Mapping[str, object], limit: int = 20) -> list[str]:
    """The resolution report as text lines (the CLI prints them, the round publishes them)."""
    by = dict(summary.get("by") or {})  # type: ignore[call-overload]
    unresolved = dict(summary.get("unresolved") or {})  # type: ignore[call-overload]
    needs = dict(summary.get("needs_override") or {})  # type: ignore[call-overload]
    lines = [f"resolved by rule {by.get('rule', 0)}, by candidate {by.get('candidate', 0)}, by lookup "
             f"{by.get('lookup', 0)}, by override {by.get('override', 0)}; unresolved {by.get('unresolved', 0)} "
             f"of {summary.get('total', 0)}"]
    if summary.get("country_codes") == "bloomberg":
        lines.append("country codes read as Bloomberg's (LN, SS, GY, CN...), not ISO-2: GR, ID, IT, PL are "
                     "Germany, Ireland, Israel, Portugal")
    lines += [f"unresolved {t}: {reason}" for t, reason in sorted(unresolved.items())[:limit]]
    if len(unresolved) > limit:
        lines.append(f"... and {len(unresolved) - limit} more unresolved")
    lines += [f"needs an override {t} (failed {e['runs']} ingests in a row: {e['reason']}): add the line "
              f"`{e['line']}` to the overrides file" for t, e in sorted(needs.items())[:limit]]
    return lines


def write_overrides_template(path: Path | str, summary: Mapping[str, object], id_column: str = "numerai_ticker") -> Path:
    """The unresolved and needs-an-override tickers as an overrides CSV to fill in: one row per
    ticker with an empty ``yahoo_symbol`` under a ``#`` comment saying why (fill it in or delete
    the row; ``load_overrides`` refuses an empty symbol, naming the line)."""
    from numerflow.tasks.core.store import write_text

    unresolved = dict(summary.get("unresolved") or {})  # type: ignore[call-overload]
    needs = dict(summary.get("needs_override") or {})  # type: ignore[call-overload]
    lines = ["# numerflow overrides template: fill in yahoo_symbol (or delete the row), then set",
             "# numerai.overrides_path to this file. Overrides always win over the rules.",
             f"{id_column},yahoo_symbol"]
    for ticker, reason in sorted(unresolved.items()):
        lines += [f"# unresolved: {reason}", f"{ticker},"]
    for ticker, entry in sorted(needs.items()):
        if ticker not in unresolved:
            lines += [f"# needs an override: failing {entry['runs']} ingests in a row ({entry['reason']})", f"{ticker},"]
    return write_text(Path(path), "\n".join(lines) + "\n")


def load_overrides(path: Path | str, id_column: str = "numerai_ticker") -> dict[str, str]:
    """Read the user's overrides CSV (``numerai_ticker,yahoo_symbol``, or ``symbol,yahoo_symbol``
    for Numerai Crypto with ``id_column="symbol"``; ``#`` lines are comments).

    Every bad row is reported with its line number in one BadInputError: a missing
    header, an empty or malformed id, an empty symbol or one with spaces,
    the same id mapped twice to different symbols.
    """
    expected = f"{id_column},yahoo_symbol"
    path = Path(path)
    if not path.exists():
        raise BadInputError(
            f"ticker overrides file {path} does not exist; create it (columns {expected}) "
            "or unset numerai.overrides_path",
            tag="invalid_overrides",
        )
    problems: list[str] = []
    mapping: dict[str, str] = {}
    first_line: dict[str, int] = {}
    raw = path.read_bytes()
    try:
        if b"\x00" in raw:
            raise ValueError("it holds NUL bytes")
        text = raw.decode("utf-8-sig")
    except ValueError as exc:  # UnicodeDecodeError included
        raise BadInputError(f"ticker overrides file {path} is not a UTF-8 text CSV ({exc}): is it the right "
                            f"file? It needs a header {expected}", tag="invalid_overrides") from None
    numbered = [(number, line) for number, line in enumerate(text.splitlines(), start=1)
                if line.strip() and not line.lstrip().startswith("#")]
    if not numbered:
        raise BadInputError(f"ticker overrides file {path} is empty; it needs a header {expected}",
                            tag="invalid_overrides")
    header_number, header_line = numbered[0]
    header = [h.strip() for h in next(csv.reader([header_line]))]
    missing = [c for c in (id_column, "yahoo_symbol") if c not in header]
    if missing:
        raise BadInputError(
            f"{path} line {header_number}: header {header} lacks {missing}; expected {expected}",
            tag="invalid_overrides",
        )
    ticker_at, symbol_at = header.index(id_column), header.index("yahoo_symbol")
    for number, line in numbered[1:]:
        row = [cell.strip() for cell in next(csv.reader([line]))]
        if len(row) != len(header):
            problems.append(f"line {number}: {len(row)} fields, expected {len(header)}")
            continue
        ticker, symbol = row[ticker_at], row[symbol_at]
        if not ticker:
            problems.append(f"line {number}: empty {id_column}")
            continue
        if id_column == "numerai_ticker" and split_numerai_ticker(pd.Series([ticker])).isna().any(axis=None):
            problems.append(f"line {number}: numerai_ticker {ticker!r} is not 'SYMBOL CC' "
                            "(CC = ISO-2 or Bloomberg country code)")
            continue
        if not symbol or any(ch.isspace() for ch in symbol):
            problems.append(f"line {number}: yahoo_symbol {symbol!r} for {ticker} is empty or contains spaces")
            continue
        if ticker in mapping and mapping[ticker] != symbol:
            problems.append(
                f"line {number}: {ticker} mapped to {symbol!r} but line {first_line[ticker]} maps it to {mapping[ticker]!r}"
            )
            continue
        mapping[ticker] = symbol
        first_line.setdefault(ticker, number)
    if problems:
        raise BadInputError(
            f"ticker overrides file {path} has {len(problems)} bad row(s): " + "; ".join(problems)
            + f". Fix those lines (columns {expected})",
            tag="invalid_overrides",
        )
    return mapping
