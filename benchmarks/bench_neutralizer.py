"""Benchmark: ALPHA from a Numerai-sized neutralizer file, read a few dates at a time, and its peak memory.

    .venv/bin/python benchmarks/bench_neutralizer.py [--dates 1000 --tickers 5000 --neutralizers 200]
                                                     [--dir /tmp/numerflow-bench-neutralizer] [--keep]

Writes a ``validation_neutralizer.parquet`` in Numerai's layout (``numerai_ticker``, ``date``
strings, float32 ``neutralizer_<j>`` columns, one row group per date; 1,000 dates x 5,000 tickers x
200 columns is ~4 GB of float32 data, the size of Numerai's file) and its sample weights, then, in a
fresh subprocess, scores ALPHA for every date with ``tasks.numerai.neutralizer.alpha_from_files``
and reports its wall time and peak RSS (``ru_maxrss`` of that subprocess: reading included). The
whole file read at once would need its data size in memory, and more as a DataFrame.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_files(folder: Path, n_dates: int, n_tickers: int, k: int, seed: int) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    tickers = pa.array([f"T{i:05d} US" for i in range(n_tickers)], pa.string())
    dates = pd.date_range("2016-01-01", periods=n_dates, freq="W-FRI").strftime("%Y-%m-%d")
    names = [f"neutralizer_{j}" for j in range(k)]
    neutral_path, weights_path, scored_path = (folder / "validation_neutralizer.parquet",
                                               folder / "validation_sample_weights.parquet", folder / "scored.parquet")
    neutral_schema = pa.schema([("numerai_ticker", pa.string()), ("date", pa.string()),
                                *[(name, pa.float32()) for name in names]])
    weight_schema = pa.schema([("numerai_ticker", pa.string()), ("date", pa.string()), ("sample_weight", pa.float32())])
    scored = []
    with pq.ParquetWriter(neutral_path, neutral_schema, compression="zstd") as neutral_writer, \
            pq.ParquetWriter(weights_path, weight_schema, compression="zstd") as weight_writer:
        for date in dates:
            day = pa.array([date] * n_tickers, pa.string())
            values = (rng.standard_normal((n_tickers, k), dtype=np.float32) / np.float32(np.sqrt(n_tickers)))
            neutral_writer.write_table(pa.table([tickers, day, *[pa.array(values[:, j]) for j in range(k)]],
                                                schema=neutral_schema))
            weight_writer.write_table(pa.table([tickers, day, pa.array(rng.uniform(0.5, 1.5, n_tickers)
                                                                         .astype(np.float32))], schema=weight_schema))
            scored.append(pd.DataFrame({"ticker": tickers.to_pylist(), "date": date,
                                        "prediction": rng.standard_normal(n_tickers),
                                        "target": rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], n_tickers)}))
    pd.concat(scored, ignore_index=True).to_parquet(scored_path, index=False)
    return neutral_path, weights_path, scored_path


def score(neutral_path: str, weights_path: str, scored_path: str) -> None:
    """Subprocess body: read the predictions, score ALPHA from the files, print one JSON line."""
    from numerflow.tasks.numerai.neutralizer import alpha_from_files

    scored = pd.read_parquet(scored_path)
    start = time.perf_counter()
    alpha = alpha_from_files(scored, Path(neutral_path), Path(weights_path))
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": round(seconds, 2), "dates": int(alpha.notna().sum()),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0),
                      "scored_rows_mb": round(scored.memory_usage(deep=True).sum() / 2**20)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dates", type=int, default=1000)
    parser.add_argument("--tickers", type=int, default=5000)
    parser.add_argument("--neutralizers", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", default="/tmp/numerflow-bench-neutralizer")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--score", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.score:
        score(*args.score)
        return
    folder = Path(args.dir)
    start = time.perf_counter()
    paths = write_files(folder, args.dates, args.tickers, args.neutralizers, args.seed)
    write_seconds = time.perf_counter() - start
    data_gb = args.dates * args.tickers * args.neutralizers * 4 / 2**30
    print(f"wrote {paths[0]} ({paths[0].stat().st_size / 2**30:.2f} GiB on disk, {data_gb:.2f} GiB of float32 "
          f"neutralizer data) in {write_seconds:.0f} s; python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs visible, load {os.getloadavg()[0]:.1f}")
    run = subprocess.run([sys.executable, __file__, "--score", *map(str, paths)], check=True, capture_output=True,
                         text=True)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"ALPHA for {result['dates']} dates in {result['seconds']} s; peak RSS {result['peak_rss_mb']} MB "
          f"(the predictions frame alone: {result['scored_rows_mb']} MB)")
    print(json.dumps({"benchmark": "neutralizer", "dates": args.dates, "tickers": args.tickers,
                      "neutralizers": args.neutralizers, "file_gib": round(paths[0].stat().st_size / 2**30, 2),
                      "data_gib": round(data_gb, 2), **result}))
    if not args.keep:
        for path in paths:
            path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
