"""Benchmark: numerflow's vectorised features + per-date ranks vs the plain-pandas way.

    .venv/bin/python benchmarks/bench_features.py [--tickers 5000 --years 20 --seed 7]

The baseline is how public Signals code does it: ``groupby('ticker')`` rolling / pct_change /
ewm per feature, then ``groupby('date').rank(pct=True)``. Both sides compute the SAME raw
features (docs/features.md); the baseline run also checks they agree (max abs diff, NaN
pattern). Each side runs in its own subprocess so its peak memory (ru_maxrss) is its own.
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
from pathlib import Path

import numpy as np
import pandas as pd

from numerflow.tasks.core.store import read_parquet, write_parquet
from numerflow.tasks.model.features import (
    DEFAULT_THREADS,
    FEATURE_NAMES,
    MACD_FAST,
    MACD_SIGNAL,
    MACD_SLOW,
    RANGE_WINDOW,
    RETURN_HORIZONS,
    RSI_WINDOW,
    TURNOVER_WINDOW,
    VOLATILITY_WINDOWS,
    VOLUME_LONG,
    VOLUME_SHORT,
    compute_features,
    compute_raw_features,
)

TRADING_DAYS_PER_YEAR = 252


def random_walk_panel(tickers: int, years: float, seed: int) -> pd.DataFrame:
    """A synthetic long panel with the awkward parts of real data, built without Python loops:
    late listings, delistings, per-country holiday calendars, NaN bars, zero volume, unsorted rows."""
    rng = np.random.default_rng(seed)
    n_days = int(years * TRADING_DAYS_PER_YEAR)
    calendar = pd.bdate_range("2000-01-03", periods=n_days)
    countries = np.array(["US", "JP", "GB", "DE", "HK"])
    country_of = rng.integers(0, len(countries), tickers)
    # ~2% of weekdays are holidays in each country's calendar.
    holiday = rng.random((len(countries), n_days)) < 0.02
    listing = np.where(rng.random(tickers) < 0.3, rng.integers(0, n_days // 2, tickers), 0)
    delisting = np.where(rng.random(tickers) < 0.2, rng.integers(n_days // 2, n_days, tickers), n_days)
    day = np.arange(n_days)
    present = (day[None, :] >= listing[:, None]) & (day[None, :] < delisting[:, None]) & ~holiday[country_of]
    ticker_idx, day_idx = np.nonzero(present)
    n = len(ticker_idx)
    daily_return = rng.standard_normal(n) * rng.uniform(0.01, 0.04, tickers)[ticker_idx]
    # Cumulative log price per ticker: cumsum over the whole array minus each ticker's offset.
    cumulative = np.cumsum(daily_return)
    first = np.r_[True, ticker_idx[1:] != ticker_idx[:-1]]
    offset = np.maximum.accumulate(np.where(first, cumulative - daily_return, -np.inf))
    log_price = np.log(rng.uniform(5, 500, tickers))[ticker_idx] + cumulative - offset
    adj_close = np.exp(log_price)
    adj_close[rng.random(n) < 0.002] = np.nan  # missing bars as NaN rows
    close = adj_close * 1.01
    volume = np.floor(rng.lognormal(11, 1.5, n))
    volume[rng.random(n) < 0.001] = 0.0
    names = np.array([f"T{i:05d} {countries[c]}" for i, c in enumerate(country_of)], dtype=object)
    frame = pd.DataFrame(
        {
            "ticker": pd.array(names[ticker_idx], dtype="string"),
            "date": calendar[day_idx],
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "adj_close": adj_close,
            "volume": volume,
            "currency": "USD",
        }
    )
    return frame.take(rng.permutation(n)).reset_index(drop=True)


def demo_panel(tickers: int, years: float, seed: int) -> pd.DataFrame:
    from numerflow.tasks.prices.sources.demo import DemoMarket

    market = DemoMarket(tickers=tickers, years=years, signal=0.5, seed=seed)
    return market.fetch(market.all_tickers())


def baseline_raw_features(prices: pd.DataFrame) -> pd.DataFrame:
    """The same features the plain-pandas way (groupby per ticker), as public Signals code does."""
    df = prices[np.isfinite(prices["adj_close"])].sort_values(["ticker", "date"]).reset_index(drop=True)
    by_ticker = df.groupby("ticker")
    bar = by_ticker.cumcount()
    out = df[["ticker", "date"]].copy()
    for h in RETURN_HORIZONS:
        out[f"feature_ret_{h}d"] = np.log1p(by_ticker["adj_close"].pct_change(h))
    df["r1"] = np.log1p(by_ticker["adj_close"].pct_change(1))
    for w in VOLATILITY_WINDOWS:
        out[f"feature_vol_{w}d"] = df.groupby("ticker")["r1"].rolling(w).std().reset_index(level=0, drop=True)
    change = by_ticker["adj_close"].diff()
    df["gain"], df["loss"] = change.clip(lower=0), (-change).clip(lower=0)
    gain = df.groupby("ticker")["gain"].rolling(RSI_WINDOW).sum().reset_index(level=0, drop=True)
    loss = df.groupby("ticker")["loss"].rolling(RSI_WINDOW).sum().reset_index(level=0, drop=True)
    moved = gain + loss
    out[f"feature_rsi_{RSI_WINDOW}"] = (gain / moved).where(moved > 0, 0.5).where(moved.notna())
    ema_fast = by_ticker["adj_close"].transform(lambda s: s.ewm(span=MACD_FAST, adjust=False).mean())
    ema_slow = by_ticker["adj_close"].transform(lambda s: s.ewm(span=MACD_SLOW, adjust=False).mean())
    df["macd"] = ema_fast - ema_slow
    signal = df.groupby("ticker")["macd"].transform(lambda s: s.ewm(span=MACD_SIGNAL, adjust=False).mean())
    out[f"feature_macd_{MACD_FAST}_{MACD_SLOW}"] = (df["macd"] / df["adj_close"]).where(bar >= MACD_SLOW - 1)
    out[f"feature_macd_hist_{MACD_FAST}_{MACD_SLOW}_{MACD_SIGNAL}"] = (
        (df["macd"] - signal) / df["adj_close"]
    ).where(bar >= MACD_SLOW + MACD_SIGNAL - 2)
    df["turnover"] = df["close"].fillna(df["adj_close"]) * df["volume"]
    turnover = df.groupby("ticker")["turnover"].rolling(TURNOVER_WINDOW).mean().reset_index(level=0, drop=True)
    out[f"feature_log_turnover_{TURNOVER_WINDOW}d"] = np.log1p(turnover)
    v_short = by_ticker["volume"].rolling(VOLUME_SHORT).mean().reset_index(level=0, drop=True)
    v_long = by_ticker["volume"].rolling(VOLUME_LONG).mean().reset_index(level=0, drop=True)
    out[f"feature_volume_ratio_{VOLUME_SHORT}_{VOLUME_LONG}"] = np.log1p(v_short) - np.log1p(v_long)
    df["logp"] = np.log(df["adj_close"])
    high = df.groupby("ticker")["logp"].rolling(RANGE_WINDOW).max().reset_index(level=0, drop=True)
    low = df.groupby("ticker")["logp"].rolling(RANGE_WINDOW).min().reset_index(level=0, drop=True)
    out[f"feature_dist_high_{RANGE_WINDOW}d"] = df["logp"] - high
    out[f"feature_dist_low_{RANGE_WINDOW}d"] = df["logp"] - low
    return out


def baseline_features(prices: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = baseline_raw_features(prices)
    ranked = raw[["ticker", "date"]].copy()
    ranked[FEATURE_NAMES] = raw.groupby("date")[FEATURE_NAMES].rank(pct=True)
    return raw, ranked.sort_values(["date", "ticker"])


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# The columns the features use: both sides read only these (reading all nine columns of the
# panel into pandas cost ~4.3 GB at 5,000 x 20 years, more than the feature work itself).
INPUT_COLUMNS = ["ticker", "date", "close", "adj_close", "volume"]


def plugin_source(prices: pd.DataFrame, columns: int, seed: int, every: str = "week"):
    """A plug-in's output at panel scale: one row per ticker and week (Fridays, 22:00 UTC: after the
    New York close, so first used the next bar) or weekday (``every="day"``) with ``columns`` value
    columns, ~5% missing; validated like any plug-in frame (the validation is timed apart from the join)."""
    from numerflow.tasks.core.config import FeatureSourceSettings
    from numerflow.tasks.model.plugins import Availability, LoadedSource, validate_source

    rng = np.random.default_rng(seed)
    tickers = pd.unique(prices["ticker"].astype(str))
    dates = pd.to_datetime(prices["date"])
    weeks = pd.date_range(dates.min(), dates.max(), freq="W-FRI" if every == "week" else "B") + pd.Timedelta(hours=22)
    frame = pd.DataFrame({"ticker": np.repeat(tickers, len(weeks)), "timestamp": np.tile(weeks, len(tickers))})
    names = [f"v{j}" for j in range(columns)]
    for name in names:
        values = rng.normal(size=len(frame))
        values[rng.random(len(frame)) < 0.05] = np.nan
        frame[name] = values
    start = time.perf_counter()
    checked = validate_source(frame, "bench plug-in", FeatureSourceSettings(name="bench"), Availability(), "numerai_ticker")
    return LoadedSource("bench", checked, 14.0, names), time.perf_counter() - start, len(frame)


def _load_old_plugins(path: str):
    """The join module of an earlier commit (``--compare-join``), imported from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("old_plugins", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_plugins"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _run_side(side: str, data_path: Path, plugin_columns: int = 5, plugin_every: str = "week",
              old_join: str | None = None) -> dict:
    # Ours reads the ticker column as a categorical (Arrow dictionary: ~45 MB of codes instead of
    # ~300 MB of strings at 5,000 x 20 years); the baseline reads strings, as public code does.
    prices = read_parquet(data_path, columns=INPUT_COLUMNS, categorical=["ticker"] if side == "ours" else ())
    rss_input = _peak_rss_mb()
    if side == "plugins":  # the features, then the point-in-time join + per-date ranks of the plug-in columns
        from numerflow.tasks.model.features import bar_layout
        from numerflow.tasks.model.plugins import add_source_features

        start = time.perf_counter()
        layout = bar_layout(prices)  # as tasks.model.dataset does: one layout for the features and the join
        features = compute_features(prices, layout=layout)
        feature_seconds = time.perf_counter() - start
        source, validate_seconds, source_rows = plugin_source(prices, plugin_columns, seed=1, every=plugin_every)
        del prices
        start = time.perf_counter()
        joined = add_source_features(features, [source], layout=layout)
        join_seconds = time.perf_counter() - start
        if old_join:  # an earlier revision's join, same input, alternated with ours: old, ours, old, ours
            old = _load_old_plugins(old_join)
            old_times, our_times, same = [], [], True
            for _ in range(2):
                start = time.perf_counter()
                before = old.add_source_features(features, [source])
                old_times.append(time.perf_counter() - start)
                same &= all(np.array_equal(before[n].to_numpy(), joined[n].to_numpy(), equal_nan=True)
                            for n in source.feature_names)
                del before
                start = time.perf_counter()
                joined = add_source_features(features, [source], layout=layout)
                our_times.append(time.perf_counter() - start)
        coverage = float(joined[source.feature_names[0]].notna().mean())
        return {"seconds": feature_seconds + join_seconds, "feature_seconds": feature_seconds,
                "join_seconds": join_seconds, "validate_seconds": validate_seconds, "source_rows": source_rows,
                "plugin_columns": plugin_columns, "plugin_every": plugin_every, "coverage": coverage,
                "rows": len(joined), **({"old_join_seconds": old_times, "our_join_seconds_again": our_times,
                                         "identical_to_old": same} if old_join else {}),
                "peak_rss_mb": _peak_rss_mb(), "rss_after_input_mb": rss_input}
    if side == "ours":
        start = time.perf_counter()
        features = compute_features(prices)
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "rows": len(features), "peak_rss_mb": _peak_rss_mb(), "rss_after_input_mb": rss_input,
                "threads": DEFAULT_THREADS}
    start = time.perf_counter()
    raw, ranked = baseline_features(prices)  # the ranks are part of the timed work
    seconds = time.perf_counter() - start
    peak = _peak_rss_mb()
    # Agreement check (untimed): our raw features in float64 against the baseline's, row by row.
    del ranked
    ours = compute_raw_features(prices, dtype="float64")
    del prices
    raw = raw.sort_values(["date", "ticker"]).reset_index(drop=True)
    same_rows = len(ours) == len(raw) and bool(
        (ours["date"].to_numpy() == raw["date"].to_numpy()).all()
        and (ours["ticker"].to_numpy() == raw["ticker"].to_numpy()).all()
    )
    report = {"seconds": seconds, "peak_rss_mb": peak, "rows_ours": len(ours), "rows_baseline": len(raw),
              "same_rows": same_rows, "max_abs_diff": {}, "nan_mismatch": {}}
    if not same_rows:
        return report
    for name in FEATURE_NAMES:
        a = ours[name].to_numpy(dtype="float64", na_value=np.nan)
        b = raw[name].to_numpy(dtype="float64", na_value=np.nan)
        both = ~np.isnan(a) & ~np.isnan(b)
        report["max_abs_diff"][name] = float(np.max(np.abs(a[both] - b[both]), initial=0.0))
        report["nan_mismatch"][name] = int((np.isnan(a) != np.isnan(b)).sum())
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickers", type=int, default=5000)
    parser.add_argument("--years", type=float, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--source", choices=["auto", "demo", "randomwalk"], default="auto",
                        help="demo = tasks.prices.sources.demo.DemoMarket (auto: when it exists)")
    parser.add_argument("--plugin-columns", type=int, default=5,
                        help="value columns of the plug-in case (features + point-in-time join); 0 skips it")
    parser.add_argument("--plugin-every", choices=["week", "day"], default="week",
                        help="the plug-in's rows: one per ticker and week (default) or weekday")
    parser.add_argument("--compare-join", metavar="REV",
                        help="also time the join of git revision REV on the same input (same subprocess)")
    parser.add_argument("--old-join", help=argparse.SUPPRESS)
    parser.add_argument("--no-baseline", action="store_true", help="skip the (slow) pandas baseline")
    parser.add_argument("--side", choices=["ours", "baseline", "plugins"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:  # child process: run one side, print its JSON
        print(json.dumps(_run_side(args.side, args.data, args.plugin_columns, args.plugin_every, args.old_join)))
        return

    source = args.source
    if source == "auto":
        try:
            import numerflow.tasks.prices.sources.demo  # noqa: F401

            source = "demo"
        except ImportError:
            source = "randomwalk"
    start = time.perf_counter()
    make = demo_panel if source == "demo" else random_walk_panel
    prices = make(args.tickers, args.years, args.seed)
    build_seconds = time.perf_counter() - start
    print(f"input: {source}, {args.tickers} tickers x {args.years} years = {len(prices):,} rows "
          f"(built in {build_seconds:.1f}s)", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_features_") as tmp:
        data_path = Path(tmp) / "prices.parquet"
        write_parquet(data_path, prices)
        del prices
        old_join = []
        if args.compare_join:
            old_path = Path(tmp) / "old_plugins.py"
            old_path.write_text(subprocess.run(["git", "show", f"{args.compare_join}:tasks/model/plugins.py"], check=True,
                                               capture_output=True, text=True, cwd=Path(__file__).parent).stdout)
            old_join = ["--old-join", str(old_path)]
        results = {}
        sides = ["ours", *([] if args.no_baseline else ["baseline"]), *(["plugins"] if args.plugin_columns else [])]
        for side in sides:
            done = subprocess.run([sys.executable, __file__, "--side", side, "--data", str(data_path),
                                   "--plugin-columns", str(args.plugin_columns), "--plugin-every", args.plugin_every,
                                   *(old_join if side == "plugins" else [])],
                                  check=True, capture_output=True, text=True)
            results[side] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{side:>8}: {results[side]['seconds']:7.1f} s, peak RSS {results[side]['peak_rss_mb']:,.0f} MB",
                  flush=True)
    plug = results.get("plugins")
    if plug:
        share = plug["join_seconds"] / plug["feature_seconds"]
        print(f"plug-in case: {plug['plugin_columns']} columns, {plug['source_rows']:,} source rows (one per ticker and {plug['plugin_every']}); features "
              f"{plug['feature_seconds']:.1f} s, point-in-time join + ranks {plug['join_seconds']:.1f} s "
              f"(+{100 * share:.0f}% of the features time; goal < 25%), validation {plug['validate_seconds']:.1f} s, "
              f"peak RSS {plug['peak_rss_mb']:,.0f} MB")
        if "old_join_seconds" in plug:
            share = ", ".join(f"{o:.1f} s (+{100 * o / plug['feature_seconds']:.0f}%) / {n:.1f} s "
                              f"(+{100 * n / plug['feature_seconds']:.0f}%)"
                              for o, n in zip(plug["old_join_seconds"], plug["our_join_seconds_again"], strict=True))
            print(f"  then, alternated on the same input, join of {args.compare_join} / ours: {share}; "
                  f"identical columns: {plug['identical_to_old']}")
    if "baseline" not in results:
        print(json.dumps({"benchmark": "features", "source": source, "tickers": args.tickers, "years": args.years,
                          "rows": results["ours"]["rows"], "ours_seconds": round(results["ours"]["seconds"], 2),
                          "plugins": plug}))
        return
    ours, base = results["ours"], results["baseline"]
    ratio = base["seconds"] / ours["seconds"]
    print(f"speed-up: {ratio:.1f}x (goal >= 8x; ours on {ours['threads']} threads, the baseline on 1); our peak RSS {ours['peak_rss_mb'] / 1024:.2f} GB "
          f"(input alone {ours['rss_after_input_mb'] / 1024:.2f} GB; goal < 4 GB)")
    if base["same_rows"]:
        print(f"agreement: same rows; max abs diff of raw features {max(base['max_abs_diff'].values()):.3g}, "
              f"NaN-pattern mismatches {sum(base['nan_mismatch'].values())}")
    else:
        print(f"DISAGREEMENT: rows differ (ours {base['rows_ours']:,}, baseline {base['rows_baseline']:,})")
    print(json.dumps({"benchmark": "features", "source": source, "tickers": args.tickers, "years": args.years,
                      "rows": ours["rows"], "ours_threads": ours["threads"], "ours_seconds": round(ours["seconds"], 2),
                      "baseline_seconds": round(base["seconds"], 2), "speedup": round(ratio, 2),
                      "ours_peak_rss_mb": round(ours["peak_rss_mb"]), "ours_rss_after_input_mb": round(ours["rss_after_input_mb"]),
                      "baseline_peak_rss_mb": round(base["peak_rss_mb"]), "max_abs_diff": base["max_abs_diff"],
                      "nan_mismatch": base["nan_mismatch"], "same_rows": base["same_rows"], "plugins": plug}))


if __name__ == "__main__":
    main()
