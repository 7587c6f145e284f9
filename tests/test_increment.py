"""A new day appended to the dataset (tasks/model/increment.py) equals a full rebuild, bit for bit.

Each test builds the dataset of a day-1 panel, then of a later panel, in one store (the append path)
and in a fresh store (the whole build), and compares every column exactly. The panels carry what
real vendors send: holidays, NaN bars, a listing that starts after day 1, one that stopped before
it, several new days at once; the real sample in ../shared/data is used when it is beside the clone.
"""

from __future__ import annotations

import logging
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from numerflow.tasks.core.config import TargetSettings
from numerflow.tasks.core.schemas import PRICE_SCHEMA
from numerflow.tasks.core.store import Store, read_parquet, write_parquet
from numerflow.tasks.model.dataset import build_dataset
from numerflow.tasks.model.features import LOOKBACK_BARS
from numerflow.tasks.model.increment import history_path
from numerflow.tasks.prices.sources.demo import DemoMarket

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-prices-sample"
SOURCE = "vendor"
TARGET = TargetSettings()


def _write_prices(store: Store, panel: pd.DataFrame) -> None:
    folder = store.prices_dir(SOURCE)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.parquet"):
        old.unlink()
    frame = panel.assign(date=pd.to_datetime(panel["date"]).dt.date).reset_index(drop=True)
    write_parquet(folder / "part-0.parquet", frame[PRICE_SCHEMA.names], schema=PRICE_SCHEMA)


def _build(store: Store, panel: pd.DataFrame, caplog) -> tuple[pd.DataFrame, str]:
    """The dataset of ``panel`` and how it was built (``DatasetInfo.built``, which the log says too)."""
    _write_prices(store, panel)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="numerflow.tasks.model.dataset"):
        info = build_dataset(store, SOURCE, TARGET)
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "numerflow.tasks.model.dataset")
    assert info.built and info.built in logged
    return read_parquet(Path(info.path)), info.built


def _assert_append_equals_rebuild(tmp_path: Path, caplog, panels: list[pd.DataFrame]) -> list[str]:
    """Build ``panels`` one after another in one store; each must equal a whole build of it."""
    store = Store(tmp_path / "appended")
    said = []
    for day, panel in enumerate(panels):
        appended, message = _build(store, panel, caplog)
        # Many small row groups, so the next append copies the kept rows group by group and cuts one.
        for dataset in store.root.joinpath("features").glob("*[0-9a-f].parquet"):
            pq.write_table(pq.read_table(dataset), dataset, row_group_size=997)
        rebuilt, _ = _build(Store(tmp_path / f"whole-{day}"), panel, caplog)
        assert len(appended) == len(rebuilt) > 0
        pd.testing.assert_frame_equal(appended, rebuilt, check_exact=True)
        said.append(message)
    return said


def _demo_panel(tickers: int = 120, years: float = 2.0, end: date = date(2024, 6, 28)) -> pd.DataFrame:
    market = DemoMarket(tickers=tickers, years=years, signal=0.5, seed=7, end=end)
    return market.fetch(market.all_tickers())


def _until(panel: pd.DataFrame, day: str) -> pd.DataFrame:
    return panel.loc[pd.to_datetime(panel["date"]) <= pd.Timestamp(day)].reset_index(drop=True)


def test_each_new_day_appended_equals_a_whole_rebuild(tmp_path, caplog):
    panel = _demo_panel()
    days = ["2024-06-20", "2024-06-21", "2024-06-26", "2024-06-28"]  # one day, then 3 at once, then 2
    said = _assert_append_equals_rebuild(tmp_path, caplog, [_until(panel, day) for day in days])
    assert "built whole: no earlier dataset" in said[0]
    assert all(message.startswith("appended") for message in said[1:]), said
    # One new date of 120 tickers (a few on holiday), and the targets of the 22 dates before it (a few
    # more: a ticker's own holidays put its 22nd-last bar further back, and the earliest one counts).
    assert re.fullmatch(r"appended (\d+) new rows to [0-9a-f]{16}, the targets of its last ([\d,]+) rows recomputed",
                        said[1])
    new_rows, recomputed = (int(n.replace(",", "")) for n in re.findall(r"[\d,]+(?= new| rows rec)", said[1]))
    assert 100 <= new_rows <= 120 and 22 * 100 <= recomputed <= 30 * 120


def test_listings_that_start_after_or_stop_before_the_last_build_and_nan_bars(tmp_path, caplog):
    panel = _demo_panel()
    tickers = sorted(panel["ticker"].unique())
    day1 = "2024-06-14"
    late, stopped, holey = tickers[3], tickers[5], tickers[8]
    dates = pd.to_datetime(panel["date"])
    panel = panel.loc[~((panel["ticker"] == late) & (dates <= pd.Timestamp(day1)))]  # lists on 2024-06-17
    panel = panel.loc[~((panel["ticker"] == stopped) & (pd.to_datetime(panel["date"]) > pd.Timestamp("2024-06-10")))]
    after = (panel["ticker"] == holey) & (pd.to_datetime(panel["date"]) > pd.Timestamp(day1))
    panel.loc[after & (pd.to_datetime(panel["date"]).dt.day % 2 == 0), "adj_close"] = np.nan  # NaN bars after day 1
    panel = panel.reset_index(drop=True)
    said = _assert_append_equals_rebuild(tmp_path, caplog, [_until(panel, day1), panel])
    assert said[1].startswith("appended"), said


def test_a_revised_or_repulled_history_is_built_whole_and_says_which(tmp_path, caplog):
    panel = _demo_panel()
    day1 = _until(panel, "2024-06-20")
    later = _until(panel, "2024-06-24").copy()
    revised = sorted(later["ticker"].unique())[2]
    # A dividend re-pull scales the whole earlier adjusted history of that ticker.
    earlier = (later["ticker"] == revised) & (pd.to_datetime(later["date"]) <= pd.Timestamp("2024-06-20"))
    later.loc[earlier, "adj_close"] *= 0.99
    said = _assert_append_equals_rebuild(tmp_path, caplog, [day1, later])
    assert "built whole" in said[1] and "1 ticker's rows up to 2024-06-20 changed" in said[1] and revised in said[1]


def test_a_ticker_added_with_its_history_is_built_whole(tmp_path, caplog):
    panel = _demo_panel()
    newcomer = sorted(panel["ticker"].unique())[4]
    day1 = _until(panel, "2024-06-20")
    day1 = day1.loc[day1["ticker"] != newcomer]
    said = _assert_append_equals_rebuild(tmp_path, caplog, [day1, _until(panel, "2024-06-21")])
    assert "built whole" in said[1] and "added 1" in said[1] and newcomer in said[1]


def test_the_history_file_describes_every_ticker_and_its_lookback(tmp_path, caplog):
    panel = _demo_panel(tickers=30)
    store = Store(tmp_path / "s")
    _build(store, panel, caplog)
    history = read_parquet(history_path(next(store.root.joinpath("features").glob("*[0-9a-f].parquet"))))
    bars = panel.dropna(subset=["adj_close"]).groupby("ticker")["date"].agg(["size", lambda d: sorted(d)])
    assert history["ticker"].tolist() == sorted(panel["ticker"].unique())
    for _, row in history.iterrows():
        count, dates = bars.loc[row["ticker"]]
        assert row["bars"] == count
        assert row["lookback_date"] == pd.Timestamp(dates[max(count - LOOKBACK_BARS, 0)])
        assert row["unlabelled_date"] == pd.Timestamp(dates[max(count - TARGET.lag - TARGET.horizon, 0)])
    assert history[["ema_fast", "ema_slow", "ema_signal"]].notna().all().all()


def _real_panel() -> pd.DataFrame:
    frames = []
    for path in sorted(REAL.glob("*_data.csv"))[:40]:
        frame = pd.read_csv(path)
        frames.append(pd.DataFrame({
            "ticker": frame["Name"].astype(str), "date": pd.to_datetime(frame["date"]),
            "open": frame["open"], "high": frame["high"], "low": frame["low"], "close": frame["close"],
            "adj_close": frame["close"], "volume": frame["volume"].astype(float), "currency": "USD",
        }))
    panel = pd.concat(frames, ignore_index=True)
    return panel.loc[pd.to_datetime(panel["date"]).dt.dayofweek < 5].reset_index(drop=True)


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/real-prices-sample is not beside this clone")
def test_real_sample_days_appended_equal_a_whole_rebuild(tmp_path, caplog):
    panel = _real_panel()
    last_days = np.sort(pd.to_datetime(panel["date"]).unique())[-4:]
    panels = [panel.loc[pd.to_datetime(panel["date"]) <= day].reset_index(drop=True) for day in last_days]
    said = _assert_append_equals_rebuild(tmp_path, caplog, panels)
    assert all(message.startswith("appended") for message in said[1:]), said


def test_a_damaged_earlier_dataset_is_not_appended_to_but_rebuilt_whole(tmp_path, caplog):
    panel = _demo_panel(tickers=40)
    store = Store(tmp_path / "s")
    _build(store, _until(panel, "2024-06-20"), caplog)
    earlier = next(p for p in store.root.joinpath("features").glob("*.parquet") if p.name.count(".") == 1)
    earlier.write_bytes(earlier.read_bytes()[: earlier.stat().st_size // 2])  # cut in half by a bad copy
    later = _until(panel, "2024-06-21")
    dataset, built = _build(store, later, caplog)
    assert built.startswith(f"built whole: the earlier dataset {earlier.name} cannot be read")
    rebuilt, _ = _build(Store(tmp_path / "fresh"), later, caplog)
    pd.testing.assert_frame_equal(dataset, rebuilt, check_exact=True)
