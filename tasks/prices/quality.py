"""Price data quality: currency sub-units, bad bars, staleness, round readiness.

Everything is vectorised over the whole long panel (one row per ticker and date).
Bad-bar checks look only backwards (a bar is judged against the bars before it), so the
decision to exclude a bar at date d uses only data available at d.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.schemas import as_strings, ticker_country

PRICE_FIELDS = ["open", "high", "low", "close", "adj_close"]

# Quote currencies that are 1/100 of the ISO currency: London pence, Johannesburg cents,
# Tel Aviv agorot. Yahoo reports them as "GBp" / "ZAc" / "ILA" (GBX/ZAC seen elsewhere).
SUB_UNITS: dict[str, tuple[str, float]] = {
    "GBp": ("GBP", 100.0),
    "GBX": ("GBP", 100.0),
    "ZAc": ("ZAR", 100.0),
    "ZAC": ("ZAR", 100.0),
    "ILA": ("ILS", 100.0),
}


def normalise_currency_units(prices: pd.DataFrame) -> pd.DataFrame:
    """Prices quoted in a sub-unit (GBp, ZAc, ILA) divided by 100, currency set to the ISO unit.

    Volume (shares) is unchanged; a ``dividends`` column, when present, is converted too.
    Returns a new frame.
    """
    if "currency" not in prices.columns or prices.empty:
        return prices.copy()
    currency = prices["currency"].astype("string")
    # Look up only the sub-unit rows: a per-row map over millions of currency strings is slow.
    sub = currency.isin(list(SUB_UNITS)).to_numpy(dtype=bool, na_value=False)
    if not sub.any():
        return prices.copy(deep=False)  # copy-on-write: no column is copied until one is written
    out = prices.copy()
    divisor = np.ones(len(out))
    divisor[sub] = currency[sub].map({k: v[1] for k, v in SUB_UNITS.items()}).astype("float64").to_numpy()
    columns = [c for c in [*PRICE_FIELDS, "dividends"] if c in out.columns]
    if sub.any():
        out[columns] = out[columns].to_numpy(dtype="float64", na_value=np.nan) / divisor[:, None]
        out["currency"] = currency.replace({k: v[0] for k, v in SUB_UNITS.items()})
    return out


def flag_bad_bars(prices: pd.DataFrame, *, jump_factor: float = 50.0, window: int = 5,
                  ticker_codes: np.ndarray | None = None) -> pd.Series:
    """Reason each bar must be excluded ("" when the bar is fine), aligned with ``prices``.

    - ``non_positive``: any price field <= 0 or a missing close / adjusted close;
    - ``unit_jump``: the close is ``jump_factor``× above or below the median of the
      ticker's previous ``window`` closes (pence/pound mix-ups make 100× jumps).
    Only earlier bars of the same ticker are looked at. ``ticker_codes``: integer codes of
    ``prices["ticker"]`` when the caller has them (factorising millions of strings costs).
    """
    n = len(prices)
    reasons = np.zeros(n, dtype=np.int8)  # index into REASONS: a string per row costs seconds at 25 M rows
    if n == 0:
        return pd.Series([], index=prices.index, dtype="string")
    fields = [c for c in PRICE_FIELDS if c in prices.columns]
    values = prices[fields].to_numpy(dtype="float64", na_value=np.nan)
    with np.errstate(invalid="ignore"):
        non_positive = (values <= 0).any(axis=1)
    missing = np.isnan(prices["close"].to_numpy(dtype="float64", na_value=np.nan)) | np.isnan(
        prices["adj_close"].to_numpy(dtype="float64", na_value=np.nan)
    )
    reasons[non_positive | missing] = 1

    # Each ticker's previous `window` positive closes, as lagged copies of the (ticker, date)-sorted
    # closes (a lag that crosses into another ticker is empty), all in numpy.
    tickers = pd.factorize(prices["ticker"])[0] if ticker_codes is None else np.asarray(ticker_codes)
    days = prices["date"].to_numpy(dtype="datetime64[s]").view("int64")
    step_t, step_d = np.diff(tickers), np.diff(days)
    if ((step_t > 0) | ((step_t == 0) & (step_d > 0))).all():
        order = np.arange(n)  # already sorted (the usual case): no sort of millions of rows
    else:
        order = np.lexsort((days, tickers))
    codes = tickers[order]
    close = prices["close"].to_numpy(dtype="float64", na_value=np.nan)[order]
    close = np.where(close > 0, close, np.nan)
    lags = []
    for k in range(1, window + 1):
        lag = np.full(n, np.nan)
        if k < n:
            lag[k:] = np.where(codes[k:] == codes[:-k], close[:-k], np.nan)
        lags.append(lag)
    # The median lies between the lags' min and max: only a close 50× off one of those can be a
    # jump, so the exact median is taken for those few rows alone.
    low, high = lags[0].copy(), lags[0].copy()
    for lag in lags[1:]:
        np.fmin(low, lag, out=low)
        np.fmax(high, lag, out=high)
    with np.errstate(invalid="ignore"):
        slack = 1 + 1e-9
        candidate = (close * slack >= jump_factor * low) | (close <= high / jump_factor * slack)
    jump = np.zeros(n, dtype=bool)
    if candidate.any():
        rows = np.flatnonzero(candidate)
        reference = np.nanmedian(np.column_stack([lag[rows] for lag in lags]), axis=1)  # candidates have history
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = close[rows] / reference
        jump[rows] = (ratio >= jump_factor) | (ratio <= 1.0 / jump_factor)
    jump_rows = order[jump]
    reasons[jump_rows] = np.where(reasons[jump_rows] == 0, 2, reasons[jump_rows])
    return as_strings(pd.Series(pd.Categorical.from_codes(reasons, categories=["", "non_positive", "unit_jump"]),
                                index=prices.index))


def exclude_bad_bars(prices: pd.DataFrame, **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept bars, excluded bars with a ``reason`` column). See :func:`flag_bad_bars`."""
    reasons = flag_bad_bars(prices, **kwargs)
    bad = (reasons != "").to_numpy()
    excluded = prices.loc[bad, ["ticker", "date"]].assign(reason=reasons[bad].to_numpy())
    return prices.loc[~bad].reset_index(drop=True), excluded.reset_index(drop=True)


def all_excluded_error(reasons: dict[str, int]) -> str:
    """The ledger error of a ticker whose every bar was excluded (it fails: nothing to store)."""
    detail = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])) or "none kept"
    return f"all_bars_excluded: every bar of this ticker was excluded ({detail}); fix its prices at the source"


def trading_days_behind(last_dates: pd.Series, as_of: date) -> pd.Series:
    """Weekdays after each last bar up to and including ``as_of`` (holidays not known: weekdays)."""
    last = pd.to_datetime(last_dates).to_numpy(dtype="datetime64[D]")
    valid = ~np.isnat(last)
    behind = np.full(len(last), np.nan)
    end = np.datetime64(as_of, "D") + 1
    behind[valid] = np.busday_count(last[valid] + 1, end)
    return pd.Series(np.maximum(behind, 0), index=last_dates.index, dtype="float64")


def calendar_days_behind(last_dates: pd.Series, as_of: date) -> pd.Series:
    """Days after each last bar up to and including ``as_of``: a market that trades every day (Crypto)."""
    last = pd.to_datetime(last_dates)
    behind = (pd.Timestamp(as_of) - last).dt.days.astype("float64")
    return behind.clip(lower=0)


def staleness(last_dates: pd.Series, as_of: date, stale_after_days: int, *, calendar_days: bool = False
              ) -> pd.DataFrame:
    """Per ticker: last bar date, days behind ``as_of`` (trading days; ``calendar_days``: every day,
    Crypto's calendar), ``stale`` (missing counts as stale).

    ``last_dates``: indexed by ticker, NaT for tickers with no stored bars.
    """
    behind = (calendar_days_behind if calendar_days else trading_days_behind)(last_dates, as_of)
    missing = behind.isna()
    return pd.DataFrame(
        {
            "last_date": pd.to_datetime(last_dates),
            "days_behind": behind,
            "missing": missing,
            "stale": missing | (behind > stale_after_days),
        },
        index=last_dates.index,
    )


def check_round_readiness(
    universe: pd.Series | list[str],
    last_dates: pd.Series,
    as_of: date,
    *,
    stale_after_days: int = 3,
    max_stale_share: float = 0.1,
    tournament: str = "signals",
) -> dict:
    """Refuse (BadInputError ``prices_not_ready``) when too much of the universe is stale or missing.

    ``universe``: the round's ids (``numerai_ticker``, or crypto ``symbol``: counted in calendar days); ``last_dates``:
    last stored bar per ticker (index = ticker; tickers absent count as missing). Markets are
    the tickers' countries for Signals and one ``CRYPTO`` market for Crypto. Returns a report
    dict (counts, share, markets behind) when the round may go ahead.
    """
    tickers = pd.Index(pd.Series(list(universe), dtype="string").dropna().unique())
    if len(tickers) == 0:
        raise BadInputError("the universe is empty: nothing to check prices against", tag="empty_universe")
    aligned = pd.to_datetime(last_dates.reindex(tickers))
    crypto = tournament == "crypto"  # tokens trade every day: a coin 3 days without a bar is 3 days behind
    table = staleness(aligned, as_of, stale_after_days, calendar_days=crypto)
    table["country"] = "CRYPTO" if crypto else ticker_country(pd.Series(tickers, index=tickers)).to_numpy()
    by_country = (
        table.groupby("country", dropna=False)
        .agg(tickers=("stale", "size"), stale=("stale", "sum"), missing=("missing", "sum"))
        .sort_values("stale", ascending=False)
    )
    behind = by_country[by_country["stale"] > 0]
    n_bad = int(table["stale"].sum())
    share = n_bad / len(table)
    report = {
        "as_of": str(as_of),
        "tickers": int(len(table)),
        "stale_or_missing": n_bad,
        "missing": int(table["missing"].sum()),
        "share": share,
        "max_stale_share": max_stale_share,
        "markets_behind": {str(c): int(r["stale"]) for c, r in behind.iterrows()},
    }
    if share > max_stale_share:
        detail = ", ".join(
            f"{c}: {int(r['stale'])}/{int(r['tickers'])} ({int(r['missing'])} missing)" for c, r in behind.head(10).iterrows()
        )
        raise BadInputError(
            f"{n_bad} of {len(table)} universe tickers ({share:.1%}) have no bar within {stale_after_days} "
            f"{'calendar' if crypto else 'trading'} days of {as_of} (limit {max_stale_share:.0%}); markets behind: "
            f"{detail}. "
            "Run `numerflow ingest` again (see the ingest ledger for per-ticker errors) or raise "
            "yahoo.max_stale_share if these markets were closed",
            tag="prices_not_ready",
        )
    return report


def universe_coverage(universe_ids: pd.Series | list[str], stored_tickers: pd.Index | list[str]) -> dict:
    """How many of the live universe's ids have stored bars: the bars the round uses, whatever
    this run's ingest did to them (a ticker whose ingest failed today still has yesterday's).

    Only universe ids count: the store also holds tickers outside the live universe (delisted
    history for survivorship-free training, stale snapshots), and counting those against the
    universe gives shares above 100 %. ``stored_tickers``: tickers with bars in the store.
    Returns ``covered``, ``universe``, ``share`` (None for an empty universe) and ``outside``
    (tickers with prices that are not in the universe).
    """
    ids = pd.Index(pd.Series(list(universe_ids), dtype="string").dropna().unique())
    with_prices = pd.Index(pd.Series(list(stored_tickers), dtype="string").dropna().unique())
    covered = int(with_prices.isin(ids).sum())
    return {"covered": covered, "universe": int(len(ids)), "share": covered / len(ids) if len(ids) else None,
            "outside": int(len(with_prices) - covered)}
