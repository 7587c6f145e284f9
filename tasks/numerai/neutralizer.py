"""Numerai's neutralizer and sample-weight files, read a few dates at a time, and ALPHA from them.

Signals v2.1 publishes ``validation_neutralizer.parquet`` (~200 neutralizer columns, ~4 GB:
never loaded whole) and ``validation_sample_weights.parquet`` (and ``train_*`` ones), one row
per (``numerai_ticker``, ``date``). There is no live neutralizer. Columns are read from the
file's schema: the id and ``date`` columns, then every other numeric column is a neutralizer
(the weights file: its one numeric column).

Reads go through pyarrow's dataset scanner with a ``date`` filter, so only the row groups whose
statistics can hold the wanted dates are decoded, and batches outside them are dropped as they
stream: memory follows the dates asked for (``max_rows`` rows at a time), not the file.
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.row_keys import match_ticker_dates
from numerflow.tasks.core.store import Store
from numerflow.tasks.model.alpha import alpha_by_date_of_columns
from numerflow.tasks.numerai.client import NumeraiClient, dataset_file, pick_dataset_version, round_download_path

ID_COLUMNS = ("numerai_ticker", "composite_figi")
NEUTRALIZER_FILES = {"validation": "validation_neutralizer.parquet", "train": "train_neutralizer.parquet"}
WEIGHT_FILES = {"validation": "validation_sample_weights.parquet", "train": "train_sample_weights.parquet"}
#: Rows decoded at once when scoring from the files (~200 float32 columns: ~0.8 KB a row).
DEFAULT_MAX_ROWS = 200_000


@dataclass(frozen=True)
class NeutralizerFiles:
    version: str
    kind: str  # "validation" or "train"
    neutralizer_path: Path
    weights_path: Path


def fetch_neutralizer_files(client: NumeraiClient, store: Store, round_number: int,
                            kind: str = "validation") -> NeutralizerFiles | None:
    """Download the neutralizer and sample-weight files of ``kind`` from the newest version that
    lists both (None when none does); once per round, like the validation data."""
    filenames = client.list_datasets()
    wanted = (NEUTRALIZER_FILES[kind], WEIGHT_FILES[kind])
    try:
        version = pick_dataset_version(filenames, client.spec.name, required=(wanted[0],))
    except BadInputError:
        return None
    if f"{version}/{wanted[1]}" not in filenames:
        return None
    paths = []
    for name in wanted:
        remote = dataset_file(filenames, version, (name,))
        path = round_download_path(store, client.spec.name, remote, round_number)
        if not path.exists():
            client.download(remote, path)
        paths.append(path)
    return NeutralizerFiles(version, kind, paths[0], paths[1])


@dataclass(frozen=True)
class _Layout:
    id_column: str
    date_type: pa.DataType
    value_columns: list[str]


def _layout(path: Path, what: str) -> _Layout:
    schema = ds.dataset(path, format="parquet").schema
    id_column = next((c for c in ID_COLUMNS if c in schema.names), None)
    if id_column is None or "date" not in schema.names:
        raise BadInputError(f"Numerai {what} file {path} lacks an id column ({'/'.join(ID_COLUMNS)}) or 'date'; "
                            "delete it and download again", tag="invalid_numerai_data")
    values = [f.name for f in schema if f.name not in (*ID_COLUMNS, "date", "era")
              and (pa.types.is_floating(f.type) or pa.types.is_integer(f.type))]
    if not values:
        raise BadInputError(f"Numerai {what} file {path} has no numeric columns", tag="invalid_numerai_data")
    return _Layout(id_column, schema.field("date").type, values)


def neutralizer_columns(path: Path) -> list[str]:
    return _layout(Path(path), "neutralizer").value_columns


def _date_values(dates: Sequence[Any], date_type: pa.DataType) -> pa.Array:
    stamps = pd.to_datetime(pd.Series(list(dates)))
    if pa.types.is_string(date_type) or pa.types.is_large_string(date_type):
        return pa.array(stamps.dt.strftime("%Y-%m-%d").tolist(), type=date_type)
    if pa.types.is_date(date_type):
        return pa.array([d.date() for d in stamps], type=date_type)
    return pa.array(stamps.dt.tz_localize(None).to_numpy(), type=pa.timestamp("ns")).cast(date_type)


def read_dates(path: Path, dates: Sequence[Any], columns: Sequence[str] | None = None,
               what: str = "neutralizer") -> pd.DataFrame:
    """Rows of ``dates`` only: ``ticker`` (string), ``date`` (datetime64[ns]) and ``columns``
    (default every numeric column), as stored (float32 stays float32)."""
    layout = _layout(Path(path), what)
    wanted = list(columns) if columns is not None else layout.value_columns
    missing = [c for c in wanted if c not in layout.value_columns]
    if missing:
        raise BadInputError(f"Numerai {what} file {path} lacks columns {missing}", tag="invalid_numerai_data")
    value_set = _date_values(dates, layout.date_type)
    read = [layout.id_column, "date", *wanted]
    groups = _row_groups_of(Path(path), value_set)
    if groups is None:  # no usable statistics: the scanner filters every row group
        table = ds.dataset(path, format="parquet").to_table(columns=read,
                                                            filter=pc.is_in(ds.field("date"), value_set=value_set))
    else:
        table = pq.ParquetFile(path).read_row_groups(groups, columns=read)
        table = table.filter(pc.is_in(table.column("date"), value_set=value_set))
    frame = table.to_pandas(self_destruct=True, split_blocks=True)
    frame = frame.rename(columns={layout.id_column: "ticker"})
    frame["ticker"] = frame["ticker"].astype("string")
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    return frame


def _row_groups_of(path: Path, value_set: pa.Array) -> list[int] | None:
    """The row groups whose ``date`` statistics (min, max) can hold one of ``value_set``'s dates, or
    None when a row group has no statistics. pyarrow's scanner does not prune row groups on an
    ``is_in`` filter: it decodes every row group of the file on each read, so scoring a file read a
    few dates at a time cost (file size) x (reads); with this, each read decodes its own dates."""
    metadata = pq.ParquetFile(path).metadata
    column = metadata.schema.to_arrow_schema().get_field_index("date")
    wanted = sorted(v for v in value_set.to_pylist() if v is not None)
    if not wanted or column < 0:
        return None
    groups = []
    for index in range(metadata.num_row_groups):
        stats = metadata.row_group(index).column(column).statistics
        if stats is None or not stats.has_min_max:
            return None
        low, high = stats.min, stats.max
        try:
            first = bisect.bisect_left(wanted, low)
            if first < len(wanted) and wanted[first] <= high:  # a wanted date inside [low, high]
                groups.append(index)
        except TypeError:  # statistics of another type than the dates (e.g. raw integers)
            return None
    return groups


def file_dates(path: Path) -> pd.DatetimeIndex:
    """The distinct dates of a Numerai file (reads the ``date`` column only)."""
    column = ds.dataset(path, format="parquet").to_table(columns=["date"]).column("date")
    return pd.DatetimeIndex(pd.to_datetime(pc.unique(column).to_pandas())).sort_values()


def date_batches(dates: Sequence[Any], rows_per_date: int, max_rows: int) -> Iterator[list[Any]]:
    """Consecutive groups of dates whose rows (about ``rows_per_date`` each) fit ``max_rows``."""
    per_batch = max(1, max_rows // max(rows_per_date, 1))
    dates = list(dates)
    for start in range(0, len(dates), per_batch):
        yield dates[start:start + per_batch]


def alpha_from_files(scored: pd.DataFrame, neutralizer_path: Path, weights_path: Path, *,
                     max_rows: int = DEFAULT_MAX_ROWS, prediction_columns: Sequence[str] | None = None
                     ) -> pd.Series | pd.DataFrame:
    """Per-date ALPHA of ``scored`` (``ticker``, ``date``, ``prediction``, ``target``: Numerai's
    ids and data dates) against Numerai's neutralizers and sample weights.

    The files are read ``max_rows`` rows' worth of dates at a time; only the neutralizer rows of
    those dates are ever in memory. Rows without a neutralizer or weight row are not scored.
    ``prediction_columns``: score each of these columns instead (one pass over the files for all
    of them); the result is then a frame, one column each.
    """
    wanted = list(prediction_columns) if prediction_columns is not None else ["prediction"]
    dates_of_rows = pd.to_datetime(scored["date"]).astype("datetime64[ns]")
    positions = pd.Series(np.arange(len(scored))).groupby(dates_of_rows.to_numpy()).indices  # date → rows
    dates = sorted(positions)
    if not dates:
        return pd.Series(dtype="float64", name="alpha") if prediction_columns is None else pd.DataFrame(columns=wanted)
    columns = neutralizer_columns(neutralizer_path)
    weight_column = _layout(Path(weights_path), "sample weights").value_columns[0]
    rows_per_date = int(np.ceil(len(scored) / len(dates)))
    parts = []
    for batch in date_batches(dates, rows_per_date, max_rows):
        take = np.concatenate([positions[d] for d in batch])  # only this batch's rows are copied
        keys = pd.DataFrame({"ticker": scored["ticker"].iloc[take].reset_index(drop=True),
                             "date": dates_of_rows.to_numpy()[take]})
        neutral = read_dates(neutralizer_path, batch, columns)
        weights = read_dates(weights_path, batch, [weight_column], what="sample weights")
        in_neutral, at_neutral = match_ticker_dates(keys, neutral)
        in_weights, at_weights = match_ticker_dates(keys, weights)
        matched = in_neutral & in_weights  # scored rows need both
        if not matched.any():
            continue
        rows = take[matched]
        signals = pd.DataFrame({c: scored[c].iloc[rows].to_numpy(dtype="float64", na_value=np.nan) for c in wanted},
                               columns=wanted)
        parts.append(alpha_by_date_of_columns(signals, scored["target"].iloc[rows].to_numpy(dtype="float64",
                                                                                             na_value=np.nan),
                                              neutral[columns].to_numpy()[at_neutral[matched]],
                                              weights[weight_column].to_numpy()[at_weights[matched]],
                                              keys["date"].to_numpy()[matched]))
        del neutral
    if not parts:
        raise BadInputError("no scored row matched Numerai's neutralizer and sample-weight rows (ids and dates "
                            "must be numerai_ticker and Numerai's data dates)", tag="no_numerai_overlap")
    frame = pd.concat(parts).sort_index()
    return frame if prediction_columns is not None else frame["prediction"].rename("alpha")



def _scored_rows(predictions: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Validation rows keyed as Numerai's files are (``numerai_date`` when trained on Numerai's rows), with
    ``target`` = Numerai's payout target ``target_chili_60`` when present (``alpha_target``); and which."""
    if "numerai_date" in predictions.columns:
        predictions = predictions.assign(date=predictions["numerai_date"])
    if "alpha_target" in predictions.columns:
        return predictions.assign(target=predictions["alpha_target"]), "target_chili_60"
    return predictions, "the trained target"


def validation_alpha(predictions_path: Path, neutralizer_path: Path, weights_path: Path, *,
                     max_rows: int = DEFAULT_MAX_ROWS) -> pd.Series:
    """Per-date ALPHA of a model's validation predictions (``ticker``, ``date``, ``target``,
    ``prediction``, and ``numerai_date`` when it trained on Numerai's rows: the neutralizer's
    dates are Numerai's data dates) against Numerai's payout target ``target_chili_60`` when the
    file carries it (``alpha_target``), else against the target it trained on. The series' name
    attribute ``scored_on`` says which."""
    from numerflow.tasks.core.store import read_parquet

    predictions, scored_on = _scored_rows(read_parquet(Path(predictions_path)))
    alpha = alpha_from_files(predictions[["ticker", "date", "prediction", "target"]], neutralizer_path,
                             weights_path, max_rows=max_rows)
    assert isinstance(alpha, pd.Series)
    alpha.attrs["scored_on"] = scored_on
    return alpha


def validation_feature_alpha(predictions_path: Path, dataset_path: Path, feature_names: Sequence[str],
                             neutralizer_path: Path, weights_path: Path, *, max_rows: int = DEFAULT_MAX_ROWS,
                             with_prediction: bool = False) -> pd.DataFrame:
    """Each feature's own per-date ALPHA on the validation rows (the feature used as the prediction), scored
    like ``validation_alpha``: the features are read from the dataset for the validation dates only and
    matched on (ticker, date); one pass over the neutralizer file for all of them. Dates × features;
    ``with_prediction``: a first column ``prediction``, the model's own (``validation_alpha``'s scores,
    in the same pass), and the frame's attribute ``scored_on`` as ``validation_alpha``'s."""
    from numerflow.tasks.core.store import read_parquet

    predictions = read_parquet(Path(predictions_path))
    first = pd.Timestamp(pd.to_datetime(predictions["date"]).min())
    columns = ["ticker", "date", *feature_names]
    try:  # only the validation dates' rows
        features = read_parquet(Path(dataset_path), columns=columns, filter_expr=ds.field("date") >= first.to_pydatetime())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):  # a date column the filter cannot compare
        features = read_parquet(Path(dataset_path), columns=columns)
        features = features[pd.to_datetime(features["date"]) >= first]
    found, at = match_ticker_dates(predictions.assign(date=pd.to_datetime(predictions["date"])),
                                   features.assign(date=pd.to_datetime(features["date"])))

    def matched(name: str) -> np.ndarray:  # the feature's value on each prediction's row, NaN where it has none
        values = features[name].to_numpy(dtype=np.result_type(features[name].dtype, np.float32), na_value=np.nan)
        out = np.full(len(predictions), np.nan, dtype=values.dtype)  # float32 stays float32
        out[found] = values[at[found]]
        return out

    rows = predictions.assign(**{name: matched(name) for name in feature_names})
    scored, scored_on = _scored_rows(rows)
    wanted = ["prediction", *feature_names] if with_prediction else list(feature_names)
    frame = alpha_from_files(scored[["ticker", "date", "target", *wanted]], neutralizer_path, weights_path,
                             max_rows=max_rows, prediction_columns=wanted)
    assert isinstance(frame, pd.DataFrame)
    frame.attrs["scored_on"] = scored_on
    return frame


#: Rows per row group of the neutralizer files written here (whole dates when a part's dates have the
#: same tickers): ``read_dates`` decodes only the row groups holding the dates it reads, and a file of
#: one tiny row group per date is slow to write and to open (its metadata grows with the row groups).
ROW_GROUP_ROWS = 100_000


def write_neutralizer_files(folder: Path, neutral: pd.DataFrame, weights: pd.DataFrame) -> NeutralizerFiles:
    """Store neutralizer and sample-weight tables in Numerai's file layout (rows sorted by date)."""
    return write_neutralizer_parts(folder, [(neutral, weights)])


def write_neutralizer_parts(folder: Path, parts: Iterable[tuple[pd.DataFrame, pd.DataFrame]],
                            row_group_rows: int = ROW_GROUP_ROWS) -> NeutralizerFiles:
    """``write_neutralizer_files`` from (neutralizer, sample weights) tables a few dates at a time, each
    appended as it comes: the whole table is never in memory. A row group holds as many of a part's
    largest dates as fit ``row_group_rows`` (at least one)."""
    from numerflow.tasks.core.store import atomic_path

    names = (NEUTRALIZER_FILES["validation"], WEIGHT_FILES["validation"])
    paths = [Path(folder) / name for name in names]
    with contextlib.ExitStack() as stack:
        temps = [stack.enter_context(atomic_path(path)) for path in paths]
        writers: list[pq.ParquetWriter | None] = [None, None]
        for frames in parts:
            rows_per_date = max(1, int(frames[0].groupby("date").size().max()))
            group_rows = rows_per_date * max(1, row_group_rows // rows_per_date)
            for i, frame in enumerate(frames):
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if writers[i] is None:
                    writers[i] = stack.enter_context(pq.ParquetWriter(temps[i], table.schema, compression="zstd"))
                writer = writers[i]
                assert writer is not None
                writer.write_table(table.cast(writer.schema), row_group_size=group_rows)
        if writers[0] is None:
            raise BadInputError("no neutralizer rows to write", tag="invalid_dates")
    return NeutralizerFiles("demo", "validation", paths[0], paths[1])
