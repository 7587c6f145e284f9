"""Bring-your-own prices: a vendor's CSV or Parquet files, as they come (docs/prices.md).

Layouts: numerflow's own columns, yfinance's CSV (``Date, Open, High, Low, Close, Adj Close,
Volume``, with or without a ``Ticker``/``Name`` column) and the common synonyms are recognised
by their headers; anything else is described by a ``[files]`` mapping (``FileLayout``). The
ticker comes from a column or from the file name (``{ticker}_data.csv``); bare symbols get a
default country (``AAPL`` → ``AAPL US``, ``BRK.B`` → ``BRK/B US``).

Vendor quirks cost a bar or a ticker, never the folder (``prepare_bars``): bars with a bad
date, a missing or non-positive price, a weekend date or a date after today are excluded with a
reason and counted; duplicate days are kept once when their closes agree (counted) and fail that
ticker when they do not (naming the file, the date and both values). A file that cannot be read
fails its tickers; a folder with no usable file at all is one ``invalid_price_files`` error.

Day after day, only changed files are read: each file's size, mtime and content hash are
remembered in the ingest folder, and a ticker whose files are unchanged since its bars were
stored is answered "nothing new" without parsing anything (``FilePriceSource``). Files are read
with pyarrow's CSV reader on a thread pool (it releases the GIL).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pandas.api.types import union_categoricals

from numerflow.tasks.core.config import FilesSettings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.schemas import PRICE_COLUMNS, as_strings
from numerflow.tasks.core.store import read_json, write_json
from numerflow.tasks.prices.quality import all_excluded_error
from numerflow.tasks.prices.sources.outcomes import ERROR, NO_DATA, OK, FetchOutcome, FetchRequest
from numerflow.tasks.prices.tickers import COUNTRY_SUFFIXES

SUFFIXES = {".csv", ".parquet", ".pq"}
#: Our column → header spellings recognised without a mapping (compared lower-case, letters and digits only).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "ticker": ("ticker", "numeraiticker", "symbol", "name"),
    "date": ("date", "datetime", "timestamp"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close",),
    "adj_close": ("adjclose", "adjustedclose"),
    "volume": ("volume",),
    "currency": ("currency",),
    "timezone": ("timezone",),
}
MAPPABLE = list(SYNONYMS)
NUMERIC = ["open", "high", "low", "close", "adj_close", "volume"]
PRICES = ["open", "high", "low", "close", "adj_close"]

#: Why a bar is excluded, in the order they are checked (the first that applies is the reason).
EXCLUSIONS = ["no_ticker", "unparseable_date", "not_a_number", "unknown_timezone", "future_date", "weekend",
              "missing_close", "non_positive_price"]
_EXCLUSION_TEXT = {
    "no_ticker": "rows with an empty ticker",
    "unparseable_date": "dates that cannot be read (use YYYY-MM-DD)",
    "not_a_number": "prices that are not numbers",
    "unknown_timezone": "a timezone value that is not an IANA name (e.g. America/New_York)",
    "future_date": "bars dated after today where they trade",
    "weekend": "bars on a Saturday or Sunday (the exchange does not trade)",
    "missing_close": "a missing close or adjusted close",
    "non_positive_price": "a zero or negative price",
}
#: Where the calendar is furthest ahead (UTC+14): no exchange anywhere has reached a later date.
_EARLIEST_ZONE = "Pacific/Kiritimati"
#: Yahoo suffix → country, to read yfinance symbols of non-US listings (``VOD.L`` → ``VOD GB``).
_SUFFIX_COUNTRY = {suffix: country for country, suffixes in COUNTRY_SUFFIXES.items() for suffix in suffixes if suffix}


@dataclass(frozen=True)
class FileLayout:
    """How to read a vendor's files (``FilesSettings`` fills it from ``[files]``).

    ``columns``: our column → the vendor's header (unset columns are recognised by SYNONYMS);
    ``filename_pattern``: take the ticker from the file name (``{ticker}_data.csv``) instead of a
    column; ``country``: appended to bare symbols (None keeps them as they are);
    ``trades_weekends``: crypto markets (weekend bars are real)."""

    columns: Mapping[str, str] = field(default_factory=dict)
    filename_pattern: str | None = None
    country: str | None = "US"
    trades_weekends: bool = False
    dayfirst: bool | None = None  # the order of numeric day/month dates (04/07/2025); None: such dates refused

    @classmethod
    def from_settings(cls, files: FilesSettings, tournament: str = "signals") -> FileLayout:
        """The ``[files]`` settings' layout; crypto trades every day and has no countries."""
        columns = {k: v for k, v in files.columns.model_dump().items() if v}
        crypto = tournament == "crypto"
        return cls(columns=columns, filename_pattern=files.filename_pattern, country=None if crypto else files.country,
                   trades_weekends=crypto, dayfirst=files.dayfirst)

    def pattern(self) -> re.Pattern[str] | None:
        if not self.filename_pattern:
            return None
        if self.filename_pattern.count("{ticker}") != 1:
            raise BadInputError(f"files.filename_pattern {self.filename_pattern!r} must contain {{ticker}} once, "
                                "e.g. \"{ticker}_data.csv\"", tag="invalid_config")
        head, tail = (re.escape(part) for part in self.filename_pattern.split("{ticker}"))
        return re.compile(f"{head}(?P<ticker>.+?){tail}", re.IGNORECASE)


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _spell(symbol: str, country: str | None) -> str:
    symbol = symbol.strip()
    if not country or " " in symbol or not symbol:
        return symbol
    base, dot, suffix = symbol.rpartition(".")
    # A Yahoo exchange suffix (VOD.L, 7203.T, 0005.HK); one-letter ones other than .L/.T are share classes (BRK.B).
    if dot and f".{suffix.upper()}" in _SUFFIX_COUNTRY and (len(suffix) > 1 or suffix.upper() in ("L", "T")):
        market = _SUFFIX_COUNTRY["." + suffix.upper()]
        if market == "HK":  # Yahoo pads Hong Kong codes to 4 digits (0001.HK); Numerai does not (1 HK)
            base = base.lstrip("0") or "0"
        return f"{base.replace('.', '/').replace('-', '/')} {market}"
    return f"{symbol.replace('.', '/').replace('-', '/')} {country}"


def numerai_symbols(symbols: pd.Series, country: str | None) -> pd.Series:
    """Vendor symbols as Numerai spells them: ``AAPL`` → ``AAPL US``, ``BRK.B``/``BRK-B`` →
    ``BRK/B US``, yfinance's ``VOD.L`` → ``VOD GB`` (surrounding spaces removed). Symbols with a
    space (already ``AAPL US``) and every symbol when ``country`` is None stay as they are.

    Spelled once per distinct symbol; the result is categorical with its categories in
    lexical order (so sorting by the codes sorts by ticker)."""
    codes, uniques = pd.factorize(symbols, use_na_sentinel=True)
    spelled = np.array([_spell(str(u), country) for u in uniques], dtype=object)
    categories, inverse = np.unique(spelled, return_inverse=True) if len(spelled) else (spelled, np.array([], int))
    new_codes = np.where(codes >= 0, inverse[np.maximum(codes, 0)] if len(spelled) else -1, -1)
    return pd.Series(pd.Categorical.from_codes(new_codes, categories=pd.Index(categories, dtype=object)),
                     index=symbols.index, name=symbols.name)


def price_files(path: Path) -> list[Path]:
    """The price files of ``files.path`` (a file, or every .csv/.parquet under a folder); BadInputError naming
    the fix when there are none."""
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()
                       and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts))
        if not found:
            raise BadInputError(f"no .csv or .parquet files under {path}: point files.path at your price files "
                                "(docs/prices.md)", tag="invalid_price_files")
        return found
    if not path.exists():
        raise BadInputError(f"price file {path} does not exist; set files.path to your CSV/Parquet file or folder",
                            tag="invalid_price_files")
    if path.suffix.lower() not in SUFFIXES:
        raise BadInputError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet", tag="invalid_price_files")
    return [path]


# ------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Header:
    """What a file's header says: its columns (ours → theirs), delimiter, and where its ticker comes from."""

    columns: dict[str, str]
    delimiter: str = ","
    decimal: str = "."
    ticker_from_name: str | None = None  # the ticker, when the file name gives it
    dayfirst: bool | None = None  # FileLayout.dayfirst
    name: str = ""  # the file's name, for messages


def _read_header(path: Path, layout: FileLayout, head: bytes | None = None) -> _Header:
    """The file's layout from its first line (Parquet: its schema); ValueError says why it is unusable.
    ``head``: the file's first bytes when the caller has read them (at least its first line)."""
    if path.suffix.lower() == ".csv":
        if head is None:
            with path.open("rb") as handle:
                head = handle.read(65536)
        if b"\x00" in head:
            raise ValueError("binary content, not a text CSV")
        try:
            text = head.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
                raise ValueError("not UTF-8 text (save it as UTF-8 CSV)") from None
            text = head[: exc.start].decode("utf-8-sig")
        lines = text.splitlines()
        if not lines or not lines[0].strip():
            raise ValueError("empty file (no header line)")
        header = lines[0]
        # European exports: ';' between fields and ',' as the decimal mark.
        delimiter = ";" if header.count(";") > header.count(",") else ","
        names = [c.strip().strip('"').strip() for c in header.split(delimiter)]
        decimal = "," if delimiter == ";" else "."
    else:
        names = pq.read_schema(path).names
        delimiter, decimal = ",", "."
    by_key = {_key(n): n for n in names}
    columns: dict[str, str] = {}
    for ours in MAPPABLE:
        wanted = layout.columns.get(ours)
        if wanted:
            if wanted not in names and _key(wanted) not in by_key:
                raise ValueError(f"no column {wanted!r} (files.columns.{ours}); its columns are {names}")
            columns[ours] = wanted if wanted in names else by_key[_key(wanted)]
            continue
        for synonym in SYNONYMS[ours]:
            if synonym in by_key:
                columns[ours] = by_key[synonym]
                break
    ticker_from_name = None
    pattern = layout.pattern()
    if pattern is not None:
        match = pattern.fullmatch(path.name)
        if match is None:
            raise ValueError(f"file name does not match files.filename_pattern {layout.filename_pattern!r}")
        ticker_from_name = match["ticker"]
        columns.pop("ticker", None)
    elif "ticker" not in columns:
        ticker_from_name = path.stem  # yfinance dumps: AAPL.csv
    missing = [c for c in ("date", "close") if c not in columns]
    if missing:
        raise ValueError(f"no {' or '.join(missing)} column (columns: {names}); name them in [files] columns "
                         "(docs/prices.md)")
    return _Header(columns, delimiter, decimal, ticker_from_name, layout.dayfirst, path.name)


def _read_table(path: Path, header: _Header, *, after: int = 0) -> pa.Table:
    """The file's mapped columns, raw: dates and tickers as text, numbers as the reader typed them.
    ``after``: read only the rows after this byte offset (appended rows; the header is kept)."""
    if path.suffix.lower() != ".csv":
        return pq.read_table(path, columns=list(dict.fromkeys(header.columns.values())))
    source: Path | io.BytesIO = path
    if after:
        with path.open("rb") as handle:
            head = handle.readline()
            handle.seek(after)
            source = io.BytesIO(head + handle.read())
    return _read_csv(source, header)


def _read_csv(source: Path | io.BytesIO, header: _Header) -> pa.Table:
    wanted = list(dict.fromkeys(header.columns.values()))
    text_columns = {header.columns[c]: pa.string() for c in ("ticker", "date", "currency", "timezone") if c in header.columns}
    if header.delimiter == ";":
        frame = pd.read_csv(source, sep=";", decimal=",", encoding="utf-8-sig", usecols=wanted,
                            dtype={name: "string" for name in text_columns})
        return pa.Table.from_pandas(frame, preserve_index=False)
    return pacsv.read_csv(
        source,
        read_options=pacsv.ReadOptions(use_threads=False),  # files are read in parallel instead
        convert_options=pacsv.ConvertOptions(include_columns=wanted, column_types=text_columns,
                                             strings_can_be_null=True),
    )


def _read_tails(paths: Sequence[Path], layout: FileLayout, after: Sequence[int]) -> list[tuple[_Header, pa.Table] | str]:
    """Per file, its header and the rows appended after byte ``after[i]`` (or why it cannot be
    read). Plain appended lines of files with the same header are parsed as one CSV: a parse per
    file costs more than the few rows in it."""

    def raw(i: int) -> tuple[_Header, bytes, bytes] | str:
        try:
            with paths[i].open("rb") as handle:
                head = handle.readline()
                handle.seek(after[i])
                tail = handle.read()
            return _read_header(paths[i], layout, head), head, tail  # the header line only: the old bytes were checked
        except BadInputError:
            raise
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)

    def alone(i: int) -> tuple[_Header, pa.Table] | str:
        try:
            header = _read_header(paths[i], layout)
            return header, _read_table(paths[i], header, after=after[i])
        except BadInputError:
            raise
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2, max(1, len(paths)))) as pool:
        raws = list(pool.map(raw, range(len(paths))))
    results: list[tuple[_Header, pa.Table] | str | None] = [None] * len(paths)
    read: dict[int, tuple[_Header, bytes, bytes]] = {}
    groups: dict[tuple, list[int]] = {}
    for i, item in enumerate(raws):
        if isinstance(item, str):
            results[i] = item
            continue
        header, head, tail = read[i] = item
        # Lines that parse the same alone and together: no quotes, blank lines or CRs, a final newline.
        plain = (paths[i].suffix.lower() == ".csv" and header.delimiter == "," and tail.endswith(b"\n")
                 and not tail.startswith(b"\n") and b"\n\n" not in tail and b'"' not in tail and b"\r" not in tail)
        if plain:
            groups.setdefault((head, tuple(sorted(header.columns.items())), header.ticker_from_name is None), []).append(i)
        else:
            results[i] = alone(i)
    for (head, _, _), members in groups.items():
        counts = [read[i][2].count(b"\n") for i in members]
        try:
            table = _read_csv(io.BytesIO(head + b"".join(read[i][2] for i in members)), read[members[0]][0])
            if table.num_rows != sum(counts):
                raise ValueError("row count")
        except Exception:  # one bad tail: each file on its own, so the error names its file
            for i in members:
                results[i] = alone(i)
            continue
        start = 0
        for i, n in zip(members, counts, strict=True):
            results[i] = (read[i][0], table.slice(start, n))
            start += n
    return results  # type: ignore[return-value]


def _as_float(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values, rows that held text that is not a number)."""
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_null(column.type) \
            or pa.types.is_decimal(column.type):
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False), np.zeros(len(column), dtype=bool)
    raw = pd.Series(column.to_pandas(), dtype="string").str.strip()
    values = pd.to_numeric(raw.str.replace(",", ".", regex=False), errors="coerce")
    values = values.astype("float64").to_numpy(na_value=np.nan)
    return values, (np.isnan(values) & raw.notna().to_numpy() & (raw != "").fillna(False).to_numpy())


def _as_dates(column: pa.ChunkedArray, header: _Header, *, iso_only: bool = False) -> np.ndarray:
    """datetime64[s] at midnight (NaT where unreadable). ISO text keeps its own calendar day even
    with a time and UTC offset after it (yfinance writes ``2024-01-02 00:00:00-05:00``). A numeric
    day/month date (02/08/2013) is never guessed: read in the order ``files.dayfirst`` gives, else
    the file is refused (ValueError: its tickers fail with the reason), since read the wrong way it
    moves bars by months."""
    if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
        if pa.types.is_timestamp(column.type) and column.type.tz is not None:
            column = pc.local_timestamp(column)
        return column.cast(pa.timestamp("s")).to_numpy(zero_copy_only=False).astype("datetime64[D]").astype("datetime64[s]")
    text = column.cast(pa.string())
    parsed = pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=True)  # plain ISO dates: one pass
    if parsed.null_count != text.null_count:  # spaces, or a time after the day: trim and cut to the day
        text = pc.utf8_trim_whitespace(text)
        parsed = pc.strptime(pc.utf8_slice_codeunits(text, 0, 10), format="%Y-%m-%d", unit="s", error_is_null=True)
    dates = parsed.to_numpy(zero_copy_only=False).astype("datetime64[s]")
    retry = np.isnat(dates) & ~pc.is_null(text).to_numpy(zero_copy_only=False)
    if retry.any() and iso_only:
        raise _NotIsoDates
    if retry.any():  # other spellings (02/08/2013, 8 Feb 2013): pandas' parser, row by row
        from numerflow.tasks.model.plugins import day_month_as_iso

        column_text = pd.Series(text.to_numpy(zero_copy_only=False), dtype="string")  # whole column: true line numbers
        try:
            column_text = day_month_as_iso(column_text, header.name, "date", header.dayfirst,
                                           fix="set files.dayfirst = true (or false), or write ISO 8601 (2025-07-04)")
        except BadInputError as exc:
            raise ValueError(str(exc).partition(": ")[2] or str(exc)) from None
        others = pd.to_datetime(column_text[retry].reset_index(drop=True), errors="coerce", format="mixed")
        if others.dt.tz is not None:
            others = others.dt.tz_localize(None)
        dates[retry] = others.dt.normalize().to_numpy(dtype="datetime64[s]")
    return dates


#: Problems found while reading a row, as small integers (a string per row costs too much at 25 M rows).
_ISSUE_CODES = {"unparseable_date": 1, "not_a_number": 2}


def _normalise(table: pa.Table, header: _Header, file_id: int, *, iso_only: bool = False) -> pd.DataFrame:
    """One file's rows in our columns: ``ticker`` (as written), ``date``, prices as float64,
    ``_issue`` (``_ISSUE_CODES`` of a problem found while reading, else 0), ``_file``, ``_row`` (1-based)."""
    n = table.num_rows
    cols = header.columns
    out: dict[str, Any] = {}
    # Tickers as categoricals: a few distinct values over many rows (5,000 files × 5,000 bars).
    if header.ticker_from_name is not None:
        out["ticker"] = pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[header.ticker_from_name])
    else:
        out["ticker"] = pd.Categorical(table.column(cols["ticker"]).cast(pa.string()).dictionary_encode().to_pandas())
    dates = _as_dates(table.column(cols["date"]), header, iso_only=iso_only)
    issue = np.where(np.isnat(dates), _ISSUE_CODES["unparseable_date"], 0).astype(np.int8)
    out["date"] = dates
    for column in NUMERIC:
        if column in cols:
            values, not_number = _as_float(table.column(cols[column]))
            if column != "volume":
                issue[(issue == 0) & not_number] = _ISSUE_CODES["not_a_number"]
        else:
            values = None
        out[column] = values
    close = out["close"]
    for column in ("open", "high", "low", "adj_close"):
        if out[column] is None:  # an absent column defaults to the close
            out[column] = close
    if out["volume"] is None:
        out["volume"] = np.full(n, np.nan)
    for column in ("currency", "timezone"):  # categoricals too: one or two values per file
        out[column] = (pd.Categorical(table.column(cols[column]).cast(pa.string()).dictionary_encode().to_pandas())
                       if column in cols else pd.Categorical.from_codes(np.full(n, -1, dtype=np.int8), categories=[]))
    frame = pd.DataFrame(out)
    frame["_issue"] = issue
    frame["_file"] = np.int32(file_id)
    frame["_row"] = np.arange(1, n + 1, dtype=np.int32)
    return frame


def _concat_raw(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Normalised file frames as one, their categorical tickers unioned (not turned into strings)."""
    if not frames:
        return _empty_raw()
    texts = ["ticker", "currency", "timezone"]
    raw = pd.concat(frames, ignore_index=True)  # slices of one read (_normalise_many) share their categories
    if all(isinstance(raw[c].dtype, pd.CategoricalDtype) for c in texts):
        return raw
    raw = pd.concat([f.drop(columns=texts) for f in frames], ignore_index=True)
    for column in texts:
        raw[column] = union_categoricals([f[column] for f in frames], ignore_order=True)
    return raw


def _read_files(paths: Sequence[Path], layout: FileLayout, first_id: int = 0, *,
                after: Sequence[int] | None = None, rows_before: Sequence[int] | None = None,
                ) -> tuple[list[pd.DataFrame | None], dict[int, str]]:
    """Each file normalised (None when unreadable; tickers spelled as Numerai does) and {file
    index: why it could not be read}. Files are parsed on a thread pool (pyarrow releases the
    GIL), then normalised together, one pass per layout, not one per file: per-file pandas work
    is what 5,000 files cost. ``after``: per file, read only the rows after this byte offset
    (appended rows), whose row numbers start after ``rows_before``."""

    def one(index: int) -> tuple[_Header, pa.Table] | str:
        path = paths[index]
        try:
            header = _read_header(path, layout)
            return header, _read_table(path, header)
        except BadInputError:
            raise
        except Exception as exc:  # a vendor's broken file: its reason, not the folder's failure
            return f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)

    if after:
        results = _read_tails(paths, layout, after)
    else:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2, max(1, len(paths)))) as pool:
            results = list(pool.map(one, range(len(paths))))
    frames: list[pd.DataFrame | None] = [None] * len(paths)
    errors = {first_id + i: r for i, r in enumerate(results) if isinstance(r, str)}
    groups: dict[tuple, list[int]] = {}
    for i, result in enumerate(results):
        if not isinstance(result, str):
            header, table = result
            key = (tuple(sorted(header.columns.items())), header.delimiter, header.decimal, header.dayfirst,
                   header.ticker_from_name is None, table.schema)
            groups.setdefault(key, []).append(i)
    offsets = np.asarray(rows_before if rows_before is not None else np.zeros(len(paths)), dtype=np.int32)
    parsed = {i: r for i, r in enumerate(results) if not isinstance(r, str)}
    for members in groups.values():
        try:
            parts = _normalise_many([parsed[i] for i in members], [first_id + i for i in members],
                                    offsets[members], layout.country)
        except _NotIsoDates:  # day/month dates: each file on its own, so a refusal names its file
            parts = []
            for i in members:
                header, table = parsed[i]
                try:
                    frame = _normalise(table, header, first_id + i)
                except BadInputError:
                    raise
                except Exception as exc:
                    errors[first_id + i] = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
                    parts.append(None)
                    continue
                frame["_row"] += offsets[i]
                frame["ticker"] = numerai_symbols(frame["ticker"], layout.country)
                parts.append(frame)
        for i, frame in zip(members, parts, strict=True):
            frames[i] = frame
    return frames, errors


class _NotIsoDates(Exception):
    """A group of files has dates that are not ISO (read file by file instead)."""


def _normalise_many(items: Sequence[tuple[_Header, pa.Table]], ids: Sequence[int], rows_before: np.ndarray,
                    country: str | None) -> list[pd.DataFrame]:
    """``_normalise`` of files of one layout in one pass, split back into one frame per file
    (slices of one frame); tickers spelled (``numerai_symbols``) once for all of them."""
    headers = [h for h, _ in items]
    counts = np.array([t.num_rows for _, t in items], dtype=np.int64)
    table = pa.concat_tables([t for _, t in items])
    by_name = headers[0].ticker_from_name is not None
    frame = _normalise(table, replace(headers[0], name="", ticker_from_name="?" if by_name else None), 0,
                       iso_only=True)
    if by_name:
        names, codes = np.unique(np.array([h.ticker_from_name for h in headers], dtype=object), return_inverse=True)
        frame["ticker"] = pd.Categorical.from_codes(np.repeat(codes, counts), categories=pd.Index(names, dtype=object))
    frame["ticker"] = numerai_symbols(frame["ticker"], country)
    starts = np.cumsum(counts) - counts
    frame["_file"] = np.repeat(np.asarray(ids, dtype=np.int32), counts)
    frame["_row"] = (np.arange(len(frame), dtype=np.int64) - np.repeat(starts, counts) + 1
                     + np.repeat(rows_before.astype(np.int64), counts)).astype(np.int32)
    return [frame.iloc[a:a + n] for a, n in zip(starts, counts, strict=True)]


# ------------------------------------------------------------------------------------------- checking


@dataclass
class PreparedBars:
    """Bars ready to store, and what was done to get there.

    ``bars``: clean bars of the usable tickers (PRICE_COLUMNS order, sorted by ticker and date);
    ``tickers``: per ticker (index) ``bars``, ``first_date``, ``last_date``, ``deduplicated``,
    ``excluded``, ``excluded_reasons`` (``{reason: n}``), ``error`` and ``cause`` (None when usable);
    ``problems``: per problem kind ``{"count", "text", "examples": [{file, row, ticker, date, detail}]}``;
    ``file_errors``: ``{file: why it could not be read}``."""

    bars: pd.DataFrame
    tickers: pd.DataFrame
    problems: dict[str, dict[str, Any]]
    file_errors: dict[str, str]


def _examples(frame: pd.DataFrame, files: Sequence[str], detail: str | Iterable[str] = "", limit: int = 3) -> list[dict]:
    head = frame.head(limit)
    details = [detail] * len(head) if isinstance(detail, str) else list(detail)[: len(head)]
    return [{"file": files[int(f)], "row": int(r), "ticker": None if pd.isna(t) else str(t),
             "date": None if pd.isna(d) else str(pd.Timestamp(d).date()), "detail": x}
            for f, r, t, d, x in zip(head["_file"], head["_row"], head["ticker"], head["date"], details, strict=True)]


def _today_limits(frame: pd.DataFrame, today: pd.Timestamp | None) -> tuple[np.ndarray, np.ndarray]:
    """(last date that can have traded, per row; rows whose timezone is not an IANA name). Today
    is the exchange's when a ``timezone`` column says where it trades, else the furthest-ahead
    zone's (UTC+14: nothing real is refused)."""
    now = pd.Timestamp.now(tz="UTC") if today is None else pd.Timestamp(today).tz_localize("UTC")
    earliest = np.datetime64(now.tz_convert(_EARLIEST_ZONE).normalize().tz_localize(None).asm8, "s")
    limit = np.full(len(frame), earliest, dtype="datetime64[s]")
    unknown = np.zeros(len(frame), dtype=bool)
    zones = frame["timezone"]
    if zones.notna().any():
        zones = zones.astype(object)
        local: dict[str, np.datetime64 | None] = {}
        for zone in pd.unique(zones.dropna()):
            try:
                local[zone] = np.datetime64(now.tz_convert(str(zone)).normalize().tz_localize(None).asm8, "s")
            except Exception:  # not a time zone name
                local[zone] = None
        known = {z: v for z, v in local.items() if v is not None}
        mapped = zones.map(known)
        has = mapped.notna().to_numpy()
        limit[has] = mapped[has].to_numpy(dtype="datetime64[s]")
        unknown = zones.isin([z for z, v in local.items() if v is None]).to_numpy()
    return limit, unknown


def prepare_bars(raw: pd.DataFrame, files: Sequence[str], layout: FileLayout, *,
                 today: pd.Timestamp | None = None, file_errors: Mapping[int, str] | None = None) -> PreparedBars:
    """Normalised rows of one or more files (``_normalise``) → bars to store, vectorised over the panel.

    Exclusions (EXCLUSIONS, first reason wins) are counted per ticker. Then duplicate days:
    identical bars are kept once; bars with the same close and adjusted close but another
    volume (or open/high/low) keep the first row in file order; the same day with different
    closes fails that ticker, naming the file(s), the date and the values."""
    unreadable = {files[i]: why for i, why in (file_errors or {}).items()}
    problems: dict[str, dict[str, Any]] = {}

    def problem(kind: str, rows: pd.DataFrame, text: str, detail: str | Iterable[str] = "") -> None:
        if len(rows):
            problems[kind] = {"count": int(len(rows)), "text": text, "examples": _examples(rows, files, detail)}

    if unreadable:
        problems["unreadable_file"] = {
            "count": len(unreadable), "text": "files that cannot be read (their tickers fail)",
            "examples": [{"file": f, "row": None, "ticker": None, "date": None, "detail": why}
                         for f, why in list(unreadable.items())[:3]]}
    if raw.empty:
        empty = _empty_bars().assign(_file=np.array([], dtype=np.int32), _row=np.array([], dtype=np.int32))
        return PreparedBars(empty, _ticker_table([]), problems, unreadable)
    frame = raw.reset_index(drop=True)
    frame["ticker"] = numerai_symbols(frame["ticker"], layout.country)
    code = np.zeros(len(frame), dtype=np.int8)  # 0 = kept, else 1 + EXCLUSIONS index

    def exclude(reason: str, mask: np.ndarray) -> None:
        code[(code == 0) & mask] = EXCLUSIONS.index(reason) + 1

    # Integer ticker codes (categories in lexical order) for every sort, group and duplicate test.
    names = np.asarray(frame["ticker"].cat.categories, dtype=object)
    tcode = frame["ticker"].cat.codes.to_numpy().astype(np.int64)
    blank = np.array([n == "" for n in names], dtype=bool)
    exclude("no_ticker", (tcode < 0) | (blank[np.maximum(tcode, 0)] if len(names) else True))
    frame["_t"] = tcode
    issue = frame["_issue"].to_numpy()
    exclude("unparseable_date", issue == _ISSUE_CODES["unparseable_date"])
    exclude("not_a_number", issue == _ISSUE_CODES["not_a_number"])
    limit, unknown_zone = _today_limits(frame, today)
    exclude("unknown_timezone", unknown_zone)
    dates = frame["date"].to_numpy(dtype="datetime64[s]")
    exclude("future_date", dates > limit)
    if not layout.trades_weekends:
        weekday = dates.astype("datetime64[D]").view("int64") % 7  # 0 = Thursday (1970-01-01), 2/3 = Sat/Sun
        exclude("weekend", ~np.isnat(dates) & np.isin(weekday, (2, 3)))
    prices = frame[PRICES].to_numpy(dtype="float64", na_value=np.nan)
    exclude("missing_close", np.isnan(prices[:, PRICES.index("close")]) | np.isnan(prices[:, PRICES.index("adj_close")]))
    with np.errstate(invalid="ignore"):
        exclude("non_positive_price", (prices <= 0).any(axis=1))
    for index, reason in enumerate(EXCLUSIONS, start=1):
        if (code == index).any():
            problem(reason, frame.loc[code == index], _EXCLUSION_TEXT[reason])
    dropped = (code > 0) & (code != EXCLUSIONS.index("no_ticker") + 1)
    excluded = pd.DataFrame({"_t": tcode[dropped], "reason": np.array(EXCLUSIONS, dtype=object)[code[dropped] - 1]})

    kept = frame.loc[code == 0]
    if not _is_sorted(kept):
        kept = kept.sort_values(["_t", "date", "_file", "_row"], kind="stable")
    key = ["_t", "date"]
    twice = kept.duplicated(key, keep=False).to_numpy()
    messages: dict[int, str] = {}
    dedup = {"exact": pd.Series(dtype="int64"), "same_close": pd.Series(dtype="int64")}
    if twice.any():
        dups = kept.loc[twice]
        spread = dups.groupby(key, sort=False)[["close", "adj_close"]].nunique(dropna=False)
        clash = spread[(spread > 1).any(axis=1)].reset_index()[key]
        if len(clash):
            rows = dups.merge(clash, on=key)  # every row of a clashing day, in file order
            pairs = rows.groupby(key, sort=False).head(2).groupby(key, sort=False).agg(
                file=("_file", list), row=("_row", list), close=("close", list)).reset_index()
            pairs["message"] = [
                f"{files[f[0]]}: {pd.Timestamp(d).date()} has two different closes, {c[0]:g} (row {r[0]}) and {c[1]:g} "
                f"({'' if f[1] == f[0] else files[f[1]] + ' '}row {r[1]}); keep the right bar and remove the other"
                for d, f, r, c in zip(pairs["date"], pairs["file"], pairs["row"], pairs["close"], strict=True)]
            problems["conflicting_close"] = {
                "count": int(len(pairs)), "text": "days with two different closes (that ticker fails)",
                "examples": [{"file": files[f[0]], "row": int(r[0]), "ticker": str(names[t]),
                              "date": str(pd.Timestamp(d).date()), "detail": m}
                             for t, d, f, r, m in pairs[["_t", "date", "file", "row", "message"]].head(3)
                             .itertuples(index=False)]}
            days = pairs.groupby("_t").size()
            for t, m in pairs.groupby("_t")["message"].first().items():
                messages[int(t)] = m + (f" ({days[t]} conflicting days)" if days[t] > 1 else "")
        values = [c for c in (*PRICES, "volume", "currency") if c in kept.columns]
        exact = kept.duplicated([*key, *values], keep="first").to_numpy()
        problem("exact_duplicate", kept.loc[exact], "identical bars repeated: kept once")
        kept_once = kept.loc[~exact]
        same = kept_once.duplicated(key, keep="first").to_numpy() & ~kept_once["_t"].isin(list(messages)).to_numpy()
        problem("same_close_duplicate", kept_once.loc[same], "the same day twice with equal close and adjusted close "
                "but another volume/open/high/low: kept the first row in file order")
        dedup["exact"] = kept.loc[exact].groupby("_t").size()
        dedup["same_close"] = kept_once.loc[same].groupby("_t").size()
        kept = kept_once.drop_duplicates(key, keep="first")
    good = kept.loc[~kept["_t"].isin(list(messages)).to_numpy()] if messages else kept
    bars = pd.DataFrame({
        "ticker": good["ticker"], "date": good["date"].astype("datetime64[s]"),
        **{c: good[c].astype("float64") for c in PRICE_COLUMNS}, "currency": as_strings(good["currency"]),
        "_file": good["_file"], "_row": good["_row"],  # where each bar came from (the source drops them)
    }).reset_index(drop=True)  # sorted by ticker (lexical: the codes' order) and date

    _report_long_gaps(bars, files, problems)
    present = np.unique(tcode[(tcode >= 0) & (code != EXCLUSIONS.index("no_ticker") + 1)])
    table = _ticker_table([str(names[t]) for t in present]).assign(_t=present)
    bar_codes = good["_t"].to_numpy()
    table["bars"] = np.bincount(bar_codes, minlength=len(names))[present] if len(names) else 0
    firsts = good.groupby("_t")["date"].agg(["min", "max"])
    table["first_date"] = firsts["min"].reindex(present).to_numpy()
    table["last_date"] = firsts["max"].reindex(present).to_numpy()
    table["deduplicated"] = (dedup["exact"].reindex(present).fillna(0).to_numpy()
                             + dedup["same_close"].reindex(present).fillna(0).to_numpy()).astype("int64")
    reasons: dict[int, dict[str, int]] = {}
    for (t, reason), n in excluded.groupby(["_t", "reason"]).size().items():
        reasons.setdefault(int(t), {})[str(reason)] = int(n)
    table["excluded_reasons"] = [reasons.get(int(t), {}) for t in present]
    table["excluded"] = [sum(r.values()) for r in table["excluded_reasons"]]
    errors: list[str | None] = []
    causes: list[str | None] = []
    for t, n_bars, why in zip(present, table["bars"], table["excluded_reasons"], strict=True):
        if int(t) in messages:
            errors.append(f"conflicting_close: {messages[int(t)]}")
            causes.append("conflicting_close")
        elif n_bars == 0:
            errors.append(all_excluded_error(why))
            causes.append("all_bars_excluded")
        else:
            errors.append(None)
            causes.append(None)
    table["error"] = pd.Series(errors, index=table.index, dtype=object)
    table["cause"] = pd.Series(causes, index=table.index, dtype=object)
    return PreparedBars(bars, table.drop(columns="_t"), problems, unreadable)


#: Calendar days between two bars of a ticker beyond which the check reports a gap (bars kept).
LONG_GAP_DAYS = 30


def _report_long_gaps(bars: pd.DataFrame, files: Sequence[str], problems: dict[str, dict[str, Any]]) -> None:
    """A gap of more than LONG_GAP_DAYS between two bars of a ticker is reported, not excluded: a
    suspension is real, but so is a vendor's rewritten year (2018 bars dated 2021)."""
    if len(bars) < 2:
        return
    codes = bars["ticker"].cat.codes.to_numpy()
    days = bars["date"].to_numpy(dtype="datetime64[D]")
    gap = np.diff(days).astype("int64")
    at = np.flatnonzero((codes[1:] == codes[:-1]) & (gap > LONG_GAP_DAYS)) + 1
    if not len(at):
        return
    examples = [{"file": files[int(bars["_file"].iat[i])], "row": int(bars["_row"].iat[i]), "ticker": str(bars["ticker"].iat[i]),
                 "date": str(days[i]), "detail": f"{int(gap[i - 1])} days after the bar of {days[i - 1]}"} for i in at[:3]]
    problems["long_gap"] = {"count": int(len(at)), "text": f"gaps of more than {LONG_GAP_DAYS} days between two bars "
                            "of a ticker (bars kept: check the dates)", "examples": examples}


def _is_sorted(frame: pd.DataFrame) -> bool:
    """Rows already in (ticker code, date, file, row) order: per-ticker files read in name order
    usually are, and a sort of millions of rows is then skipped."""
    t = frame["_t"].to_numpy()
    d = frame["date"].to_numpy(dtype="datetime64[s]").view("int64")
    f = frame["_file"].to_numpy().astype(np.int64)
    r = frame["_row"].to_numpy().astype(np.int64)
    if len(t) < 2:
        return True
    dt, dd, df, dr = np.diff(t), np.diff(d), np.diff(f), np.diff(r)
    ordered = (dt > 0) | ((dt == 0) & ((dd > 0) | ((dd == 0) & ((df > 0) | ((df == 0) & (dr > 0))))))
    return bool(ordered.all())


def _ticker_table(tickers: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({"bars": pd.Series(0, index=tickers, dtype="int64")}).rename_axis("ticker").assign(
        first_date=pd.NaT, last_date=pd.NaT, deduplicated=0, excluded=0, excluded_reasons=[{}] * len(tickers),
        error=None, cause=None)


def _empty_bars() -> pd.DataFrame:
    return pd.DataFrame({"ticker": pd.Categorical([]), "date": np.array([], dtype="datetime64[s]"),
                         **{c: np.array([], dtype="float64") for c in PRICE_COLUMNS},
                         "currency": pd.array([], dtype="string")})


def load_price_files(path: Path | str, *, layout: FileLayout | None = None,
                     today: pd.Timestamp | None = None) -> PreparedBars:
    """Every file under ``path`` read and checked at once (``numerflow prices check``; tests).
    ``today`` (UTC, for tests) defaults to now. A folder without one usable file is an error."""
    layout = layout or FileLayout()
    paths = price_files(Path(path))
    frames, errors = _read_files(paths, layout)
    names = [str(p) for p in paths]
    usable = [f for f in frames if f is not None]
    if not usable:
        raise no_usable_file_error(Path(path), {names[i]: why for i, why in errors.items()})
    prepared = prepare_bars(_concat_raw(usable), names, layout, today=today, file_errors=errors)
    prepared.bars = prepared.bars.drop(columns=["_file", "_row"])
    return prepared


def no_usable_file_error(path: Path, errors: Mapping[str, str]) -> BadInputError:
    sample = "; ".join(f"{Path(f).name}: {why}" for f, why in list(errors.items())[:3])
    return BadInputError(f"none of the {len(errors)} price files under {path} can be used ({sample}); "
                         "see docs/prices.md for the layouts numerflow reads and the [files] column mapping",
                         tag="invalid_price_files")


# ------------------------------------------------------------------------------------------- the source


def file_fingerprint(path: Path, known: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{size, mtime_ns, sha256, lines}``; the content is hashed only when size or mtime differ
    from ``known`` (a touched but unchanged file keeps its hash, so it is still unchanged). A file
    that grew and still starts with ``known``'s exact bytes (rows appended, nothing else touched)
    also gets ``grew_from`` (the old hash) and ``old_rows`` (the data rows it had then). ``lines``
    (newlines in the file) lets the next append count only its new bytes' lines; it is left out
    when unknown."""
    stat = path.stat()
    if known and known.get("size") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns:
        same = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": known["sha256"]}
        return {**same, "lines": known["lines"]} if "lines" in known else same
    digest = hashlib.sha256()
    old_size = int(known["size"]) if known and int(known.get("size", 0)) < stat.st_size else 0
    known_lines = known.get("lines") if known and old_size else None
    lines: int | None = 0
    extra: dict[str, Any] = {}
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as handle:
        if old_size and known:
            left = old_size
            while left:
                n = handle.readinto(view[: min(len(buffer), left)])
                if not n:
                    break
                digest.update(view[:n])
                if known_lines is None:
                    lines += buffer.count(b"\n", 0, n)  # type: ignore[operator]
                left -= n
            if digest.copy().hexdigest() == known.get("sha256"):
                lines = int(known_lines) if known_lines is not None else lines
                extra = {"grew_from": known["sha256"], "old_size": old_size, "old_rows": max(int(lines or 0) - 1, 0)}  # minus the header
            elif known_lines is not None:
                lines = None  # another file now: its first bytes' lines were not counted
        while n := handle.readinto(buffer):
            digest.update(view[:n])
            if lines is not None:
                lines += buffer.count(b"\n", 0, n)
    out = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest.hexdigest(), **extra}
    return {**out, "lines": lines} if lines is not None else out


#: In the ingest folder: what each file held at its last hash, and per ticker the file hashes its stored bars came from.
INDEX_FILE = "files-index.json"
STORED_DIR = "files-stored"


class FilePriceSource:
    """A price source over your own files (an ``OutcomeSource``; see the module docstring).

    With a state folder (``attach``, done by the ingest) a ticker whose files are
    unchanged since its bars were stored is answered with no bars (nothing to write) and nothing
    is parsed; a changed file's tickers get their whole history from the file (the file is the
    truth: an appended day and a revised past bar both reach the store)."""

    name = "files"

    def __init__(self, path: Path | str, layout: FileLayout | None = None, *, today: pd.Timestamp | None = None,
                 cache_rows: int = 4_000_000) -> None:
        self.path = Path(path)
        self.layout = layout or FileLayout()
        self.today = today
        self.cache_rows = cache_rows
        self._lock = threading.RLock()
        self._state_dir: Path | None = None
        self.files_read = 0  # files parsed whole by this object, all runs (tests and the benchmark read it)
        self.tails_read = 0  # grown files of which only the appended rows were parsed
        self._nothing_new = _empty_bars()  # one shared empty answer (building 5,000 of them costs seconds)
        self._reset()

    def _reset(self) -> None:
        self._paths: list[Path] | None = None
        self._index: dict[str, dict[str, Any]] = {}  # file → {size, mtime_ns, sha256, tickers, error}
        self._holders: dict[str, list[str]] = {}
        self._stored: dict[str, dict[str, str]] = {}
        self._served: dict[str, dict[str, str]] = {}
        self._cache: OrderedDict[str, pd.DataFrame] = OrderedDict()

    def __repr__(self) -> str:
        return f"FilePriceSource({str(self.path)!r})"

    @property
    def identity(self) -> dict[str, str]:
        """The files this store is filled from (``ingest.check_store_identity``)."""
        return {"kind": "files", "path": str(self.path.resolve())}

    # --- run lifecycle ---------------------------------------------------------------------------
    def attach(self, state_dir: Path) -> None:
        """Remember file state in ``state_dir`` (the store's ingest folder for this source)."""
        with self._lock:
            if self._state_dir != state_dir:
                self._state_dir = state_dir
                self._reset()

    def release(self) -> None:
        """End of a run: drop what it read; the next run scans the folder again (a long-lived
        process such as ``numerflow serve`` keeps the source object between runs)."""
        with self._lock:
            self._reset()

    def _rel(self, path: Path) -> str:
        return str(path.relative_to(self.path)) if self.path.is_dir() else path.name

    def _scan(self) -> None:
        """List and fingerprint the files; learn which tickers the new or changed ones hold."""
        if self._paths is not None:
            return
        paths = price_files(self.path)
        remembered: dict[str, Any] = {}
        if self._state_dir is not None and (self._state_dir / INDEX_FILE).exists():
            remembered = read_json(self._state_dir / INDEX_FILE).get("files", {})
            stored_dir = self._state_dir / STORED_DIR
            for part in sorted(stored_dir.glob("part-*.json")) if stored_dir.is_dir() else []:
                self._stored.update(read_json(part))
        index: dict[str, dict[str, Any]] = {}
        unknown: list[Path] = []
        for path in paths:
            rel = self._rel(path)
            known = remembered.get(rel)
            fingerprint = file_fingerprint(path, known)
            same = known is not None and "tickers" in known and (
                known.get("sha256") == fingerprint["sha256"]
                # Rows appended to a file named after its ticker: its header, so its ticker, is unchanged.
                or (bool(known.get("by_name")) and fingerprint.get("grew_from") == known.get("sha256")))
            if known is not None and same:
                index[rel] = {**fingerprint, "tickers": known["tickers"], "error": known.get("error"),
                              "by_name": bool(known.get("by_name"))}
            else:
                index[rel] = {**fingerprint, "tickers": [], "error": None}
                unknown.append(path)
        for path, (tickers, error, by_name) in zip(unknown, self._tickers_in(unknown), strict=True):
            index[self._rel(path)].update(tickers=tickers, error=error, by_name=by_name)
        self._paths, self._index = paths, index
        self._holders = {}
        for rel, entry in index.items():
            for ticker in entry["tickers"]:
                self._holders.setdefault(ticker, []).append(rel)
        if not any(entry["error"] is None and entry["tickers"] for entry in index.values()):
            raise no_usable_file_error(self.path, {rel: e["error"] or "no rows" for rel, e in index.items()})
        if self._state_dir is not None:
            write_json(self._state_dir / INDEX_FILE, {"path": str(self.path.resolve()), "files": index})

    def _tickers_in(self, paths: Sequence[Path]) -> list[tuple[list[str], str | None, bool]]:
        """Per file: the tickers it holds (Numerai spelling), why it cannot be used (else None) and
        whether its file name gives the ticker (then nothing but its header is read)."""

        def one(path: Path) -> tuple[list[str], str | None, bool]:
            try:
                header = _read_header(path, self.layout)
                if header.ticker_from_name is not None:
                    name = _spell(header.ticker_from_name, self.layout.country)
                    return ([name] if name else []), None, True
                only = _Header({"ticker": header.columns["ticker"]}, header.delimiter, header.decimal)
                raw = pd.Series(_read_table(path, only).column(header.columns["ticker"]).cast(pa.string())
                                .unique().to_pandas(), dtype="string")
                names = numerai_symbols(raw.dropna(), self.layout.country)
                return sorted(set(names[names != ""].astype(str))), None, False
            except Exception as exc:
                return [], str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}", False

        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2, max(1, len(paths)))) as pool:
            return list(pool.map(one, paths))

    def check_folder(self) -> None:
        """Raise ``invalid_price_files`` before an ingest when the folder has no usable file."""
        with self._lock:
            self._scan()

    def tickers(self) -> list[str]:
        """Every ticker the files hold (what ``numerflow ingest`` asks for without a universe)."""
        with self._lock:
            self._scan()
            return sorted(self._holders)

    # --- fetching --------------------------------------------------------------------------------
    def _parsed(self, rels: Sequence[str]) -> dict[str, pd.DataFrame | str]:
        """Normalised rows of these files (cached, oldest dropped beyond ``cache_rows``) or why unreadable."""
        missing = [r for r in rels if r not in self._cache and self._index[r]["error"] is None]
        if missing:
            paths = [self.path / r if self.path.is_dir() else self.path for r in missing]
            frames, errors = _read_files(paths, self.layout)
            self.files_read += len(missing)
            for i, (rel, frame) in enumerate(zip(missing, frames, strict=True)):
                if frame is None:
                    self._index[rel]["error"] = errors[i]
                else:
                    self._cache[rel] = frame
        out: dict[str, pd.DataFrame | str] = {}
        for rel in rels:
            if rel in self._cache:
                self._cache.move_to_end(rel)
                out[rel] = self._cache[rel]
            else:
                out[rel] = self._index[rel]["error"] or "cannot be read"
        while len(self._cache) > 1 and sum(len(f) for f in self._cache.values()) > self.cache_rows:
            oldest = next(iter(self._cache))
            if oldest in rels:
                break
            self._cache.popitem(last=False)
        return out

    def fetch_outcomes(self, requests: Sequence[FetchRequest], end: date | None = None) -> list[FetchOutcome]:
        with self._lock:
            self._scan()
            outcomes: dict[str, FetchOutcome] = {}
            to_read: dict[str, list[str]] = {}
            appended: dict[str, date] = {}  # tickers whose files only grew since stored: answered from `start`
            for request in requests:
                ticker = request.ticker
                symbol = request.candidates[0] if request.candidates else ticker
                holders = self._holders.get(symbol, [])
                hashes = {rel: self._index[rel]["sha256"] for rel in holders}
                if not holders:
                    unreadable = [rel for rel, e in self._index.items() if e["error"]]
                    note = (f" ({len(unreadable)} files could not be read, e.g. {unreadable[0]}: "
                            f"{self._index[unreadable[0]]['error']})") if unreadable else ""
                    outcomes[ticker] = FetchOutcome(ticker, NO_DATA, error=f"no_data: no file under {self.path} has "
                                                    f"ticker {symbol!r}{note}", cause="no_file")
                elif request.start is not None and self._stored.get(ticker) == hashes:
                    outcomes[ticker] = FetchOutcome(ticker, OK, symbol, self._nothing_new)  # unchanged since stored
                    self._served[ticker] = hashes
                else:
                    to_read[ticker] = holders
                    if request.start is not None and self._only_appended(ticker, holders):
                        appended[ticker] = request.start
            if to_read:
                outcomes.update(self._outcomes_from_files(to_read, requests, end, appended))
            return [outcomes[r.ticker] for r in requests]

    def _only_appended(self, ticker: str, holders: Sequence[str]) -> bool:
        """Every file of the ticker is the one its stored bars came from, at most with rows appended."""
        stored = self._stored.get(ticker)
        if stored is None or set(stored) != set(holders):
            return False
        return all(stored[rel] in (self._index[rel]["sha256"], self._index[rel].get("grew_from")) for rel in holders)

    def _tails(self, rels: Sequence[str]) -> dict[str, pd.DataFrame | str]:
        """The rows appended to these grown CSV files since their bars were stored (not cached)."""
        paths = [self.path / r if self.path.is_dir() else self.path for r in rels]
        self.tails_read += len(rels)
        entries = [self._index[rel] for rel in rels]
        frames, errors = _read_files(paths, self.layout, after=[int(e["old_size"]) for e in entries],
                                     rows_before=[int(e["old_rows"]) for e in entries])
        return {rel: errors.get(i, "cannot be read") if frame is None else frame
                for i, (rel, frame) in enumerate(zip(rels, frames, strict=True))}

    def _outcomes_from_files(self, to_read: Mapping[str, list[str]], requests: Sequence[FetchRequest],
                             end: date | None, appended: Mapping[str, date]) -> dict[str, FetchOutcome]:
        """Outcomes from the files. A changed file is read whole (duplicates and conflicts are
        judged over the whole history) and its tickers get their whole history: the file is the
        truth, so a revised past bar is seen. A ticker whose files only grew (``appended``) gets
        just the appended rows: the ingest's cheap incremental path; an appended row that
        contradicts a stored bar is a revision there, and that re-pull reads the files whole."""
        symbols = {r.ticker: (r.candidates[0] if r.candidates else r.ticker) for r in requests if r.ticker in to_read}
        grown = sorted({rel for t in appended for rel in to_read[t] if self._index[rel].get("grew_from")
                        and rel.lower().endswith(".csv")})
        tails = self._tails(grown)
        whole = sorted({rel for t, holders in to_read.items() if t not in appended or any(
            isinstance(tails.get(r), str) or (r not in tails and self._index[r].get("grew_from")) for r in holders)
            for rel in holders})
        parsed: dict[str, pd.DataFrame | str] = {**self._parsed(whole)}
        names = [*whole, *grown]
        from_tails = {t for t in appended if not any(r in whole for r in to_read[t])}
        wanted = {False: [symbols[t] for t in symbols if t not in from_tails],  # from whole files
                  True: [symbols[t] for t in symbols if t in from_tails]}  # from appended rows
        frames, ids = [], []
        for i, rel in enumerate(names):
            frame = parsed[rel] if i < len(whole) else tails[rel]
            if isinstance(frame, pd.DataFrame) and wanted[i >= len(whole)]:
                frames.append(frame)
                ids.append(i)
        raw = _concat_raw(frames)  # one pass over the rows, not one per file
        if frames:
            lengths = [len(f) for f in frames]
            raw["_file"] = np.repeat(np.asarray(ids, dtype=np.int32), lengths)
            from_tail = np.repeat(np.asarray(ids) >= len(whole), lengths)
            keep = np.where(from_tail, raw["ticker"].isin(wanted[True]).to_numpy(),
                            raw["ticker"].isin(wanted[False]).to_numpy())
            if not keep.all():
                raw = raw.loc[keep].reset_index(drop=True)
        prepared = prepare_bars(raw, [str(self.path / n) if self.path.is_dir() else str(self.path) for n in names],
                                self.layout, today=self.today)
        bars = prepared.bars
        if end is not None:
            bars = bars[bars["date"].to_numpy() <= np.datetime64(end, "s")]
        codes = bars["ticker"].cat.codes.to_numpy()  # bars are sorted by ticker: one slice each
        present = np.unique(codes)
        lows, highs = np.searchsorted(codes, present, "left"), np.searchsorted(codes, present, "right")
        categories = bars["ticker"].cat.categories
        slices = {str(categories[c]): (int(lo), int(hi)) for c, lo, hi in zip(present, lows, highs, strict=True)}
        clean = bars.drop(columns=["_file", "_row"])  # once, not per ticker (a per-ticker drop costs seconds)
        per_ticker = prepared.tickers.to_dict("index")
        outcomes: dict[str, FetchOutcome] = {}
        for ticker, symbol in symbols.items():
            holders = to_read[ticker]
            broken = [rel for rel in holders if isinstance(parsed.get(rel), str)]
            stats = per_ticker.get(symbol)
            deduplicated = int(stats["deduplicated"]) if stats is not None else 0
            excluded = dict(stats["excluded_reasons"]) if stats is not None else {}
            if broken:
                outcomes[ticker] = FetchOutcome(ticker, ERROR, symbol, error=f"unreadable_file: {broken[0]}: "
                                                f"{parsed[broken[0]]}", cause="unreadable_file")
            elif stats is not None and pd.notna(stats["error"]) and not (
                    ticker in from_tails and stats["cause"] == "all_bars_excluded"):  # appended rows all excluded: nothing new
                outcomes[ticker] = FetchOutcome(ticker, ERROR, symbol, error=str(stats["error"]), cause=str(stats["cause"]),
                                                deduplicated=deduplicated, excluded=excluded)
            else:
                lo, hi = slices.get(symbol, (0, 0))
                frame = clean.iloc[lo:hi].reset_index(drop=True)
                if symbol != ticker:
                    frame = frame.assign(ticker=pd.array([ticker] * len(frame), dtype="string"))
                currency = frame["currency"].iloc[0] if len(frame) and pd.notna(frame["currency"].iloc[0]) else None
                outcomes[ticker] = FetchOutcome(ticker, OK, symbol, frame, currency=currency, deduplicated=deduplicated,
                                                excluded=excluded)
                self._served[ticker] = {rel: self._index[rel]["sha256"] for rel in holders}
        return outcomes

    def stored(self, part: int, tickers: Iterable[str]) -> None:
        """After a batch's bars are stored: remember, per stored ticker, the file hashes they came from."""
        if self._state_dir is None:
            return
        with self._lock:
            path = self._state_dir / STORED_DIR / f"part-{part:05d}.json"
            held = read_json(path) if path.exists() else {}
            for ticker in tickers:
                if ticker in self._served:
                    held[ticker] = self._served[ticker]
                else:
                    held.pop(ticker, None)
            write_json(path, held)

    def fetch(self, tickers: Sequence[str], start: date | None = None, end: date | None = None) -> pd.DataFrame:
        """Bars of ``tickers`` between ``start`` and ``end`` (a plain ``PriceSource``)."""
        bars = load_price_files(self.path, layout=self.layout, today=self.today).bars
        keep = bars["ticker"].isin(list(tickers)).to_numpy()
        if start is not None:
            keep = keep & (bars["date"].to_numpy() >= np.datetime64(start, "s"))
        if end is not None:
            keep = keep & (bars["date"].to_numpy() <= np.datetime64(end, "s"))
        return bars.loc[keep].reset_index(drop=True)


def _empty_raw() -> pd.DataFrame:
    frame = _empty_bars().drop(columns="currency")
    return frame.assign(currency=pd.Categorical([]), timezone=pd.Categorical([]), _issue=np.array([], dtype=np.int8),
                        _file=np.array([], dtype=np.int32), _row=np.array([], dtype=np.int32))


# ------------------------------------------------------------------------------------------- `numerflow prices check`


def check_price_folder(path: Path | str, layout: FileLayout | None = None, *, universe: Sequence[str] | None = None,
                       today: pd.Timestamp | None = None) -> dict[str, Any]:
    """What an ingest of ``path`` would do, without storing anything: per-problem counts with up to
    3 examples, what would be stored (tickers, bars, first and last date), tickers that would
    fail and why, and the ``universe`` tickers that no file has. ``usable`` is False when no bar
    could be stored (``numerflow prices check`` then exits non-zero)."""
    layout = layout or FileLayout()
    try:
        checked = load_price_files(path, layout=layout, today=today)
    except BadInputError as exc:
        return {"path": str(path), "usable": False, "error": str(exc), "files": None, "problems": {}, "stored": None,
                "failing": {}, "universe": None}
    bars, table = checked.bars, checked.tickers
    failing = table[table["error"].notna()]
    report: dict[str, Any] = {
        "path": str(path),
        "usable": bool(len(bars)),
        "error": None,
        "files": {"read": len(price_files(Path(path))) - len(checked.file_errors), "unreadable": len(checked.file_errors)},
        "problems": checked.problems,
        "stored": {"tickers": int(bars["ticker"].nunique()), "bars": int(len(bars)),
                   "first_date": str(bars["date"].min().date()) if len(bars) else None,
                   "last_date": str(bars["date"].max().date()) if len(bars) else None,
                   "deduplicated": int(table["deduplicated"].sum()), "excluded": int(table["excluded"].sum())},
        "failing": {str(t): str(e) for t, e in failing["error"].items()},
        "universe": None,
    }
    if universe is not None:
        ids = pd.Index(pd.Series(list(universe), dtype="string").dropna().unique())
        without = ids[~ids.isin(bars["ticker"].unique())]
        report["universe"] = {"tickers": int(len(ids)), "with_bars": int(len(ids) - len(without)),
                              "without_file": [str(t) for t in without[:20]], "missing": int(len(without))}
    return report


def render_price_check(report: Mapping[str, Any]) -> str:
    """``numerflow prices check``'s text: problems with examples, then what would be stored."""
    lines = [f"numerflow prices check {report['path']}"]
    if report["error"]:
        return "\n".join([*lines, f"  NOT USABLE  {report['error']}"])
    files = report["files"]
    lines.append(f"  files       {files['read']} read" + (f", {files['unreadable']} unreadable" if files["unreadable"] else ""))
    for kind, problem in report["problems"].items():
        lines.append(f"  {kind:<24}{problem['count']:>8,}  {problem['text']}")
        for e in problem["examples"]:
            where = f"{e['file']}" + (f" row {e['row']}" if e["row"] is not None else "")
            what = " ".join(str(x) for x in (e["ticker"], e["date"]) if x)
            lines.append(f"      e.g. {where}" + (f": {what}" if what else "") + (f" — {e['detail']}" if e["detail"] else ""))
    if not report["problems"]:
        lines.append("  problems    none")
    s = report["stored"]
    lines.append(f"  would store {s['tickers']:,} tickers, {s['bars']:,} bars, {s['first_date']} → {s['last_date']} "
                 f"({s['deduplicated']} duplicate bars kept once, {s['excluded']} excluded)")
    if report["failing"]:
        lines.append(f"  failing     {len(report['failing'])} tickers would fail:")
        lines += [f"      {t}: {why}" for t, why in list(report["failing"].items())[:10]]
    u = report["universe"]
    if u is not None:
        lines.append(f"  universe    {u['with_bars']} of {u['tickers']} tickers have bars; {u['missing']} have no file"
                     + (f", e.g. {', '.join(u['without_file'][:10])}" if u["missing"] else ""))
    if not report["usable"]:
        lines.append("  NOT USABLE  no bar could be stored")
    return "\n".join(lines)
