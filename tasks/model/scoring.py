"""Numerai scoring diagnostics over a whole long panel (one row per (ticker, date)).

Every per-date value equals numerai-tools 0.7.2 called on that date alone (tests check it to
1e-9), but computed for all dates at once: per-date ranks with ``tasks.core.ranking.rank_rows``,
per-date sums over padded (dates x rows) blocks on two threads, and the feature-neutralisation
least squares as batched normal equations over those blocks.

Definitions (numerai-tools ``numerai_tools/scoring.py``):

- CORR (``numerai_corr``): targets centred on the date; predictions tie-kept ranked,
  gaussianised (``norm.ppf``) and raised to ``sign(x)|x|**1.5``; targets raised the same way;
  Pearson correlation.
- FNC (``feature_neutral_corr``): predictions tie-kept ranked and gaussianised, neutralised
  (least squares on ``[features, 1]``, singular values below ``1e-6 * max`` ignored), then
  CORR of the residual. numerai-tools' final variance normalisation is a positive scale and
  CORR re-ranks, so it cannot change the score and is skipped.
- Feature exposure (``max_feature_correlation``): Pearson correlation of the prediction as
  given (not re-ranked) with each feature; the max of the absolute values.

Missing values (numerai-tools asserts there are none; our choices):

- CORR: rows whose prediction or target is NaN are dropped on their date before scoring.
- FNC: additionally, a row is dropped when any feature that is observed on its date is NaN.
  Filling would invent feature values (0.5 = a made-up median rank) and tilt the
  neutralisation; dropping keeps the regression on real data. A feature with no value at
  all on a date (e.g. before its history starts) is left out of that date's neutralisation
  instead, so one late-starting feature does not wipe out whole dates. The FNC universe can
  therefore be smaller than the CORR universe; ``diagnostics`` reports the fraction kept.
- Exposure: per (date, feature), rows where both the prediction and that feature are present
  (pandas' pairwise-complete ``corr``).

Degenerate dates score NaN rather than a number: fewer than two rows, a constant prediction
or target on the date (numerai-tools returns NaN there, or rounding noise when the float mean
is inexact), and for FNC predictions lying in the span of the features (residual ≈ 0, whose
ranks would be noise; numerai-tools raises or scores the noise).

Inputs are positional arrays (a pandas Series is read by position, its index ignored).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.ranking import rank_rows

# numerai-tools' ``neutralize`` calls np.linalg.lstsq(..., rcond=1e-6): singular values of
# [features, 1] below rcond * largest are treated as zero. Eigenvalues of the Gram matrix are
# squared singular values, hence the squared threshold.
LSTSQ_RCOND = 1e-6
# A date's values count as constant when their centred sum of squares is this small relative
# to their raw sum of squares (float rounding of the mean leaves ~1e-32; real spread >> 1e-12).
_CONSTANT_RELATIVE_SS = 1e-20
# Padded cells (dates x rows-per-date) per FNC block: bounds memory to a few tens of MB per
# feature-sized array while keeping the batched matmuls large.
_FNC_BLOCK_CELLS = 1 << 18
# Threads for the per-date least squares (the machine numerflow targets has 2 cores).
_THREADS = max(1, min(2, os.cpu_count() or 1))


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _as_float_vector(values: Any, name: str, n_rows: int | None = None) -> np.ndarray:
    if isinstance(values, (pd.Series, pd.Index)):
        if not (pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype)):
            raise BadInputError(f"{name} has non-numeric dtype {values.dtype}; pass numbers (NaN for missing)",
                                tag="scoring_bad_input")
        array = values.to_numpy(dtype="float64", na_value=np.nan)
    else:
        array = np.asarray(values)
        if array.dtype.kind not in "fiub":
            raise BadInputError(f"{name} has non-numeric dtype {array.dtype}; pass numbers (NaN for missing)",
                                tag="scoring_bad_input")
        array = array.astype(np.float64, copy=False)
    if array.ndim != 1:
        raise BadInputError(f"{name} must be 1-d (one value per row), got shape {array.shape}", tag="scoring_bad_input")
    if n_rows is not None and array.shape[0] != n_rows:
        raise BadInputError(f"{name} has {array.shape[0]} rows but dates has {n_rows}; pass aligned arrays",
                            tag="scoring_bad_input")
    n_inf = int(np.isinf(array).sum())
    if n_inf:
        raise BadInputError(f"{name} contains {n_inf} infinite values; replace them with finite values or NaN",
                            tag="scoring_bad_input")
    return array


def _as_feature_matrix(
    features: np.ndarray | pd.DataFrame, n_rows: int, feature_names: Sequence[str] | None
) -> tuple[np.ndarray, list[str]]:
    """2-d float matrix (float32, and integer features such as Numerai Classic's int8, kept as they
    are to save memory; blocks are gathered as float64) and one name per column."""
    if isinstance(features, pd.DataFrame):
        bad = [str(c) for c in features.columns if not pd.api.types.is_numeric_dtype(features[c].dtype)]
        if bad:
            raise BadInputError(f"non-numeric feature columns {bad}; encode or drop them before scoring",
                                tag="scoring_bad_input")
        names = [str(c) for c in features.columns] if feature_names is None else list(feature_names)
        matrix = features.to_numpy(dtype="float64", na_value=np.nan)
    else:
        matrix = np.asarray(features)
        if matrix.ndim == 1:
            matrix = matrix.reshape(-1, 1)
        if matrix.dtype.kind not in "fiub":
            raise BadInputError(f"features have non-numeric dtype {matrix.dtype}; encode or drop such columns",
                                tag="scoring_bad_input")
        if matrix.dtype != np.float32 and matrix.dtype.kind != "i":  # int8 (Numerai Classic) kept as is
            matrix = matrix.astype(np.float64, copy=False)
        names = [f"feature_{j}" for j in range(matrix.shape[1])] if feature_names is None else list(feature_names)
    if matrix.ndim != 2:
        raise BadInputError(f"features must be 2-d (rows x features), got shape {matrix.shape}", tag="scoring_bad_input")
    if matrix.shape[0] != n_rows:
        raise BadInputError(f"features have {matrix.shape[0]} rows but dates has {n_rows}; pass aligned arrays",
                            tag="scoring_bad_input")
    if matrix.shape[1] == 0:
        raise BadInputError("features have no columns; pass at least one feature", tag="scoring_bad_input")
    if len(names) != matrix.shape[1]:
        raise BadInputError(f"{len(names)} feature names for {matrix.shape[1]} feature columns; pass one name per column",
                            tag="scoring_bad_input")
    n_inf = 0 if matrix.dtype.kind == "i" else int(np.isinf(matrix).sum())
    if n_inf:
        raise BadInputError(f"features contain {n_inf} infinite values; replace them with finite values or NaN",
                            tag="scoring_bad_input")
    return matrix, names


def _date_codes(dates: Any) -> tuple[np.ndarray, pd.Index]:
    """Dense codes 0..k-1 in sorted date order, plus the sorted unique dates.

    Same codes as ``tasks.core.ranking.group_codes``; factorised here because we also need the labels.
    """
    keys = dates.to_numpy() if isinstance(dates, (pd.Series, pd.Index)) else np.asarray(dates)
    if keys.ndim != 1:
        raise BadInputError(f"dates must be 1-d (one per row), got shape {keys.shape}", tag="scoring_bad_input")
    try:
        codes, uniques = pd.factorize(keys, sort=True)
    except TypeError as exc:
        raise BadInputError(f"dates are not mutually sortable ({exc}); pass one type of date key",
                            tag="scoring_bad_input") from exc
    n_missing = int((codes < 0).sum())
    if n_missing:
        raise BadInputError(f"dates contain {n_missing} missing values; every row needs a date", tag="scoring_bad_input")
    return codes.astype(np.int64, copy=False), pd.Index(uniques, name="date")


# --------------------------------------------------------------------------------------------
# Per-date building blocks (rows already cleaned of NaN)
# --------------------------------------------------------------------------------------------


def _pow15(x: np.ndarray) -> np.ndarray:
    """``sign(x) |x|**1.5`` (numerai-tools' form) as ``x sqrt|x|``: the same to an ulp, ~15x faster than pow."""
    return x * np.sqrt(np.abs(x))


# Per-date Pearson correlation, the one kernel every score uses (CORR, FNC, exposures). Two
# row layouts feed it: flat rows with date codes (exposures) and padded (dates x width) blocks
# (CORR and FNC); a layout only says how to sum per date and how to centre on the date's mean.


class _GroupedRows:
    """Flat rows; ``codes`` give each row's date (0..n_groups-1)."""

    def __init__(self, codes: np.ndarray, n_groups: int) -> None:
        self.codes = codes
        self.n_groups = n_groups
        self.counts = np.bincount(codes, minlength=n_groups).astype(np.float64)

    def sum(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.codes, weights=values, minlength=self.n_groups)

    def centre(self, values: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):  # dates without rows: never read
            means = self.sum(values) / self.counts
        return values - means[self.codes]


class _PaddedRows:
    """A (dates, width) block: ``present`` marks real rows, padding is 0 in every value array;
    ``counts`` (rows per date) must be >= 1 (a date with no rows still has ``counts < 2``)."""

    def __init__(self, present: np.ndarray, counts: np.ndarray) -> None:
        self.present = present
        self.counts = counts

    def sum(self, values: np.ndarray) -> np.ndarray:
        return values.sum(axis=1)

    def centre(self, values: np.ndarray) -> np.ndarray:
        return (values - (values.sum(axis=1) / self.counts)[:, None]) * self.present


@dataclass(frozen=True)
class _Moments:
    """One variable on one layout: values centred on their date, per-date centred and raw sums
    of squares. Computed once and shared when one side pairs with many (exposures, CORR + FNC)."""

    centred: np.ndarray
    ss: np.ndarray
    raw_ss: np.ndarray


def _moments(rows: _GroupedRows | _PaddedRows, values: np.ndarray) -> _Moments:
    centred = rows.centre(values)
    return _Moments(centred, rows.sum(centred * centred), rows.sum(values * values))


def _pearson(rows: _GroupedRows | _PaddedRows, x: _Moments, y: _Moments) -> np.ndarray:
    """Per-date Pearson correlation of x and y (two-pass: centred first, then products summed).

    NaN on degenerate dates: fewer than 2 rows, or x or y constant on the date (centred sum of
    squares at rounding level relative to the raw one), like pandas' ``Series.corr``.
    """
    sxy = rows.sum(x.centred * y.centred)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.clip(sxy / np.sqrt(x.ss * y.ss), -1.0, 1.0)
    constant = (x.ss <= _CONSTANT_RELATIVE_SS * x.raw_ss) | (y.ss <= _CONSTANT_RELATIVE_SS * y.raw_ss)
    degenerate = (rows.counts < 2) | constant
    corr[degenerate] = np.nan
    return corr


# --------------------------------------------------------------------------------------------
# Public per-date scores
# --------------------------------------------------------------------------------------------


def numerai_corr_by_date(predictions: Any, targets: Any, dates: Any) -> pd.Series:
    """Numerai CORR of each date (numerai-tools ``numerai_corr`` per date), index = sorted dates."""
    codes, labels = _date_codes(dates)
    predictions = _as_float_vector(predictions, "predictions", codes.shape[0])
    targets = _as_float_vector(targets, "targets", codes.shape[0])
    values, _, _ = _corr_and_fnc_values(predictions, targets, None, codes, len(labels))
    return pd.Series(values, index=labels, name="corr")


def _fnc_rows(predictions: np.ndarray, targets: np.ndarray, features: np.ndarray, codes: np.ndarray,
              n_groups: int) -> np.ndarray:
    """Rows FNC can use: prediction and target present, and every feature observed on the date."""
    keep = ~np.isnan(predictions) & ~np.isnan(targets)
    if features.dtype.kind == "i":  # integer features have no missing values
        return keep
    missing = np.isnan(features)
    if not missing.any():
        return keep
    scored = keep.copy()  # "observed on the date" is judged among the scored rows
    kept_codes = codes[scored]
    for j in np.flatnonzero(missing.any(axis=0)):  # only features with gaps (tens at most)
        present = ~missing[scored, j]
        observed_on_date = np.bincount(kept_codes, weights=present, minlength=n_groups) > 0
        keep &= ~missing[:, j] | ~observed_on_date[codes]
    return keep


def _date_blocks(counts: np.ndarray, max_cells: int) -> list[tuple[int, int]]:
    """Consecutive date ranges [start, stop) whose padded size (dates x max rows) fits max_cells."""
    blocks: list[tuple[int, int]] = []
    start, widest = 0, 0
    for d, count in enumerate(counts.tolist()):  # planning loop over dates only, not rows
        new_widest = max(widest, count)
        if d > start and (d + 1 - start) * new_widest > max_cells:
            blocks.append((start, d))
            start, new_widest = d, count
        widest = new_widest
    if start < len(counts):
        blocks.append((start, len(counts)))
    return blocks


def _block_scores(
    predictions: np.ndarray, targets: np.ndarray, features: np.ndarray | None, row_index: np.ndarray,
    sorted_codes: np.ndarray, counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-date CORR and (with ``features``) FNC of the rows ``row_index`` (sorted by date,
    ``sorted_codes``); ``predictions`` and ``targets`` are aligned with ``row_index``.

    Dates are processed in blocks laid out as padded (dates x rows) matrices, one thread per
    core (numpy and LAPACK release the GIL; blocks write disjoint dates). Per date: tie-kept
    rank → gaussianise → CORR against the centred targets (both to the power 1.5). FNC: least
    squares of the gaussianised predictions on [features, 1] through the normal equations of
    the date-centred features (centring absorbs the intercept) for many dates at once:
    stacked Gram matrices, batched eigendecomposition, eigenvalues below (rcond * largest
    singular value of [features, 1])**2 dropped — lstsq's rule; then CORR of the residual.
    ``features`` is the whole matrix, gathered block by block to bound memory. FNC is NaN
    where the residual is rounding noise.
    """
    n_groups = counts.shape[0]
    starts = np.concatenate(([0], np.cumsum(counts)))
    corr = np.full(n_groups, np.nan)
    fnc = None if features is None else np.full(n_groups, np.nan)

    def solve_block(first: int, stop: int) -> None:
        rows = slice(starts[first], starts[stop])
        local_codes = sorted_codes[rows] - first
        position = np.arange(starts[first], starts[stop]) - starts[sorted_codes[rows]]
        block_counts = counts[first:stop].astype(np.float64)
        n_dates, width = stop - first, max(int(counts[first:stop].max()), 1)
        present = np.arange(width)[None, :] < counts[first:stop, None]  # (dates, width)
        safe_counts = np.maximum(block_counts, 1.0)
        # Flat cell of each row in the padded layout: 1-d fancy indexing is several times
        # faster than 2-d (local_codes, position) indexing.
        cell = local_codes * width + position

        def padded(values: np.ndarray, fill: float) -> np.ndarray:
            out = np.full(n_dates * width, fill)
            out[cell] = values[rows]
            return out.reshape(n_dates, width)

        gaussianised = ndtri(rank_rows(padded(predictions, np.nan)))  # NaN padding stays NaN
        centred_targets = padded(targets, 0.0)
        centred_targets -= (centred_targets.sum(axis=1) / safe_counts)[:, None]
        rows_of_block = _PaddedRows(present, safe_counts)
        y = _moments(rows_of_block, np.where(present, _pow15(centred_targets), 0.0))  # shared by CORR and FNC
        x = _moments(rows_of_block, np.where(present, _pow15(gaussianised), 0.0))
        corr[first:stop] = _pearson(rows_of_block, x, y)
        if features is None:
            return

        n_features = features.shape[1]
        flat_x = np.zeros((n_dates * width, n_features))
        # Features absent for a whole date become a zero column: no effect on the projection.
        flat_x[cell] = np.nan_to_num(features[row_index[rows]], nan=0.0, copy=False)
        padded_x = flat_x.reshape(n_dates, width, n_features)
        padded_y = np.where(present, gaussianised, 0.0)
        means_x = padded_x.sum(axis=1) / safe_counts[:, None]
        means_y = padded_y.sum(axis=1) / safe_counts
        padded_x -= means_x[:, None, :]
        padded_x *= present[:, :, None]
        padded_y -= means_y[:, None]
        padded_y *= present

        gram = np.matmul(padded_x.transpose(0, 2, 1), padded_x)  # (dates, k, k)
        xty = np.matmul(padded_x.transpose(0, 2, 1), padded_y[:, :, None])  # (dates, k, 1)
        # Largest eigenvalue of the uncentred Gram of [features, 1], rebuilt from the centred
        # one without cancellation: lstsq measures rcond against this matrix's top singular value.
        full = np.empty((n_dates, n_features + 1, n_features + 1))
        full[:, :n_features, :n_features] = gram + block_counts[:, None, None] * means_x[:, :, None] * means_x[:, None, :]
        full[:, :n_features, n_features] = block_counts[:, None] * means_x
        full[:, n_features, :n_features] = block_counts[:, None] * means_x
        full[:, n_features, n_features] = block_counts
        top = np.linalg.eigvalsh(full)[:, -1]
        eigenvalues, eigenvectors = np.linalg.eigh(gram)
        kept = eigenvalues > (LSTSQ_RCOND ** 2) * top[:, None]
        inverse = np.where(kept, 1.0 / np.where(kept, eigenvalues, 1.0), 0.0)
        coefficients = eigenvectors @ (inverse[:, :, None] * (eigenvectors.transpose(0, 2, 1) @ xty))
        residual = padded_y - np.matmul(padded_x, coefficients)[:, :, 0]

        residual_ss = (residual * residual * present).sum(axis=1)
        signal_ss = (padded_y * padded_y).sum(axis=1)
        # Constant predictions (signal 0) or predictions inside the feature span (residual is
        # rounding noise): the residual's ranks would be meaningless.
        usable = (block_counts >= 2) & (signal_ss > 0) & (residual_ss > _CONSTANT_RELATIVE_SS * signal_ss)
        residual[~present] = np.nan
        x = _moments(rows_of_block, np.where(present, _pow15(ndtri(rank_rows(residual))), 0.0))
        assert fnc is not None  # allocated whenever features are given
        fnc[first:stop] = np.where(usable, _pearson(rows_of_block, x, y), np.nan)

    blocks = _date_blocks(counts, _FNC_BLOCK_CELLS)
    if blocks:
        with ThreadPoolExecutor(max_workers=min(_THREADS, len(blocks))) as pool:
            for future in [pool.submit(solve_block, first, stop) for first, stop in blocks]:
                future.result()
    return corr, fnc


def feature_neutral_corr_by_date(
    predictions: Any, targets: Any, features: np.ndarray | pd.DataFrame, dates: Any
) -> pd.Series:
    """Feature-neutral CORR of each date (numerai-tools ``feature_neutral_corr`` per date).

    See the module docstring for which rows and features a date uses when features are NaN.
    """
    codes, labels = _date_codes(dates)
    n_groups = len(labels)
    predictions = _as_float_vector(predictions, "predictions", codes.shape[0])
    targets = _as_float_vector(targets, "targets", codes.shape[0])
    feature_matrix, _ = _as_feature_matrix(features, codes.shape[0], None)
    _, values, _ = _corr_and_fnc_values(predictions, targets, feature_matrix, codes, n_groups)
    return pd.Series(values, index=labels, name="fnc")


def _corr_and_fnc_values(
    predictions: np.ndarray, targets: np.ndarray, features: np.ndarray | None, codes: np.ndarray, n_groups: int
) -> tuple[np.ndarray | None, np.ndarray | None, int]:
    """Per-date CORR (``features`` None: CORR only) and FNC, plus the number of rows FNC used.

    One blocked pass over the rows sorted by date (``_block_scores``); a second, CORR-only
    pass only when NaN features make FNC use fewer rows than CORR.
    """
    def date_sorted(keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = np.flatnonzero(keep)
        rows = rows[np.argsort(codes[rows], kind="stable")]
        sorted_codes = codes[rows]
        return rows, sorted_codes, np.bincount(sorted_codes, minlength=n_groups)

    scored = ~np.isnan(predictions) & ~np.isnan(targets)
    fnc_keep = scored if features is None else _fnc_rows(predictions, targets, features, codes, n_groups)
    rows, sorted_codes, counts = date_sorted(fnc_keep)
    # CORR and FNC share one pass (and one ranking) when they score the same rows.
    corr, fnc = _block_scores(predictions[rows], targets[rows], features, rows, sorted_codes, counts)
    if not np.array_equal(fnc_keep, scored):
        corr_rows, corr_codes, corr_counts = date_sorted(scored)
        corr, _ = _block_scores(predictions[corr_rows], targets[corr_rows], None, corr_rows, corr_codes, corr_counts)
    return corr, fnc, int(rows.shape[0])


def corr_and_fnc_by_date(
    predictions: Any, targets: Any, features: np.ndarray | pd.DataFrame, dates: Any
) -> pd.DataFrame:
    """``numerai_corr_by_date`` and ``feature_neutral_corr_by_date`` together (columns corr,
    fnc; index sorted dates), sharing the prediction ranking: cheaper than the two calls."""
    codes, labels = _date_codes(dates)
    predictions = _as_float_vector(predictions, "predictions", codes.shape[0])
    targets = _as_float_vector(targets, "targets", codes.shape[0])
    feature_matrix, _ = _as_feature_matrix(features, codes.shape[0], None)
    corr, fnc, _ = _corr_and_fnc_values(predictions, targets, feature_matrix, codes, len(labels))
    return pd.DataFrame({"corr": corr, "fnc": fnc}, index=labels)


def feature_corr_by_date(
    features: np.ndarray | pd.DataFrame, targets: Any, dates: Any, feature_names: Sequence[str] | None = None
) -> pd.DataFrame:
    """Each feature's own Numerai CORR per date: the feature used as the prediction (numerai-tools
    ``numerai_corr`` per date and feature). Rows = sorted dates, columns = feature names; rows where the
    feature or the target is NaN are left out on their date. One whole-panel pass per feature column."""
    codes, labels = _date_codes(dates)
    targets = _as_float_vector(targets, "targets", codes.shape[0])
    matrix, names = _as_feature_matrix(features, codes.shape[0], feature_names)
    scores = {name: _corr_and_fnc_values(matrix[:, j].astype(np.float64), targets, None, codes, len(labels))[0]
              for j, name in enumerate(names)}
    return pd.DataFrame(scores, index=labels, columns=names)


def feature_exposures_by_date(
    predictions: Any, features: np.ndarray | pd.DataFrame, dates: Any, feature_names: Sequence[str] | None = None
) -> pd.DataFrame:
    """Pearson correlation of the predictions (as given) with each feature, per date.

    Rows = sorted dates, columns = feature names; pairwise-complete rows per (date, feature).
    """
    codes, labels = _date_codes(dates)
    predictions = _as_float_vector(predictions, "predictions", codes.shape[0])
    feature_matrix, names = _as_feature_matrix(features, codes.shape[0], feature_names)
    return pd.DataFrame(_exposure_values(predictions, feature_matrix, codes, len(labels)), index=labels, columns=names)


def _exposure_values(predictions: np.ndarray, features: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    has_prediction = ~np.isnan(predictions)
    x = predictions[has_prediction]
    rows = _GroupedRows(codes[has_prediction], n_groups)
    # The prediction side of the correlation is shared by every feature without gaps.
    x_moments = _moments(rows, x)
    exposures = np.empty((n_groups, features.shape[1]))
    for j in range(features.shape[1]):  # loop over features (tens), vectorised over all rows
        column = features[has_prediction, j].astype(np.float64, copy=False)
        present = ~np.isnan(column)
        if present.all():
            exposures[:, j] = _pearson(rows, x_moments, _moments(rows, column))
        else:  # pairwise-complete rows for this feature
            complete = _GroupedRows(rows.codes[present], n_groups)
            exposures[:, j] = _pearson(complete, _moments(complete, x[present]), _moments(complete, column[present]))
    return exposures


def max_feature_exposure_by_date(predictions: Any, features: np.ndarray | pd.DataFrame, dates: Any) -> pd.Series:
    """Per date, max over features of |Pearson corr(prediction, feature)|
    (numerai-tools ``max_feature_correlation`` per date). NaN where no feature has a value."""
    exposures = feature_exposures_by_date(predictions, features, dates).abs()
    return exposures.max(axis=1, skipna=True).rename("max_feature_exposure")


def mean_max_feature_exposure(predictions: Any, features: np.ndarray | pd.DataFrame, dates: Any) -> float:
    """Mean over dates of ``max_feature_exposure_by_date`` (NaN dates skipped)."""
    return float(max_feature_exposure_by_date(predictions, features, dates).mean())


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------


def summarize_scores(per_date: pd.Series) -> dict[str, float | int]:
    """Summary of a per-date score series; NaN dates are skipped.

    mean; std (sample, ddof=1, as Numerai's example notebooks use); sharpe = mean / std per date,
    not annualised, NaN when std is 0 or undefined; sem = std / sqrt(n_dates); max_drawdown =
    the deepest fall of the cumulative sum of scores below its running peak, the peak starting
    at 0 before the first date (so an initial loss counts), reported as a number <= 0.
    """
    scores = pd.Series(per_date, dtype="float64").dropna().to_numpy()
    n_dates = int(scores.shape[0])
    mean = float(scores.mean()) if n_dates else math.nan
    std = float(scores.std(ddof=1)) if n_dates >= 2 else math.nan
    sharpe = mean / std if std > 0 else math.nan  # NaN comparisons are False
    sem = std / math.sqrt(n_dates) if n_dates >= 2 else math.nan
    if n_dates:
        cumulative = np.concatenate(([0.0], np.cumsum(scores)))
        max_drawdown = float(np.min(cumulative - np.maximum.accumulate(cumulative)))
    else:
        max_drawdown = math.nan
    return {"mean": mean, "std": std, "sharpe": sharpe, "max_drawdown": max_drawdown, "sem": sem, "n_dates": n_dates}


def _json_number(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _json_label(label: Any) -> Any:
    if isinstance(label, (pd.Timestamp, np.datetime64)):
        stamp = pd.Timestamp(label)
        return stamp.date().isoformat() if stamp == stamp.normalize() else stamp.isoformat()
    if isinstance(label, np.generic):
        return label.item()
    return label if isinstance(label, (str, int, float)) else str(label)


def _json_summary(summary: dict[str, float | int]) -> dict[str, float | int | None]:
    return {k: (v if isinstance(v, int) else _json_number(v)) for k, v in summary.items()}


def diagnostics(
    predictions: Any,
    targets: Any,
    features: np.ndarray | pd.DataFrame,
    dates: Any,
    feature_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """CORR, FNC and feature-exposure diagnostics as one JSON-ready dict (NaN → None).

    Keys: ``corr`` and ``fnc`` (``summarize_scores`` dicts), ``feature_exposure`` (``mean`` of
    the per-date max |exposure|, ``worst_feature`` = feature with the highest mean |exposure|
    and its ``worst_feature_mean_abs``), ``rows`` (counts: total, scored by CORR, used by FNC),
    ``per_date`` ({"date": [...], "corr": [...], "fnc": [...], "max_feature_exposure": [...]},
    dates as ISO strings when they are timestamps).
    """
    codes, labels = _date_codes(dates)
    n_rows, n_groups = codes.shape[0], len(labels)
    predictions = _as_float_vector(predictions, "predictions", n_rows)
    targets = _as_float_vector(targets, "targets", n_rows)
    feature_matrix, names = _as_feature_matrix(features, n_rows, feature_names)

    scored = ~np.isnan(predictions) & ~np.isnan(targets)
    corr_values, fnc_values, fnc_rows = _corr_and_fnc_values(predictions, targets, feature_matrix, codes, n_groups)
    corr = pd.Series(corr_values, index=labels, name="corr")
    fnc = pd.Series(fnc_values, index=labels, name="fnc")
    exposures = pd.DataFrame(_exposure_values(predictions, feature_matrix, codes, n_groups),
                             index=labels, columns=names).abs()
    max_exposure = exposures.max(axis=1, skipna=True)
    mean_abs_by_feature = exposures.mean(axis=0, skipna=True)
    worst = mean_abs_by_feature.idxmax() if mean_abs_by_feature.notna().any() else None

    n_scored = int(scored.sum())
    return {
        "corr": _json_summary(summarize_scores(corr)),
        "fnc": _json_summary(summarize_scores(fnc)),
        "feature_exposure": {
            "mean": _json_number(float(max_exposure.mean())),
            "worst_feature": worst,
            "worst_feature_mean_abs": None if worst is None else _json_number(float(mean_abs_by_feature[worst])),
        },
        "rows": {
            "total": int(n_rows),
            "scored": n_scored,
            "fnc": fnc_rows,
            "fnc_fraction_of_scored": _json_number(fnc_rows / n_scored) if n_scored else None,
        },
        "per_date": {
            "date": [_json_label(label) for label in labels],
            "corr": [_json_number(v) for v in corr.to_numpy()],
            "fnc": [_json_number(v) for v in fnc.to_numpy()],
            "max_feature_exposure": [_json_number(v) for v in max_exposure.to_numpy()],
        },
    }


def overlap_adjusted_sem(per_date: pd.Series, overlap: int) -> float:
    """Standard error of the mean of per-date scores whose targets overlap ``overlap`` dates.

    Consecutive dates' 20-day targets share most of their window, so per-date scores are
    autocorrelated and ``std / sqrt(n)`` understates the uncertainty. Newey–West (Bartlett
    weights, ``overlap`` lags) corrects for it.
    """
    scores = pd.Series(per_date, dtype="float64").dropna().to_numpy()
    n = scores.shape[0]
    if n < 2:
        return math.nan
    centred = scores - scores.mean()
    variance = centred @ centred / n
    for lag in range(1, min(overlap, n - 1) + 1):
        weight = 1.0 - lag / (overlap + 1.0)
        variance += 2.0 * weight * (centred[lag:] @ centred[:-lag]) / n
    return math.sqrt(max(variance, 0.0) / n)
