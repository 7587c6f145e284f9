"""Peak memory of reading (and training on) Numerai Classic's full training set, medium feature set.

Writes, once, a synthetic ``train.parquet`` of Numerai's real shape into a temporary folder
(never the repo): ``--rows`` rows (Numerai's v5.2 train: 688,184 rows at every 4th era of 574,
so ≈ 2.75 M), ``era`` zero-padded strings, ``--medium`` int8 features in 0..4 (v5.2's medium set:
780) plus ``--extra`` int8 features that are not read (the rest of the file, as in Numerai's
2,748-feature file), float32 binned targets, ``id`` index, one row group per ``--row-group`` rows.
Then, each in a fresh subprocess (peak RSS = that process's ``ru_maxrss``, imports included):

- ``ours``: ``tasks.classic.data.read_classic_frame`` (only the asked columns, one int8 matrix);
- ``pandas``: ``pd.read_parquet(path, columns=["era", *medium, "target"])``, as Numerai's example
  scripts read it;
- ``train`` (``--train``): ours, then ``tasks.classic.training.fit_classic`` with
  ``--rounds`` boosting rounds of Numerai's example parameters on every row;
- ``train_pandas`` (``--train-pandas``): pandas' read, then ``lgb.train`` on the DataFrame
  (LightGBM converts it to one float32 matrix), what the example scripts do with
  ``LGBMRegressor.fit``.

Prints one line per mode and a final JSON line. ``--scale 0.5`` halves the rows (the machine is
shared: run at half size when less than ~12 GiB is free).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROWS = 2_750_000
ERAS = 574
MEDIUM = 780
EXTRA = 200
TARGETS = ("target", "target_ender_20", "target_ender_60", "target_cyrusd_20")


def feature_name(j: int) -> str:
    return f"feature_{j:04d}"


def write_train(path: Path, rows: int, eras: int, medium: int, extra: int, row_group: int, seed: int) -> None:
    """Chunk by chunk (bounded memory): random int8 features 0..4, binned float32 targets."""
    rng = np.random.default_rng(seed)
    n_features = medium + extra
    era_of_row = np.minimum(np.arange(rows, dtype=np.int64) * eras // rows, eras - 1) + 1
    bins = np.array([0.0, 0.25, 0.5, 0.75, 1.0], dtype=np.float32)
    names = [feature_name(j) for j in range(n_features)]
    schema = pa.schema([("id", pa.string()), ("era", pa.string()), ("data_type", pa.string()),
                        *[(n, pa.int8()) for n in names], *[(t, pa.float32()) for t in TARGETS]])
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for start in range(0, rows, row_group):
            stop = min(start + row_group, rows)
            n = stop - start
            features = rng.integers(0, 5, size=(n, n_features), dtype=np.int8)
            columns: list[pa.Array] = [
                pa.array([f"n{i:015x}" for i in range(start, stop)]),
                pa.array([f"{e:04d}" for e in era_of_row[start:stop]]),
                pa.array(["train"] * n),
                *[pa.array(features[:, j]) for j in range(n_features)],
                *[pa.array(bins[rng.choice(5, size=n, p=[0.05, 0.2, 0.5, 0.2, 0.05])]) for _ in TARGETS],
            ]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


def measure(mode: str, path: str, medium: int, rounds: int) -> dict:
    features = [feature_name(j) for j in range(medium)]
    import lightgbm as lgb
    import pandas as pd

    from numerflow.tasks.classic.data import read_classic_frame
    from numerflow.tasks.classic.training import fit_classic

    # Both sides import the same modules first: the peaks differ only by what the read and fit hold.
    out: dict = {"mode": mode, "rss_before_read_mb": _rss_now_mb()}
    started = time.perf_counter()
    if mode in ("ours", "train"):
        frame = read_classic_frame(Path(path), features, ["target"])
    else:
        frame = pd.read_parquet(path, columns=["era", *features, "target"])
    out["read_seconds"] = round(time.perf_counter() - started, 1)
    out["rss_after_read_mb"] = _rss_now_mb()
    out["frame_mb"] = round(frame.memory_usage(deep=False).sum() / 2**20)
    out["feature_dtypes"] = sorted({str(frame[f].dtype) for f in features[:50]})
    if mode == "train":
        fit_started = time.perf_counter()
        fit_classic(frame, features, "target", _params(), rounds)
        out["fit_seconds"] = round(time.perf_counter() - fit_started, 1)
    elif mode == "train_pandas":
        fit_started = time.perf_counter()
        lgb.train(_params(), lgb.Dataset(frame[features], label=frame["target"]), num_boost_round=rounds)
        out["fit_seconds"] = round(time.perf_counter() - fit_started, 1)
    out["rows"] = len(frame)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def _params() -> dict:
    # Numerai's example model (hello_numerai): learning_rate 0.01, max_depth 5, 31 leaves, colsample 0.1.
    return {"objective": "regression", "learning_rate": 0.01, "max_depth": 5, "num_leaves": 31,
            "colsample_bytree": 0.1, "verbose": -1, "seed": 0, "num_threads": 2}


def _rss_now_mb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024)
    return -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply --rows (0.5: half size)")
    parser.add_argument("--eras", type=int, default=ERAS)
    parser.add_argument("--medium", type=int, default=MEDIUM)
    parser.add_argument("--extra", type=int, default=EXTRA)
    parser.add_argument("--row-group", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", action="store_true", help="also measure fit_classic on the full set")
    parser.add_argument("--train-pandas", action="store_true",
                        help="also measure lgb.train on pandas' frame (needs ~4 bytes per feature value more)")
    parser.add_argument("--keep", type=Path, help="write (or reuse) the file here instead of a temp folder")
    parser.add_argument("--measure", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        mode, path, medium, rounds = args.measure
        print(json.dumps(measure(mode, path, int(medium), int(rounds))))
        return
    rows = int(args.rows * args.scale)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-classic-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"train-{rows}-{args.medium}-{args.extra}.parquet"
    try:
        if not path.exists():
            started = time.perf_counter()
            partial = path.with_name(f".{path.name}.tmp")  # an interrupted write is never reused
            write_train(partial, rows, args.eras, args.medium, args.extra, args.row_group, args.seed)
            partial.replace(path)
            print(f"wrote {path} ({path.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - started:.0f} s",
                  flush=True)
        modes = ["ours", "pandas"] + (["train"] if args.train else []) + (["train_pandas"] if args.train_pandas else [])
        results = []
        for mode in modes:
            run = subprocess.run([sys.executable, __file__, "--measure", mode, str(path), str(args.medium),
                                  str(args.rounds)], check=True, capture_output=True, text=True)
            result = json.loads(run.stdout.strip().splitlines()[-1])
            results.append(result)
            print(f"{mode:>12}: peak RSS {result['peak_rss_mb']:,} MB (imports {result['rss_before_read_mb']:,} MB), "
                  f"read {result['read_seconds']} s"
                  + (f", fit {result['fit_seconds']} s" if "fit_seconds" in result else "")
                  + f", frame {result['frame_mb']:,} MB, features {result['feature_dtypes']}", flush=True)
        print(json.dumps({"benchmark": "classic_memory", "rows": rows, "eras": args.eras, "medium": args.medium,
                          "extra": args.extra, "rounds": args.rounds, "file_gib": round(path.stat().st_size / 2**30, 2),
                          "load": os.getloadavg()[0], "results": results}))
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
