import os

import pandas as pd
import pytest

from numerflow.tasks.core.schemas import as_strings
from numerflow.tasks.core.store import (
    atomic_path,
    read_parquet,
    write_json,
    write_parquet,
    write_text,
)


def test_failed_write_leaves_neither_partial_file_nor_temp(tmp_path):
    target = tmp_path / "out" / "table.parquet"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half a file")
            raise RuntimeError("crash mid-write")
    assert not target.exists()
    assert os.listdir(target.parent) == []


def test_failed_overwrite_keeps_previous_version(tmp_path):
    target = tmp_path / "a.txt"
    write_text(target, "v1")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("v2-partial")
            raise RuntimeError
    assert target.read_text() == "v1"


def test_parquet_roundtrip_and_dataset_reads_ignore_temp_files(tmp_path):
    frame = pd.DataFrame({"ticker": ["A US", "B US"], "date": pd.to_datetime(["2024-01-02", "2024-01-03"]),
                          "close": [1.0, 2.0]})
    write_parquet(tmp_path / "prices" / "part-1.parquet", frame)
    # A crashed writer's leftover temp file must not be read as data.
    (tmp_path / "prices" / ".part-2.parquet.abc.tmp").write_bytes(b"garbage")
    back = read_parquet(tmp_path / "prices")
    assert back["close"].tolist() == [1.0, 2.0]
    assert pd.api.types.is_datetime64_any_dtype(back["date"])


def test_write_json_is_readable_json(tmp_path):
    path = write_json(tmp_path / "x.json", {"b": 1, "a": [1, 2]})
    assert path.read_text().startswith("{")
    import json

    assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1}


def test_a_long_frame_is_written_in_slices_and_reads_back_whole(tmp_path, monkeypatch):
    import numpy as np
    import pyarrow.parquet as pq

    from numerflow.tasks.core import store

    monkeypatch.setattr(store, "WRITE_SLICE_ROWS", 1000)
    frame = pd.DataFrame({"ticker": pd.array([f"T{i % 7}" for i in range(3500)], dtype="string"),
                          "x": np.arange(3500, dtype="float32"),
                          # empty in the first slice: still typed from the whole frame
                          "note": pd.array([None] * 1200 + ["a"] * 2300, dtype="string")})
    path = store.write_parquet(tmp_path / "long.parquet", frame)
    assert pq.ParquetFile(path).metadata.num_row_groups == 4
    pd.testing.assert_frame_equal(store.read_parquet(path), frame)
    assert not list(tmp_path.glob(".*.tmp"))


def test_as_strings_of_categories_equals_pandas_astype_with_missing_and_unused_categories() -> None:
    values = pd.Series(pd.Categorical(["b US", "a JP", None, "b US"], categories=["a JP", "b US", "z GB"]),
                       index=[5, 6, 7, 8], name="ticker")
    converted = as_strings(values)
    pd.testing.assert_series_equal(converted, values.astype(pd.StringDtype()))
    assert converted.tolist()[:2] == ["b US", "a JP"] and converted.isna().tolist() == [False, False, True, False]
