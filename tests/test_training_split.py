import numpy as np
import pandas as pd
import pytest

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.model.training import purged_date_split


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
