"""Price features for every (ticker, date) of a long price panel, vectorised over the panel.

Every window counts the ticker's OWN bars (its trading days), never calendar days and never
another ticker's rows: the panel is laid out as a wide ``bar × ticker`` matrix in which row
``k`` of column ``t`` is ticker ``t``'s k-th valid bar. Rolling windows, shifts and EMAs then
run down the columns of that matrix in one pandas/numpy call each (no per-ticker Python loop),
and the results are gathered back to the long panel. A feature on date ``d`` reads only rows
``≤ k(d)`` of its own column, i.e. bars dated ``≤ d`` of that ticker: no look-ahead.

Rows whose ``adj_close`` is NaN are treated as absent bars (they get no output row and do
not count in windows). Feature definitions, windows and reasons: docs/features.md.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks.errors import BadInputError
from tasks.ranking import rank_by_group
from tasks.schemas import validate_price_panel

RETURN_HORIZONS = (1, 5, 20, 60, 120, 250)
VOLATILITY_WINDOWS = (20, 60)
RSI_WINDOW = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
TURNOVER_WINDOW = 20
VOLUME_SHORT, VOLUME_LONG = 5, 60
RANGE_WINDOW = 250

FEATURE_NAMES: list[str] = [
    *[f"feature_ret_{h}d" for h in RETURN_HORIZONS],
    *[f"feature_vol_{w}d" for w in VOLATILITY_WINDOWS],
    f"feature_rsi_{RSI_WINDOW}",
    f"feature_macd_{MACD_FAST}_{MACD_SLOW}",
    f"feature_macd_hist_{MACD_FAST}_{MACD_SLOW}_{MACD_SIGNAL}",
    f"feature_log_turnover_{TURNOVER_WINDOW}d",
    f"feature_volume_ratio_{VOLUME_SHORT}_{VOLUME_LONG}",
    f"feature_dist_high_{RANGE_WINDOW}d",
    f"feature_dist_low_{RANGE_WINDOW}d",
]

# Rows per rank_by_group call: whole dates only, small enough for the sort to stay in cache
# (ranking 25M rows in one call is ~3x slower than in slices of ~50k rows on 2 cores).
_RANK_SLICE_ROWS = 50_000


@dataclass(frozen=True)
class BarLayout:
    """Where each valid bar of a long panel lives in the wide ``bar × ticker`` matrix.

    ``rows``: positions in the input frame of the valid bars, ordered by (date, ticker) —
    the output order. ``ticker_code``/``bar_index``: column and row of each of those bars in
    the wide matrix (bar_index = 0 for a ticker's first valid bar). ``date_code``: dense,
    non-decreasing date codes (the groups for per-date ranks). ``n_bars``: rows of the
    wide matrix (the longest history). ``n_tickers``: its columns.
    """

    rows: np.ndarray
    ticker_code: np.ndarray
    bar_index: np.ndarray
    date_code: np.ndarray
    n_bars: int
    n_tickers: int

    def to_wide(self, values: np.ndarray) -> np.ndarray:
        """Scatter long values (in ``rows`` order) into the wide matrix; NaN where no bar."""
        wide = np.full((self.n_bars, self.n_tickers), np.nan)
        wide[self.bar_index, self.ticker_code] = values
        return wide

    def to_long(self, wide: np.ndarray) -> np.ndarray:
        """Gather the wide matrix back to one value per bar, in ``rows`` order."""
        return wide[self.bar_index, self.ticker_code]


def bar_layout(prices: pd.DataFrame) -> BarLayout:
    """Validate ``prices`` and index its valid bars (finite ``adj_close``) per ticker.

    Raises BadInputError for missing columns, an empty or all-NaN panel, duplicate
    (ticker, date) rows, missing tickers or dates, and non-positive adjusted closes.
    """
    validate_price_panel(prices)
    if prices["ticker"].isna().any():
        raise BadInputError(
            f"{int(prices['ticker'].isna().sum())} price rows have no ticker; drop them at the source",
            tag="invalid_prices",
        )
    dates = _date_values(prices["date"])
    adj_close = prices["adj_close"].to_numpy(dtype="float64", na_value=np.nan)
    valid = np.isfinite(adj_close)
    if (adj_close[valid] <= 0).any():
        bad = prices.loc[valid & (adj_close <= 0), ["ticker", "date"]].head(5).astype(str).agg(" ".join, axis=1)
        raise BadInputError(
            f"{int((adj_close[valid] <= 0).sum())} price rows have adj_close <= 0, e.g. {bad.tolist()}; "
            "adjusted closes must be positive: fix or drop those bars at the source",
            tag="invalid_prices",
        )
    rows = np.flatnonzero(valid)
    # pd.factorize on the (Arrow-backed) column itself: far faster than on Python objects.
    ticker_code_all, _ = pd.factorize(prices["ticker"].take(rows), sort=True)
    ticker_code_all = ticker_code_all.astype(np.int64, copy=False)
    date_int = dates[rows]
    # Bar index within ticker: sort by (ticker, date), count from each ticker's first bar.
    by_ticker = np.lexsort((date_int, ticker_code_all))
    sorted_codes = ticker_code_all[by_ticker]
    n = len(rows)
    starts = np.empty(n, dtype=bool)
    starts[:1] = True
    starts[1:] = sorted_codes[1:] != sorted_codes[:-1]
    positions = np.arange(n)
    first_of_ticker = np.maximum.accumulate(np.where(starts, positions, 0))
    bar_index_sorted = positions - first_of_ticker
    bar_index = np.empty(n, dtype=np.int64)
    bar_index[by_ticker] = bar_index_sorted
    # Output order: (date, ticker). Ticker codes are sorted ticker names.
    by_date = np.lexsort((ticker_code_all, date_int))
    sorted_dates = date_int[by_date]
    # int32 indices: half the memory of int64 for panels up to 2^31 rows.
    index_dtype = np.int32 if n < np.iinfo(np.int32).max else np.int64
    return BarLayout(
        rows=rows[by_date].astype(index_dtype),
        ticker_code=ticker_code_all[by_date].astype(index_dtype),
        bar_index=bar_index[by_date].astype(index_dtype),
        date_code=np.cumsum(np.r_[False, sorted_dates[1:] != sorted_dates[:-1]], dtype=index_dtype),
        n_bars=int(bar_index_sorted.max()) + 1 if n else 0,
        n_tickers=int(ticker_code_all.max()) + 1 if n else 0,
    )


def _date_values(dates: pd.Series) -> np.ndarray:
    """Dates as int64 nanoseconds-or-coarser ticks that sort like the dates; BadInputError if not dates."""
    try:
        with warnings.catch_warnings():  # strings that are not dates are an error below, not a warning
            warnings.simplefilter("ignore", UserWarning)
            converted = pd.to_datetime(dates)
    except (TypeError, ValueError) as exc:
        raise BadInputError(
            f"price panel 'date' column cannot be read as dates ({exc}); store dates as date32/datetime64",
            tag="invalid_prices",
        ) from None
    if converted.isna().any():
        raise BadInputError(
            f"{int(converted.isna().sum())} price rows have no date; drop them at the source",
            tag="invalid_prices",
        )
    return converted.to_numpy().astype("int64")


def _rolling(wide: np.ndarray, window: int) -> pd.core.window.Rolling:
    # min_periods=window: a feature needs a full window of the ticker's own bars, else NaN.
    return pd.DataFrame(wide, copy=False).rolling(window, min_periods=window)


def _ema(wide: np.ndarray, span: int) -> np.ndarray:
    # adjust=False: the classic recursive EMA (seeded with the first bar), causal by construction.
    return pd.DataFrame(wide, copy=False).ewm(span=span, adjust=False).mean().to_numpy()


def _shift_down(wide: np.ndarray, periods: int) -> np.ndarray:
    """Row k holds row k - periods (NaN for the first ``periods`` rows): the value ``periods`` bars ago."""
    out = np.full_like(wide, np.nan)
    if periods < wide.shape[0]:
        out[periods:] = wide[:-periods]
    return out


def _wide_features(
    adj_close: np.ndarray, close: np.ndarray, volume: np.ndarray
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(name, wide float64 matrix)`` for every feature, one at a time so the caller
    can gather it to the long panel and free the matrix (peak memory stays a few matrices)."""
    n_bars = adj_close.shape[0]
    bar = np.arange(n_bars)[:, None]
    log_price = np.log(adj_close)
    for horizon in RETURN_HORIZONS:
        yield f"feature_ret_{horizon}d", log_price - _shift_down(log_price, horizon)
    daily_log_return = log_price - _shift_down(log_price, 1)
    for window in VOLATILITY_WINDOWS:
        yield f"feature_vol_{window}d", _rolling(daily_log_return, window).std().to_numpy()
    del daily_log_return

    # Cutler's RSI: simple averages of gains and losses over the last 14 price changes, as a
    # fraction in [0, 1]; depends only on the last 15 bars (not on where the history starts).
    change = adj_close - _shift_down(adj_close, 1)
    gain_sum = _rolling(np.where(change > 0, change, np.where(np.isnan(change), np.nan, 0.0)), RSI_WINDOW).sum()
    loss_sum = _rolling(np.where(change < 0, -change, np.where(np.isnan(change), np.nan, 0.0)), RSI_WINDOW).sum()
    gain_sum, loss_sum = gain_sum.to_numpy(), loss_sum.to_numpy()
    moved = gain_sum + loss_sum
    with np.errstate(invalid="ignore", divide="ignore"):
        # A price that did not move in 14 bars is neutral (0.5), not undefined.
        rsi = np.where(moved > 0, gain_sum / moved, np.where(np.isnan(moved), np.nan, 0.5))
    yield f"feature_rsi_{RSI_WINDOW}", rsi
    del change, gain_sum, loss_sum, moved, rsi

    # MACD in units of the price so it compares across tickers and price levels.
    macd_line = _ema(adj_close, MACD_FAST) - _ema(adj_close, MACD_SLOW)
    macd_hist = macd_line - _ema(macd_line, MACD_SIGNAL)
    # The EMAs are seeded by the first bar: require a slow window (and a signal window) of history.
    macd_norm = np.where(bar >= MACD_SLOW - 1, macd_line / adj_close, np.nan)
    yield f"feature_macd_{MACD_FAST}_{MACD_SLOW}", macd_norm
    yield (
        f"feature_macd_hist_{MACD_FAST}_{MACD_SLOW}_{MACD_SIGNAL}",
        np.where(bar >= MACD_SLOW + MACD_SIGNAL - 2, macd_hist / adj_close, np.nan),
    )
    del macd_line, macd_hist, macd_norm

    # Turnover in the listing's currency (raw close × shares); log1p keeps zero volume finite.
    turnover_mean = _rolling(close * volume, TURNOVER_WINDOW).mean().to_numpy()
    yield f"feature_log_turnover_{TURNOVER_WINDOW}d", np.log1p(turnover_mean)
    del turnover_mean
    volume_short = _rolling(volume, VOLUME_SHORT).mean().to_numpy()
    volume_long = _rolling(volume, VOLUME_LONG).mean().to_numpy()
    yield f"feature_volume_ratio_{VOLUME_SHORT}_{VOLUME_LONG}", np.log1p(volume_short) - np.log1p(volume_long)
    del volume_short, volume_long

    yield f"feature_dist_high_{RANGE_WINDOW}d", log_price - _rolling(log_price, RANGE_WINDOW).max().to_numpy()
    yield f"feature_dist_low_{RANGE_WINDOW}d", log_price - _rolling(log_price, RANGE_WINDOW).min().to_numpy()


def _feature_columns(prices: pd.DataFrame, layout: BarLayout, *, ranked: bool, dtype: str) -> dict[str, np.ndarray]:
    """Every feature as a long column in ``layout.rows`` order; per-date ranks if ``ranked``.

    Ranks are taken on the float64 values, before the cast to ``dtype``, so float32 rounding
    never creates ties that the raw values do not have.
    """

    def long(column: str) -> np.ndarray:
        return prices[column].to_numpy(dtype="float64", na_value=np.nan)[layout.rows]

    adj_close = long("adj_close")
    # Raw close is the traded price (turnover); fall back to adj_close where it is missing.
    close = long("close")
    close = np.where(np.isnan(close), adj_close, close)
    wide_adj_close, wide_close = layout.to_wide(adj_close), layout.to_wide(close)
    wide_volume = layout.to_wide(long("volume"))
    del adj_close, close
    columns: dict[str, np.ndarray] = {}
    for name, matrix in _wide_features(wide_adj_close, wide_close, wide_volume):
        values = layout.to_long(matrix)
        del matrix
        if ranked:
            values = rank_by_date(values, layout.date_code)
        columns[name] = values.astype(dtype, copy=False)
    return {name: columns[name] for name in FEATURE_NAMES}


def rank_by_date(values: np.ndarray, date_code: np.ndarray) -> np.ndarray:
    """``tasks.ranking.rank_by_group`` over rows sorted by date (``date_code`` non-decreasing),
    called on slices of whole dates (same result, ~2-3x faster on 25M rows). float64, NaN kept."""
    date_code = np.asarray(date_code)
    if len(date_code) > 1 and (np.diff(date_code) < 0).any():
        raise ValueError("rank_by_date needs rows sorted by date (non-decreasing date_code)")
    ranked = np.empty(len(values), dtype=np.float64)
    for start, stop in _whole_date_slices(date_code, _RANK_SLICE_ROWS):
        ranked[start:stop] = rank_by_group(values[start:stop], date_code[start:stop])
    return ranked


def _whole_date_slices(sorted_codes: np.ndarray, target_rows: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) slices of about ``target_rows`` rows that never split a date."""
    n = len(sorted_codes)
    if n == 0:
        return []
    date_starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    # Cut at the first date start at or after every multiple of target_rows.
    wanted = np.arange(target_rows, n, target_rows)
    cuts = date_starts[np.searchsorted(date_starts, wanted).clip(max=len(date_starts) - 1)]
    bounds = np.unique(np.r_[0, cuts[cuts > 0], n])
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


def _output_frame(prices: pd.DataFrame, layout: BarLayout, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    # copy=False and no concat: the feature columns are the biggest arrays, never copy them.
    return pd.DataFrame(
        {
            "ticker": prices["ticker"].take(layout.rows).reset_index(drop=True),
            "date": prices["date"].take(layout.rows).reset_index(drop=True),
            **columns,
        },
        copy=False,
    )


def compute_raw_features(prices: pd.DataFrame, dtype: str = "float32") -> pd.DataFrame:
    """Un-ranked features: columns ``ticker, date, *FEATURE_NAMES`` (``dtype``, float32 by
    default), sorted by (date, ticker).

    One row per valid bar (finite ``adj_close``; NaN rows are absent bars); NaN where the
    ticker has too little history of its own bars. Raises BadInputError on unusable input.
    """
    layout = bar_layout(prices)
    return _output_frame(prices, layout, _feature_columns(prices, layout, ranked=False, dtype=dtype))


def compute_features(prices: pd.DataFrame) -> pd.DataFrame:
    """Per-date ranked features: ``ticker, date, *FEATURE_NAMES`` float32 in (0, 1), NaN kept,
    sorted by (date, ticker).

    Each value is numerai-tools' tie_kept_rank of the raw feature among the tickers that have
    a value on that date (``tasks.ranking.rank_by_group``).
    """
    layout = bar_layout(prices)
    return _output_frame(prices, layout, _feature_columns(prices, layout, ranked=True, dtype="float32"))
