"""Benchmark: prediction neutralisation per date, numerai-tools per date (baseline) vs tasks.model.neutralize.

    .venv/bin/python benchmarks/bench_neutralize.py [--dates 500 --tickers 5000 --features 20 --proportion 0.5]
    .venv/bin/python benchmarks/bench_neutralize.py --classic --dates 100 --tickers 5000 --features 700

``--classic``: Numerai Classic's shape instead: int8 features 0..4 with no missing values (as
``tasks.classic.data.read_classic_frame`` holds them), dates are eras; ours gets the int8 matrix as is
(``tasks.classic.neutralize``'s call), the baseline a DataFrame of each era's int8 features.

A random panel (features with a few missing values, predictions exposed to them), then
  (a) baseline: for each date, numerai_tools.scoring.neutralize on the date's rows (missing feature
      values filled with the date's mean first, as numerflow does: numerai-tools refuses NaN), the
      way a user would neutralise a validation panel (a groupby over dates);
  (b) ours: tasks.model.neutralize.neutralize over the whole panel (one call; the date's mean fill inside).
Prints both times, the speed-up, the max absolute difference, peak RSS and a final JSON line.
Single process, wall clock: other load on the machine shows up in it.
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

from numerai_tools.scoring import neutralize as nt_neutralize  # noqa: E402

from numerflow.tasks.model.neutralize import neutralize  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def build_panel(n_dates: int, n_tickers: int, n_features: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = n_dates * n_tickers
    groups = np.repeat(np.arange(n_dates), n_tickers)
    exposures = rng.normal(size=(n, n_features))
    values = exposures[:, :3] @ np.array([0.3, -0.2, 0.1]) + rng.normal(size=n)
    exposures[rng.random(size=exposures.shape) < 0.01] = np.nan
    return values, exposures, groups


def build_classic_panel(n_eras: int, n_ids: int, n_features: int,
                        seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classic's int8 bins 0..4, predictions exposed to the first three (built in blocks: no float64 panel)."""
    rng = np.random.default_rng(seed)
    n = n_eras * n_ids
    groups = np.repeat(np.arange(n_eras), n_ids)
    exposures = rng.integers(0, 5, size=(n, n_features), dtype=np.int8)
    values = exposures[:, :3].astype(np.float64) @ np.array([0.3, -0.2, 0.1]) + rng.normal(size=n)
    return values, exposures, groups


def baseline(values: np.ndarray, exposures: np.ndarray, groups: np.ndarray, proportion: float) -> np.ndarray:
    out = np.empty_like(values)
    frame = pd.DataFrame(exposures)
    frame["p"], frame["g"] = values, groups
    for _, block in frame.groupby("g", sort=True):
        features = block.drop(columns=["p", "g"])
        features = features.fillna(features.mean())
        out[block.index.to_numpy()] = nt_neutralize(block[["p"]], features, proportion)["p"].to_numpy()
    return out


def classic_baseline(values: np.ndarray, exposures: np.ndarray, groups: np.ndarray, proportion: float) -> np.ndarray:
    """A user's per-era loop: each era's int8 features as a DataFrame into numerai-tools (no NaN to fill)."""
    out = np.empty_like(values)
    bounds = np.flatnonzero(np.diff(groups)) + 1
    for rows in np.split(np.arange(len(values)), bounds):
        era = pd.DataFrame(exposures[rows])
        out[rows] = nt_neutralize(pd.DataFrame({"p": values[rows]}), era, proportion)["p"].to_numpy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dates", type=int, default=500)
    parser.add_argument("--tickers", type=int, default=5000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--proportion", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classic", action="store_true", help="Classic's int8 features, eras as the dates")
    args = parser.parse_args()
    build, base = (build_classic_panel, classic_baseline) if args.classic else (build_panel, baseline)
    values, exposures, groups = build(args.dates, args.tickers, args.features, args.seed)
    print(f"panel: {args.dates} dates × {args.tickers} tickers, {args.features} {exposures.dtype} features "
          f"({values.size:,} rows); python {platform.python_version()}, {os.cpu_count()} cpus; "
          f"RSS after building it {peak_rss_mb():.0f} MB", flush=True)
    started = time.perf_counter()
    mine = neutralize(values, exposures, groups, args.proportion)
    ours_s = time.perf_counter() - started
    ours_rss = peak_rss_mb()
    started = time.perf_counter()
    theirs = base(values, exposures, groups, args.proportion)
    base_s = time.perf_counter() - started
    diff = float(np.max(np.abs(mine - theirs)))
    print(f"baseline (numerai-tools per date): {base_s:.2f} s")
    print(f"ours (neutralize, whole panel):    {ours_s:.2f} s  → {base_s / ours_s:.1f}×, max abs diff {diff:.1e}")
    print(f"peak RSS after ours {ours_rss:.0f} MB, after both {peak_rss_mb():.0f} MB")
    print(json.dumps({"classic": args.classic, "dates": args.dates, "tickers": args.tickers, "features": args.features,
                      "baseline_s": round(base_s, 3), "ours_s": round(ours_s, 3),
                      "speedup": round(base_s / ours_s, 2), "max_abs_diff": diff,
                      "peak_rss_after_ours_mb": round(ours_rss), "peak_rss_mb": round(peak_rss_mb())}))


if __name__ == "__main__":
    main()
