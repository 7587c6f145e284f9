"""The modelling dataset: ranked features joined with forward targets, one row per (ticker, date).

Written once per price snapshot to ``features/<snapshot>.parquet``; the snapshot id is a
hash of the price files' content and the target settings, so an unchanged panel is not rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from numerflow.tasks.core.config import FeaturesSettings, TargetSettings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.schemas import as_strings
from numerflow.tasks.core.store import (
    Store,
    file_sha256,
    read_parquet,
    write_json,
    write_parquet,
)
from numerflow.tasks.model import increment
from numerflow.tasks.model.features import EMA_STATE_COLUMNS, FEATURE_NAMES, BarLayout, bar_layout, compute_features
from numerflow.tasks.model.targets import check_target_options, target_columns

log = logging.getLogger(__name__)

#: Bump when feature or target code changes meaning, so old snapshots are not reused.
DATASET_VERSION = "2"
#: The price columns the built-in features and targets read (``validate_price_panel``'s).
PANEL_COLUMNS = ["ticker", "date", "close", "adj_close", "volume"]


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
    #: How this run got it: "appended to <snapshot> …", "built whole: <why>" or "reused" (tasks.model.increment).
    built: str = ""

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


def build_dataset_frame(prices: pd.DataFrame, target: TargetSettings, sources: list | None = None,
                        feature_settings: FeaturesSettings | None = None, *, calendar_days: bool = False,
                        layout: BarLayout | None = None, ema_states: np.ndarray | None = None) -> pd.DataFrame:
    """Pure: price panel → features + targets, sorted by (date, ticker). The feature layout
    validates the panel (tasks.core.schemas.validate_price_panel + its own duplicate check).
    ``sources`` (tasks.model.plugins.LoadedSource) are joined point-in-time and ranked per date;
    ``feature_settings.use`` without ``own`` drops the built-in price features. ``calendar_days``
    (Crypto): windows and targets count calendar days (``tasks.crypto.calendar``). ``layout``: the
    panel's ``bar_layout`` if the caller has it; ``ema_states``: ``compute_features``'."""
    check_target_options(target.horizon, target.lag, target.bins)  # bad settings fail before the work
    if calendar_days:
        from numerflow.tasks.crypto.calendar import on_daily_calendar

        prices = on_daily_calendar(prices)
    layout = layout if layout is not None else bar_layout(prices)  # validates the panel; computed once for features and targets
    # Targets first: their panel-sized temporaries are gone before the feature block is allocated.
    targets = target_columns(prices, target.horizon, target.lag, target.bins, layout)
    dataset = compute_features(prices, layout=layout, ema_states=ema_states)
    if isinstance(dataset["ticker"].dtype, pd.CategoricalDtype):  # read as categories: stored as strings
        dataset["ticker"] = as_strings(dataset["ticker"])
    # One layout, so features and targets have the same rows in the same (date, ticker) order: the
    # target columns are added, not joined (a join and a sort would each copy the whole panel).
    for column in ("target", "target_raw", "target_end_date"):
        dataset[column] = np.asarray(targets.pop(column))
    if sources or feature_settings is not None:
        from numerflow.tasks.model.plugins import add_source_features, selected_sources

        chosen = feature_settings or FeaturesSettings()
        dataset = add_source_features(dataset, sources or [], chosen.bar_close, chosen.bar_timezone, layout=layout)
        if not selected_sources(chosen)[0]:
            dataset = dataset.drop(columns=FEATURE_NAMES)
    if calendar_days:  # the days the calendar carried are not bars: no training or live row of their own
        from numerflow.tasks.crypto.calendar import CARRIED

        dataset = dataset.loc[~prices[CARRIED].to_numpy(dtype=bool)[layout.rows]].reset_index(drop=True)
    return dataset


def build_dataset(store: Store, source: str, target: TargetSettings,
                  features: FeaturesSettings | None = None, *, calendar_days: bool = False) -> DatasetInfo:
    """Read ``prices/<source>``, build the dataset unless this snapshot exists, return its info.
    With feature sources (``features``), the snapshot id includes their content and settings, and
    ``features/<snapshot>.coverage.json`` gets each feature's mean and live-date coverage (and which are left
    out), ``features/<snapshot>.coverage.parquet`` its coverage per date (tasks.model.plugins).
    ``calendar_days``: Crypto's calendar (``build_dataset_frame``), part of the snapshot id."""
    from numerflow.tasks.model import plugins

    features = features or FeaturesSettings()
    prices_dir = store.prices_dir(source)
    snapshot = price_snapshot_id(prices_dir, target)
    extra = plugins.sources_fingerprint(features, store.root, source)
    if extra is not None:
        snapshot = hashlib.sha256(f"{snapshot}:{extra}".encode()).hexdigest()[:16]
    if calendar_days:
        snapshot = hashlib.sha256(f"{snapshot}:calendar-days".encode()).hexdigest()[:16]
    path = store.features_path(snapshot)
    appendable = extra is None and not calendar_days  # built-in features only (tasks.model.increment)
    built = "reused: this price snapshot's dataset exists"
    if not path.exists():
        # The bar columns the features and targets read, tickers as categories (a feature source gets
        # every column as stored): the price panel is the stage's largest input.
        prices = (read_parquet(prices_dir) if extra is not None
                  else read_parquet(prices_dir, columns=PANEL_COLUMNS, categorical=["ticker"]))
        panel_last = _last_date(prices)  # None: no dates, which the whole build reports
        key = increment.settings_key(target, DATASET_VERSION)
        # Once per panel: the append's check of the earlier rows and the whole build's history both need them.
        hashes = increment.row_hashes(prices) if appendable and panel_last is not None else None
        if not appendable:
            built = "built whole: datasets with feature sources or Crypto's calendar are not appended"
        elif panel_last is None or hashes is None:
            appendable, built = False, "built whole"
        else:
            built = _append_to_previous(store, source, target, prices, hashes, path, key, panel_last)
        if not built.startswith("appended"):
            loaded = plugins.load_sources(features, prices, store.root, source)  # bad sources fail before any work
            # The history file's rows (tasks.model.increment) before the features, while less is held.
            layout = bar_layout(prices) if appendable else None
            history = (increment.dataset_history(prices, layout, target, hashes)
                       if layout is not None and hashes is not None else None)
            del hashes
            ema_states = None if layout is None else np.full((layout.n_tickers, len(EMA_STATE_COLUMNS)), np.nan)
            dataset = build_dataset_frame(prices, target, loaded, features if extra is not None else None,
                                          calendar_days=calendar_days, layout=layout, ema_states=ema_states)
            if history is not None and ema_states is not None:
                increment.set_ema_states(history, ema_states)
            names = [n for s in loaded for n in s.feature_names]
            del prices, loaded, layout  # not held while the dataset is written (Arrow's copy of it is as big)
            if extra is not None:
                per_date = plugins.coverage(dataset, feature_columns(dataset))
                write_parquet(path.with_suffix(".coverage.parquet"), per_date.reset_index())
                report = plugins.coverage_report(per_date, names, features.min_live_coverage)
                if report["excluded"]:  # reported in the coverage file and left out of the model
                    plugins.log.warning("features left out (live coverage below %.0f%%): %s",
                                        100 * features.min_live_coverage, report["excluded"])
                    dataset = dataset.drop(columns=report["excluded"])
                write_json(path.with_suffix(".coverage.json"), report)
            write_parquet(path, dataset, dictionary=["ticker"])  # float columns: no dictionary attempt
            del dataset
            if history is not None and panel_last is not None:  # after the dataset: a history file describes a whole dataset
                increment.write_history(path, history, source, key, panel_last)
    # The figures from the ids and targets only; the feature names (which the sources decide) from the schema.
    dataset = read_parquet(path, columns=["ticker", "date", "target"], categorical=["ticker"])
    return DatasetInfo(
        path=str(path),
        snapshot=snapshot,
        rows=int(len(dataset)),
        tickers=int(dataset["ticker"].nunique()),
        first_date=str(dataset["date"].min().date()),
        last_date=str(dataset["date"].max().date()),
        labelled_rows=int(dataset["target"].notna().sum()),
        feature_names=feature_columns_of(path),
        built=built,
    )


def _last_date(prices: pd.DataFrame) -> date | None:
    """The price panel's last date, None if it has none (a bad panel: the whole build reports it)."""
    last = pd.to_datetime(prices["date"], errors="coerce").max()
    return None if pd.isna(last) else last.date()


def _append_to_previous(store: Store, source: str, target: TargetSettings, prices: pd.DataFrame,
                        hashes: np.ndarray, path: Path, key: str, panel_last: date) -> str:
    """Write ``path`` as an earlier dataset of ``source`` plus the new bars' rows if the bars only grew
    since (``tasks.model.increment``): "appended …"; else nothing is written: "built whole: <why>"."""
    previous = increment.find_previous(store, source, key, panel_last)
    try:
        outcome = (increment.extend(prices, previous, target, hashes) if previous is not None
                   else f"no earlier dataset of {source!r} with these settings")
        if not isinstance(outcome, str):
            increment.write_extended(path, outcome)
    except (OSError, pa.ArrowException) as exc:  # a damaged earlier dataset: this one is built whole
        assert previous is not None
        outcome = f"the earlier dataset {previous.path.name} cannot be read ({type(exc).__name__}: {exc})"
    if isinstance(outcome, str):
        log.info("dataset %s built whole: %s", path.name, outcome)
        return f"built whole: {outcome}"
    assert previous is not None
    increment.write_history(path, outcome.history, source, key, panel_last)
    how = (f"appended {outcome.new_rows:,} new rows to {previous.path.stem}, the targets of its last "
           f"{outcome.recomputed_rows:,} rows recomputed")
    log.info("dataset %s: %s", path.name, how)
    return how


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


def feature_columns_of(path: Path) -> list[str]:
    """The feature columns of a dataset file, from its schema (nothing else is read)."""
    import pyarrow.parquet as pq

    return [c for c in pq.read_schema(path).names if c.startswith("feature_")]

