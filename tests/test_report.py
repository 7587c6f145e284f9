import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd

from numerflow.tasks.core.store import Store
from numerflow.tasks.model.eras import era_metrics
from numerflow.tasks.model.report import render_markdown, write_report


def metrics_and_meta(n=300):
    rng = np.random.default_rng(0)
    # Autocorrelated per-date scores, as overlapping 20-day targets give.
    corr = np.convolve(rng.normal(0.02, 0.05, n + 21), np.ones(22) / 22, mode="valid")[:n]
    dates = pd.bdate_range("2024-01-01", periods=n)
    per_date = {"date": [d.date().isoformat() for d in dates], "corr": corr.tolist(), "fnc": (corr / 2).tolist()}
    metrics = {"feature_exposure": {"mean": 0.3, "worst_feature": "feature_x"}, "per_date": per_date,
               "feature_importance": {"feature_ret_60d": 0.7, "feature_country": 0.3},
               **era_metrics(per_date, overlap=22)}
    meta = {"model_id": "m1", "lineage": {"target": {"horizon": 20, "lag": 2}, "source": "yahoo+numerai:target_chili_60",
                                          "training": {"feature_set": "both"}, "tournament": "signals"},
            "data_range": {"validation_start": "2024-01-01", "last_labelled_date": "2025-01-01",
                           "validation_rows": 1000, "train_rows": 5000, "train_last_target_end": "2023-12-01",
                           "embargo_days": 5, "target_span_trading_days": 22}}
    return metrics, meta


def _row(markdown: str, label: str) -> list[str]:
    line = next(line for line in markdown.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_report_shows_weekly_era_summaries_and_daily_overlap_adjusted_uncertainty():
    metrics, meta = metrics_and_meta()
    markdown = render_markdown(metrics, meta, "chart.png")
    assert int(_row(markdown, "n_eras")[1]) == 60  # 300 business days = 60 weeks, one score each
    assert _row(markdown, "positive_share")[1] != "—"
    adjusted = float(_row(markdown, "sem, overlap-adjusted")[1])
    assert adjusted > 2 * metrics["daily"]["corr"]["sem"]  # overlapping targets: the naive sem is too small
    # The daily table has no drawdown or sharpe: only the era table does.
    daily = markdown.split("Daily scores overlap")[1].split("\n\n")[1]  # the daily table
    assert daily.startswith("| daily |") and "max_drawdown" not in daily and "sharpe" not in daily
    assert "MPC" in markdown and "cannot be computed locally" in markdown
    assert _row(markdown, "`feature_ret_60d`")[1] == "0.700"
    assert "data `yahoo+numerai:target_chili_60`, feature set `both`, target span 22" in markdown


def test_write_report_embeds_the_chart_so_the_prefect_artifact_renders_it(tmp_path):
    metrics, meta = metrics_and_meta()
    paths = write_report(Store(tmp_path), "run1", metrics, meta)
    assert json.loads(open(paths["json"]).read())["model"]["model_id"] == "m1"
    png = open(paths["chart"], "rb").read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    prefix = "![validation per era](data:image/png;base64,"
    for text in (paths["markdown_text"], open(paths["markdown"]).read()):
        start = text.index(prefix) + len(prefix)
        assert base64.b64decode(text[start:text.index(")", start)]) == png


def test_report_lists_each_features_own_corr_alpha_and_gain_share_and_writes_them_beside(tmp_path):
    from numerflow.tasks.model.eras import feature_scores

    metrics, meta = metrics_and_meta()
    dates = pd.DatetimeIndex(pd.to_datetime(metrics["per_date"]["date"]))
    rng = np.random.default_rng(1)
    own = pd.DataFrame({"feature_ret_60d": 0.03 + 0.01 * rng.normal(size=len(dates)),
                        "feature_noise": 0.01 * rng.normal(size=len(dates))}, index=dates)
    metrics = feature_scores(metrics, own, 22, "corr", metrics["feature_importance"])
    metrics = feature_scores(metrics, own.iloc[::5] / 2, 22, "alpha")  # ALPHA on fewer dates
    entry = metrics["features"]["feature_ret_60d"]
    assert entry["importance_gain_share"] == 0.7 and abs(entry["corr"]["mean"] - own["feature_ret_60d"].mean()) < 1e-12
    assert entry["alpha"]["n_dates"] == len(dates[::5])
    assert metrics["features"]["feature_country"] == {"importance_gain_share": 0.3}  # categorical: no own score
    markdown = render_markdown(metrics, meta, "chart.png")
    row = _row(markdown, "`feature_ret_60d`")  # feature, own CORR, t-stat, own ALPHA, t-stat, gain share
    assert float(row[1]) == round(own["feature_ret_60d"].mean(), 4) and float(row[2]) > 5 and row[5] == "0.700"
    assert abs(float(_row(markdown, "`feature_noise`")[2])) < 3
    paths = write_report(Store(tmp_path), "run1", metrics, meta)
    folder = Path(paths["json"]).parent
    assert json.loads((folder / "feature_diagnostics.json").read_text())["feature_ret_60d"]["corr"]["n_dates"] == 300
    scores = pd.read_parquet(folder / "feature_scores.parquet")
    assert set(scores["score"]) == {"corr", "alpha"} and len(scores) == 2 * 300 + 2 * 60
