import datetime as dt

import pytest

from numerflow.tasks.core.config import TargetSettings, TrainingSettings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, read_parquet, write_parquet
from numerflow.tasks.model.dataset import build_dataset_frame
from numerflow.tasks.model.predict import predict_live
from numerflow.tasks.model.training import train_and_register
from numerflow.tasks.prices.sources.demo import DemoMarket


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    market = DemoMarket(tickers=150, years=2, seed=1, end=dt.date(2025, 6, 27))
    dataset = build_dataset_frame(market.fetch(market.all_tickers()), TargetSettings())
    path = write_parquet(root / "dataset.parquet", dataset)
    settings = TrainingSettings(num_boost_round=20, num_threads=1, refit_on_all=False)
    result = train_and_register(Store(root / "store"), path, settings, run_id="t")
    return root, path, result, market


def test_live_predictions_cover_the_universe_on_the_latest_date(trained):
    root, path, result, market = trained
    universe = market.universe()["numerai_ticker"]
    live = predict_live(Store(root / "store"), path, result.model_dir, universe, "r1", min_tickers=100)
    frame = read_parquet(live.path)
    assert live.live_date == "2025-06-27"
    assert set(frame["ticker"]) <= set(universe) and len(frame) == live.tickers >= 100
    assert not frame["ticker"].duplicated().any()
    # Markets on holiday keep their last session, never older than the staleness window.
    assert (frame["date"] >= frame["date"].max() - dt.timedelta(days=5)).all()


def test_dataset_without_a_model_feature_is_a_clear_error(trained, tmp_path):
    root, path, result, market = trained
    stripped = read_parquet(path).drop(columns=["feature_ret_20d"])
    other = write_parquet(tmp_path / "stripped.parquet", stripped)
    with pytest.raises(BadInputError, match=r"feature_mismatch: .*feature_ret_20d.*retrain"):
        predict_live(Store(root / "store"), other, result.model_dir, market.universe()["numerai_ticker"], "r2",
                     min_tickers=100)
