"""Feature plug-ins that misbehave, as a user's might (tests/test_bad_input.py): each is named by
``module:function`` (``fakes.plugins:<name>``)."""

from __future__ import annotations

import pandas as pd

from numerflow.tasks.model.plugins import Availability, PluginOutput


def _frame(context) -> pd.DataFrame:
    prices = context.prices
    return pd.DataFrame({"ticker": prices["ticker"].astype(str), "timestamp": prices["date"],
                         "value": prices["adj_close"]})


def early(context):
    """Claims its values were known two days before their timestamp."""
    return PluginOutput(_frame(context), Availability("UTC", lag_hours=-48))


def nan_lag(context):
    return PluginOutput(_frame(context), Availability("UTC", lag_hours=float("nan")))


def raises(context):
    raise KeyError("close_price")


def divides(context):
    return 1 / 0


def returns_none(context):
    return None


def returns_dict(context):
    return {"ticker": ["AAA US"], "timestamp": ["2024-01-02"], "value": [1.0]}


def returns_output_of_a_list(context):
    return PluginOutput([1, 2, 3])  # type: ignore[arg-type]


def returns_output_with_a_dict_rule(context):
    return PluginOutput(_frame(context), {"lag_hours": 24})  # type: ignore[arg-type]


def future(context):
    """Every value published a year after the last bar."""
    frame = _frame(context)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"]) + pd.Timedelta(days=365)
    return frame


def strangers(context):
    """Tickers the panel has no bars for."""
    frame = _frame(context)
    frame["ticker"] = "Z" + frame["ticker"]
    return frame


def bad_fingerprint(context):
    return _frame(context)


def _fingerprint(context):
    raise OSError("cannot stat the vendor folder")


bad_fingerprint.fingerprint = _fingerprint  # type: ignore[attr-defined]

not_a_function = 42


def empty(context):
    """No values at all (a vendor with nothing new): the feature is all NaN, never a crash."""
    return pd.DataFrame({"ticker": pd.Series(dtype=str), "timestamp": pd.Series(dtype="datetime64[ns]"),
                         "value": pd.Series(dtype=float)})
