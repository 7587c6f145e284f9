"""Weekly-era training against every-day training: validation quality and fit time, same data.

    .venv/bin/python benchmarks/bench_sampling.py [--tickers 1000 --years 10 --seeds 1,2]

For each data set, one dataset file (features + targets), then ``train_and_register`` twice with the
same settings but ``training.sample`` (``weekly``, the default, and ``daily``, every row), and
``refit_on_all = false`` (the figures are the held-out model's either way; the refit is timed by
``bench_round.py``). Reported per fit: the validation's weekly-era CORR mean and its standard error
(era std / sqrt(eras): eras do not overlap), ALPHA likewise (demo only: the demo market's
neutralizer), training rows, wall time and peak RSS sampled during the fit. Data sets:

- the demo market at ``--signal`` for each of ``--seeds``, and at signal 0 (pure noise: CORR must
  stay within 3 SE of 0 for both samplings);
- the real sample ``../shared/data/real-prices-sample/`` (100 S&P 500 stocks, 2013–2017; bars
  dated after 2017 are a known year-rewriting defect of those files and are left out), when present.

The figures a goal compares: |weekly − daily| per mean, in units of the daily fit's SE (≤ 1 is
"within 1 SE"). Prints a Markdown table and a JSON line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from numerflow.tasks.core.config import TargetSettings, TrainingSettings
from numerflow.tasks.core.store import Store, read_parquet, write_parquet
from numerflow.tasks.model.dataset import build_dataset_frame
from numerflow.tasks.model.eras import with_score
from numerflow.tasks.model.training import train_and_register
from numerflow.tasks.numerai.neutralizer import validation_alpha, write_neutralizer_files
from numerflow.tasks.prices.sources.demo import DemoMarket

ROOT = Path(__file__).resolve().parents[1]
REAL_SAMPLE = ROOT.parent / "shared" / "data" / "real-prices-sample"
END = dt.date(2025, 6, 27)


def rss_bytes() -> int:
    import os

    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def real_sample_prices(folder: Path) -> pd.DataFrame:
    """The Kaggle-layout CSVs (``date,open,high,low,close,volume,Name``; unadjusted closes) as a panel."""
    frame = pd.concat([pd.read_csv(p) for p in sorted(folder.glob("*.csv"))], ignore_index=True)
    frame = frame.rename(columns={"Name": "ticker"})
    frame["date"] = pd.to_datetime(frame["date"])
    frame = frame[frame["date"] < "2018-01-01"]  # the files' rewritten-year rows (see the module doc)
    frame["adj_close"] = frame["close"]
    return frame[["ticker", "date", "open", "high", "low", "close", "adj_close", "volume"]].reset_index(drop=True)


def se(summary: dict[str, Any]) -> float:
    std, n = summary.get("std"), summary.get("n_eras") or 0
    return float(std) / math.sqrt(n) if std is not None and n > 1 else math.nan


def one_fit(folder: Path, dataset: Path, sample: str, market: DemoMarket | None, threads: int) -> dict[str, Any]:
    settings = TrainingSettings(sample=sample, refit_on_all=False, num_threads=threads)
    high = [rss_bytes()]
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.2):
            high[0] = max(high[0], rss_bytes())

    threading.Thread(target=watch, daemon=True).start()
    started = time.monotonic()
    result = train_and_register(Store(folder / f"store-{sample}"), dataset, settings, run_id=sample)
    wall = time.monotonic() - started
    stop.set()
    out = {"sample": sample, "wall_s": round(wall, 1), "peak_rss_gb": round(high[0] / 1e9, 2),
           "corr_mean": result.metrics["corr"]["mean"], "corr_se": se(result.metrics["corr"]),
           "n_eras": result.metrics["corr"]["n_eras"]}
    meta = json.loads((Path(result.model_dir) / "meta.json").read_text())
    out["train_rows"] = meta["data_range"]["train_rows"]
    if market is not None:
        dates = read_parquet(Path(result.validation_predictions), columns=["date"])["date"].unique()
        files = write_neutralizer_files(folder / "neutralizer", *market.neutralizers(dates))
        alpha = validation_alpha(Path(result.validation_predictions), files.neutralizer_path, files.weights_path)
        metrics = with_score(result.metrics, "alpha", alpha, 20)
        out["alpha_mean"], out["alpha_se"] = metrics["alpha"]["mean"], se(metrics["alpha"])
    return out


def compare(name: str, prices: pd.DataFrame, market: DemoMarket | None, work: Path, threads: int) -> dict[str, Any]:
    folder = work / name
    folder.mkdir()
    dataset = write_parquet(folder / "dataset.parquet", build_dataset_frame(prices, TargetSettings()))
    del prices
    fits = {sample: one_fit(folder, dataset, sample, market, threads) for sample in ("daily", "weekly")}
    daily, weekly = fits["daily"], fits["weekly"]
    row: dict[str, Any] = {"data": name, **{f"{s}_{k}": v for s, f in fits.items() for k, v in f.items()
                                            if k != "sample"}}
    row["corr_gap_in_daily_se"] = abs(weekly["corr_mean"] - daily["corr_mean"]) / daily["corr_se"]
    if market is not None:
        row["alpha_gap_in_daily_se"] = abs(weekly["alpha_mean"] - daily["alpha_mean"]) / daily["alpha_se"]
    return row


def fmt(value: Any, digits: int = 4) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=1000)
    parser.add_argument("--years", type=float, default=10)
    parser.add_argument("--signal", type=float, default=0.5)
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--no-real", action="store_true", help="skip the real sample")
    parser.add_argument("--threads", type=int, default=1, help="LightGBM threads (0 = all cores)")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-sampling-") as tmp:
        work = Path(tmp)
        cases: list[tuple[str, float, int]] = [(f"demo seed {s} signal {args.signal:g}", args.signal, int(s))
                                               for s in args.seeds.split(",")]
        cases.append((f"demo seed {cases[0][2]} signal 0", 0.0, cases[0][2]))
        for name, signal, seed in cases:
            market = DemoMarket(tickers=args.tickers, years=args.years, signal=signal, seed=seed, end=END)
            rows.append(compare(name.replace(" ", "-"), market.fetch(market.all_tickers()), market, work,
                                args.threads))
            print(json.dumps(rows[-1]), flush=True)
        if REAL_SAMPLE.is_dir() and not args.no_real:
            rows.append(compare("real-sample", real_sample_prices(REAL_SAMPLE), None, work, args.threads))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{args.tickers} tickers x {args.years:g} years (demo)\n")
    print("| data | sample | train rows | fit s | peak RSS GB | CORR mean ± SE | ALPHA mean ± SE | eras |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        for sample in ("daily", "weekly"):
            alpha = (f"{fmt(row.get(f'{sample}_alpha_mean'))} ± {fmt(row.get(f'{sample}_alpha_se'))}"
                     if f"{sample}_alpha_mean" in row else "—")
            print(f"| {row['data']} | {sample} | {row[f'{sample}_train_rows']:,} | {row[f'{sample}_wall_s']} | "
                  f"{row[f'{sample}_peak_rss_gb']} | {fmt(row[f'{sample}_corr_mean'])} ± "
                  f"{fmt(row[f'{sample}_corr_se'])} | {alpha} | {row[f'{sample}_n_eras']} |")
        print(f"| | gap (weekly − daily) in daily SE | | | | {fmt(row['corr_gap_in_daily_se'], 2)} | "
              f"{fmt(row.get('alpha_gap_in_daily_se'), 2)} | |")
    print(json.dumps(rows))
    return rows


if __name__ == "__main__":
    main()
