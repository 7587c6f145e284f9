"""The price store's files: base parts, delta parts merged on read, and compaction.

Layout of ``prices/<source>/`` (PRICE_SCHEMA rows; docs/architecture.md, "The price store")::

    part-00012.parquet            base part 12: its tickers' bars, sorted by (ticker, date)
    delta-00012-000003.parquet    delta 3 of part 12: only the bars an ingest added or changed,
                                  sorted by (ticker, date); the file's metadata says, per ticker,
                                  from which date on these rows replace the older ones
                                  (``replace_from``: a date, or null for the ticker's whole history)

Reading a part (``read_part``) applies its deltas in order on top of the base: for each ticker
of a delta, the rows of the base and earlier deltas dated on or after its ``replace_from`` are
dropped and the delta's rows take their place. So the last write wins per (ticker, date), and a
re-pulled ticker's history (``replace_from`` null) replaces all its older rows. The result is
what a rewrite of the whole part would have stored, in the same order.

Compaction (``compact_part``) writes the merged part as the new base (temp file + rename), then
deletes the deltas oldest first. A kill at any point leaves a readable, correct part: before the
rename the old base and all deltas are there; after it, the deltas still present are a suffix of
the sequence, and applying a suffix again to a base that already holds it changes nothing (each
delta replaces whole ticker tails, so applying it twice equals applying it once). Readers never
lock: a delta deleted under a reader makes it read the part again.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from numerflow.tasks.core.store import atomic_path

BASE_NAME = re.compile(r"part-(\d{5})\.parquet")
DELTA_NAME = re.compile(r"delta-(\d{5})-(\d{6})\.parquet")
#: Key of a delta's Parquet metadata: JSON ``{ticker: "YYYY-MM-DD" | null}``.
REPLACE_FROM_KEY = b"numerflow.replace_from"
#: Columns written with a dictionary (few distinct values); the float columns are not (trying
#: a dictionary on 500 k distinct prices costs as much as the rest of the write).
DICTIONARY_COLUMNS = ["ticker", "currency"]
#: Reading a part whose files change under the reader (a compaction) is retried this many times.
READ_ATTEMPTS = 5


@dataclass
class PartFiles:
    """One part's files: its base (None before the first write) and its deltas, oldest first."""

    number: int
    base: Path | None = None
    deltas: list[Path] = field(default_factory=list)

    def next_delta(self, prices_dir: Path) -> Path:
        last = int(DELTA_NAME.fullmatch(self.deltas[-1].name)[2]) if self.deltas else 0  # type: ignore[index]
        return Path(prices_dir) / f"delta-{self.number:05d}-{last + 1:06d}.parquet"


def base_path(prices_dir: Path, part: int) -> Path:
    return Path(prices_dir) / f"part-{part:05d}.parquet"


def is_store_file(name: str) -> bool:
    """A base or delta part's file name (anything else in the folder is not the ingest's)."""
    return bool(BASE_NAME.fullmatch(name) or DELTA_NAME.fullmatch(name))


def list_parts(prices_dir: Path) -> dict[int, PartFiles]:
    """Every part of the folder (part number → its files), in part order."""
    parts: dict[int, PartFiles] = {}
    prices_dir = Path(prices_dir)
    if not prices_dir.is_dir():
        return parts
    for path in sorted(prices_dir.glob("*.parquet")):
        if match := BASE_NAME.fullmatch(path.name):
            parts.setdefault(int(match[1]), PartFiles(int(match[1]))).base = path
        elif match := DELTA_NAME.fullmatch(path.name):
            parts.setdefault(int(match[1]), PartFiles(int(match[1]))).deltas.append(path)  # sorted: by sequence
    return dict(sorted(parts.items()))


def part_files(prices_dir: Path, part: int) -> PartFiles:
    return list_parts(prices_dir).get(part, PartFiles(part))


# ------------------------------------------------------------------------------------------- writing


def write_table(path: Path, table: pa.Table, metadata: Mapping[bytes, bytes] | None = None) -> Path:
    """Atomically write a part's table (zstd; dictionaries only for ticker and currency; one row group)."""
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", use_dictionary=DICTIONARY_COLUMNS,
                       row_group_size=max(table.num_rows, 1))
    return Path(path)


def write_delta(prices_dir: Path, part: int, table: pa.Table, replace_from: Mapping[str, date | None]) -> Path:
    """Append a delta to ``part``: ``table`` (sorted by ticker and date) replaces, per ticker of
    ``replace_from``, that ticker's rows from that date on (None: all its rows). A ticker in
    ``replace_from`` with no row in ``table`` loses those rows."""
    meta = {t: (d.isoformat() if d is not None else None) for t, d in sorted(replace_from.items())}
    path = part_files(prices_dir, part).next_delta(prices_dir)
    return write_table(path, table, {REPLACE_FROM_KEY: json.dumps(meta).encode()})


def replace_from_of(path: Path) -> dict[str, int | None]:
    """A delta's ``replace_from``, as days since 1970 (None: the whole history)."""
    raw = (pq.read_schema(path).metadata or {}).get(REPLACE_FROM_KEY, b"{}")
    return {t: (None if d is None else int(np.datetime64(d, "D").astype(np.int64))) for t, d in json.loads(raw).items()}


def compact_part(prices_dir: Path, part: int) -> bool:
    """Merge ``part``'s deltas into its base (see the module docstring for why a kill at any step
    is safe). Call it holding the store's ingest lock. Returns whether there was anything to merge."""
    files = part_files(prices_dir, part)
    if not files.deltas:
        return False
    merged = read_part(files)
    write_table(base_path(prices_dir, part), merged.replace_schema_metadata(None))
    for delta in files.deltas:  # oldest first: what a kill leaves is a suffix (see the docstring)
        delta.unlink(missing_ok=True)
    return True


def should_compact(files: PartFiles, after_deltas: int) -> bool:
    """A part is compacted when it has ``after_deltas`` deltas, or earlier by up to half as many
    depending on its number (so the parts of one first ingest do not all compact on the same
    day), or when its deltas hold as many rows as half its base (a re-pull of many tickers)."""
    if not files.deltas:
        return False
    threshold = after_deltas - files.number % max(1, after_deltas // 2)
    if len(files.deltas) >= max(1, threshold) or files.base is None:
        return True
    delta_rows = sum(pq.read_metadata(d).num_rows for d in files.deltas)
    return delta_rows * 2 >= pq.read_metadata(files.base).num_rows


# ------------------------------------------------------------------------------------------- reading


def _read_file(path: Path, columns: Sequence[str] | None, filter_expr: ds.Expression | None,
               dictionary: Sequence[str]) -> pa.Table:
    fmt = ds.ParquetFileFormat(dictionary_columns=list(dictionary)) if dictionary else "parquet"
    return ds.dataset(path, format=fmt).to_table(columns=list(columns) if columns else None, filter=filter_expr,
                                                 use_threads=False)


def read_part(files: PartFiles, columns: Sequence[str] | None = None, filter_expr: ds.Expression | None = None,
              categorical: Sequence[str] = ()) -> pa.Table:
    """One part, its deltas applied (module docstring), rows in (ticker, date) order: the table a
    rewrite of the whole part would hold. ``columns``/``filter_expr`` as ``store.read_parquet``;
    ``categorical`` columns come back as Arrow dictionaries."""
    if not files.deltas:
        if files.base is None:
            raise FileNotFoundError(f"part {files.number} has no files")
        return _read_file(files.base, columns, filter_expr, categorical)
    wanted = list(columns) if columns else None
    read_columns = None if wanted is None else list(dict.fromkeys([*wanted, "ticker", "date"]))
    dictionary = list(dict.fromkeys(["ticker", *categorical]))
    layers = ([files.base] if files.base is not None else []) + list(files.deltas)
    tables = [_read_file(p, read_columns, filter_expr, dictionary) for p in layers]
    cutoffs = [{} if p == files.base else replace_from_of(p) for p in layers]
    limit = np.iinfo(np.int32).max
    tickers = [table.column("ticker").combine_chunks() for table in tables]
    names = sorted({str(t) for column in tickers for t in column.dictionary.to_pylist()} | {t for c in cutoffs for t in c})
    rank = {t: i for i, t in enumerate(names)}
    # Per layer and ticker: the earliest replace_from of the layers after it (its rows from then on are superseded).
    later = np.full(len(names), limit, dtype=np.int64)
    bounds: list[np.ndarray] = [later] * len(layers)
    for i in range(len(layers) - 1, -1, -1):
        bounds[i] = later.copy()
        for name, since in cutoffs[i].items():
            later[rank[name]] = min(later[rank[name]], -(1 << 40) if since is None else since)
    kept: list[pa.Table] = []
    ticker_ranks: list[np.ndarray] = []
    layer_ids: list[np.ndarray] = []
    for i, (table, ticker) in enumerate(zip(tables, tickers, strict=True)):
        if not table.num_rows:
            continue
        dict_ranks = np.array([rank[str(t)] for t in ticker.dictionary.to_pylist()], dtype=np.int64)
        row_rank = dict_ranks[ticker.indices.to_numpy(zero_copy_only=False)]
        days = table.column("date").combine_chunks().cast(pa.int32()).to_numpy(zero_copy_only=False)
        keep = days < bounds[i][row_rank]
        if not keep.all():
            table, row_rank = table.filter(pa.array(keep)), row_rank[keep]
        kept.append(table)
        ticker_ranks.append(row_rank)
        layer_ids.append(np.full(len(row_rank), i, dtype=np.int64))
    if not kept:
        return _project(tables[0], wanted, categorical)
    kept = _unify(kept)
    # Surviving rows of a later layer come after (later dates) an earlier layer's rows of the same
    # ticker, so (ticker, layer) order is (ticker, date) order. Each layer is sorted by ticker: the
    # result is slices of the layers in that order (no copy), unless a layer is not (then a sort).
    if all((np.diff(r) >= 0).all() for r in ticker_ranks):
        bounds_by_layer = [np.searchsorted(r, np.arange(len(names) + 1)) for r in ticker_ranks]
        pieces: list[tuple[int, int, int]] = []  # (layer, start, end), neighbours of one layer joined
        for position in range(len(names)):
            for layer, edges in enumerate(bounds_by_layer):
                start, end = int(edges[position]), int(edges[position + 1])
                if end > start:
                    if pieces and pieces[-1][0] == layer and pieces[-1][2] == start:
                        pieces[-1] = (layer, pieces[-1][1], end)
                    else:
                        pieces.append((layer, start, end))
        merged = pa.concat_tables([kept[layer].slice(start, end - start) for layer, start, end in pieces])
    else:
        key = np.concatenate(ticker_ranks) * len(layers) + np.concatenate(layer_ids)
        merged = pa.concat_tables(kept).take(pa.array(np.argsort(key, kind="stable")))
    return _project(merged, wanted, categorical)


def _unify(tables: list[pa.Table]) -> list[pa.Table]:
    """Tables of one part with the same schema (metadata dropped: deltas carry their own)."""
    schema = tables[0].schema.remove_metadata()
    return [t.replace_schema_metadata(None).cast(schema) if t.schema.remove_metadata() != schema else
            t.replace_schema_metadata(None) for t in tables]


def _project(table: pa.Table, wanted: list[str] | None, categorical: Sequence[str]) -> pa.Table:
    """The requested columns; ticker back to plain strings unless asked for as categorical."""
    table = table.replace_schema_metadata(None)
    if wanted is not None:
        table = table.select(wanted)
    if "ticker" in table.column_names and "ticker" not in categorical and pa.types.is_dictionary(
            table.schema.field("ticker").type):
        table = table.set_column(table.column_names.index("ticker"), "ticker",
                                 pc.cast(table.column("ticker"), pa.string()))
    return table


def read_part_retrying(prices_dir: Path, part: int, columns: Sequence[str] | None = None,
                       filter_expr: ds.Expression | None = None, categorical: Sequence[str] = ()) -> pa.Table:
    """``read_part`` of the part as it is now; files deleted under the read (a compaction in
    another process) make it list and read the part again."""
    for attempt in range(READ_ATTEMPTS):
        files = part_files(prices_dir, part)
        try:
            return read_part(files, columns, filter_expr, categorical)
        except FileNotFoundError:
            if attempt == READ_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def read_store(prices_dir: Path, columns: Sequence[str] | None = None, filter_expr: ds.Expression | None = None,
               categorical: Sequence[str] = ()) -> pa.Table:
    """Every part of the folder, deltas applied, concatenated in part order (2 threads: pyarrow
    releases the GIL while it decodes)."""
    numbers = list(list_parts(prices_dir))
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        tables = list(pool.map(lambda n: read_part_retrying(prices_dir, n, columns, filter_expr, categorical), numbers))
    return pa.concat_tables(_unify(tables), promote_options="permissive")
