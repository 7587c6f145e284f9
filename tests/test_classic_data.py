"""Numerai Classic data: features.json, the memory-bounded reader, the synthetic demo files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from numerflow.tasks.classic import data as classic_data
from numerflow.tasks.classic.data import load_feature_metadata, read_classic_frame
from numerflow.tasks.classic.demo import LIVE_ERA, MAIN_TARGET, write_demo_classic
from numerflow.tasks.core.errors import BadInputError


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return write_demo_classic(tmp_path_factory.mktemp("classic"), train_eras=30, validation_eras=10,
                              ids_per_era=200, n_features=40, signal=0.6)


def test_demo_files_have_numerais_schema(demo):
    assert demo.version == "v5.2" and demo.train.name == "train.parquet" and demo.live.name == "live.parquet"
    schema = pq.read_schema(demo.train)
    features = [n for n in schema.names if n.startswith("feature_")]
    assert len(features) == 40 and all(schema.field(f).type == pa.int8() for f in features)
    assert {"id", "era", "data_type", "target", MAIN_TARGET} <= set(schema.names)
    assert any(n.endswith("_20") and n != MAIN_TARGET for n in schema.names)
    assert any(n.endswith("_60") for n in schema.names)
    train = pd.read_parquet(demo.train)
    assert train.index.name == "id" and train.index.is_unique
    assert train["era"].iloc[0] == "0001" and train["era"].str.len().eq(4).all()
    assert set(np.unique(train[features].to_numpy())) <= {0, 1, 2, 3, 4}
    assert set(train["target"].unique()) == {0.0, 0.25, 0.5, 0.75, 1.0}
    assert train["target"].notna().all() and train["target"].equals(train[MAIN_TARGET])
    assert train["target_cyrusd_20"].isna().any()  # auxiliary targets can be NaN
    live = pd.read_parquet(demo.live)
    assert set(live["era"]) == {LIVE_ERA} and set(live["data_type"]) == {"live"} and len(live) == 200
    assert not set(live.index) & set(train.index)
    meta = pd.read_parquet(demo.meta_model)
    validation = pd.read_parquet(demo.validation, columns=["era"])
    assert meta.index.equals(validation.index) and meta["numerai_meta_model"].between(0, 1).all()
    assert validation["era"].min() == "0031"  # validation eras follow the training eras


def test_demo_signal_is_planted_and_absent_without_it(tmp_path):
    def mean_era_corr(signal):
        files = write_demo_classic(tmp_path / str(signal), train_eras=20, validation_eras=2, ids_per_era=300,
                                   n_features=10, signal=signal)
        meta = load_feature_metadata(files.features_json)
        frame = read_classic_frame(files.train, meta.feature_set("all"), ["target"])
        score = frame[meta.feature_set("all")[:5]].mean(axis=1)
        return frame.assign(score=score).groupby("era")[["score", "target"]].corr().xs("score", level=1)["target"]

    planted, none = mean_era_corr(0.6), mean_era_corr(0.0)
    assert planted.mean() > 0.3
    assert abs(none.mean()) < 3 * none.std() / np.sqrt(len(none))


def test_feature_metadata(demo):
    meta = load_feature_metadata(demo.features_json)
    assert set(meta.feature_sets) == {"small", "medium", "all"}
    assert set(meta.feature_set("small")) < set(meta.feature_set("medium")) < set(meta.feature_set("all"))
    assert "target" in meta.targets and MAIN_TARGET in meta.targets
    with pytest.raises(BadInputError, match="unknown_feature_set.*'huge'.*all"):
        meta.feature_set("huge")


@pytest.mark.parametrize("content", ["{not json", json.dumps({"targets": ["target"]}),
                                     json.dumps({"feature_sets": {"small": ["f"]}, "targets": []}),
                                     json.dumps([1, 2])])
def test_feature_metadata_refuses_other_shapes(tmp_path, content):
    path = tmp_path / "features.json"
    path.write_text(content)
    with pytest.raises(BadInputError, match="invalid_classic_data"):
        load_feature_metadata(path)


def test_read_frame_reads_only_the_asked_columns_as_int8(demo, monkeypatch, tmp_path):
    monkeypatch.setattr(classic_data, "COLUMNS_PER_READ", 3)  # several slices, the last one partial
    meta = load_feature_metadata(demo.features_json)
    features = meta.feature_set("medium")
    grouped = tmp_path / "train.parquet"  # several row groups, the last one partial
    pq.write_table(pq.read_table(demo.train), grouped, row_group_size=1111)
    assert pq.ParquetFile(grouped).num_row_groups == 6
    frame = read_classic_frame(grouped, features, ["target", "target_ender_60"])
    assert list(frame.columns) == ["era", *features, "target", "target_ender_60"]
    assert frame.index.name == "id" and frame.index.is_unique
    assert all(frame[f].dtype == np.int8 for f in features)
    assert frame["target"].dtype == np.float32 and frame["target_ender_60"].dtype == np.float32
    assert pd.api.types.is_string_dtype(frame["era"]) and frame["era"].iloc[0] == "0001"
    expected = pd.read_parquet(demo.train, columns=["era", *features, "target", "target_ender_60"])
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False, check_index_type=False)
    validation = read_classic_frame(demo.validation, features, ["target_ender_60"], extra_columns=["data_type"])
    assert validation["target_ender_60"].isna().any()  # NaN targets are kept
    assert set(validation["data_type"]) == {"validation"}


def test_read_frame_keeps_one_int8_matrix(demo):
    """The features are one int8 block: no per-column copy, no float64 anywhere."""
    meta = load_feature_metadata(demo.features_json)
    frame = read_classic_frame(demo.train, meta.feature_set("all"), ["target"])
    int8_blocks = [b for b in frame._mgr.blocks if b.dtype == np.int8]
    assert len(int8_blocks) == 1 and int8_blocks[0].values.shape == (40, len(frame))
    assert not any(b.dtype == np.float64 for b in frame._mgr.blocks)


def test_read_frame_errors(tmp_path, demo):
    meta = load_feature_metadata(demo.features_json)
    with pytest.raises(BadInputError, match="invalid_classic_data.*lacks the columns.*feature_nope"):
        read_classic_frame(demo.train, ["feature_nope"], ["target"])
    garbage = tmp_path / "train.parquet"
    garbage.write_bytes(b"<html>not parquet</html>")
    with pytest.raises(BadInputError, match="invalid_classic_data.*not a readable Parquet"):
        read_classic_frame(garbage, meta.feature_set("small"), [])
    frame = pd.DataFrame({"id": ["n1", "n2"], "era": ["0001", "0001"], "feature_a": [0.25, 1.0],
                          "feature_b": pd.array([7, 1], dtype="int8")})
    frame.to_parquet(tmp_path / "float.parquet", index=False)
    with pytest.raises(BadInputError, match="feature_a.*not int8"):
        read_classic_frame(tmp_path / "float.parquet", ["feature_a"], [])
    with pytest.raises(BadInputError, match="feature_b has values outside 0..4"):
        read_classic_frame(tmp_path / "float.parquet", ["feature_b"], [])


def test_read_frame_fills_missing_features_with_the_middle_bin(tmp_path):
    table = pa.table({"id": ["n1", "n2", "n3"], "era": pa.array([1, 1, 2]),
                      "feature_a": pa.array([0, None, 4], type=pa.int8())})
    pq.write_table(table, tmp_path / "f.parquet")
    frame = read_classic_frame(tmp_path / "f.parquet", ["feature_a"], [])
    assert frame["feature_a"].tolist() == [0, 2, 4] and frame["feature_a"].dtype == np.int8
    assert frame["era"].tolist() == ["0001", "0001", "0002"]  # integer eras get Numerai's spelling
