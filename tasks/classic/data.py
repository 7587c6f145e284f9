"""Numerai Classic's dataset: version discovery, downloads, feature metadata, memory-bounded reads.

Facts this module relies on (Numerai's example scripts and docs, numerapi 3.1.1):

- ``NumerAPI().list_datasets()`` (tournament 8) lists names ``vX.Y/<file>`` with no prefix, e.g.
  ``v5.2/train.parquet``, ``v5.2/validation.parquet``, ``v5.2/live.parquet``, ``v5.2/features.json``,
  ``v5.2/meta_model.parquet``, ``v5.2/live_example_preds.parquet``, ``v5.2/validation_example_preds.parquet``,
  ``v5.2/{train,validation,live}_benchmark_models.parquet``; several versions are listed at once.
- The parquet files are indexed by ``id`` (a string unique per stock and era), with ``era`` a
  zero-padded string ("0001"), ``data_type`` ("train", "validation", "live"), the ``feature_*``
  columns as int8 in 0..4 (5 equal bins) and the ``target*`` columns as floats in [0, 1]. The main
  ``target`` is never NaN; auxiliary targets can be.
- ``features.json`` is ``{"feature_sets": {"small": [...], "medium": [...], "all": [...], ...},
  "targets": [...]}``; ``targets`` lists ``target`` too.
- ``meta_model.parquet``: ``id`` index, ``era``, ``data_type``, ``numerai_meta_model`` (Numerai's
  meta-model on the validation eras).

Store layout (under ``Settings.data_dir``; see tasks/core/schemas.py)::

    numerai/classic/<version>/train.parquet                       once per version
    numerai/classic/<version>/validation.parquet                  again whenever Numerai's copy changed
    numerai/classic/<version>/features.json                       once per version
    numerai/classic/<version>/meta_model.parquet                  (when listed) likewise
    numerai/classic/<version>/validation_example_preds.parquet    (when listed) likewise
    numerai/classic/<version>/<file>.remote.json                  size, ETag, Last-Modified of the copy
    numerai/classic/<version>/round-<n>/live.parquet              once per round
    numerai/classic/<version>/round-<n>/live_example_preds.parquet once per round (when listed)

(``round-latest`` instead of ``round-<n>`` when no round is open: downloaded again every time.)

Reading (``read_classic_frame``) takes only the asked columns and fills a preallocated int8
matrix a slice of columns and a row group at a time, so the full training set with the medium feature set costs about
rows × features bytes (2.7M × 780 ≈ 2 GiB), never a float64 copy.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from numerflow.tasks.core.errors import BadInputError, TransientError
from numerflow.tasks.core.store import Store, quarantine, write_parquet
from numerflow.tasks.numerai.client import NumeraiClient, numerai_dir, pick_dataset_version

log = logging.getLogger(__name__)

#: Numerai's value for a feature with no data in an era (the middle bin); nulls become it.
MISSING_FEATURE_VALUE = 2
#: Feature columns decoded at a time (per row group) when filling the feature matrix. pyarrow's
#: Parquet reader holds about 1 MB of buffers per column being read, whatever the row count: all
#: 780 medium features at once cost ~0.9 GB on top of the matrix, 64 at a time ~0.1 GB.
COLUMNS_PER_READ = 64


#: A version is usable when it lists all of these.
REQUIRED_FILES = ("train.parquet", "validation.parquet", "live.parquet", "features.json")
#: Downloaded once per data version (when listed; the first two of REQUIRED_FILES always are).
VERSION_FILES = ("train.parquet", "validation.parquet", "features.json", "meta_model.parquet",
                 "validation_example_preds.parquet")
#: Downloaded once per round.
ROUND_FILES = ("live.parquet", "live_example_preds.parquet")
#: Version files Numerai appends eras to within a version: checked against Numerai's copy (size,
#: ETag, Last-Modified) at every fetch and downloaded again when it changed.
GROWING_FILES = ("validation.parquet", "meta_model.parquet", "validation_example_preds.parquet")


@dataclass(frozen=True)
class ClassicFiles:
    """The local Classic files of one data version (and this round's live file)."""

    version: str  # e.g. "v5.0", discovered via list_datasets, never hard-coded
    train: Path
    validation: Path
    live: Path  # this round's live file
    features_json: Path
    meta_model: Path | None  # Numerai's meta-model predictions on validation, when published
    round_number: int | None
    # Numerai's example model's predictions (``id`` index, ``prediction``), when published.
    validation_example_preds: Path | None = None
    live_example_preds: Path | None = None
    validation_last_era: str | None = None  # the newest era of validation.parquet as used this round


@dataclass(frozen=True)
class FeatureMetadata:
    """``features.json``: named feature sets and the target columns."""

    feature_sets: dict[str, list[str]]  # "small", "medium", "all", ...
    targets: list[str]

    def feature_set(self, name: str) -> list[str]:
        """The features of set ``name``; an unknown name is an error listing the known ones."""
        try:
            return list(self.feature_sets[name])
        except KeyError:
            raise BadInputError(f"features.json has no feature set {name!r}; it has {sorted(self.feature_sets)}",
                                tag="unknown_feature_set") from None


def load_feature_metadata(features_json: Path) -> FeatureMetadata:
    """Parse ``features.json``; a file of another shape is a clear error naming it."""
    path = Path(features_json)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"{path} does not exist; download the Classic data first",
                            tag="invalid_classic_data") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadInputError(f"{path} is not valid JSON; delete it so it is downloaded again",
                            tag="invalid_classic_data") from None
    sets = raw.get("feature_sets") if isinstance(raw, dict) else None
    targets = raw.get("targets") if isinstance(raw, dict) else None
    if (not isinstance(sets, dict) or not sets
            or not all(isinstance(v, list) and all(isinstance(f, str) for f in v) for v in sets.values())):
        raise BadInputError(f"{path} has no \"feature_sets\" mapping of names to feature lists; "
                            "it is not a Numerai Classic features.json", tag="invalid_classic_data")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise BadInputError(f"{path} has no \"targets\" list; it is not a Numerai Classic features.json",
                            tag="invalid_classic_data")
    return FeatureMetadata({str(k): list(v) for k, v in sets.items()}, list(targets))


def read_classic_frame(path: Path, features: list[str], targets: list[str], *,
                       extra_columns: Sequence[str] = ()) -> pd.DataFrame:
    """index ``id`` (str); columns ``era`` (str), the features (int8), the targets (float32, NaN kept),
    then ``extra_columns`` (e.g. ``data_type``) as they are.

    Reads only those columns (pyarrow), never the whole file into float64: the features fill one
    preallocated int8 matrix, ``COLUMNS_PER_READ`` columns of one row group at a time (nulls become
    2, Numerai's "no data" bin), so the peak is the matrix plus one such slice. A missing column, a non-integer feature or a value outside 0..4
    is a clear error naming the file.
    """
    path = Path(path)
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise BadInputError(f"{path} is not a readable Parquet file ({type(exc).__name__}); delete it so it is "
                            "downloaded again", tag="invalid_classic_data") from None
    schema = parquet.schema_arrow
    names = set(schema.names)
    wanted = ["id", "era", *features, *targets, *extra_columns]
    missing = [c for c in wanted if c not in names]
    if missing:
        raise BadInputError(f"{path} lacks the columns {missing[:10]}{' …' if len(missing) > 10 else ''} "
                            f"({len(missing)} missing); is it a Classic file of the same data version as "
                            "features.json?", tag="invalid_classic_data")
    if len(set(wanted)) != len(wanted):
        raise BadInputError(f"columns asked twice when reading {path}", tag="invalid_classic_data")
    not_int = [f for f in features if not pa.types.is_integer(schema.field(f).type)]
    if not_int:
        raise BadInputError(f"{path}: features {not_int[:5]} are {schema.field(not_int[0]).type}, not int8 0..4; "
                            "use a current (v5.x) Classic data version", tag="invalid_classic_data")

    small = parquet.read(columns=["id", "era", *targets, *extra_columns])
    rows = small.num_rows
    matrix = np.empty((rows, len(features)), dtype=np.int8, order="F")  # one contiguous column per feature
    start = 0
    for group in range(parquet.num_row_groups):
        stop = start + parquet.metadata.row_group(group).num_rows
        for first in range(0, len(features), COLUMNS_PER_READ):
            chunk = features[first:first + COLUMNS_PER_READ]
            table = parquet.read_row_group(group, columns=chunk)
            for j, name in enumerate(chunk):
                column = table.column(j)
                if column.null_count:
                    column = pc.fill_null(column, MISSING_FEATURE_VALUE)
                values = column.to_numpy()
                if values.size and (values.min() < 0 or values.max() > 4):
                    raise BadInputError(f"{path}: feature {name} has values outside 0..4 "
                                        f"({int(values.min())}..{int(values.max())})", tag="invalid_classic_data")
                matrix[start:stop, first + j] = values
            del table
        start = stop
    if start != rows:
        raise BadInputError(f"{path}: {start} feature rows but {rows} ids; the file is damaged",
                            tag="invalid_classic_data")

    index = pd.Index(small.column("id").to_pandas().astype(str).to_numpy(dtype=object), name="id")
    era_column = small.column("era")
    era = era_column.to_pandas()
    if pa.types.is_integer(era_column.type):  # an era number: Numerai's zero-padded spelling
        era = era.astype(str).str.zfill(4)
    frame = pd.DataFrame(matrix, index=index, columns=list(features), copy=False)
    frame.insert(0, "era", era.to_numpy(dtype=object))
    for name in targets:
        frame[name] = small.column(name).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    for name in extra_columns:
        frame[name] = small.column(name).to_pandas().to_numpy()
    return frame


# --------------------------------------------------------------------------- downloads


def classic_version_dir(store: Store, version: str) -> Path:
    """``numerai/classic/<version>/``: the files downloaded once per data version."""
    return numerai_dir(store, "classic") / version


def classic_round_dir(store: Store, version: str, round_number: int | None) -> Path:
    """``numerai/classic/<version>/round-<n>/``: the files downloaded once per round
    (``round-latest`` when no round number is known: re-downloaded every time)."""
    return classic_version_dir(store, version) / (f"round-{round_number}" if round_number is not None
                                                  else "round-latest")


def damage_of(path: Path) -> str | None:
    """Why a downloaded Numerai file cannot be used (None when it is intact): a Parquet file
    must have a readable footer and rows, ``features.json`` the features.json shape. Reads only
    the footer or the JSON, never the data."""
    try:
        if path.suffix == ".json":
            load_feature_metadata(path)
            return None
        metadata = pq.read_metadata(path)
    except BadInputError as exc:
        return str(exc)
    except (OSError, pa.ArrowInvalid) as exc:
        return f"{path} is not a readable Parquet file ({type(exc).__name__}: {exc})"
    if metadata.num_rows == 0:
        return f"{path} holds no rows"
    return None


def fetch_intact(client: NumeraiClient, remote: str, dest: Path, round_number: int | None, *, reuse: bool) -> Path:
    """``dest``, downloaded unless ``reuse`` and already there intact; a damaged local copy is
    quarantined (kept for a post-mortem) and downloaded again; a damaged download is an error."""
    if dest.exists():
        damage = damage_of(dest)
        if damage is None and reuse:
            return dest
        if damage is not None:
            log.warning("%s; set aside as %s, downloading it again", damage, quarantine(dest, damage))
    client.download(remote, dest, round_number)
    damage = damage_of(dest)
    if damage is not None:
        moved = quarantine(dest, damage)
        raise TransientError(f"the download of {remote} is damaged ({damage}); set aside as {moved}. Retry; "
                             "if it persists, Numerai's file is damaged", tag="corrupt_download")
    log.info("downloaded %s → %s", remote, dest)
    return dest


def _newest_version(client: NumeraiClient, round_number: int | None) -> tuple[str, set[str], int | None]:
    """The newest complete Classic version, the file names it lists, and the round (``None``:
    the current one, if one is open)."""
    if client.spec.name != "classic":
        raise BadInputError(f"Classic data needs a Classic client, not {client.spec.name}", tag="wrong_tournament")
    if round_number is None:
        current = client.current_round()
        round_number = current.number if current is not None else None
    filenames = client.list_datasets()
    version = pick_dataset_version(filenames, "classic", REQUIRED_FILES, all_required=True)
    return version, {name.rpartition("/")[2] for name in filenames if name.startswith(f"{version}/")}, round_number


def fetch_classic_live(client: NumeraiClient, store: Store, round_number: int) -> tuple[str, Path]:
    """Only this round's ``live.parquet`` of the newest version (what a submission must cover),
    downloaded once per round: for a file submitted by hand, without the training data."""
    version, _, _ = _newest_version(client, round_number)
    return version, fetch_intact(client, f"{version}/live.parquet", classic_round_dir(store, version, round_number)
                           / "live.parquet", round_number, reuse=True)


def live_ids(live: Path) -> pd.Series:
    """The live file's ids, refused when there are none or one repeats."""
    ids = pq.read_table(live, columns=["id"]).column("id").to_pandas().astype(str)
    if ids.empty or ids.duplicated().any():
        raise BadInputError(f"{live} has {'no ids' if ids.empty else 'repeated ids'}; download it again",
                            tag="invalid_classic_data")
    return ids


def write_live_ids(store: Store, live: Path, label: str) -> tuple[Path, int]:
    """The live file's ids as the round's universe snapshot (column ``id``): what the shared
    submission checks hold a Classic file to, each id exactly once."""
    ids = live_ids(live)
    return write_parquet(store.universe_path("classic", label), pd.DataFrame({"id": ids})), int(len(ids))


def current_live_ids(client: NumeraiClient, store: Store) -> Path | None:
    """The open round's live ids as its universe snapshot, for a Classic file submitted by hand:
    kept when a round run (or an earlier submit) wrote them, else only ``live.parquet`` is
    downloaded. ``None`` when no round is open (the upload then refuses, naming the window)."""
    from numerflow.tasks.numerai.universe import universe_snapshot_path

    current = client.current_round()
    if current is None:
        return None
    path = universe_snapshot_path(store, "classic", current.number)
    if path.exists():
        return path
    _, live = fetch_classic_live(client, store, current.number)
    return write_live_ids(store, live, f"round-{current.number}")[0]


def fetch_classic_data(client: NumeraiClient, store: Store, round_number: int | None) -> ClassicFiles:
    """The newest Classic data version (the highest ``vX.Y`` that lists train, validation, live and
    features.json), downloaded into the store: train, validation, features.json, meta_model (and
    the example model's validation predictions) once per version, live.parquet (and the live
    example predictions) once per round. ``round_number`` None: the current round, if one is open.
    Files already there intact are not downloaded again; damaged ones are quarantined and
    downloaded again."""
    version, listed, round_number = _newest_version(client, round_number)
    got: dict[str, Path] = {}
    for name in VERSION_FILES:
        if name in listed:
            dest = classic_version_dir(store, version) / name
            if name in GROWING_FILES:
                got[name] = _fetch_if_changed(client, f"{version}/{name}", dest)
            else:
                got[name] = fetch_intact(client, f"{version}/{name}", dest, None, reuse=True)
    for name in ROUND_FILES:
        if name in listed:
            got[name] = fetch_intact(client, f"{version}/{name}",
                                     classic_round_dir(store, version, round_number) / name,
                               round_number, reuse=round_number is not None)
    last_era = last_era_of(got["validation.parquet"])
    log.info("Classic %s validation data runs to era %s", version, last_era)
    return ClassicFiles(version=version, train=got["train.parquet"], validation=got["validation.parquet"],
                        live=got["live.parquet"], features_json=got["features.json"],
                        meta_model=got.get("meta_model.parquet"), round_number=round_number,
                        validation_example_preds=got.get("validation_example_preds.parquet"),
                        live_example_preds=got.get("live_example_preds.parquet"), validation_last_era=last_era)


def _identity_path(dest: Path) -> Path:
    return dest.with_name(f"{dest.name}.remote.json")


def _fetch_if_changed(client: NumeraiClient, remote: str, dest: Path) -> Path:
    """A growing version file: Numerai's copy is asked for its size, ETag and Last-Modified; the
    local copy is reused only when it was downloaded from that same copy (a copy kept from before
    this check is judged by its size), else downloaded again. Never a stale copy silently."""
    from numerflow.tasks.core.store import read_json, write_json

    remote_now = client.remote_file_identity(remote)
    sidecar = _identity_path(dest)
    if dest.exists() and damage_of(dest) is None:
        kept = read_json(sidecar) if sidecar.exists() else {"size": dest.stat().st_size}
        same = all(kept.get(k) == remote_now.get(k) for k in ("size", "etag", "last_modified")
                   if kept.get(k) is not None and remote_now.get(k) is not None)
        if same and (kept.get("size") is None or kept.get("size") == remote_now.get("size")
                     or remote_now.get("size") is None):
            return dest
        log.warning("Numerai's %s changed within its version (%s → %s): downloading it again", remote,
                    kept.get("size"), remote_now.get("size"))
    path = fetch_intact(client, remote, dest, None, reuse=False)
    write_json(sidecar, remote_now)
    return path


def last_era_of(path: Path) -> str | None:
    """The newest era of a Classic file (its ``era`` column), or None when it has none."""
    try:
        eras = pq.read_table(path, columns=["era"]).column("era")
    except (KeyError, pa.ArrowInvalid):
        return None
    return None if len(eras) == 0 else str(pc.max(eras.cast(pa.string())).as_py())
