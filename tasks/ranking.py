"""Per-date cross-sectional ranking over a whole long panel, without a Python loop.

``rank_by_group`` equals numerai-tools' ``tie_kept_rank`` (pandas ``rank(method="average")``,
then ``(rank - 0.5) / count``) applied to each group separately; NaNs stay NaN and are not
counted. Used by features (per-date ranks), submissions (signal in (0, 1)) and scoring.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def group_codes(keys: pd.Series | np.ndarray) -> np.ndarray:
    """Dense integer codes (0..k-1) for group keys such as dates."""
    codes, _ = pd.factorize(np.asarray(keys), sort=True)
    return codes.astype(np.int64, copy=False)


def rank_by_group(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Tie-kept percentile rank of ``values`` within each group, centred: (rank - 0.5) / n.

    ``values``: 1-d float array (NaN allowed). ``groups``: 1-d integer codes, same length.
    Returns float64 ranks strictly inside (0, 1); NaN where the value is NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    groups = np.asarray(groups)
    n = values.shape[0]
    out = np.full(n, np.nan)
    valid = ~np.isnan(values)
    if not valid.any():
        return out
    idx = np.flatnonzero(valid)
    v = values[idx]
    g = groups[idx]
    order = np.lexsort((v, g))
    v_sorted = v[order]
    g_sorted = g[order]
    # Start of each group and of each run of equal (group, value) in sorted order.
    new_group = np.empty(len(order), dtype=bool)
    new_group[0] = True
    new_group[1:] = g_sorted[1:] != g_sorted[:-1]
    new_run = new_group.copy()
    new_run[1:] |= v_sorted[1:] != v_sorted[:-1]
    positions = np.arange(len(order))
    group_start = np.maximum.accumulate(np.where(new_group, positions, 0))
    run_id = np.cumsum(new_run) - 1
    run_start = positions[new_run]
    run_end = np.append(run_start[1:], len(order)) - 1
    # 1-based average rank within the group for every member of a tie run.
    avg_rank = (run_start + run_end) / 2.0 + 1.0 - group_start[run_start]
    group_id = np.cumsum(new_group) - 1
    group_size = np.bincount(group_id)
    ranks_sorted = (avg_rank[run_id] - 0.5) / group_size[group_id]
    result = np.empty(len(order))
    result[order] = ranks_sorted
    out[idx] = result
    return out


def rank_columns_by_group(frame: pd.DataFrame, groups: np.ndarray, dtype: str = "float64") -> pd.DataFrame:
    """``rank_by_group`` on every column of ``frame``."""
    return pd.DataFrame(
        {column: rank_by_group(frame[column].to_numpy(dtype="float64", na_value=np.nan), groups).astype(dtype)
         for column in frame.columns},
        index=frame.index,
    )
