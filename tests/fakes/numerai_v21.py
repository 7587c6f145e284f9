"""Signals v2.1 data files for the fake Numerai, in the real files' layout.

``train.parquet`` / ``validation.parquet`` / ``live.parquet``: ``numerai_ticker``,
``composite_figi``, ``date`` ("YYYY-MM-DD" strings), ``data_type``, Numerai's feature columns
(float32, plus the strings ``feature_country`` and ``feature_exchange_code``) and, except live,
the float32 targets binned to {0, .25, .5, .75, 1} (auxiliary ones may be NaN). The feature and
target names are those of the published v2.1 schema; the neutralizer files'
``neutralizer_<i>`` column names are ours (their real names are not needed: every numeric
column of that file is a neutralizer). ``validation_neutralizer.parquet`` is made
weighted-orthonormal per date (Nᵀ diag(w) N = I, a constant column included), which is the
property ALPHA relies on; ``validation_sample_weights.parquet`` holds ``sample_weight``.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

NUMERIC_FEATURES = (
    "feature_adv_20d_factor", "feature_beta_factor", "feature_book_to_price_factor",
    "feature_dividend_yield_factor", "feature_earnings_yield_factor", "feature_growth_factor",
    "feature_impact_cost_factor", "feature_market_cap_factor", "feature_momentum_12w_factor",
    "feature_momentum_26w_factor", "feature_momentum_52w_factor", "feature_momentum_52w_less_4w_factor",
    "feature_ppo_60d_130d_country_ranknorm", "feature_ppo_60d_90d_country_ranknorm", "feature_price_factor",
    "feature_rsi_130d_country_ranknorm", "feature_rsi_60d_country_ranknorm", "feature_rsi_90d_country_ranknorm",
    "feature_trix_130d_country_ranknorm", "feature_trix_60d_country_ranknorm", "feature_value_factor",
    "feature_volatility_factor",
)
CATEGORICAL_FEATURES = ("feature_country", "feature_exchange_code")
TARGETS = ("target", "target_raw_return_20", "target_raw_return_60", "target_factor_neutral_20",
           "target_factor_neutral_60", "target_factor_feat_neutral_20", "target_factor_feat_neutral_60",
           "target_chili_60")
EXCHANGES = {"US": ("XNYS", "XNAS"), "JP": ("XTKS",), "GB": ("XLON",)}


def parquet_bytes(frame: pd.DataFrame, row_group_size: int | None = None) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, row_group_size=row_group_size)
    return buffer.getvalue()


def _binned(values: np.ndarray) -> np.ndarray:
    ranks = pd.Series(values).rank(pct=True).to_numpy()
    return (np.searchsorted([0.05, 0.25, 0.75, 0.95], ranks, side="right") / 4).astype(np.float32)


def signals_frame(tickers: list[str], dates: pd.DatetimeIndex, *, seed: int = 0, data_type: str = "train",
                  with_targets: bool = True, signal_feature: str | None = "feature_momentum_12w_factor",
                  signal: float = 0.5) -> pd.DataFrame:
    """One row per (ticker, date) in the v2.1 layout; targets carry ``signal`` of ``signal_feature``."""
    rng = np.random.default_rng(seed)
    countries = np.array([t.rsplit(" ", 1)[-1] for t in tickers])
    parts = []
    for date in dates:
        n = len(tickers)
        frame = pd.DataFrame({"numerai_ticker": pd.array(tickers, dtype="string"),
                              "composite_figi": pd.array([f"BBG{abs(hash(t)) % 10**9:09d}" for t in tickers],
                                                         dtype="string"),
                              "date": date.strftime("%Y-%m-%d"), "data_type": data_type})
        for name in NUMERIC_FEATURES:
            frame[name] = rng.normal(size=n).clip(-3.9, 3.9).astype(np.float32)
        frame["feature_country"] = pd.array(countries, dtype="string")
        frame["feature_exchange_code"] = pd.array([EXCHANGES.get(c, ("XOTC",))[i % len(EXCHANGES.get(c, ("XOTC",)))]
                                                   for i, c in enumerate(countries)], dtype="string")
        if with_targets:
            base = rng.normal(size=n) + (signal * frame[signal_feature].to_numpy() if signal_feature else 0.0)
            for name in TARGETS:
                values = _binned(base + 0.3 * rng.normal(size=n))
                if name != "target":
                    values[rng.random(n) < 0.02] = np.nan  # auxiliary targets can be NaN; target is not
                frame[name] = values
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def neutralizer_frames(tickers: list[str], dates: pd.DatetimeIndex, n_neutralizers: int = 8, *,
                       seed: int = 1, orthonormal: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(neutralizers, sample weights) per (ticker, date): weighted-orthonormal columns per date
    (``orthonormal=False``: plain random columns, quicker for big files)."""
    rng = np.random.default_rng(seed)
    neutral_parts, weight_parts = [], []
    for date in dates:
        n = len(tickers)
        weights = rng.uniform(0.5, 1.5, n)
        design = np.column_stack([np.ones(n), rng.normal(size=(n, n_neutralizers - 1))])
        if orthonormal:
            q, _ = np.linalg.qr(np.sqrt(weights)[:, None] * design)
            design = q / np.sqrt(weights)[:, None]
        else:
            design = design / np.sqrt(n)  # the orthonormal columns' scale
        neutral = design.astype(np.float32)
        ids = {"numerai_ticker": pd.array(tickers, dtype="string"), "date": date.strftime("%Y-%m-%d")}
        frame = pd.DataFrame(ids)
        for j in range(n_neutralizers):
            frame[f"neutralizer_{j}"] = neutral[:, j]
        neutral_parts.append(frame)
        weight_parts.append(pd.DataFrame({**ids, "sample_weight": weights.astype(np.float32)}))
    return pd.concat(neutral_parts, ignore_index=True), pd.concat(weight_parts, ignore_index=True)


def add_v21_datasets(fake, tickers: list[str], train_dates: pd.DatetimeIndex, validation_dates: pd.DatetimeIndex,
                     live_date: pd.Timestamp, *, n_neutralizers: int = 8, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Serve train/validation/live/neutralizer/sample-weight files under signals/v2.1; return the frames."""
    frames = {
        "train.parquet": signals_frame(tickers, train_dates, seed=seed, data_type="train"),
        "validation.parquet": signals_frame(tickers, validation_dates, seed=seed + 1, data_type="validation"),
        "live.parquet": signals_frame(tickers, pd.DatetimeIndex([live_date]), seed=seed + 2, data_type="live",
                                      with_targets=False),
    }
    neutral, weights = neutralizer_frames(tickers, validation_dates, n_neutralizers, seed=seed + 3)
    frames["validation_neutralizer.parquet"] = neutral
    frames["validation_sample_weights.parquet"] = weights
    for name, frame in frames.items():
        fake.add_dataset("signals", f"signals/v2.1/{name}", parquet_bytes(frame, row_group_size=len(tickers)))
    return frames
