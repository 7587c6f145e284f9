"""The ``numerflow`` command line.

``numerflow run --demo`` runs a whole round offline on the built-in demo market. Output:
a readable summary (or ``--json``) on stdout; Prefect's logs on stderr. Bad input exits 2
with a message naming the problem, before anything is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from tasks.errors import NumerflowError


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number ≥ 1, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="numerflow",
        description="Numerai Signals rounds on Prefect: universe → prices → features → LightGBM → predictions → upload.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Options every subcommand takes (add with parents=[common]).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="data store directory (default: NUMERFLOW_DATA_DIR or ./data)")

    run = commands.add_parser(
        "run",
        parents=[common],
        help="run a whole round",
        description="Run a whole round: universe, price ingest, features and targets, training "
        "(or reuse of a fresh model), live predictions, validated submission and upload.",
    )
    run.add_argument("--demo", action="store_true", help="use the built-in offline demo market (no account, no network)")
    run.add_argument("--tickers", type=_positive_int, help="demo: number of tickers (default 600)")
    run.add_argument("--years", type=_positive_float, help="demo: years of daily bars (default 6)")
    run.add_argument("--signal", type=_non_negative_float,
                     help="demo: planted signal strength, 0 = pure noise (default 0.5)")
    run.add_argument("--seed", type=int, help="demo: random seed (default 42)")
    run.add_argument("--retrain", action="store_true", help="train a new model even if a fresh one exists")
    run.add_argument("--json", action="store_true", help="print a machine-readable JSON summary on stdout")
    run.set_defaults(handler=cmd_run)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from flows.round import demo_overrides
    from tasks.config import load_settings

    if not args.demo:
        print("numerflow run: only the demo market is available in this version; add --demo", file=sys.stderr)
        return 2
    overrides = demo_overrides(tickers=args.tickers, years=args.years, signal=args.signal, seed=args.seed,
                               data_dir=args.data_dir)
    load_settings(**overrides)  # fail fast on bad values, before Prefect starts
    from flows.round import round_flow

    result = round_flow(
        tickers=args.tickers, years=args.years, signal=args.signal, seed=args.seed,
        retrain=args.retrain, data_dir=args.data_dir,
    )
    summary = run_summary(result)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(render_summary(summary))
    return 0


def run_summary(result: dict[str, Any]) -> dict[str, Any]:
    ingest, train, submit = result["ingest"], result["train"], result["submit"]
    model = train["model"]
    return {
        "round": submit["round"],
        "prices": ingest["prices"],
        "dataset": {k: train["dataset"][k] for k in ("path", "rows", "tickers", "first_date", "last_date")},
        "model": {"id": model["model_id"], "trained": model["trained"], "decision": train["decision"]},
        "validation": {k: model["validation"].get(k) for k in ("mean", "std", "sharpe", "max_drawdown", "n_dates")},
        "report": (model.get("report") or {}).get("markdown"),
        "live_date": submit["live"]["live_date"],
        "submission": {"path": submit["submission"]["path"], "rows": submit["submission"]["rows"],
                       "sha256": submit["submission"]["sha256"]},
        "upload": {k: submit["upload"].get(k) for k in ("dry_run", "reason", "record")},
    }


def render_summary(s: dict[str, Any]) -> str:
    v = s["validation"]
    lines = [
        f"numerflow round {s['round']}",
        f"  prices      {s['prices']['tickers']} tickers, {s['prices']['rows']:,} bars to {s['prices']['last_date']}",
        f"  dataset     {s['dataset']['rows']:,} rows, {s['dataset']['first_date']} → {s['dataset']['last_date']}",
        f"  model       {s['model']['id']} ({s['model']['decision']})",
        f"  validation  CORR mean {v['mean']:.4f}, sharpe {v['sharpe']:.2f}, max drawdown {v['max_drawdown']:.4f}"
        f" over {v['n_dates']} dates",
        f"  submission  {s['submission']['path']} ({s['submission']['rows']} rows, live date {s['live_date']})",
        f"  upload      {'DRY RUN — ' + str(s['upload']['reason']) if s['upload']['dry_run'] else 'uploaded'}",
        f"  report      {s['report'] or 'unchanged model: see its earlier report'}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except NumerflowError as exc:
        print(f"numerflow: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
