"""Numerai Crypto's own data, whatever its version says: both layouts read, columns found by inspection.

What Numerai publishes (checked December 2026):

- **v1 layout** (Numerai's Crypto data page, for ``crypto/v2.0`` as well): ``train_targets.parquet``
  (``symbol``, ``date``, ``target``: "the returns of the token after 30 days", ranked, gaussianised,
  binned in five) and ``live_universe.parquet`` (``symbol``: the round's token universe, no target).
- **v2 layout** (Numerai's example notebook ``crypto/example_model.ipynb`` reads these): ``crypto/v2.0/
  train.parquet`` and ``live.parquet``, ``symbol`` as the pandas **index**, a ``date`` column
  (``YYYY-MM-DD``, the day whose 23:59 UTC market close the features use; weekdays), 22 ``feature_*``
  columns binned 0, .25, .5, .75, 1 (``feature_bollinger_20d/60d``, ``feature_close_avg_*``,
  ``feature_close_ewa_*``, ``feature_market_cap_*``, ``feature_sharpe_ratio_*``,
  ``feature_volatility_*``, ``feature_volume_avg_*``, ``feature_volume_ewa_*`` …) and the targets
  ``target_binned_return_20`` and ``target_binned_return_60`` (the latter NaN on the latest dates,
  whose 60-day window has not resolved yet). ``live.parquet`` holds the same features for the round.

Calendar days: Numerai's scoring definitions call the Crypto target "20D2L" (20 days of returns, 2
days' lag), its data page defines a day by its 23:59 UTC market close and the target as the token's
return "after 30 days"; neither says "trading days", and a token trades every day. numerflow counts the
target's days as calendar days and purges on that span plus a margin
(``tasks.model.targets.numerai_target_end`` with ``calendar_days``); the data dates themselves are
weekdays (the day before each Tuesday-Saturday round).

Neither layout is assumed: ``inspect_crypto_file`` finds the id column (``symbol``, as a column or
as the index), the date column, the ``feature_*`` columns and every numeric ``target*`` column;
``crypto_target_columns`` maps the configured targets onto what the file holds, and a file with no
usable target is refused before training with a message naming the columns it has. The downloads
themselves follow the Signals rules (``tasks.numerai.data.fetch_training_data``: once per data
version, the live file once per round).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pyarrow.types as pat

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.model.targets import numerai_target_horizon

log = logging.getLogger(__name__)

#: The id column of every Crypto file (Numerai's submissions and universe use it too).
CRYPTO_ID = "symbol"
#: The target Numerai scores Crypto on (CORR, MMC: "20D2L"), preferred for the configured ``target``.
CRYPTO_SCORED_HORIZON = 20


@dataclass(frozen=True)
class CryptoFileSchema:
    """What one Crypto file holds, read from its Parquet schema (no rows read)."""

    path: Path
    columns: list[str]  # every column, the index included
    id_in_index: bool  # ``symbol`` is the pandas index (v2 layout)
    has_date: bool
    features: list[str]
    targets: list[str]  # numeric ``target*`` columns, in the file's order

    @property
    def layout(self) -> str:
        """``v2`` (features next to the targets) or ``v1`` (targets only)."""
        return "v2" if self.features else "v1"


def inspect_crypto_file(path: Path) -> CryptoFileSchema:
    """The columns of a Crypto train/live file by inspection; refuses a file without ``symbol``."""
    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user-facing problem
        raise BadInputError(f"Numerai Crypto file {path} is not readable Parquet ({type(exc).__name__}); "
                            "delete it so it is downloaded again", tag="invalid_numerai_data") from None
    names = list(schema.names)
    index = [c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)]
    if CRYPTO_ID not in names:
        raise BadInputError(f"Numerai Crypto file {path} has no {CRYPTO_ID!r} column or index; it has {names}: "
                            "the Crypto data layout may have changed", tag="invalid_numerai_data")
    targets = [n for n in names if n.startswith("target") and _numeric(schema.field(n).type)]
    return CryptoFileSchema(Path(path), names, CRYPTO_ID in index, "date" in names,
                            [n for n in names if n.startswith("feature_")], targets)


def _numeric(arrow_type: object) -> bool:
    return bool(pat.is_floating(arrow_type) or pat.is_integer(arrow_type) or pat.is_decimal(arrow_type))


def crypto_target_columns(schema: CryptoFileSchema, wanted: Sequence[str]) -> list[str]:
    """The file's target column for each configured one. A name the file has is used as it is; the
    default ``target`` means Numerai's scored target: ``target`` in the v1 layout, the 20-day one in
    v2 (``target_binned_return_20``), else the file's first. No usable target, or a named one the file
    lacks, is refused before training, naming the columns found."""
    if not schema.has_date:
        raise BadInputError(f"Numerai Crypto file {schema.path} has no 'date' column; it has {schema.columns}",
                            tag="invalid_numerai_data")
    if not schema.targets:
        raise BadInputError(
            f"Numerai Crypto file {schema.path} has no usable target column (a numeric target*); it has "
            f"{schema.columns}: numerflow cannot train on Numerai's targets from it (set "
            "numerai.use_numerai_targets = false to train on our own)", tag="invalid_numerai_data")
    chosen = []
    for column in wanted:
        if column in schema.targets:
            chosen.append(column)
        elif column == "target":
            scored = [t for t in schema.targets if _horizon(t) == CRYPTO_SCORED_HORIZON]
            chosen.append((scored or schema.targets)[0])
            log.info("Numerai Crypto %s layout: training on %s (the file's targets: %s)", schema.layout,
                     chosen[-1], schema.targets)
        else:
            raise BadInputError(f"Numerai Crypto file {schema.path} has no target {column!r}; its targets are "
                                f"{schema.targets} (columns: {schema.columns}): set numerai.target_column "
                                "(or numerai.ensemble_targets) to one of them", tag="invalid_numerai_data")
    return chosen


def _horizon(column: str) -> int | None:
    try:
        return numerai_target_horizon(column, crypto=True)
    except BadInputError:
        return None
