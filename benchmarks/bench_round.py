"""A whole Signals round at a given size, stage by stage: wall, CPU and peak RSS.

    .venv/bin/python benchmarks/bench_round.py [--tickers 5000 --years 20 --cases first,daily,retrain,baseline]

Each case runs in a fresh subprocess, one after the other, on one fresh data directory:

- ``first``: ``numerflow run --demo`` on an empty store (market generation + ingest, features and
  targets, training, prediction, validation, the dry-run upload), the demo market ending ``--end``;
- ``daily``: the next business day (one new day of bars): the ingest appends it, the dataset is
  rebuilt, the model (fresh, same lineage) is reused;
- ``retrain``: the business day after that, with ``--retrain``;
- ``baseline``: what a user would write instead, as Numerai's example scripts do: the first round's
  dataset file read whole into a pandas frame (``pd.read_parquet``), then
  ``lgb.LGBMRegressor(n_estimators=num_boost_round, **training.params).fit`` on the same features and
  every daily training row of the same purged, embargoed split (what numerflow fitted before
  ``training.sample``), then the validation rows predicted and scored like numerflow's (weekly-era
  CORR, and ALPHA against the same demo neutralizer). Its round = the first round's data stages
  (market, ingest, dataset) + these steps.

Per stage (the round's own stage lines): wall seconds, process CPU seconds and the peak RSS sampled
every 0.2 s during the stage; per case: wall, CPU and ``ru_maxrss`` (peak RSS of the whole process).
The machine's load (``/proc/loadavg``) is recorded before and after each case: the machine may be
shared. Prints a Markdown table and writes every figure to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

CASES = ("first", "daily", "retrain", "baseline")


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def load_average() -> str:
    with open("/proc/loadavg") as loadavg:
        return " ".join(loadavg.read().split()[:3])


class StageClock(io.TextIOBase):
    """A stream for the round's stage lines (``flows.round.STAGE_ECHO``): times each stage (wall,
    process CPU) and keeps the highest RSS a sampling thread saw while it ran."""

    def __init__(self) -> None:
        self.stages: list[dict[str, Any]] = []
        self.current: dict[str, Any] | None = None
        self.high = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def sample(self) -> None:
        while not self.stop.wait(0.2):
            self.high = max(self.high, rss_bytes())

    def start(self, name: str) -> None:
        self.high = rss_bytes()
        self.current = {"stage": name, "wall": time.monotonic(), "cpu": time.process_time()}

    def end(self) -> None:
        if self.current is None:
            return
        self.high = max(self.high, rss_bytes())
        self.stages.append({"stage": self.current["stage"], "wall_s": round(time.monotonic() - self.current["wall"], 1),
                            "cpu_s": round(time.process_time() - self.current["cpu"], 1),
                            "peak_rss_gb": round(self.high / 1e9, 2)})
        self.current = None

    def write(self, text: str) -> int:  # "numerflow: <stage> …" / "numerflow: <stage> done in 1.0 s"
        for line in text.splitlines():
            if not line.startswith("numerflow: "):
                continue  # the ingest's progress bar
            body = line[len("numerflow: "):]
            if body.endswith(" …"):
                self.start(body[:-2])
            elif " done in " in body or " FAILED after " in body:
                self.end()
        return len(text)

    def isatty(self) -> bool:
        return False


def pin_demo_end(end: str) -> None:
    """The demo market ends on ``end`` (a business day), not yesterday: the cases are days apart."""
    import datetime as dt

    from numerflow.tasks.prices.sources import demo

    day = dt.date.fromisoformat(end)
    demo.default_end = lambda: day  # type: ignore[assignment]


def run_child(case: str, args: argparse.Namespace) -> dict[str, Any]:
    """One numerflow case in this process: the CLI's ``run --demo``, stage lines timed."""
    from numerflow.flows import stages as round_module
    from numerflow.flows.cli import main

    pin_demo_end(args.end)
    clock = StageClock()
    round_module.STAGE_ECHO.append(clock)
    argv = ["run", "--demo", "--tickers", str(args.tickers), "--years", str(args.years), "--signal",
            str(args.signal), "--seed", str(args.seed), "--data-dir", args.data_dir, "--json"]
    if case == "retrain":
        argv.append("--retrain")
    out = io.StringIO()
    started_wall, started_cpu = time.monotonic(), time.process_time()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    wall, cpu = time.monotonic() - started_wall, time.process_time() - started_cpu
    clock.stop.set()
    summary = json.loads(out.getvalue()[out.getvalue().index("{"):])
    meta = json.loads((Path(args.data_dir) / "models" / summary["model"]["id"] / "meta.json").read_text())
    return {"case": case, "exit": code, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "peak_rss_gb": round(peak_rss_bytes() / 1e9, 2), "stages": clock.stages,
            "prices": {k: summary["prices"].get(k) for k in ("tickers", "rows", "repulled", "ok", "stale", "failed")},
            "dataset": summary["dataset"], "model": summary["model"], "validation": summary["validation"],
            "alpha": summary["alpha"], "fit_seconds": meta.get("fit_seconds"),
            "train_rows": meta["data_range"]["train_rows"], "live_rows": meta.get("live_rows")}


def run_baseline(args: argparse.Namespace) -> dict[str, Any]:
    """The example-script way on the first round's dataset: pandas frame, ``LGBMRegressor.fit``."""
    import lightgbm as lgb
    import numpy as np
    import pandas as pd

    from numerflow.tasks.core.config import load_settings
    from numerflow.tasks.core.store import write_parquet
    from numerflow.tasks.model.eras import era_metrics, with_score
    from numerflow.tasks.model.scoring import numerai_corr_by_date
    from numerflow.tasks.model.training import lightgbm_params, purged_date_split, target_span_trading_days
    from numerflow.tasks.numerai.neutralizer import validation_alpha
    from numerflow.tasks.round.signals import demo_neutralizer

    pin_demo_end(args.end)
    settings = load_settings(price_source="demo", data_dir=args.data_dir,
                             demo={"tickers": args.tickers, "years": args.years, "signal": args.signal,
                                   "seed": args.seed})
    training = settings.training
    stages: list[dict[str, Any]] = []
    high = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            high[0] = max(high[0], rss_bytes())

    threading.Thread(target=sample, daemon=True).start()

    @contextlib.contextmanager
    def stage(name: str):  # type: ignore[no-untyped-def]
        high[0] = rss_bytes()
        wall, cpu = time.monotonic(), time.process_time()
        yield
        stages.append({"stage": name, "wall_s": round(time.monotonic() - wall, 1),
                       "cpu_s": round(time.process_time() - cpu, 1),
                       "peak_rss_gb": round(max(high[0], rss_bytes()) / 1e9, 2)})

    started_wall, started_cpu = time.monotonic(), time.process_time()
    with stage("read (pd.read_parquet)"):
        frame = pd.read_parquet(args.dataset)
    features = [c for c in frame.columns if c.startswith("feature_")]
    has_target = frame["target"].notna().to_numpy()
    split = purged_date_split(frame["date"], frame["target_end_date"], has_target, training.validation_fraction,
                              training.embargo_days)
    params = {k: v for k, v in lightgbm_params(training).items()}
    with stage("fit (LGBMRegressor, every daily training row)"):
        model = lgb.LGBMRegressor(n_estimators=training.num_boost_round, **params)
        model.fit(frame.loc[split.train, features], frame.loc[split.train, "target"])
    with stage("predict + score validation"):
        valid = frame.loc[split.validation, ["ticker", "date", "target"]].reset_index(drop=True)
        valid["prediction"] = model.predict(frame.loc[split.validation, features])
        corr = numerai_corr_by_date(valid["prediction"].to_numpy(), valid["target"].to_numpy(dtype="float64"),
                                    valid["date"].to_numpy())
        span = target_span_trading_days(frame.loc[has_target, ["date", "target_end_date"]])
        per_date = {"date": list(corr.index), "corr": corr.to_numpy().tolist()}
        metrics = era_metrics(per_date, span, scores=("corr",))
        path = write_parquet(Path(args.data_dir) / "bench-baseline-validation.parquet", valid)
        files = demo_neutralizer(settings, str(path))
        alpha = validation_alpha(path, files.neutralizer_path, files.weights_path)
        metrics = with_score(metrics, "alpha", alpha, span)
    wall, cpu = time.monotonic() - started_wall, time.process_time() - started_cpu
    stop.set()
    return {"case": "baseline", "exit": 0, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "peak_rss_gb": round(peak_rss_bytes() / 1e9, 2), "stages": stages,
            "train_rows": int(split.train.sum()), "validation": metrics["corr"], "alpha": metrics["alpha"],
            "rows": int(np.asarray(len(frame)))}


def next_business_day(day: str, n: int = 1) -> str:
    import numpy as np

    return str(np.busday_offset(np.datetime64(day), n, roll="forward"))


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "?")
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    return f"{os.cpu_count()}-core {cpu}, {memory:.0f} GiB, Python {platform.python_version()}"


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| case | stage | wall s | CPU s | peak RSS GB |", "|---|---|---|---|---|"]
    for result in results:
        for stage in result["stages"]:
            lines.append(f"| {result['case']} | {stage['stage']} | {stage['wall_s']} | {stage['cpu_s']} | "
                         f"{stage['peak_rss_gb']} |")
        lines.append(f"| **{result['case']}** | **whole** (load {result['load_before']} → {result['load_after']}) | "
                     f"**{result['wall_s']}** | **{result['cpu_s']}** | **{result['peak_rss_gb']}** |")
    lines += ["", "| case | training rows | LightGBM fits s | era CORR mean ± SE | era ALPHA mean ± SE | eras |",
              "|---|---|---|---|---|---|"]
    for result in results:
        corr, alpha = result.get("validation") or {}, result.get("alpha") or {}
        fits = result.get("fit_seconds") or {}
        lines.append(f"| {result['case']} | {result.get('train_rows', '—')} | "
                     f"{' + '.join(str(v) for v in fits.values()) or '—'} | {mean_se(corr)} | {mean_se(alpha)} | "
                     f"{corr.get('n_eras', '—')} |")
    return "\n".join(lines)


def baseline_ratio(results: list[dict[str, Any]]) -> tuple[float, float] | None:
    """(first round wall, baseline round wall): the baseline's round is the first round's stages up to
    the dataset (the data a user also needs) plus the baseline's own read, fit and predict."""
    by_case = {r["case"]: r for r in results}
    if "first" not in by_case or "baseline" not in by_case:
        return None
    first = by_case["first"]
    stages = [s["stage"] for s in first["stages"]]
    data = sum(s["wall_s"] for s in first["stages"][:stages.index("dataset") + 1])
    return first["wall_s"], data + by_case["baseline"]["wall_s"]


def mean_se(summary: dict[str, Any]) -> str:
    """``mean ± std/sqrt(eras)`` of an era summary (weekly eras do not overlap)."""
    if not summary or summary.get("mean") is None or not summary.get("n_eras"):
        return "—"
    return f"{summary['mean']:.4f} ± {(summary.get('std') or 0) / summary['n_eras'] ** 0.5:.4f}"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=5000)
    parser.add_argument("--years", type=float, default=20)
    parser.add_argument("--signal", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--end", default="2026-12-02", help="the first round's last market day")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--data-dir", help="default: a new temporary folder (removed at the end)")
    parser.add_argument("--out", help="JSON file for every figure")
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # inside the case's own process
        result = run_baseline(args) if args.child == "baseline" else run_child(args.child, args)
        print("RESULT " + json.dumps(result, default=str))
        return [result]

    cases = [c for c in args.cases.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; choose from {CASES}")
    with contextlib.ExitStack() as stack:
        data_dir = args.data_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-round-"))
        results: list[dict[str, Any]] = []
        ends = {"first": args.end, "daily": next_business_day(args.end, 1),
                "retrain": next_business_day(args.end, 2), "baseline": args.end}
        # The demo market appends a day only within one calendar block; across blocks it is drawn anew.
        from numerflow.tasks.prices.sources.demo import _calendar_grid

        blocks = {_calendar_grid(date.fromisoformat(ends[c]), 1)[0] for c in cases if c != "baseline"}
        if len(blocks) > 1:
            parser.error(f"--end {args.end} and the next two business days span two of the demo market's calendar "
                         "blocks (a new block re-draws every history): pick an --end earlier in its block")
        dataset = None
        for case in cases:
            command = [sys.executable, __file__, "--child", case, "--tickers", str(args.tickers), "--years",
                       str(args.years), "--signal", str(args.signal), "--seed", str(args.seed), "--end", ends[case],
                       "--data-dir", data_dir]
            if case == "baseline":
                if dataset is None:
                    parser.error("the baseline reads the first round's dataset: list 'first' before it")
                command += ["--dataset", dataset]
            before = load_average()
            # A busy machine can take more than Prefect's default 20 s to start its ephemeral server.
            env = {"PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
                   **os.environ}
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode != 0 or not lines:
                sys.stderr.write(done.stderr[-4000:])
                raise SystemExit(f"case {case} failed (exit {done.returncode})")
            result = json.loads(lines[-1][len("RESULT "):])
            result.update(load_before=before, load_after=load_average(), end=ends[case])
            if case == "first":
                dataset = result["dataset"]["path"]
            results.append(result)
            print(f"{case}: {result['wall_s']} s wall, {result['cpu_s']} s CPU, peak RSS {result['peak_rss_gb']} GB "
                  f"(load {before} → {result['load_after']})", flush=True)
            if args.out:  # after every case: a long run keeps what it measured
                Path(args.out).write_text(json.dumps({"machine": machine(), "tickers": args.tickers,
                                                      "years": args.years, "results": results}, indent=2,
                                                     default=str))
        print(f"\n{machine()}; {args.tickers} tickers x {args.years:g} years\n")
        print(table(results))
        ratio = baseline_ratio(results)
        if ratio is not None:
            print(f"\nbaseline round (the first round's data stages + its read, fit, predict) / first round: "
                  f"{ratio[1]:.1f} s / {ratio[0]:.1f} s = {ratio[1] / ratio[0]:.2f}x")
        return results


if __name__ == "__main__":
    main()
