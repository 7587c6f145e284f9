"""Feature sets: a model on Numerai's own features trains on train/validation and predicts a live
round from the live.parquet the fake Numerai serves (real numerapi), with Numerai's country and
exchange codes as LightGBM categoricals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fakes.numerai_fixtures import fake_numerai, keys, make_client, sleeps  # noqa: F401 - fixtures
from fakes.numerai_v21 import NUMERIC_FEATURES, add_v21_datasets

from numerflow.tasks.core.config import TrainingSettings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, write_parquet
from numerflow.tasks.model.predict import predict_live
from numerflow.tasks.model.training import load_model, train_and_register
from numerflow.tasks.numerai.data import fetch_training_data, numerai_training_frame
from numerflow.tasks.numerai.universe import fetch_universe, load_universe_ids

TICKERS = [f"T{i:04d} US" for i in range(70)] + [f"{7000 + i} JP" for i in range(50)]
FAST = TrainingSettings(num_boost_round=40, validation_fraction=0.3, num_threads=1, refit_on_all=False,
                        params={"objective": "regression", "learning_rate": 0.1, "num_leaves": 7,
                                "min_data_in_leaf": 20, "verbose": -1}, feature_set="numerai")


@pytest.fixture
def v21(fake_numerai):
    return add_v21_datasets(fake_numerai, TICKERS, pd.date_range("2022-01-07", periods=80, freq="W-FRI"),
                            pd.date_range("2023-07-07", periods=30, freq="W-FRI"), pd.Timestamp("2024-03-01"))


def test_numerai_feature_model_predicts_the_live_round_from_live_parquet(fake_numerai, make_client, v21, tmp_path):
    store = Store(tmp_path / "data")
    client = make_client(with_keys=False)
    universe = fetch_universe(client, store)
    files = fetch_training_data(client, store, universe.round_number)
    training = numerai_training_frame(pd.DataFrame(), files.paths, "signals", "target", "numerai")
    assert (training["date"] == training["numerai_date"]).all()
    assert isinstance(training["feature_country"].dtype, pd.StringDtype)
    path = write_parquet(tmp_path / "numerai-features.parquet", training)

    result = train_and_register(store, path, FAST, run_id="r1")
    booster, meta = load_model(tmp_path / "data" / "models" / result.model_id)
    assert meta["features"] == [*NUMERIC_FEATURES, "feature_country", "feature_exchange_code"]
    assert booster.pandas_categorical is not None  # country and exchange are categoricals in the model
    # The planted signal (on feature_momentum_12w_factor) is found on the held-out weeks.
    assert result.metrics["corr"]["mean"] > 0.05

    ours = write_parquet(tmp_path / "ours.parquet", pd.DataFrame({"ticker": TICKERS, "date": pd.Timestamp("2024-03-01"),
                                                                  "feature_ret_20d": 0.5}))
    live = predict_live(store, ours, tmp_path / "data" / "models" / result.model_id,
                        load_universe_ids(universe.snapshot_path), "r1", min_tickers=100,
                        numerai_live_path=universe.raw_path)
    assert live.tickers == len(TICKERS) and live.live_date == "2024-03-01"
    predictions = pd.read_parquet(live.path)
    expected = booster.predict(_live_frame(v21["live.parquet"], meta["features"]))
    order = v21["live.parquet"]["numerai_ticker"].astype(str).tolist()
    np.testing.assert_allclose(predictions.set_index("ticker").loc[order, "prediction"].to_numpy(), expected)
    assert predictions["prediction"].std() > 0


def _live_frame(live: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    frame = live[features].copy()
    for name in ("feature_country", "feature_exchange_code"):
        frame[name] = frame[name].astype("category")
    return frame


def test_a_numerai_feature_model_without_live_parquet_is_refused(fake_numerai, make_client, v21, tmp_path):
    store = Store(tmp_path / "data")
    client = make_client(with_keys=False)
    universe = fetch_universe(client, store)
    files = fetch_training_data(client, store, universe.round_number)
    path = write_parquet(tmp_path / "t.parquet",
                         numerai_training_frame(pd.DataFrame(), files.paths, "signals", "target", "numerai"))
    result = train_and_register(store, path, FAST, run_id="r1")
    ours = write_parquet(tmp_path / "ours.parquet", pd.DataFrame({"ticker": TICKERS, "date": pd.Timestamp("2024-03-01"),
                                                                  "feature_ret_20d": 0.5}))
    with pytest.raises(BadInputError, match="only the round's live.parquet"):
        predict_live(store, ours, tmp_path / "data" / "models" / result.model_id,
                     load_universe_ids(universe.snapshot_path), "r1", min_tickers=100)


def test_both_feature_sets_join_ours_as_of_with_numerais_of_the_same_row(fake_numerai, make_client, v21, tmp_path):
    store = Store(tmp_path / "data")
    client = make_client(with_keys=False)
    files = fetch_training_data(client, store, 1001)
    train_dates = pd.to_datetime(v21["train.parquet"]["date"].unique())
    # Our features exist one day before each Numerai date (e.g. its market closed on Friday).
    index = pd.MultiIndex.from_product([train_dates - pd.Timedelta(days=1), TICKERS], names=["date", "ticker"])
    ours = index.to_frame(index=False)
    ours["feature_ret_20d"] = np.arange(len(ours), dtype="float32")
    both = numerai_training_frame(ours, files.paths, "signals", "target", "both")
    assert {"feature_ret_20d", *NUMERIC_FEATURES, "feature_country"} <= set(both.columns)
    assert ((both["numerai_date"] - both["date"]) == pd.Timedelta(days=1)).all()  # never a later row of ours
    row = both.iloc[0]
    theirs = v21["train.parquet"].assign(date=lambda f: pd.to_datetime(f["date"]))
    source = theirs[(theirs["numerai_ticker"] == row["ticker"]) & (theirs["date"] == row["numerai_date"])].iloc[0]
    assert row["feature_beta_factor"] == source["feature_beta_factor"]
    with pytest.raises(BadInputError, match="invalid_config"):
        numerai_training_frame(ours, files.paths, "signals", "target", "theirs")


def test_a_model_on_another_target_is_also_scored_against_numerais_target(fake_numerai, make_client, v21, tmp_path):
    from numerflow.tasks.model.report import render_markdown

    store = Store(tmp_path / "data")
    files = fetch_training_data(make_client(with_keys=False), store, 1001)
    frame = numerai_training_frame(pd.DataFrame(), files.paths, "signals", "target_chili_60", "numerai")
    source = v21["train.parquet"].set_index(["numerai_ticker", "date"])
    row = frame.iloc[5]
    assert row["score_target"] == source.loc[(row["ticker"], row["date"].strftime("%Y-%m-%d")), "target"]
    result = train_and_register(store, write_parquet(tmp_path / "t.parquet", frame), FAST, run_id="r1")
    assert result.metrics["corr_target"]["n_eras"] == result.metrics["corr"]["n_eras"] > 5
    assert result.metrics["corr_target"]["mean"] != result.metrics["corr"]["mean"]
    meta = load_model(tmp_path / "data" / "models" / result.model_id)[1]
    assert "CORR vs Numerai's target" in render_markdown(result.metrics, meta, "c.png")


def test_alpha_is_scored_against_the_payout_target_when_the_data_has_it(fake_numerai, make_client, v21, tmp_path):
    from numerflow.tasks.numerai.neutralizer import fetch_neutralizer_files, validation_alpha

    store = Store(tmp_path / "data")
    client = make_client(with_keys=False)
    files = fetch_training_data(client, store, 1001)
    frame = numerai_training_frame(pd.DataFrame(), files.paths, "signals", "target", "numerai")
    source = v21["validation.parquet"].set_index(["numerai_ticker", "date"])
    row = frame[frame["date"] == pd.Timestamp("2023-08-04")].iloc[3]
    assert row["alpha_target"] == source.loc[(row["ticker"], "2023-08-04"), "target_chili_60"]
    result = train_and_register(store, write_parquet(tmp_path / "t.parquet", frame), FAST, run_id="r1")
    assert "alpha_target" in pd.read_parquet(result.validation_predictions).columns
    neutral = fetch_neutralizer_files(client, store, 1001)
    alpha = validation_alpha(result.validation_predictions, neutral.neutralizer_path, neutral.weights_path)
    assert alpha.attrs["scored_on"] == "target_chili_60" and alpha.notna().sum() > 10
