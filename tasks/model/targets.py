"""Numerai-style forward-return targets ("20D2L"), per ticker over its own bars.

For the bar ``i`` of a ticker (its i-th valid bar, NaN ``adj_close`` rows are absent):

    target_raw[i]      = adj_close[i + lag + horizon] / adj_close[i + lag] - 1
    target_end_date[i] = date[i + lag + horizon]

with indices counted over THAT ticker's bars only (the wide ``bar × ticker`` layout of
``tasks.model.features.bar_layout``): a return never spans two tickers, and it is NaN while the
future bars do not exist yet. ``target`` is the per-date tie-kept rank of ``target_raw``
binned into ``bins`` values 0, 1/(bins-1), …, 1 (see ``target_bin_edges``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.model.features import BarLayout, bar_layout

# Numerai's 5-bin target: 5% / 20% / 50% / 20% / 5% of each date's ranks.
NUMERAI_FIVE_BIN_EDGES = (0.05, 0.25, 0.75, 0.95)

#: Trading days between a Numerai data date and the start of its targets' return window.
NUMERAI_TARGET_LAG = 2
#: Numerai counts a target's window in trading days of its own calendar, which we do not have;
#: holidays (and missing bars) make N trading days span more than N weekdays. The purge counts
#: this many extra weekdays per window weekday (a 62-day window: 16 more, ~3 weeks).
NUMERAI_PURGE_MARGIN = 0.25
#: Numerai's ``target`` is ``target_factor_feat_neutral_20``: its name carries no horizon.
_NUMERAI_DEFAULT_HORIZON = {"target": 20}
#: Numerai Crypto's v1 ``target`` carries no horizon either, and Numerai's pages disagree: the data
#: page says "returns after 30 days", the scoring definitions "20D2L". The longer one is purged.
CRYPTO_DEFAULT_HORIZON = 30


def numerai_target_end(dates: np.ndarray, column: str, *, calendar_days: bool = False) -> np.ndarray:
    """A conservative last day of the return window of Numerai's ``column`` at data ``dates``:
    lag + horizon days later plus ``NUMERAI_PURGE_MARGIN`` (datetime64[ns]). Purging on it keeps
    every training label out of validation.

    Signals counts trading days (weekdays here). ``calendar_days`` (Numerai Crypto: a token trades
    every day, its daily close is 23:59 UTC, so "20D2L" is 20 calendar days of return starting 2
    calendar days after the data date) counts every day: 22 days plus the margin, 28 calendar days
    for a 20-day target."""
    span = NUMERAI_TARGET_LAG + numerai_target_horizon(column, crypto=calendar_days)
    steps = span + int(np.ceil(span * NUMERAI_PURGE_MARGIN))
    days = np.asarray(dates).astype("datetime64[D]")
    if calendar_days:
        return (days + np.timedelta64(steps, "D")).astype("datetime64[ns]")
    return np.busday_offset(days, steps, roll="forward").astype("datetime64[ns]")


def numerai_target_horizon(column: str, *, crypto: bool = False) -> int:
    """Days of return a Numerai target spans: the number ending its name (trading days for
    Signals, calendar days for Crypto).

    ``target_chili_60`` and ``target_factor_neutral_60`` span 60 trading days (starting
    ``NUMERAI_TARGET_LAG`` days after the data date), ``target_raw_return_20`` 20, and
    ``target`` (= ``target_factor_feat_neutral_20``) 20; Crypto's ``target_binned_return_20`` 20
    calendar days and its v1 ``target`` ``CRYPTO_DEFAULT_HORIZON``. A name without a horizon is refused:
    guessing one would purge too little and leak labels into validation.
    """
    if column == "target" and crypto:
        return CRYPTO_DEFAULT_HORIZON
    if column in _NUMERAI_DEFAULT_HORIZON:
        return _NUMERAI_DEFAULT_HORIZON[column]
    head, _, tail = column.rpartition("_")
    if head.startswith("target") and tail.isdigit() and int(tail) > 0:
        return int(tail)
    raise BadInputError(
        f"cannot tell the horizon of target column {column!r}: Numerai's target names end in the horizon in "
        "trading days (target_chili_60, target_factor_neutral_20, …); pick one of those or 'target'",
        tag="invalid_targets",
    )


def target_bin_edges(bins: int) -> np.ndarray:
    """Inner edges on the (0, 1) rank scale; rank r falls in bin ``searchsorted(edges, r, 'right')``.

    5 bins: Numerai's proportions 5/20/50/20/5 %. Any other count: equal-frequency bins
    (Numerai publishes no proportions for other counts, so none are invented).
    """
    if bins < 2:
        raise BadInputError(f"bins must be at least 2, got {bins}", tag="invalid_targets")
    if bins == 5:
        return np.asarray(NUMERAI_FIVE_BIN_EDGES)
    return np.arange(1, bins) / bins


def bin_ranks(ranks: np.ndarray, bins: int) -> np.ndarray:
    """Map per-date ranks in (0, 1) to bin values 0, 1/(bins-1), …, 1 (float32); NaN stays NaN."""
    ranks = np.asarray(ranks, dtype=np.float64)
    bin_index = np.searchsorted(target_bin_edges(bins), ranks, side="right")
    return np.where(np.isnan(ranks), np.nan, bin_index / (bins - 1)).astype(np.float32)


def _shift_left(wide: np.ndarray, periods: int, fill: float | int) -> np.ndarray:
    """In a ``ticker × bar`` matrix, bar k holds bar k + periods of the same ticker (``fill`` past its end)."""
    out = np.full_like(wide, fill)
    if periods < wide.shape[1]:
        out[:, : wide.shape[1] - periods] = wide[:, periods:]
    return out


def compute_targets(
    prices: pd.DataFrame, horizon: int = 20, lag: int = 2, bins: int = 5, layout: BarLayout | None = None
) -> pd.DataFrame:
    """Forward-return targets: ``ticker, date, target_raw (float64), target_end_date, target (float32)``.

    One row per valid bar, sorted by (date, ticker) like ``compute_features``. ``target_raw``
    and ``target_end_date`` are NaN/NaT where bar ``i + lag + horizon`` does not exist yet;
    ``target`` is NaN there too. Raises BadInputError on unusable input or options.
    """
    check_target_options(horizon, lag, bins)  # before the heavy work
    layout = layout if layout is not None else bar_layout(prices)  # shared with features by tasks.model.dataset
    dates = prices["date"].take(layout.rows).reset_index(drop=True)
    return pd.DataFrame({"ticker": prices["ticker"].take(layout.rows).reset_index(drop=True), "date": dates,
                         **target_columns(prices, horizon, lag, bins, layout, dates)})


def check_target_options(horizon: int, lag: int, bins: int) -> None:
    """BadInputError naming the problem when the target settings cannot make a target."""
    if horizon < 1 or lag < 0:
        raise BadInputError(
            f"horizon must be >= 1 and lag >= 0 (got horizon={horizon}, lag={lag}); fix the target settings",
            tag="invalid_targets",
        )
    target_bin_edges(bins)


def target_columns(prices: pd.DataFrame, horizon: int, lag: int, bins: int, layout: BarLayout,
                   dates: pd.Series | None = None) -> dict[str, np.ndarray | pd.Series]:
    """``compute_targets``' columns ``target_raw``, ``target_end_date``, ``target`` without its ids, in
    ``layout.rows`` order (the dataset adds them to the feature rows: no second copy of the ids)."""
    adj_close = prices["adj_close"].to_numpy(dtype="float64", na_value=np.nan)[layout.rows]
    wide_adj_close = layout.to_wide(adj_close)
    del adj_close
    # Bar k: adj_close[k + lag + horizon] / adj_close[k + lag] - 1, NaN where the end bar does not
    # exist; divided slice by slice (no shifted copies of the matrix).
    n_bars, span = wide_adj_close.shape[1], lag + horizon
    wide_target_raw = np.full_like(wide_adj_close, np.nan)
    if span < n_bars:
        known = wide_target_raw[:, : n_bars - span]
        np.divide(wide_adj_close[:, span:], wide_adj_close[:, lag : n_bars - horizon], out=known)
        known -= 1.0
    del wide_adj_close
    target_raw = layout.to_long(wide_target_raw)
    target = bin_ranks(layout.rank_by_date(wide_target_raw), bins)
    del wide_target_raw

    if dates is None:
        dates = prices["date"].take(layout.rows).reset_index(drop=True)
    end_date = _end_dates(layout, pd.to_datetime(dates), lag + horizon)
    return {"target_raw": target_raw, "target_end_date": end_date, "target": target}


def _end_dates(layout: BarLayout, dates: pd.Series, offset: int) -> pd.Series:
    """Date of bar ``i + offset`` of the same ticker (NaT when it does not exist)."""
    date_values = dates.to_numpy()
    ticks = date_values.view(np.int64)
    # int64 min is NaT in datetime64: the fill marks "no such bar yet".
    wide_ticks = layout.to_wide(ticks, fill=np.iinfo(np.int64).min)
    end_ticks = layout.to_long(_shift_left(wide_ticks, offset, np.iinfo(np.int64).min))
    return pd.Series(end_ticks.view(date_values.dtype))
