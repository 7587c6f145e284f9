"""Numerai Crypto's data files in their real column layouts, for the fake Numerai server.

- v1 layout (Numerai's Crypto data page): ``train_targets.parquet`` = ``symbol, date, target``;
  ``live_universe.parquet`` = ``symbol``.
- v2 layout (Numerai's example notebook): ``train.parquet`` / ``live.parquet`` with ``symbol`` as the
  pandas index, ``date`` strings, 22 ``feature_*`` columns binned 0..1 in fifths, and (train only)
  ``target_binned_return_20`` and ``target_binned_return_60`` (NaN on the dates whose 60 days have not
  passed yet).
"""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pandas as pd

#: Numerai's v2 feature names (each over 20 and 60 days).
V2_FEATURES = [f"feature_{name}_{days}d" for name in (
    "bollinger", "close_avg", "close_ewa", "market_cap_avg", "market_cap_ewa", "momentum", "relative_strength_index",
    "sharpe_ratio", "volatility", "volume_avg", "volume_ewa") for days in (20, 60)]
BINS = np.array([0.0, 0.25, 0.5, 0.75, 1.0], dtype="float32")


def parquet_bytes(frame: pd.DataFrame, *, index: bool = False) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=index)
    return buffer.getvalue()


def weekday_dates(start: dt.date, end: dt.date) -> pd.DatetimeIndex:
    """Numerai Crypto's data dates: the weekdays (the day before each Tuesday-Saturday round opens)."""
    return pd.bdate_range(start, end)


def crypto_v1_files(symbols: list[str], start: dt.date, end: dt.date, seed: int = 11) -> tuple[bytes, bytes]:
    """(train_targets.parquet, live_universe.parquet) of the v1 layout."""
    rng = np.random.default_rng(seed)
    dates = weekday_dates(start, end)
    frame = pd.DataFrame([(s, d.strftime("%Y-%m-%d")) for d in dates for s in symbols], columns=["symbol", "date"])
    frame["target"] = rng.choice(BINS, len(frame))
    return parquet_bytes(frame), parquet_bytes(pd.DataFrame({"symbol": symbols}))


def crypto_v2_frames(symbols: list[str], start: dt.date, end: dt.date, live_date: dt.date,
                     seed: int = 12) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, live) frames of the v2 layout, ``symbol`` as the index."""
    rng = np.random.default_rng(seed)
    dates = weekday_dates(start, end)
    train = pd.DataFrame([(s, d.strftime("%Y-%m-%d")) for d in dates for s in symbols], columns=["symbol", "date"])
    for name in V2_FEATURES:
        train[name] = rng.choice(BINS, len(train))
    train["target_binned_return_20"] = rng.choice(BINS, len(train))
    train["target_binned_return_60"] = rng.choice(BINS, len(train))
    unresolved = pd.to_datetime(train["date"]) > pd.Timestamp(end) - pd.Timedelta(days=62)
    train.loc[unresolved, "target_binned_return_60"] = np.nan
    live = pd.DataFrame({"symbol": symbols, "date": live_date.strftime("%Y-%m-%d")})
    for name in V2_FEATURES:
        live[name] = rng.choice(BINS, len(live))
    return train.set_index("symbol"), live.set_index("symbol")


def crypto_v2_files(symbols: list[str], start: dt.date, end: dt.date, live_date: dt.date,
                    seed: int = 12) -> tuple[bytes, bytes]:
    """(train.parquet, live.parquet) bytes of the v2 layout."""
    train, live = crypto_v2_frames(symbols, start, end, live_date, seed)
    return parquet_bytes(train, index=True), parquet_bytes(live, index=True)
