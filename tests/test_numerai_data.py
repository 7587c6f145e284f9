"""Numerai's train/validation targets: discovery, download, alignment with our features."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from fakes.numerai_fixtures import fake_numerai, keys, make_client, sleeps  # noqa: F401 - fixtures
from fakes.numerai_server import open_round

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store
from numerflow.tasks.numerai.data import (
    fetch_training_data,
    historical_universe,
    join_numerai_targets,
    read_numerai_targets,
)


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _numerai_frame(rows: list[tuple[str, str, float]], **extra) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["numerai_ticker", "date", "target"])
    frame["target_raw_return_20"] = frame["target"] / 10
    frame["feature_country"] = "US"  # non-numeric: never a model input
    frame["feature_momentum"] = np.linspace(0, 1, len(frame))
    for name, values in extra.items():
        frame[name] = values
    return frame


def _ours(dates: list[str], tickers=("A US", "B US")) -> pd.DataFrame:
    index = pd.MultiIndex.from_product([pd.to_datetime(dates), list(tickers)], names=["date", "ticker"])
    frame = index.to_frame(index=False)
    # A feature that encodes its own date, so the test can see which row was used.
    frame["feature_day"] = frame["date"].dt.day.astype("float32")
    frame["target"] = 0.5
    frame["target_raw"] = 0.01
    frame["target_end_date"] = frame["date"] + pd.Timedelta(days=30)
    return frame


def test_fetch_training_data_finds_newest_version_train_once_validation_per_round(fake_numerai, make_client,
                                                                                   tmp_path):
    train = _numerai_frame([("A US", "2024-01-05", 0.25)])
    validation = _numerai_frame([("A US", "2025-01-03", 0.75)])
    fake_numerai.add_dataset("signals", "signals/v2.0/train.parquet", _parquet(train))
    fake_numerai.add_dataset("signals", "signals/v2.1/train.parquet", _parquet(train))
    fake_numerai.add_dataset("signals", "signals/v2.1/validation.parquet", _parquet(validation))
    store = Store(tmp_path)
    client = make_client(with_keys=False)
    files = fetch_training_data(client, store)
    assert files.version == "signals/v2.1"
    assert files.train_path == tmp_path / "numerai/signals/v2.1/train.parquet"
    assert files.validation_path == tmp_path / "numerai/signals/v2.1/round-1001/validation.parquet"
    fake_numerai.set_round("signals", open_round(1002))
    again = fetch_training_data(client, store)
    assert again.validation_path.parent.name == "round-1002"
    assert fake_numerai.state.downloads.count("signals/v2.1/train.parquet") == 1
    assert fake_numerai.state.downloads.count("signals/v2.1/validation.parquet") == 2
    targets = read_numerai_targets(again.paths)
    assert targets["target"].tolist() == [0.25, 0.75]


def test_read_targets_configurable_column_and_no_numerai_features(tmp_path):
    path = tmp_path / "train.parquet"
    _numerai_frame([("A US", "2024-01-05", 0.25), ("B US", "2024-01-05", 1.0)]).to_parquet(path)
    data = read_numerai_targets([path], target_column="target_raw_return_20")
    assert data["target"].tolist() == pytest.approx([0.025, 0.1])
    assert data["date"].dtype == "datetime64[ns]" and str(data["date"].iloc[0].date()) == "2024-01-05"
    # Numerai's feature_* columns stay behind: live rounds could not fill them (only ours).
    assert data.columns.tolist() == ["ticker", "date", "target"]
    with pytest.raises(BadInputError, match=r"no target column 'target_chili_60'.*\['target', 'target_raw_return_20'\]"):
        read_numerai_targets([path], target_column="target_chili_60")


def test_validation_wins_where_files_overlap(tmp_path):
    train, validation = tmp_path / "t.parquet", tmp_path / "v.parquet"
    _numerai_frame([("A US", "2024-01-05", 0.25)]).to_parquet(train)
    _numerai_frame([("A US", "2024-01-05", 1.0)]).to_parquet(validation)
    assert read_numerai_targets([train, validation])["target"].tolist() == [1.0]


def test_missing_ticker_column_is_refused(tmp_path):
    path = tmp_path / "bad.parquet"
    pd.DataFrame({"ticker": ["A US"], "date": ["2024-01-05"], "target": [0.5]}).to_parquet(path)
    with pytest.raises(BadInputError, match=r"lacks columns \['numerai_ticker'\]"):
        read_numerai_targets([path])


def test_join_uses_same_date_or_the_latest_earlier_one_never_a_later_one():
    # Our features on Mon 8th, Tue 9th, Thu 11th (the market was shut on Wed 10th).
    ours = _ours(["2024-01-08", "2024-01-09", "2024-01-11"])
    numerai = pd.DataFrame({
        "ticker": ["A US", "A US", "B US", "B US"],
        "date": pd.to_datetime(["2024-01-09", "2024-01-10", "2024-01-05", "2024-01-20"]),
        "target": np.array([0.25, 0.75, 1.0, 0.0], dtype="float32"),
    })
    joined = join_numerai_targets(ours, numerai, max_gap_days=5)
    rows = {(r.ticker, str(r.numerai_date.date())): r for r in joined.itertuples()}
    # Exact date.
    assert rows[("A US", "2024-01-09")].feature_day == 9
    # Wednesday had no bar: it falls back to... Tuesday's row, already taken by Tuesday's own
    # target, so the nearer Numerai date (9th) keeps it and the 10th is dropped.
    assert ("A US", "2024-01-10") not in rows
    # 5th: our first bar is the 8th, after the 5th → never used (no look-ahead).
    assert ("B US", "2024-01-05") not in rows
    # 20th: our last bar (11th) is 9 days earlier, past max_gap_days → dropped.
    assert ("B US", "2024-01-20") not in rows
    assert (joined["date"] <= joined["numerai_date"]).all()
    assert "target_raw" not in joined


def test_join_falls_back_over_a_holiday_and_sets_target_end_from_numerai_date():
    ours = _ours(["2024-01-08", "2024-01-09", "2024-01-11"], tickers=("A US",))
    numerai = pd.DataFrame({"ticker": ["A US"], "date": pd.to_datetime(["2024-01-10"]),
                            "target": np.array([0.75], dtype="float32")})
    joined = join_numerai_targets(ours, numerai, "target")
    (row,) = joined.itertuples()
    assert row.feature_day == 9 and row.target == 0.75
    # 22 trading days + the 25 % holiday margin (6) = 28 weekdays after Wed 2024-01-10: Mon 2024-02-19.
    assert str(row.target_end_date.date()) == "2024-02-19"


def test_join_keeps_only_our_features_and_refuses_no_overlap():
    ours = _ours(["2024-01-08"], tickers=("A US",))
    numerai = pd.DataFrame({"ticker": ["A US"], "date": pd.to_datetime(["2024-01-08"]),
                            "target": np.array([0.5], dtype="float32"),
                            "feature_numerai_momentum": np.array([0.3], dtype="float32")})
    joined = join_numerai_targets(ours, numerai)
    assert joined.columns.tolist() == ["ticker", "date", "feature_day", "target", "numerai_date", "target_end_date"]
    with pytest.raises(BadInputError, match="no_numerai_overlap"):
        join_numerai_targets(ours, numerai.assign(ticker="Z US"))


def test_historical_universe_lists_every_ticker_with_its_span(tmp_path):
    train, validation = tmp_path / "t.parquet", tmp_path / "v.parquet"
    _numerai_frame([("A US", "2020-01-03", 0.5), ("GONE US", "2020-01-03", 0.5)]).to_parquet(train)
    _numerai_frame([("A US", "2025-01-03", 0.5)]).to_parquet(validation)
    table = historical_universe([train, validation]).set_index("ticker")
    assert set(table.index) == {"A US", "GONE US"}
    assert str(table.loc["A US", "last_date"].date()) == "2025-01-03" and table.loc["A US", "rows"] == 2
