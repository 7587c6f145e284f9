"""Numerai v2.1 neutralizer and sample-weight files: discovered and downloaded through the real
numerapi from the fake Numerai, read a few dates at a time, and ALPHA scored from them within a
memory budget smaller than the file."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fakes.numerai_fixtures import fake_numerai, keys, make_client, sleeps  # noqa: F401 - fixtures
from fakes.numerai_v21 import NUMERIC_FEATURES, add_v21_datasets, neutralizer_frames, parquet_bytes
from numerai_tools import scoring

from numerflow.tasks.core.store import Store
from numerflow.tasks.numerai.neutralizer import (
    NeutralizerFiles,
    alpha_from_files,
    fetch_neutralizer_files,
    file_dates,
    neutralizer_columns,
    read_dates,
)

TICKERS = [f"T{i:04d} US" for i in range(120)]
VALIDATION = pd.date_range("2025-01-03", periods=6, freq="W-FRI")


def test_fetch_discovers_the_version_and_downloads_both_files_per_round(fake_numerai, make_client, tmp_path):
    frames = add_v21_datasets(fake_numerai, TICKERS, pd.date_range("2024-01-05", periods=4, freq="W-FRI"),
                              VALIDATION, pd.Timestamp("2025-03-07"))
    fake_numerai.add_dataset("signals", "signals/v2.0/validation.parquet", b"old")  # no neutralizer in v2.0
    files = fetch_neutralizer_files(make_client(with_keys=False), Store(tmp_path), round_number=1001)
    assert files is not None and files.version == "signals/v2.1"
    assert files.neutralizer_path == tmp_path / "numerai/signals/v2.1/round-1001/validation_neutralizer.parquet"
    assert neutralizer_columns(files.neutralizer_path) == [f"neutralizer_{j}" for j in range(8)]
    assert list(file_dates(files.weights_path)) == list(VALIDATION)
    # The served training data has the real layout: string ids and dates, float32 features, two strings.
    train = pd.read_parquet(io.BytesIO(fake_numerai.state.datasets[11]["signals/v2.1/train.parquet"]))
    assert train["date"].iloc[0] == "2024-01-05"
    assert all(train[name].dtype == np.float32 for name in NUMERIC_FEATURES)
    assert frames["validation.parquet"]["target"].notna().all()


def test_no_neutralizer_listed_means_none(fake_numerai, make_client, tmp_path):
    assert fetch_neutralizer_files(make_client(with_keys=False), Store(tmp_path), round_number=1001) is None


def _scored(neutral: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    scored = neutral[["numerai_ticker", "date"]].rename(columns={"numerai_ticker": "ticker"}).copy()
    scored["prediction"] = rng.normal(size=len(scored)) + 3 * neutral["neutralizer_2"].to_numpy()
    scored["target"] = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], len(scored))
    return scored.sample(frac=0.9, random_state=seed)  # some tickers not predicted


def test_alpha_from_files_equals_numerai_tools_per_date(tmp_path):
    neutral, weights = neutralizer_frames(TICKERS, VALIDATION, 8)
    neutral_path, weights_path = tmp_path / "n.parquet", tmp_path / "w.parquet"
    neutral_path.write_bytes(parquet_bytes(neutral, row_group_size=len(TICKERS)))
    weights_path.write_bytes(parquet_bytes(weights))
    scored = _scored(neutral)
    ours = alpha_from_files(scored, neutral_path, weights_path, max_rows=200)  # 1-2 dates per read
    columns = [f"neutralizer_{j}" for j in range(8)]
    for date, day in scored.groupby("date"):
        n_day = neutral[neutral["date"] == date].set_index("numerai_ticker").sort_index()
        w_day = weights[weights["date"] == date].set_index("numerai_ticker")["sample_weight"].sort_index()
        day = day.set_index("ticker").sort_index()
        ids = day.index
        expected = scoring.alpha(day[["prediction"]], n_day.loc[ids, columns].astype("float64"),
                                 w_day.loc[ids].astype("float64"), day["target"])["prediction"]
        assert ours[pd.Timestamp(date)] == pytest.approx(expected, abs=1e-9)
    assert len(ours) == len(VALIDATION)


def test_read_dates_reads_only_the_dates_asked_for(tmp_path):
    neutral, _ = neutralizer_frames(TICKERS, VALIDATION, 4)
    path = tmp_path / "n.parquet"
    path.write_bytes(parquet_bytes(neutral, row_group_size=len(TICKERS)))
    rows = read_dates(path, [VALIDATION[2], VALIDATION[4]])
    assert sorted(rows["date"].unique()) == [VALIDATION[2], VALIDATION[4]]
    assert len(rows) == 2 * len(TICKERS) and rows["neutralizer_0"].dtype == np.float32
    assert rows["ticker"].dtype == "string"


def test_read_dates_decodes_only_the_row_groups_whose_statistics_can_hold_the_dates(tmp_path):
    """One row group per date (Numerai's layout): reading two dates decodes those two row groups; a
    file without statistics is read through the scanner's filter, with the same rows."""
    import pyarrow.parquet as pq

    from numerflow.tasks.numerai.neutralizer import _date_values, _row_groups_of

    neutral, _ = neutralizer_frames(TICKERS, VALIDATION, 4)
    path, bare = tmp_path / "n.parquet", tmp_path / "bare.parquet"
    path.write_bytes(parquet_bytes(neutral, row_group_size=len(TICKERS)))
    pq.write_table(pa.Table.from_pandas(neutral, preserve_index=False), bare, row_group_size=len(TICKERS),
                   write_statistics=False)
    wanted = [VALIDATION[4], VALIDATION[2]]
    date_type = pq.read_schema(path).field("date").type
    assert _row_groups_of(path, _date_values(wanted, date_type)) == [2, 4]
    assert _row_groups_of(bare, _date_values(wanted, date_type)) is None
    pruned, scanned = read_dates(path, wanted), read_dates(bare, wanted)
    key = ["date", "ticker"]
    pd.testing.assert_frame_equal(pruned.sort_values(key).reset_index(drop=True),
                                  scanned.sort_values(key).reset_index(drop=True))
    assert sorted(pruned["date"].unique()) == [VALIDATION[2], VALIDATION[4]] and len(pruned) == 2 * len(TICKERS)


def test_scoring_from_a_file_larger_than_the_budget_stays_within_it(tmp_path):
    """The neutralizer file's data is 4x the budget: only a few dates are ever decoded."""
    tickers = [f"T{i:05d} US" for i in range(1500)]
    dates = pd.date_range("2024-01-05", periods=80, freq="W-FRI")
    neutral, weights = neutralizer_frames(tickers, dates, 100, seed=3, orthonormal=False)
    neutral_path, weights_path = tmp_path / "n.parquet", tmp_path / "w.parquet"
    neutral_path.write_bytes(parquet_bytes(neutral, row_group_size=len(tickers)))
    weights_path.write_bytes(parquet_bytes(weights, row_group_size=len(tickers)))
    whole_table_bytes = int(neutral.memory_usage(deep=True).sum())
    scored = _scored(neutral)
    del neutral, weights
    budget = whole_table_bytes // 4

    pool = pa.proxy_memory_pool(pa.default_memory_pool())
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    tracemalloc.start()
    try:
        scores = alpha_from_files(scored, neutral_path, weights_path, max_rows=3000)  # 2 dates per read
        _, python_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        pa.set_memory_pool(previous)
    peak = python_peak + pool.max_memory()
    assert len(scores) == len(dates) and scores.notna().all()
    assert peak < budget, (peak, budget, whole_table_bytes)


def test_feature_alpha_scores_each_feature_as_the_prediction_in_one_pass_over_the_files(tmp_path):
    """validation_feature_alpha: the dataset's feature columns on the validation rows, each scored as
    validation_alpha would score it as the prediction (Numerai's data dates, target_chili_60 when present)."""
    from numerflow.tasks.core.store import write_parquet
    from numerflow.tasks.numerai.neutralizer import validation_alpha, validation_feature_alpha

    neutral, weights = neutralizer_frames(TICKERS, VALIDATION, 8)
    neutral_path, weights_path = tmp_path / "n.parquet", tmp_path / "w.parquet"
    neutral_path.write_bytes(parquet_bytes(neutral, row_group_size=len(TICKERS)))
    weights_path.write_bytes(parquet_bytes(weights))
    scored = _scored(neutral)
    rng = np.random.default_rng(9)
    # Our dates are the trading day before Numerai's data date; one feature has gaps.
    ours_date = pd.to_datetime(scored["date"]) - pd.Timedelta(days=1)
    dataset = pd.DataFrame({"ticker": scored["ticker"], "date": ours_date,
                            "feature_a": rng.random(len(scored)), "feature_b": rng.random(len(scored))})
    dataset.loc[rng.random(len(dataset)) < 0.1, "feature_b"] = np.nan
    early = dataset.assign(date=dataset["date"] - pd.Timedelta(days=400))  # before validation: not read
    write_parquet(tmp_path / "dataset.parquet", pd.concat([early, dataset], ignore_index=True))
    predictions = pd.DataFrame({"ticker": scored["ticker"], "date": ours_date, "numerai_date": scored["date"],
                                "target": scored["target"], "alpha_target": scored["target"] * 0.5 + 0.25,
                                "prediction": scored["prediction"]})
    write_parquet(tmp_path / "valid.parquet", predictions)
    per_feature = validation_feature_alpha(tmp_path / "valid.parquet", tmp_path / "dataset.parquet",
                                           ["feature_a", "feature_b"], neutral_path, weights_path, max_rows=200)
    assert list(per_feature.columns) == ["feature_a", "feature_b"] and len(per_feature) == len(VALIDATION)
    for name in ("feature_a", "feature_b"):
        as_prediction = predictions.assign(prediction=dataset[name].to_numpy())
        write_parquet(tmp_path / f"{name}.parquet", as_prediction)
        expected = validation_alpha(tmp_path / f"{name}.parquet", neutral_path, weights_path)
        np.testing.assert_allclose(per_feature[name].to_numpy(), expected.to_numpy(), rtol=0, atol=1e-12)
    assert per_feature.notna().all().all() and (per_feature["feature_a"] != per_feature["feature_b"]).all()
    # The model's own ALPHA in the same pass: validation_alpha's scores, first column, and what it scored on.
    both = validation_feature_alpha(tmp_path / "valid.parquet", tmp_path / "dataset.parquet",
                                    ["feature_a", "feature_b"], neutral_path, weights_path, max_rows=200,
                                    with_prediction=True)
    alone = validation_alpha(tmp_path / "valid.parquet", neutral_path, weights_path)
    assert list(both.columns) == ["prediction", "feature_a", "feature_b"]
    np.testing.assert_allclose(both["prediction"].to_numpy(), alone.to_numpy(), rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(both[["feature_a", "feature_b"]], per_feature)
    assert both.attrs["scored_on"] == alone.attrs["scored_on"] == "target_chili_60"

    # The round's scoring: the model's ALPHA and each feature's, into the metrics and the model's meta.json.
    from numerflow.tasks.core.store import read_json, write_json
    from numerflow.tasks.model.eras import era_metrics, with_score
    from numerflow.tasks.model.training import TrainResult
    from numerflow.tasks.round.signals import score_alpha

    model_dir = tmp_path / "model"
    write_json(model_dir / "meta.json", {"dataset": str(tmp_path / "dataset.parquet"), "validation_metrics": {},
                                         "data_range": {"target_span_trading_days": 5}})
    days = sorted(pd.to_datetime(predictions["date"]).unique())
    metrics = era_metrics({"date": days, "corr": [0.01] * len(days), "fnc": [0.0] * len(days)}, 5)
    metrics["features"] = {"feature_a": {"corr": {}}, "feature_b": {"corr": {}}}
    trained = TrainResult("m", str(model_dir), str(tmp_path / "valid.parquet"), metrics)
    scored_metrics = score_alpha(trained, NeutralizerFiles("t", "validation", neutral_path, weights_path))
    assert scored_metrics["alpha_scored_on"] == "target_chili_60"
    assert scored_metrics["alpha"]["mean"] == pytest.approx(with_score(metrics, "alpha", alone, 5)["alpha"]["mean"],
                                                            abs=1e-12)
    assert set(scored_metrics["features"]["feature_a"]) >= {"corr", "alpha"}
    assert read_json(model_dir / "meta.json")["validation_metrics"]["alpha"] == scored_metrics["alpha"]
