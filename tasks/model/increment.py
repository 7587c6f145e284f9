"""A new day of bars appended to the modelling dataset, not 20 years of features recomputed.

Every dataset built from a price snapshot (``tasks.model.dataset.build_dataset``, built-in
features, no feature sources, not Crypto's calendar) leaves ``features/<snapshot>.history.parquet``
beside it (``HISTORY_SCHEMA``): per ticker its count of bars, a hash of its price rows, the dates
where its lookback window and its not-yet-labelled rows begin, and its MACD EMAs at its last bar.

When the next snapshot of the same price source, with the same target settings, only adds rows
after the previous dataset's last date D (every ticker's rows up to D hash the same as then, and
no ticker appears or disappears up to D), the new dataset is:

- the previous rows, unchanged, before the first date whose target may now be known;
- from that date to D, the previous features with targets recomputed from the bars since then;
- after D, the new rows: features from each ticker's last ``LOOKBACK_BARS`` bars and its EMA state
  (``tasks.model.features.FeatureTail``), ranked per date, and their targets.

This is bit-identical to a full rebuild (tests/test_increment.py, on the demo market and on the
real sample). Anything else rebuilds the dataset whole, and the log names the reason and the first
tickers concerned: a re-pull or a revised bar (dividend adjustments re-pull a whole history), a
ticker added or dropped before D, other target settings, or a previous dataset that does not
match its history file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from numerflow.tasks.core.config import TargetSettings
from numerflow.tasks.core.row_keys import day_numbers
from numerflow.tasks.core.schemas import as_strings
from numerflow.tasks.core.store import Store, read_parquet, write_parquet, write_parquet_tables
from numerflow.tasks.model.features import (
    EMA_STATE_COLUMNS,
    LOOKBACK_BARS,
    BarLayout,
    FeatureTail,
    bar_layout,
    compute_features,
    ticker_codes,
)
from numerflow.tasks.model.targets import target_columns

log = logging.getLogger(__name__)

#: Per ticker, what appending the next bars needs (``features/<snapshot>.history.parquet``).
HISTORY_SCHEMA = pa.schema([
    ("ticker", pa.string()),
    ("bars", pa.int64()),  # valid bars (finite adj_close) up to the dataset's last date
    ("rows_hash", pa.int64()),  # hash of all its price rows (date, close, adj_close, volume)
    ("lookback_date", pa.timestamp("ns")),  # date of bar max(bars - LOOKBACK_BARS, 0)
    ("unlabelled_date", pa.timestamp("ns")),  # date of bar max(bars - lag - horizon, 0): targets may change after
    *[(name, pa.float64()) for name in EMA_STATE_COLUMNS],  # at its last bar
])
_META_KEY = b"numerflow.history"


@dataclass(frozen=True)
class PreviousDataset:
    """A built dataset and its history file, a candidate base for the next snapshot."""

    path: Path
    history: pd.DataFrame
    last_date: date


def history_path(dataset_path: Path) -> Path:
    return Path(dataset_path).with_suffix(".history.parquet")


def settings_key(target: TargetSettings, dataset_version: str) -> str:
    """What a dataset's rows depend on besides the bars: a base is only used with the same key."""
    payload = json.dumps({"target": target.model_dump(), "version": dataset_version}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# --- hashes of price rows -----------------------------------------------------------------

_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
#: An odd multiplier per hashed column (date, close, adj_close, volume), so swapped columns differ.
_COLUMN_MULTIPLIERS = tuple(np.uint64(k) for k in (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F,
                                                    0x165667B19E3779F9, 0xD6E8FEB86659FD93))
#: Bits of each row's hash that are summed per ticker: a sum of up to 2**16 rows (250 years of
#: weekdays) of 37 bits stays below 2**53, so float64 sums (numpy's bincount) are exact.
_ROW_HASH_BITS = 37


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place on uint64 (wrap-around arithmetic is the point)."""
    values ^= values >> np.uint64(30)
    values *= _MIX_1
    values ^= values >> np.uint64(27)
    values *= _MIX_2
    values ^= values >> np.uint64(31)
    return values


def row_hashes(prices: pd.DataFrame) -> np.ndarray:
    """A float64 hash (an integer below 2**37) of each row's date, close, adj_close and volume: the
    columns the features and targets read. Computed once per panel: the append's check and the whole
    build's history file both sum it per ticker (``ticker_hashes``)."""
    hashed = day_numbers(prices["date"]).astype(np.uint64) * _COLUMN_MULTIPLIERS[0]
    for column, multiplier in zip(("close", "adj_close", "volume"), _COLUMN_MULTIPLIERS[1:], strict=True):
        bits = prices[column].to_numpy(dtype="float64", na_value=np.nan).view(np.uint64)
        hashed ^= bits * multiplier
    return (_mix(hashed) >> np.uint64(64 - _ROW_HASH_BITS)).astype(np.float64)


def ticker_hashes(hashes: np.ndarray, codes: np.ndarray, n_tickers: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Per ticker code, the order-free sum (int64) of its rows' ``row_hashes`` (``rows``: a mask of the
    rows counted)."""
    if rows is not None:
        hashes, codes = hashes[rows], codes[rows]
    return np.bincount(codes, weights=hashes, minlength=n_tickers).astype(np.int64)


# --- the history of a built dataset --------------------------------------------------------


def _bar_dates(layout: BarLayout, dates: np.ndarray, *columns: np.ndarray) -> list[np.ndarray]:
    """Per ticker of ``layout``, for each of ``columns`` (one bar index per ticker), the date of that bar
    (datetime64[ns]; ``dates`` in ``layout.rows`` order; NaT where the ticker has no such bar)."""
    code, index = layout.ticker_code, layout.bar_index
    found = []
    for column in columns:
        out = np.full(layout.n_tickers, np.datetime64("NaT"), dtype="datetime64[ns]")
        hit = index == column[code]
        out[code[hit]] = dates[hit]
        found.append(out)
    return found


def _history_frame(names: np.ndarray, bars: np.ndarray, rows_hash: np.ndarray, lookback_date: np.ndarray,
                   unlabelled_date: np.ndarray, ema_states: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({
        "ticker": pd.array(names, dtype="string"), "bars": bars.astype(np.int64), "rows_hash": rows_hash,
        "lookback_date": lookback_date.astype("datetime64[ns]"),
        "unlabelled_date": unlabelled_date.astype("datetime64[ns]"),
    })
    for which, name in enumerate(EMA_STATE_COLUMNS):
        frame[name] = ema_states[:, which]
    return frame


def dataset_history(prices: pd.DataFrame, layout: BarLayout, target: TargetSettings,
                    hashes: np.ndarray) -> pd.DataFrame:
    """``HISTORY_SCHEMA`` rows of every ticker of a whole price panel, its ``layout`` and ``row_hashes``; the EMA
    columns are NaN until ``set_ema_states`` (after the features), so this runs before the features,
    while less is held."""
    codes, names = ticker_codes(prices["ticker"])
    bars = np.bincount(layout.ticker_code, minlength=layout.n_tickers)
    dates = pd.to_datetime(prices["date"]).to_numpy()[layout.rows]
    lookback, unlabelled = _bar_dates(layout, dates, np.maximum(bars - LOOKBACK_BARS, 0),
                                      np.maximum(bars - target.lag - target.horizon, 0))
    no_states = np.full((layout.n_tickers, len(EMA_STATE_COLUMNS)), np.nan)
    return _history_frame(names, bars, ticker_hashes(hashes, codes, len(names)), lookback, unlabelled, no_states)


def set_ema_states(history: pd.DataFrame, ema_states: np.ndarray) -> None:
    """Fill ``history``'s EMA columns from ``compute_features``' ``ema_states`` (same ticker order)."""
    for which, name in enumerate(EMA_STATE_COLUMNS):
        history[name] = ema_states[:, which]


def write_history(dataset_path: Path, history: pd.DataFrame, source: str, key: str, last_date: date) -> None:
    """``history`` as the history file of ``dataset_path``, with the source, settings key and the price
    panel's last date (``last_date``: every row of the panel is dated on or before it)."""
    meta = {"source": source, "key": key, "last_date": last_date.isoformat()}
    table = pa.Table.from_pandas(history, schema=HISTORY_SCHEMA, preserve_index=False)
    write_parquet(history_path(dataset_path), table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()}))


def find_previous(store: Store, source: str, key: str, before: date) -> PreviousDataset | None:
    """The latest dataset of ``source`` built with ``key`` whose last date is before ``before``, with
    its history; None if there is none (a damaged history file is skipped: the dataset is rebuilt)."""
    best: tuple[date, Path] | None = None
    for path in store.root.joinpath("features").glob("*.history.parquet"):
        try:
            meta = json.loads((pq.read_schema(path).metadata or {}).get(_META_KEY, b"{}"))
        except (OSError, ValueError, pa.ArrowException):
            continue
        if meta.get("source") != source or meta.get("key") != key or "last_date" not in meta:
            continue
        last = date.fromisoformat(meta["last_date"])
        dataset = path.with_name(path.name.removesuffix(".history.parquet") + ".parquet")
        if last < before and dataset.exists() and (best is None or last > best[0]):
            best = (last, dataset)
    if best is None:
        return None
    try:
        history = read_parquet(history_path(best[1]))
    except (OSError, pa.ArrowException):
        return None
    return PreviousDataset(path=best[1], history=history, last_date=best[0])


# --- appending ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Extended:
    """The next dataset: the first ``kept_rows`` rows of ``previous``, then ``tail`` (``write_extended``)."""

    previous: Path
    kept_rows: int
    tail: pa.Table
    history: pd.DataFrame
    new_rows: int
    recomputed_rows: int


def write_extended(path: Path, extended: Extended) -> None:
    """Atomically write ``extended`` as ``path``: the kept rows copied one row group at a time (never the
    whole previous dataset in memory), then the tail."""
    source = pq.ParquetFile(extended.previous)

    def kept() -> Iterator[pa.Table]:
        copied = 0
        for index in range(source.num_row_groups):
            if copied >= extended.kept_rows:
                return
            group = source.read_row_group(index).replace_schema_metadata(None)
            group = group.slice(0, min(group.num_rows, extended.kept_rows - copied))
            copied += group.num_rows
            yield group

    write_parquet_tables(path, source.schema_arrow.remove_metadata(), chain(kept(), [extended.tail]),
                         dictionary=["ticker"])


def extend(prices: pd.DataFrame, previous: PreviousDataset, target: TargetSettings, hashes: np.ndarray
           ) -> Extended | str:
    """The dataset of ``prices`` (its ``row_hashes``: ``hashes``) built from ``previous`` (module docstring),
    or the reason it cannot be."""
    days = day_numbers(prices["date"])
    last_day = (previous.last_date - date(1970, 1, 1)).days
    codes, names = ticker_codes(prices["ticker"])
    n_tickers = len(names)
    old_rows = days <= last_day
    old_counts = np.bincount(codes[old_rows], minlength=n_tickers)
    old_hashes = ticker_hashes(hashes, codes, n_tickers, old_rows)

    history = previous.history
    before = pd.Index(history["ticker"].astype(object))
    now = pd.Index(names[old_counts > 0])
    if not before.equals(now):
        added, dropped = now.difference(before), before.difference(now)
        return (f"tickers with rows up to {previous.last_date} changed (added {len(added)}: {list(added[:5])}, "
                f"dropped {len(dropped)}: {list(dropped[:5])})")
    position = pd.Index(names).get_indexer(before)
    changed = before[old_hashes[position] != history["rows_hash"].to_numpy()]
    if len(changed):
        whose = "1 ticker's rows" if len(changed) == 1 else f"{len(changed)} tickers' rows"
        return f"{whose} up to {previous.last_date} changed (re-pulled or revised, e.g. {list(changed[:5])})"

    adj_close = prices["adj_close"].to_numpy(dtype="float64", na_value=np.nan)
    new_bar = ~old_rows & np.isfinite(adj_close)
    if not new_bar.any():
        return f"no new bars after {previous.last_date}"
    has_new = np.bincount(codes[new_bar], minlength=n_tickers) > 0

    # Per ticker code: the previous history (bars, dates, EMA states), NaN/0 for a new ticker.
    old_bars = np.zeros(n_tickers, dtype=np.int64)
    old_bars[position] = history["bars"].to_numpy()
    lookback = np.full(n_tickers, np.datetime64("NaT"), dtype="datetime64[D]")
    lookback[position] = history["lookback_date"].to_numpy().astype("datetime64[D]")
    unlabelled = np.full(n_tickers, np.datetime64("NaT"), dtype="datetime64[D]")
    unlabelled[position] = history["unlabelled_date"].to_numpy().astype("datetime64[D]")
    ema_state = np.full((n_tickers, len(EMA_STATE_COLUMNS)), np.nan)
    ema_state[position] = history[list(EMA_STATE_COLUMNS)].to_numpy()

    # Features: each ticker with new bars, from its lookback date (all its rows if it is new).
    start_day = lookback.astype(np.int64)
    start_day[np.isnat(lookback)] = np.iinfo(np.int64).min
    feature_rows = has_new[codes] & (days >= start_day[codes])
    feature_prices = prices.loc[feature_rows].reset_index(drop=True)
    feature_layout = bar_layout(feature_prices)  # validates the new bars
    chosen = np.flatnonzero(has_new)  # the slice's tickers, in name order like its layout's
    first_bar = np.maximum(old_bars[chosen] - LOOKBACK_BARS, 0)
    tail = FeatureTail(first_bar=first_bar, new_column=old_bars[chosen] - first_bar, ema_state=ema_state[chosen])
    new_states = np.full((feature_layout.n_tickers, len(EMA_STATE_COLUMNS)), np.nan)
    features = compute_features(feature_prices, layout=feature_layout, tail=tail, ema_states=new_states)
    features = features.loc[day_numbers(features["date"]) > last_day].reset_index(drop=True)

    # Targets: every row from the first date whose target a new bar may complete.
    cutoff = unlabelled[has_new & ~np.isnat(unlabelled)]
    cutoff_day = int(cutoff.min().astype(np.int64)) if len(cutoff) else last_day + 1
    target_prices = prices.loc[days >= cutoff_day].reset_index(drop=True)
    target_layout = bar_layout(target_prices)
    targets = pd.DataFrame({
        "ticker": pd.array(target_prices["ticker"].take(target_layout.rows).astype(object), dtype="string"),
        "date": target_prices["date"].take(target_layout.rows).reset_index(drop=True),
        **target_columns(target_prices, target.horizon, target.lag, target.bins, target_layout),
    })

    # The previous rows from the cutoff on (rows are sorted by date: only the last row groups are read).
    middle = read_parquet(previous.path, filter_expr=ds.field("date") >= pd.Timestamp(cutoff_day, unit="D"))
    keep = pq.ParquetFile(previous.path).metadata.num_rows - len(middle)
    target_days = day_numbers(targets["date"])
    relabelled, appended = targets.loc[target_days <= last_day], targets.loc[target_days > last_day]
    if not (_same_ids(middle, relabelled) and _same_ids(features, appended)):
        return f"the dataset {previous.path.name} does not match its history file"
    for name in ("target", "target_raw", "target_end_date"):
        middle[name] = relabelled[name].to_numpy()
        features[name] = appended[name].to_numpy()
    features["ticker"] = as_strings(features["ticker"])
    tail_frame = pd.concat([middle, features[list(middle.columns)]], ignore_index=True)
    schema = pq.read_schema(previous.path).remove_metadata()
    tail_table = pa.Table.from_pandas(tail_frame, schema=schema, preserve_index=False).replace_schema_metadata(None)

    # The next base: tickers with new bars get their new counts, dates and states; the others keep theirs.
    bars = old_bars.copy()
    bars[chosen] = first_bar + np.bincount(feature_layout.ticker_code, minlength=len(chosen))
    feature_dates = pd.to_datetime(feature_prices["date"]).to_numpy()[feature_layout.rows]
    lookback[chosen] = _bar_dates(feature_layout, feature_dates, np.maximum(bars[chosen] - LOOKBACK_BARS, 0) - first_bar)[0]
    # Each ticker's bars in the target slice are its last ones: bar j of the slice is bar total - count + j.
    in_target = pd.Index(names).get_indexer(ticker_codes(target_prices["ticker"])[1])
    target_count = np.bincount(target_layout.ticker_code, minlength=len(in_target))
    total = bars[in_target]
    target_dates = pd.to_datetime(target_prices["date"]).to_numpy()[target_layout.rows]
    unlabelled_in_slice = _bar_dates(target_layout, target_dates,
                                     np.maximum(total - target.lag - target.horizon, 0) - (total - target_count))[0]
    renewed = np.zeros(n_tickers, dtype=bool)
    renewed[chosen] = True
    unlabelled[in_target[renewed[in_target]]] = unlabelled_in_slice[renewed[in_target]]
    ema_state[chosen] = new_states
    next_history = _history_frame(names, bars, ticker_hashes(hashes, codes, n_tickers), lookback,
                                  unlabelled, ema_state)
    return Extended(previous=previous.path, kept_rows=keep, tail=tail_table, history=next_history,
                    new_rows=len(features), recomputed_rows=len(middle))


def _same_ids(left: pd.DataFrame, right: pd.DataFrame) -> bool:
    return (len(left) == len(right)
            and np.array_equal(left["ticker"].to_numpy(dtype=object), right["ticker"].to_numpy(dtype=object))
            and np.array_equal(day_numbers(left["date"]), day_numbers(right["date"])))
