"""Multi-target ensembles: one model per Numerai target (each purged on its own horizon),
rank-averaged with the configured weights, each member and the ensemble reported, and the
ensemble predicting a live round."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fakes.numerai_fixtures import fake_numerai, keys, make_client, sleeps  # noqa: F401 - fixtures
from fakes.numerai_v21 import add_v21_datasets

from numerflow.tasks.core.config import TrainingSettings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.ranking import group_codes, rank_by_group
from numerflow.tasks.core.store import Store, read_json, write_parquet
from numerflow.tasks.model.ensemble import ENSEMBLE_FILE, ensemble_weights, rank_average, train_ensemble
from numerflow.tasks.model.predict import predict_live
from numerflow.tasks.model.report import render_markdown
from numerflow.tasks.model.training import latest_model
from numerflow.tasks.numerai.data import fetch_training_data, numerai_training_frame
from numerflow.tasks.numerai.universe import fetch_universe, load_universe_ids

TICKERS = [f"T{i:04d} US" for i in range(120)]
FAST = TrainingSettings(num_boost_round=30, validation_fraction=0.3, num_threads=1, refit_on_all=False,
                        params={"objective": "regression", "learning_rate": 0.1, "num_leaves": 7,
                                "min_data_in_leaf": 20, "verbose": -1}, feature_set="numerai")


def test_weights_default_equal_and_bad_weights_are_refused():
    assert ensemble_weights(["a", "b"], []) == [0.5, 0.5]
    assert ensemble_weights(["a", "b"], [3, 1]) == [0.75, 0.25]
    for bad in ([1.0], [-1.0, 2.0], [0.0, 0.0]):
        with pytest.raises(BadInputError, match="invalid_config"):
            ensemble_weights(["a", "b"], bad)


def test_rank_average_is_the_weighted_mean_of_per_date_ranks():
    dates = np.repeat(["d1", "d2"], 4)
    a, b = np.array([1.0, 2, 3, 4, 4, 3, 2, 1]), np.array([10.0, 30, 20, 40, 1, 1, 2, 2])
    codes = group_codes(dates)
    expected = 0.25 * rank_by_group(a, codes) + 0.75 * rank_by_group(b, codes)
    np.testing.assert_allclose(rank_average([a, b], [0.25, 0.75], dates), expected)


def test_an_ensemble_of_two_targets_trains_reports_and_predicts(fake_numerai, make_client, tmp_path):
    frames = add_v21_datasets(fake_numerai, TICKERS, pd.date_range("2022-01-07", periods=80, freq="W-FRI"),
                              pd.date_range("2023-07-07", periods=30, freq="W-FRI"), pd.Timestamp("2024-03-01"))
    store = Store(tmp_path / "data")
    client = make_client(with_keys=False)
    universe = fetch_universe(client, store)
    files = fetch_training_data(client, store, universe.round_number)
    members = []
    for target in ("target_chili_60", "target"):
        frame = numerai_training_frame(pd.DataFrame(), files.paths, "signals", target, "numerai")
        members.append((target, write_parquet(tmp_path / f"{target}.parquet", frame)))

    result = train_ensemble(store, members, [0.7, 0.3], FAST, run_id="r1", lineage={"source": "test"})
    meta = read_json(tmp_path / "data" / "models" / result.model_id / "meta.json")
    assert latest_model(store).name == result.model_id  # the ensemble is the registry's latest model
    assert (tmp_path / "data" / "models" / result.model_id / ENSEMBLE_FILE).exists()
    assert [(m["target"], m["weight"]) for m in meta["members"]] == [("target_chili_60", 0.7), ("target", 0.3)]
    # Each member is purged on its own horizon: 60 (+2, + the holiday margin) and 20.
    spans = [read_json(f"{m['model_dir']}/meta.json")["data_range"]["target_span_trading_days"]
             for m in meta["members"]]
    assert spans == [78, 28] and meta["data_range"]["target_span_trading_days"] == 78
    assert set(result.metrics["members"]) == {"target_chili_60", "target"}
    assert result.metrics["corr"]["n_eras"] > 5

    # The ensemble's held-out predictions are the weighted per-date rank average of the members'.
    valid = pd.read_parquet(result.validation_predictions)
    parts = [pd.read_parquet(read_json(f"{m['model_dir']}/meta.json")["validation_predictions"])
             for m in meta["members"]]
    both = parts[0].merge(parts[1][["ticker", "date", "prediction"]], on=["ticker", "date"])
    both = both.sort_values(["ticker", "date"]).reset_index(drop=True)
    expected = rank_average([both["prediction_x"].to_numpy(), both["prediction_y"].to_numpy()], [0.7, 0.3],
                            both["date"].to_numpy())
    np.testing.assert_allclose(valid.sort_values(["ticker", "date"])["prediction"].to_numpy(), expected)

    markdown = render_markdown(result.metrics, meta, "chart.png")
    assert "| `target_chili_60` | 0.700 |" in markdown and "| `target` | 0.300 |" in markdown

    ours = write_parquet(tmp_path / "ours.parquet", pd.DataFrame({"ticker": TICKERS, "date": pd.Timestamp("2024-03-01"),
                                                                  "feature_ret_20d": 0.5}))
    live = predict_live(store, ours, tmp_path / "data" / "models" / result.model_id,
                        load_universe_ids(universe.snapshot_path), "r1", min_tickers=100,
                        numerai_live_path=universe.raw_path)
    predictions = pd.read_parquet(live.path)
    assert live.tickers == len(TICKERS) and predictions["prediction"].between(0, 1).all()
    member_live = [predict_live(store, ours, m["model_dir"], load_universe_ids(universe.snapshot_path), f"m{i}",
                                min_tickers=100, numerai_live_path=universe.raw_path)
                   for i, m in enumerate(meta["members"])]
    a, b = (pd.read_parquet(m.path).set_index("ticker").loc[predictions["ticker"], "prediction"].to_numpy()
            for m in member_live)
    np.testing.assert_allclose(predictions["prediction"].to_numpy(),
                               rank_average([a, b], [0.7, 0.3], np.zeros(len(a))))
    assert frames["live.parquet"]["numerai_ticker"].nunique() == len(TICKERS)
