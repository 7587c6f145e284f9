"""The whole modelling chain on the demo market: no leakage on noise, the planted signal found.

demo prices → features + targets → purged/embargoed LightGBM → Numerai CORR on held-out dates.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from numerflow.tasks.core.config import TargetSettings, TrainingSettings
from numerflow.tasks.core.store import Store, write_parquet
from numerflow.tasks.model.dataset import build_dataset_frame
from numerflow.tasks.model.scoring import overlap_adjusted_sem
from numerflow.tasks.model.training import train_and_register
from numerflow.tasks.prices.sources.demo import DemoMarket

END = dt.date(2025, 6, 27)
TARGET = TargetSettings()
# One LightGBM thread: tests run two per machine (pytest -n 2); oversubscribed OpenMP thrashes.
FAST = TrainingSettings(num_boost_round=120, validation_fraction=0.3, num_threads=1, refit_on_all=False)


def validation_corr(tmp_path, *, signal: float, seed: int, tickers: int = 300, years: float = 4.0,
                    sample: str = "weekly") -> pd.Series:
    market = DemoMarket(tickers=tickers, years=years, signal=signal, seed=seed, end=END)
    dataset = build_dataset_frame(market.fetch(market.all_tickers()), TARGET)
    path = write_parquet(tmp_path / f"dataset-{seed}-{signal}.parquet", dataset)
    result = train_and_register(Store(tmp_path / f"store-{seed}-{signal}-{sample}"), path,
                                FAST.model_copy(update={"sample": sample}), run_id="t")
    per_date = result.metrics["per_date"]
    return pd.Series(per_date["corr"], index=pd.to_datetime(per_date["date"]), dtype="float64").dropna()


@pytest.mark.slow
@pytest.mark.parametrize("sample", ["weekly", "daily"])
def test_pure_noise_market_scores_indistinguishable_from_zero(tmp_path, sample):
    # A model can only score on noise by seeing the future: any leak shows up here.
    for seed in (11, 12, 13):
        corr = validation_corr(tmp_path, signal=0.0, seed=seed, sample=sample)
        sem = overlap_adjusted_sem(corr, overlap=TARGET.horizon + TARGET.lag)
        assert len(corr) > 200
        assert abs(corr.mean()) < 3 * sem, (seed, corr.mean(), sem)


@pytest.mark.slow
@pytest.mark.parametrize("sample", ["weekly", "daily"])
def test_planted_signal_is_found(tmp_path, sample):
    corr = validation_corr(tmp_path, signal=1.0, seed=11, sample=sample)
    sem = overlap_adjusted_sem(corr, overlap=TARGET.horizon + TARGET.lag)
    assert corr.mean() > 0.03
    assert corr.mean() > 4 * sem


def test_overlap_adjusted_sem_exceeds_naive_sem_for_autocorrelated_scores():
    rng = np.random.default_rng(0)
    shocks = rng.normal(size=2000)
    overlapping = pd.Series(np.convolve(shocks, np.ones(20) / 20, mode="valid"))  # 20-date overlap
    naive = overlapping.std(ddof=1) / np.sqrt(len(overlapping))
    adjusted = overlap_adjusted_sem(overlapping, overlap=20)
    assert adjusted > 3 * naive
    iid = pd.Series(shocks)
    assert overlap_adjusted_sem(iid, overlap=0) == pytest.approx(iid.std(ddof=0) / np.sqrt(len(iid)))
