"""Your own features: tables and Python plug-ins, joined point-in-time onto the price panel.

A source is a long frame of ``(ticker, timestamp, value columns…)``: a CSV/Parquet table (a file or
a folder) or what a plug-in returns (a callable registered under the ``numerflow.features``
entry-point group, or named ``module:function``). Each source has an availability rule: naive
timestamps are in ``timezone``; a value may be used ``lag_hours`` after its timestamp.

The join (``asof_join``) is one vectorised ``merge_asof`` over the whole panel: every bar is stamped
at its date's close (``bar_close`` in ``bar_timezone``) and takes, per ticker, the latest value
whose availability time is at or before that stamp. So a value becomes usable on the first of the
ticker's bars at or after its availability time, a value dated after d never reaches d, a value
older than ``max_age_days`` is dropped, and missing stays NaN. Values are then ranked per date with
the same tie-kept rank as the built-in features (``tasks.model.features.rank_by_date``).

Bad sources (a missing column, duplicate (ticker, timestamp), unparseable timestamps, non-numeric
values, a ticker not in Numerai's format) raise BadInputError naming the file, line and column,
before anything trains. Docs: docs/features.md, "Bring your own data".
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import logging
import math
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from numerflow.tasks.core.config import FeatureSourceSettings, FeaturesSettings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.ranking import HeldRowRanks, rank_rows
from numerflow.tasks.core.store import file_sha256
from numerflow.tasks.model.features import DEFAULT_THREADS, FEATURE_NAMES, BarLayout, rank_by_date

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "numerflow.features"
OWN = "own"  # the built-in price features

# "AAPL US", "7203 JP", "BRK/B US": a symbol, one space, an ISO-2 country. Crypto: "BTC".
_TICKER_FORMATS = {"numerai_ticker": re.compile(r"^[A-Z0-9][A-Z0-9./&'_-]* [A-Z]{2}$"),
                   "symbol": re.compile(r"^[A-Z0-9][A-Z0-9._-]*$")}
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2}|UTC|GMT)\s*$", re.IGNORECASE)
_TABLE_SUFFIXES = (".csv", ".parquet")
# Per-date ranks go through the date × ticker grid when it has at most this many cells per row (as
# tasks/model/features.py does); sparser panels are ranked by sorting (rank_by_date).
_MAX_GRID_CELLS_PER_ROW = 4
_GRID_ALWAYS_CELLS = 1_000_000


@dataclass(frozen=True)
class Availability:
    """When a source's values become known: naive timestamps are in ``timezone``; a value is
    usable ``lag_hours`` after its timestamp; ``max_age_days`` after that it is stale (None: never)."""

    timezone: str = "UTC"
    lag_hours: float = 0.0
    max_age_days: float | None = 14.0

    def __post_init__(self) -> None:
        # The one check of every rule, from the settings or from a plug-in: a negative lag would use
        # values before they were published.
        if not isinstance(self.lag_hours, (int, float)) or not math.isfinite(self.lag_hours) or self.lag_hours < 0:
            raise BadInputError(f"Availability(lag_hours={self.lag_hours!r}) is not a lag: a value can be used at its "
                                "timestamp at the earliest; give lag_hours >= 0 (0 = usable when published)",
                                tag="invalid_feature_source")
        if self.max_age_days is not None and not (isinstance(self.max_age_days, (int, float))
                                                  and math.isfinite(self.max_age_days) and self.max_age_days > 0):
            raise BadInputError(f"Availability(max_age_days={self.max_age_days!r}) must be a number of days > 0, or "
                                "None to hold a value until the next one", tag="invalid_feature_source")


@dataclass(frozen=True)
class PluginContext:
    """What a plug-in gets: the price panel (``ticker, date, …``; None when only its fingerprint is
    asked), the bar dates, its options, the data dir, the price store's name and the features settings."""

    prices: pd.DataFrame | None
    dates: pd.DatetimeIndex | None
    options: dict[str, Any]
    data_dir: Path
    price_source: str
    settings: FeaturesSettings


@dataclass
class PluginOutput:
    """A plug-in's result: a long frame ``ticker, timestamp, values…`` and its availability rule
    (None: the source's configured one)."""

    frame: pd.DataFrame
    availability: Availability | None = None


@dataclass
class LoadedSource:
    """A validated source: ``ticker`` (str), ``available_at`` (UTC datetime64), value columns (float64)."""

    name: str
    frame: pd.DataFrame
    max_age_days: float | None
    columns: list[str] = field(default_factory=list)

    @property
    def feature_names(self) -> list[str]:
        return [f"feature_{self.name}_{c}" for c in self.columns]


# ---------------------------------------------------------------- which sources


def selected_sources(settings: FeaturesSettings) -> tuple[bool, list[FeatureSourceSettings]]:
    """(own price features wanted, the sources to join). ``use`` None = own + every configured source;
    a name in ``use`` that no source declares is a plug-in of that name with default settings."""
    configured = {s.name: s for s in settings.sources}
    if len(configured) != len(settings.sources):
        raise BadInputError("features.sources has two sources of the same name; give each its own name",
                            tag="invalid_config")
    if settings.use is None:
        return True, list(settings.sources)
    chosen = []
    for name in dict.fromkeys(settings.use):
        if name == OWN:
            continue
        if name in configured:
            chosen.append(configured[name])
        elif re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
            chosen.append(FeatureSourceSettings(name=name, plugin=name))
        else:
            raise BadInputError(f"features.use: {name!r} is not a feature source name (lower-case letters, digits, "
                                "_); use own or a name from features.sources or the numerflow.features plug-ins",
                                tag="invalid_config")
    own = OWN in settings.use
    if not own and not chosen:
        raise BadInputError("features.use selects no features; use own and/or source names", tag="invalid_config")
    return own, chosen


def resolve_plugin(spec: str) -> Callable[..., Any]:
    """A plug-in callable: ``module:function``, or a name under the ``numerflow.features`` entry points.
    Any failure to load it (not only ImportError: its module may raise anything) is a BadInputError naming it."""
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            loaded = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise BadInputError(f"feature plug-in {spec!r} cannot be loaded ({type(exc).__name__}: {exc}); check "
                                "module:function", tag="invalid_config") from None
        except Exception as exc:  # noqa: BLE001 - the module's own code failed while importing
            raise BadInputError(f"feature plug-in {spec!r} failed while importing: {type(exc).__name__}: {exc}; "
                                "fix the plug-in's module or drop it from features", tag="feature_plugin_failed") from None
    else:
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == spec]
        if not found:
            names = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
            raise BadInputError(f"no feature plug-in {spec!r} in the {ENTRY_POINT_GROUP} entry points (installed: "
                                f"{names or 'none'}); install its package or name it as module:function",
                                tag="invalid_config")
        try:
            loaded = found[0].load()
        except Exception as exc:  # noqa: BLE001 - any failure of the installed package's import
            raise BadInputError(f"feature plug-in {spec!r} ({found[0].value}) failed while importing: "
                                f"{type(exc).__name__}: {exc}; fix or reinstall its package, or drop it from "
                                "features", tag="feature_plugin_failed") from None
    if not callable(loaded):
        raise BadInputError(f"feature plug-in {spec!r} is a {type(loaded).__name__}, not a function; name a "
                            "function that takes a PluginContext", tag="invalid_config")
    return loaded


def call_plugin(spec: str, function: Callable[..., Any], context: PluginContext, *, what: str = "") -> Any:
    """``function(context)``; anything it raises becomes a BadInputError naming the plug-in, the
    exception and its message (a plug-in is the user's code: its failure is input to fix)."""
    try:
        return function(context)
    except BadInputError as exc:
        raise BadInputError(f"feature plug-in {spec!r}{what}: {exc}", tag="feature_plugin_failed") from exc
    except Exception as exc:  # noqa: BLE001 - the user's code: name it, whatever it raised
        raise BadInputError(f"feature plug-in {spec!r}{what} raised {type(exc).__name__}: {exc}; fix the plug-in "
                            "or drop it from features", tag="feature_plugin_failed") from exc


def plugin_output(spec: str, out: Any) -> PluginOutput:
    """What a plug-in returned, checked: a DataFrame or a PluginOutput of one (with an Availability or None)."""
    if isinstance(out, pd.DataFrame):
        return PluginOutput(out)
    hint = "return a DataFrame (ticker, timestamp, values…) or PluginOutput(frame, Availability(...))"
    if not isinstance(out, PluginOutput):
        raise BadInputError(f"feature plug-in {spec!r} returned {type(out).__name__}"
                            f"{'' if out is None else ' ' + repr(out)[:60]}; {hint}", tag="feature_plugin_failed")
    if not isinstance(out.frame, pd.DataFrame):
        raise BadInputError(f"feature plug-in {spec!r} returned a PluginOutput whose frame is "
                            f"{type(out.frame).__name__}; {hint}", tag="feature_plugin_failed")
    if out.availability is not None and not isinstance(out.availability, Availability):
        raise BadInputError(f"feature plug-in {spec!r} returned availability {out.availability!r}; {hint}",
                            tag="feature_plugin_failed")
    return out


def check_sources(settings: FeaturesSettings) -> None:
    """What can be judged of the selected sources before any data moves: the selection itself, each
    table's files exist, each plug-in loads (BadInputError naming the first that does not)."""
    _, sources = selected_sources(settings)
    for source in sources:
        if (source.path is None) == (source.plugin is None):
            raise BadInputError(f"feature source {source.name!r}: set exactly one of path (a table) and plugin",
                                tag="invalid_config")
        if source.path is not None:
            _table_files(source)
        else:
            resolve_plugin(source.plugin or "")


# ---------------------------------------------------------------- fingerprints (the dataset snapshot id)


def sources_fingerprint(settings: FeaturesSettings, data_dir: Path, price_source: str) -> str | None:
    """A digest of everything the selected sources' values depend on: their settings, a table's files
    (name + sha256), a plug-in's module source and its own ``fingerprint(context)`` if it has one.
    None when the dataset is the built-in features alone (the snapshot id stays what it was)."""
    own, sources = selected_sources(settings)
    if own and not sources:
        return None
    digest = hashlib.sha256(json.dumps({"own": own, "bar": [settings.bar_close, settings.bar_timezone],
                                        "min_live_coverage": settings.min_live_coverage}).encode())
    for source in sources:
        digest.update(source.model_dump_json().encode())
        if source.path is not None:
            for path in _table_files(source):
                digest.update(f"{path.name}:{file_sha256(path)};".encode())
        if source.plugin is not None:
            plugin = resolve_plugin(source.plugin)
            try:
                digest.update(inspect.getsource(inspect.getmodule(plugin) or plugin).encode())
            except (OSError, TypeError):
                digest.update(repr(plugin).encode())
            fingerprint = getattr(plugin, "fingerprint", None)
            if callable(fingerprint):
                context = PluginContext(None, None, dict(source.options), Path(data_dir), price_source, settings)
                digest.update(str(call_plugin(source.plugin, fingerprint, context, what=".fingerprint")).encode())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------- loading and validation


def load_sources(settings: FeaturesSettings, prices: pd.DataFrame, data_dir: Path, price_source: str,
                 ticker_column: str = "numerai_ticker") -> list[LoadedSource]:
    """Every selected source read (or its plug-in run) and validated; BadInputError on the first problem."""
    _, sources = selected_sources(settings)
    loaded = []
    dates = pd.DatetimeIndex(pd.to_datetime(prices["date"]).unique()).sort_values() if sources else None
    check_sources(settings)
    for source in sources:
        rule = _source_rule(source)
        if source.path is not None:
            parts = [validate_source(read_table(path), str(path), source, rule, ticker_column)
                     for path in _table_files(source)]
            frame = pd.concat(parts, ignore_index=True)
            _check_duplicates(frame, f"feature source {source.name!r} ({source.path})")
        else:
            plugin = resolve_plugin(source.plugin or "")
            context = PluginContext(prices, dates, dict(source.options), Path(data_dir), price_source, settings)
            out = plugin_output(source.plugin or "", call_plugin(source.plugin or "", plugin, context))
            rule = out.availability or rule
            frame = validate_source(out.frame, f"plug-in {source.plugin!r}", source, rule, ticker_column,
                                    ticker_in="ticker" if "ticker" in out.frame.columns else None)
        values = [c for c in frame.columns if c not in ("ticker", "available_at")]
        loaded.append(LoadedSource(source.name, frame, rule.max_age_days, values))
    names = [n for s in loaded for n in s.feature_names]
    clash = sorted({n for n in names if names.count(n) > 1 or n in FEATURE_NAMES})
    if clash:
        raise BadInputError(f"feature names {clash} are given twice; rename the sources or columns", tag="invalid_config")
    return loaded


def _source_rule(source: FeatureSourceSettings) -> Availability:
    try:
        return Availability(source.timezone, source.lag_hours, source.max_age_days)
    except BadInputError as exc:
        raise BadInputError(f"feature source {source.name!r}: {str(exc).partition(': ')[2]}",
                            tag="invalid_config") from None


def _table_files(source: FeatureSourceSettings) -> list[Path]:
    path = Path(source.path or "")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _TABLE_SUFFIXES and not p.name.startswith("."))
    elif path.is_file():
        files = [path]
    else:
        raise BadInputError(f"feature source {source.name!r}: {path} does not exist; fix features.sources.path",
                            tag="invalid_feature_source")
    if not files:
        raise BadInputError(f"feature source {source.name!r}: no .csv or .parquet files in {path}",
                            tag="invalid_feature_source")
    return files


def read_table(path: Path) -> pd.DataFrame:
    """A CSV (every column as text, so validation sees what the file says) or Parquet table."""
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        return pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
        raise BadInputError(f"{path}: cannot be read as {path.suffix[1:]} ({exc})", tag="invalid_feature_source") from None


def _line(where: str, index: int) -> str:
    # CSV: line 1 is the header; other tables: the row number.
    return f"{where} line {index + 2}" if where.lower().endswith(".csv") else f"{where} row {index + 1}"


def validate_source(frame: pd.DataFrame, where: str, source: FeatureSourceSettings, rule: Availability,
                    ticker_column: str, ticker_in: str | None = None) -> pd.DataFrame:
    """Checked, normalised source: ``ticker``, ``available_at`` (UTC), float64 value columns."""
    frame = frame.reset_index(drop=True)
    tcol = ticker_in or (source.ticker_column if source.path is not None else ticker_column)
    if tcol not in frame.columns and "ticker" in frame.columns and source.path is None:
        tcol = "ticker"
    tscol = source.timestamp_column if source.path is not None else "timestamp"
    for column in (tcol, tscol, *source.value_columns):
        if column not in frame.columns:
            raise BadInputError(f"{where}: no column {column!r} (columns: {list(frame.columns)}); the table needs "
                                f"{tcol}, {tscol} and value columns", tag="invalid_feature_source")
    values = source.value_columns or [c for c in frame.columns if c not in (tcol, tscol)]
    if not values:
        raise BadInputError(f"{where}: no value columns besides {tcol} and {tscol}", tag="invalid_feature_source")
    tickers = frame[tcol].astype("string")
    pattern = _TICKER_FORMATS["symbol" if tcol == "symbol" else "numerai_ticker"]
    bad = ~tickers.fillna("").str.fullmatch(pattern).astype(bool)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise BadInputError(f"{_line(where, i)}, column {tcol!r}: {tickers.iloc[i]!r} is not a ticker in Numerai's "
                            f"format ({'BTC' if tcol == 'symbol' else 'AAPL US: symbol, space, country code'}); "
                            f"{int(bad.sum())} rows are like this", tag="invalid_feature_source")
    available = _timestamps(frame[tscol], where, tscol, rule.timezone, source) + pd.Timedelta(hours=rule.lag_hours)
    out = pd.DataFrame({"ticker": tickers.astype(str).to_numpy(), "available_at": available})
    for column in values:
        raw = frame[column]
        numbers = pd.to_numeric(raw, errors="coerce").astype("float64") if raw.dtype != bool else raw.astype("float64")
        wrong = numbers.isna().to_numpy() & raw.notna().to_numpy()
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            raise BadInputError(f"{_line(where, i)}, column {column!r}: {raw.iloc[i]!r} is not a number "
                                f"({int(wrong.sum())} such values); leave a missing value empty",
                                tag="invalid_feature_source")
        out[str(column)] = numbers.to_numpy()
    out.attrs["where"] = where
    _check_duplicates(out, where, frame[tscol])
    return out


def _timestamps(raw: pd.Series, where: str, column: str, timezone: str,
                source: FeatureSourceSettings | None = None) -> np.ndarray:
    """UTC datetime64[ns] of each row; naive values are in ``timezone``. Unparseable → BadInputError.

    Text is never guessed: ISO 8601 and forms naming the month are read as they are; a numeric
    day/month date (04/07/2025) needs the source's ``dayfirst`` (or a ``timestamp_format``), since
    read either way it moves values by months, possibly before they were published."""
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        parsed = raw.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_any_dtype(raw.dtype):
        parsed = _localize(raw, timezone, where)
    else:
        text = raw.astype("string").str.strip()
        fmt = source.timestamp_format if source is not None else None
        if fmt:
            parsed = _formatted(text, fmt, where, column, timezone)
        else:
            text = day_month_as_iso(text, where, column, source.dayfirst if source is not None else None)
            aware = text.str.contains(_OFFSET, na=False).to_numpy()
            parsed = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
            if aware.any():
                parsed[aware] = pd.to_datetime(text[aware], errors="coerce", utc=True, format="mixed")
            if (~aware).any():
                naive = pd.to_datetime(text[~aware], errors="coerce", format="mixed")
                parsed[~aware] = _localize(naive, timezone, where)
        missing = parsed.isna().to_numpy()
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            fix = (f"match timestamp_format {fmt!r} or fix the source's timestamp_format" if fmt else
                   "write ISO 8601 (2024-03-01 or 2024-03-01T16:30:00-05:00)")
            raise BadInputError(f"{_line(where, i)}, column {column!r}: {raw.iloc[i]!r} is not a date or date-time "
                                f"({int(missing.sum())} such rows); {fix}", tag="invalid_feature_source")
    if parsed.isna().any():
        i = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise BadInputError(f"{_line(where, i)}, column {column!r}: no timestamp", tag="invalid_feature_source")
    return parsed.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[ns]")


# A numeric date with the day and the month in an order only the writer knows: 04/07/2025, 4.7.2025, 04-07-25.
_DAY_MONTH = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4}|\d{2})(?!\d)")


def day_month_as_iso(text: pd.Series, where: str, column: str, dayfirst: bool | None, fix: str | None = None
                     ) -> pd.Series:
    """``text`` with every numeric day/month date rewritten as ISO (yyyy-mm-dd, the rest of the value
    kept), in the order ``dayfirst`` says. Refused: such dates without ``dayfirst`` (naming which order
    the column's own rows point to, and ``fix``), two-digit years, and a column whose rows contradict the order."""
    parts = text.str.extract(_DAY_MONTH)
    found = parts[0].notna().to_numpy()
    if not found.any():
        return text
    first = pd.to_numeric(parts[0], errors="coerce").to_numpy()
    second = pd.to_numeric(parts[1], errors="coerce").to_numpy()
    day_first = found & (first > 12)  # only a day can be above 12
    month_first = found & (second > 12)
    short = found & (parts[2].str.len() == 2).to_numpy()

    def row(mask: np.ndarray) -> tuple[str, Any]:
        i = int(np.flatnonzero(mask)[0])
        return _line(where, i), text.iloc[i]

    if short.any():
        line, value = row(short)
        raise BadInputError(f"{line}, column {column!r}: {value!r} has a two-digit year; write the year in four "
                            "digits, or ISO 8601 (2025-07-04)", tag="invalid_feature_source")
    if day_first.any() and month_first.any():
        (line_d, value_d), (line_m, value_m) = row(day_first), row(month_first)
        line_d, line_m = (line.removeprefix(f"{where} ") for line in (line_d, line_m))
        raise BadInputError(f"{where}: column {column!r} mixes date orders: {line_d} has {value_d!r} (day first) and "
                            f"{line_m} has {value_m!r} (month first); write one order (ISO 8601 is safest: "
                            "2025-07-04)", tag="invalid_feature_source")
    if dayfirst is None:
        line, value = row(found)
        seen = ("its rows read day first (e.g. " + repr(row(day_first)[1]) + ")" if day_first.any() else
                "its rows read month first (e.g. " + repr(row(month_first)[1]) + ")" if month_first.any() else
                "no row tells which")
        fix = fix or ("set dayfirst = true (or false) or timestamp_format in this [[features.sources]] entry, "
                      "or write ISO 8601 (2025-07-04)")
        raise BadInputError(f"{line}, column {column!r}: {value!r} is ambiguous (day/month or month/day; {seen}); "
                            f"{fix}", tag="ambiguous_dates")
    against = month_first if dayfirst else day_first
    if against.any():
        line, value = row(against)
        raise BadInputError(f"{line}, column {column!r}: {value!r} cannot be {'day' if dayfirst else 'month'} first "
                            f"as dayfirst = {str(dayfirst).lower()} says; fix the row or the setting",
                            tag="invalid_feature_source")
    day, month = (parts[0], parts[1]) if dayfirst else (parts[1], parts[0])
    iso = parts[2] + "-" + month.str.zfill(2) + "-" + day.str.zfill(2)
    rest = text.str.replace(_DAY_MONTH, "", regex=True)
    return text.where(~found, iso + rest)


def _formatted(text: pd.Series, fmt: str, where: str, column: str, timezone: str) -> pd.Series:
    """``text`` parsed with the source's strftime ``timestamp_format`` (UTC)."""
    try:
        parsed = pd.to_datetime(text, errors="coerce", format=fmt)
    except (ValueError, TypeError) as exc:  # a format pandas cannot use at all, or mixed offsets
        raise BadInputError(f"{where}: timestamp_format {fmt!r} cannot read column {column!r} ({exc})",
                            tag="invalid_config") from None
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        return parsed.dt.tz_convert("UTC")
    return _localize(parsed, timezone, where)


def _localize(naive: pd.Series, timezone: str, where: str) -> pd.Series:
    try:
        return naive.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="shift_forward").dt.tz_convert("UTC")
    except Exception as exc:  # noqa: BLE001 - an unknown zone name
        raise BadInputError(f"{where}: time zone {timezone!r} is not an IANA zone ({exc})", tag="invalid_config") from None


def _check_duplicates(frame: pd.DataFrame, where: str, raw_timestamps: pd.Series | None = None) -> None:
    dup = frame.duplicated(["ticker", "available_at"], keep=False).to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        when = raw_timestamps.iloc[i] if raw_timestamps is not None else frame["available_at"].iloc[i]
        raise BadInputError(f"{_line(where, i) if raw_timestamps is not None else where}: duplicate (ticker, timestamp) "
                            f"({frame['ticker'].iloc[i]!r}, {when!r}); {int(dup.sum())} rows share a (ticker, "
                            "timestamp): keep one value per ticker and time", tag="invalid_feature_source")


# ---------------------------------------------------------------- the point-in-time join


def bar_stamps(dates: pd.Series, bar_close: str, bar_timezone: str) -> np.ndarray:
    """UTC datetime64[ns] of each bar: its date at ``bar_close`` in ``bar_timezone`` (computed per unique date)."""
    codes, unique = pd.factorize(pd.to_datetime(dates).to_numpy(), sort=True)
    hours, minutes = (int(x) for x in bar_close.split(":"))
    local = pd.DatetimeIndex(unique).normalize() + pd.Timedelta(hours=hours, minutes=minutes)
    stamps = local.tz_localize(bar_timezone, ambiguous=False, nonexistent="shift_forward").tz_convert("UTC")
    return stamps.tz_localize(None).to_numpy().astype("datetime64[ns]")[codes]


def _ticker_codes(tickers: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer code of each row's ticker and the tickers by code (a categorical column: its own codes)."""
    if isinstance(tickers.dtype, pd.CategoricalDtype):
        return tickers.cat.codes.to_numpy().astype(np.int64), pd.Index(tickers.cat.categories.astype(str))
    codes, uniques = pd.factorize(tickers)
    return codes.astype(np.int64), pd.Index(np.asarray(uniques).astype(str))


def _codes_in(tickers: pd.Series, categories: pd.Index) -> np.ndarray:
    """Position in ``categories`` of each ticker (-1: not there). The strings are hashed once each by
    ``factorize`` and only the distinct ones are looked up (~5x faster than ``get_indexer`` on millions of rows)."""
    codes, uniques = pd.factorize(tickers)
    return categories.get_indexer(np.asarray(uniques).astype(str))[codes]


def asof_join(keys: pd.DataFrame, source: LoadedSource, bar_close: str = "16:00",
              bar_timezone: str = "America/New_York", ticker_codes: tuple[np.ndarray, pd.Index] | None = None
              ) -> pd.DataFrame:
    """Raw source values for every row of ``keys`` (``ticker, date``, any order): per ticker the latest
    value whose ``available_at`` ≤ the bar's stamp and, with ``max_age_days``, not older than that. NaN otherwise.
    One ``merge_asof`` over the panel (no per-ticker loop). Columns: ``source.feature_names``, keys' index order."""
    n = len(keys)
    stamps = bar_stamps(keys["date"], bar_close, bar_timezone)
    left_code, categories = ticker_codes if ticker_codes is not None else _ticker_codes(keys["ticker"])
    right = source.frame
    right_code = _codes_in(right["ticker"], categories)
    keep = right_code >= 0  # tickers without bars cannot reach the panel
    order = None if n < 2 or bool((stamps[1:] >= stamps[:-1]).all()) else np.argsort(stamps, kind="stable")
    left = pd.DataFrame({"code": left_code if order is None else left_code[order],
                         "at": stamps if order is None else stamps[order]})
    rhs = pd.DataFrame({"code": right_code[keep], "at": right["available_at"].to_numpy()[keep]})
    for column, name in zip(source.columns, source.feature_names, strict=True):
        rhs[name] = right[column].to_numpy()[keep]
    rhs = rhs.sort_values("at", kind="stable")
    tolerance = pd.Timedelta(days=source.max_age_days) if source.max_age_days is not None else None
    joined = pd.merge_asof(left, rhs, on="at", by="code", direction="backward", allow_exact_matches=True,
                           tolerance=tolerance)
    values = joined[source.feature_names].to_numpy(dtype="float64")
    if order is not None:
        out = np.empty((n, len(source.columns)))
        out[order] = values
        values = out
    return pd.DataFrame(values, columns=source.feature_names, index=keys.index)


@dataclass
class _PanelGrid:
    """Where each dataset row lives in the dense ``date × ticker`` grid: ``date_code`` (dense, non-decreasing),
    ``ticker_code`` (codes into ``tickers``), ``dates`` (the grid's row dates)."""

    date_code: np.ndarray
    ticker_code: np.ndarray
    tickers: pd.Index
    dates: pd.DatetimeIndex

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.dates), len(self.tickers)


def _panel_grid(dataset: pd.DataFrame, layout: BarLayout | None) -> _PanelGrid:
    """The dataset's grid coordinates. From the features' ``layout`` when given (its rows are the dataset's:
    no hashing of 20M dates or tickers), else from the date-sorted rows and the tickers' codes."""
    if layout is not None and layout.date_cell is not None and len(layout.rows) == len(dataset):
        date_code = layout.date_code
        ticker_code = layout.date_cell % layout.n_tickers
        first = np.full(layout.n_tickers, -1, dtype=np.int64)
        first[ticker_code[::-1]] = np.arange(len(ticker_code) - 1, -1, -1)  # first row of each ticker
        names = np.full(layout.n_tickers, None, dtype=object)  # a ticker without a valid bar matches nothing
        names[first >= 0] = np.asarray(dataset["ticker"].take(first[first >= 0])).astype(str)
        tickers = pd.Index(names)
    else:
        dates = pd.to_datetime(dataset["date"]).to_numpy()
        change = dates[1:] != dates[:-1]
        if len(dates) > 1 and (dates[1:] < dates[:-1]).any():
            raise ValueError("add_source_features needs the dataset sorted by date")
        date_code = np.r_[0, np.cumsum(change)].astype(np.int64) if len(dates) else np.zeros(0, np.int64)
        ticker_code, tickers = _ticker_codes(dataset["ticker"])
    starts = np.flatnonzero(np.r_[True, date_code[1:] != date_code[:-1]]) if len(date_code) else np.zeros(0, int)
    dates = pd.DatetimeIndex(pd.to_datetime(dataset["date"].take(starts)).to_numpy())
    return _PanelGrid(np.asarray(date_code), np.asarray(ticker_code, dtype=np.int64), tickers, dates)


def _grid_rows(source: LoadedSource, grid: _PanelGrid, date_stamps: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``asof_join`` through the dense ``date × ticker`` grid (same result, a few array passes). Each source row
    goes to the first date whose close is at or after its availability time; a running maximum of row numbers
    (rows sorted by availability) along each ticker's column carries it to that ticker's next dates; a value
    older than ``max_age_days`` gets -1 (none).

    Returns (the source rows in availability order, the DISTINCT date rows of that grid of row numbers: a held
    value repeats its row on the dates when no ticker's value changed, and the row number in them of each
    date). Which tickers have a bar on a date is applied by the ranking (``HeldRowRanks``)."""
    n_dates, n_tickers = grid.shape
    frame = source.frame
    ticker = _codes_in(frame["ticker"], grid.tickers)
    available = frame["available_at"].to_numpy().astype("datetime64[ns]")
    first = np.searchsorted(date_stamps, available, side="left")  # first date stamped at or after
    keep = (ticker >= 0) & (first < n_dates)
    kept = np.flatnonzero(keep)
    # Availability order; ties by ticker, so the gathers below read each date's rows nearly in sequence.
    order = kept[np.lexsort((ticker[kept], available[kept]))]
    latest = np.empty(n_dates * n_tickers, dtype=np.int32 if len(order) < 2**31 - 1 else np.int64)
    latest.fill(-1)
    # Rows in availability order: where two land in one cell, the later assignment (the later-available
    # row) is the one kept, as tasks/model/features.py's grid layout relies on for its slots.
    latest[first[order] * n_tickers + ticker[order]] = np.arange(len(order), dtype=latest.dtype)
    by_date: np.ndarray = latest.reshape(n_dates, n_tickers)
    np.maximum.accumulate(by_date, axis=0, out=by_date)
    if source.max_age_days is not None and len(order):
        limit = np.timedelta64(int(source.max_age_days * 86_400e9), "ns")
        held = available[order]
        step = max(1, (1 << 20) // max(n_tickers, 1))
        for start in range(0, n_dates, step):  # blocks of dates: small temporaries
            part = by_date[start : start + step]
            stale = (part >= 0) & (date_stamps[start : start + len(part), None] - held[np.maximum(part, 0)] > limit)
            part[stale] = -1
    changed = np.ones(n_dates, dtype=bool)
    if n_dates > 1:
        changed[1:] = (by_date[1:] != by_date[:-1]).any(axis=1)
    return order, by_date[changed], (np.cumsum(changed) - 1).astype(np.int64)


def check_joins(source: LoadedSource, tickers: pd.Index, dates: pd.DatetimeIndex, date_stamps: np.ndarray) -> None:
    """BadInputError when no row of ``source`` can reach the panel (its tickers have no bars, or every
    value becomes usable after the last bar): such a feature would be empty, so the source is wrong."""
    frame = source.frame
    if not len(frame) or not len(dates):
        return
    known = _codes_in(frame["ticker"], tickers) >= 0
    in_time = frame["available_at"].to_numpy() <= date_stamps.max()
    if (known & in_time).any():
        return
    where = frame.attrs.get("where", f"feature source {source.name!r}")
    problems = []
    if (~known).any():
        example = frame["ticker"].to_numpy()[~known][0]
        problems.append(f"{int((~known).sum())} have a ticker with no price bars (e.g. {example!r}: check the "
                        "ticker column holds this universe's Numerai tickers)")
    if (known & ~in_time).any():
        first = pd.Timestamp(frame["available_at"].to_numpy()[known & ~in_time].min())
        problems.append(f"{int((known & ~in_time).sum())} become usable only after the last bar ({dates[-1].date()}; "
                        f"the earliest at {first} UTC: check the timestamps, their timezone and lag_hours)")
    raise BadInputError(f"feature source {source.name!r} ({where}): none of its {len(frame)} rows joins the price "
                        f"panel: {'; '.join(problems)}", tag="feature_source_unjoined")


def add_source_features(dataset: pd.DataFrame, sources: list[LoadedSource], bar_close: str = "16:00",
                        bar_timezone: str = "America/New_York", layout: BarLayout | None = None,
                        threads: int = DEFAULT_THREADS) -> pd.DataFrame:
    """``dataset`` (sorted by date, ticker) with every source's values joined point-in-time and ranked per
    date like the built-in features (float32 in (0, 1), NaN kept). ``layout``: the built-in features' bar
    layout of these same rows, if the caller has it (reuses its per-date grid coordinates).

    Dense panels go through the ``date × ticker`` grid (``_grid_rows``; each distinct row of held values is
    sorted once and each date ranked from it by ``tasks.core.ranking.HeldRowRanks``, on ``threads`` columns
    at once, like the built-in features); sparse
    ones through ``asof_join`` and ``rank_by_date``. The result does not depend on ``threads``."""
    if not sources:
        return dataset
    grid = _panel_grid(dataset, layout)
    n_dates, n_tickers = grid.shape
    dense = n_dates * n_tickers <= _MAX_GRID_CELLS_PER_ROW * len(dataset) + _GRID_ALWAYS_CELLS
    names = [name for source in sources for name in source.feature_names]
    block = np.empty((len(names), len(dataset)), dtype=np.float32)  # the new columns' one float block
    jobs: list[Callable[[], None]] = []
    cell = grid.date_code.astype(np.int64) * n_tickers + grid.ticker_code if dense else None
    date_stamps = bar_stamps(pd.Series(grid.dates), bar_close, bar_timezone)
    for source in sources:
        check_joins(source, grid.tickers, grid.dates, date_stamps)
    if cell is not None:
        present = np.zeros((n_dates, n_tickers), dtype=bool)  # the cells with a bar: they are ranked
        present.ravel()[cell] = True
        date_rows = np.searchsorted(grid.date_code, np.arange(n_dates + 1))  # first dataset row of each date
        block_dates = max(1, (1 << 17) // max(n_tickers, 1))
    for source in sources:
        if cell is None:
            raw = asof_join(dataset[["ticker", "date"]], source, bar_close, bar_timezone,
                            ticker_codes=(grid.ticker_code, grid.tickers))
            for name in source.feature_names:
                block[names.index(name)] = rank_by_date(raw[name].to_numpy(), grid.date_code)
            continue
        order, states, state_of_date = _grid_rows(source, grid, date_stamps)
        if not len(order):  # no values at all (an empty source): the feature is missing everywhere
            for name in source.feature_names:
                block[names.index(name)] = np.nan
            continue
        none = states < 0
        rows = np.where(none, 0, states)

        def rank_column(column: str, target: np.ndarray, order=order, rows=rows, none=none,
                        state_of_date=state_of_date, frame=source.frame) -> None:
            values = np.take(frame[column].to_numpy(dtype="float64")[order], rows)
            values[none] = np.nan
            # Values held over several dates: sort each distinct row once. Else (a source updated about daily)
            # every date's row is sorted anyway: rank it directly.
            ranker = HeldRowRanks(values) if 2 * len(values) <= n_dates else None
            scratch = np.empty((block_dates, n_tickers))
            for d0 in range(0, n_dates, block_dates):  # blocks of dates: their rows are contiguous
                d1 = min(d0 + block_dates, n_dates)
                if ranker is not None:
                    ranked, columns = ranker.rank(state_of_date[d0:d1], present[d0:d1])
                    np.put_along_axis(scratch[: d1 - d0], columns, ranked, axis=1)
                else:
                    day_rows = values[state_of_date[d0:d1]]
                    day_rows[~present[d0:d1]] = np.nan
                    rank_rows(day_rows, out=scratch[: d1 - d0])
                r0, r1 = date_rows[d0], date_rows[d1]
                target[r0:r1] = scratch.ravel()[cell[r0:r1] - d0 * n_tickers]  # float64 ranks cast to float32

        for column, name in zip(source.columns, source.feature_names, strict=True):
            jobs.append(partial(rank_column, column, block[names.index(name)]))
    if threads <= 1 or len(jobs) <= 1:
        for job in jobs:
            job()
    else:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="source-ranks") as pool:
            for done in [pool.submit(job) for job in jobs]:
                done.result()
    front = [c for c in dataset.columns if c.startswith("feature_")]
    rest = [c for c in dataset.columns if not c.startswith("feature_")]
    added = pd.DataFrame(block.T, columns=names, index=dataset.index, copy=False)
    return pd.concat([dataset[rest[:2] + front], added, dataset[rest[2:]]], axis=1)


# ---------------------------------------------------------------- diagnostics


def coverage(dataset: pd.DataFrame, feature_names: list[str]) -> pd.DataFrame:
    """Share of the tickers with a bar on each date that have a value: one row per date, one column per feature."""
    dates = pd.to_datetime(dataset["date"]).to_numpy()
    codes, unique = pd.factorize(dates, sort=True)
    counts = np.bincount(codes, minlength=len(unique)).astype("float64")
    shares = {name: np.bincount(codes, weights=dataset[name].notna().to_numpy().astype("float64"),
                                minlength=len(unique)) / counts for name in feature_names}
    return pd.DataFrame(shares, index=pd.DatetimeIndex(unique, name="date"))


def coverage_report(per_date: pd.DataFrame, source_features: list[str], min_live_coverage: float) -> dict[str, Any]:
    """Per feature: mean coverage, coverage on the live (last) date, and whether it is left out of the model
    (a source feature below ``min_live_coverage`` on the live date)."""
    live = per_date.iloc[-1] if len(per_date) else pd.Series(dtype="float64")
    rows = {}
    for name in per_date.columns:
        low = name in source_features and float(live.get(name, 0.0)) < min_live_coverage
        rows[name] = {"mean_coverage": round(float(per_date[name].mean()), 4),
                      "live_coverage": round(float(live.get(name, 0.0)), 4), "excluded": bool(low)}
    excluded = [n for n, r in rows.items() if r["excluded"]]
    return {"live_date": str(per_date.index[-1].date()) if len(per_date) else None,
            "min_live_coverage": min_live_coverage, "features": rows, "excluded": excluded}
