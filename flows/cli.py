"""The ``numerflow`` command line.

``numerflow run --demo`` runs a whole round offline on the built-in demo market. Output:
a readable summary (or ``--json``) on stdout; Prefect's logs on stderr. Bad input exits 2
with a message naming the problem, before anything is written.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Literal

from numerflow.tasks.core.errors import BadInputError, NumerflowError


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number ≥ 1, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number ≥ 0, got {text}")
    return value


def _feature_groups(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"give feature group names separated by commas, got {text!r}")
    return names


def _features_extra(args: argparse.Namespace) -> dict[str, Any] | None:
    """``--features``/``--news-signal`` as a nested settings override (the ``features`` section)."""
    features: dict[str, Any] = {}
    if getattr(args, "features", None):
        features["use"] = args.features
    if getattr(args, "news_signal", None) is not None:
        features["news"] = {"demo_signal": args.news_signal}
    return {"features": features} if features else None


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
                     help="demo: planted signal strength, 0 = pure noise (default 0.5; Classic: classic.demo_signal)")
    run.add_argument("--seed", type=int, help="demo: random seed (default 42)")
    run.add_argument("--features", type=_feature_groups,
                     help="feature groups, comma-separated: own (the price features) and feature source or plug-in "
                     "names, e.g. own,news_sentiment (default: features.use)")
    run.add_argument("--news-signal", type=_non_negative_float,
                     help="demo: planted strength of the synthetic news sentiment (default 0.2)")
    run.add_argument("--retrain", action="store_true", help="train a new model even if a fresh one exists")
    run.add_argument("--json", action="store_true", help="print a machine-readable JSON summary on stdout (on "
                     "failure: one JSON object with the error and what did succeed)")
    run.add_argument("--verbose", action="store_true", help="show Prefect's log and tracebacks on stderr (by default a "
                     "failure prints its stage and one line; the tracebacks go to <data_dir>/logs/)")
    # Live rounds (no --demo): Numerai's universe and upload, the configured price source.
    numerai = argparse.ArgumentParser(add_help=False)
    numerai.add_argument("--tournament", choices=["signals", "crypto", "classic"],
                         help="Numerai tournament (default: the configured one, signals; classic: status, "
                         "submit, scores and diagnostics)")
    run.add_argument("--tournament", choices=["signals", "crypto", "classic"],
                     help="Numerai tournament (classic: Numerai's own features; with --demo, its synthetic dataset)")
    run.add_argument("--quick", action="store_true",
                     help="classic: the small feature set and fewer trees (trains in minutes; classic.quick)")
    run.add_argument("--force", action="store_true", help="live round: upload even if this round was already submitted")
    run.add_argument("--model", help="Numerai model name (default: numerai.model_name); with a [[models]] table: "
                     "run that model only")
    run.set_defaults(handler=cmd_run)

    ingest = commands.add_parser(
        "ingest", parents=[common], help="fetch daily prices into the store (incremental, resumable)",
        description="Daily bars from the configured price source (demo, yahoo, files) into the store: batched, "
        "resumable after a crash, incremental (only new bars; a split or dividend re-pulls that ticker), "
        "with a per-ticker ledger. Yahoo and files ingest the latest universe snapshot (numerflow universe).")
    ingest.add_argument("--backfill", action="store_true", help="re-pull every ticker's whole history")
    ingest.add_argument("--source", choices=["demo", "yahoo", "files"], help="price source (default: price_source)")
    ingest.add_argument("--run-id", help="resume this ingest run (default: the unfinished one, else a new run)")
    ingest.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    ingest.set_defaults(handler=cmd_ingest)

    prices = commands.add_parser(
        "prices", parents=[common], help="check a folder of your own price files without ingesting anything",
        description="prices check PATH: read every CSV/Parquet file under PATH as `price_source = \"files\"` would "
        "(the [files] column mapping applies) and report per-problem counts with examples, what would be stored, "
        "tickers that would fail, and universe tickers with no file. Exits non-zero when nothing is usable.")
    prices.add_argument("action", choices=["check"], help="check: validate the folder, store nothing")
    prices.add_argument("path", type=Path, help="a price file or a folder of them")
    prices.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    prices.set_defaults(handler=cmd_prices)

    universe = commands.add_parser(
        "universe", parents=[common, numerai], help="download this round's Numerai universe and resolve its tickers",
        description="Find the current dataset version, download this round's live universe, write the snapshot "
        "and the ticker → Yahoo resolution report (numerai_ticker by country rules, crypto symbol → SYMBOL-USD).")
    universe.add_argument("--training-data", action="store_true",
                          help="also download Numerai's train/validation files (large) for training on its targets")
    universe.add_argument("--overrides-template", metavar="FILE",
                          help="write the unresolved tickers (and those needing an override) as an overrides CSV "
                          "to fill in")
    universe.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    universe.set_defaults(handler=cmd_universe)

    submit = commands.add_parser(
        "submit", parents=[common, numerai], help="upload an existing submission file for the open round",
        description="Validate a submission file against this round's universe and upload it for a model, once per "
        "round (a ledger records it; --force uploads again). Without API keys: a dry run.")
    submit.add_argument("file", help="submission CSV/Parquet (numerai_ticker,signal or symbol,signal)")
    submit.add_argument("--model", help="Numerai model name (default: numerai.model_name)")
    submit.add_argument("--force", action="store_true", help="upload even if this round was already submitted")
    submit.add_argument("--diagnostics", metavar="FILE",
                        help="also upload validation predictions (with a date column) to Numerai's diagnostics")
    submit.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    submit.set_defaults(handler=cmd_submit)

    status = commands.add_parser(
        "status", parents=[common, numerai], help="current round, its window, last submission per model")
    status.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    status.set_defaults(handler=cmd_status)

    scores = commands.add_parser(
        "scores", parents=[common, numerai], help="every model's recent live scores from Numerai",
        description="Fetch each model's scores of its recent rounds from Numerai into the store's history "
        "(scores/<tournament>/history.parquet), then show per model its last rounds, the rolling mean and the "
        "rounds it missed; a missed round or a mean below scores.floor is notified once.")
    scores.add_argument("--no-fetch", action="store_true", help="show the stored history only (no keys needed)")
    scores.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    scores.set_defaults(handler=cmd_scores)

    diagnostics = commands.add_parser(
        "diagnostics", parents=[common, numerai], help="Numerai's diagnostics of a model's validation predictions",
        description="Numerai's own verdict on a model's validation predictions: --upload sends the newest registered "
        "model's validation predictions (Signals: numerai_ticker,date,signal on Friday eras; Classic: id,prediction) "
        "and polls the result; without it, uploads still pending are polled once. Shows each model's latest result, "
        "numerflow's figures beside Numerai's on the same eras (a difference above diagnostics.agreement_tolerance "
        "is flagged) and the history (diagnostics/<tournament>/summary.parquet). Numerai rate-limits diagnostics and "
        "warns that repeated use overfits.")
    diagnostics.add_argument("--model", help="this model only (default: every configured model)")
    diagnostics.add_argument("--upload", action="store_true",
                             help="upload the newest registered model's validation predictions, then poll")
    diagnostics.add_argument("--no-fetch", action="store_true", help="show the stored history only (no keys needed)")
    diagnostics.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    diagnostics.set_defaults(handler=cmd_diagnostics)

    news = commands.add_parser(
        "news", parents=[common], help="the news API behind the news_sentiment plug-in",
        description="news fetch: headlines since the last fetch (7 days the first time) for the US listings of the "
        "latest universe snapshot (or --tickers) into <data_dir>/news/api, where the news_sentiment plug-in reads "
        "them. Key: features.news.api_key (env NUMERFLOW_FEATURES__NEWS__API_KEY).")
    news.add_argument("action", choices=["fetch"], help="fetch: incremental download")
    news.add_argument("--tickers", type=lambda text: [t.strip() for t in text.split(",") if t.strip()],
                      help='Numerai tickers, comma-separated (e.g. "AAPL US,MSFT US"; default: the universe snapshot)')
    news.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    news.set_defaults(handler=cmd_news)

    setup = commands.add_parser(
        "setup", parents=[common], help="create the Prefect failure notification (webhook block + automation)",
        description="With PREFECT_API_URL set: store orchestration.notify_webhook_url in a webhook notification "
        "block and create an automation that posts to it when a scheduled round fails or crashes (docs/operations.md).")
    setup.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    setup.set_defaults(handler=cmd_setup)
    return parser


def _settings(args: argparse.Namespace, **options: Any):
    """Settings for a command: its options (None = configured) through the one overrides builder."""
    from numerflow.tasks.core.config import load_settings

    return load_settings(**_overrides(args, **options))


def _overrides(args: argparse.Namespace, **options: Any) -> dict[str, Any]:
    from numerflow.tasks.core.config import settings_overrides

    return settings_overrides(data_dir=args.data_dir, tournament=getattr(args, "tournament", None), **options)


def _print(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    print(json.dumps(payload, indent=2, default=str) if args.json else text)


def _no_classic(settings: Any, command: str) -> None:
    """Numerai Classic has no ticker universe."""
    if settings.tournament == "classic":
        from numerflow.tasks.core.errors import BadInputError

        raise BadInputError(f"`numerflow {command}` is for Signals and Crypto; a Classic round needs no universe "
                            "(its live ids come with its data): use `numerflow run --tournament classic`, "
                            "`status`, `submit`, `scores` or `diagnostics`", tag="unsupported_tournament")


def cmd_universe(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from numerflow.tasks.core.store import Store
    from numerflow.tasks.numerai.client import client_for, tournament_spec
    from numerflow.tasks.numerai.data import fetch_training_data
    from numerflow.tasks.numerai.universe import fetch_universe
    from numerflow.tasks.prices.tickers import resolution_lines, write_overrides_template
    from numerflow.tasks.round.signals import resolve_universe

    settings = _settings(args)
    _no_classic(settings, "universe")
    client = client_for(settings, settings.tournament)
    store = Store(settings.data_dir)
    snap = fetch_universe(client, store)
    payload: dict[str, Any] = {"tournament": snap.tournament, "round": snap.round_number, "dataset": snap.dataset,
                               "tickers": snap.tickers, "snapshot": str(snap.snapshot_path)}
    lines = [f"numerflow universe: {snap.tournament} round {snap.round_number}, {snap.tickers} tickers "
             f"from {snap.dataset}", f"  snapshot    {snap.snapshot_path}"]
    # Both tournaments: numerai_ticker by the country rules, crypto symbol → SYMBOL-USD.
    resolution = resolve_universe(settings, snap.snapshot_path, snap.round_number)
    payload["resolution"] = asdict(resolution)
    t = resolution.totals or {}
    lines.append(f"  resolution  to Yahoo symbols: {t['resolved']} resolved, {t['ambiguous']} ambiguous (tried in order), "
                 f"{t['unresolved']} unresolved; candidates {resolution.candidates_path}")
    lines += [f"    {r['country']:<6}{r['resolved']:>6}{r['ambiguous']:>6}{r['unresolved']:>6}"
              for r in resolution.report or []]
    lines += [f"  {line}" for line in resolution_lines(resolution.details or {})]
    if args.overrides_template:
        id_column = tournament_spec(settings.tournament).ticker_column
        template = write_overrides_template(Path(args.overrides_template), resolution.details or {}, id_column)
        payload["overrides_template"] = str(template)
        lines.append(f"  template    {template}: fill in yahoo_symbol, then set numerai.overrides_path to it")
    if args.training_data:
        files = fetch_training_data(client, store, snap.round_number)
        payload["training_data"] = {"version": files.version, "paths": [str(p) for p in files.paths]}
        lines.append(f"  training    {files.version}: {', '.join(str(p) for p in files.paths)}")
    _print(args, payload, "\n".join(lines))
    return 0


def cmd_submit(args: argparse.Namespace) -> int:


    from numerflow.tasks.numerai.submit import submit_file

    settings = _settings(args, model_name=args.model)
    if settings.tournament == "classic":
        from numerflow.tasks.classic.data import current_live_ids
        from numerflow.tasks.core.store import Store
        from numerflow.tasks.numerai.client import client_for, resolve_keys

        if resolve_keys(settings.numerai) is not None:  # the file is checked against this round's live ids
            current_live_ids(client_for(settings, "classic"), Store(settings.data_dir))
    outcome = submit_file(Path(args.file), settings, force=args.force,
                          diagnostics_path=Path(args.diagnostics) if args.diagnostics else None)
    text = f"numerflow submit: {outcome.message}"
    if outcome.diagnostics_id:
        text += f"\n  diagnostics {outcome.diagnostics_id}"
    if outcome.diagnostics_error:
        text += f"\n  diagnostics FAILED (the submission stands): {outcome.diagnostics_error}"
    _print(args, outcome.as_dict(), text)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from numerflow.tasks.numerai.submit import round_status

    settings = _settings(args)
    status = round_status(settings)
    round_text = (f"round {status['round']['number']}, {'OPEN' if status['open'] else 'not open'}: {status['window']}"
                  if status["round"] else "no round open")
    lines = [f"numerflow status: Numerai {status['tournament']} {round_text}",
             f"  keys        {status['keys'] or 'none (uploads are dry runs)'}"]
    for name, entry in sorted(status["last_submissions"].items()):
        lines.append(f"  {name:<12}round {entry['round']}, submission {entry['submission_id']} at {entry['uploaded_at']}")
    if not status["last_submissions"]:
        lines.append("  submissions none recorded")
    if status.get("payout"):
        lines.append(f"  payout      {status['payout']['text']}")
        lines += [f"  {p['model']:<12}{p['text']}" for p in status["payout"]["models"]]
    _print(args, status, "\n".join(lines))
    return 0


def cmd_diagnostics(args: argparse.Namespace) -> int:
    """Numerai's diagnostics read back (tasks/numerai/diagnostics.py)."""
    from numerflow.tasks.numerai.diagnostics import diagnostics_report

    settings = _settings(args)
    report = diagnostics_report(settings, model=args.model, upload=args.upload, fetch=not args.no_fetch)
    _print(args, report, "\n".join(report["lines"]))
    return 0


def cmd_scores(args: argparse.Namespace) -> int:
    """Live scores back (tasks/numerai/live_scores.py)."""
    from numerflow.tasks.numerai.live_scores import refresh_scores, render_scores_text

    settings = _settings(args)
    report = refresh_scores(settings, fetch=not args.no_fetch)
    _print(args, report.as_dict(), render_scores_text(report, fetched=not args.no_fetch,
                                                      rounds=settings.scores.alert_rounds))
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    """Prefect-native failure notifications (flows/notify.py)."""
    from numerflow.flows.notify import setup_notifications

    created = setup_notifications(_settings(args))
    _print(args, created, f"numerflow setup: webhook block {created['block']!r}, automation {created['automation']!r} "
           f"({'updated' if created['replaced'] else 'created'}): failed or crashed rounds post to the webhook")
    return 0


def cmd_news(args: argparse.Namespace) -> int:
    """``numerflow news fetch``: tasks/features/news_api.py, without Prefect."""
    from numerflow.tasks.core.errors import BadInputError
    from numerflow.tasks.core.store import Store
    from numerflow.tasks.features.news_api import fetch_universe_news
    from numerflow.tasks.numerai.universe import latest_universe_snapshot, load_universe_ids

    settings = _settings(args)
    tickers = args.tickers
    if not tickers:
        snapshot = latest_universe_snapshot(Store(settings.data_dir), "signals")
        if snapshot is None:
            raise BadInputError("no universe snapshot to take tickers from: run `numerflow universe` or pass --tickers",
                                tag="missing_universe")
        tickers = load_universe_ids(snapshot, "signals").astype(str).tolist()
    summary = fetch_universe_news(settings.features.news, tickers, settings.data_dir)
    _print(args, summary, f"numerflow news fetch: {summary['articles']} articles for {summary['symbols']} symbols "
           f"({summary['requests']} requests)\n  written     {summary['path']}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    """Prices only, with a progress bar on stderr (flows/prices.py)."""
    from numerflow.tasks.core.config import load_settings
    from numerflow.tasks.core.store import Store
    from numerflow.tasks.prices.ingest import ingest_dir, ingest_run_id, ingest_verdict, render_failure_groups

    overrides = _overrides(args, price_source=args.source)
    settings = load_settings(**overrides)  # fail fast on bad values, before Prefect starts
    store = Store(settings.data_dir)
    from numerflow.flows.prices import prices_flow, task_runner_for
    from numerflow.tasks.prices.configured import configured_source, source_name
    from numerflow.tasks.prices.sources.files import FilePriceSource, price_files

    source = configured_source(settings)  # files.path unset: one line here, not Prefect's traceback
    if isinstance(source, FilePriceSource):
        price_files(source.path)  # an empty, missing or unreadable path likewise
    from numerflow.tasks.prices.progress import ProgressBar

    name = source_name(settings)  # crypto bars have their own store (yahoo-crypto)
    run_id = ingest_run_id(store, name, args.run_id)
    with ProgressBar(ingest_dir(store, name) / "runs" / run_id):
        # The configured runner, as a round's ingest: Prefect's default has no thread limit (all batches of an
        # offline source at once: one merged part each in memory, and the GIL shared by 50 threads).
        summary = prices_flow.with_options(task_runner=task_runner_for(settings))(
            overrides=overrides, backfill=args.backfill, run_id=run_id)
    counts = ", ".join(f"{k} {summary.get(k, 0)}" for k in ("ok", "stale", "failed", "delisted", "no_data", "unresolved"))
    verdict = ingest_verdict(summary, settings.yahoo.max_failed_share)
    lines = [f"numerflow ingest {summary['run_id']} ({summary['source']}): {summary['tickers']} tickers — "
             f"{counts}; {summary['rows']:,} new bars, {summary['excluded_rows']} excluded, {summary['repulled']} "
             f"re-pulled, {summary.get('deduplicated', 0)} duplicate bars kept once"]
    if summary.get("excluded_reasons"):
        lines.append("  excluded    " + ", ".join(f"{r} {n}" for r, n in summary["excluded_reasons"].items()))
    if summary.get("causes"):
        lines += ["  problems    tickers without fresh bars, by cause:", *render_failure_groups(summary["causes"])]
    lines.append(f"  ledger      {summary['ledger_path']}")
    if verdict:
        lines.append(f"  FAILED      {verdict}")
    _print(args, {**summary, "verdict": verdict}, "\n".join(lines))
    return 1 if verdict else 0


def cmd_prices(args: argparse.Namespace) -> int:
    """``numerflow prices check PATH``: tasks/prices/sources/files.py, nothing stored."""
    from numerflow.tasks.core.store import Store
    from numerflow.tasks.numerai.universe import latest_universe_snapshot, load_universe_ids
    from numerflow.tasks.prices.sources.files import FileLayout, check_price_folder, render_price_check

    settings = _settings(args)
    snapshot = latest_universe_snapshot(Store(settings.data_dir), settings.tournament)
    universe = load_universe_ids(snapshot, settings.tournament).astype(str).tolist() if snapshot else None
    report = check_price_folder(args.path, FileLayout.from_settings(settings.files, settings.tournament),
                                universe=universe)
    _print(args, report, render_price_check(report))
    return 0 if report["usable"] else 1


def cmd_run(args: argparse.Namespace) -> int:
    """A whole round (flows/round.py): the demo market with --demo, else the live Numerai round
    with the configured price source; ``--tournament classic``: a Classic round (flows/classic.py)."""
    from numerflow.flows.stages import echo_stages
    from numerflow.tasks.round.console import round_console
    from numerflow.tasks.round.models import round_models
    from numerflow.tasks.round.summary import summary_of
    from numerflow.tasks.round.tournaments import judge_models, round_settings

    mode: Literal["demo", "live"] = "demo" if args.demo else "live"
    if (args.tournament or _settings(args).tournament) == "classic":
        from numerflow.flows.classic import classic_round_flow
        from numerflow.tasks.round.classic import classic_overrides

        signals_only = [f"--{name.replace('_', '-')}" for name in ("tickers", "years", "seed", "features",
                                                                   "news_signal") if getattr(args, name) is not None]
        if signals_only:
            raise BadInputError(f"{', '.join(signals_only)} shape the Signals demo market; a Classic round does not "
                                "use them (its demo is sized by the [classic] demo_* settings)", tag="invalid_option")
        quick = True if args.quick else None
        # --signal: the Classic demo's planted signal (classic.demo_signal).
        extra = {"classic": {"demo_signal": args.signal}} if args.signal is not None else None
        settings = round_settings(classic_overrides(args.data_dir, args.model, quick, extra))
        flow: Any = classic_round_flow
        options = {"model_name": args.model, "quick": quick, "overrides": extra}
    else:
        from numerflow.flows.round import round_flow
        from numerflow.tasks.round.signals import check_demo_settings, check_live_price_source, mode_overrides

        demo = {"tickers": args.tickers, "years": args.years, "signal": args.signal, "seed": args.seed}
        extra = _features_extra(args)
        # A demo round reads the offline demo market, never Yahoo.
        settings = round_settings(mode_overrides(mode, _overrides(args, model_name=args.model, extra=extra, **demo)))
        check_demo_settings(settings) if args.demo else check_live_price_source(settings)
        flow = round_flow
        options = {"tournament": args.tournament, "model_name": args.model, "overrides": extra, **demo}
    # Fail fast, before Prefect starts: the single model's parameter typo; a [[models]] entry's fails
    # that model alone, in the round's preflight.
    judge_models(round_models(settings, args.model), mode)
    with echo_stages(sys.stderr), round_console(args, settings.data_dir):  # one line per stage, start and end
        result = flow(mode=mode, force=args.force, retrain=args.retrain, data_dir=args.data_dir, **options)
    summary, text = summary_of(result)
    print(json.dumps(summary, indent=2, default=str) if args.json else text)
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # Offline by default: Prefect's telemetry would try the network at every start.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from numerflow.tasks.round.console import failure_payload, report_failure

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt as exc:  # Ctrl-C: one line, the shell's code for SIGINT
        report_failure(args, exc)
        return 130
    except NumerflowError as exc:
        report_failure(args, exc)
        return 2
    except Exception as exc:  # unexpected: its traceback is shown (Python's), after the JSON object
        if getattr(args, "json", False):
            print(json.dumps(failure_payload(exc, getattr(args, "log_path", None)), indent=2, default=str))
        raise


if __name__ == "__main__":
    sys.exit(main())
