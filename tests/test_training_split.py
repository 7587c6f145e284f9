import numpy as np
import pandas as pd
import pytest

from numerflow.tasks.core.config import TrainingSettings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import write_parquet
from numerflow.tasks.model.eras import weekly_era_dates
from numerflow.tasks.model.training import purged_date_split, read_training_rows


def panel(n_dates=200, n_tickers=5, horizon_days=30):
    dates = pd.bdate_range("2020-01-01", periods=n_dates)
    frame = pd.DataFrame({"date": np.repeat(dates, n_tickers)})
    frame["target_end_date"] = frame["date"] + pd.Timedelta(days=horizon_days)
    has_target = (frame["date"] <= dates[max(-25, -len(dates))]).to_numpy()  # the last dates have no future yet
    return frame, has_target


def test_no_training_label_overlaps_validation_and_dates_are_not_cut():
    frame, has_target = panel()
    split = purged_date_split(frame["date"], frame["target_end_date"], has_target, 0.25, embargo_days=5)
    train_dates = set(frame.loc[split.train, "date"])
    valid_dates = set(frame.loc[split.validation, "date"])
    assert train_dates and valid_dates and not train_dates & valid_dates
    assert frame.loc[split.train, "target_end_date"].max() < split.validation_start - pd.Timedelta(days=5)
    assert min(valid_dates) == split.validation_start
    # Every row of a validation date is in validation (the split never cuts through a date).
    assert split.validation.sum() == sum(frame["date"].isin(valid_dates) & has_target)
    # Purging drops the rows whose targets would reach into validation: there is a gap.
    gap_days = (split.validation_start - max(train_dates)).days
    assert gap_days >= 30 + 5
    assert not split.train[~has_target].any() and not split.validation[~has_target].any()


def test_too_little_history_is_a_clear_error():
    frame, has_target = panel(n_dates=8)
    with pytest.raises(BadInputError, match="not_enough_history"):
        purged_date_split(frame["date"], frame["target_end_date"], np.ones(len(frame), bool), 0.25, 5)


@pytest.mark.parametrize("sample", ["weekly", "daily"])
def test_sampled_training_rows_are_purged_and_validation_keeps_every_date(tmp_path, sample):
    frame, has_target = panel(n_dates=300, n_tickers=4)
    frame.insert(0, "ticker", np.tile([f"T{i}" for i in range(4)], 300))
    frame["feature_a"] = np.arange(len(frame), dtype="float32")
    frame["target"] = np.where(has_target, 0.5, np.nan).astype("float32")
    frame = frame.drop(index=frame.index[frame["date"] == pd.Timestamp("2020-06-05")])  # a Friday holiday
    path = write_parquet(tmp_path / "dataset.parquet", frame.reset_index(drop=True))
    labelled = frame["target"].notna().to_numpy()
    whole = purged_date_split(frame["date"], frame["target_end_date"], labelled, 0.25, 5)

    rows, split, sampled = read_training_rows(path, TrainingSettings(sample=sample, validation_fraction=0.25,
                                                                     embargo_days=5))
    train = rows.loc[split.train]
    # No training label reaches into validation (+ embargo), whatever the sample.
    assert split.validation_start == whole.validation_start
    assert train["target_end_date"].max() < split.validation_start - pd.Timedelta(days=5)
    # Validation is every labelled held-out row, on every date.
    assert split.validation.sum() == whole.validation.sum()
    assert set(rows.loc[split.validation, "date"]) == set(frame.loc[whole.validation, "date"])
    train_dates = pd.DatetimeIndex(sorted(set(train["date"])))
    if sample == "daily":
        assert split.train.sum() == whole.train.sum()
    else:  # one date per week: the week's last trading day (Thursday when Friday is a holiday)
        assert (train_dates.to_period("W-FRI").value_counts() == 1).all()
        assert set(train_dates.dayofweek) == {4, 3} and pd.Timestamp("2020-06-04") in train_dates
        assert split.train.sum() == frame.loc[whole.train, "date"].isin(train_dates).sum()
        assert whole.train.sum() > 4 * split.train.sum()
        # Before validation only the weeks' last dates are read (the rest never reaches memory).
        read_before = set(rows.loc[rows["date"] < split.validation_start, "date"])
        assert read_before == set(weekly_era_dates(frame["date"])) & set(frame.loc[
            frame["date"] < split.validation_start, "date"])
        assert not sampled.all() and sampled[(rows["date"] < split.validation_start).to_numpy()].all()
