"""The modelling dataset: ranked features joined with forward targets, one row per (ticker, date).

Written once per price snapshot to ``features/<snapshot>.parquet``; the snapshot id is a
hash of the price files' content and the target settings, so an unchanged panel is not rebuilt.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from numerflow.tasks.core.config import TargetSettings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, file_sha256, read_parquet, write_parquet
from numerflow.tasks.model.features import FEATURE_NAMES, bar_layout, compute_features
from numerflow.tasks.model.targets import compute_targets

#: Bump when feature or target code changes meaning, so old snapshots are not reused.
DATASET_VERSION = "1"


@dataclass(frozen=True)
class DatasetInfo:
    path: str
    snapshot: str
    rows: int
    tickers: int
    first_date: str
    last_date: str
    labelled_rows: int
    feature_names: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def price_snapshot_id(prices_dir: Path, target: TargetSettings) -> str:
    """Id of a price directory's content (each part's name and sha256) plus the target settings:
    the same bars give the same snapshot whatever the files' mtimes, so it is not rebuilt."""
    files = sorted(p for p in Path(prices_dir).glob("*.parquet") if not p.name.startswith((".", "_")))
    if not files:
        raise BadInputError(
            f"no price files in {prices_dir}; run the ingest stage first (numerflow run does)",
            tag="empty_prices",
        )
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}:{file_sha256(path)};".encode())
    digest.update(json.dumps(target.model_dump(), sort_keys=True).encode())
    digest.update(f"v{DATASET_VERSION}".encode())
    return digest.hexdigest()[:16]


def build_dataset_frame(prices: pd.DataFrame, target: TargetSettings) -> pd.DataFrame:
    """Pure: price panel → features + targets, sorted by (date, ticker). The feature layout
    validates the panel (tasks.schemas.validate_price_panel + its own duplicate check)."""
    layout = bar_layout(prices)  # validates the panel; computed once for features and targets
    features = compute_features(prices, layout=layout)
    targets = compute_targets(prices, horizon=target.horizon, lag=target.lag, bins=target.bins, layout=layout)
    dataset = features.merge(
        targets[["ticker", "date", "target", "target_raw", "target_end_date"]],
        on=["ticker", "date"],
        how="left",
        validate="one_to_one",
    )
    return dataset.sort_values(["date", "ticker"], kind="stable").reset_index(drop=True)


def build_dataset(store: Store, source: str, target: TargetSettings) -> DatasetInfo:
    """Read ``prices/<source>``, build the dataset unless this snapshot exists, return its info."""
    prices_dir = store.prices_dir(source)
    snapshot = price_snapshot_id(prices_dir, target)
    path = store.features_path(snapshot)
    if path.exists():
        dataset = read_parquet(path, columns=["ticker", "date", "target"])
    else:
        dataset = build_dataset_frame(read_parquet(prices_dir), target)
        write_parquet(path, dataset)
    return DatasetInfo(
        path=str(path),
        snapshot=snapshot,
        rows=int(len(dataset)),
        tickers=int(dataset["ticker"].nunique()),
        first_date=str(dataset["date"].min().date()),
        last_date=str(dataset["date"].max().date()),
        labelled_rows=int(dataset["target"].notna().sum()),
        feature_names=list(FEATURE_NAMES),
    )


def live_rows(dataset: pd.DataFrame, universe_ids: pd.Series, max_staleness_days: int = 5) -> pd.DataFrame:
    """Each live-universe ticker's most recent feature row, if it is at most
    ``max_staleness_days`` calendar days older than the panel's last date (markets on
    holiday keep their previous session's ranks). Returns rows with a ``live_date`` attribute."""
    live_date = dataset["date"].max()
    recent = dataset[
        dataset["ticker"].isin(universe_ids.astype(str))
        & (dataset["date"] >= live_date - pd.Timedelta(days=max_staleness_days))
    ]
    latest = recent.sort_values(["ticker", "date"]).drop_duplicates("ticker", keep="last")
    usable = latest[feature_columns(dataset)].notna().any(axis=1).to_numpy()
    latest = latest.loc[usable].reset_index(drop=True)
    latest.attrs["live_date"] = live_date
    return latest


def feature_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("feature_")]

