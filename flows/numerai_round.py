"""A live Numerai round (``numerflow run`` without ``--demo``), Signals or Crypto, top to bottom:

    round window (refused early when closed and keys are set) → Numerai universe
    → ticker resolution (report artifact) → price ingest (configured source)
    → features + targets (Numerai's targets when their data is in the store) → train or reuse
    → live predictions → validated submission → upload (ledger: once per round and model)

The training, prediction and submission steps are the foundation's tasks (flows/round.py);
this flow adds the Numerai-facing ones. Crypto shares every stage: only the universe's id
column (``symbol``), its Yahoo spelling (``SYMBOL-USD``), its price store (``yahoo-crypto``)
and the API class differ (tasks/numerai.py ``TournamentSpec``). Tasks pass paths and small dicts, never DataFrames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from numerflow.flows.policies import NETWORK_RETRY_DELAYS, RETRY_JITTER, retry_only_transient
from numerflow.flows.round import build_dataset_task, new_run_id, predict_submit_flow, train_or_reuse
from numerflow.tasks.core.config import Settings, load_settings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.numerai.client import client_for, numerai_dir, require_open_window, tournament_spec
from numerflow.tasks.numerai.data import TRAIN_FILES, fetch_training_data, join_numerai_targets, read_numerai_targets
from numerflow.tasks.numerai.universe import fetch_universe
from numerflow.tasks.core.store import Store, read_json, read_parquet, write_json, write_parquet
from numerflow.tasks.prices.tickers import candidate_map, resolution_report, resolve_for_yahoo


@task(
    name="numerai-round-window",
    retries=3,
    retry_delay_seconds=NETWORK_RETRY_DELAYS,
    retry_jitter_factor=RETRY_JITTER,
    retry_condition_fn=retry_only_transient,
    timeout_seconds=300,
)
def round_window_task(settings: Settings, tournament: str) -> dict[str, Any] | None:
    """The current round's window. With keys (a real upload ahead), a closed window refuses the
    round here, before hours of ingest and training, with the times in the message; without
    keys the round goes on as a dry run."""
    client = client_for(settings, tournament)
    current = client.current_round()
    if client.keys is not None:
        require_open_window(current)
    elif current is None or not current.is_open():
        get_run_logger().warning("No open %s round, and no keys: a dry run", tournament)
    return current.as_dict() if current is not None else None


@task(
    name="numerai-universe",
    retries=3,
    retry_delay_seconds=NETWORK_RETRY_DELAYS,
    retry_jitter_factor=RETRY_JITTER,
    retry_condition_fn=retry_only_transient,
    timeout_seconds=900,
)
def numerai_universe_task(settings: Settings, tournament: str) -> dict[str, Any]:
    """This round's live universe from Numerai (public data: no keys needed)."""
    snapshot = fetch_universe(client_for(settings, tournament), Store(settings.data_dir))
    return {"round": snapshot.round_number, "dataset": snapshot.dataset, "tickers": snapshot.tickers,
            "universe_path": str(snapshot.snapshot_path)}


def universe_ids(universe_path: Path, tournament: str) -> list[str]:
    column = tournament_spec(tournament).ticker_column
    return read_parquet(Path(universe_path), columns=[column])[column].astype(str).tolist()


def resolve_and_report(settings: Settings, universe_path: Path, round_number: int,
                       tournament: str | None = None) -> dict[str, Any]:
    """Resolve the universe to Yahoo candidates; write the map; return the report rows."""
    tournament = tournament or settings.tournament
    from numerflow.flows.prices import source_name
    from numerflow.tasks.prices.ingest import remembered_symbols

    # The report shows which tickers already have a winning symbol from earlier ingests.
    remembered = remembered_symbols(Store(settings.data_dir), source_name(settings))
    table = resolve_for_yahoo(universe_ids(universe_path, tournament), tournament, settings.numerai.overrides_path,
                              remembered)
    report = resolution_report(table)
    path = write_json(numerai_dir(Store(settings.data_dir), tournament) / f"round-{round_number}"
                      / "yahoo-candidates.json", candidate_map(table))
    total = report[report["country"] == "TOTAL"].iloc[0]
    return {"candidates_path": str(path), "report": report.to_dict("records"),
            "totals": {k: int(total[k]) for k in ("resolved", "ambiguous", "unresolved", "total")}}


@task(name="resolve-tickers", retries=0, timeout_seconds=600)
def resolve_tickers_task(settings: Settings, universe_path: str, round_number: int, tournament: str) -> dict[str, Any]:
    result = resolve_and_report(settings, Path(universe_path), round_number, tournament)
    create_table_artifact(result["report"], key="ticker-resolution",
                          description=f"{tournament_spec(tournament).ticker_column} → Yahoo resolution, "
                          f"{tournament} round {round_number}")
    get_run_logger().info("Ticker resolution: %s", result["totals"])
    return result


def ingest_live_prices(settings: Settings, candidates_path: str, universe_path: str, tournament: str) -> dict[str, Any]:
    """Prices for the whole universe through the batched ingest tasks (flows/prices.py), then the
    readiness check: refuses the round when too much of the universe is stale or missing."""
    from numerflow.flows.prices import readiness, run_price_ingest, with_unresolved

    if settings.price_source != "yahoo":
        raise BadInputError(
            f"live rounds ingest Numerai tickers through Yahoo only (price_source is {settings.price_source!r}); "
            "set price_source = \"yahoo\" (NUMERFLOW_PRICE_SOURCE=yahoo) or run with --demo",
            tag="invalid_config")
    ids = universe_ids(Path(universe_path), tournament)
    # Unresolved tickers go in with no candidates so the ledger lists them too.
    summary = run_price_ingest(settings, with_unresolved(ids, read_json(Path(candidates_path))))
    ready = readiness(settings, ids, summary["source"])
    get_run_logger().info("Price readiness: %s", ready)
    last = read_parquet(Path(summary["prices_dir"]), columns=["date"])["date"].max()
    return {**summary, "last_date": str(last.date()), "readiness": ready}


@task(
    name="numerai-targets",
    retries=3,
    retry_delay_seconds=NETWORK_RETRY_DELAYS,
    retry_jitter_factor=RETRY_JITTER,
    retry_condition_fn=retry_only_transient,
    timeout_seconds=3 * 3600,
)
def numerai_targets_task(settings: Settings, dataset_path: str, round_number: int,
                         tournament: str) -> dict[str, Any] | None:
    """Our features joined with Numerai's targets, when wanted (``use_numerai_targets``) and
    Numerai lists training data for the tournament; None → the round trains on our own targets."""
    if not settings.numerai.use_numerai_targets:
        return None
    store = Store(settings.data_dir)
    client = client_for(settings, tournament)
    listed = client.list_datasets()
    if not any(name.rpartition("/")[2] in TRAIN_FILES[tournament] for name in listed):
        get_run_logger().info("Numerai lists no %s training data (%s): training on our own targets",
                              tournament, "/".join(TRAIN_FILES[tournament]))
        return None
    files = fetch_training_data(client, store, round_number)
    numerai = read_numerai_targets(files.paths, tournament, settings.numerai.target_column)
    joined = join_numerai_targets(read_parquet(Path(dataset_path)), numerai, settings.target)
    path = Path(dataset_path).with_name(f"{Path(dataset_path).stem}-numerai-{settings.numerai.target_column}.parquet")
    write_parquet(path, joined)
    return {"path": str(path), "rows": int(len(joined)), "version": files.version,
            "target_column": settings.numerai.target_column}


@flow(name="numerai-round", log_prints=True)
def numerai_round_flow(
    tournament: str = "signals",
    force: bool = False,
    retrain: bool = False,
    data_dir: str | None = None,
    model_name: str | None = None,
) -> dict[str, Any]:
    """A whole live round against Numerai (see the module docstring)."""
    overrides: dict[str, Any] = {"tournament": tournament}
    if data_dir:
        overrides["data_dir"] = data_dir
    if model_name:
        overrides["numerai"] = {"model_name": model_name}
    settings = load_settings(**overrides)
    window = round_window_task(settings, tournament)
    universe = numerai_universe_task(settings, tournament)
    resolution = resolve_tickers_task(settings, universe["universe_path"], universe["round"], tournament)
    prices = ingest_live_prices(settings, resolution["candidates_path"], universe["universe_path"], tournament)
    dataset = build_dataset_task(settings, prices["source"])
    numerai_targets = numerai_targets_task(settings, dataset["path"], universe["round"], tournament)
    training_path = numerai_targets["path"] if numerai_targets else dataset["path"]
    lineage_source = prices["source"]
    if numerai_targets:
        lineage_source += f"+numerai:{settings.numerai.target_column}"
    model, reason = train_or_reuse(settings, training_path, dataset["feature_names"], lineage_source, retrain,
                                   new_run_id())
    # Live predictions need today's features: always from our own dataset.
    submitted = predict_submit_flow(dataset["path"], model["model_dir"], universe["universe_path"], overrides,
                                    round_label=f"round-{universe['round']}", live=True, force=force)
    return {
        "ingest": {"universe_path": universe["universe_path"], "prices": prices},
        "train": {"dataset": dataset, "model": model, "decision": reason, "numerai_targets": numerai_targets},
        "submit": submitted,
        "numerai": {"tournament": tournament, "round": universe["round"], "window": window, "universe": universe,
                    "resolution": resolution["totals"], "resolution_report": resolution["report"],
                    "candidates_path": resolution["candidates_path"]},
    }
