"""Numerai's own training data: targets to train on.

``train.parquet`` / ``validation.parquet`` (found with ``list_datasets``, never a
hard-coded version) hold one row per (``numerai_ticker``, ``date``) with Numerai's targets
(``target`` = ``target_factor_feat_neutral_20``, ``target_raw_return_20``, …).
A target at data date D is the return over 20 trading days starting 2 days after D
("20D2L"), so it belongs to features known at D.

**Alignment (no look-ahead):** each Numerai row (ticker, D) takes our feature row of the
same ticker at the latest date d ≤ D, at most ``max_gap_days`` calendar days earlier
(``merge_asof`` backward, vectorised). d = D is the usual case; d < D happens when the
ticker's market was closed on D. A feature row after D is never used, so features never
see the target's window. ``target_end_date`` is set from D (D + 2 + horizon trading days,
the horizon read from the target's name: ``_60`` is 60; counted conservatively, see
``tasks.model.targets.numerai_target_end``) so the training split purges every row whose
Numerai target overlaps validation.

Numerai's ``feature_*`` columns are used by the ``numerai`` and ``both`` feature sets
(``training.feature_set``): Signals v2.x ``live.parquet`` holds the same columns for every live
ticker, so a model on them can predict every live round (``tasks.model.predict``).

The tickers in train/validation are also the historical universe (every ticker Numerai
ever had), for survivorship-free price history.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from numerflow.tasks.classic.data import fetch_intact
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, read_columns
from numerflow.tasks.model.targets import numerai_target_end, numerai_target_horizon
from numerflow.tasks.numerai.client import (
    NumeraiClient,
    dataset_file,
    numerai_dir,
    pick_dataset_version,
    round_download_path,
    tournament_spec,
)

log = logging.getLogger(__name__)

#: Crypto: v2's train.parquet (features and targets) preferred to the v1 layout's train_targets.parquet.
TRAIN_FILES = {"signals": ("train.parquet",), "crypto": ("train.parquet", "train_targets.parquet")}
VALIDATION_FILES = {"signals": ("validation.parquet",), "crypto": ()}
#: The target Numerai pays ALPHA on (Signals, rounds from 2025-09).
PAYOUT_TARGET = "target_chili_60"


@dataclass(frozen=True)
class NumeraiTrainingFiles:
    tournament: str
    version: str
    train_path: Path
    validation_path: Path | None

    @property
    def paths(self) -> list[Path]:
        return [p for p in (self.train_path, self.validation_path) if p is not None]


def fetch_training_data(client: NumeraiClient, store: Store, round_number: int | None = None) -> NumeraiTrainingFiles:
    """Download Numerai's train (once per data version) and validation (once per round:
    it grows as targets resolve) files; a damaged local copy is quarantined and downloaded again
    (Classic's ``fetch_intact``)."""
    tournament = client.spec.name
    filenames = client.list_datasets()
    version = pick_dataset_version(filenames, tournament, required=TRAIN_FILES[tournament])
    train_remote = dataset_file(filenames, version, TRAIN_FILES[tournament])
    train_path = numerai_dir(store, tournament) / version.rpartition("/")[2] / train_remote.rpartition("/")[2]
    fetch_intact(client, train_remote, train_path, None, reuse=True)  # a damaged copy: quarantined, fetched again
    validation_path = None
    if any(f"{version}/{name}" in filenames for name in VALIDATION_FILES[tournament]):
        if round_number is None:
            current = client.current_round()
            round_number = current.number if current is not None else 0
        remote = dataset_file(filenames, version, VALIDATION_FILES[tournament])
        validation_path = fetch_intact(client, remote, round_download_path(store, tournament, remote, round_number),
                                       None, reuse=True)
    return NumeraiTrainingFiles(tournament, version, train_path, validation_path)


def read_numerai_targets(
    paths: list[Path],
    tournament: str = "signals",
    target_column: str = "target",
    feature_columns: Sequence[str] = (),
) -> pd.DataFrame:
    """``ticker``, ``date`` (datetime64) and ``target`` (from ``target_column``), plus Numerai's
    ``feature_columns`` when asked (numeric ones as float32, the others as strings).

    Where train and validation overlap, validation (the later file) wins.
    """
    ticker = tournament_spec(tournament).ticker_column
    frames = []
    for path in paths:
        names = pq.read_schema(path).names
        missing = [c for c in (ticker, "date") if c not in names]
        if missing:
            raise BadInputError(f"Numerai data file {path} lacks columns {missing}; delete it and download again",
                                tag="invalid_numerai_data")
        if target_column not in names:
            targets = sorted(n for n in names if n.startswith("target"))
            raise BadInputError(f"Numerai data file {path} has no target column {target_column!r}; "
                                f"it has {targets}: set numerai.target_column to one of them",
                                tag="invalid_numerai_data")
        absent = [c for c in feature_columns if c not in names]
        if absent:
            raise BadInputError(f"Numerai data file {path} lacks the feature columns {absent}",
                                tag="invalid_numerai_data")
        frame = read_columns(path, [ticker, "date", target_column, *feature_columns])  # Crypto v2: index
        frames.append(frame)
    if not frames:
        raise BadInputError("no Numerai data files given", tag="invalid_numerai_data")
    data = pd.concat(frames, ignore_index=True)
    dates = pd.to_datetime(data["date"])  # "YYYY-MM-DD" strings or timestamps
    if dates.dt.tz is not None:
        dates = dates.dt.tz_localize(None)
    out = pd.DataFrame({
        "ticker": data[ticker].astype("string"),
        "date": dates.dt.normalize().astype("datetime64[ns]"),
        "target": pd.to_numeric(data[target_column], errors="coerce").astype("float32"),
    })
    for name in feature_columns:
        column = data[name]
        out[name] = (column.astype("float32") if pd.api.types.is_numeric_dtype(column.dtype)
                     else column.astype("string"))
    out = out[out["ticker"].notna()]
    out = out.drop_duplicates(["ticker", "date"], keep="last").reset_index(drop=True)
    if out.empty:
        raise BadInputError(f"Numerai data files {[str(p) for p in paths]} hold no rows", tag="invalid_numerai_data")
    return out


def join_numerai_targets(
    dataset: pd.DataFrame,
    numerai: pd.DataFrame,
    target_column: str = "target",
    max_gap_days: int = 5,
    numerai_features: Sequence[str] = (),
    *,
    calendar_days: bool = False,
) -> pd.DataFrame:
    """Our features with Numerai's targets (see the module docstring for the alignment).

    Returns one row per Numerai (ticker, date) that found a feature row: our ``ticker``,
    ``date`` (the feature date d), ``feature_*`` (ours, then ``numerai_features``: Numerai's own
    columns of the same row D, for the ``both`` feature set), ``target`` (Numerai's),
    ``numerai_date`` (D), ``target_end_date``
    (``numerai_target_end``: D + 2 + the horizon of ``target_column`` trading days, with a
    holiday margin; the purge must see a 60-day target's whole window; ``calendar_days``: Crypto's
    calendar days), sorted by (date, ticker). Our own ``target`` and ``target_raw`` are dropped.
    """
    numerai_target_horizon(target_column, crypto=calendar_days)  # validates the name before the join
    ours = dataset.drop(columns=[c for c in ("target", "target_raw", "target_end_date") if c in dataset.columns])
    ours = ours.assign(date=pd.to_datetime(ours["date"]).astype("datetime64[ns]"),
                       ticker=ours["ticker"].astype("string"))
    theirs = numerai.rename(columns={"date": "numerai_date"})
    theirs = theirs.assign(numerai_date=theirs["numerai_date"].astype("datetime64[ns]"),
                           ticker=theirs["ticker"].astype("string"))
    left = theirs.sort_values("numerai_date", kind="stable")
    right = ours.assign(_feature_date=ours["date"]).sort_values("_feature_date", kind="stable")
    joined = pd.merge_asof(
        left, right, left_on="numerai_date", right_on="_feature_date", by="ticker",
        direction="backward", tolerance=pd.Timedelta(days=max_gap_days), allow_exact_matches=True,
    )
    joined = joined[joined["_feature_date"].notna()]
    # Two Numerai dates can fall back onto one feature row (a long holiday): keep the nearest.
    joined = joined.sort_values(["ticker", "_feature_date", "numerai_date"], kind="stable")
    joined = joined.drop_duplicates(["ticker", "_feature_date"], keep="first")
    end = numerai_target_end(joined["numerai_date"].to_numpy(), target_column, calendar_days=calendar_days)
    joined = joined.assign(date=joined["_feature_date"], target_end_date=end)
    feature_cols = [c for c in ours.columns if c.startswith("feature_")]
    clash = sorted(set(feature_cols) & set(numerai_features))
    if clash:
        raise BadInputError(f"our features and Numerai's share the names {clash}", tag="feature_mismatch")
    scores = [c for c in ("score_target", "alpha_target") if c in theirs.columns]
    columns = ["ticker", "date", *feature_cols, *numerai_features, "target", *scores, "numerai_date",
               "target_end_date"]
    result = joined[columns].sort_values(["date", "ticker"], kind="stable").reset_index(drop=True)
    if result.empty:
        raise BadInputError(
            "none of Numerai's (ticker, date) rows matched our features: check that the price source "
            "covers Numerai's tickers and dates (ticker names must be numerai_ticker)", tag="no_numerai_overlap")
    log.info("joined Numerai targets: %d of %d Numerai rows matched our features", len(result), len(numerai))
    return result


def numerai_feature_rows(numerai: pd.DataFrame, target_column: str = "target", *,
                         calendar_days: bool = False) -> pd.DataFrame:
    """The ``numerai`` feature set's training rows: Numerai's own rows as they are (its features
    at D belong to D), with ``numerai_date`` = ``date`` and the purge's ``target_end_date``."""
    numerai_target_horizon(target_column, crypto=calendar_days)
    out = numerai.assign(numerai_date=numerai["date"],
                         target_end_date=numerai_target_end(numerai["date"].to_numpy(), target_column,
                                                            calendar_days=calendar_days))
    return out.sort_values(["date", "ticker"], kind="stable").reset_index(drop=True)


def numerai_training_frame(dataset: pd.DataFrame, paths: list[Path], tournament: str, target_column: str,
                           feature_set: str) -> pd.DataFrame:
    """What the model trains on with Numerai's targets, by feature set: ``own`` (our features
    joined as-of, ``join_numerai_targets``), ``numerai`` (Numerai's rows and features,
    ``numerai_feature_rows``) or ``both`` (the as-of join plus Numerai's features of each row)."""
    from numerflow.tasks.model.feature_sets import check_feature_set, numerai_feature_names

    check_feature_set(feature_set)
    names = [] if feature_set == "own" else numerai_feature_names(paths[0])
    if feature_set != "own" and not names:
        raise BadInputError(f"Numerai data file {paths[0]} has no feature_* columns; use training.feature_set = "
                            "\"own\"", tag="invalid_numerai_data")
    numerai = read_numerai_targets(paths, tournament, target_column, feature_columns=names)
    # What Numerai shows as CORR/FNC is against its ``target`` (kept as ``score_target``); ALPHA is
    # paid against ``target_chili_60`` (kept as ``alpha_target``): both scored next to the trained one.
    available = pq.read_schema(paths[0]).names if tournament == "signals" else []
    for column, name in (("target", "score_target"), (PAYOUT_TARGET, "alpha_target")):
        if column != target_column and column in available:
            extra = read_numerai_targets(paths, tournament, column).rename(columns={"target": name})
            numerai = numerai.merge(extra, on=["ticker", "date"], how="left", validate="one_to_one")
    calendar_days = tournament == "crypto"  # a token trades every day: its targets count calendar days
    if feature_set == "numerai":
        return numerai_feature_rows(numerai, target_column, calendar_days=calendar_days)
    return join_numerai_targets(dataset, numerai, target_column, numerai_features=names, calendar_days=calendar_days)


def numerai_live_path(store: Store, universe: Any) -> str | None:
    """The round's downloaded live.parquet (Numerai's live features), when the universe came from it."""
    dataset = getattr(universe, "dataset", None)
    if not dataset or universe.round_number is None or not dataset.endswith("live.parquet"):
        return None
    path = round_download_path(store, universe.tournament, dataset, universe.round_number)
    return str(path) if path.exists() else None


def historical_universe(paths: list[Path], tournament: str = "signals") -> pd.DataFrame:
    """Every ticker in Numerai's train/validation: ``ticker``, ``first_date``, ``last_date``, ``rows``."""
    ticker = tournament_spec(tournament).ticker_column
    data = pd.concat([read_columns(p, [ticker, "date"]) for p in paths], ignore_index=True)
    data["date"] = pd.to_datetime(data["date"])
    grouped = data.groupby(ticker, observed=True)["date"].agg(["min", "max", "size"])
    return (grouped.rename(columns={"min": "first_date", "max": "last_date", "size": "rows"})
            .rename_axis("ticker").reset_index().astype({"ticker": "string"}))
