"""The crypto calendar: a token trades every day, so its windows count calendar days.

numerflow's price features and targets count each ticker's own bars (``tasks.model.features``,
``tasks.model.targets``). A stock's 20 bars span ~28 calendar days; a token's span 20 — when every
day has a bar. Yahoo's ``SYMBOL-USD`` history (and a user's files) can miss days, and then 20 bars
would span more than 20 days. For Crypto the panel is first put on the daily calendar
(``on_daily_calendar``): every coin gets a row for each day from its first to its last bar, a day
without a bar carrying the last close (no volume). The features and targets then count calendar
days (``feature_ret_20d`` is the return over 20 days, the 20D2L target the return from day d+2 to
day d+22, ``target_end_date`` that real day); the carried rows are dropped again before the dataset
is written (``tasks.model.dataset.build_dataset_frame``), so the model trains and predicts on real
bars only. Days after a coin's
last bar are never added: a coin whose bars stop has no target there and is stale for readiness
after ``yahoo.stale_after_days`` calendar days (``tasks.prices.quality``).

Numerai's own Crypto targets count calendar days too (``tasks.crypto.data``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Column marking the rows ``on_daily_calendar`` added (dropped again before the dataset is written).
CARRIED = "_carried"


def on_daily_calendar(prices: pd.DataFrame) -> pd.DataFrame:
    """``prices`` with a row for every calendar day between each ticker's first and last valid bar
    (finite ``adj_close``). Added days carry the previous ``close``/``adj_close`` and have zero
    ``volume``; the ``CARRIED`` column marks them. Vectorised: one grid of (ticker, day) codes."""
    valid = prices[np.isfinite(prices["adj_close"].to_numpy(dtype="float64", na_value=np.nan))]
    days = pd.to_datetime(valid["date"]).dt.normalize().astype("datetime64[ns]")
    valid = valid.assign(date=days)
    extent = valid.groupby("ticker", observed=True, sort=True)["date"].agg(["min", "max"])
    lengths = ((extent["max"] - extent["min"]).dt.days + 1).to_numpy()
    if int(lengths.sum()) == len(valid):  # no gaps: nothing to add
        return valid.assign(**{CARRIED: False}).reset_index(drop=True)
    owner = np.repeat(np.arange(len(extent)), lengths)
    offset = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    grid = pd.DataFrame({
        "ticker": extent.index.to_numpy()[owner],
        "date": extent["min"].to_numpy()[owner] + offset.astype("timedelta64[D]"),
    })
    full = grid.merge(valid, on=["ticker", "date"], how="left", validate="one_to_one", sort=False)
    carried = full["adj_close"].isna().to_numpy()
    # Each ticker's first day is a real bar, so a forward fill in (ticker, date) order never crosses tickers.
    for column in ("close", "adj_close"):
        full[column] = full[column].ffill()
    full["volume"] = full["volume"].where(~carried, 0)
    for column in full.columns.difference(["ticker", "date", "close", "adj_close", "volume"]):
        if full[column].dtype == object or pd.api.types.is_string_dtype(full[column]):
            full[column] = full[column].ffill()  # e.g. currency: the coin's own
    full[CARRIED] = carried
    return full

