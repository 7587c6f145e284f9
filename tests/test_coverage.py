"""Round coverage counts only the live universe (never above 100 %)."""

from __future__ import annotations

import pandas as pd

from numerflow.tasks.prices.quality import universe_coverage
from numerflow.tasks.round.report import coverage_line


def test_tickers_outside_the_universe_are_not_counted_against_it():
    universe = [f"T{i} US" for i in range(132)]
    # 150 with stored bars: 130 universe tickers, 20 delisted/stale-snapshot tickers outside.
    stored = universe[:130] + [f"OLD{i} US" for i in range(20)]

    coverage = universe_coverage(universe, stored)

    assert coverage == {"covered": 130, "universe": 132, "share": 130 / 132, "outside": 20}
    line = coverage_line(coverage)
    assert line.startswith("130 of 132 universe tickers have prices (98.5%)")
    assert "20 more ingested outside the live universe" in line


def test_full_coverage_is_100_percent_and_ids_are_any_tournament_column():
    symbols = ["BTC", "ETH", "SOL"]
    coverage = universe_coverage(pd.Series(symbols), symbols)
    assert coverage == {"covered": 3, "universe": 3, "share": 1.0, "outside": 0}
    assert coverage_line(coverage) == "3 of 3 universe tickers have prices (100.0%)"
    assert coverage_line({}) == "no universe tickers to cover"

