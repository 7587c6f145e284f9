"""Prediction neutralisation (a model's ``neutralize = {proportion, against}``): each date's predictions
less ``proportion`` of their least-squares fit on chosen features plus a constant, the per-era step of
numerai-tools 0.7.2 ``scoring.neutralize`` (numerblox's FeatureNeutralizer idea). At proportion 1 what
is left has no linear exposure to those features; at 0 nothing changes.

It is applied the same way to a model's validation predictions (per date) and to its live predictions
(the live date), so the validation figures describe what is uploaded. ``against``:

- ``own``: every numeric feature of numerflow's own dataset (the price features, plug-ins' features);
- ``numerai``: Numerai's numeric ``feature_*`` columns (from its training file, and the round's
  ``live.parquet``); the model must train with them (``training.feature_set`` numerai or both);
- feature names: those columns, looked up in numerflow's dataset first, then in Numerai's.

A feature missing for a ticker counts as that date's mean (no exposure either way).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import read_parquet
from numerflow.tasks.model.feature_sets import NUMERAI_CATEGORICAL


def neutralize(values: np.ndarray, exposures: np.ndarray, groups: np.ndarray, proportion: float) -> np.ndarray:
    """``values`` less ``proportion`` × their least-squares fit on ``exposures`` (rows × features) plus
    a constant, each group (date) on its own. NaN exposures are the group's column mean."""
    if not 0.0 <= proportion <= 1.0:
        raise BadInputError(f"neutralize.proportion must be in [0, 1], got {proportion!r}", tag="invalid_config")
    values = np.asarray(values, dtype="float64")
    if proportion == 0.0 or exposures.shape[1] == 0:
        return values.copy()
    out = values.copy()
    codes, _ = pd.factorize(groups, sort=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    for rows in np.split(order, bounds):
        block = np.asarray(exposures[rows], dtype="float64")
        if not np.issubdtype(exposures.dtype, np.integer):  # Classic's int8 bins have no NaN
            with warnings.catch_warnings():  # an all-NaN column's mean is NaN: it becomes 0 (no exposure)
                warnings.simplefilter("ignore", RuntimeWarning)
                means = np.nanmean(block, axis=0)
            block = np.where(np.isnan(block), np.nan_to_num(means), block)
        out[rows] = values[rows] - proportion * fitted(block, values[rows])
    return out


#: Largest λmax/λmin of the centred features' Gram matrix (their κ²) solved through it: its fitted values
#: then differ from lstsq's by about machine epsilon × κ² ≤ 1e-10 relative.
GRAM_CONDITION_LIMIT = 1e6


def fitted(block: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The least-squares fit of ``values`` on ``block`` plus a constant, as numerai-tools computes it
    (``lstsq(..., rcond=1e-6)``). Through the eigendecomposition of the centred features' Gram matrix when
    that is well conditioned: one matrix product instead of an SVD of every row, ~4× faster at Classic's 700
    features × 5,000 rows; no singular value is then near lstsq's cut-off, so the fit is the same (the
    constant takes the mean; a feature constant on the date adds nothing to it). lstsq itself otherwise
    (collinear features, fewer rows than features)."""
    means = block.mean(axis=0)
    centred = block - means
    varying = np.any(centred != 0, axis=0)
    if not varying.all():
        centred = centred[:, varying]
    eigenvalues, vectors = np.linalg.eigh(centred.T @ centred)
    if eigenvalues.size and eigenvalues[-1] > 0 and eigenvalues[0] * GRAM_CONDITION_LIMIT > eigenvalues[-1]:
        return values.mean() + centred @ (vectors @ ((vectors.T @ (centred.T @ values)) / eigenvalues))
    matrix = np.column_stack([block, np.ones(len(values))])
    return matrix @ np.linalg.lstsq(matrix, values, rcond=1e-6)[0]


def numeric_columns(path: Path) -> list[str]:
    """The numeric ``feature_*`` columns of a Parquet file (Numerai's country/exchange codes are not)."""
    schema = pq.read_schema(path)
    return [f.name for f in schema if f.name.startswith("feature_") and f.name not in NUMERAI_CATEGORICAL
            and (pa_is_numeric(f.type))]


def pa_is_numeric(kind: object) -> bool:
    import pyarrow.types as pt

    return bool(pt.is_integer(kind) or pt.is_floating(kind) or pt.is_decimal(kind))


def against_columns(against: Sequence[str], own: Sequence[str], numerai: Sequence[str]) -> tuple[list[str], list[str]]:
    """``against`` resolved to (columns of numerflow's dataset, columns of Numerai's files), in that
    order; an unknown name, or ``numerai`` where Numerai's features are absent, is refused."""
    mine: list[str] = []
    theirs: list[str] = []
    for item in against:
        if item == "own":
            mine += [c for c in own if c not in mine]
        elif item == "numerai":
            if not numerai:
                raise BadInputError("neutralize.against = [\"numerai\"] needs Numerai's features, which this model "
                                    "does not train with: set training.feature_set = \"numerai\" or \"both\", or "
                                    "neutralise against \"own\" or named features", tag="invalid_config")
            theirs += [c for c in numerai if c not in theirs]
        elif item in own:
            mine += [item] if item not in mine else []
        elif item in numerai:
            theirs += [item] if item not in theirs else []
        else:
            raise BadInputError(f"neutralize.against names {item!r}, which is neither \"own\", \"numerai\" nor a "
                                f"numeric feature of the model's data (e.g. {', '.join([*own, *numerai][:5])})",
                                tag="invalid_config")
    if not mine and not theirs:
        raise BadInputError("neutralize.against names no feature to neutralise against", tag="invalid_config")
    return mine, theirs


def feature_values(path: Path, keys: pd.DataFrame, columns: Sequence[str], *, on: Sequence[str]) -> np.ndarray:
    """``columns`` of ``path`` at each row of ``keys`` (matched on ``on``: ticker and date, or ticker
    alone for a one-date file), as a float32 matrix aligned with ``keys`` (NaN where absent; float32 as
    the features are stored: half the memory of a validation panel's float64)."""
    if not columns:
        return np.empty((len(keys), 0), dtype="float32")
    names = pq.read_schema(path).names
    id_column = "ticker" if "ticker" in names else ("numerai_ticker" if "numerai_ticker" in names else "symbol")
    wanted = [c for c in on if c != "ticker"]
    filter_expr = None
    if "date" in wanted:
        dates = pd.to_datetime(keys["date"])
        filter_expr = (ds.field("date") >= dates.min().to_pydatetime()) & (ds.field("date") <= dates.max()
                                                                          .to_pydatetime())
    latest_only = "date" not in wanted and "date" in names  # a live file: its latest date
    frame = read_parquet(path, columns=[id_column, *wanted, *(["date"] if latest_only else []), *columns],
                         filter_expr=filter_expr)
    if latest_only:
        dates = pd.to_datetime(frame["date"])
        frame = frame[(dates == dates.max()).to_numpy()].drop(columns=["date"])
    frame = frame.rename(columns={id_column: "ticker"}).assign(ticker=lambda f: f["ticker"].astype(str))
    left = keys[list(on)].assign(ticker=keys["ticker"].astype(str))
    if "date" in wanted:
        frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
        left["date"] = pd.to_datetime(left["date"]).astype("datetime64[ns]")
    frame = frame.drop_duplicates(list(on), keep="last")
    joined = left.merge(frame, on=list(on), how="left", validate="many_to_one")
    return joined[list(columns)].to_numpy(dtype="float32", na_value=np.nan)
