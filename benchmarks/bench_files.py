"""Benchmark: your own price files at Numerai's size, day after day.

A vendor folder of per-ticker CSVs in yfinance's layout (``Date, Open, High, Low, Close, Adj
Close, Volume``; default 5,000 tickers × 20 years of business days ≈ 26 M bars, ~1.5 GB),
generated once by ``tests/fakes/vendor_files.py`` and reused. Each phase runs in its own fresh
subprocess, which reports its wall time and peak RSS (``ru_maxrss``):

- baseline: what a user would otherwise write, a plain ``pd.read_csv`` loop over the files and
  one ``pd.concat`` (reading only: no checks, no store);
- first ingest: the files source through the ingest's own steps (``tests/fakes/ingest_steps.py``:
  plan → every batch → ledger, serially, as ``flows.prices.run_price_ingest`` chains them) into an
  empty store: read, checked, de-duplicated, stored as Parquet parts with a ledger;
- unchanged second ingest: the same folder again (only size/mtime are looked at; nothing parsed);
- one day appended: a new bar at the end of every file (a new trading day), then an ingest; the
  files are truncated back to their old size afterwards, so the folder can be reused.

CPU seconds (user + system of the phase's process, imports included) are reported next to wall
time: on a machine shared with other jobs they say what the work costs, wall time what it took.

Goals (issue 20, this 2-core machine): first ingest ≤ 90 s, unchanged ≤ 10 s, one day ≤ 20 s,
peak memory < 4 GB.

Usage: .venv/bin/python benchmarks/bench_files.py [--folder /tmp/nf-bench-files] [--tickers 5000]
       [--years 20] [--store /tmp/nf-bench-files-store] [--no-baseline]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

AS_OF = date(2026, 1, 2)  # the folder ends on 2025-12-31; the appended day is 2026-01-02


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    """CPU time of this process (user + system, all threads): comparable when the machine is shared."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def generate(folder: Path, tickers: int, years: int) -> None:
    from fakes.vendor_files import write_vendor_folder

    names = [f"T{i:04d}" for i in range(tickers)]
    write_vendor_folder(folder, names, f"{2025 - years + 1}-01-01", "2025-12-31")
    (folder / "_complete").write_text(json.dumps({"tickers": tickers, "years": years}))


def phase_baseline(folder: Path) -> dict:
    import pandas as pd

    start = time.perf_counter()
    frames = []
    for path in sorted(folder.glob("*.csv")):
        frame = pd.read_csv(path)
        frame["ticker"] = path.stem
        frames.append(frame)
    bars = pd.concat(frames, ignore_index=True)
    return {"seconds": time.perf_counter() - start, "cpu_seconds": _cpu_seconds(), "bars": len(bars), "peak_mb": _peak_mb()}


def phase_ingest(folder: Path, store_dir: Path) -> dict:
    import pandas as pd
    from fakes.ingest_steps import ingest_like_the_flow

    from numerflow.tasks.core.store import Store
    from numerflow.tasks.prices.ingest import IngestOptions
    from numerflow.tasks.prices.sources.files import FilePriceSource

    start = time.perf_counter()
    source = FilePriceSource(folder, today=pd.Timestamp(AS_OF))
    store = Store(store_dir)
    source.attach(store.root / "ingest" / source.name)  # as run_price_ingest does before planning
    tickers = source.tickers()  # what `numerflow ingest` asks for without a universe snapshot
    result = ingest_like_the_flow(source, store, tickers, as_of=AS_OF, options=IngestOptions())
    s = result.summary
    return {"seconds": time.perf_counter() - start, "cpu_seconds": _cpu_seconds(), "tickers": s["tickers"], "ok": s["ok"],
            "failed": s["failed"],
            "rows_written": s["rows"], "files_read": source.files_read, "tails_read": source.tails_read,
            "peak_mb": _peak_mb()}


def _run_phase(name: str, folder: Path, store: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", name, "--folder", str(folder), "--store", str(store)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def append_one_day(folder: Path) -> dict[Path, int]:
    """A new trading day at the end of every file, continuing from its last close."""
    sizes = {}
    for path in sorted(folder.glob("*.csv")):
        sizes[path] = path.stat().st_size
        with path.open("rb") as handle:
            handle.seek(max(sizes[path] - 200, 0))
            last = handle.read().decode().strip().splitlines()[-1].split(",")
        close, adj = float(last[4]) * 1.001, float(last[5]) * 1.001
        with path.open("a") as handle:
            handle.write(f"{AS_OF.isoformat()},{close:.4f},{close * 1.004:.4f},{close * 0.996:.4f},{close:.4f},"
                         f"{adj:.4f},1000000\n")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/nf-bench-files"))
    parser.add_argument("--store", type=Path, default=Path("/tmp/nf-bench-files-store"))
    parser.add_argument("--tickers", type=int, default=5000)
    parser.add_argument("--years", type=int, default=20)
    parser.add_argument("--phase", choices=["baseline", "ingest"])
    parser.add_argument("--no-baseline", action="store_true", help="skip the pd.read_csv baseline (while iterating)")
    args = parser.parse_args()
    if args.phase == "baseline":
        print(json.dumps(phase_baseline(args.folder)))
        return
    if args.phase == "ingest":
        print(json.dumps(phase_ingest(args.folder, args.store)))
        return

    if not (args.folder / "_complete").exists():
        shutil.rmtree(args.folder, ignore_errors=True)
        started = time.perf_counter()
        generate(args.folder, args.tickers, args.years)
        print(f"generated {args.tickers} files in {time.perf_counter() - started:.0f} s", flush=True)
    shutil.rmtree(args.store, ignore_errors=True)
    load = {"before": os.getloadavg()}
    results = {}
    if not args.no_baseline:
        results["baseline"] = _run_phase("baseline", args.folder, args.store)
        print(f"baseline pd.read_csv loop: {results['baseline']}", flush=True)
    results["first"] = _run_phase("ingest", args.folder, args.store)
    print(f"first ingest:              {results['first']}", flush=True)
    results["unchanged"] = _run_phase("ingest", args.folder, args.store)
    print(f"unchanged second ingest:   {results['unchanged']}", flush=True)
    sizes = append_one_day(args.folder)
    try:
        results["one_day"] = _run_phase("ingest", args.folder, args.store)
    finally:
        for path, size in sizes.items():
            os.truncate(path, size)
    print(f"one day appended:          {results['one_day']}", flush=True)
    load["after"] = os.getloadavg()
    results["load"] = load
    results["bars"] = results["baseline"]["bars"] if "baseline" in results else None
    print(json.dumps(results))


if __name__ == "__main__":
    main()
