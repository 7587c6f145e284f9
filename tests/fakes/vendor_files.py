"""Vendor price folders as users bring them: one CSV per ticker in yfinance's layout
(``Date, Open, High, Low, Close, Adj Close, Volume``), optionally with the quirks real dumps
have. Used by the files-source tests and by ``benchmarks/bench_files.py``.

Quirks (``quirky_folder``), each in its own ticker so tests can assert per ticker:

- ``DUPX``: an exact duplicate bar;
- ``DUPV``: the same day twice, same close and adjusted close, another volume;
- ``ZERO``: a day repeated with a zero close (vendors emit these around corporate actions);
- ``CONF``: the same day twice with different closes (must fail that ticker only);
- ``WKND``: a bar dated on a Saturday;
- ``NEGC``: a negative close and a missing close;
- ``ALLZ``: every close is zero (all bars excluded: failed, not stale);
- ``BOMF``: a UTF-8 byte-order mark before the header;
- ``SEMI``: ``;`` separators and ``,`` decimals (a European export);
- ``BRK.B``: a share class with a dot (Numerai spells it ``BRK/B US``);
- ``BROKEN.csv``: not a CSV at all (binary garbage).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

YF_COLUMNS = ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"]


def yf_bars(start: str | date, end: str | date, *, price: float = 50.0, seed: int = 0) -> pd.DataFrame:
    """One ticker's business-day bars in yfinance's CSV layout (adjusted close a bit below close)."""
    days = pd.bdate_range(start, end)
    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0, 0.012, len(days))))
    open_ = close * np.exp(rng.normal(0, 0.003, len(days)))
    return pd.DataFrame({
        "Date": days.strftime("%Y-%m-%d"),
        "Open": open_.round(4),
        "High": (np.maximum(open_, close) * 1.004).round(4),
        "Low": (np.minimum(open_, close) * 0.996).round(4),
        "Close": close.round(4),
        "Adj Close": (close * 0.98).round(4),
        "Volume": np.round(1e6 * np.exp(rng.normal(0, 0.3, len(days)))).astype("int64"),
    })


def write_yf_csv(path: Path, bars: pd.DataFrame) -> Path:
    """Write bars as yfinance's ``to_csv`` would (no index column; pyarrow for speed)."""
    options = pacsv.WriteOptions(quoting_style="none")
    pacsv.write_csv(pa.Table.from_pandas(bars, preserve_index=False), path, write_options=options)
    return path


def write_vendor_folder(folder: Path, tickers: Sequence[str], start: str | date, end: str | date, *,
                        seed: int = 0) -> Path:
    """A clean per-ticker folder (``AAPL.csv`` …) in yfinance's layout."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, ticker in enumerate(tickers):
        write_yf_csv(folder / f"{ticker}.csv", yf_bars(start, end, price=20 + n % 200, seed=seed + n))
    return folder


def append_day(path: Path, day: date) -> None:
    """Append one bar to a yfinance-layout CSV, continuing from its last close."""
    bars = pd.read_csv(path)
    last = bars.iloc[-1]
    row = {"Date": day.isoformat(), "Open": last["Close"], "High": last["Close"] * 1.01, "Low": last["Close"] * 0.99,
           "Close": round(last["Close"] * 1.003, 4), "Adj Close": round(last["Adj Close"] * 1.003, 4), "Volume": 1234567}
    with path.open("a") as handle:
        handle.write(",".join(str(row[c]) for c in YF_COLUMNS) + "\n")


def revise_bar(path: Path, day: date, factor: float = 1.02) -> None:
    """A vendor's correction of one past bar's close and adjusted close."""
    bars = pd.read_csv(path, dtype={"Date": "string"})
    hit = bars["Date"] == day.isoformat()
    assert hit.sum() == 1, f"{path} has no bar on {day}"
    bars.loc[hit, ["Close", "Adj Close"]] = (bars.loc[hit, ["Close", "Adj Close"]] * factor).round(4)
    write_yf_csv(path, bars)


QUIRKY_CLEAN = ["GOOD1", "GOOD2", "GOOD3"]


def quirky_folder(folder: Path, start: str | date, end: str | date) -> Path:
    """A folder with every vendor quirk of the module docstring next to clean tickers."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [*QUIRKY_CLEAN, "DUPX", "DUPV", "ZERO", "CONF", "WKND", "NEGC", "ALLZ", "BOMF", "SEMI", "BRK.B"]
    frames = {name: yf_bars(start, end, price=30 + n, seed=100 + n) for n, name in enumerate(names)}

    def dup(frame: pd.DataFrame, at: int, **changes) -> pd.DataFrame:
        extra = frame.iloc[[at]].assign(**changes)
        return pd.concat([frame.iloc[: at + 1], extra, frame.iloc[at + 1:]], ignore_index=True)

    frames["DUPX"] = dup(frames["DUPX"], 10)
    frames["DUPV"] = dup(frames["DUPV"], 12, Volume=frames["DUPV"]["Volume"].iloc[12] + 500)
    frames["ZERO"] = dup(frames["ZERO"], 14, Open=0.0, High=0.0, Low=0.0, Close=0.0, **{"Adj Close": 0.0}, Volume=0)
    frames["CONF"] = dup(frames["CONF"], 16, Close=frames["CONF"]["Close"].iloc[16] + 1.5)
    wknd = frames["WKND"]
    saturday = pd.Timestamp(wknd["Date"].iloc[20]) + pd.offsets.Week(weekday=5)
    frames["WKND"] = pd.concat([wknd, wknd.iloc[[20]].assign(Date=saturday.strftime("%Y-%m-%d"))]).sort_values(
        "Date", kind="stable").reset_index(drop=True)
    negc = frames["NEGC"].astype({"Close": "float64"})
    negc.loc[5, "Close"] = -1.0
    negc.loc[6, "Close"] = np.nan
    frames["NEGC"] = negc
    frames["ALLZ"] = frames["ALLZ"].assign(Close=0.0, **{"Adj Close": 0.0})
    for name, frame in frames.items():
        if name in ("BOMF", "SEMI"):
            continue
        frame.to_csv(folder / f"{name}.csv", index=False)
    (folder / "BOMF.csv").write_bytes(b"\xef\xbb\xbf" + frames["BOMF"].to_csv(index=False).encode())
    (folder / "SEMI.csv").write_text(frames["SEMI"].to_csv(index=False, sep=";", decimal=","))
    (folder / "BROKEN.csv").write_bytes(b"\x00\x01\x02PK\x03\x04 not a csv \xff\xfe\x00\n\x00\x00")
    return folder
