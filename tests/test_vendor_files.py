"""Vendor files as they come: yfinance's layout, a `[files]` mapping, the quirks of real dumps
(each costs a bar or a ticker, never the folder), only changed files read on the next day,
and the real S&P 500 sample in ../shared (skipped when absent)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from fakes.ingest_steps import ingest_like_the_flow
from fakes.vendor_files import QUIRKY_CLEAN, append_day, quirky_folder, revise_bar, write_vendor_folder, yf_bars

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, read_parquet
from numerflow.tasks.prices.ingest import IngestOptions, failure_groups, ingest_verdict
from numerflow.tasks.prices.sources.files import FileLayout, FilePriceSource, load_price_files, numerai_symbols

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real-prices-sample"
TODAY = pd.Timestamp("2024-04-02 12:00")
AS_OF = date(2024, 4, 2)


def test_numerai_spelling_of_vendor_symbols():
    raw = pd.Series(["AAPL", "BRK.B", "BRK-B", "VOD.L", "7203.T", "0005.HK", "AAPL US", "SHOP.TO"])
    assert numerai_symbols(raw, "US").tolist() == ["AAPL US", "BRK/B US", "BRK/B US", "VOD GB", "7203 JP", "5 HK",
                                                   "AAPL US", "SHOP CA"]
    assert numerai_symbols(raw, None).tolist() == raw.tolist()


def test_yfinance_layout_is_read_without_a_mapping(tmp_path):
    write_vendor_folder(tmp_path / "yf", ["AAPL", "MSFT"], "2024-01-01", "2024-01-31")
    # yfinance's own to_csv with a Ticker column and tz-aware timestamps (the day stays the exchange's).
    bars = yf_bars("2024-01-01", "2024-01-31", seed=3)
    bars["Date"] = pd.to_datetime(bars["Date"]).dt.tz_localize("Asia/Tokyo").astype(str)
    bars.assign(Ticker="7203.T").to_csv(tmp_path / "yf" / "toyota.csv", index=False)
    checked = load_price_files(tmp_path / "yf", today=TODAY)
    assert sorted(checked.tickers.index) == ["7203 JP", "AAPL US", "MSFT US"]
    toyota = checked.bars[checked.bars["ticker"] == "7203 JP"]
    assert toyota["date"].iloc[0] == pd.Timestamp("2024-01-01") and len(toyota) == len(bars)
    aapl = checked.bars[checked.bars["ticker"] == "AAPL US"]
    assert (aapl["adj_close"] < aapl["close"]).all()  # Adj Close read as the adjusted close
    assert not checked.problems


def test_a_files_mapping_names_columns_and_the_ticker_pattern(tmp_path):
    folder = tmp_path / "vendor"
    folder.mkdir()
    (folder / "AAPL_data.csv").write_text("Day,Last,AdjLast,Vol\n2024-01-02,10,9,100\n2024-01-03,11,10,100\n")
    layout = FileLayout(columns={"date": "Day", "close": "Last", "adj_close": "AdjLast", "volume": "Vol"},
                        filename_pattern="{ticker}_data.csv", country="US")
    checked = load_price_files(folder, layout=layout, today=TODAY)
    assert checked.bars["ticker"].unique().tolist() == ["AAPL US"]
    assert checked.bars["adj_close"].tolist() == [9.0, 10.0] and checked.bars["volume"].tolist() == [100.0, 100.0]
    (folder / "other.csv").write_text("Day,Last,AdjLast,Vol\n2024-01-02,1,1,1\n")
    checked = load_price_files(folder, layout=layout, today=TODAY)
    assert "does not match files.filename_pattern" in checked.file_errors[str(folder / "other.csv")]
    with pytest.raises(BadInputError, match="must contain"):
        load_price_files(folder, layout=FileLayout(filename_pattern="data.csv"), today=TODAY)


def test_every_vendor_quirk_costs_a_bar_or_a_ticker_never_the_folder(tmp_path):
    folder = quirky_folder(tmp_path / "quirky", "2024-01-01", "2024-03-29")
    checked = load_price_files(folder, today=TODAY)
    t = checked.tickers
    for ticker in [*QUIRKY_CLEAN, "BOMF", "SEMI", "BRK/B"]:
        assert pd.isna(t.loc[f"{ticker} US", "error"]) and t.loc[f"{ticker} US", "bars"] == 65, ticker
    assert t.loc["DUPX US", "deduplicated"] == 1 and t.loc["DUPV US", "deduplicated"] == 1
    assert t.loc["ZERO US", "excluded_reasons"] == {"non_positive_price": 1} and t.loc["ZERO US", "bars"] == 65
    assert t.loc["WKND US", "excluded_reasons"] == {"weekend": 1}
    assert t.loc["NEGC US", "excluded_reasons"] == {"non_positive_price": 1, "missing_close": 1}
    assert t.loc["CONF US", "cause"] == "conflicting_close"
    assert "CONF.csv: 2024-01-23 has two different closes" in t.loc["CONF US", "error"]
    assert t.loc["ALLZ US", "cause"] == "all_bars_excluded" and "non_positive_price 65" in t.loc["ALLZ US", "error"]
    assert "CONF US" not in set(checked.bars["ticker"]) and "ALLZ US" not in set(checked.bars["ticker"])
    assert checked.problems["same_close_duplicate"]["count"] == 1
    assert "kept the first row" in checked.problems["same_close_duplicate"]["text"]
    assert checked.problems["exact_duplicate"]["count"] == 1
    assert checked.problems["weekend"]["examples"][0]["date"] == "2024-02-03"
    assert list(checked.file_errors) == [str(folder / "BROKEN.csv")]
    semi = checked.bars[checked.bars["ticker"] == "SEMI US"]
    assert semi["close"].between(1, 1000).all()  # ',' decimals read as numbers


def test_quirky_folder_through_the_ingest_fails_only_the_bad_tickers(tmp_path):
    folder = quirky_folder(tmp_path / "quirky", "2024-01-01", "2024-03-29")
    source = FilePriceSource(folder, today=TODAY)
    store = Store(tmp_path / "data")
    result = ingest_like_the_flow(source, store, source.tickers() + ["NOPE US"], as_of=AS_OF,
                                  options=IngestOptions(batch_size=5))
    ledger = read_parquet(result.ledger_path).set_index("ticker")
    assert ledger.loc["CONF US", "status"] == "failed" and ledger.loc["ALLZ US", "status"] == "failed"
    assert ledger.loc["ALLZ US", "cause"] == "all_bars_excluded"
    assert ledger.loc["NOPE US", "status"] == "no_data" and "BROKEN.csv" in ledger.loc["NOPE US", "last_error"]
    assert ledger.loc["DUPV US", "deduplicated"] == 1 and ledger.loc["WKND US", "excluded_reasons"] == "weekend 1"
    ok = ledger[ledger["status"] == "ok"]
    assert len(ok) == 11 and (ok.drop(index="NEGC US")["stored_rows"] == 65).all() and ok.loc["NEGC US", "stored_rows"] == 63
    summary = result.summary
    assert summary["deduplicated"] == 2 and summary["excluded_reasons"]["non_positive_price"] == 67
    groups = {g["cause"]: g for g in summary["causes"]}
    assert groups["conflicting_close"]["tickers"] == ["CONF US"] and groups["no_file"]["status"] == "no_data"
    assert ingest_verdict(summary, 0.5) is None
    assert "failed" in ingest_verdict(summary, 0.1)


def test_only_changed_files_are_read_and_a_revision_reaches_the_store(tmp_path):
    tickers = [f"S{i:02d}" for i in range(12)]
    folder = write_vendor_folder(tmp_path / "yf", tickers, "2024-01-01", "2024-03-28")
    store = Store(tmp_path / "data")
    ids = [f"{t} US" for t in tickers]
    options = IngestOptions(batch_size=5)

    def ingest() -> tuple[FilePriceSource, pd.DataFrame, dict]:
        source = FilePriceSource(folder, today=TODAY)
        result = ingest_like_the_flow(source, store, ids, as_of=AS_OF, options=options)
        return source, read_parquet(result.ledger_path).set_index("ticker"), result.summary

    source, ledger, _ = ingest()
    assert source.files_read == 12 and (ledger["status"] == "ok").all()
    parts = {p: p.stat().st_mtime_ns for p in store.prices_dir("files").glob("part-*.parquet")}
    source, ledger, summary = ingest()  # day two, nothing changed
    assert source.files_read == 0 and summary["rows"] == 0 and summary["ok"] == 12
    assert {p: p.stat().st_mtime_ns for p in parts} == parts  # nothing re-written
    (folder / "S03.csv").touch()  # a touched file with the same bytes is still unchanged
    append_day(folder / "S05.csv", date(2024, 3, 29))
    revise_bar(folder / "S07.csv", date(2024, 1, 10))
    source, ledger, summary = ingest()
    assert source.files_read == 1 and source.tails_read == 1  # S07 read whole, only S05's appended row
    assert summary["rows"] == 2 and summary["repulled"] == 1
    assert ledger.loc["S05 US", "rows"] == 1 and ledger.loc["S05 US", "last_date"] == "2024-03-29"
    assert ledger.loc["S07 US", "repull_reason"] == "revision" and ledger.loc["S07 US", "rows"] == 1
    bars = read_parquet(store.prices_dir("files"))
    revised = bars[(bars["ticker"] == "S07 US") & (bars["date"] == pd.Timestamp("2024-01-10"))]["close"].iloc[0]
    assert revised == pd.read_csv(folder / "S07.csv").set_index("Date").loc["2024-01-10", "Close"]


def test_a_folder_without_one_usable_file_is_one_clear_error(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.csv").write_bytes(b"\x00\x01garbage")
    (tmp_path / "junk" / "b.csv").write_text("foo,bar\n1,2\n")
    with pytest.raises(BadInputError, match=r"invalid_price_files: none of the 2 price files .*a.csv: binary"):
        FilePriceSource(tmp_path / "junk").check_folder()


def test_failure_groups_count_and_name_three_tickers():
    ledger = pd.DataFrame({"ticker": list("ABCDE"), "status": ["failed"] * 4 + ["ok"],
                           "cause": ["conflicting_close"] * 4 + [None], "last_error": ["x"] * 5})
    (group,) = failure_groups(ledger)
    assert group["count"] == 4 and group["tickers"] == ["A", "B", "C"]


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/real-prices-sample is not beside this clone")
def test_the_real_sample_reports_its_rewritten_year(tmp_path):
    layout = FileLayout(filename_pattern="{ticker}_data.csv")
    checked = load_price_files(REAL, layout=layout)
    t = checked.tickers
    assert len(t) == 100 and t["error"].isna().all()
    # The defect: each file's last 26 bars are Jan-Feb 2018 rewritten to 2021; those on a weekend are excluded.
    assert checked.problems["weekend"]["count"] > 0
    assert all(e["date"].startswith("2021-") for e in checked.problems["weekend"]["examples"])
    assert (t["last_date"] >= pd.Timestamp("2021-01-01")).all()
    # ... and the three-year jump to them is reported once per ticker (the bars are kept: a
    # suspension is real too).
    assert checked.problems["long_gap"]["count"] == 100
    assert "days after the bar of 2017-12-29" in checked.problems["long_gap"]["examples"][0]["detail"]
    assert checked.bars["ticker"].str.endswith(" US").all()
    source = FilePriceSource(REAL, layout)
    store = Store(tmp_path / "data")
    result = ingest_like_the_flow(source, store, source.tickers(), as_of=date(2021, 3, 1),
                                  options=IngestOptions(batch_size=50))
    assert result.summary["excluded_reasons"]["weekend"] == checked.problems["weekend"]["count"]
    assert result.summary["failed"] == 0


def test_prices_check_reports_without_storing_and_exits_non_zero_when_nothing_is_usable(tmp_path, capsys):
    from numerflow.flows.cli import main
    from numerflow.tasks.prices.sources.files import check_price_folder

    folder = quirky_folder(tmp_path / "quirky", "2024-01-01", "2024-03-29")
    assert main(["prices", "check", str(folder), "--data-dir", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert "would store 11 tickers, 713 bars, 2024-01-01 → 2024-03-29" in out
    assert "CONF.csv row 17: CONF US 2024-01-23" in out and "BROKEN.csv" in out
    assert "weekend                        1" in out
    assert not (tmp_path / "data" / "prices").exists()  # nothing stored
    report = check_price_folder(folder, universe=["GOOD1 US", "MISSING US"])
    assert report["universe"] == {"tickers": 2, "with_bars": 1, "without_file": ["MISSING US"], "missing": 1}
    (tmp_path / "empty").mkdir()
    assert main(["prices", "check", str(tmp_path / "empty"), "--json", "--data-dir", str(tmp_path / "data")]) == 1
    assert "no .csv or .parquet files under" in capsys.readouterr().out
    (tmp_path / "allbad").mkdir()
    (tmp_path / "allbad" / "Z.csv").write_text("Date,Close\n2024-01-02,0\n")
    assert main(["prices", "check", str(tmp_path / "allbad"), "--data-dir", str(tmp_path / "data")]) == 1
    assert "NOT USABLE  no bar could be stored" in capsys.readouterr().out


def test_a_file_that_only_grew_is_told_apart_from_a_rewritten_one(tmp_path):
    from numerflow.tasks.prices.sources.files import file_fingerprint

    path = write_vendor_folder(tmp_path / "yf", ["A"], "2024-01-01", "2024-01-31") / "A.csv"
    before = file_fingerprint(path)
    append_day(path, date(2024, 2, 1))
    grown = file_fingerprint(path, before)
    assert grown["grew_from"] == before["sha256"] and grown["old_rows"] == 23 and grown["sha256"] != before["sha256"]
    revise_bar(path, date(2024, 1, 10))
    assert "grew_from" not in file_fingerprint(path, grown)


def test_appended_rows_are_judged_like_the_rest_of_the_file(tmp_path):
    folder = write_vendor_folder(tmp_path / "yf", ["A", "B", "C"], "2024-01-01", "2024-03-28")
    store = Store(tmp_path / "data")

    def ingest() -> pd.DataFrame:
        result = ingest_like_the_flow(FilePriceSource(folder, today=TODAY), store, ["A US", "B US", "C US"],
                                      as_of=AS_OF)
        return read_parquet(result.ledger_path).set_index("ticker")

    ingest()
    with open(folder / "A.csv", "a") as handle:  # a second, different bar for a stored day
        handle.write("2024-01-10,1,1,1,1,1,1\n")
    with open(folder / "B.csv", "a") as handle:  # only a Saturday: excluded, nothing new, not a failure
        handle.write("2024-03-30,50,50,50,50,50,1\n")
    append_day(folder / "C.csv", date(2024, 3, 29))
    ledger = ingest()
    assert ledger.loc["A US", "status"] == "failed" and ledger.loc["A US", "cause"] == "conflicting_close"
    assert "A.csv: 2024-01-10 has two different closes" in ledger.loc["A US", "last_error"]
    assert ledger.loc["B US", "status"] == "ok" and ledger.loc["B US", "excluded_reasons"] == "weekend 1"
    assert ledger.loc["C US", "rows"] == 1 and ledger.loc["C US", "last_date"] == "2024-03-29"


def test_day_first_dates_are_never_guessed(tmp_path):
    # 02/01/2024 is 2 January or 1 February depending on the writer: guessed, bars move by months.
    folder = tmp_path / "eu"
    folder.mkdir()
    days = pd.bdate_range("2024-01-01", periods=40)
    for ticker, spelled in (("AAA", days.strftime("%d/%m/%Y")), ("BBB", days.strftime("%Y-%m-%d"))):
        pd.DataFrame({"Date": spelled, "Close": range(10, 50), "Volume": 100}).to_csv(folder / f"{ticker}.csv",
                                                                                     index=False)
    checked = load_price_files(folder, today=TODAY)
    (why,) = checked.file_errors.values()
    assert "AAA.csv line 2" in why and "ambiguous" in why and "files.dayfirst" in why
    assert sorted(checked.tickers.index[checked.tickers["error"].isna()]) == ["BBB US"]  # the ISO file is untouched
    told = load_price_files(folder, layout=FileLayout(dayfirst=True), today=TODAY)
    aaa = told.bars[told.bars["ticker"] == "AAA US"]
    assert not told.file_errors and aaa["date"].min() == pd.Timestamp("2024-01-01")
    assert aaa["date"].max() == days[-1]  # 26/02/2024 read as 26 February
    # Told month first, a day-first file contradicts it: refused, naming the row.
    wrong = load_price_files(folder, layout=FileLayout(dayfirst=False), today=TODAY)
    assert "cannot be month first" in next(iter(wrong.file_errors.values()))
