"""How often the ticker resolver's first Yahoo candidate is the right one, and how often the right
one is among its candidates, on Numerai's own public Bloomberg → Yahoo map
(tests/data/numerai_yahoo_map.csv; provenance in its header), overall and per country.

    .venv/bin/python benchmarks/bench_resolution.py

Measured four ways:

- rules only, ``numerai_ticker`` (ISO-2 codes, today's format): what a first run gets before any
  network answer (no Yahoo search, no overrides, nothing remembered);
- rules only, ``bloomberg_ticker`` (Bloomberg's codes, ``VOD LN``/``SAP GR``/``RY CN``): the same
  universe in the old convention, which the resolver also reads;
- after one ingest: the ingest tries the candidates in order and remembers the first that returns
  prices (``status = remembered``), so from the next round on that one goes first. Simulated here by
  remembering the map's symbol wherever the rules' candidates hold it: the rules still have to
  produce the right symbol, the map only stands in for Yahoo answering it;
- KOSPI/KOSDAQ and TWSE/TPEx by code prefix: a rule fitted on a random half of the map's Korean and
  Taiwanese codes (majority exchange per 1-, 2- and 3-digit prefix), measured on the other half,
  against the default order (``.KS``/``.TW`` first), 20 random splits.

Then the remaining failures of the first kind, by class, with examples. Tickers no rule can spell
(Malaysia's numeric codes, Singapore's, Ireland's) are what the search/lookup step
(tasks/prices/lookup.py) is for.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from numerflow.tasks.prices.tickers import resolve_universe, split_numerai_ticker

MAP = Path(__file__).resolve().parents[1] / "tests" / "data" / "numerai_yahoo_map.csv"

#: Where Yahoo spells listings by the exchange's own code: no rule, the search's job.
LOOKUP_MARKETS = ("MY", "SG", "IE")


def _resolved(table: pd.DataFrame, column: str, remember: bool) -> pd.DataFrame:
    """The map's rows with the resolver's first candidate and candidates for ``column``."""
    ids = table[column]
    remembered = None
    if remember:
        rules = resolve_universe(ids).set_index("numerai_ticker")["candidates"]
        remembered = {t: y for t, y in zip(ids, table["yahoo_symbol"], strict=True) if y in rules.get(t, [])}
    resolved = resolve_universe(ids, remembered=remembered).set_index("numerai_ticker")
    return pd.DataFrame({
        "ticker": ids.to_numpy(),
        "truth": table["yahoo_symbol"].to_numpy(),
        "country": resolved["country"].reindex(ids).fillna("??").to_numpy(),
        "first": resolved["yahoo_symbol"].reindex(ids).to_numpy(),
        "candidates": resolved["candidates"].reindex(ids).to_numpy(),
    })


def accuracy(table: pd.DataFrame, column: str = "numerai_ticker", remember: bool = False) -> pd.DataFrame:
    """Per country: tickers, first candidate right, right one among the candidates."""
    rows = _resolved(table, column, remember)
    frame = pd.DataFrame({
        "country": rows["country"],
        "first": (rows["first"] == rows["truth"]).fillna(False).astype(bool),
        "any": [t in (c or []) for t, c in zip(rows["truth"], rows["candidates"], strict=True)],
    })
    by = frame.groupby("country").agg(tickers=("first", "size"), first=("first", "sum"), any=("any", "sum"))
    by.loc["TOTAL"] = by.sum()
    by["first_share"] = by["first"] / by["tickers"]
    by["any_share"] = by["any"] / by["tickers"]
    return by.sort_values("tickers", ascending=False)


def _suffix(symbols: pd.Series) -> pd.Series:
    return symbols.astype("string").str.extract(r"(\.[A-Z]+)$")[0].fillna("")


def failure_classes(table: pd.DataFrame, column: str = "numerai_ticker") -> pd.DataFrame:
    """The tickers whose first candidate is wrong, one class each: ``second exchange`` (right symbol,
    the other exchange's suffix among the candidates), ``spelling among candidates`` (a later
    spelling on the same exchange), ``exchange code (search)`` (MY/SG/IE), ``exchange not in the
    rules`` (e.g. Berlin/Munich), ``renamed or other symbol``."""
    rows = _resolved(table, column, remember=False)
    wrong = rows[(rows["first"] != rows["truth"]).fillna(True).astype(bool)].copy()
    among = np.array([t in (c or []) for t, c in zip(wrong["truth"], wrong["candidates"], strict=True)], dtype=bool)
    truth_suffix, first_suffix = _suffix(wrong["truth"]), _suffix(wrong["first"])
    known = np.array([bool(c) and s in set(_suffix(pd.Series(c, dtype="string")))
                      for s, c in zip(truth_suffix, wrong["candidates"], strict=True)], dtype=bool)
    cls = np.select(
        [among & (truth_suffix != first_suffix).to_numpy(), among, wrong["country"].isin(LOOKUP_MARKETS).to_numpy(),
         ~known],
        ["second exchange", "spelling among candidates", "exchange code (search)", "exchange not in the rules"],
        default="renamed or other symbol",
    )
    wrong["class"] = cls
    return wrong


def prefix_rule_heldout(table: pd.DataFrame, splits: int = 20) -> pd.DataFrame:
    """Korean and Taiwanese exchange by code prefix: fitted on one half, measured on the other."""
    parts = split_numerai_ticker(table["numerai_ticker"])
    out = []
    for country, default in (("KR", ".KS"), ("TW", ".TW")):
        at = (parts["country"] == country).fillna(False).to_numpy()
        codes = parts["symbol"][at].astype(str).to_numpy()
        exchange = _suffix(table["yahoo_symbol"][at]).to_numpy()
        for digits in (1, 2, 3):
            rule_share, default_share = [], []
            for seed in range(splits):
                fit = np.random.default_rng(seed).random(len(codes)) < 0.5
                prefix = pd.Series([c[:digits] for c in codes])
                rule = pd.Series(exchange[fit]).groupby(prefix[fit].to_numpy()).agg(lambda s: s.value_counts().idxmax())
                predicted = prefix[~fit].map(rule).fillna(default).to_numpy()
                rule_share.append(float((predicted == exchange[~fit]).mean()))
                default_share.append(float((exchange[~fit] == default).mean()))
            out.append({"country": country, "prefix_digits": digits, "held_out_tickers": int((~fit).sum()),
                        "prefix_rule": np.mean(rule_share), "default_order": np.mean(default_share)})
    return pd.DataFrame(out)


def load_map() -> pd.DataFrame:
    """The pairs with a Yahoo symbol (the map lists some Polish and Philippine tickers without one)."""
    table = pd.read_csv(MAP, comment="#")
    return table[table["yahoo_symbol"].notna()].reset_index(drop=True)


def main() -> int:
    table = load_map()
    pd.set_option("display.width", 120)
    fmt = {"float_format": lambda v: f"{v:.3f}"}
    print(f"{len(table)} Bloomberg -> Yahoo pairs with a Yahoo symbol ({MAP.name})\n")
    runs = {"rules only, numerai_ticker (ISO-2)": accuracy(table),
            "rules only, bloomberg_ticker (Bloomberg codes)": accuracy(table, "bloomberg_ticker"),
            "after one ingest (winner remembered), numerai_ticker": accuracy(table, remember=True)}
    summary = pd.DataFrame({name: result.loc["TOTAL", ["tickers", "first_share", "any_share"]]
                            for name, result in runs.items()}).T
    print(summary.to_string(**fmt))
    print("\nper country, rules only, numerai_ticker:")
    print(runs["rules only, numerai_ticker (ISO-2)"].to_string(**fmt))
    print("\nKOSPI/KOSDAQ, TWSE/TPEx by code prefix (fitted on a random half, measured on the other, 20 splits):")
    print(prefix_rule_heldout(table).to_string(index=False, **fmt))
    wrong = failure_classes(table)
    print(f"\nfirst candidate wrong, rules only: {len(wrong)} tickers, by class")
    for (cls, country), group in wrong.groupby(["class", "country"]):
        examples = ", ".join(f"{t} -> {y}" for t, y in zip(group["ticker"][:3], group["truth"][:3], strict=True))
        print(f"  {cls:27s} {country}  {len(group):4d}  e.g. {examples}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
