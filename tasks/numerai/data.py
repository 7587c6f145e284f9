"""Numerai's own training data: targets to train on.

``train.parquet`` / ``validation.parquet`` (found with ``list_datasets``, never a
hard-coded version) hold one row per (``numerai_ticker``, ``date``) with Numerai's targets
(``target`` = ``target_factor_feat_neutral_20``, ``target_raw_return_20``, …, GUIDE §1).
A target at data date D is the return over 20 trading days starting 2 days after D
("20D2L"), so it belongs to features known at D.

**Alignment (no look-ahead):** each Numerai row (ticker, D) takes our feature row of the
same ticker at the latest date d ≤ D, at most ``max_gap_days`` calendar days earlier
(``merge_asof`` backward, vectorised). d = D is the usual case; d < D happens when the
ticker's market was closed on D. A feature row after D is never used, so features never
see the target's window. ``target_end_date`` is set from D (D + lag + horizon business
days) so the training split purges rows whose Numerai target overlaps validation.

Numerai's ``feature_*`` columns are not used: live predictions need the same features on
the live date, which only our own price features provide (a model trained on columns the
live round cannot fill would be refused or, worse, fed NaNs).

The tickers in train/validation are also the historical universe (every ticker Numerai
ever had), for survivorship-free price history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from numerflow.tasks.core.config import TargetSettings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, read_parquet
from numerflow.tasks.numerai.client import (
    NumeraiClient,
    dataset_file,
    numerai_dir,
    pick_dataset_version,
    round_download_path,
    tournament_spec,
)

log = logging.getLogger(__name__)

TRAIN_FILES = {"signals": ("train.parquet",), "crypto": ("train_targets.parquet", "train.parquet")}
VALIDATION_FILES = {"signals": ("validation.parquet",), "crypto": ()}


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
    it grows as targets resolve) files."""
    tournament = client.spec.name
    filenames = client.list_datasets()
    version = pick_dataset_version(filenames, tournament, required=TRAIN_FILES[tournament])
    train_remote = dataset_file(filenames, version, TRAIN_FILES[tournament])
    train_path = numerai_dir(store, tournament) / version.rpartition("/")[2] / train_remote.rpartition("/")[2]
    if not train_path.exists():
        client.download(train_remote, train_path)
    validation_path = None
    if any(f"{version}/{name}" in filenames for name in VALIDATION_FILES[tournament]):
        if round_number is None:
            current = client.current_round()
            round_number = current.number if current is not None else 0
        remote = dataset_file(filenames, version, VALIDATION_FILES[tournament])
        validation_path = round_download_path(store, tournament, remote, round_number)
        if not validation_path.exists():
            client.download(remote, validation_path)
    return NumeraiTrainingFiles(tournament, version, train_path, validation_path)


def read_numerai_targets(
    paths: list[Path],
    tournament: str = "signals",
    target_column: str = "target",
) -> pd.DataFrame:
    """``ticker``, ``date`` (datetime64) and ``target`` (from ``target_column``).

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
        frame = read_parquet(path, columns=[ticker, "date", target_column])
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
    out = out[out["ticker"].notna()]
    out = out.drop_duplicates(["ticker", "date"], keep="last").reset_index(drop=True)
    if out.empty:
        raise BadInputError(f"Numerai data files {[str(p) for p in paths]} hold no rows", tag="invalid_numerai_data")
    return out


def join_numerai_targets(
    dataset: pd.DataFrame,
    numerai: pd.DataFrame,
    target: TargetSettings,
    max_gap_days: int = 5,
) -> pd.DataFrame:
    """Our features with Numerai's targets (see the module docstring for the alignment).

    Returns one row per Numerai (ticker, date) that found a feature row: our ``ticker``,
    ``date`` (the feature date d), ``feature_*`` (ours only), ``target`` (Numerai's),
    ``numerai_date`` (D), ``target_end_date``
    (D + lag + horizon business days), sorted by (date, ticker). Our own ``target`` and
    ``target_raw`` are dropped.
    """
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
    end = np.busday_offset(joined["numerai_date"].to_numpy().astype("datetime64[D]"),
                           target.lag + target.horizon, roll="forward")
    joined = joined.assign(date=joined["_feature_date"], target_end_date=end.astype("datetime64[ns]"))
    feature_cols = [c for c in ours.columns if c.startswith("feature_")]
    columns = ["ticker", "date", *feature_cols, "target", "numerai_date", "target_end_date"]
    result = joined[columns].sort_values(["date", "ticker"], kind="stable").reset_index(drop=True)
    if result.empty:
        raise BadInputError(
            "none of Numerai's (ticker, date) rows matched our features: check that the price source "
            "covers Numerai's tickers and dates (ticker names must be numerai_ticker)", tag="no_numerai_overlap")
    log.info("joined Numerai targets: %d of %d Numerai rows matched our features", len(result), len(numerai))
    return result


def historical_universe(paths: list[Path], tournament: str = "signals") -> pd.DataFrame:
    """Every ticker in Numerai's train/validation: ``ticker``, ``first_date``, ``last_date``, ``rows``."""
    ticker = tournament_spec(tournament).ticker_column
    data = pd.concat([read_parquet(p, columns=[ticker, "date"]) for p in paths], ignore_index=True)
    data["date"] = pd.to_datetime(data["date"])
    grouped = data.groupby(ticker, observed=True)["date"].agg(["min", "max", "size"])
    return (grouped.rename(columns={"min": "first_date", "max": "last_date", "size": "rows"})
            .rename_axis("ticker").reset_index().astype({"ticker": "string"}))
