"""The offline Crypto market: a deterministic synthetic token market on the every-day calendar.

``numerflow run --demo --tournament crypto`` ingests it like any price source (``DemoMarket``'s
``PriceSource`` methods: ``fetch``, ``all_tickers``, ``listings``), its universe is ``symbol``
ids, and it supplies what a Crypto round needs beyond prices: Numerai-shaped v2.0 files
(``numerai_files``: ``train.parquet`` / ``live.parquet`` with ``feature_*`` and
``target_binned_return_20``, so the ``numerai`` and ``both`` feature sets run offline) and a
synthetic meta model to score MMC against (``meta_model``).

Model (log returns, one row per token, one column per calendar day: tokens trade every day)::

    r[i, t] = beta_i * btc[t] + alt_i * alt[t] + sector[s_i, t] + sigma_i * eps[i, t]
              + signal * DRIFT_SCALE * drift[i, t]

``btc`` is the market (BTC's own return, with BTC's tiny idiosyncratic part), ETH loads on it
with beta ~1.1 and leads the ``alt`` factor; every other token loads on both, on its sector's
factor, and has fat-tailed (Student-t(4)) idiosyncratic noise of 2.5-6 % a day. ``drift`` is a
latent AR(1) per token (half-life ``DRIFT_HALF_LIFE`` days), the only persistent component: with
``signal = 0`` nothing in the past predicts the cross-section of future returns, with
``signal > 0`` trailing returns do. Tokens list late (a quarter of them), some delist, and
``MISSING_BAR_RATE`` of the days have no bar (the crypto calendar fills them).

The meta model stands for the stake-weighted crowd: the tie-kept rank of ``drift + META_NOISE ×
noise``, so it knows part of what the planted signal knows (at signal 0, nothing that pays).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.signal import lfilter

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.ranking import rank_by_group
from numerflow.tasks.core.store import Store, write_parquet
from numerflow.tasks.model.targets import bin_ranks
from numerflow.tasks.prices.sources.demo import COUNTRY_CODES, N_STYLES, DemoMarket, _Market, demo_store_name

if TYPE_CHECKING:
    from numerflow.tasks.core.config import DemoSettings, Settings

DAYS_PER_YEAR = 365
DRIFT_HALF_LIFE = 30  # days
DRIFT_SCALE = 0.008  # stationary daily std of the drift at signal=1 (against 2.5-6 % daily noise)
META_NOISE = 1.5  # the meta model's noise, in units of the drift's std
MISSING_BAR_RATE = 0.003
LATE_LISTING_RATE = 0.25
DELISTING_RATE = 0.08
N_SECTORS = 6
LEADERS = ("BTC", "ETH")
#: The Numerai-shaped files' target: 20 days of return starting 2 days after the data date (calendar days).
NUMERAI_TARGET = "target_binned_return_20"
#: Their features: Numerai's v2 names, each a binned (fifths) noisy view of a trailing-return window.
NUMERAI_FEATURES = ("feature_momentum_20d", "feature_momentum_60d", "feature_volatility_20d",
                    "feature_volatility_60d")


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([abs(seed), int(seed < 0), 7_770 + stream]))


def _symbols(n: int) -> np.ndarray:
    """BTC, ETH, then three-letter codes (``AAB``…), sorted like every id array of the store."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    codes = [letters[i // 676 % 26] + letters[i // 26 % 26] + letters[i % 26] for i in range(1, 17_576)]
    alts = [c for c in codes if c not in LEADERS][: max(0, n - len(LEADERS))]
    return np.array(sorted([*LEADERS[:n], *alts]), dtype=object)


class CryptoDemoMarket(DemoMarket):
    """The synthetic token market (``tickers`` tokens, ``years`` of daily bars ending ``end``,
    default yesterday UTC). Same ``PriceSource`` surface as ``DemoMarket``; ids are token symbols."""

    def __init__(self, tickers: int = 600, years: float = 6.0, signal: float = 0.5, seed: int = 42,
                 end: date | None = None) -> None:
        super().__init__(tickers=tickers, years=years, signal=signal, seed=seed, end=end)
        self.end = end if end is not None else default_crypto_end()
        self.name = crypto_store_name(self.tickers, self.years, self.signal, self.seed)
        self._drift: np.ndarray | None = None

    @classmethod
    def from_settings(cls, settings: DemoSettings, end: date | None = None) -> CryptoDemoMarket:
        tokens, years = crypto_demo_size(settings)
        return cls(tickers=tokens, years=years, signal=settings.signal, seed=settings.seed, end=end)

    @property
    def identity(self) -> dict[str, Any]:
        return {**super().identity, "kind": "demo-crypto"}

    def __repr__(self) -> str:
        return super().__repr__().replace("DemoMarket", "CryptoDemoMarket", 1)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_drift"] = None
        return state

    @property
    def dates(self) -> pd.DatetimeIndex:
        return pd.date_range(end=pd.Timestamp(self.end), periods=self._n_days, freq="D").as_unit("ms")

    @property
    def _n_days(self) -> int:
        return max(1, int(round(self.years * DAYS_PER_YEAR)))

    def _draw(self) -> _Market:
        market, self._drift = _generate(self.tickers, self.dates, self.signal, self.seed)
        return market

    def release_bars(self) -> None:
        """Kept (a few MB): the Crypto demo's targets, meta model and Numerai-style files read the bars
        after the ingest."""

    @property
    def drift(self) -> np.ndarray:
        """(tokens, days) the latent drift (unit stationary std)."""
        self._market  # noqa: B018 - generates the market (and its drift) once
        assert self._drift is not None
        return self._drift

    def universe(self) -> pd.DataFrame:
        """Tokens live on ``end`` (listed and not delisted): ``symbol``."""
        listings = self.listings()
        return pd.DataFrame({"symbol": listings.loc[~listings["delisted"], "numerai_ticker"].to_numpy()}).astype(
            "string")

    def _cells(self, tickers: Any, dates: Any) -> tuple[np.ndarray, np.ndarray]:
        """Row and day of each (ticker, date) in the market's matrices; an unknown one is refused."""
        market = self._market
        wanted = np.asarray([str(t) for t in tickers], dtype=object)
        stamps = pd.DatetimeIndex(pd.to_datetime(dates)).as_unit("ms")
        rows = np.minimum(np.searchsorted(market.tickers, wanted), len(market.tickers) - 1)
        days = np.minimum(market.dates.searchsorted(stamps), len(market.dates) - 1)
        unknown = (market.tickers[rows] != wanted) | (market.dates[days] != stamps)
        if unknown.any():
            raise BadInputError(f"{int(unknown.sum())} (ticker, date) pairs are not in the crypto demo market, e.g. "
                                f"{wanted[unknown][:3].tolist()}", tag="unknown_tickers")
        return rows, days

    def meta_model(self, tickers: Any, dates: Any) -> np.ndarray:
        """The synthetic meta model at each (ticker, date): per-date tie-kept ranks of the drift plus noise."""
        rows, days = self._cells(tickers, dates)
        noise = _rng(self.seed, 90).standard_normal(self.drift.shape).astype(np.float32)
        raw = self.drift[rows, days] + META_NOISE * noise[rows, days]
        return rank_by_group(raw.astype("float64"), pd.factorize(pd.Series(days))[0])

    def numerai_files(self, folder: Path, live_date: date) -> tuple[Path, Path]:
        """Numerai Crypto v2.0-shaped ``train.parquet`` (``symbol`` index, ``date`` strings on weekdays,
        ``NUMERAI_FEATURES`` binned in fifths, ``target_binned_return_20``) and ``live.parquet`` (the
        universe's features at ``live_date``). A row's target is the token's return from day d+2 to day
        d+22, ranked per date and binned 5/20/50/20/5 %: rows whose window passes ``live_date`` are left out."""
        market = self._market
        log_price = np.log(market.adj_close.astype(np.float64))
        days = np.arange(len(market.dates))
        alive = market.present & (days >= market.first_day[:, None]) & (days <= market.last_day[:, None])
        rng = _rng(self.seed, 91)

        def trailing(window: int) -> np.ndarray:
            out = np.full_like(log_price, np.nan)
            out[:, window:] = log_price[:, window:] - log_price[:, :-window]
            return out

        def volatility(window: int) -> np.ndarray:
            r = np.diff(log_price, axis=1, prepend=np.nan)
            frame = pd.DataFrame(r.T).rolling(window, min_periods=window // 2).std()
            return frame.to_numpy().T

        raw = {"feature_momentum_20d": trailing(20), "feature_momentum_60d": trailing(60),
               "feature_volatility_20d": volatility(20), "feature_volatility_60d": volatility(60)}
        forward = np.full_like(log_price, np.nan)
        forward[:, :-22] = log_price[:, 22:] - log_price[:, 2:-20]
        live_day = int(market.dates.searchsorted(pd.Timestamp(live_date)))
        weekday = np.asarray(market.dates.day_of_week < 5)
        # History on weekdays (Numerai's data dates); the live rows on ``live_date`` whatever its day.
        rows, cols = np.nonzero(alive & (weekday | (days == live_day))[None, :] & (days <= live_day)[None, :])
        frame = pd.DataFrame({"symbol": market.tickers[rows], "day": cols})
        for name, values in raw.items():
            noisy = values[rows, cols] + rng.standard_normal(len(rows)) * np.nanstd(values) * 0.5
            frame[name] = bin_ranks(rank_by_group(noisy, cols), 5)
        target = forward[rows, cols]
        target[cols + 22 > live_day] = np.nan
        frame[NUMERAI_TARGET] = bin_ranks(rank_by_group(target, cols), 5)
        frame["date"] = market.dates[cols].strftime("%Y-%m-%d")
        columns = ["symbol", "date", *NUMERAI_FEATURES]
        train = frame[(frame["day"] < live_day) & frame[NUMERAI_TARGET].notna()][[*columns, NUMERAI_TARGET]]
        live = frame[frame["day"] == live_day][columns]
        # ``symbol`` as the pandas index, as in Numerai's files.
        return (write_parquet(folder / "train.parquet", pa.Table.from_pandas(train.set_index("symbol"))),
                write_parquet(folder / "live.parquet", pa.Table.from_pandas(live.set_index("symbol"))))


#: The Crypto demo's size unless ``demo.tickers`` / ``demo.years`` are set: a few hundred tokens (Numerai's
#: universe is ~500) and three years of daily bars, so the whole round runs in well under a minute.
CRYPTO_DEMO_TOKENS = 300
CRYPTO_DEMO_YEARS = 3.0


def crypto_demo_size(demo: DemoSettings) -> tuple[int, float]:
    """(tokens, years) of the Crypto demo market: the ``[demo]`` settings that are set, else
    ``CRYPTO_DEMO_TOKENS`` and ``CRYPTO_DEMO_YEARS`` (the Signals demo's 600 × 6 is ~4x the bars)."""
    chosen = demo.model_fields_set
    return (demo.tickers if "tickers" in chosen else CRYPTO_DEMO_TOKENS,
            demo.years if "years" in chosen else CRYPTO_DEMO_YEARS)


def crypto_store_name(tickers: int, years: float, signal: float, seed: int) -> str:
    """The crypto demo market's price store (``prices/<name>``): never the Signals demo's."""
    return demo_store_name(tickers, years, signal, seed).replace("demo-", "demo-crypto-", 1)


def default_crypto_end() -> date:
    """Yesterday (UTC): tokens trade every day, so the last full day is always yesterday's."""
    return datetime.now(UTC).date() - timedelta(days=1)


def _generate(n: int, dates: pd.DatetimeIndex, signal: float, seed: int) -> tuple[_Market, np.ndarray]:
    n_days = len(dates)
    tickers = _symbols(n)
    n = len(tickers)
    leaders = {s: int(np.flatnonzero(tickers == s)[0]) for s in LEADERS if s in set(tickers)}
    rng = _rng(seed, 1)
    beta = rng.uniform(0.7, 1.8, n)
    alt = rng.uniform(0.0, 1.5, n)
    sigma = rng.uniform(0.025, 0.06, n)
    sector = rng.integers(0, N_SECTORS, n)
    for symbol, (b, a, s, k) in {"BTC": (1.0, 0.0, 0.004, 0), "ETH": (1.1, 1.0, 0.01, 1)}.items():
        if symbol in leaders:
            beta[leaders[symbol]], alt[leaders[symbol]], sigma[leaders[symbol]] = b, a, s
            sector[leaders[symbol]] = k
    first_day = np.where(rng.random(n) < LATE_LISTING_RATE, rng.integers(0, max(1, int(0.6 * n_days)), n), 0)
    delisted = rng.random(n) < DELISTING_RATE
    last_day = np.where(delisted, rng.integers(int(0.6 * n_days), max(int(0.6 * n_days) + 1, n_days - 30), n),
                        n_days - 1)
    for i in leaders.values():
        first_day[i], last_day[i] = 0, n_days - 1

    shocks = _rng(seed, 2)
    t4 = np.sqrt(2.0)  # Student-t(4) has variance 2: scaled to unit variance
    btc = (shocks.standard_t(4, n_days) / t4 * 0.03).astype(np.float32)
    alt_factor = (shocks.standard_t(4, n_days) / t4 * 0.015).astype(np.float32)
    sectors = (shocks.standard_t(4, (N_SECTORS, n_days)) / t4 * 0.01).astype(np.float32)
    eps = (_rng(seed, 3).standard_t(4, (n, n_days)) / t4).astype(np.float32)
    returns = (beta[:, None] * btc[None, :] + alt[:, None] * alt_factor[None, :] + sectors[sector]
               + sigma[:, None] * eps).astype(np.float32)
    phi = 0.5 ** (1.0 / DRIFT_HALF_LIFE)
    innovations = _rng(seed, 4).standard_normal((n, n_days)) * np.sqrt(1 - phi**2)
    drift = lfilter([1.0], [1.0, -phi], innovations, axis=1).astype(np.float32)
    if signal > 0:
        returns += (signal * DRIFT_SCALE * drift).astype(np.float32)

    start_price = np.exp(_rng(seed, 5).uniform(np.log(0.05), np.log(50.0), n))
    for symbol, price in (("BTC", 30_000.0), ("ETH", 2_000.0)):
        if symbol in leaders:
            start_price[leaders[symbol]] = price
    adj_close = (start_price[:, None] * np.exp(np.cumsum(returns, axis=1, dtype=np.float64))).astype(np.float32)
    wiggle = _rng(seed, 6)
    adj_open = (adj_close * np.exp(wiggle.standard_normal((n, n_days)) * 0.01)).astype(np.float32)
    spread = np.exp(np.abs(wiggle.standard_normal((n, n_days))) * 0.015).astype(np.float32)
    adj_high = np.maximum(adj_open, adj_close) * spread
    adj_low = np.minimum(adj_open, adj_close) / spread
    volume = (np.exp(wiggle.normal(14, 1.5, n))[:, None]
              * np.exp(wiggle.standard_normal((n, n_days)) * 0.4)).astype(np.float32)
    days = np.arange(n_days)
    present = ((days >= first_day[:, None]) & (days <= last_day[:, None])
               & (_rng(seed, 7).random((n, n_days)) >= MISSING_BAR_RATE))
    # Exposures a factor model would carry: size (leaders biggest) and beta; sector in ``sector``.
    styles = np.column_stack([np.log(start_price), beta][:N_STYLES]).astype(np.float32)
    market = _Market(
        dates=dates, tickers=tickers, figis=np.array([""] * n, dtype=object),
        country=np.full(n, COUNTRY_CODES.index("US")), sector=sector, beta=beta, styles=styles,
        first_day=first_day, last_day=last_day, div_period=np.zeros(n, dtype=np.int64),
        div_offset=np.zeros(n, dtype=np.int64), div_yield=np.zeros(n), present=present, adj_close=adj_close,
        adj_open=adj_open, adj_high=adj_high, adj_low=adj_low, volume=volume)
    return market, drift


def demo_numerai_files(settings: Settings) -> tuple[Path, Path]:
    """The Crypto demo market's Numerai-shaped v2.0 ``train.parquet`` and ``live.parquet`` (live date: the
    market's last day), written once per market under ``numerai/crypto/demo/<market>-<end>/``."""
    from numerflow.tasks.prices.configured import demo_market

    market = demo_market(settings)
    assert isinstance(market, CryptoDemoMarket)  # a Crypto demo round's market
    folder = Store(settings.data_dir).root / "numerai" / "crypto" / "demo" / f"{market.name}-{market.end.isoformat()}"
    train, live = folder / "train.parquet", folder / "live.parquet"
    if train.exists() and live.exists():
        return train, live
    return market.numerai_files(folder, market.end)
