"""The offline Crypto round end to end: `numerflow run --demo --tournament crypto`, wall time and figures.

    .venv/bin/python benchmarks/bench_crypto_demo.py [--out crypto_demo.json]

Each case runs in a fresh subprocess on its own empty data directory (market generation, ingest,
features and targets on the every-day calendar, training, MMC against the synthetic meta model, the
checked `symbol,signal` file, the dry-run upload), with the default size (300 tokens x 3 years of bars
every day):

- ``own``: our price features (the default);
- ``both``: ours plus the demo's Numerai-shaped v2.0 `feature_*` (train.parquet, live.parquet);
- ``noise``: `--signal 0`, own features.

Per case: wall seconds, validation CORR and MMC per weekly era (mean, sharpe). The machine's load
(`/proc/loadavg`) is recorded before and after each case: the machine may be shared. Prints a Markdown
table and writes the figures to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {"own": ([], {}), "both": ([], {"NUMERFLOW_TRAINING__FEATURE_SET": "both"}), "noise": (["--signal", "0"], {})}


def load_average() -> str:
    with open("/proc/loadavg") as loadavg:
        return " ".join(loadavg.read().split()[:3])


def run_case(name: str, folder: Path) -> dict:
    args, env = CASES[name]
    command = [str(Path(sys.executable).with_name("numerflow")), "run", "--demo", "--tournament", "crypto", "--json",
               "--data-dir", str(folder / name), *args]
    before = load_average()
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env}, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}): {done.stderr[-2000:]}")
    summary = json.loads(done.stdout)
    return {"case": name, "wall_seconds": round(wall, 1), "load_before": before, "load_after": load_average(),
            "corr_mean": summary["validation"]["mean"], "corr_sharpe": summary["validation"]["sharpe"],
            "mmc_mean": summary["mmc"]["mean"], "mmc_sharpe": summary["mmc"]["sharpe"],
            "eras": summary["mmc"]["n_eras"], "rows": summary["submission"]["rows"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="crypto_demo.json")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-crypto-demo-") as tmp:
        results = [run_case(name, Path(tmp)) for name in CASES]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}")
    print("| case | wall s | CORR mean (sharpe) | MMC mean (sharpe) | eras | submitted | load before → after |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['case']} | {r['wall_seconds']} | {r['corr_mean']:.4f} ({r['corr_sharpe']:.2f}) | "
              f"{r['mmc_mean']:.4f} ({r['mmc_sharpe']:.2f}) | {r['eras']} | {r['rows']} | "
              f"{r['load_before']} → {r['load_after']} |")
    Path(options.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
