"""The stages of a Signals (or Crypto) round, plain Python: the universe, its ids resolved to
price-source symbols, the prices' readiness, the training data (our own targets, or Numerai's
joined as-of our feature dates), training, ALPHA against the neutralizer, the report, live
predictions and the checked submission (Numerai's rules, numerai-tools, churn).

Demo or live (``RoundKind``) decides where the universe comes from (the demo market's own, or
Numerai's live one), what the model trains on and which neutralizer ALPHA is scored against.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from numerflow.tasks.core.config import Settings, load_settings, merge_overrides
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, read_json, read_parquet, write_json, write_parquet
from numerflow.tasks.crypto.data import crypto_target_columns, inspect_crypto_file
from numerflow.tasks.model.dataset import DatasetInfo, feature_columns_of
from numerflow.tasks.model.ensemble import ensemble_weights, train_ensemble
from numerflow.tasks.model.eras import feature_scores, with_score
from numerflow.tasks.model.predict import LivePredictions, predict_live
from numerflow.tasks.model.report import write_report
from numerflow.tasks.model.targets import numerai_target_horizon
from numerflow.tasks.model.training import (
    META_FILE,
    TrainResult,
    check_lightgbm_params,
    model_lineage,
    needs_training,
    train_and_register,
)
from numerflow.tasks.numerai.churn import check_against_history, churn_message
from numerflow.tasks.numerai.client import client_for, numerai_dir
from numerflow.tasks.numerai.data import TRAIN_FILES, fetch_training_data, numerai_live_path, numerai_training_frame
from numerflow.tasks.numerai.neutralizer import (
    NEUTRALIZER_FILES,
    WEIGHT_FILES,
    NeutralizerFiles,
    fetch_neutralizer_files,
    validation_alpha,
    validation_feature_alpha,
    write_neutralizer_parts,
)
from numerflow.tasks.numerai.submission import build_submission, validate_submission
from numerflow.tasks.numerai.universe import (
    fetch_universe,
    load_universe_ids,
    universe_snapshot_frame,
    write_universe,
)
from numerflow.tasks.prices.configured import (
    configured_source,
    demo_market,
    lookup_with_yahoo,
    readiness,
    source_name,
    with_unresolved,
)
from numerflow.tasks.prices.ingest import (
    failing_tickers,
    ingest_dir,
    looked_up_symbols,
    remember_lookups,
    remembered_symbols,
)
from numerflow.tasks.prices.lookup import lookup_targets
from numerflow.tasks.prices.quality import universe_coverage
from numerflow.tasks.prices.sources.demo import DemoMarket
from numerflow.tasks.prices.tickers import (
    candidate_map,
    resolution_report,
    resolution_summary,
    resolve_for_yahoo,
    universe_convention,
)
from numerflow.tasks.round.guard import demo_round_label
from numerflow.tasks.round.models import RoundModel
from numerflow.tasks.round.neutralization import check_neutralize, lineage_entry
from numerflow.tasks.round.results import (
    IngestSummary,
    Mode,
    NumeraiTargets,
    Resolution,
    RoundInputs,
    RoundKind,
    TrainPlan,
    UniverseRef,
)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- settings judged before anything runs


def check_demo_settings(settings: Settings) -> None:
    """A demo round that cannot succeed is refused before anything is generated: another
    tournament, fewer tickers than a submission needs, or a market too big for this machine."""
    from numerflow.tasks.prices.sources.demo import BUSINESS_DAYS_PER_YEAR, check_demo_fits

    if settings.tournament not in ("signals", "crypto"):
        raise BadInputError(
            f"the demo market is a Signals or Crypto market; a {settings.tournament} round has its own demo "
            f"(numerflow run --demo --tournament {settings.tournament} runs it)", tag="invalid_config")
    tickers, years = settings.demo.tickers, settings.demo.years
    if settings.tournament == "crypto":
        from numerflow.tasks.crypto.demo import DAYS_PER_YEAR, crypto_demo_size

        tickers, years = crypto_demo_size(settings.demo)
        years *= DAYS_PER_YEAR / BUSINESS_DAYS_PER_YEAR  # a bar every day: 365 a year, not 261
    if tickers < settings.submission.min_tickers:
        raise BadInputError(f"--tickers {tickers} is below Numerai's minimum of "
                            f"{settings.submission.min_tickers} tickers per submission "
                            "(submission.min_tickers): use --tickers 100 or more", tag="invalid_option")
    check_demo_fits(tickers, years)


def mode_overrides(mode: Mode, overrides: dict[str, Any]) -> dict[str, Any]:
    """The settings overrides a round of ``mode`` runs with. A demo round never touches the network:
    Yahoo (the live commands' source, the default) becomes the demo market; ``files`` stays (offline)."""
    if mode == "demo" and load_settings(**overrides).price_source == "yahoo":
        return merge_overrides(overrides, {"price_source": "demo"})
    return overrides


def check_own_features(settings: Settings) -> None:
    """Numerai's features exist only in Numerai's training data and live.parquet."""
    if settings.training.feature_set != "own":
        raise BadInputError(
            f"training.feature_set = {settings.training.feature_set!r} needs Numerai's train/validation data and "
            "live.parquet, which this round does not use (the demo market, or Numerai's targets switched off): "
            "set training.feature_set = \"own\" or run a live Signals round", tag="invalid_config")


def check_live_price_source(settings: Settings) -> None:
    """Live rounds take Numerai's tickers from Yahoo (resolved to Yahoo symbols) or from the user's
    own files (keyed by Numerai's ids themselves); the demo market has no Numerai tickers."""
    if settings.price_source not in ("yahoo", "files"):
        raise BadInputError(
            f"live rounds ingest Numerai tickers through Yahoo or your own files (price_source is "
            f"{settings.price_source!r}); set price_source = \"yahoo\" or \"files\" (NUMERFLOW_PRICE_SOURCE) "
            "or run with --demo", tag="invalid_config")
    if settings.price_source == "files" and settings.files.path is None:
        raise BadInputError("price_source is \"files\" but files.path is not set: point NUMERFLOW_FILES__PATH "
                            "at your CSV/Parquet prices (docs/prices.md)", tag="invalid_config")


def check_model(model: RoundModel, mode: Mode) -> None:
    """What preflight judges of one model (a typo must not cost an ingest): its objective fits Numerai's
    targets, LightGBM accepts its parameters, its targets and ensemble weights (in every mode: a demo
    round trains on its own target), and its feature sources (tables exist, plug-ins load)."""
    from numerflow.tasks.model.ensemble import check_model_targets, check_objective
    from numerflow.tasks.model.plugins import check_sources

    mine = model.settings
    check_objective(mine.training.params)  # first: its reason is about these targets, LightGBM's is generic
    check_lightgbm_params(mine.training)
    check_model_targets(mine.numerai, own_targets_only=mode == "demo" or not mine.numerai.use_numerai_targets)
    check_sources(mine.features)
    check_neutralize(mine)


# ---------------------------------------------------------------- universe and its ids


def universe_ids(universe: UniverseRef) -> Any:
    return load_universe_ids(Path(universe.path), universe.tournament)


def demo_universe(settings: Settings) -> UniverseRef:
    """The demo market's universe (delisted tickers ingested too: survivorship-free history)."""
    check_demo_settings(settings)
    market = demo_market(settings)
    label = demo_round_label(market.end)
    universe = market.universe()
    store = Store(settings.data_dir)
    path = (write_parquet(store.universe_path("crypto", label), universe_snapshot_frame(universe, "crypto"))
            if settings.tournament == "crypto" else write_universe(store, settings.tournament, label, universe))
    return UniverseRef(settings.tournament, label, str(path), int(len(universe)))


def numerai_universe(settings: Settings, round_number: int | None = None) -> UniverseRef:
    """This round's live universe from Numerai (public data: no keys needed); ``round_number``
    names the round when none is open yet (the daily prepare)."""
    snapshot = fetch_universe(client_for(settings, settings.tournament), Store(settings.data_dir), round_number)
    return UniverseRef(snapshot.tournament, f"round-{snapshot.round_number}", str(snapshot.snapshot_path),
                       snapshot.tickers, snapshot.round_number, snapshot.dataset)


def demo_resolution(settings: Settings, universe: UniverseRef) -> Resolution:
    """The demo market's ids are their own symbols (every ticker it ever listed)."""
    market = demo_market(settings)
    path = write_json(Path(universe.path).with_suffix(".candidates.json"), {t: [t] for t in market.all_tickers()})
    return Resolution(str(path))


def live_resolution(settings: Settings, universe: UniverseRef) -> Resolution:
    """Numerai's ids → symbols: your own files are keyed by Numerai's ids (each its own candidate);
    Yahoo's symbols come from ``resolve_universe``."""
    check_live_price_source(settings)
    assert universe.round_number is not None  # a live universe always has its round
    if settings.price_source == "files":
        ids = universe_ids(universe).astype(str).tolist()
        path = write_json(numerai_dir(Store(settings.data_dir), settings.tournament) / f"round-{universe.round_number}"
                          / "files-candidates.json", {t: [t] for t in ids})
        return Resolution(str(path))
    return resolve_universe(settings, Path(universe.path), universe.round_number)


def resolve_universe(settings: Settings, universe_path: Path, round_number: int) -> Resolution:
    """Resolve the universe to Yahoo candidates (rules, the catalog's winners, overrides; then
    Yahoo's search for what they miss); write the map; return it with the report."""
    tournament = settings.tournament
    ids = load_universe_ids(Path(universe_path), tournament).astype(str).tolist()
    store, source = Store(settings.data_dir), source_name(settings)
    failing = failing_tickers(store, source)

    def resolve() -> Any:
        return resolve_for_yahoo(ids, tournament, settings.numerai.overrides_path, remembered_symbols(store, source),
                                 looked_up_symbols(store, source))

    table = resolve()
    reasons: dict[str, str] = {}
    if tournament == "signals" and settings.price_source == "yahoo" and settings.yahoo.lookup:
        targets = lookup_targets(table, failing)
        if targets:
            found = lookup_with_yahoo(settings, targets, convention=universe_convention(ids))
            remember_lookups(store, source, {t: (r.symbol, r.name) for t, r in found.items() if r.symbol})
            reasons = {t: r.reason for t, r in found.items() if r.reason}
            table = resolve()
    report = resolution_report(table)
    needs = {t: m for t, m in failing.items() if int(m.get("runs", 0)) >= settings.yahoo.needs_override_after}
    details = resolution_summary(table, reasons, needs)
    # Unresolved tickers go in with no candidates, so the ingest ledger lists them too.
    path = write_json(numerai_dir(store, tournament) / f"round-{round_number}"
                      / "yahoo-candidates.json", with_unresolved(ids, candidate_map(table)))
    total = report[report["country"] == "TOTAL"].iloc[0]
    return Resolution(str(path), {k: int(total[k]) for k in ("resolved", "ambiguous", "unresolved", "total")},
                      report.to_dict("records"), details)


# ---------------------------------------------------------------- prices


def check_prices(settings: Settings, kind: RoundKind, universe: UniverseRef, source: str) -> dict[str, Any] | None:
    """A live round's readiness (refuses when too much of the universe is stale); the demo market
    is complete by construction."""
    if kind.mode == "demo":
        return None
    ready = readiness(settings, universe_ids(universe).tolist(), source)
    log.info("Price readiness: %s", ready)
    return ready


def ingested_prices(settings: Settings, kind: RoundKind, universe: UniverseRef,
                    summary: dict[str, Any]) -> IngestSummary:
    """The ingest's summary with the readiness check and the universe's coverage."""
    ready = check_prices(settings, kind, universe, summary["source"])
    stored = read_parquet(Path(summary["prices_dir"]), columns=["ticker", "date"])
    last = stored["date"].max()
    coverage = universe_coverage(universe_ids(universe), list(stored["ticker"].unique()))
    return IngestSummary.from_summary(summary, prices_dir=summary["prices_dir"], last_date=str(last.date()),
                                      readiness=ready, coverage=coverage)


def release_demo_bars(settings: Settings) -> None:
    """The demo market's bars are in the store once the ingest is done: free its matrices (0.55 GB at
    Numerai's size) before the dataset stage; its per-ticker attributes stay for the neutralizer."""
    source = configured_source(settings)
    if isinstance(source, DemoMarket):
        source.release_bars()


def prepared_prices(settings: Settings, kind: RoundKind, universe: UniverseRef) -> IngestSummary:
    """The prices the last finished ingest stored (the prepare run's), with the readiness check."""
    name = source_name(settings)
    store = Store(settings.data_dir)
    runs = ingest_dir(store, name) / "runs"
    finished = sorted(d for d in runs.iterdir() if (d / "summary.json").exists()) if runs.is_dir() else []
    prices_dir = store.prices_dir(name)
    if not finished or not prices_dir.exists():
        raise BadInputError(f"no prepared {name} prices in {prices_dir}: run the prepare flow (or a whole round) "
                            "first", tag="not_prepared")
    summary = read_json(finished[-1] / "summary.json")
    ready = check_prices(settings, kind, universe, name)
    last = read_parquet(prices_dir, columns=["date"])["date"].max()
    return IngestSummary.from_summary({"source": name, **summary}, prices_dir=str(prices_dir),
                                      last_date=str(last.date()), readiness=ready)


# ---------------------------------------------------------------- training data and plan


def numerai_targets(settings: Settings, dataset_path: str, round_number: int | None) -> NumeraiTargets | None:
    """Our features joined with Numerai's targets, when wanted (``use_numerai_targets``) and
    Numerai lists training data for the tournament; None → the round trains on our own targets.
    One training file per target: its own column and its own purge."""
    tournament = settings.tournament
    if not settings.numerai.use_numerai_targets or round_number is None:
        check_own_features(settings)
        return None
    targets = settings.numerai.ensemble_targets or [settings.numerai.target_column]
    for column in targets:
        numerai_target_horizon(column, crypto=tournament == "crypto")  # an unknown horizon: refused before downloads
    ensemble_weights(targets, settings.numerai.ensemble_weights)  # bad weights refused before the work
    store = Store(settings.data_dir)
    client = client_for(settings, tournament)
    if not any(name.rpartition("/")[2] in TRAIN_FILES[tournament] for name in client.list_datasets()):
        log.info("Numerai lists no %s training data (%s): training on our own targets", tournament,
                 "/".join(TRAIN_FILES[tournament]))
        check_own_features(settings)
        return None
    files = fetch_training_data(client, store, round_number)
    if tournament == "crypto":  # v1 or v2 layout: the target columns found by inspection
        targets = crypto_target_columns(inspect_crypto_file(files.train_path), targets)
    feature_set = settings.training.feature_set
    ours = read_parquet(Path(dataset_path))
    members = []
    joined = pd.DataFrame()
    for column in targets:
        joined = numerai_training_frame(ours, files.paths, tournament, column, feature_set)
        path = write_parquet(Path(dataset_path).with_name(
            f"{Path(dataset_path).stem}-numerai-{column}-{feature_set}.parquet"), joined)
        members.append((column, str(path)))
    return NumeraiTargets(members[0][1], int(len(joined)), files.version, targets[0],
                          members if settings.numerai.ensemble_targets else None)


def demo_numerai_targets(settings: Settings, dataset_path: str) -> NumeraiTargets | None:
    """A demo round's Numerai data: the Crypto demo's Numerai-shaped v2.0 files when the feature set
    wants Numerai's features (``numerai``, ``both``); otherwise (and for Signals) our own targets."""
    if settings.tournament != "crypto" or settings.training.feature_set == "own":
        check_own_features(settings)
        return None
    from numerflow.tasks.crypto.demo import NUMERAI_TARGET, demo_numerai_files

    train, _ = demo_numerai_files(settings)
    feature_set = settings.training.feature_set
    joined = numerai_training_frame(read_parquet(Path(dataset_path)), [train], "crypto", NUMERAI_TARGET, feature_set)
    path = write_parquet(Path(dataset_path).with_name(
        f"{Path(dataset_path).stem}-demo-numerai-{NUMERAI_TARGET}-{feature_set}.parquet"), joined)
    return NumeraiTargets(str(path), int(len(joined)), "demo", NUMERAI_TARGET)


def training_data(settings: Settings, dataset: DatasetInfo, targets: NumeraiTargets | None) -> tuple[str, str]:
    """The file a model trains on and its lineage's source: our dataset (the demo market, or no
    Numerai training data), or ours joined with Numerai's targets (named with their weights)."""
    if targets is None:
        check_own_features(settings)
        return dataset.path, source_name(settings)
    features = "" if settings.training.feature_set == "own" else f"+features:{settings.training.feature_set}"
    columns = targets.target_column
    if targets.members:
        weights = ensemble_weights([t for t, _ in targets.members], settings.numerai.ensemble_weights)
        columns = ",".join(f"{t}@{w:.3g}" for (t, _), w in zip(targets.members, weights, strict=True))
    return targets.path, f"{source_name(settings)}+numerai:{columns}{features}"


def plan_training(model: RoundModel, dataset: DatasetInfo, targets: NumeraiTargets | None, *, retrain: bool,
                  run_id: str) -> TrainPlan:
    """Train or reuse? Reuse needs a fresh registry model of the same lineage (a table entry's name
    is part of its lineage: each entry has its own)."""
    settings = model.settings
    training_path, lineage_source = training_data(settings, dataset, targets)
    lineage = model_lineage(settings, lineage_source)
    if model.in_table:
        lineage["model"] = model.name
    if lineage_entry(settings):
        lineage["neutralize"] = lineage_entry(settings)
    features = feature_columns_of(Path(training_path))  # ours, Numerai's or both
    must_train, reason = needs_training(Store(settings.data_dir), settings.training.model_max_age_days,
                                        features, force=retrain, lineage=lineage)
    log.info("Training decision%s: %s", f" ({model.name})" if model.in_table else "", reason)
    return TrainPlan(model, lineage_source, lineage, must_train, reason, model.run_id(run_id),
                     training_path=training_path, numerai_targets=targets, own_dataset=dataset.path)


def train(settings: Settings, training_path: str, run_id: str, lineage: dict[str, Any],
          members: list[tuple[str, str]] | None = None) -> TrainResult:
    """One model, or (``members``: target and training file each) a rank-averaged ensemble."""
    store = Store(settings.data_dir)
    if members:
        return train_ensemble(store, [(t, Path(p)) for t, p in members], settings.numerai.ensemble_weights,
                              settings.training, run_id, lineage=lineage)
    return train_and_register(store, Path(training_path), settings.training, run_id, lineage=lineage)


# ---------------------------------------------------------------- ALPHA


def demo_neutralizer(settings: Settings, validation_predictions: str) -> NeutralizerFiles:
    """The demo market's neutralizer and sample weights on the validation dates (Numerai's layout)."""
    market = demo_market(settings)
    dates = read_parquet(Path(validation_predictions), columns=["date"])["date"].unique()
    folder = Store(settings.data_dir).root / "neutralizers" / "demo" / hashlib.sha256(
        f"{market!r}:{len(dates)}:{dates.min()}:{dates.max()}".encode()).hexdigest()[:16]
    if (folder / NEUTRALIZER_FILES["validation"]).exists() and (folder / WEIGHT_FILES["validation"]).exists():
        return NeutralizerFiles("demo", "validation", folder / NEUTRALIZER_FILES["validation"],
                                folder / WEIGHT_FILES["validation"])
    return write_neutralizer_parts(folder, market.neutralizer_parts(dates))


def numerai_neutralizer(settings: Settings, round_number: int | None) -> NeutralizerFiles | None:
    """Numerai's validation neutralizer and sample weights (Signals, when listed)."""
    if round_number is None or settings.tournament != "signals" or not settings.numerai.use_numerai_targets:
        return None
    return fetch_neutralizer_files(client_for(settings, settings.tournament), Store(settings.data_dir), round_number)


def score_alpha(trained: TrainResult, files: NeutralizerFiles | None) -> dict:
    """The validation metrics plus ALPHA per date and per era, and each feature's own ALPHA (one pass over
    the neutralizer file for all of them), also written into the model's meta.json; unchanged, with the
    reason logged, when there is no neutralizer to score against."""
    if files is None:
        log.info("No neutralizer file for the validation dates: ALPHA not scored")
        return trained.metrics
    meta_path = Path(trained.model_dir) / META_FILE
    meta = read_json(meta_path)
    span = int(meta["data_range"].get("target_span_trading_days") or 0)
    per_feature = feature_alpha(trained, files, meta)
    try:
        alpha = per_feature.pop("prediction") if per_feature is not None else validation_alpha(
            Path(trained.validation_predictions), files.neutralizer_path, files.weights_path)
    except BadInputError as exc:  # scoring is diagnostics: the round goes on
        log.warning("ALPHA not scored: %s", exc)
        return trained.metrics
    metrics = with_score(trained.metrics, "alpha", alpha, span)
    metrics["alpha_scored_on"] = per_feature.attrs["scored_on"] if per_feature is not None else alpha.attrs.get(
        "scored_on")
    if per_feature is not None:
        metrics = feature_scores(metrics, per_feature, span, "alpha")
    meta["validation_metrics"] = {**meta["validation_metrics"], "alpha": metrics["alpha"], "daily": metrics["daily"]}
    write_json(meta_path, meta)
    log.info("Validation ALPHA per weekly era: mean %.5f over %s eras", metrics["alpha"]["mean"] or float("nan"),
             metrics["alpha"]["n_eras"])
    return metrics


def feature_alpha(trained: TrainResult, files: NeutralizerFiles, meta: dict) -> pd.DataFrame | None:
    """Per date, the model's ALPHA (column ``prediction``) and each numeric feature's own, in one pass over
    the neutralizer file; None when there are no features to score or they cannot be read (logged:
    ``score_alpha`` then scores the model alone)."""
    metrics = trained.metrics
    names = [n for n in (metrics.get("features") or {}) if "corr" in metrics["features"][n]]  # the numeric ones
    if not names:
        return None
    try:
        return validation_feature_alpha(Path(trained.validation_predictions), Path(meta["dataset"]), names,
                                        files.neutralizer_path, files.weights_path, with_prediction=True)
    except (BadInputError, KeyError, ValueError, OSError) as exc:  # diagnostics: the round goes on
        log.warning("Per-feature ALPHA not scored: %s", exc)
        return None


def report(settings: Settings, model_dir: str, metrics: dict, run_id: str) -> dict[str, Any]:
    """The validation report (JSON, Markdown, chart) of a model trained this round."""
    meta = read_json(Path(model_dir) / META_FILE)
    return {**write_report(Store(settings.data_dir), run_id, metrics, meta),
            "description": f"Validation diagnostics of model {meta['model_id']}"}


# ---------------------------------------------------------------- live predictions and the submission


def predict(settings: Settings, inputs: RoundInputs, model_dir: str, run_id: str) -> LivePredictions:
    """The live universe's predictions from the latest features (ours, Numerai's live.parquet, or both)."""
    assert inputs.dataset is not None  # a Signals round always builds its dataset
    universe = inputs.universe
    numerai_live = numerai_live_path(Store(settings.data_dir), universe)
    if universe.round_number is None and settings.tournament == "crypto" and settings.training.feature_set != "own":
        from numerflow.tasks.crypto.demo import demo_numerai_files

        numerai_live = str(demo_numerai_files(settings)[1])  # the Crypto demo's live.parquet
    return predict_live(
        Store(settings.data_dir), Path(inputs.dataset.path), Path(model_dir),
        load_universe_ids(Path(universe.path), settings.tournament), run_id,
        min_tickers=settings.submission.min_tickers, num_threads=settings.training.num_threads,
        numerai_live_path=Path(numerai_live) if numerai_live else None,
    )


def checked_submission(settings: Settings, predictions_path: str,
                       universe: UniverseRef) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The submission's ranks, Numerai's rules + numerai-tools' validator, and churn/turnover against
    this model's recent submissions (the churn gate may refuse here, before any file is written)."""
    submission = build_submission(read_parquet(Path(predictions_path)), settings.tournament)
    checks = validate_submission(submission, universe_ids(universe), tournament=settings.tournament,
                                 min_tickers=settings.submission.min_tickers)
    churn = check_against_history(Store(settings.data_dir), settings.submission, settings.tournament,
                                  settings.numerai.model_name, universe.round_label, submission)
    if churn["warning"]:
        log.warning(churn["warning"])
    return submission, {**checks, "max_churn": churn["max_churn"], "max_turnover": churn["max_turnover"],
                        "churn": churn_message(churn)}


def shared_dataset(settings: Settings, model: RoundModel) -> bool:
    """Whether ``model`` uses the round's dataset (else its own feature groups need their own)."""
    return model.settings.features == settings.features
