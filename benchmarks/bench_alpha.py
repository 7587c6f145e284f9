"""Benchmark: per-date Numerai ALPHA, numerai-tools per date (baseline) vs tasks.model.alpha.

    .venv/bin/python benchmarks/bench_alpha.py [--dates 500 --tickers 5000 --neutralizers 200]

Builds a random panel: float32 neutralizers (as Numerai ships them), sample weights, binned
targets, a weak signal. Times
  (a) baseline: for each date, numerai_tools.scoring.alpha on that date's frames (the frames are
      built outside the timer: only the library call is timed, the baseline's best case);
  (b) ours: alpha_by_date over the whole panel at once (twice: the first call is the headline,
      the second shows what first-touch page faults of its buffers cost);
prints both times, the speed-up, the max absolute difference, peak RSS and a final JSON line.
Single process, wall clock: other load on the machine shows up in both.
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

from numerai_tools.scoring import alpha  # noqa: E402

from numerflow.tasks.model.alpha import alpha_by_date  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dates", type=int, default=500)
    parser.add_argument("--tickers", type=int, default=5000)
    parser.add_argument("--neutralizers", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    n_dates, n_tickers, k = args.dates, args.tickers, args.neutralizers
    n = n_dates * n_tickers
    neutralizers = np.empty((n, k), dtype=np.float32)
    for d in range(n_dates):  # filled per date: no float64 copy of the whole matrix
        neutralizers[d * n_tickers:(d + 1) * n_tickers] = rng.normal(size=(n_tickers, k)) / np.sqrt(n_tickers)
    weights = rng.uniform(0.5, 1.5, n)
    latent = rng.normal(size=n)
    targets = np.digitize(latent, np.quantile(latent, [0.05, 0.25, 0.75, 0.95])) / 4
    predictions = latent + 8.0 * rng.normal(size=n)
    dates = np.repeat(pd.date_range("2015-01-02", periods=n_dates, freq="W-FRI").to_numpy(), n_tickers)
    tickers = pd.Index([f"T{i:05d}" for i in range(n_tickers)])
    rss_data = peak_rss_mb()
    print(f"panel: {n_dates} dates x {n_tickers} tickers = {n:,} rows, {k} neutralizers (float32); "
          f"{os.cpu_count()} CPUs visible (shared), python {platform.python_version()}")

    runs = []
    for _ in range(2):  # the first call also pays for first-touch page faults of its buffers
        start = time.perf_counter()
        ours = alpha_by_date(predictions, targets, neutralizers, weights, dates)
        runs.append(time.perf_counter() - start)
    ours_seconds = runs[0]
    rss_ours = peak_rss_mb()

    baseline_seconds, base = 0.0, []
    for d in range(n_dates):
        rows = slice(d * n_tickers, (d + 1) * n_tickers)
        frame = pd.DataFrame({"prediction": predictions[rows]}, index=tickers)
        neutral = pd.DataFrame(neutralizers[rows].astype(np.float64), index=tickers)
        weight = pd.Series(weights[rows], index=tickers)
        target = pd.Series(targets[rows], index=tickers)
        start = time.perf_counter()
        base.append(alpha(frame, neutral, weight, target)["prediction"])
        baseline_seconds += time.perf_counter() - start
    rss_baseline = peak_rss_mb()

    diff = float(np.max(np.abs(ours.to_numpy() - np.asarray(base))))
    speedup = baseline_seconds / ours_seconds
    print(f"{'baseline numerai-tools alpha per date':40s}{baseline_seconds:10.2f} s")
    print(f"{'ours alpha_by_date (all dates at once)':40s}{ours_seconds:10.2f} s   speed-up {speedup:.1f}x")
    print(f"{'ours, second call':40s}{runs[1]:10.2f} s   speed-up {baseline_seconds / runs[1]:.1f}x")
    print(f"max |diff| {diff:.2e}; mean alpha {ours.mean():.3e}")
    print(f"peak RSS MB: after data {rss_data:.0f}, after ours {rss_ours:.0f}, after baseline {rss_baseline:.0f}")
    print(json.dumps({
        "benchmark": "alpha", "dates": n_dates, "tickers": n_tickers, "neutralizers": k,
        "baseline_seconds": round(baseline_seconds, 3), "ours_seconds": round(ours_seconds, 3), "ours_second_call_seconds": round(runs[1], 3),
        "speedup": round(speedup, 2), "max_abs_diff": diff,
        "peak_rss_mb": {"data": round(rss_data), "ours": round(rss_ours), "baseline": round(rss_baseline)},
        "load_average": os.getloadavg()[0], "cpus_visible": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
