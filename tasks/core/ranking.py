"""Per-date cross-sectional ranking over a whole long panel, without a Python loop.

``rank_by_group`` equals numerai-tools' ``tie_kept_rank`` (pandas ``rank(method="average")``,
then ``(rank - 0.5) / count``) applied to each group separately; NaNs stay NaN and are not
counted. Used by features (per-date ranks), targets, submissions and scoring.

How: rows are laid out as a padded matrix, one row per group (date), and each matrix row is
ranked on its own (``rank_rows``: ``np.argsort(axis=1)`` in cache-sized blocks of rows).
Sorting many short rows is cache-friendly and several times faster than one global
``lexsort`` of (group, value) over tens of millions of values. Tie runs get their average
rank with vectorised run-start/run-end scans. ``rank_rows`` is public so callers that already
hold a ``date × ticker`` matrix (tasks/model/features.py) rank it without a long round trip.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Use the padded matrix when it is at most this many times larger than the data; very
# unbalanced groups (one huge group among tiny ones) fall back to a global lexsort.
_MAX_PADDING_FACTOR = 4


def group_codes(keys: pd.Series | np.ndarray) -> np.ndarray:
    """Dense integer codes (0..k-1) for group keys such as dates."""
    codes, _ = pd.factorize(np.asarray(keys), sort=True)
    return codes.astype(np.int64, copy=False)


def _tie_offsets(same_as_prev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a flat array of sorted values where ``same_as_prev[i]`` says value i equals value
    i - 1 of the same row: the positions that belong to a tie run and how far each must move
    to its run's average position (pandas' ``method="average"``). Only tied elements are visited.
    """
    if not same_as_prev.any():
        return np.empty(0, dtype=np.int64), np.empty(0)
    in_run = same_as_prev.copy()
    in_run[:-1] |= same_as_prev[1:]
    tied = np.flatnonzero(in_run)
    starts = ~same_as_prev[tied]
    sub = np.arange(tied.shape[0])
    run_first = np.maximum.accumulate(np.where(starts, sub, 0))
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:]
    ends[-1] = True
    run_last = np.minimum.accumulate(np.where(ends, sub, tied.shape[0] - 1)[::-1])[::-1]
    # A run's positions are consecutive: its average position is the mean of its ends.
    return tied, (run_first + run_last) / 2.0 - sub


def _rank_row_block(block: np.ndarray) -> np.ndarray:
    """Tie-kept ranks of every row of a 2-d float64 block (NaN = absent), float64."""
    width = block.shape[1]
    missing = np.isnan(block)
    valid_count = width - np.count_nonzero(missing, axis=1)
    if not np.isposinf(block).any():
        # NaN as +inf: the SIMD sort is ~2x faster without NaNs, and +inf still sorts last.
        # Skipped when real +inf values exist, which must rank.
        block = np.where(missing, np.inf, block)
    col_order = np.argsort(block, axis=1)
    sorted_block = np.take_along_axis(block, col_order, axis=1)
    position = np.arange(width)
    with np.errstate(invalid="ignore", divide="ignore"):
        ranked_sorted = (position + 0.5)[None, :] / valid_count[:, None]
        # Ties only among a row's valid values (the absent ones all sort after them).
        same_as_prev = np.zeros(block.shape, dtype=bool)
        same_as_prev[:, 1:] = (sorted_block[:, 1:] == sorted_block[:, :-1]) & (position[1:][None, :] < valid_count[:, None])
        tied, offset = _tie_offsets(same_as_prev.ravel())
        if tied.size:
            # Assign, not add: every member of a run must get the bit-identical rank.
            ranked_sorted.ravel()[tied] = (tied % width + offset + 0.5) / valid_count[tied // width]
    ranked_sorted[position[None, :] >= valid_count[:, None]] = np.nan
    ranked = np.empty_like(ranked_sorted)
    np.put_along_axis(ranked, col_order, ranked_sorted, axis=1)
    return ranked


# Rows of a matrix ranked per call: ~64k values keep the sort and its temporaries in cache
# (and bound the temporaries' memory whatever the matrix size).
_BLOCK_VALUES = 1 << 16


def rank_rows(matrix: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Tie-kept rank of each row of a 2-d matrix among that row's non-NaN values:
    ``(average rank - 0.5) / count``, NaN where the value is NaN.

    ``out`` (same shape, any float dtype) receives the ranks, computed in float64 and cast
    on assignment; a new float64 matrix when not given. ``matrix`` is not modified.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if out is None:
        out = np.empty(matrix.shape, dtype=np.float64)
    n_rows, width = matrix.shape
    step = max(1, _BLOCK_VALUES // max(width, 1))
    for start in range(0, n_rows, step):  # blocks of rows, not per-value Python work
        out[start : start + step] = _rank_row_block(matrix[start : start + step])
    return out


class HeldRowRanks:
    """``rank_rows`` of a matrix whose row i is ``states[state_of_row[i]]`` where ``present[i]`` and NaN
    elsewhere, without sorting every row: each distinct state row is sorted once (here), and each output row
    is then ranked in linear time (``rank``: a running count of the present values along its state's order,
    tie runs averaged). The same float64 ranks as ``rank_rows``. For values held over many rows (a weekly
    source on a daily panel) where mostly only which tickers have a bar changes from row to row.

    ``states``: (k, width) float (NaN = no value)."""

    def __init__(self, states: np.ndarray):
        states = np.asarray(states, dtype=np.float64)
        self.width = states.shape[1]
        self.order = np.argsort(states, axis=1)  # NaN sort last
        sorted_states = np.take_along_axis(states, self.order, axis=1)
        self.valid = ~np.isnan(sorted_states)
        # A tie run: equal values next to each other in the sorted order.
        self.run_start = np.ones(states.shape, dtype=bool)
        self.run_start[:, 1:] = sorted_states[:, 1:] != sorted_states[:, :-1]
        self.run_end = np.ones(states.shape, dtype=bool)
        self.run_end[:, :-1] = self.run_start[:, 1:]
        self.has_ties = (~self.run_start & self.valid).any(axis=1)

    def rank(self, state_of_row: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ranks of rows ``state_of_row`` (m,) with ``present`` (m, width) bool, IN SORTED ORDER: returns
        (ranks (m, width) float64, NaN where not present or no value; ``order`` (m, width): the column of each).
        Callers gather from it (``ranks[i, j]`` is column ``order[i, j]`` of row i); call it on blocks of rows."""
        rows = self.order[state_of_row]
        counted = np.take_along_axis(present, rows, axis=1) & self.valid[state_of_row]
        seen = np.cumsum(counted, axis=1, dtype=np.int64)  # counted values up to and including each position
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.has_ties[state_of_row].any():
                # Per tie run: the counted values before it and up to its end; its members' average position.
                before = np.maximum.accumulate(np.where(self.run_start[state_of_row], seen - counted, 0), axis=1)
                upto = np.minimum.accumulate(np.where(self.run_end[state_of_row], seen, self.width)[:, ::-1],
                                             axis=1)[:, ::-1]
                ranked = ((before + upto - 1) / 2.0 + 0.5) / seen[:, -1:]
            else:  # no ties: position seen - 1
                ranked = (seen - 0.5) / seen[:, -1:]
        ranked[~counted] = np.nan
        return ranked, rows


def _rank_padded(values: np.ndarray, groups: np.ndarray, n_groups: int, sizes: np.ndarray) -> np.ndarray:
    n = values.shape[0]
    width = int(sizes.max())
    already_sorted = bool(np.all(groups[1:] >= groups[:-1]))
    order = None if already_sorted else np.argsort(groups, kind="stable")
    # Row g of the matrix holds group g's values in input order, padded with NaN.
    group_first = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    cell = np.arange(n) + np.repeat(np.arange(n_groups) * width - group_first, sizes)
    matrix = np.full((n_groups, width), np.nan)
    np.put(matrix, cell, values if order is None else values[order])
    in_group_order = rank_rows(matrix).ravel()[cell]
    if order is None:
        return in_group_order
    out = np.empty(n)
    out[order] = in_group_order
    return out


def _rank_lexsort(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    out = np.full(values.shape[0], np.nan)
    idx = np.flatnonzero(~np.isnan(values))
    if idx.size == 0:
        return out
    order = np.lexsort((values[idx], groups[idx]))
    sorted_values = values[idx][order]
    sorted_groups = groups[idx][order]
    row_start = np.empty(len(order), dtype=bool)
    row_start[0] = True
    row_start[1:] = sorted_groups[1:] != sorted_groups[:-1]
    positions = np.arange(len(order))
    avg_position = (positions - np.maximum.accumulate(np.where(row_start, positions, 0))).astype(np.float64)
    same_as_prev = np.zeros(len(order), dtype=bool)
    same_as_prev[1:] = (sorted_values[1:] == sorted_values[:-1]) & ~row_start[1:]
    tied, offset = _tie_offsets(same_as_prev)
    avg_position[tied] += offset
    group_id = np.cumsum(row_start) - 1
    counts = np.bincount(group_id)
    result = np.empty(len(order))
    result[order] = (avg_position + 0.5) / counts[group_id]
    out[idx] = result
    return out


def rank_by_group(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Tie-kept percentile rank of ``values`` within each group, centred: (rank - 0.5) / n.

    ``values``: 1-d float array (NaN allowed). ``groups``: 1-d integer codes (≥ 0), same
    length. Returns float64 ranks strictly inside (0, 1); NaN where the value is NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    groups = np.asarray(groups, dtype=np.int64)
    if values.shape[0] == 0:
        return np.empty(0)
    # Codes of a slice of dates need not start at 0: shift so the matrix has no empty rows on top.
    sizes = np.bincount(groups - groups.min())
    n_groups = sizes.shape[0]
    if n_groups * int(sizes.max()) <= _MAX_PADDING_FACTOR * values.shape[0]:
        return _rank_padded(values, groups - groups.min(), n_groups, sizes)
    return _rank_lexsort(values, groups)
