"""Schemas of the data store's tables, and the checks every stage runs on its input.

Prices (``prices/<source>/part-*.parquet``), one row per (ticker, date):

=========  ==========  ==========================================================
column     type        meaning
=========  ==========  ==========================================================
ticker     string      ``numerai_ticker`` ("SYMBOL CC"), or crypto ``symbol``
date       date32      trading day (exchange-local calendar date)
open       float64     raw open, in the listing's main currency unit
high       float64     raw high
low        float64     raw low
close      float64     raw close
adj_close  float64     close adjusted for splits and dividends
volume     float64     shares traded
currency   string      ISO currency of the prices (sub-units already converted)
=========  ==========  ==========================================================

Universe (``universe/<tournament>/<snapshot>.parquet``): ``numerai_ticker`` string,
``composite_figi`` string (nullable), ``country`` string (ISO-2, from the ticker).

Features (``features/<snapshot>.parquet``): ``ticker``, ``date``, ``feature_*`` float32 in
[0, 1] (per-date cross-sectional ranks, NaN where undefined), ``target`` float32 in
{0, .25, .5, .75, 1} (NaN where the future is unknown), ``target_raw`` float64 (the
forward return itself), ``target_end_date`` date32 (last bar the target looks at).

Predictions (``predictions/<run>-<kind>.parquet``): ``ticker``, ``date``, ``prediction``
float64 (and ``target`` for validation predictions).

Submission (CSV): ``numerai_ticker,signal`` (``symbol,signal`` for crypto), signal in (0, 1).

Live scores (``scores/<tournament>/history.parquet``, ``SCORES_SCHEMA``), one row per (model,
round, metric, day) as Numerai's ``submissionScores`` gives them: ``model`` string, ``model_id``
string, ``round`` int64, ``metric`` string (Numerai's displayName, e.g. a CORR, MMC, ALPHA, MPC or
payout score), ``value`` float64, ``percentile`` float64, ``day`` int64 (scoring day within the
round), ``date`` timestamp (UTC), ``resolved`` bool, ``fetched_at`` timestamp (UTC).

Numerai Classic's files, as Numerai publishes them (``tasks/classic/data.py`` downloads and reads
them; ``tasks/classic/demo.py`` writes synthetic ones):

- ``numerai/classic/<version>/train.parquet``, ``validation.parquet`` (once per version) and
  ``numerai/classic/<version>/round-<n>/live.parquet`` (once per round): index ``id`` string (unique
  per stock and era), ``era`` string (zero-padded week number "0001"…; ``X`` in live), ``data_type``
  string (``train`` / ``validation`` / ``live``), ``feature_*`` int8 in 0..4 (5 equal bins; 2 when an
  era has no data), ``target*`` float in {0, .25, .5, .75, 1} (some targets 7 bins; ``target`` is the
  main target and never NaN, auxiliary ``target_<name>_20`` / ``_60`` can be NaN; NaN in live).
- ``numerai/classic/<version>/features.json``: ``{"feature_sets": {name: [feature, …]}, "targets": [...]}``
  (sets ``small`` ⊂ ``medium`` ⊂ ``all`` and others).
- ``numerai/classic/<version>/meta_model.parquet``: index ``id``, ``era``, ``data_type``,
  ``numerai_meta_model`` float in (0, 1) (Numerai's meta model on the validation eras).
- ``validation_example_preds.parquet`` (per version), ``round-<n>/live_example_preds.parquet`` (per
  round): index ``id``, ``prediction`` float (Numerai's example model).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from numerflow.tasks.core.errors import BadInputError

PRICE_COLUMNS = ["open", "high", "low", "close", "adj_close", "volume"]

PRICE_SCHEMA = pa.schema(
    [
        ("ticker", pa.string()),
        ("date", pa.date32()),
        *[(column, pa.float64()) for column in PRICE_COLUMNS],
        ("currency", pa.string()),
    ]
)

def as_strings(values: pd.Series) -> pd.Series:
    """``values`` in pandas' string dtype. A categorical (tickers of a whole panel) goes through
    Arrow, its codes and categories, instead of one Python string per row (seconds at 25 M rows)."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return values.astype("string")
    codes = values.cat.codes.to_numpy()
    names = pa.array(np.asarray(values.cat.categories, dtype=object), pa.string())
    strings = pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), names).cast(pa.string())
    out = strings.to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get)  # positional, then our index
    out.index, out.name = values.index, values.name
    return out


SCORES_SCHEMA = pa.schema(
    [
        ("model", pa.string()), ("model_id", pa.string()), ("round", pa.int64()), ("metric", pa.string()),
        ("value", pa.float64()), ("percentile", pa.float64()), ("day", pa.int64()),
        ("date", pa.timestamp("us", tz="UTC")), ("resolved", pa.bool_()), ("fetched_at", pa.timestamp("us", tz="UTC")),
    ]
)

UNIVERSE_SCHEMA = pa.schema(
    [("numerai_ticker", pa.string()), ("composite_figi", pa.string()), ("country", pa.string())]
)


def validate_price_panel(prices: pd.DataFrame, *, check_duplicates: bool = True) -> np.ndarray:
    """Raise BadInputError naming the problem when a price panel cannot be used.

    Checked: required columns, not empty, not all-NaN closes, every row has a ticker, and (unless
    the caller finds duplicates itself, as the feature layout does) no duplicate (ticker, date).
    Returns ``adj_close`` as a float64 array (NaN for absent bars).
    """
    missing = [c for c in ["ticker", "date", "close", "adj_close", "volume"] if c not in prices.columns]
    if missing:
        raise BadInputError(
            f"price panel lacks columns {missing}; a price source must return {PRICE_SCHEMA.names}",
            tag="invalid_prices",
        )
    if prices.empty:
        raise BadInputError(
            "price panel is empty: the source returned no bars; check the universe and the source's ledger",
            tag="empty_prices",
        )
    adj_close = prices["adj_close"].to_numpy(dtype="float64", na_value=np.nan)
    if not np.isfinite(adj_close).any():
        raise BadInputError(
            "every adjusted close in the price panel is NaN; the source returned no usable prices",
            tag="empty_prices",
        )
    if prices["ticker"].isna().any():
        raise BadInputError(
            f"{int(prices['ticker'].isna().sum())} price rows have no ticker; drop them at the source",
            tag="invalid_prices",
        )
    if check_duplicates:
        # On integer codes: DataFrame.duplicated costs ~1 s per 5M rows, this a fraction.
        ticker_code, _ = pd.factorize(prices["ticker"])
        date_code, dates = pd.factorize(prices["date"])
        key = ticker_code.astype(np.int64) * max(len(dates), 1) + date_code
        sorted_key = np.sort(key)
        repeated = sorted_key[1:][sorted_key[1:] == sorted_key[:-1]]
        if repeated.size:
            raise_duplicate_prices(prices, np.isin(key, repeated))
    return adj_close


def raise_duplicate_prices(prices: pd.DataFrame, duplicated: np.ndarray) -> None:
    """The one error for duplicate (ticker, date) rows; ``duplicated`` marks every copy."""
    sample = prices.loc[duplicated, ["ticker", "date"]].head(5).astype(str).agg(" ".join, axis=1).tolist()
    raise BadInputError(
        f"{int(duplicated.sum())} duplicate (ticker, date) rows in the price panel, e.g. {sample}; "
        "each ticker must have at most one bar per date: de-duplicate the source data",
        tag="duplicate_prices",
    )


def ticker_country(tickers: pd.Series) -> pd.Series:
    """ISO-2 country of ``numerai_ticker`` values ("SYMBOL CC" → "CC")."""
    return tickers.astype("string").str.rsplit(" ", n=1).str[-1]
