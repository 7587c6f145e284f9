"""The data store: a directory of Parquet (and a few JSON/CSV) files.

Layout under ``Settings.data_dir`` (schemas in ``tasks/core/schemas.py`` and docs/architecture.md)::

    prices/<source>/part-<batch>.parquet     daily bars, one base file per ingest batch, plus
    prices/<source>/delta-<batch>-<n>.parquet  the bars later ingests added or changed (price_parts)
    universe/<tournament>/<snapshot>.parquet  the live universe at a round
    features/<snapshot>.parquet               per-date ranked features (+ targets)
    features/<snapshot>.history.parquet       per ticker, what appending the next bars needs (model/increment)
    models/<model_id>/model.txt, meta.json    LightGBM model registry
    predictions/<run_id>.parquet              validation / live predictions
    submissions/<tournament>/<round>/...      submission CSV + record of what was sent
    reports/<run_id>/report.json, report.md, era_scores.png

Every write goes to a temporary file in the destination directory and is renamed into
place (``os.replace`` is atomic on POSIX), so a crash never leaves a half-written file.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from numerflow.tasks.core.errors import BadInputError

_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def safe_id(value: str, what: str) -> str:
    """A user-supplied id that becomes a file or folder name: letters, digits, ``._-``, no ``..``,
    so it can never point outside its folder in the data dir."""
    if not _SAFE_ID.fullmatch(value) or ".." in value:
        raise BadInputError(f"{what} {value!r} is not a valid id: use letters, digits, '.', '_' or '-' "
                            "(at most 128, no '..', no '/'); it names a folder inside the data dir",
                            tag="invalid_id")
    return value


def new_run_id() -> str:
    """A run's id: UTC time (sortable) plus 6 random hex digits (unique across processes)."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


#: Paths the data store must never live under (kernel and device file systems).
_SYSTEM_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


def check_data_dir(path: Path) -> Path:
    """Refuse a data dir that cannot hold the store, before anything is written: a file, a
    path under a file, or a kernel/device file system. Creates nothing."""
    path = Path(path)
    resolved = path.resolve()
    fix = "set data_dir (--data-dir or NUMERFLOW_DATA_DIR) to a writable folder"
    system = next((root for root in _SYSTEM_ROOTS if resolved == root or root in resolved.parents), None)
    if system is not None:
        raise BadInputError(f"data dir {path} is under {system}, a system file system that cannot hold "
                            f"the store; {fix}", tag="invalid_data_dir")
    if resolved.exists() and not resolved.is_dir():
        raise BadInputError(f"data dir {path} is a file, not a folder; {fix}", tag="invalid_data_dir")
    ancestor = resolved
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise BadInputError(f"data dir {path} is under {ancestor}, which is a file; {fix}", tag="invalid_data_dir")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise BadInputError(f"data dir {path}: {ancestor} is not writable; {fix}", tag="invalid_data_dir")
    return path


#: Errors of a full file system (a full disk, a quota).
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success rename it over ``path``, else delete it.

    A full disk becomes a ``disk_full`` error naming the file; the temp file is removed, and
    the file that was there before is untouched."""
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
            raise BadInputError(f"no space left on the device writing {path} ({exc.strerror}); nothing was "
                                "half-written: free some space (df -h) and run again", tag="disk_full") from None
        raise


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an OS file lock on ``path`` (created if missing) across processes; a second holder
    waits. A process killed with -9 releases it, so there is never a stale lock to clean up."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


#: A temp file older than this belongs to a killed run (atomic writes take seconds).
STALE_TEMP_AGE = dt.timedelta(hours=1)


def remove_stale_temp_files(root: Path, older_than: dt.timedelta = STALE_TEMP_AGE) -> list[Path]:
    """Delete the ``.<name>.<random>.tmp`` files that killed runs left under ``root``; files
    younger than ``older_than`` may belong to a write in progress in another process."""
    root = Path(root)
    if not root.is_dir():
        return []
    cutoff = dt.datetime.now().timestamp() - older_than.total_seconds()
    removed = []
    for tmp in root.rglob(".*.tmp"):
        try:
            if tmp.is_file() and tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:  # another process finished or cleaned it meanwhile
            continue
    return removed


def quarantine(path: Path, reason: str) -> Path:
    """Move a damaged store file to ``_quarantine/`` beside it (never read again, kept for a
    post-mortem) with a note of why; returns the new path."""
    path = Path(path)
    folder = path.parent / "_quarantine"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = folder / f"{path.name}.{stamp}"
    os.replace(path, target)
    write_text(folder / f"{target.name}.why.txt", reason + "\n")
    return target


#: A DataFrame longer than this is converted to Arrow and written this many rows at a time, so a
#: 20-million-row dataset is never held twice (pandas + one whole Arrow copy) while it is written.
WRITE_SLICE_ROWS = 2_000_000


def write_parquet(path: Path, data: pd.DataFrame | pa.Table, schema: pa.Schema | None = None,
                  dictionary: list[str] | None = None) -> Path:
    """Atomically write a DataFrame or Arrow table as Parquet (zstd). ``dictionary``: the only columns
    dictionary-encoded (None: pyarrow's default, every column; a float column of distinct values only
    costs time: pyarrow tries, then falls back)."""
    if isinstance(data, pd.DataFrame) and len(data) > WRITE_SLICE_ROWS:
        return _write_frame_in_slices(path, data, schema, dictionary)
    table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, schema=schema, preserve_index=False)
    if schema is not None and isinstance(data, pa.Table):
        table = table.cast(schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", use_dictionary=True if dictionary is None else dictionary)
    return Path(path)


def _write_frame_in_slices(path: Path, data: pd.DataFrame, schema: pa.Schema | None,
                           dictionary: list[str] | None = None) -> Path:
    """``write_parquet`` of a long DataFrame: one Arrow slice of WRITE_SLICE_ROWS rows at a time."""
    # The whole frame's schema (a column empty in the first slice still gets its real type).
    schema = schema or pa.Schema.from_pandas(data, preserve_index=False)
    slices = (pa.Table.from_pandas(data.iloc[start:start + WRITE_SLICE_ROWS], schema=schema, preserve_index=False)
              for start in range(0, len(data), WRITE_SLICE_ROWS))
    return write_parquet_tables(path, schema, slices, dictionary)


def write_parquet_tables(path: Path, schema: pa.Schema, tables: Iterable[pa.Table],
                         dictionary: list[str] | None = None) -> Path:
    """Atomically write Arrow ``tables`` of ``schema``, one after another, as one Parquet file with
    ``write_parquet``'s settings; only the table being written is held (the iterable makes the others)."""
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd",
                                                    use_dictionary=True if dictionary is None else dictionary) as writer:
        for table in tables:
            writer.write_table(table)
    return Path(path)


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks."""
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_bytes(path: Path, payload: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
    return Path(path)


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_with(path: Path, writer: Callable[[Path], object]) -> Path:
    """Atomically create ``path`` with a writer that takes a file path (e.g. savefig, save_model)."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def read_json(path: Path) -> Any:
    """A JSON file of the store; a damaged one (truncated, garbage, not UTF-8) is an error that
    names the file, never an empty default."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise CorruptFileError(path, f"is not valid JSON{where}") from None


class CorruptFileError(BadInputError):
    """A store file that cannot be read: damaged outside numerflow (disk, an editor, a copy)."""

    tag = "corrupt_file"

    def __init__(self, path: Path, problem: str) -> None:
        self.path = Path(path)
        super().__init__(f"{path} {problem}: it was damaged outside numerflow; restore it from a backup or "
                         "move it away if numerflow can rebuild it (see docs/operations.md, 'A damaged store')")


def read_parquet(
    path: Path,
    columns: Sequence[str] | None = None,
    filter_expr: ds.Expression | None = None,
    *,
    categorical: Sequence[str] = (),
) -> pd.DataFrame:
    """Read a Parquet file or a directory of Parquet files (a dataset) into pandas.

    Dates come back as ``datetime64`` (not Python ``date`` objects) so they vectorise.
    Temporary files (``.*.tmp``) of an interrupted write are never read. String columns come
    back as pandas' string dtype, except those named in ``categorical``: read as Arrow
    dictionaries into ``pd.Categorical`` (a ticker column of 23M rows is ~45 MB of codes
    instead of ~300 MB of strings; the categories are in no particular order).

    A price store's folder with delta parts (``tasks.core.price_parts``) reads as its merged
    bars: the same rows, in the same order, as if every part had been rewritten whole.
    """
    if Path(path).is_dir() and any(Path(path).glob("delta-*.parquet")):
        # A price store with delta parts: each part is read with its deltas applied (tasks.core.price_parts).
        from numerflow.tasks.core.price_parts import read_store

        table = read_store(Path(path), columns, filter_expr, categorical)
    else:
        file_format = ds.ParquetFileFormat(dictionary_columns=list(categorical)) if categorical else "parquet"
        dataset = ds.dataset(path, format=file_format, exclude_invalid_files=False, ignore_prefixes=[".", "_"])
        table = dataset.to_table(columns=list(columns) if columns else None, filter=filter_expr)
    # self_destruct + split_blocks: Arrow buffers are freed column by column as pandas takes
    # them, so a big read does not hold two full copies at its peak.
    frame = table.to_pandas(date_as_object=False, types_mapper=_string_mapper, split_blocks=True, self_destruct=True)
    del table
    # Hand the Arrow buffers freed above back to the OS now, not whenever the allocator decides.
    pa.default_memory_pool().release_unused()
    return frame


def _string_mapper(arrow_type: pa.DataType) -> Any:
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype()
    return None


@dataclass(frozen=True)
class Store:
    """Paths of the data store. Functions above do the I/O; this object only names things."""

    root: Path

    def prices_dir(self, source: str) -> Path:
        return self.root / "prices" / source

    def universe_path(self, tournament: str, snapshot: str) -> Path:
        return self.root / "universe" / tournament / f"{snapshot}.parquet"

    def features_path(self, snapshot: str) -> Path:
        return self.root / "features" / f"{snapshot}.parquet"

    def models_dir(self) -> Path:
        return self.root / "models"

    def model_dir(self, model_id: str) -> Path:
        return self.models_dir() / model_id

    def predictions_path(self, run_id: str, kind: str) -> Path:
        return self.root / "predictions" / f"{run_id}-{kind}.parquet"

    def submission_dir(self, tournament: str, round_label: str) -> Path:
        return self.root / "submissions" / tournament / round_label

    def report_dir(self, run_id: str) -> Path:
        return self.root / "reports" / run_id


def read_columns(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """``read_parquet`` of ``columns`` as plain columns, in that order, even where one of them is the
    file's pandas index (Numerai Crypto v2.0 keeps ``symbol`` as the index of train/live.parquet;
    read as it is, it would come back as the frame's index, not as a column)."""
    frame = read_parquet(path, columns=columns)
    if any(name is not None for name in frame.index.names):
        frame = frame.reset_index()
    return frame[list(columns)]
