"""The live universe: which ids Numerai accepts this round, as a store snapshot."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.schemas import UNIVERSE_SCHEMA, ticker_country
from numerflow.tasks.core.store import Store, read_parquet, write_parquet


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


def load_universe_ids(path: Path) -> pd.Series:
    """The snapshot's ids: ``numerai_ticker`` (Signals, demo) or ``symbol`` (Crypto)."""
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    column = "numerai_ticker" if "numerai_ticker" in names else "symbol"
    if column not in names:
        raise BadInputError(f"universe snapshot {path} has neither numerai_ticker nor symbol (columns: {names}); "
                            "run `numerflow universe` again", tag="invalid_universe")
    return read_parquet(path, columns=[column])[column]
