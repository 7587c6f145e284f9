"""Numerai's ALPHA, for every date at once.

Since September 2025 Signals pays ``clip(payout_factor * (0.3 * ALPHA + 0.8 * MPC), ±0.017)``.
ALPHA scores what is left of a signal after Numerai removes its own factors (country, sector,
Barra-style and custom ones, the ``validation_neutralizer.parquet`` columns). Definition
(numerai-tools 0.7.2 ``scoring.alpha``), per date:

1. targets centred on the date: ``t = target - mean(target)``;
2. the signal tie-kept ranked, gaussianised and raised to ``sign(x)|x|**1.5``: ``s``;
3. neutral weights ``v = (s - N (Nᵀ (w ∘ s))) ∘ w`` with ``N`` the date's neutralizer matrix
   (rows = tickers) and ``w`` its sample weights;
4. ``ALPHA = v · t / n`` over the date's ``n`` scored rows.

``N`` is used as given (Numerai's neutralizers are built so that ``N Nᵀ w`` is a projection);
no least squares is solved. A signal that *is* a neutralizer column has ALPHA ≈ 0 however
high its CORR; a signal orthogonal to them keeps its ALPHA. MPC (the other 0.8) needs every
staked user's predictions: it cannot be computed locally.

Rows (numerai-tools asserts there are no NaN; our choices): the target mean is taken over the
date's rows with a target; a row is scored when its prediction, target, sample weight and
every neutralizer column are present, and the prediction is ranked among the scored rows.
With complete rows this is exactly numerai-tools (tests: 1e-9).

Computed blockwise: the rows are sorted by date and laid out as padded
``(dates, width, neutralizers)`` blocks of bounded size (one reused buffer per thread), the two
projections are batched contractions over the block, and blocks run on two threads.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri
from threadpoolctl import threadpool_limits

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.ranking import rank_rows
from numerflow.tasks.model.scoring import _THREADS, _as_float_vector, _date_blocks, _date_codes, _pow15

# Padded cells (dates x width x neutralizers) per block: 2^21 float64 = 16 MB per thread,
# reused block after block (fresh large allocations cost a page fault per 4 KB), whatever the
# size of the whole panel.
_ALPHA_BLOCK_CELLS = 1 << 21


def _as_neutralizer_matrix(neutralizers: Any, n_rows: int) -> np.ndarray:
    if isinstance(neutralizers, pd.DataFrame):
        bad = [str(c) for c in neutralizers.columns if not pd.api.types.is_numeric_dtype(neutralizers[c].dtype)]
        if bad:
            raise BadInputError(f"non-numeric neutralizer columns {bad}; pass numbers", tag="scoring_bad_input")
        matrix = neutralizers.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        matrix = np.asarray(neutralizers)
        if matrix.ndim == 1:
            matrix = matrix.reshape(-1, 1)
        if matrix.dtype.kind not in "fiu":
            raise BadInputError(f"neutralizers have non-numeric dtype {matrix.dtype}", tag="scoring_bad_input")
    if matrix.ndim != 2 or matrix.shape[0] != n_rows or matrix.shape[1] == 0:
        raise BadInputError(f"neutralizers must be (rows={n_rows}, columns >= 1), got shape {matrix.shape}",
                            tag="scoring_bad_input")
    return matrix


def _incomplete_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows with a NaN neutralizer; refuses infinite values. One fast pass (a row sum is finite
    unless the row holds NaN or inf, or overflows), then an exact look at the rare other rows."""
    row_sums = np.einsum("ij->i", matrix)
    suspect = np.flatnonzero(~np.isfinite(row_sums))
    incomplete = np.zeros(matrix.shape[0], dtype=bool)
    if suspect.size:
        rows = matrix[suspect]
        if np.isinf(rows).any():
            raise BadInputError("neutralizers contain infinite values; replace them with finite values or NaN",
                                tag="scoring_bad_input")
        incomplete[suspect] = np.isnan(rows).any(axis=1)
    return incomplete


def alpha_by_date(predictions: Any, targets: Any, neutralizers: Any, sample_weights: Any, dates: Any) -> pd.Series:
    """ALPHA of each date (numerai-tools ``alpha`` per date); index = sorted dates, name ``alpha``.

    ``predictions``, ``targets``, ``sample_weights``: one value per row; ``neutralizers``: one
    row per row, one column per neutralizer (float32 is read as is and widened per block);
    ``dates``: each row's date. NaN where a date has no scored row.
    """
    codes, labels = _date_codes(dates)
    n_rows = codes.shape[0]
    signals = _as_float_vector(predictions, "predictions", n_rows).reshape(-1, 1)
    values = _alpha_values(signals, _as_float_vector(targets, "targets", n_rows),
                           _as_neutralizer_matrix(neutralizers, n_rows),
                           _as_float_vector(sample_weights, "sample_weights", n_rows), codes, len(labels))
    return pd.Series(values[:, 0], index=labels, name="alpha")


def alpha_by_date_of_columns(signals: pd.DataFrame, targets: Any, neutralizers: Any, sample_weights: Any,
                             dates: Any) -> pd.DataFrame:
    """``alpha_by_date`` of each column of ``signals`` (one pass: each block of the neutralizers is laid out
    once for all of them); dates x columns. A column's NaN rows are left out of its own ranks and sums, as
    ``alpha_by_date`` of that column alone leaves them out."""
    codes, labels = _date_codes(dates)
    n_rows = codes.shape[0]
    matrix = np.column_stack([_as_float_vector(signals[c], str(c), n_rows) for c in signals.columns]) \
        if len(signals.columns) else np.empty((n_rows, 0))
    values = _alpha_values(matrix, _as_float_vector(targets, "targets", n_rows),
                           _as_neutralizer_matrix(neutralizers, n_rows),
                           _as_float_vector(sample_weights, "sample_weights", n_rows), codes, len(labels))
    return pd.DataFrame(values, index=labels, columns=signals.columns)


def _alpha_values(signals: np.ndarray, targets: np.ndarray, neutralizers: np.ndarray, weights: np.ndarray,
                  codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Dates x signals: the ALPHA of each column of ``signals`` (rows x signals) per date."""
    n_signals = signals.shape[1]
    has_target = ~np.isnan(targets)
    target_counts = np.bincount(codes[has_target], minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        target_means = np.bincount(codes[has_target], weights=targets[has_target], minlength=n_groups) / target_counts
    # Rows some signal is scored on; a signal's own NaN rows are then left out of its ranks and sums.
    scored = has_target & ~np.isnan(weights) & ~_incomplete_rows(neutralizers)
    scored &= ~np.isnan(signals).all(axis=1)
    # Rows sorted by date. Inputs usually come sorted (files are written date by date): then no
    # sort and no copy of the codes (fresh large arrays cost page faults on this machine class).
    rows = np.flatnonzero(scored)
    sorted_codes = codes if len(rows) == len(codes) else codes[rows]
    if len(sorted_codes) > 1 and not (sorted_codes[1:] >= sorted_codes[:-1]).all():
        order = np.argsort(sorted_codes, kind="stable")
        rows, sorted_codes = rows[order], sorted_codes[order]
    counts = np.bincount(sorted_codes, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    n_columns = neutralizers.shape[1]
    alpha = np.full((n_groups, n_signals), np.nan)
    # A block's cells hold its neutralizers and ~5 (dates x signals x width) working arrays.
    blocks = _date_blocks(counts, max(_ALPHA_BLOCK_CELLS // (n_columns + 5 * n_signals), 1))
    widest = max((int(counts[a:b].max()) * (b - a) for a, b in blocks), default=0)

    def solve_block(first: int, stop: int, buffer: np.ndarray) -> None:
        lo, hi = int(starts[first]), int(starts[stop - 1] + counts[stop - 1])
        if hi == lo:
            return
        n_dates, width = stop - first, max(int(counts[first:stop].max()), 1)
        local = sorted_codes[lo:hi] - first
        cell = local * width + (np.arange(lo, hi) - starts[sorted_codes[lo:hi]])
        block_rows = rows[lo:hi]

        def padded(values: np.ndarray, fill: float) -> np.ndarray:
            out = np.full(n_dates * width, fill)
            out[cell] = values[block_rows]
            return out.reshape(n_dates, width)

        # The padded neutralizers go into this thread's reused buffer (no new pages per block);
        # a date whose rows are consecutive in the input is copied as a slice, not gathered.
        n = buffer[: n_dates * width * n_columns].reshape(n_dates, width, n_columns)
        for i, date in enumerate(range(first, stop)):
            a, m = int(starts[date]), int(counts[date])
            date_rows = rows[a:a + m]
            if m and date_rows[-1] - date_rows[0] == m - 1:
                np.copyto(n[i, :m], neutralizers[date_rows[0]:date_rows[0] + m])
            elif m:
                n[i, :m] = neutralizers[date_rows]
            n[i, m:] = 0.0
        # Signals as (dates, signals, width): each (date, signal) row is ranked on its own.
        raw = np.full((n_dates * width, n_signals), np.nan)
        raw[cell] = signals[block_rows]
        raw = np.ascontiguousarray(raw.reshape(n_dates, width, n_signals).transpose(0, 2, 1))
        present = ~np.isnan(raw)
        ranked = rank_rows(raw.reshape(-1, width)).reshape(raw.shape)
        signal = np.nan_to_num(_pow15(ndtri(ranked)), nan=0.0)  # padding and a signal's NaN rows: 0
        w = padded(weights, 0.0)[:, None, :] * present  # a signal's NaN rows weigh nothing
        t = padded(targets, 0.0)
        t.reshape(-1)[cell] -= target_means[sorted_codes[lo:hi]]  # centred on the date's targets
        exposure = np.matmul(w * signal, n)  # Nᵀ (w ∘ s): (dates, signals, neutralizers)
        neutral = (signal - np.matmul(exposure, n.transpose(0, 2, 1))) * w
        scored_counts = present.sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            alpha[first:stop] = np.where(scored_counts > 0,
                                         np.einsum("dsw,dw->ds", neutral, t) / scored_counts, np.nan)

    def worker(offset: int, step: int) -> None:
        buffer = np.empty(widest * n_columns)
        for first, stop in blocks[offset::step]:
            solve_block(first, stop, buffer)

    workers = min(_THREADS, len(blocks))
    if workers:  # each worker runs its own BLAS products: BLAS threads on top of them oversubscribe the cores
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max_workers=workers) as pool:
            for future in [pool.submit(worker, j, workers) for j in range(workers)]:
                future.result()
    return alpha
