"""The live universe: which ids Numerai accepts this round, as a store snapshot.

Snapshots live at ``universe/<tournament>/<name>.parquet``: ``round-<N>`` for Numerai's live
universe of round N (``fetch_universe``), ``demo-<YYYY-MM-DD>`` for the demo market's
(``write_universe``). ``latest_universe_snapshot`` picks among them.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from numerflow.tasks.classic.data import fetch_intact
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.schemas import UNIVERSE_SCHEMA, ticker_country
from numerflow.tasks.core.store import Store, read_columns, read_parquet, write_parquet
from numerflow.tasks.numerai.client import (
    NumeraiClient,
    dataset_file,
    pick_dataset_version,
    round_download_path,
    tournament_spec,
)

log = logging.getLogger(__name__)


def normalise_universe(frame: pd.DataFrame, id_column: str = "numerai_ticker") -> pd.DataFrame:
    """Check and shape a universe table; errors name the problem and the fix."""
    if id_column not in frame.columns:
        raise BadInputError(
            f"universe has no '{id_column}' column (columns: {list(frame.columns)[:10]}); "
            "use Numerai's live universe file or a table with that column",
            tag="invalid_universe",
        )
    ids = frame[id_column].astype("string").str.strip()
    ids = ids[ids.notna() & (ids != "")]
    if ids.empty:
        raise BadInputError("universe is empty: no ids to predict", tag="invalid_universe")
    out = pd.DataFrame({"numerai_ticker": ids.drop_duplicates().to_numpy()})
    figi = frame.loc[ids.drop_duplicates().index, "composite_figi"] if "composite_figi" in frame.columns else None
    out["composite_figi"] = figi.astype("string").to_numpy() if figi is not None else pd.NA
    out["country"] = ticker_country(out["numerai_ticker"]) if id_column == "numerai_ticker" else pd.NA
    return out.astype("string")


def write_universe(store: Store, tournament: str, snapshot: str, frame: pd.DataFrame) -> Path:
    return write_parquet(store.universe_path(tournament, snapshot), normalise_universe(frame), schema=UNIVERSE_SCHEMA)


def load_universe_ids(path: Path, tournament: str = "signals") -> pd.Series:
    """The snapshot's ids, from the tournament's id column (``TournamentSpec.ticker_column``:
    ``numerai_ticker`` for Signals and the demo, ``symbol`` for Crypto)."""
    column = tournament_spec(tournament).ticker_column
    names = pq.read_schema(path).names
    if column not in names:
        raise BadInputError(f"universe snapshot {path} has no {column!r} column, which a {tournament} universe "
                            f"needs (columns: {names}); run `numerflow universe --tournament {tournament}` again",
                            tag="invalid_universe")
    return read_parquet(path, columns=[column])[column]


def read_universe(path: Path, tournament: str = "signals") -> pd.DataFrame:
    """The live universe file, checked: the ticker column exists once, tickers are unique, not empty."""
    spec = tournament_spec(tournament)
    try:
        names = pq.read_schema(path).names
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user-facing problem
        raise BadInputError(f"universe file {path} is not readable Parquet ({type(exc).__name__}: {exc}); "
                            "delete it and download again", tag="invalid_universe") from None
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise BadInputError(f"universe file {path} has duplicate columns {duplicated}; "
                            "delete it and download again", tag="invalid_universe")
    column = spec.ticker_column
    if column not in names:
        raise BadInputError(f"universe file {path} has no {column!r} column (columns: {names}); "
                            f"a Numerai {spec.name} universe must have one", tag="invalid_universe")
    wanted = [c for c in (column, "composite_figi") if c in names]
    frame = read_columns(path, wanted)  # Crypto v2's live.parquet keeps ``symbol`` as its index
    frame = frame[frame[column].notna() & (frame[column].astype("string").str.strip() != "")]
    if frame.empty:
        raise BadInputError(f"universe file {path} lists no tickers; Numerai's live universe is never empty: "
                            "download it again", tag="empty_universe")
    dupes = frame[column][frame[column].duplicated()].astype(str).unique().tolist()
    if dupes:
        raise BadInputError(f"universe file {path} lists {len(dupes)} tickers twice, e.g. {dupes[:5]}",
                            tag="invalid_universe")
    return frame.reset_index(drop=True)


def universe_snapshot_frame(universe: pd.DataFrame, tournament: str = "signals") -> pd.DataFrame:
    """The store's universe table: signals → numerai_ticker, composite_figi, country; crypto → symbol."""
    spec = tournament_spec(tournament)
    if spec.name == "crypto":
        return pd.DataFrame({"symbol": universe["symbol"].astype("string").to_numpy()})
    tickers = universe["numerai_ticker"].astype("string")
    figi = universe["composite_figi"].astype("string") if "composite_figi" in universe else pd.Series(
        pd.NA, index=universe.index, dtype="string")
    return pd.DataFrame({"numerai_ticker": tickers.to_numpy(), "composite_figi": figi.to_numpy(),
                         "country": ticker_country(tickers).to_numpy()})


def universe_snapshot_path(store: Store, tournament: str, round_number: int) -> Path:
    return store.universe_path(tournament, f"round-{round_number}")


_ROUND_SNAPSHOT = re.compile(r"^round-(\d+)$")
_DEMO_SNAPSHOT = re.compile(r"^demo-(\d{4}-\d{2}-\d{2})$")


def latest_universe_snapshot(store: Store, tournament: str) -> Path | None:
    """The newest snapshot under ``universe/<tournament>/``, or None: the ``round-<N>`` with the
    highest N; only when there is none, the ``demo-<date>`` with the latest date. Files with other
    names are not snapshots and are ignored."""
    # Round snapshots first: they are Numerai's real universe, and a data directory that ran the
    # demo before going live must never validate or fetch against the synthetic one. Order by the
    # number or date in the name, never by mtime (copies and restores change it) or as text
    # ("round-999" > "round-1000").
    directory = store.universe_path(tournament, "_").parent
    rounds: list[tuple[int, Path]] = []
    demos: list[tuple[dt.date, Path]] = []
    for path in directory.glob("*.parquet"):
        if match := _ROUND_SNAPSHOT.match(path.stem):
            rounds.append((int(match[1]), path))
        elif match := _DEMO_SNAPSHOT.match(path.stem):
            try:
                demos.append((dt.date.fromisoformat(match[1]), path))
            except ValueError:  # e.g. demo-2026-13-45: not a date, not a snapshot
                continue
    snapshots = rounds or demos
    return max(snapshots)[1] if snapshots else None


@dataclass(frozen=True)
class UniverseSnapshot:
    tournament: str
    round_number: int
    dataset: str  # remote file name, e.g. signals/v2.1/live.parquet
    raw_path: Path
    snapshot_path: Path
    tickers: int


def fetch_universe(client: NumeraiClient, store: Store, round_number: int | None = None) -> UniverseSnapshot:
    """Discover the data version, download this round's live universe, write the snapshot."""
    tournament = client.spec.name
    if round_number is None:
        current = client.current_round()
        if current is None:
            raise BadInputError(f"no {tournament} round is open, so there is no live universe to fetch; "
                                "pass a round number or wait for the next round", tag="round_closed")
        round_number = current.number
    filenames = client.list_datasets()
    version = pick_dataset_version(filenames, tournament)
    remote = dataset_file(filenames, version, client.spec.live_files)
    # Once per round; a damaged copy is quarantined and downloaded again (Classic's ``fetch_intact``).
    raw_path = fetch_intact(client, remote, round_download_path(store, tournament, remote, round_number), None,
                            reuse=True)
    universe = read_universe(raw_path, tournament)
    snapshot = universe_snapshot_frame(universe, tournament)
    schema = UNIVERSE_SCHEMA if tournament == "signals" else None
    snapshot_path = write_parquet(universe_snapshot_path(store, tournament, round_number), snapshot, schema=schema)
    log.info("%s round %d: %d tickers from %s → %s", tournament, round_number, len(snapshot), remote, snapshot_path)
    return UniverseSnapshot(tournament, round_number, remote, raw_path, snapshot_path, len(snapshot))
