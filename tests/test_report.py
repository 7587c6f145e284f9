import json

import numpy as np
import pandas as pd

from numerflow.tasks.core.store import Store
from numerflow.tasks.model.report import render_markdown, write_report


def metrics_and_meta(n=300):
    rng = np.random.default_rng(0)
    # Autocorrelated per-date scores, as overlapping 20-day targets give.
    corr = np.convolve(rng.normal(0.02, 0.05, n + 21), np.ones(22) / 22, mode="valid")[:n]
    dates = pd.bdate_range("2024-01-01", periods=n)
    summary = {"mean": float(corr.mean()), "std": float(corr.std(ddof=1)), "sharpe": 1.0, "max_drawdown": -0.1,
               "sem": float(corr.std(ddof=1) / np.sqrt(n)), "n_dates": n}
    metrics = {"corr": summary, "fnc": summary, "feature_exposure": {"mean": 0.3, "worst_feature": "feature_x"},
               "per_date": {"date": [d.date().isoformat() for d in dates], "corr": corr.tolist(), "fnc": corr.tolist()}}
    meta = {"model_id": "m1", "lineage": {"target": {"horizon": 20, "lag": 2}},
            "data_range": {"validation_start": "2024-01-01", "last_labelled_date": "2025-01-01",
                           "validation_rows": 1000, "train_rows": 5000, "train_last_target_end": "2023-12-01",
                           "embargo_days": 5}}
    return metrics, meta


def test_report_states_the_overlap_adjusted_uncertainty():
    metrics, meta = metrics_and_meta()
    markdown = render_markdown(metrics, meta, "chart.png")
    row = next(line for line in markdown.splitlines() if line.startswith("| sem, overlap-adjusted (22 dates)"))
    adjusted = float(row.split("|")[2])
    assert adjusted > 2 * metrics["corr"]["sem"]  # overlapping targets: the naive sem is too small
    assert "t-stat of mean" in markdown


def test_write_report_writes_json_markdown_and_png(tmp_path):
    metrics, meta = metrics_and_meta()
    paths = write_report(Store(tmp_path), "run1", metrics, meta)
    assert json.loads(open(paths["json"]).read())["model"]["model_id"] == "m1"
    assert open(paths["chart"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert "![cumulative CORR](cumulative_corr.png)" in open(paths["markdown"]).read()
