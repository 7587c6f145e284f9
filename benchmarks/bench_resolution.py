"""How often the ticker resolver's first Yahoo candidate is the right one, and how often the right
one is among its candidates, on Numerai's own public Bloomberg → Yahoo map
(tests/data/numerai_yahoo_map.csv; provenance in its header), overall and per country.

    .venv/bin/python benchmarks/bench_resolution.py

Rules only (no Yahoo lookup, no overrides, nothing remembered): what a first run gets before any
network answer. Tickers no rule can spell (Malaysia's numeric codes, Singapore's, Ireland's) are what
the search/lookup step (tasks/prices/lookup.py) is for.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from numerflow.tasks.prices.tickers import resolve_universe

MAP = Path(__file__).resolve().parents[1] / "tests" / "data" / "numerai_yahoo_map.csv"


def accuracy(table: pd.DataFrame) -> pd.DataFrame:
    """Per country: tickers, first candidate right, right one among the candidates."""
    resolved = resolve_universe(table["numerai_ticker"]).set_index("numerai_ticker")
    truth = table.set_index("numerai_ticker")["yahoo_symbol"]
    first = resolved["yahoo_symbol"].reindex(truth.index)
    candidates = resolved["candidates"].reindex(truth.index)
    frame = pd.DataFrame({
        "country": resolved["country"].reindex(truth.index).fillna("??"),
        "first": (first == truth).fillna(False).astype(bool),
        "any": [t in (c or []) for t, c in zip(truth, candidates, strict=True)],
    })
    by = frame.groupby("country").agg(tickers=("first", "size"), first=("first", "sum"), any=("any", "sum"))
    by.loc["TOTAL"] = by.sum()
    by["first_share"] = by["first"] / by["tickers"]
    by["any_share"] = by["any"] / by["tickers"]
    return by.sort_values("tickers", ascending=False)


def load_map() -> pd.DataFrame:
    """The pairs with a Yahoo symbol (the map lists some Polish and Philippine tickers without one)."""
    table = pd.read_csv(MAP, comment="#")
    return table[table["yahoo_symbol"].notna()].reset_index(drop=True)


def main() -> int:
    table = load_map()
    result = accuracy(table)
    pd.set_option("display.width", 120)
    print(f"{len(table)} Bloomberg -> Yahoo pairs with a Yahoo symbol ({MAP.name})")
    print(result.to_string(float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
