"""Price sources: anything that returns daily bars in the store's price schema.

A source implements :class:`PriceSource`. The ingest stage (``tasks/prices/ingest.py``) asks it
for bars and writes them to ``prices/<source.name>/``. Implementations:

- ``demo``: the built-in synthetic market (``tasks/prices/sources/demo.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Protocol, runtime_checkable

import pandas as pd


@runtime_checkable
class PriceSource(Protocol):
    """Daily bars for a set of tickers. Returns a long DataFrame in ``PRICE_SCHEMA``."""

    name: str

    def fetch(self, tickers: Sequence[str], start: date | None = None, end: date | None = None) -> pd.DataFrame:
        """Bars for ``tickers`` with ``start <= date <= end`` (None = unbounded)."""
        ...
