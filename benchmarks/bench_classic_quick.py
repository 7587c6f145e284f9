"""Numerai Classic quick mode at Numerai's real row count: how long a quick model takes here.

Synthetic data of the real shape (int8 features 0..4 in eras, 5-bin targets; 2.75 M training
rows over 574 eras, the small feature set's 42 features), built in memory. Two ways to fit the
same rows (every 4th era, as quick mode and Numerai's notebooks downsample) with the same
parameters (quick mode: 200 trees at learning rate 0.05, otherwise Numerai's example model),
each in its own subprocess so its peak RSS is its own:

- ``ours``: ``tasks.classic.training.fit_classic`` (rows handed to LightGBM as float32 batches
  from the int8 matrix), then ``train_classic``'s validation scoring (CORR, FNC on the 42 features,
  MMC) on ``--validation-eras`` eras;
- ``lgbm-sklearn``: what Numerai's example scripts do, ``LGBMRegressor(...).fit(train[features],
  train[target])`` on the int8 DataFrame (LightGBM converts it to one float32 copy).

    .venv/bin/python benchmarks/bench_classic_quick.py [--rows 2750000 --eras 574 --features 42]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd

ROWS, ERAS, FEATURES, VALIDATION_ERAS = 2_750_000, 574, 42, 40


def synthetic(rows: int, eras: int, features: int, seed: int, first_era: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    per_era = rows // eras
    n = per_era * eras
    x = rng.integers(0, 5, (n, features), dtype=np.int8)
    era = np.repeat([f"{e:04d}" for e in range(first_era, first_era + eras)], per_era)
    frame = pd.DataFrame(x, columns=[f"feature_{j}" for j in range(features)], copy=False)
    frame.insert(0, "era", era)
    latent = 0.05 * (x[:, :5].sum(axis=1) - 10.0) + rng.standard_normal(n)
    ranks = pd.Series(latent).groupby(era).rank(pct=True).to_numpy()
    frame["target"] = ((np.ceil(ranks * 5) - 1).clip(0, 4) / 4).astype(np.float32)
    frame.index = pd.Index([f"r{seed}{i}" for i in range(n)], name="id")
    return frame


def run(kind: str, args: argparse.Namespace) -> dict:
    from numerflow.tasks.classic.training import era_split, fit_classic, lightgbm_setup
    from numerflow.tasks.core.config import load_settings

    settings = load_settings(classic={"quick": True}).classic
    params, rounds = lightgbm_setup(settings, num_threads=2)
    train = synthetic(args.rows, args.eras, args.features, 1)
    features = [c for c in train.columns if c.startswith("feature_")]
    valid_eras = np.array([f"{e:04d}" for e in range(args.eras + 5, args.eras + 5 + args.validation_eras)])
    split = era_split(train["era"], train["target"].notna().to_numpy(), valid_eras, "target",
                      era_step=settings.quick_era_step)
    rows = np.flatnonzero(split.train)
    out: dict = {"kind": kind, "train_rows": int(rows.size), "trees": rounds, "features": len(features)}
    started = time.perf_counter()
    if kind == "ours":
        booster = fit_classic(train, features, "target", params, rounds, rows=rows)
        out["fit_s"] = time.perf_counter() - started
        from numerflow.tasks.classic.scoring import classic_metrics
        from numerflow.tasks.classic.training import feature_matrix, predict_rows

        validation = synthetic(args.validation_eras * (args.rows // args.eras), args.validation_eras, args.features,
                               2, first_era=args.eras + 5)
        started = time.perf_counter()
        prediction = predict_rows(booster, feature_matrix(validation, features), 2)
        meta = prediction + np.random.default_rng(3).standard_normal(len(prediction))
        metrics = classic_metrics(prediction, validation, "target", features, meta_model=meta)
        out["predict_and_score_s"] = time.perf_counter() - started
        out["validation_rows"] = int(len(validation))
        out["corr_mean"] = metrics["corr"]["mean"]
    else:
        import lightgbm as lgb

        sklearn_params = {k: v for k, v in params.items() if k not in ("objective", "verbose", "deterministic",
                                                                           "seed", "num_threads")}
        model = lgb.LGBMRegressor(n_estimators=rounds, n_jobs=2, random_state=0, verbose=-1, **sklearn_params)
        subset = train.iloc[rows]
        model.fit(subset[features], subset["target"])
        out["fit_s"] = time.perf_counter() - started
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--eras", type=int, default=ERAS)
    parser.add_argument("--features", type=int, default=FEATURES)
    parser.add_argument("--validation-eras", type=int, default=VALIDATION_ERAS)
    parser.add_argument("--child", choices=["ours", "lgbm-sklearn"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(args.child, args)))
        return
    results = []
    for kind in ("ours", "lgbm-sklearn"):
        done = subprocess.run([sys.executable, __file__, "--child", kind, "--rows", str(args.rows), "--eras",
                               str(args.eras), "--features", str(args.features), "--validation-eras",
                               str(args.validation_eras)], capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    for r in results:
        extra = (f", predict + CORR/FNC/MMC on {r['validation_rows']:,} rows {r['predict_and_score_s']:.1f} s, "
                 f"CORR {r['corr_mean']:.4f}" if r["kind"] == "ours" else "")
        print(f"{r['kind']:>13}: fit {r['train_rows']:,} rows x {r['features']} features, {r['trees']} trees in "
              f"{r['fit_s']:.1f} s{extra}; peak RSS {r['peak_rss_mib']:.0f} MiB")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
