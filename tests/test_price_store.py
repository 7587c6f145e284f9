"""The price store's layout (tasks.core.price_parts): an ingest appends delta parts, readers merge
them (last write wins per ticker and date; a re-pulled history replaces the old one), compaction
folds them into the base; a kill at any step of a compaction and concurrent ingests leave a
correct store."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from fakes.ingest_steps import ingest_like_the_flow
from fakes.vendor_files import append_day, revise_bar, write_vendor_folder

from numerflow.tasks.core.price_parts import (
    base_path,
    compact_part,
    list_parts,
    should_compact,
    write_delta,
    write_table,
)
from numerflow.tasks.core.schemas import PRICE_SCHEMA
from numerflow.tasks.core.store import Store, read_parquet
from numerflow.tasks.prices.ingest import IngestOptions
from numerflow.tasks.prices.sources.files import FilePriceSource

ROOT = Path(__file__).resolve().parents[1]
TODAY = pd.Timestamp("2024-04-02 12:00")
AS_OF = date(2024, 4, 2)
TICKERS = [f"S{i:02d}" for i in range(12)]
IDS = [f"{t} US" for t in TICKERS]


def _bars(tickers: list[str], days: pd.DatetimeIndex, close: float = 10.0) -> pd.DataFrame:
    rows = [{"ticker": t, "date": d, "open": close, "high": close, "low": close, "close": close + i,
             "adj_close": close + i, "volume": 1000.0, "currency": "USD"} for t in tickers for i, d in enumerate(days)]
    return pd.DataFrame(rows).astype({"date": "datetime64[s]"})


def _table(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame[PRICE_SCHEMA.names], schema=PRICE_SCHEMA, preserve_index=False)


def _ingest(folder: Path, store: Store, **options) -> dict:
    source = FilePriceSource(folder, today=TODAY)
    source.attach(store.root / "ingest" / source.name)
    return ingest_like_the_flow(source, store, IDS, as_of=AS_OF, options=IngestOptions(batch_size=5, **options)).summary


def _fresh_read(folder: Path, tmp_path: Path) -> pd.DataFrame:
    """What the store holds when the same files are ingested in one go (every part written whole)."""
    fresh = Store(tmp_path / "fresh")
    _ingest(folder, fresh)
    assert not list(fresh.prices_dir("files").glob("delta-*"))
    return read_parquet(fresh.prices_dir("files"))


def _mtimes(prices_dir: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in prices_dir.glob("part-*.parquet")}


@pytest.fixture
def day_two(tmp_path):
    """A store after two ingests: day one whole, then one appended day everywhere and one revised
    past bar (three parts of 5, 5 and 2 tickers, each with one delta). Returns (folder, store)."""
    folder = write_vendor_folder(tmp_path / "yf", TICKERS, "2024-01-01", "2024-03-28")
    store = Store(tmp_path / "data")
    _ingest(folder, store)
    bases = _mtimes(store.prices_dir("files"))
    for ticker in TICKERS:
        append_day(folder / f"{ticker}.csv", date(2024, 3, 29))
    revise_bar(folder / "S07.csv", date(2024, 3, 25))
    summary = _ingest(folder, store)
    assert summary["rows"] == 12 + 1 and summary["repulled"] == 1
    assert _mtimes(store.prices_dir("files")) == bases  # no base part rewritten: the new bars went to deltas
    return folder, store


def test_an_appended_day_is_a_delta_part_and_reads_as_a_whole_rewrite_would(day_two, tmp_path):
    folder, store = day_two
    prices = store.prices_dir("files")
    assert [len(p.deltas) for p in list_parts(prices).values()] == [1, 1, 1]
    expected = _fresh_read(folder, tmp_path)
    pd.testing.assert_frame_equal(read_parquet(prices), expected, check_exact=True)  # values and order
    # Columns, a filter and categorical tickers read the merged bars too.
    pd.testing.assert_frame_equal(read_parquet(prices, columns=["date", "close"]),
                                  expected[["date", "close"]], check_exact=True)
    recent = read_parquet(prices, filter_expr=ds.field("date") >= pd.Timestamp("2024-03-25").date())
    pd.testing.assert_frame_equal(recent, expected[expected["date"] >= "2024-03-25"].reset_index(drop=True),
                                  check_exact=True)
    categorical = read_parquet(prices, categorical=["ticker"])
    assert categorical["ticker"].astype(str).tolist() == expected["ticker"].tolist()
    revised = expected.set_index(["ticker", "date"]).loc[("S07 US", pd.Timestamp("2024-03-25")), "close"]
    assert revised == pd.read_csv(folder / "S07.csv").set_index("Date").loc["2024-03-25", "Close"]


def test_a_revised_past_bar_in_a_delta_wins_and_the_last_write_wins(tmp_path):
    days = pd.bdate_range("2024-01-01", periods=10)
    base = _bars(["A US", "B US"], days)
    write_table(base_path(tmp_path, 0), _table(base))
    first = base[(base["ticker"] == "A US") & (base["date"] >= days[3])].assign(close=lambda f: f["close"] * 2)
    write_delta(tmp_path, 0, _table(first), {"A US": days[3].date()})
    second = first[first["date"] >= days[5]].assign(close=lambda f: f["close"] + 0.5)
    write_delta(tmp_path, 0, _table(second), {"A US": days[5].date()})

    read = read_parquet(tmp_path)
    expected = pd.concat([base[(base["ticker"] == "A US") & (base["date"] < days[3])], first[first["date"] < days[5]],
                          second, base[base["ticker"] == "B US"]], ignore_index=True)
    pd.testing.assert_frame_equal(read, expected.astype(read.dtypes.to_dict()), check_exact=True)


def test_a_re_pulled_tickers_history_replaces_its_older_rows(tmp_path):
    days = pd.bdate_range("2024-01-01", periods=10)
    base = _bars(["A US", "B US"], days)
    write_table(base_path(tmp_path, 0), _table(base))
    history = _bars(["A US"], pd.bdate_range(days[4], periods=8), close=50.0)  # starts later, ends later
    write_delta(tmp_path, 0, _table(history), {"A US": None})
    read = read_parquet(tmp_path)
    a = read[read["ticker"] == "A US"].reset_index(drop=True)
    assert a["date"].tolist() == history["date"].tolist() and a["close"].tolist() == history["close"].tolist()
    assert read[read["ticker"] == "B US"]["close"].tolist() == base[base["ticker"] == "B US"]["close"].tolist()
    write_delta(tmp_path, 0, _table(history.iloc[0:0]), {"B US": None})  # a history replaced by nothing
    assert set(read_parquet(tmp_path)["ticker"]) == {"A US"}


def test_compaction_leaves_an_identical_read_and_removes_the_deltas(day_two):
    _, store = day_two
    prices = store.prices_dir("files")
    before = read_parquet(prices)
    bases = _mtimes(prices)
    for number in list_parts(prices):
        assert compact_part(prices, number)
    assert not list(prices.glob("delta-*")) and all(_mtimes(prices)[p] != bases[p] for p in bases)
    pd.testing.assert_frame_equal(read_parquet(prices), before, check_exact=True)
    assert not compact_part(prices, 0)  # nothing left to merge


def test_the_ingest_compacts_after_the_configured_number_of_deltas(day_two, tmp_path):
    folder, store = day_two
    prices = store.prices_dir("files")
    for ticker in TICKERS:
        append_day(folder / f"{ticker}.csv", date(2024, 4, 1))
    summary = _ingest(folder, store, compact_after_deltas=2)
    assert summary["rows"] == 12
    # With 2, every part's threshold is 2 (2 - n % 1): each compacts at its second delta.
    assert not list(prices.glob("delta-*"))
    pd.testing.assert_frame_equal(read_parquet(prices), _fresh_read(folder, tmp_path), check_exact=True)


def test_parts_compact_on_different_days_and_when_their_deltas_grow_large(tmp_path):
    days = pd.bdate_range("2024-01-01", periods=40)
    for number in range(3):
        write_table(base_path(tmp_path, number), _table(_bars([f"T{number} US"], days)))
    for _ in range(19):
        for number in range(3):
            write_delta(tmp_path, number, _table(_bars([f"T{number} US"], days[-1:])), {f"T{number} US": days[-1].date()})
    parts = list_parts(tmp_path)
    # With 20: part n's threshold is 20 - n % 10 (20, 19, 18, …, 11, then 20 again).
    assert [should_compact(parts[n], 20) for n in range(3)] == [False, True, True]
    write_delta(tmp_path, 0, _table(_bars(["T0 US"], days[-1:])), {"T0 US": days[-1].date()})
    assert should_compact(list_parts(tmp_path)[0], 20)
    compact_part(tmp_path, 0)
    assert not should_compact(list_parts(tmp_path)[0], 20)
    big = _bars(["T0 US"], days)  # a re-pull of the whole history: half the base at least
    write_delta(tmp_path, 0, _table(big), {"T0 US": None})
    assert should_compact(list_parts(tmp_path)[0], 20)


@pytest.mark.parametrize("crash", ["temp_file_left", "base_renamed", "one_delta_deleted"])
def test_a_crash_between_the_steps_of_a_compaction_leaves_a_correct_store(day_two, tmp_path, crash):
    folder, store = day_two
    prices = store.prices_dir("files")
    for ticker in TICKERS[:5]:  # a second delta for part 0
        append_day(folder / f"{ticker}.csv", date(2024, 4, 1))
    _ingest(folder, store)
    expected = read_parquet(prices)
    part = list_parts(prices)[0]
    assert len(part.deltas) == 2
    if crash == "temp_file_left":  # killed while writing the new base: a half-written temp file
        (prices / ".part-00000.parquet.k1ll3d.tmp").write_bytes(part.base.read_bytes()[:1000])
    else:  # killed after the rename, before (or while) the deltas were deleted
        from numerflow.tasks.core.price_parts import read_part

        write_table(base_path(prices, 0), read_part(part))
        if crash == "one_delta_deleted":
            part.deltas[0].unlink()
    pd.testing.assert_frame_equal(read_parquet(prices), expected, check_exact=True)
    # And the store goes on: the next day is ingested and compacts cleanly.
    for ticker in TICKERS:
        append_day(folder / f"{ticker}.csv", date(2024, 4, 2))
    _ingest(folder, store, compact_after_deltas=1)
    assert not list(prices.glob("delta-*"))
    pd.testing.assert_frame_equal(read_parquet(prices), _fresh_read(folder, tmp_path), check_exact=True)


def test_a_kill_9_during_a_compaction_leaves_a_correct_store(day_two, tmp_path):
    folder, store = day_two
    prices = store.prices_dir("files")
    for ticker in TICKERS[:5]:
        append_day(folder / f"{ticker}.csv", date(2024, 4, 1))
    _ingest(folder, store)
    expected = read_parquet(prices)
    # The compaction's process is killed (SIGKILL) as it deletes its second delta.
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from numerflow.tasks.core.price_parts import compact_part
        unlink, calls = Path.unlink, []
        def dying_unlink(self, missing_ok=False):
            calls.append(self)
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            unlink(self, missing_ok=missing_ok)
        Path.unlink = dying_unlink
        compact_part(Path({str(prices)!r}), 0)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == -9, done.stderr
    assert len(list_parts(prices)[0].deltas) == 1  # the base was replaced, one delta of two deleted
    pd.testing.assert_frame_equal(read_parquet(prices), expected, check_exact=True)


_CHILD = """
import sys
from datetime import date
from pathlib import Path
import pandas as pd
sys.path.insert(0, {tests!r})
from fakes.ingest_steps import ingest_like_the_flow
from numerflow.tasks.core.store import Store
from numerflow.tasks.prices.ingest import IngestOptions
from numerflow.tasks.prices.sources.files import FilePriceSource
store = Store(Path({data!r}))
source = FilePriceSource(Path({folder!r}), today=pd.Timestamp("2024-04-02 12:00"))
source.attach(store.root / "ingest" / source.name)
tickers = source.tickers()  # scanned before the lock, as the flow does
result = ingest_like_the_flow(source, store, tickers, as_of=date(2024, 4, 2),
                              options=IngestOptions(batch_size=5, compact_after_deltas=1))
print(result.summary["rows"], result.summary["failed"])
"""


@pytest.mark.slow
def test_concurrent_ingests_and_readers_stay_safe(day_two, tmp_path):
    folder, store = day_two
    prices = store.prices_dir("files")
    before = read_parquet(prices)
    for ticker in TICKERS:
        append_day(folder / f"{ticker}.csv", date(2024, 4, 1))
    after = _fresh_read(folder, tmp_path)
    code = _CHILD.format(tests=str(ROOT / "tests"), data=str(store.root), folder=str(folder))
    children = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
    seen: list[pd.DataFrame] = []
    errors: list[BaseException] = []

    def reader() -> None:  # reads while both ingests write deltas and compact them (compact_after_deltas=1)
        while any(child.poll() is None for child in children):
            try:
                seen.append(read_parquet(prices))
            except BaseException as exc:  # noqa: BLE001 - the assertion below names it
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    outputs = [child.communicate(timeout=300) for child in children]
    thread.join()
    assert [child.returncode for child in children] == [0, 0], [err[-2000:] for _, err in outputs]
    written = sorted(int(out.split()[0]) for out, _ in outputs)
    assert written == [0, 12] and all(out.split()[1] == "0" for out, _ in outputs)  # the second found it stored
    assert not errors, errors[:1]
    assert not list(prices.glob("delta-*")) and not list(prices.glob(".*.tmp"))
    pd.testing.assert_frame_equal(read_parquet(prices), after, check_exact=True)
    keyed = {"before": before.set_index(["ticker", "date"]), "after": after.set_index(["ticker", "date"])}
    for frame in seen:  # every read: each ticker's bars as before or as after the new day, never a mix or twice
        assert not frame.duplicated(["ticker", "date"]).any()
        for ticker, rows in frame.groupby("ticker"):
            rows = rows.set_index(["ticker", "date"])
            assert any(rows.equals(k.loc[[ticker]]) for k in keyed.values()), ticker
    assert os.path.exists(store.root / "ingest" / "files" / ".ingest.lock")


def test_a_delta_whose_rows_are_not_in_ticker_order_still_reads_in_order(tmp_path):
    days = pd.bdate_range("2024-01-01", periods=6)
    base = _bars(["A US", "B US", "C US"], days)
    write_table(base_path(tmp_path, 0), _table(base))
    late = _bars(["C US", "A US"], pd.bdate_range(days[-1], periods=2)[1:], close=99.0)  # C before A
    write_delta(tmp_path, 0, _table(late), {"A US": late["date"].iloc[0].date(), "C US": late["date"].iloc[0].date()})
    read = read_parquet(tmp_path)
    expected = pd.concat([base, late]).sort_values(["ticker", "date"], kind="stable", ignore_index=True)
    pd.testing.assert_frame_equal(read, expected.astype(read.dtypes.to_dict()), check_exact=True)


def test_categorical_to_strings_keeps_index_order_and_missing_values():
    from numerflow.tasks.core.schemas import as_strings

    values = pd.Series(pd.Categorical(["b", "a", None, "b"]), index=[5, 3, 9, 1], name="x")
    strings = as_strings(values)
    assert strings.dtype == "string" and strings.index.tolist() == [5, 3, 9, 1] and strings.name == "x"
    assert strings.tolist() == ["b", "a", pd.NA, "b"]
