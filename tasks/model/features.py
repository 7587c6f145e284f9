"""Price features for every (ticker, date) of a long price panel, vectorised over the panel.

Every window counts the ticker's OWN bars (its trading days), never calendar days and never
another ticker's rows: the panel is laid out as a wide ``ticker × bar`` matrix in which
column ``k`` of row ``t`` is ticker ``t``'s k-th valid bar (NaN after its last bar). Each
ticker's bars are contiguous in memory, so a rolling window runs as ONE pandas call over the
flattened matrix, with windows clipped at each ticker's first bar (``_OwnBarsWindow``). A
feature on date ``d`` reads only bars ``≤ k(d)`` of its own row, i.e. bars dated ``≤ d`` of
that ticker: no look-ahead.

Per-date ranks: each feature is scattered from the ``ticker × bar`` matrix straight into a
``date × ticker`` grid and every grid row (one date) is ranked (``tasks.core.ranking.rank_rows``),
then gathered to the long panel once. Independent features run on a small thread pool: the
heavy numpy/pandas kernels release the GIL, so the 2 cores both work.

Rows whose ``adj_close`` is NaN are treated as absent bars (they get no output row and do
not count in windows). Feature definitions, windows and reasons: docs/features.md.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api.indexers import BaseIndexer
from scipy.signal import lfilter

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.ranking import rank_by_group, rank_rows
from numerflow.tasks.core.schemas import raise_duplicate_prices, validate_price_panel

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

# Rows per rank_by_group call in rank_by_date: whole dates only, small enough for the sort to
# stay in cache (ranking 25M rows in one call is ~3x slower than in slices of ~50k rows).
_RANK_SLICE_ROWS = 50_000

# The date × ticker grid (counting sort of the rows, duplicate check, per-date ranks) is used
# when it has at most this many cells per input row; sparser panels (few tickers per date
# over many dates) are sorted instead, so memory stays proportional to the input.
_MAX_GRID_CELLS_PER_ROW = 4
_GRID_ALWAYS_CELLS = 1_000_000  # small grids are always fine (~12 MB of slots)

# Features computed at once. 2 = the cores of the machines this runs on; more threads only
# add memory (each in-flight feature holds a few panel-sized matrices).
DEFAULT_THREADS = 2

# Cells (ticker × bar) per block of tickers a feature is computed on: bounds the temporaries
# (pandas rolling alone allocates two int64 window bounds per cell) to ~16 MB matrices
# instead of panel-sized ones.
_BLOCK_CELLS = 1 << 21


@dataclass(frozen=True)
class BarLayout:
    """Where each valid bar of a long panel lives in the wide matrices.

    ``rows``: positions in the input frame of the valid bars, ordered by (date, ticker) —
    the output order. ``date_code``: dense, non-decreasing date codes (the groups for
    per-date ranks). ``bar_cell``: flat index of each bar in the ``ticker × bar`` matrix
    (shape ``(n_tickers, n_bars)``; bar 0 = the ticker's first valid bar). ``date_cell``:
    flat index in the ``date × ticker`` grid (shape ``(n_grid_dates, n_tickers)``), or None
    when that grid would be too sparse (ranks then go through ``rank_by_date``).
    ``date_of_bar``: ``(n_tickers, n_bars)`` flat cell in the grid plus one spare row
    (``(n_grid_dates + 1, n_tickers)``) of every bar; the spare row after a ticker's last bar.
    None with ``date_cell``.
    """

    rows: np.ndarray
    date_code: np.ndarray
    bar_cell: np.ndarray
    date_cell: np.ndarray | None
    date_of_bar: np.ndarray | None
    n_bars: int
    n_tickers: int
    n_grid_dates: int

    @property
    def ticker_code(self) -> np.ndarray:
        return self.bar_cell // max(self.n_bars, 1)

    @property
    def bar_index(self) -> np.ndarray:
        return self.bar_cell % max(self.n_bars, 1)

    def to_wide(self, values: np.ndarray, fill: float | int = np.nan) -> np.ndarray:
        """Scatter long values (in ``rows`` order) into the ``ticker × bar`` matrix; ``fill`` where no bar."""
        wide = np.full((self.n_tickers, self.n_bars), fill, dtype=np.result_type(values, np.asarray(fill)))
        wide.ravel()[self.bar_cell] = values
        return wide

    def to_long(self, wide: np.ndarray) -> np.ndarray:
        """Gather the ``ticker × bar`` matrix back to one value per bar, in ``rows`` order."""
        return wide.ravel()[self.bar_cell]

    def rank_by_date(self, wide: np.ndarray, dtype: str = "float64") -> np.ndarray:
        """Per-date tie-kept ranks (``tasks.core.ranking``) of a ``ticker × bar`` float matrix, long, in ``rows`` order."""
        if self.date_cell is None:
            return rank_by_date(self.to_long(wide), self.date_code).astype(dtype, copy=False)
        grid = np.full((self.n_grid_dates, self.n_tickers), np.nan)
        grid.ravel()[self.date_cell] = wide.ravel()[self.bar_cell]
        rank_rows(grid, out=grid)  # in place: one grid-sized matrix per feature, not two
        return grid.ravel()[self.date_cell].astype(dtype, copy=False)


def bar_layout(prices: pd.DataFrame) -> BarLayout:
    """Validate ``prices`` and index its valid bars (finite ``adj_close``) per ticker.

    Raises BadInputError for missing columns, an empty or all-NaN panel, duplicate
    (ticker, date) rows, missing tickers or dates, and non-positive adjusted closes.
    """
    # The layout below finds duplicates on its integer codes, cheaper than a separate check.
    adj_close = validate_price_panel(prices, check_duplicates=False)
    dates = _date_values(prices["date"])
    valid = np.isfinite(adj_close)
    if (adj_close[valid] <= 0).any():
        bad = prices.loc[valid & (adj_close <= 0), ["ticker", "date"]].head(5).astype(str).agg(" ".join, axis=1)
        raise BadInputError(
            f"{int((adj_close[valid] <= 0).sum())} price rows have adj_close <= 0, e.g. {bad.tolist()}; "
            "adjusted closes must be positive: fix or drop those bars at the source",
            tag="invalid_prices",
        )
    # Integer codes of every row (NaN bars included: they count as duplicates too). Sorted
    # codes, so code order is ticker-name and date order. factorize on the Arrow column is fast.
    ticker_code, names = ticker_codes(prices["ticker"])
    n_tickers = len(names)
    date_code, date_values = pd.factorize(dates, sort=True)
    n_dates = len(date_values)
    if n_tickers * n_dates <= _MAX_GRID_CELLS_PER_ROW * len(prices) + _GRID_ALWAYS_CELLS:
        return _grid_layout(prices, valid, ticker_code, date_code, n_tickers, n_dates)
    return _sorted_layout(prices, valid, ticker_code, date_code, n_tickers, n_dates)



def ticker_codes(tickers: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Dense codes of the tickers in name order (the output's order within a date), and the names
    of the codes (an object array, sorted).

    A categorical column (``read_parquet(categorical=["ticker"])``) is re-coded from its
    integer codes: factorize would order it by category position, not by name, and unused
    categories get no code.
    """
    if not isinstance(tickers.dtype, pd.CategoricalDtype):
        codes, names = pd.factorize(tickers, sort=True)
        return codes, np.asarray(names, dtype=object)
    category_code = tickers.cat.codes.to_numpy()  # no -1 here: validate_price_panel rejects missing tickers
    used = np.flatnonzero(np.bincount(category_code, minlength=len(tickers.cat.categories)))
    by_name = used[np.argsort(tickers.cat.categories[used].to_numpy(dtype=object), kind="stable")]
    new_code = np.zeros(len(tickers.cat.categories), dtype=np.int32)
    new_code[by_name] = np.arange(len(by_name), dtype=np.int32)
    return new_code[category_code], tickers.cat.categories[by_name].to_numpy(dtype=object)


def _index_dtype(size: int) -> type:
    # int32 indices: half the memory of int64 whenever they fit.
    return np.int32 if size < np.iinfo(np.int32).max else np.int64


def _grid_layout(prices, valid, ticker_code, date_code, n_tickers, n_dates) -> BarLayout:
    """Counting sort through the dense ``date × ticker`` grid: no comparison sort at all."""
    n = len(prices)
    cell = date_code.astype(np.int64) * n_tickers + ticker_code
    slot = np.full(n_dates * n_tickers, -1, dtype=_index_dtype(n))
    row = np.arange(n, dtype=slot.dtype)
    slot[cell] = row
    # With duplicates, only the last of a (ticker, date) pair keeps its slot.
    overwritten = slot[cell] != row
    if overwritten.any():
        raise_duplicate_prices(prices, np.isin(cell, cell[overwritten]))
    del row, overwritten
    slot[cell[~valid]] = -1  # absent bars: NaN adj_close
    del cell
    occupied = slot >= 0
    # Flat grid order is (date, ticker) order: the output order, for free.
    cell_dtype = _index_dtype(n_dates * n_tickers)
    date_cell: np.ndarray = np.flatnonzero(occupied).astype(cell_dtype)
    rows = slot[date_cell]
    del slot
    # A ticker's bar index on a date = how many of its valid bars are dated up to then, - 1.
    bars_so_far = np.cumsum(occupied.reshape(n_dates, n_tickers), axis=0, dtype=np.int32)
    bar_index = bars_so_far.ravel()[date_cell] - 1
    n_bars = int(bars_so_far[-1].max())
    del bars_so_far, occupied
    grid_date, ticker = np.divmod(date_cell, cell_dtype(n_tickers))
    bar_cell = ticker.astype(_index_dtype(n_tickers * n_bars)) * n_bars + bar_index
    # Flat grid cell of every bar; the spare row n_dates takes the cells after a ticker's last bar.
    date_of_bar = (np.full((n_tickers, 1), n_dates * n_tickers, dtype=_index_dtype((n_dates + 1) * n_tickers))
                   + np.arange(n_tickers, dtype=np.int32)[:, None]).repeat(n_bars, axis=1)
    date_of_bar.ravel()[bar_cell] = date_cell
    return BarLayout(
        rows=rows,
        date_code=_dense_codes(grid_date),
        bar_cell=bar_cell,
        date_cell=date_cell,
        date_of_bar=date_of_bar,
        n_bars=n_bars,
        n_tickers=n_tickers,
        n_grid_dates=n_dates,
    )


def _sorted_layout(prices, valid, ticker_code, date_code, n_tickers, n_dates) -> BarLayout:
    """The same layout by sorting, for panels whose ``date × ticker`` grid would be mostly empty."""
    key = ticker_code.astype(np.int64) * n_dates + date_code
    by_ticker = np.argsort(key, kind="stable")
    sorted_key = key[by_ticker]
    same_as_next = sorted_key[1:] == sorted_key[:-1]
    if same_as_next.any():
        raise_duplicate_prices(prices, np.isin(key, sorted_key[1:][same_as_next]))
    del key, sorted_key, same_as_next
    by_ticker = by_ticker[valid[by_ticker]]  # valid bars sorted by (ticker, date)
    sorted_codes = ticker_code[by_ticker]
    n = len(by_ticker)
    starts = np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]
    positions = np.arange(n)
    bar_index_sorted = positions - np.maximum.accumulate(np.where(starts, positions, 0))
    n_bars = int(bar_index_sorted.max()) + 1
    bar_cell = np.empty(len(prices), dtype=np.int64)
    bar_cell[by_ticker] = sorted_codes.astype(np.int64) * n_bars + bar_index_sorted
    rows = np.flatnonzero(valid)
    rows = rows[np.lexsort((ticker_code[rows], date_code[rows]))]  # output order: (date, ticker)
    return BarLayout(
        rows=rows.astype(_index_dtype(len(prices))),
        date_code=_dense_codes(date_code[rows]),
        bar_cell=bar_cell[rows].astype(_index_dtype(n_tickers * n_bars)),
        date_cell=None,
        date_of_bar=None,
        n_bars=n_bars,
        n_tickers=n_tickers,
        n_grid_dates=n_dates,
    )


def _dense_codes(sorted_codes: np.ndarray) -> np.ndarray:
    """0, 1, 2, … for non-decreasing codes that may skip values (dates with only NaN bars)."""
    return np.cumsum(np.r_[False, sorted_codes[1:] != sorted_codes[:-1]], dtype=sorted_codes.dtype)


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


class _OwnBarsWindow(BaseIndexer):
    """Windows over a flattened ``ticker × bar`` matrix that never start before their ticker's row.

    A window that starts at its row's first cell begins at or after the previous window's end,
    which makes pandas' rolling kernels restart their running sums there (as groupby-rolling
    does per group): no floating-point residue of the previous ticker leaks into the next.
    """

    def __init__(self, window_size: int, n_bars: int):
        super().__init__(window_size=window_size)
        self.n_bars = n_bars

    def get_window_bounds(self, num_values=0, min_periods=None, center=None, closed=None, step=None):
        end = np.arange(1, num_values + 1, dtype=np.int64)
        row_first = end - 1 - (end - 1) % self.n_bars
        return np.maximum(end - self.window_size, row_first), end


def _rolling(wide: np.ndarray, window: int, how: str) -> np.ndarray:
    """Rolling ``how`` ('max' or 'min') over each ticker's last ``window`` bars.

    One pandas call over the flattened ``ticker × bar`` matrix (each ticker's row is contiguous);
    windows are clipped at the ticker's first bar, and min_periods = window makes a ticker's
    first ``window - 1`` bars NaN: a feature needs a full window of the ticker's own bars. A max or
    a min is exact whatever precedes the window; sums go through ``_window_sum``.
    """
    flat = pd.Series(wide.ravel(), copy=False).rolling(_OwnBarsWindow(window, wide.shape[1]), min_periods=window)
    return getattr(flat, how)().to_numpy().reshape(wide.shape)


def _window_sum(wide: np.ndarray, window: int) -> np.ndarray:
    """Sum of each bar's last ``window`` bars of its own ticker; NaN where fewer exist.

    Added in a fixed order that depends only on the window's own values (sums of 1, 2, 4, … bars,
    then the binary digits of ``window``), never a running sum carried along the history: a
    feature computed from a ticker's trailing bars has the same bits as the one computed over its
    whole history, which is what lets a new day's rows be appended (``tasks.model.increment``).
    """
    n_bars = wide.shape[1]
    total: np.ndarray | None = None
    run, run_length, covered, left = wide, 1, 0, window  # run[k]: the sum of bars k - run_length + 1 … k
    while True:
        if left & 1:
            if total is None:  # the lowest digit: nothing covered yet
                total = run.copy()
            else:  # total[k] += run[k - covered], in place (no shifted copy)
                np.add(total[:, covered:], run[:, : max(n_bars - covered, 0)], out=total[:, covered:])
                total[:, :covered] = np.nan
            covered += run_length
        left >>= 1
        if not left:
            break
        longer = np.empty_like(run)
        longer[:, :run_length] = np.nan
        np.add(run[:, run_length:], run[:, : max(n_bars - run_length, 0)], out=longer[:, run_length:])
        run, run_length = longer, run_length * 2
    assert total is not None  # window >= 1
    return total


def _window_mean(wide: np.ndarray, window: int) -> np.ndarray:
    return _window_sum(wide, window) / window


def _window_std(wide: np.ndarray, window: int) -> np.ndarray:
    """Sample standard deviation (ddof 1) of each bar's last ``window`` bars, from ``_window_sum``'s
    sums of values and squares (a rounding residue below 0 is 0; NaN stays NaN)."""
    total = _window_sum(wide, window)
    squares = _window_sum(wide * wide, window)
    variance = (squares - total * (total / window)) / (window - 1)
    return np.sqrt(np.maximum(variance, 0.0, out=variance))


def _ema(wide: np.ndarray, span: int, state: np.ndarray | None = None, start: np.ndarray | None = None) -> np.ndarray:
    """The classic recursive EMA (pandas ``ewm(span, adjust=False)``) along each ticker's bars.

    A first-order IIR filter, e_k = α x_k + (1-α) e_{k-1}, seeded with the first bar
    (state (1-α) x_0 makes e_0 = x_0); causal by construction. NaN after a ticker's last
    bar stays NaN there.

    With ``state`` and ``start`` (one each per row, ``FeatureTail``): row r's filter starts at
    column ``start[r]`` and continues from ``state[r]``, its EMA at the bar before (NaN: no bar
    before, so it is seeded there as above). scipy's filter carries x·0 − e·(α−1) from one bar
    to the next, so continuing from that same number gives the bits of the whole history's run.
    Columns before ``start`` are NaN.
    """
    alpha = 2.0 / (span + 1.0)
    if state is None or start is None:
        seed = (1.0 - alpha) * wide[:, :1]
        return lfilter([alpha], [1.0, alpha - 1.0], wide, axis=1, zi=seed)[0]
    n_rows, n_columns = wide.shape
    out = np.full_like(wide, np.nan)
    if n_rows == 0:
        return out
    columns = start[:, None] + np.arange(n_columns - int(start.min()))
    inside = columns < n_columns
    rows = np.broadcast_to(np.arange(n_rows)[:, None], columns.shape)
    aligned = np.where(inside, wide[rows, np.minimum(columns, n_columns - 1)], np.nan)  # row r's column 0 = start[r]
    seed = np.where(np.isnan(state), (1.0 - alpha) * aligned[:, 0], -(state * (alpha - 1.0)))
    filtered = lfilter([alpha], [1.0, alpha - 1.0], aligned, axis=1, zi=seed[:, None])[0]
    out[rows[inside], columns[inside]] = filtered[inside]
    return out


@dataclass(frozen=True)
class FeatureTail:
    """A trailing slice of each ticker's bars and where it sits in the ticker's whole history, so
    the features of the slice's new bars equal (bit for bit) those of the whole history.

    Arrays are per ticker, in the slice's layout order (ticker names sorted). ``first_bar``: the
    whole-history index of the slice's first bar. ``new_column``: the slice's column of the first
    new bar; the bars before it are the lookback window (``LOOKBACK_BARS``). ``ema_state``:
    ``(n_tickers, 3)``, the fast, slow and signal EMAs (``EMA_STATE_COLUMNS``) at the last bar
    before the new ones; NaN for a ticker with no bar before.
    """

    first_bar: np.ndarray
    new_column: np.ndarray
    ema_state: np.ndarray


#: The EMAs whose last values carry a ticker's MACD forward (``FeatureTail.ema_state``).
EMA_STATE_COLUMNS = ("ema_fast", "ema_slow", "ema_signal")
#: Bars before a new bar that its features read: the longest window (``ret_250d`` reads the bar
#: 250 bars back; ``dist_high``/``dist_low`` 249; the EMAs are carried by ``FeatureTail.ema_state``).
LOOKBACK_BARS = max(*RETURN_HORIZONS, *(w + 1 for w in VOLATILITY_WINDOWS), RSI_WINDOW + 1,
                    TURNOVER_WINDOW, VOLUME_LONG, RANGE_WINDOW)


def _shift_right(wide: np.ndarray, periods: int) -> np.ndarray:
    """Bar k holds bar k - periods of the same ticker (NaN for the first ``periods`` bars)."""
    out = np.full_like(wide, np.nan)
    if periods < wide.shape[1]:
        out[:, periods:] = wide[:, :-periods]
    return out


# The wide float64 input matrices (``ticker × bar``) each feature reads. Features are computed
# in stage order (_COMPUTE_ORDER) and every input is freed as soon as its last feature is
# done, so the inputs (~800 MB at 5,000 tickers × 20 years) do not stay alive while the
# output rows fill up.
_FEATURE_INPUTS: dict[str, tuple[str, ...]] = {
    **{f"feature_ret_{h}d": ("log_price",) for h in RETURN_HORIZONS},
    **{f"feature_vol_{w}d": ("log_price",) for w in VOLATILITY_WINDOWS},
    f"feature_rsi_{RSI_WINDOW}": ("adj_close",),
    f"feature_macd_{MACD_FAST}_{MACD_SLOW}": ("adj_close",),
    f"feature_macd_hist_{MACD_FAST}_{MACD_SLOW}_{MACD_SIGNAL}": ("adj_close",),
    f"feature_log_turnover_{TURNOVER_WINDOW}d": ("turnover",),
    f"feature_volume_ratio_{VOLUME_SHORT}_{VOLUME_LONG}": ("volume",),
    f"feature_dist_high_{RANGE_WINDOW}d": ("log_price",),
    f"feature_dist_low_{RANGE_WINDOW}d": ("log_price",),
}
_INPUT_STAGE = {"turnover": 0, "volume": 0, "adj_close": 1, "log_price": 2}
_COMPUTE_ORDER = sorted(FEATURE_NAMES, key=lambda name: max(_INPUT_STAGE[i] for i in _FEATURE_INPUTS[name]))


def _feature_recipes(inputs: dict[str, np.ndarray], n_bars: int, tail: FeatureTail | None = None,
                     ema_states: tuple[np.ndarray, np.ndarray] | None = None
                     ) -> dict[str, Callable[[slice], np.ndarray]]:
    """``name → function(block of tickers) returning that feature's float64 matrix for those
    tickers``. Features and blocks are independent (each recomputes the cheap intermediates it
    needs), so they can run on different threads, and the temporaries of a block are small.

    ``inputs`` (the matrices named in ``_FEATURE_INPUTS``) is read at call time, not captured:
    the caller drops an input from it once no feature still to run needs it. ``tail``: the
    matrices are a trailing slice of each ticker's history (``FeatureTail``). ``ema_states``:
    ``(out, last_column)``; the MACD recipe writes each ticker's EMAs at its ``last_column`` to
    ``out`` (NaN where the ticker has no bar, ``last_column`` -1).
    """
    columns = np.arange(n_bars)

    def bar(part: slice) -> np.ndarray:
        # Each bar's index in its ticker's whole history (the MACD's warm-up is counted on it).
        return columns if tail is None else tail.first_bar[part][:, None] + columns

    def ema(values: np.ndarray, span: int, part: slice, which: int) -> np.ndarray:
        if tail is None:
            return _ema(values, span)
        return _ema(values, span, tail.ema_state[part, which], tail.new_column[part])

    def log_price(part: slice) -> np.ndarray:
        return inputs["log_price"][part]

    def adj_close(part: slice) -> np.ndarray:
        return inputs["adj_close"][part]

    def log_return(horizon: int) -> Callable[[slice], np.ndarray]:
        return lambda part: log_price(part) - _shift_right(log_price(part), horizon)

    def volatility(window: int) -> Callable[[slice], np.ndarray]:
        return lambda part: _window_std(log_price(part) - _shift_right(log_price(part), 1), window)

    def rsi(part: slice) -> np.ndarray:
        # Cutler's RSI: simple sums of gains and losses over the last 14 price changes, as a
        # fraction in [0, 1]; depends only on the last 15 bars (not on where the history starts).
        change = adj_close(part) - _shift_right(adj_close(part), 1)
        gain_sum = _window_sum(np.where(change > 0, change, np.where(np.isnan(change), np.nan, 0.0)), RSI_WINDOW)
        loss_sum = _window_sum(np.where(change < 0, -change, np.where(np.isnan(change), np.nan, 0.0)), RSI_WINDOW)
        moved = gain_sum + loss_sum
        with np.errstate(invalid="ignore", divide="ignore"):
            # A price that did not move in 14 bars is neutral (0.5), not undefined.
            return np.where(moved > 0, gain_sum / moved, np.where(np.isnan(moved), np.nan, 0.5))

    def macd_line(part: slice) -> np.ndarray:
        return ema(adj_close(part), MACD_FAST, part, 0) - ema(adj_close(part), MACD_SLOW, part, 1)

    def macd(part: slice) -> np.ndarray:
        # In units of the price so it compares across tickers and price levels. The EMAs are
        # seeded by the first bar: require a slow window (and a signal window) of history.
        return np.where(bar(part) >= MACD_SLOW - 1, macd_line(part) / adj_close(part), np.nan)

    def macd_hist(part: slice) -> np.ndarray:
        fast, slow = ema(adj_close(part), MACD_FAST, part, 0), ema(adj_close(part), MACD_SLOW, part, 1)
        line = fast - slow
        signal = ema(line, MACD_SIGNAL, part, 2)
        if ema_states is not None:
            out, last_column = ema_states
            last = last_column[part]
            rows = np.arange(len(last))
            for which, values in enumerate((fast, slow, signal)):
                out[part, which] = np.where(last >= 0, values[rows, np.maximum(last, 0)], np.nan)
        return np.where(bar(part) >= MACD_SLOW + MACD_SIGNAL - 2, (line - signal) / adj_close(part), np.nan)

    def log_turnover(part: slice) -> np.ndarray:
        # Turnover in the listing's currency (raw close × shares); log1p keeps zero volume finite.
        return np.log1p(_window_mean(inputs["turnover"][part], TURNOVER_WINDOW))

    def volume_ratio(part: slice) -> np.ndarray:
        volume = inputs["volume"][part]
        return np.log1p(_window_mean(volume, VOLUME_SHORT)) - np.log1p(_window_mean(volume, VOLUME_LONG))

    recipes: dict[str, Callable[[slice], np.ndarray]] = {}
    for horizon in RETURN_HORIZONS:
        recipes[f"feature_ret_{horizon}d"] = log_return(horizon)
    for window in VOLATILITY_WINDOWS:
        recipes[f"feature_vol_{window}d"] = volatility(window)
    recipes[f"feature_rsi_{RSI_WINDOW}"] = rsi
    recipes[f"feature_macd_{MACD_FAST}_{MACD_SLOW}"] = macd
    recipes[f"feature_macd_hist_{MACD_FAST}_{MACD_SLOW}_{MACD_SIGNAL}"] = macd_hist
    recipes[f"feature_log_turnover_{TURNOVER_WINDOW}d"] = log_turnover
    recipes[f"feature_volume_ratio_{VOLUME_SHORT}_{VOLUME_LONG}"] = volume_ratio
    recipes[f"feature_dist_high_{RANGE_WINDOW}d"] = lambda part: log_price(part) - _rolling(log_price(part), RANGE_WINDOW, "max")
    recipes[f"feature_dist_low_{RANGE_WINDOW}d"] = lambda part: log_price(part) - _rolling(log_price(part), RANGE_WINDOW, "min")
    return recipes


def _ticker_blocks(n_tickers: int, n_bars: int) -> list[slice]:
    """Blocks of whole tickers of about ``_BLOCK_CELLS`` cells (a Python loop over ~10 blocks, not tickers)."""
    step = max(1, _BLOCK_CELLS // max(n_bars, 1))
    return [slice(start, min(start + step, n_tickers)) for start in range(0, n_tickers, step)]


def _wide_inputs(prices: pd.DataFrame, layout: BarLayout) -> dict[str, np.ndarray]:
    """The ``ticker × bar`` float64 matrices the features read (``_FEATURE_INPUTS``)."""

    def wide(column: str) -> np.ndarray:
        return layout.to_wide(prices[column].to_numpy(dtype="float64", na_value=np.nan)[layout.rows])

    adj_close = wide("adj_close")
    # Raw close is the traded price (turnover); fall back to adj_close where it is missing.
    close = wide("close")
    np.copyto(close, adj_close, where=np.isnan(close))
    volume = wide("volume")
    turnover = np.multiply(close, volume, out=close)  # close itself is not needed any more
    return {"adj_close": adj_close, "log_price": np.log(adj_close), "turnover": turnover, "volume": volume}


# Values gathered from a feature's grid per step when filling its output row: the float64
# temporary stays ~16 MB instead of one panel-sized float64 column per thread.
_GATHER_CHUNK = 1 << 21


def _gather_into(target: np.ndarray, source: np.ndarray, index: np.ndarray) -> None:
    """``target[:] = source[index]`` (cast to ``target``'s dtype) in chunks of ``_GATHER_CHUNK``."""
    for start in range(0, len(index), _GATHER_CHUNK):
        target[start : start + _GATHER_CHUNK] = source[index[start : start + _GATHER_CHUNK]]


def _feature_block(
    prices: pd.DataFrame, layout: BarLayout, *, ranked: bool, dtype: str, threads: int = DEFAULT_THREADS,
    tail: FeatureTail | None = None, ema_states: np.ndarray | None = None,
) -> np.ndarray:
    """Every feature in one ``(len(FEATURE_NAMES), n_rows)`` array of ``dtype``: row i is
    ``FEATURE_NAMES[i]`` in ``layout.rows`` order; per-date ranks if ``ranked``.

    One preallocated array that becomes the output frame's only float block (no per-column
    arrays for pandas to consolidate). Ranks are taken on the float64 values, before the cast
    to ``dtype``, so float32 rounding never creates ties that the raw values do not have.
    ``threads`` features are computed at once; the result does not depend on it. ``tail`` and
    ``ema_states`` (``(n_tickers, 3)``, filled): ``compute_features``.
    """
    out = np.empty((len(FEATURE_NAMES), len(layout.rows)), dtype=dtype)  # pages are committed as rows fill
    inputs = _wide_inputs(prices, layout)
    last_column = np.bincount(layout.ticker_code, minlength=layout.n_tickers) - 1
    recipes = _feature_recipes(inputs, layout.n_bars, tail, None if ema_states is None else (ema_states, last_column))
    blocks = _ticker_blocks(layout.n_tickers, layout.n_bars)
    readers_left = {name: sum(name in used for used in _FEATURE_INPUTS.values()) for name in inputs}
    release = threading.Lock()

    def fill(name: str) -> None:
        recipe, target = recipes[name], out[FEATURE_NAMES.index(name)]
        if layout.date_of_bar is None:  # sparse panel: no date grid
            matrix = np.empty((layout.n_tickers, layout.n_bars))
            for part in blocks:
                matrix[part] = recipe(part)
            target[:] = layout.rank_by_date(matrix) if ranked else layout.to_long(matrix)
        else:
            # Each block goes straight to its cells of the date × ticker grid (the spare last
            # row takes the cells after a ticker's last bar): no panel-sized feature matrix.
            grid = np.full((layout.n_grid_dates + 1, layout.n_tickers), np.nan)
            for part in blocks:
                grid.ravel()[layout.date_of_bar[part].ravel()] = recipe(part).ravel()
            if ranked:
                rank_rows(grid[:-1], out=grid[:-1])  # in place: one grid-sized matrix per feature
            assert layout.date_cell is not None  # set together with date_of_bar
            _gather_into(target, grid.ravel(), layout.date_cell)
        with release:  # free each input once no feature still to run reads it
            for used in _FEATURE_INPUTS[name]:
                readers_left[used] -= 1
                if readers_left[used] == 0:
                    del inputs[used]

    if threads <= 1:
        for name in _COMPUTE_ORDER:
            fill(name)
    else:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="features") as pool:
            for done in [pool.submit(fill, name) for name in _COMPUTE_ORDER]:  # FIFO: stage order
                done.result()
    return out


def rank_by_date(values: np.ndarray, date_code: np.ndarray) -> np.ndarray:
    """``tasks.core.ranking.rank_by_group`` over rows sorted by date (``date_code`` non-decreasing),
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
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))


def _output_frame(prices: pd.DataFrame, layout: BarLayout, block: np.ndarray) -> pd.DataFrame:
    """``ticker, date, *FEATURE_NAMES``; the feature array is the frame's float block, not copied."""
    frame = pd.DataFrame(block.T, columns=FEATURE_NAMES, copy=False)
    frame.insert(0, "date", prices["date"].take(layout.rows).reset_index(drop=True))
    frame.insert(0, "ticker", prices["ticker"].take(layout.rows).reset_index(drop=True))
    return frame


def compute_raw_features(prices: pd.DataFrame, dtype: str = "float32", threads: int = DEFAULT_THREADS,
                         tail: FeatureTail | None = None, ema_states: np.ndarray | None = None) -> pd.DataFrame:
    """Un-ranked features: columns ``ticker, date, *FEATURE_NAMES`` (``dtype``, float32 by
    default), sorted by (date, ticker).

    One row per valid bar (finite ``adj_close``; NaN rows are absent bars); NaN where the
    ticker has too little history of its own bars. Raises BadInputError on unusable input.
    ``threads``: features computed at once (same result for any value). ``tail``, ``ema_states``:
    as in ``compute_features``.
    """
    layout = bar_layout(prices)
    block = _feature_block(prices, layout, ranked=False, dtype=dtype, threads=threads, tail=tail,
                           ema_states=ema_states)
    return _output_frame(prices, layout, block)


def compute_features(
    prices: pd.DataFrame, threads: int = DEFAULT_THREADS, layout: BarLayout | None = None,
    tail: FeatureTail | None = None, ema_states: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per-date ranked features: ``ticker, date, *FEATURE_NAMES`` float32 in (0, 1), NaN kept,
    sorted by (date, ticker).

    Each value is numerai-tools' tie_kept_rank of the raw feature among the tickers that have
    a value on that date (``tasks.core.ranking``). ``threads``: features computed at once (same
    result for any value).

    ``tail``: ``prices`` holds each ticker's trailing bars (``FeatureTail``); the rows of its new
    bars are what a whole-history build gives them, the others are not (their windows and ranks
    are cut). ``ema_states``: a ``(n_tickers, 3)`` float64 array filled with each ticker's
    ``EMA_STATE_COLUMNS`` at its last bar, what a later ``FeatureTail`` continues from.
    """
    layout = layout if layout is not None else bar_layout(prices)  # a caller may share one layout
    block = _feature_block(prices, layout, ranked=True, dtype="float32", threads=threads, tail=tail,
                           ema_states=ema_states)
    return _output_frame(prices, layout, block)
