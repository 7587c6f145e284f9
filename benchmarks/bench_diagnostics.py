"""Benchmark: per-date Numerai CORR + FNC, numerai-tools per date (baseline) vs tasks.model.scoring.

    .venv/bin/python benchmarks/bench_diagnostics.py [--dates 500 --tickers 5000 --features 20]

Builds a random panel (targets binned to {0, .25, .5, .75, 1}, features = per-date ranks in
(0, 1)), then times
  (a) baseline: for each date, numerai_tools.scoring.numerai_corr + feature_neutral_corr, the
      way public pipelines score validation (a groupby over dates);
  (b) ours: corr_and_fnc_by_date over the whole panel (= numerai_corr_by_date and
      feature_neutral_corr_by_date, sharing one ranking);
and, for information, (c) tasks.model.scoring.diagnostics (adds feature exposure and summaries).
Prints both times, the speed-up, the max absolute difference between the two, peak RSS, and a
final JSON line. Single process; wall-clock, so other load on the machine shows up in it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from numerai_tools.scoring import feature_neutral_corr, numerai_corr  # noqa: E402

from numerflow.tasks.core.ranking import group_codes, rank_by_group  # noqa: E402
from numerflow.tasks.model.scoring import corr_and_fnc_by_date, diagnostics  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def build_panel(n_dates: int, n_tickers: int, n_features: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_dates * n_tickers
    dates = np.repeat(pd.date_range("2015-01-02", periods=n_dates, freq="W-FRI").to_numpy(), n_tickers)
    codes = group_codes(dates)
    raw_features = rng.normal(size=(n, n_features))
    latent = raw_features[:, :3] @ np.array([0.3, -0.2, 0.1]) + rng.normal(size=n)
    frame = pd.DataFrame({"date": dates, "ticker": np.tile(np.arange(n_tickers), n_dates)})
    for j in range(n_features):
        frame[f"feature_{j}"] = rank_by_group(raw_features[:, j], codes)
    frame["target"] = np.digitize(latent, np.quantile(latent, [0.05, 0.25, 0.75, 0.95])) / 4
    frame["prediction"] = latent + 8.0 * rng.normal(size=n)  # weak signal, realistic CORR
    return frame


def baseline(frame: pd.DataFrame, feature_names: list[str]) -> pd.DataFrame:
    rows = []
    for date, block in frame.groupby("date", sort=True):
        block = block.set_index("ticker")
        corr = numerai_corr(block[["prediction"]], block["target"])["prediction"]
        fnc = feature_neutral_corr(block[["prediction"]], block[feature_names], block["target"])["prediction"]
        rows.append((date, corr, fnc))
    return pd.DataFrame(rows, columns=["date", "corr", "fnc"]).set_index("date")


def ours(frame: pd.DataFrame, feature_names: list[str]) -> pd.DataFrame:
    predictions = frame["prediction"].to_numpy()
    targets = frame["target"].to_numpy()
    dates = frame["date"].to_numpy()
    features = frame[feature_names].to_numpy()
    return corr_and_fnc_by_date(predictions, targets, features, dates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dates", type=int, default=500)
    parser.add_argument("--tickers", type=int, default=5000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    frame = build_panel(args.dates, args.tickers, args.features, args.seed)
    feature_names = [f"feature_{j}" for j in range(args.features)]
    rss_data = peak_rss_mb()
    print(f"panel: {args.dates} dates x {args.tickers} tickers = {len(frame):,} rows, {args.features} features; "
          f"{os.cpu_count()} CPUs visible (shared with other work), python {platform.python_version()}")

    start = time.perf_counter()
    our_scores = ours(frame, feature_names)
    ours_seconds = time.perf_counter() - start
    rss_ours = peak_rss_mb()

    start = time.perf_counter()
    full = diagnostics(frame["prediction"].to_numpy(), frame["target"].to_numpy(), frame[feature_names].to_numpy(),
                       frame["date"].to_numpy(), feature_names)
    diagnostics_seconds = time.perf_counter() - start
    rss_diagnostics = peak_rss_mb()

    start = time.perf_counter()
    base_scores = baseline(frame, feature_names)
    baseline_seconds = time.perf_counter() - start
    rss_baseline = peak_rss_mb()

    diff_corr = float(np.max(np.abs(our_scores["corr"].to_numpy() - base_scores["corr"].to_numpy())))
    diff_fnc = float(np.max(np.abs(our_scores["fnc"].to_numpy() - base_scores["fnc"].to_numpy())))
    speedup = baseline_seconds / ours_seconds
    print(f"{'':38s}{'seconds':>10s}")
    print(f"{'baseline numerai-tools per date':38s}{baseline_seconds:10.2f}")
    print(f"{'ours (corr + fnc, all dates at once)':38s}{ours_seconds:10.2f}   speed-up {speedup:.1f}x")
    print(f"{'ours diagnostics() (+ exposure)':38s}{diagnostics_seconds:10.2f}")
    print(f"max |diff| corr {diff_corr:.2e}, fnc {diff_fnc:.2e}; mean corr {full['corr']['mean']:.4f}, "
          f"mean fnc {full['fnc']['mean']:.4f}")
    print(f"peak RSS MB: after data {rss_data:.0f}, after ours {rss_ours:.0f}, after diagnostics {rss_diagnostics:.0f}, "
          f"after baseline {rss_baseline:.0f}")
    print(json.dumps({
        "benchmark": "diagnostics", "dates": args.dates, "tickers": args.tickers, "features": args.features,
        "baseline_seconds": round(baseline_seconds, 3), "ours_seconds": round(ours_seconds, 3),
        "diagnostics_seconds": round(diagnostics_seconds, 3), "speedup": round(speedup, 2),
        "max_abs_diff_corr": diff_corr, "max_abs_diff_fnc": diff_fnc,
        "peak_rss_mb": {"data": round(rss_data), "ours": round(rss_ours), "diagnostics": round(rss_diagnostics),
                        "baseline": round(rss_baseline)},
        "cpus_visible": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
