"""Benchmark: price ingest against the fake Yahoo throttled to R requests/second.

The fake answers 429 beyond R (server-side token bucket, burst 5); our shared limiter runs at
0.97 R with burst 3 (inside the server's). Measured, printed side by side, then one JSON line:

- throughput: chart requests served per second vs R over the whole run, and over the windows
  outside the 429 periods (goal >= 90% of R): the run is cut into ``--window``-second windows and
  a window counts when no chart request in it, nor in the ``--pause-on-429`` seconds before it
  (our limiter's half-rate period after a 429), was answered 429; 429s received, requests to
  Yahoo per symbol (all hosts: cookie, crumb, chart);
- a 429 wave: ``--limited-share`` of the symbols answer 429 to their first ``--limited-for``
  chart requests; ``--wave block`` (default) makes them one contiguous run of symbols, so the wave
  is a period of the run, ``--wave spread`` scatters them over the whole run;
- the load: the process's CPU time per wall second during the first run (fake server and
  yfinance parsing both run in it; near the core count means CPU-bound, not limiter-bound) and
  the machine's load average before and after;
- no data lost: every symbol's ledger status is ok and its stored rows equal the fake's bars;
- per-symbol overhead: the same symbols with no throttle, yfinance alone (baseline: a loop
  of ``Ticker.history`` with yfinance's tz cache already warm, i.e. one chart request per
  symbol) vs our whole first-run ingest (yfinance + timezone seeding + outcomes + quality +
  merge + atomic Parquet + ledger), ms/symbol;
- incremental second run: one new bar per symbol; requests per symbol, bars moved, and the
  requested period1 is the last stored date minus the overlap window.

Real yfinance costs ~10-30 ms of CPU per symbol on a shared 2-core box (its pandas parsing),
so R must stay well below what the CPU can drive for the run to measure the limiter: the
default R is 20 req/s and histories are short (20 bars: the parse cost per symbol is mostly
fixed, but a short history keeps the merge and write cheap too); 5,000 symbols take ~4.5
minutes per run. With R above the CPU's pace the run is CPU-bound and the share of R drops:
the CPU line says which.

Usage: .venv/bin/python benchmarks/bench_ingest.py [--symbols 5000] [--rate 20] [--bars 20]
       [--limited-share 0.2 --limited-for 3 --wave block]
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import pandas as pd  # noqa: E402
from fakes.ingest_steps import ingest_like_the_flow  # noqa: E402 - the flow's steps, without Prefect
from fakes.yahoo import FakeYahoo, make_bars, reset_yfinance  # noqa: E402

from numerflow.tasks.core.store import Store, read_parquet  # noqa: E402
from numerflow.tasks.prices.ingest import IngestOptions  # noqa: E402
from numerflow.tasks.prices.ratelimit import TokenBucket  # noqa: E402
from numerflow.tasks.prices.sources.yahoo import YahooSource  # noqa: E402


def build_fake(symbols: int, bars: int, rate: float | None, burst: int) -> FakeYahoo:
    fake = FakeYahoo(rate_limit=rate, burst=burst)
    end = pd.Timestamp("2024-03-28")
    start = (end - pd.offsets.BDay(bars - 1)).date()
    template = make_bars(start, end.date(), seed=0)
    for i in range(symbols):
        fake.add(f"S{i:05d}", bars=template * (1 + i % 97 / 100))
    return fake


def window_shares(log, rate: float, window: float, pause: float) -> dict[str, float | int]:
    """Chart requests answered 200 per second ÷ R, over all full windows of the run and over those
    outside the 429 periods (no 429 answer in the window nor in the ``pause`` seconds before it)."""
    chart = [(r.at, r.status) for r in log if r.symbol is not None]
    if not chart:
        return {"windows": 0, "clean_windows": 0, "share_all": 0.0, "share_clean": 0.0}
    t0 = min(at for at, _ in chart)
    n = int((max(at for at, _ in chart) - t0) // window)  # full windows only
    served, limited = [0] * n, [False] * n
    answered_429 = sorted(at for at, status in chart if status == 429)
    for at, status in chart:
        i = int((at - t0) // window)
        if i < n and status == 200:
            served[i] += 1
    for i in range(n):
        start, end = t0 + i * window, t0 + (i + 1) * window
        # any 429 in [start - pause, end)?
        j = bisect.bisect_left(answered_429, start - pause)
        limited[i] = j < len(answered_429) and answered_429[j] < end
    clean = [served[i] for i in range(n) if not limited[i]]
    return {
        "windows": n, "clean_windows": len(clean),
        "share_all": sum(served) / (rate * window * n) if n else 0.0,
        "share_clean": sum(clean) / (rate * window * len(clean)) if clean else 0.0,
    }


def run_ingest(fake, store, mapping, rate, our_burst, workers, batch_size, pause_on_429):
    # Our limiter at 97% of R with a burst inside the server's: sends are re-checked at send
    # time, so threads that woke late cannot exceed it; a 429 halves the rate for pause_on_429 s.
    source = YahooSource(limiter=TokenBucket(0.97 * rate, our_burst), transport=fake, workers=workers,
                         pause_on_429_seconds=pause_on_429)
    options = IngestOptions(batch_size=batch_size, max_attempts=6, backoff_base_seconds=0.5, backoff_cap_seconds=5)
    start = time.perf_counter()
    result = ingest_like_the_flow(source, store, mapping, options=options, as_of=date(2024, 3, 29))
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=20.0, help="R: the fake server's requests/second")
    parser.add_argument("--burst", type=int, default=5, help="the fake server's burst")
    parser.add_argument("--our-burst", type=int, default=3, help="our limiter's burst")
    parser.add_argument("--bars", type=int, default=20, help="bars per symbol (>= 6: the overlap window is 5)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--overhead-symbols", type=int, default=500)
    parser.add_argument("--limited-share", type=float, default=0.0,
                        help="share of symbols whose first --limited-for chart requests answer 429 (a 429 wave)")
    parser.add_argument("--limited-for", type=int, default=3)
    parser.add_argument("--wave", choices=("block", "spread"), default="block",
                        help="the 429-wave symbols: one contiguous run (a period of the run) or scattered")
    parser.add_argument("--window", type=float, default=1.0, help="seconds per throughput window")
    parser.add_argument("--pause-on-429", type=float, default=2.0, help="our limiter's half-rate period after a 429")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    mapping = {f"S{i:05d} US": [f"S{i:05d}"] for i in range(args.symbols)}

    # 1) Throttled first run: R req/s server-side, 429 beyond; our limiter at R.
    reset_yfinance(tmp / "yf1")
    fake = build_fake(args.symbols, args.bars, args.rate, args.burst)
    if args.wave == "block":  # a contiguous fifth, starting a fifth of the way in
        first = args.symbols // 5
        waved = [f"S{i:05d}" for i in range(first, first + int(args.limited_share * args.symbols))]
    else:
        waved = [f"S{i:05d}" for i in range(args.symbols) if (i * 7919) % 1000 < args.limited_share * 1000]
    for symbol in waved:  # on top of the server's own throttle: these answer 429 for a while
        fake.fail(symbol, *["429"] * args.limited_for)
    store = Store(tmp / "data")
    load_before = os.getloadavg()
    cpu0 = time.process_time()
    result, wall = run_ingest(fake, store, mapping, args.rate, args.our_burst, args.workers, args.batch_size,
                              args.pause_on_429)
    cpu_per_wall = (time.process_time() - cpu0) / wall
    load_after = os.getloadavg()
    requests1 = len(fake.log)
    windows = window_shares(fake.log, args.rate, args.window, args.pause_on_429)
    ledger = read_parquet(result.ledger_path)
    served = fake.served
    throughput = served / wall
    stored = read_parquet(store.prices_dir("yahoo"), columns=["ticker"]).groupby("ticker").size()
    lost = int((stored.reindex(list(mapping)).fillna(0) != args.bars).sum())

    # 2) Incremental second run: one new bar each.
    for symbol in fake.listings:
        fake.extend(symbol, "2024-03-29", seed=1)
    before = len(fake.log)
    served_before = fake.served
    throttled_before = fake.throttled
    result2, wall2 = run_ingest(fake, store, mapping, args.rate, args.our_burst, args.workers, args.batch_size,
                                args.pause_on_429)
    requests2 = fake.log[before:]
    histories = [r for r in requests2 if "period1" in r.params]
    period1_ok = all(int(r.params["period1"]) == int(pd.Timestamp("2024-03-23", tz="America/New_York").timestamp()) for r in histories)
    bars2 = int(read_parquet(result2.ledger_path)["rows"].sum())
    total_after = len(read_parquet(store.prices_dir("yahoo"), columns=["ticker"]))

    # 3) Per-symbol overhead without throttling: yfinance alone vs our whole ingest.
    import yfinance as yf

    n = min(args.overhead_symbols, args.symbols)
    sub = dict(list(mapping.items())[:n])
    symbols = [c[0] for c in sub.values()]
    reset_yfinance(tmp / "yf3")
    fast = build_fake(n, args.bars, None, 1)
    plain = fast.session()

    def yfinance_alone():
        for symbol in symbols:
            yf.Ticker(symbol, session=plain).history(start="1960-01-01", interval="1d", auto_adjust=False, actions=True, repair=False)

    yfinance_alone()  # warm-up: yfinance's tz cache then holds every symbol (one request each)
    t0 = time.perf_counter()
    yfinance_alone()
    yf_ms = 1000 * (time.perf_counter() - t0) / n
    reset_yfinance(tmp / "yf4")  # ours starts cold, as a first run does
    source = YahooSource(limiter=TokenBucket(1e9, 10**6), transport=fast, workers=1)
    store3 = Store(tmp / "data3")
    log0 = len(fast.log)
    t0 = time.perf_counter()
    ingest_like_the_flow(source, store3, sub, options=IngestOptions(batch_size=args.batch_size), as_of=date(2024, 3, 29))
    ours_ms = 1000 * (time.perf_counter() - t0) / n
    ours_requests = (len(fast.log) - log0) / n

    cores = os.cpu_count()
    print(f"machine: {cores} cores (shared); fake Yahoo at R={args.rate:.0f} req/s, 429 beyond; {args.symbols} symbols x {args.bars} bars")
    print(f"{'':34}{'target':>12}{'measured':>14}")
    print(f"{'first run wall time (s)':34}{'<= ' + format(args.symbols / (0.9 * args.rate), '.0f'):>12}{wall:>14.1f}")
    print(f"{'chart requests served / s':34}{0.9 * args.rate:>12.0f}{throughput:>14.1f}  ({100 * throughput / args.rate:.0f}% of R)")
    print(f"{'  outside the 429 periods':34}{0.9 * args.rate:>12.0f}{windows['share_clean'] * args.rate:>14.1f}  "
          f"({100 * windows['share_clean']:.0f}% of R over {windows['clean_windows']} of {windows['windows']} "
          f"{args.window:g}-s windows; all windows {100 * windows['share_all']:.0f}%)")
    print(f"{'process CPU / wall (first run)':34}{'< ' + str(os.cpu_count()):>12}{cpu_per_wall:>14.2f}  "
          f"(load average {load_before[0]:.2f} before, {load_after[0]:.2f} after)")
    print(f"{'429s received':34}{'-':>12}{throttled_before:>14}  (server throttle; wave 429s: "
          f"{sum(1 for r in fake.log[:requests1] if r.status == 429) - throttled_before})")
    print(f"{'requests to Yahoo / symbol':34}{'-':>12}{requests1 / args.symbols:>14.3f}  (all hosts; was ~2 + cookie/crumb)")
    print(f"{'ledger ok / tickers':34}{args.symbols:>12}{int((ledger['status'] == 'ok').sum()):>14}")
    print(f"{'symbols with lost bars':34}{0:>12}{lost:>14}")
    print(f"{'second run: requests / symbol':34}{'1':>12}{len(requests2) / args.symbols:>14.2f}")
    print(f"{'symbols in a 429 wave':34}{'-':>12}{len(waved):>14}  ({args.limited_for} x 429 each before they answer, {args.wave})")
    print(f"{'second run: bars written':34}{'new only':>12}{bars2:>14}  (stored {total_after}, period1 = last-overlap: {period1_ok})")
    print(f"{'second run wall time (s)':34}{'-':>12}{wall2:>14.1f}")
    print(f"{'ms / symbol, yfinance alone':34}{'baseline':>12}{yf_ms:>14.2f}")
    print(f"{'ms / symbol, our whole ingest':34}{'ms':>12}{ours_ms:>14.2f}  (our overhead {ours_ms - yf_ms:+.2f} ms; {ours_requests:.2f} requests/symbol cold)")
    print(json.dumps({
        "bench": "ingest", "cores": cores, "symbols": args.symbols, "bars": args.bars, "rate": args.rate,
        "wall_s": round(wall, 2), "served_per_s": round(throughput, 1), "share_of_rate": round(throughput / args.rate, 3),
        "share_of_rate_outside_429": round(windows["share_clean"], 3), "share_of_rate_all_windows": round(windows["share_all"], 3),
        "windows": windows["windows"], "clean_windows": windows["clean_windows"], "window_s": args.window,
        "cpu_per_wall": round(cpu_per_wall, 2), "load_before": round(load_before[0], 2), "load_after": round(load_after[0], 2),
        "wave": args.wave,
        "throttled_429": throttled_before, "second_run_429": fake.throttled - throttled_before,
        "requests_per_symbol": round(requests1 / args.symbols, 3), "our_burst": args.our_burst, "workers": args.workers, "ok": int((ledger["status"] == "ok").sum()), "lost_symbols": lost,
        "waved_symbols": len(waved), "limited_for": args.limited_for,
        "second_run_requests_per_symbol": round(len(requests2) / args.symbols, 3), "second_run_bars": bars2,
        "second_run_served": fake.served - served_before, "second_run_period1_ok": period1_ok,
        "second_run_wall_s": round(wall2, 2), "yfinance_ms_per_symbol": round(yf_ms, 2), "ingest_ms_per_symbol": round(ours_ms, 2),
        "ingest_requests_per_symbol_cold": round(ours_requests, 3),
    }))


if __name__ == "__main__":
    main()
