"""Data quality: sub-units, bad bars (causal), staleness, round readiness."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.prices.quality import (
    check_round_readiness,
    exclude_bad_bars,
    flag_bad_bars,
    normalise_currency_units,
    staleness,
)


def panel(ticker, closes, currency="USD", start="2024-01-01"):
    closes = np.asarray(closes, dtype=float)
    return pd.DataFrame(
        {
            "ticker": ticker,
            "date": pd.bdate_range(start, periods=len(closes)),
            "open": closes,
            "high": closes,
            "low": closes,
            "close": closes,
            "adj_close": closes,
            "volume": 1000.0,
            "currency": currency,
        }
    )


def test_sub_units_divided_by_100_and_renamed_others_untouched():
    prices = pd.concat([panel("VOD GB", [7000, 7100], "GBp"), panel("NPN ZA", [250000], "ZAc"), panel("TEVA IL", [5000], "ILA"), panel("AAPL US", [190], "USD")])
    out = normalise_currency_units(prices)
    assert out["currency"].tolist() == ["GBP", "GBP", "ZAR", "ILS", "USD"]
    np.testing.assert_allclose(out["close"].to_numpy(), [70, 71, 2500, 50, 190])
    np.testing.assert_allclose(out["volume"].to_numpy(), prices["volume"].to_numpy())
    assert prices["currency"].iloc[0] == "GBp"  # input not mutated


def test_100x_jump_and_non_positive_flagged_per_ticker():
    a = panel("A", [100, 101, 102, 10100, 103, 0, 104])  # 100x spike, then a zero
    b = panel("B", [1.0, 1.01, 1.02, 1.03, 1.04, 1.05, 1.06])  # a cheap ticker is not "100x" of A
    prices = pd.concat([b, a], ignore_index=True).sample(frac=1, random_state=0)  # order must not matter
    reasons = flag_bad_bars(prices)
    flagged = prices.assign(reason=reasons)[reasons != ""]
    assert sorted(zip(flagged["ticker"], flagged["close"], flagged["reason"], strict=True)) == [("A", 0.0, "non_positive"), ("A", 10100.0, "unit_jump")]
    kept, excluded = exclude_bad_bars(prices)
    assert len(kept) == len(prices) - 2 and len(excluded) == 2


def test_bad_bar_decision_uses_only_earlier_bars():
    base = [100, 101, 102, 103, 104]
    with_future = panel("A", base + [10400, 10500, 10600, 10700])  # permanent pence->pound-like switch
    reasons_full = flag_bad_bars(with_future)
    reasons_cut = flag_bad_bars(with_future.iloc[:6])
    # The verdict on bar 5 is the same whether or not later bars exist.
    assert reasons_full.iloc[5] == reasons_cut.iloc[5] == "unit_jump"
    assert (reasons_full.iloc[:5] == "").all()


def test_staleness_counts_weekdays_and_missing():
    last = pd.Series(pd.to_datetime(["2024-03-29", "2024-03-22", None]), index=["A", "B", "C"])
    table = staleness(last, date(2024, 4, 1), stale_after_days=3)  # Monday
    assert table["days_behind"].tolist()[:2] == [1.0, 6.0]
    assert table["stale"].tolist() == [False, True, True]
    assert table["missing"].tolist() == [False, False, True]


def test_round_readiness_refuses_and_names_markets_behind():
    universe = [f"{i} JP" for i in range(10)] + [f"S{i} US" for i in range(10)]
    last = pd.Series(pd.Timestamp("2024-03-28"), index=[f"S{i} US" for i in range(10)] + ["0 JP"])
    with pytest.raises(BadInputError, match="prices_not_ready") as err:
        check_round_readiness(universe, last, date(2024, 3, 29), stale_after_days=3, max_stale_share=0.2)
    message = str(err.value)
    assert "JP: 9/10 (9 missing)" in message and "US" not in message.split("markets behind:")[1]


def test_round_readiness_passes_under_the_limit_with_report():
    universe = ["A US", "B US", "C JP"]
    last = pd.Series(pd.to_datetime(["2024-03-28", "2024-03-28", "2024-01-02"]), index=universe)
    report = check_round_readiness(universe, last, date(2024, 3, 29), stale_after_days=3, max_stale_share=0.5)
    assert report["stale_or_missing"] == 1 and report["markets_behind"] == {"JP": 1}


def test_round_readiness_treats_crypto_symbols_as_one_market():
    universe = ["BTC", "ETH", "SOL", "DOGE"]
    last = pd.Series(pd.to_datetime(["2024-03-28", "2024-03-28", "2024-03-28"]), index=["BTC", "ETH", "SOL"])
    report = check_round_readiness(universe, last, date(2024, 3, 29), stale_after_days=3, max_stale_share=0.5,
                                   tournament="crypto")
    assert report["markets_behind"] == {"CRYPTO": 1}
    with pytest.raises(BadInputError, match=r"markets behind: CRYPTO: 1/4 \(1 missing\)"):
        check_round_readiness(universe, last, date(2024, 3, 29), stale_after_days=3, max_stale_share=0.1,
                              tournament="crypto")
