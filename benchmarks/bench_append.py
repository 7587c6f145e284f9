"""Benchmark: the dataset stage on the day after, a new day appended vs the whole rebuild.

    .venv/bin/python benchmarks/bench_append.py [--tickers 5000 --years 20 --days 1 --seed 42 --out append.json]

What a daily user's dataset stage does when the price files only grew by ``--days`` days
(``tasks/model/increment.py``), side by side, in the same run, with what it did before: rebuild
the whole dataset from the whole panel. Steps, each in its own subprocess (wall, CPU, peak RSS):

1. ``day 1, whole``: the dataset of the demo panel without its last ``--days`` days (a fresh store);
2. ``day 2, appended``: the same store, the whole panel: the previous dataset plus the new days;
3. ``day 2, whole``: a fresh store, the whole panel: the rebuild a user would otherwise run.

Then the two day-2 datasets are compared column by column, exactly (they must be bit-identical).
The demo panel is written as the vendor's files would be: a single price part with every bar. (The
demo market's own daily round re-pulls its dividend payers, whose adjusted history changes, so
its datasets are built whole, as with Yahoo prices: ``bench_round.py`` measures that.)
The last line printed is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from bench_round import load_average  # the same load figure as the round bench (this folder)

from numerflow.tasks.core.config import TargetSettings
from numerflow.tasks.core.schemas import PRICE_SCHEMA
from numerflow.tasks.core.store import Store, read_parquet, write_parquet

SOURCE = "vendor"


def write_prices(store: Store, panel_path: Path, before: str | None) -> int:
    """The store's price folder: one part with the panel's rows (dated before ``before``, if given)."""
    import pyarrow.dataset as ds

    folder = store.prices_dir(SOURCE)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.parquet"):
        old.unlink()
    table = ds.dataset(panel_path).to_table(
        filter=None if before is None else ds.field("date") < date.fromisoformat(before))
    write_parquet(folder / "part-0.parquet", table)
    return table.num_rows


def child(store_root: str) -> dict[str, Any]:
    from numerflow.tasks.model.dataset import build_dataset

    started_wall, started_cpu = time.monotonic(), time.process_time()
    info = build_dataset(Store(Path(store_root)), SOURCE, TargetSettings())
    return {"wall_s": round(time.monotonic() - started_wall, 1), "cpu_s": round(time.process_time() - started_cpu, 1),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
            "rows": info.rows, "path": info.path, "built": info.built}


def run_step(store_root: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", str(store_root)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def same_files(left: str, right: str) -> bool:
    """Every column of two Parquet files equal, value for value (NaN where NaN), one column at a time."""
    a, b = pq.ParquetFile(left), pq.ParquetFile(right)
    if a.metadata.num_rows != b.metadata.num_rows or a.schema_arrow.names != b.schema_arrow.names:
        return False
    for name in a.schema_arrow.names:
        if not pq.read_table(left, columns=[name]).column(name).equals(pq.read_table(right, columns=[name]).column(name)):
            return False
    return True


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickers", type=int, default=5000)
    parser.add_argument("--years", type=float, default=20.0)
    parser.add_argument("--days", type=int, default=1, help="new business days on day 2")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--end", default="2026-11-27", help="the demo market's last day (day 2)")
    parser.add_argument("--workdir", help="where the stores go (default: a temporary folder, removed)")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child)))
        return {}

    from numerflow.tasks.prices.sources.demo import DemoMarket

    with tempfile.TemporaryDirectory(prefix="bench-append-") as scratch:
        work = Path(args.workdir or scratch)
        work.mkdir(parents=True, exist_ok=True)
        market = DemoMarket(tickers=args.tickers, years=args.years, seed=args.seed, end=date.fromisoformat(args.end))
        panel_path = work / "panel.parquet"
        panel = market.fetch(market.all_tickers())
        write_parquet(panel_path, panel, schema=PRICE_SCHEMA)
        dates = sorted(read_parquet(panel_path, columns=["date"])["date"].unique())
        first_new = str(dates[-args.days].date())
        del panel, market

        appended_store, whole_store = Store(work / "appended"), Store(work / "whole")
        steps: dict[str, Any] = {}
        day1_rows = write_prices(appended_store, panel_path, before=first_new)
        steps["day 1, whole"] = run_step(appended_store.root) | {"load": load_average(), "bars": day1_rows}
        bars = write_prices(appended_store, panel_path, before=None)
        steps["day 2, appended"] = run_step(appended_store.root) | {"load": load_average(), "bars": bars}
        write_prices(whole_store, panel_path, before=None)
        steps["day 2, whole"] = run_step(whole_store.root) | {"load": load_average(), "bars": bars}
        identical = same_files(steps["day 2, appended"]["path"], steps["day 2, whole"]["path"])

    result = {"tickers": args.tickers, "years": args.years, "new_days": args.days, "first_new_day": first_new,
              "steps": steps, "bit_identical": identical,
              "speedup": round(steps["day 2, whole"]["wall_s"] / max(steps["day 2, appended"]["wall_s"], 0.1), 2)}
    print(f"{args.tickers} tickers x {args.years:g} years; day 2 adds {args.days} day(s) from {first_new}\n")
    print("| step | bars | wall s | CPU s | peak RSS GB | how | load after |\n|---|---|---|---|---|---|---|")
    for name, step in steps.items():
        print(f"| {name} | {step['bars']:,} | {step['wall_s']} | {step['cpu_s']} | {step['peak_rss_gb']} | "
              f"{step['built']} | {step['load']} |")
    print(f"\nday 2 appended vs whole: {result['speedup']}x faster; bit-identical: {identical}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    if not identical:
        raise SystemExit("the appended dataset differs from the whole rebuild")
    return result


if __name__ == "__main__":
    main()
