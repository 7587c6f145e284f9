"""Benchmark: the daily submit path for many models, without Numerai's network time.

    .venv/bin/python benchmarks/bench_submit.py [--models 10 --tickers 5000 --years 3 --seed 3]

What the submit flow does per model after the prepare (flows/round.py ``run_model`` with a reused
model): the reuse decision (registry lineage), live predictions from the prepared features
(``predict_live``: only the last days of the features file are read), the submission (ranks),
Numerai's rules + numerai-tools' validator (``validate_submission``), the CSV (atomic, sha256) and
the dry-run record of exactly what would be uploaded. Excluded: the universe download and the
upload call (network).

Baseline, what a user would otherwise write: per model, ``pd.read_parquet`` of the whole features
file, the last date per ticker, ``booster.predict``, numerai-tools ``tie_kept_rank``, numerai-tools
``validate_submission_signals`` + ``clean_submission``, ``to_csv``. Both sides predict with the
same boosters; the run checks their submissions hold the same tickers and signals (max abs diff).
Setup (demo market, features, 10 models of 300 rounds on a 50,000-row sample) is not timed. Wall clock,
one process: other load on the machine inflates both sides. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def setup(root: Path, tickers: int, years: float, seed: int, models: int) -> tuple[object, list[Path], object]:
    from numerflow.tasks.core.config import load_settings, settings_for_model
    from numerflow.tasks.core.store import Store, write_parquet
    from numerflow.tasks.model.dataset import build_dataset, feature_columns
    from numerflow.tasks.model.training import fit_lightgbm, model_lineage, new_model_id, save_model
    from numerflow.tasks.prices.sources.demo import DemoMarket

    store = Store(root)
    market = DemoMarket(tickers=tickers, years=years, seed=seed)
    bars = market.fetch(market.all_tickers())
    write_parquet(store.prices_dir("demo") / "part-00000.parquet", bars)
    settings = load_settings(data_dir=root, training={"num_threads": 2}, models=[{"name": f"model_{i:02d}", "params": {"seed": i}}
                                                    for i in range(models)])
    t0 = time.perf_counter()
    info = build_dataset(store, "demo", settings.target)
    print(f"setup: market + features {time.perf_counter() - t0:.1f} s")
    data = pd.read_parquet(info.path)
    labelled = data[data["target"].notna()].sample(n=min(50_000, int(data["target"].notna().sum())),
                                                   random_state=seed)
    features = feature_columns(data)
    dirs = []
    for entry in settings.models:
        own = settings_for_model(settings, entry)
        booster = fit_lightgbm(labelled[features], labelled["target"].to_numpy(), own.training)
        lineage = {**model_lineage(own, "demo"), "model": entry.name}
        dirs.append(save_model(store, new_model_id(), booster,
                               {"model_id": entry.name, "features": features, "lineage": lineage,
                                "created_at": pd.Timestamp.now(tz="UTC").isoformat(),
                                "validation_metrics": {"corr": {}}}))
    return settings, dirs, info


def ours(settings, info, universe: pd.Series) -> tuple[float, dict[str, pd.DataFrame]]:
    from numerflow.tasks.core.config import settings_for_model
    from numerflow.tasks.core.store import Store, read_parquet
    from numerflow.tasks.model.predict import predict_live
    from numerflow.tasks.model.training import latest_model, model_lineage, needs_training
    from numerflow.tasks.numerai.submission import (
        build_submission,
        validate_submission,
        write_dry_run_record,
        write_submission,
    )

    store = Store(settings.data_dir)
    out = {}
    started = time.perf_counter()
    for entry in settings.models:
        own = settings_for_model(settings, entry)
        lineage = {**model_lineage(own, "demo"), "model": entry.name}
        must, _ = needs_training(store, 7.0, info.feature_names, lineage=lineage)
        assert not must
        model_dir = latest_model(store, entry.name)
        live = predict_live(store, Path(info.path), model_dir, universe, f"bench-{entry.name}", min_tickers=100)
        submission = build_submission(read_parquet(Path(live.path)))
        checks = validate_submission(submission, universe, min_tickers=100)
        path, sha = write_submission(submission, store.submission_dir("signals", "bench") / entry.name / "s.csv")
        write_dry_run_record(path.with_name("upload-record.json"), reason="benchmark", tournament="signals",
                             round_label="bench", model_name=entry.name, file=str(path), sha256=sha,
                             rows=checks["rows"], validated_against_universe=True, would_call="upload_predictions")
        out[entry.name] = submission
    return time.perf_counter() - started, out


def baseline(settings, info, dirs: list[Path], universe: pd.Series, work: Path) -> tuple[float, dict[str, pd.DataFrame]]:
    import lightgbm as lgb
    from numerai_tools import submissions as nt

    out = {}
    started = time.perf_counter()
    for entry, model_dir in zip(settings.models, dirs, strict=True):
        booster = lgb.Booster(model_file=str(model_dir / "model.txt"))
        features = json.loads((model_dir / "meta.json").read_text())["features"]
        data = pd.read_parquet(info.path)
        live = data[data["date"] == data["date"].max()]
        live = live[live["ticker"].isin(universe)]
        frame = pd.DataFrame({"numerai_ticker": live["ticker"].astype(str).to_numpy(),
                              "signal": booster.predict(live[features])})
        frame["signal"] = nt.tie_kept_rank(frame[["signal"]])["signal"].to_numpy()
        uni = pd.DataFrame({"numerai_ticker": universe.to_numpy()})
        nt.validate_submission_signals(uni.copy(), frame.copy())
        cleaned = nt.clean_submission(uni.copy(), frame.copy(), src_id_col="numerai_ticker", src_signal_col="signal")
        result = cleaned.reset_index()
        result.columns = ["numerai_ticker", "signal"]
        result.to_csv(work / f"{entry.name}.csv", index=False)
        out[entry.name] = result
    return time.perf_counter() - started, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--tickers", type=int, default=5000)
    parser.add_argument("--years", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        settings, dirs, info = setup(root / "data", args.tickers, args.years, args.seed, args.models)
        print(f"setup (not timed): {time.perf_counter() - t0:.1f} s, features {info.rows:,} rows")
        # The live universe: the tickers with bars on the last day (the demo's delisted ones are not live).
        dates = pd.read_parquet(info.path, columns=["ticker", "date"])
        universe = pd.Series(sorted(dates.loc[dates["date"] == dates["date"].max(), "ticker"].astype(str).unique()))
        ours_s, ours_out = ours(settings, info, universe)
        base_s, base_out = baseline(settings, info, dirs, universe, root)
        diffs = []
        for name, mine in ours_out.items():
            theirs = base_out[name].set_index("numerai_ticker")["signal"]
            mine = mine.set_index("numerai_ticker")["signal"]
            assert set(mine.index) == set(theirs.index), name
            diffs.append(float(np.abs(mine - theirs.loc[mine.index]).max()))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"submit path, {args.models} models x {len(universe)} live tickers: numerflow {ours_s:.2f} s "
          f"({ours_s / args.models:.2f} s/model), baseline (pandas + numerai-tools) {base_s:.2f} s; "
          f"speed-up {base_s / ours_s:.1f}x; max |signal diff| {max(diffs):.1e}; peak RSS {rss:.0f} MB")
    print(json.dumps({"models": args.models, "live_tickers": len(universe), "feature_rows": info.rows,
                      "numerflow_s": round(ours_s, 3), "baseline_s": round(base_s, 3),
                      "speedup": round(base_s / ours_s, 2), "max_signal_diff": max(diffs), "peak_rss_mb": round(rss)}))


if __name__ == "__main__":
    main()
