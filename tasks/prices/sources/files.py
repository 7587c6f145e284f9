"""Bring-your-own prices: CSV or Parquet files in the schema documented in docs/prices.md.

The files are read once, validated with error messages that say which file, which column
and which rows are wrong, and served through the same ingest stage as every other source.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.schemas import PRICE_COLUMNS

REQUIRED = ["ticker", "date", "close"]
OPTIONAL_PRICES = ["open", "high", "low", "adj_close", "volume"]
SUFFIXES = {".csv", ".parquet", ".pq"}


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES and not p.name.startswith((".", "_")))
        if not found:
            raise BadInputError(f"no .csv or .parquet files under {path}; see docs/prices.md", tag="invalid_price_files")
        return found
    if not path.exists():
        raise BadInputError(f"price file {path} does not exist; set files.path to your CSV/Parquet", tag="invalid_price_files")
    if path.suffix.lower() not in SUFFIXES:
        raise BadInputError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet", tag="invalid_price_files")
    return [path]


def _read_one(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(path, dtype={"ticker": "string", "currency": "string"})
        else:
            frame = pd.read_parquet(path)
    except Exception as exc:  # unreadable file: say which one
        raise BadInputError(f"{path}: cannot be read ({type(exc).__name__}: {exc})", tag="invalid_price_files") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise BadInputError(
            f"{path}: missing columns {missing}; required: {REQUIRED}, optional: {OPTIONAL_PRICES + ['currency']} "
            "(docs/prices.md)",
            tag="invalid_price_files",
        )
    return frame


#: Where the calendar is furthest ahead (UTC+14): no exchange anywhere has reached a later date.
_EARLIEST_ZONE = "Pacific/Kiritimati"


def _refuse_future_bars(data: pd.DataFrame, dates: pd.Series, today: pd.Timestamp | None) -> None:
    """A bar dated after today where it trades is a typo or a vendor's forward fill: it would
    become the live date. Today is the exchange's when the files give a ``timezone`` column
    (IANA, e.g. Asia/Tokyo), else the furthest-ahead time zone's (nothing real is refused)."""
    now = pd.Timestamp.now(tz="UTC") if today is None else pd.Timestamp(today).tz_localize("UTC")
    if "timezone" in data.columns:
        zones = data["timezone"].astype("string").fillna(_EARLIEST_ZONE)
        try:
            local_today = zones.map({z: now.tz_convert(z).normalize().tz_localize(None) for z in zones.unique()})
        except Exception as exc:  # an unknown zone name
            raise BadInputError(f"the timezone column has a name that is not an IANA time zone ({exc}); use "
                                "names like America/New_York", tag="invalid_price_files") from None
        limit = pd.to_datetime(local_today).to_numpy(dtype="datetime64[ns]")
    else:
        limit = np.datetime64(now.tz_convert(_EARLIEST_ZONE).normalize().tz_localize(None).asm8, "ns")
    future = dates.dt.normalize().to_numpy(dtype="datetime64[ns]") > limit
    if future.any():
        rows = data.loc[future, ["_file", "_row", "ticker", "date"]].head(3)
        sample = "; ".join(f"{file} row {row}: {ticker} {day}" for file, row, ticker, day
                           in zip(rows["_file"], rows["_row"], rows["ticker"], rows["date"], strict=True))
        raise BadInputError(f"{int(future.sum())} bars are dated after today where they trade, e.g. {sample}; "
                            "remove them (a bar exists only once its day has traded)", tag="invalid_price_files")


def load_price_files(path: Path | str, *, today: pd.Timestamp | None = None) -> pd.DataFrame:
    """All files under ``path`` as one validated frame in PRICE_SCHEMA column order.
    ``today`` (UTC, for tests) defaults to now."""
    files = _files(Path(path))
    frames = []
    for file in files:
        frame = _read_one(file)
        frame["_file"] = str(file)
        frame["_row"] = np.arange(1, len(frame) + 1)  # 1-based data row (a CSV's line is row + 1)
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)
    dates = pd.to_datetime(data["date"], errors="coerce", format="mixed")
    bad = dates.isna()
    if bad.any():
        sample = data.loc[bad, ["_file", "date"]].head(3).astype(str).agg(" ".join, axis=1).tolist()
        raise BadInputError(f"{int(bad.sum())} unparseable dates (use YYYY-MM-DD), e.g. {sample}", tag="invalid_price_files")
    _refuse_future_bars(data, dates.dt.tz_localize(None) if dates.dt.tz is not None else dates, today)
    out = pd.DataFrame({"ticker": data["ticker"].astype("string").str.strip(), "date": dates.dt.normalize().astype("datetime64[s]")})
    if out["ticker"].isna().any() or (out["ticker"] == "").any():
        raise BadInputError("empty ticker values in the price files; every row needs a ticker", tag="invalid_price_files")
    for column in PRICE_COLUMNS:
        source_column = column if column in data.columns else ("close" if column in ("open", "high", "low", "adj_close") else None)
        if source_column is None:
            out[column] = np.nan
            continue
        values = pd.to_numeric(data[source_column], errors="coerce")
        not_numeric = values.isna() & data[source_column].notna()
        if not_numeric.any():
            sample = data.loc[not_numeric, ["_file", source_column]].head(3).astype(str).agg(" ".join, axis=1).tolist()
            raise BadInputError(f"column {source_column!r} has non-numeric values, e.g. {sample}", tag="invalid_price_files")
        out[column] = values.astype("float64")
    out["currency"] = data["currency"].astype("string") if "currency" in data.columns else pd.array([None] * len(out), dtype="string")
    duplicated = out.duplicated(["ticker", "date"], keep=False)
    if duplicated.any():
        sample = (out.loc[duplicated, "ticker"] + " " + out.loc[duplicated, "date"].dt.date.astype(str)).head(5).tolist()
        raise BadInputError(
            f"{int(duplicated.sum())} duplicate (ticker, date) rows across the price files, e.g. {sample}; keep one bar per day",
            tag="invalid_price_files",
        )
    return out.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)


class FilePriceSource:
    """A PriceSource over your own files. Missing open/high/low/adj_close default to close."""

    name = "files"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._data: pd.DataFrame | None = None

    def __repr__(self) -> str:
        return f"FilePriceSource({str(self.path)!r})"

    @property
    def identity(self) -> dict[str, str]:
        """The files this store is filled from (``ingest.check_store_identity``)."""
        return {"kind": "files", "path": str(self.path.resolve())}

    @property
    def data(self) -> pd.DataFrame:
        if self._data is None:
            self._data = load_price_files(self.path)
        return self._data

    def fetch(self, tickers: Sequence[str], start: date | None = None, end: date | None = None) -> pd.DataFrame:
        data = self.data
        # A fresh mask each step: pandas 3 hands out read-only arrays, so no in-place ``&=``.
        keep = data["ticker"].isin(list(tickers)).to_numpy()
        if start is not None:
            keep = keep & (data["date"].to_numpy() >= np.datetime64(start, "s"))
        if end is not None:
            keep = keep & (data["date"].to_numpy() <= np.datetime64(end, "s"))
        return data.loc[keep].reset_index(drop=True)
