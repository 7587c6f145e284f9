"""Weekly eras: one score per week, summaries on them; daily scores only with an overlap-adjusted SE."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from numerflow.tasks.model.eras import daily_summary, era_metrics, era_summary, weekly_era_dates


def test_one_era_per_week_on_its_last_date():
    dates = pd.bdate_range("2025-01-06", "2025-02-07").delete([4])  # Friday 10 Jan missing (a holiday)
    eras = weekly_era_dates(dates)
    assert list(eras.strftime("%Y-%m-%d")) == ["2025-01-09", "2025-01-17", "2025-01-24", "2025-01-31", "2025-02-07"]
    assert eras.to_period("W-FRI").is_unique


def test_era_summary_values():
    summary = era_summary(pd.Series([0.02, -0.01, -0.02, 0.03, np.nan]))
    assert summary["n_eras"] == 4
    assert summary["positive_share"] == pytest.approx(0.5)
    assert summary["max_drawdown"] == pytest.approx(-0.03)  # 0.02 → -0.01: a fall of 0.03 from the peak
    assert summary["sharpe"] == pytest.approx(np.mean([0.02, -0.01, -0.02, 0.03]) / np.std([0.02, -0.01, -0.02, 0.03],
                                                                                              ddof=1))


def test_noise_with_overlap_daily_drawdown_is_not_reported_and_eras_do_not_share_dates():
    rng = np.random.default_rng(1)
    n = 520
    daily = np.convolve(rng.normal(0, 0.05, n + 21), np.ones(22) / 22, mode="valid")[:n]  # overlapping, mean 0
    dates = pd.bdate_range("2023-01-02", periods=n)
    metrics = era_metrics({"date": [d.date().isoformat() for d in dates], "corr": daily.tolist()}, overlap=22)
    assert metrics["corr"]["n_eras"] == n // 5
    assert "max_drawdown" not in metrics["daily"]["corr"] and "sharpe" not in metrics["daily"]["corr"]
    assert len(set(metrics["per_era"]["date"])) == n // 5
    # The overlap-adjusted SE is the honest one: noise stays within 3 of it; the naive one is far too small.
    d = metrics["daily"]["corr"]
    assert abs(d["t_stat"]) < 3
    assert d["sem_overlap_adjusted"] > 3 * d["sem"]
    assert daily_summary(pd.Series(daily), 22)["n_dates"] == n
