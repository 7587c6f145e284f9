"""The ingest stage against the fake Yahoo, through real yfinance, by the steps the flow takes
(``fakes.ingest_steps``)."""

from __future__ import annotations

import random
from datetime import date

import numpy as np
import pandas as pd
import pytest
from fakes.ingest_steps import ingest_like_the_flow
from fakes.yahoo import FakeYahoo, reset_yfinance

from numerflow.tasks.core.store import Store, read_parquet
from numerflow.tasks.prices.ingest import IngestOptions, unfinished_run_id
from numerflow.tasks.prices.ratelimit import TokenBucket
from numerflow.tasks.prices.sources.yahoo import YahooSource

AS_OF = date(2024, 3, 29)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    reset_yfinance(tmp_path / "yf-cache")
    return FakeYahoo()


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "data")


def make_source(fake, **kwargs):
    kwargs.setdefault("workers", 2)
    return YahooSource(limiter=TokenBucket(10_000, 100), transport=fake, pause_on_429_seconds=0, **kwargs)


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


def run(fake, store, mapping, *, sleeps=None, run_id=None, **kwargs):
    kwargs.setdefault("batch_size", 3)
    options = IngestOptions(batch_size=kwargs.pop("batch_size"), backfill=kwargs.pop("backfill", False), max_attempts=kwargs.pop("max_attempts", 4))
    source = kwargs.pop("source", None) or make_source(fake)
    as_of, end = kwargs.pop("as_of", AS_OF), kwargs.pop("end", None)
    assert not kwargs, f"unknown run() arguments {sorted(kwargs)}"
    return ingest_like_the_flow(
        source,
        store,
        mapping,
        options=options,
        run_id=run_id,
        as_of=as_of,
        end=end,
        sleep=sleeps if sleeps is not None else Sleeps(),
        rng=random.Random(0),
    )


def ledger_of(result):
    return read_parquet(result.ledger_path).set_index("ticker")


def prices(store):
    return read_parquet(store.prices_dir("yahoo"))


def test_multi_country_batch_gbp_and_ambiguous_kr(fake, store):
    fake.add("AAPL", seed=1)
    fake.add("7203.T", currency="JPY", timezone="Asia/Tokyo", price=2500, seed=2)
    fake.add("VOD.L", currency="GBp", timezone="Europe/London", price=7000, seed=3)
    fake.add("005930.KQ", currency="KRW", timezone="Asia/Seoul", price=70000, seed=4)
    mapping = {"AAPL US": ["AAPL"], "7203 JP": ["7203.T"], "VOD GB": ["VOD.L"], "005930 KR": ["005930.KS", "005930.KQ"]}
    result = run(fake, store, mapping)
    ledger = ledger_of(result)
    assert set(ledger.index) == set(mapping)
    assert (ledger["status"] == "ok").all(), ledger[["status", "last_error"]]
    assert ledger.loc["005930 KR", "symbol"] == "005930.KQ"
    bars = prices(store)
    assert set(bars["ticker"]) == set(mapping)
    vod = bars[bars["ticker"] == "VOD GB"].set_index("date")
    raw = fake.listings["VOD.L"].bars
    # GBp → GBP: pence divided by 100, currency renamed.
    assert (vod["currency"] == "GBP").all()
    np.testing.assert_allclose(vod["close"].to_numpy(), raw["close"].to_numpy() / 100, rtol=1e-6)
    assert (bars.loc[bars["ticker"] == "7203 JP", "currency"] == "JPY").all()
    # Dates are the exchange-local trading days of the bars, not UTC shifts of them.
    tokyo = bars[bars["ticker"] == "7203 JP"]["date"].dt.date.tolist()
    assert tokyo == list(fake.listings["7203.T"].bars.index)
    # The winning KR symbol is remembered: the next run asks .KQ first, never .KS.
    fake.log.clear()
    run(fake, store, mapping)
    assert fake.chart_requests("005930.KS") == []


def test_delisted_recorded_not_retried_and_every_ticker_in_ledger(fake, store):
    fake.add("AAPL")
    sleeps = Sleeps()
    result = run(fake, store, {"AAPL US": ["AAPL"], "GONE US": ["GONE"]}, sleeps=sleeps)
    ledger = ledger_of(result)
    assert ledger.loc["AAPL US", "status"] == "ok", ledger[["status", "last_error"]]
    assert ledger.loc["GONE US", "status"] == "delisted"
    assert ledger.loc["GONE US", "attempts"] == 1
    assert "delisted" in ledger.loc["GONE US", "last_error"]
    assert sleeps == []  # nothing transient, no backoff
    assert result.summary["ok"] == 1 and result.summary["delisted"] == 1


def test_429_burst_then_success_retries_only_failed_symbols_with_backoff(fake, store):
    for sym in ["A", "B", "C"]:
        fake.add(sym)
    fake.fail("B", "429", "429")  # two attempts' worth: one request each, yfinance does not re-send
    sleeps = Sleeps()
    result = run(fake, store, {"A US": ["A"], "B US": ["B"], "C US": ["C"]}, sleeps=sleeps)
    ledger = ledger_of(result)
    assert (ledger["status"] == "ok").all(), ledger[["status", "last_error"]]
    assert ledger.loc["B US", "attempts"] == 3
    assert ledger.loc["A US", "attempts"] == 1
    assert [r.status for r in fake.chart_requests("B")] == [429, 429, 200]
    # Only B was asked again; A and C with one chart request each (no timezone probe).
    assert len(fake.chart_requests("A")) == 1 and len(fake.chart_requests("C")) == 1
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] * 0.5  # exponential with jitter
    assert 1.0 <= sleeps[0] <= 2.0 and 2.0 <= sleeps[1] <= 4.0


def test_timeouts_5xx_and_malformed_json_retry_then_fail_with_reason(fake, store):
    for sym in ["T", "S", "M", "E"]:
        fake.add(sym)
    fake.fail("T", "timeout")
    fake.fail("S", *["503"] * 20)
    fake.fail("M", "malformed")
    fake.fail("E", "empty", history_only=True)
    result = run(fake, store, {"T US": ["T"], "S US": ["S"], "M US": ["M"], "E US": ["E"]}, max_attempts=3)
    ledger = ledger_of(result)
    assert ledger.loc["T US", "status"] == "ok" and ledger.loc["T US", "attempts"] == 2
    assert ledger.loc["M US", "status"] == "ok" and ledger.loc["M US", "attempts"] == 2
    assert ledger.loc["S US", "status"] == "failed"
    assert ledger.loc["S US", "attempts"] == 3
    assert "server_error: HTTP 503" in ledger.loc["S US", "last_error"]
    # An empty answer for a full-history request: exists, no bars.
    assert ledger.loc["E US", "status"] == "no_data" and ledger.loc["E US", "attempts"] == 1
    # Every request carried a timeout.
    assert all(r.timeout is not None for r in fake.log)
    assert result.summary["failed"] == 1


def test_incremental_second_run_requests_only_new_range(fake, store):
    fake.add("AAPL", end="2024-03-15")
    fake.add("7203.T", currency="JPY", timezone="Asia/Tokyo", end="2024-03-15", seed=5)
    mapping = {"AAPL US": ["AAPL"], "7203 JP": ["7203.T"]}
    run(fake, store, mapping, as_of=date(2024, 3, 15))
    rows_before = len(prices(store))
    fake.extend("AAPL", "2024-03-29")
    fake.extend("7203.T", "2024-03-29")
    fake.log.clear()
    result = run(fake, store, mapping)
    ledger = ledger_of(result)
    # period1 = local midnight of (last stored date - overlap_days).
    (aapl,) = fake.history_requests("AAPL")
    expected = pd.Timestamp("2024-03-10", tz="America/New_York").timestamp()
    assert int(aapl.params["period1"]) == int(expected)
    (toyota,) = fake.history_requests("7203.T")
    assert int(toyota.params["period1"]) == int(pd.Timestamp("2024-03-10", tz="Asia/Tokyo").timestamp())
    # 5 overlap bars (Mar 11-15) re-fetched unchanged + 10 new bars (Mar 18-29): only the new ones count.
    assert ledger.loc["AAPL US", "rows"] == 10 and ledger.loc["7203 JP", "rows"] == 10
    assert ledger.loc["AAPL US", "requested_start"] == "2024-03-10"
    bars = prices(store)
    assert len(bars) == rows_before + 20
    assert not bars.duplicated(["ticker", "date"]).any()
    assert bars.groupby("ticker")["date"].max().dt.date.eq(date(2024, 3, 29)).all()


def test_split_detected_repulls_whole_history(fake, store):
    fake.add("NVDA", end="2024-03-15")
    mapping = {"NVDA US": ["NVDA"]}
    run(fake, store, mapping, as_of=date(2024, 3, 15))
    fake.extend("NVDA", "2024-03-29")
    fake.listings["NVDA"].splits[date(2024, 3, 20)] = (10, 1)
    fake.log.clear()
    result = run(fake, store, mapping)
    ledger = ledger_of(result)
    assert ledger.loc["NVDA US", "repull_reason"] == "split"
    requests = fake.history_requests("NVDA")
    assert len(requests) == 2 and int(requests[1].params["period1"]) < int(requests[0].params["period1"])
    bars = prices(store).set_index("date")
    served = fake.listings["NVDA"].adjusted()
    # Whole stored history is split-adjusted consistently (pre-split closes divided by 10).
    np.testing.assert_allclose(bars["close"].to_numpy(), served["close"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(bars["adj_close"].to_numpy(), served["adjclose"].to_numpy(), rtol=1e-6)


def test_dividend_detected_repulls_adjusted_history(fake, store):
    fake.add("KO", end="2024-03-15")
    run(fake, store, {"KO US": ["KO"]}, as_of=date(2024, 3, 15))
    fake.extend("KO", "2024-03-29")
    fake.listings["KO"].dividends[date(2024, 3, 22)] = 1.5
    result = run(fake, store, {"KO US": ["KO"]})
    assert ledger_of(result).loc["KO US", "repull_reason"] == "dividend"
    bars = prices(store)
    np.testing.assert_allclose(bars["adj_close"].to_numpy(), fake.listings["KO"].adjusted()["adjclose"].to_numpy(), rtol=1e-6)


class Crash(Exception):
    pass


class CrashingSource:
    """Wraps a source; raises on the n-th batch (a process dying mid-ingest)."""

    def __init__(self, inner, crash_on_call):
        self.inner, self.name, self.calls, self.crash_on_call = inner, inner.name, 0, crash_on_call

    def fetch_outcomes(self, requests, end=None):
        self.calls += 1
        if self.calls == self.crash_on_call:
            raise Crash("killed")
        return self.inner.fetch_outcomes(requests, end=end)


def test_crash_mid_ingest_then_resume_fetches_only_unfinished_batches(fake, store):
    symbols = [f"S{i}" for i in range(7)]
    for i, sym in enumerate(symbols):
        fake.add(sym, seed=i)
    mapping = {f"{s} US": [s] for s in symbols}
    crashing = CrashingSource(make_source(fake), crash_on_call=2)
    with pytest.raises(Crash):
        run(fake, store, mapping, source=crashing, run_id="run-1")
    assert unfinished_run_id(store, "yahoo") == "run-1"
    done_first = {r.symbol for r in fake.history_requests()}
    assert len(done_first) == 3  # batch 0 stored
    fake.log.clear()
    result = run(fake, store, mapping)  # run_id=None resumes the unfinished run
    assert result.summary["run_id"] == "run-1"
    refetched = {r.symbol for r in fake.history_requests()}
    assert refetched.isdisjoint(done_first)
    ledger = ledger_of(result)
    assert set(ledger.index) == set(mapping) and (ledger["status"] == "ok").all()
    assert set(prices(store)["ticker"]) == set(mapping)
    assert unfinished_run_id(store, "yahoo") is None


@pytest.mark.slow
def test_the_flow_resumes_the_unfinished_run_and_publishes_its_ledger(prefect_harness, fake, tmp_path, monkeypatch):
    """``run_price_ingest`` itself, in a flow: run id from the unfinished run, batch tasks, artifacts."""
    import json

    from prefect import flow, get_client

    from numerflow.flows import prices as prices_flow_module
    from numerflow.tasks.core.config import load_settings
    from numerflow.tasks.prices import configured

    settings = load_settings(data_dir=str(tmp_path / "data"), price_source="yahoo", yahoo={"batch_size": 3})
    store = Store(settings.data_dir)
    symbols = [f"R{i}" for i in range(7)]
    for i, sym in enumerate(symbols):
        fake.add(sym, seed=i)
    mapping = {f"{s} US": [s] for s in symbols}
    with pytest.raises(Crash):
        run(fake, store, mapping, source=CrashingSource(make_source(fake), crash_on_call=2), run_id="resume-me")
    done_first = {r.symbol for r in fake.history_requests()}
    fake.log.clear()
    monkeypatch.setitem(configured._sources, configured.source_key(settings), make_source(fake))

    @flow(name="ingest-resume-test")
    def ingest_flow() -> dict:
        return prices_flow_module.run_price_ingest(settings, mapping)

    summary = ingest_flow()
    assert summary["run_id"] == "resume-me" and summary["tickers"] == 7 and summary["ok"] == 7
    assert {r.symbol for r in fake.history_requests()}.isdisjoint(done_first)
    assert unfinished_run_id(store, "yahoo") is None
    with get_client(sync_client=True) as client:
        summaries = [a for a in client.read_artifacts() if a.key == "ingest-summary-yahoo"]
    assert any("resume-me" in json.dumps(a.data, default=str) for a in summaries)


def test_backfill_repulls_everything(fake, store):
    fake.add("AAPL")
    run(fake, store, {"AAPL US": ["AAPL"]})
    fake.log.clear()
    result = run(fake, store, {"AAPL US": ["AAPL"]}, backfill=True)
    (request,) = fake.history_requests("AAPL")
    assert int(request.params["period1"]) < int(pd.Timestamp("1970-01-01", tz="UTC").timestamp())
    assert ledger_of(result).loc["AAPL US", "repull_reason"] == "backfill"
    assert len(prices(store)) == len(fake.listings["AAPL"].bars)


def test_empty_answer_on_incremental_run_is_ok_with_no_new_rows(fake, store):
    fake.add("AAPL")
    run(fake, store, {"AAPL US": ["AAPL"]})
    fake.fail("AAPL", "empty", history_only=True)
    result = run(fake, store, {"AAPL US": ["AAPL"]})
    ledger = ledger_of(result)
    assert ledger.loc["AAPL US", "status"] == "ok"
    assert ledger.loc["AAPL US", "rows"] == 0
    # The overlap window's stored bars were not dropped by an empty answer.
    assert len(prices(store)) == len(fake.listings["AAPL"].bars)


def test_stale_ticker_flagged(fake, store):
    fake.add("OLD", end="2024-03-01")
    fake.add("NEW")
    result = run(fake, store, {"OLD US": ["OLD"], "NEW US": ["NEW"]})
    ledger = ledger_of(result)
    assert ledger.loc["OLD US", "status"] == "stale"
    assert ledger.loc["NEW US", "status"] == "ok"
    assert result.summary["stale"] == 1



def test_demo_market_goes_through_the_same_ingest(tmp_path):
    from numerflow.tasks.prices.sources.demo import DemoMarket

    market = DemoMarket(tickers=8, years=0.2, seed=1, end=date(2024, 3, 29))
    tickers = market.universe()["numerai_ticker"].astype(str).tolist()
    store = Store(tmp_path / "data")
    result = ingest_like_the_flow(market, store, tickers, options=IngestOptions(batch_size=3), as_of=date(2024, 3, 29))
    ledger = ledger_of(result)
    assert sorted(ledger.index) == sorted(tickers) and (ledger["status"] == "ok").all()
    stored = read_parquet(store.prices_dir(market.name))
    expected = market.fetch(tickers)
    assert len(stored) == len(expected) and set(stored["ticker"]) == set(tickers)
    assert len(result.paths) == 3  # 8 tickers in batches of 3
    # Second run: incremental, nothing new, nothing duplicated.
    again = ingest_like_the_flow(market, store, tickers, options=IngestOptions(batch_size=3), as_of=date(2024, 3, 29))
    assert again.summary["ok"] == 8
    assert len(read_parquet(store.prices_dir(market.name))) == len(expected)


def test_unresolved_tickers_are_in_the_ledger_without_a_request(fake, store):
    fake.add("AAPL")
    result = run(fake, store, {"AAPL US": ["AAPL"], "ZZZ XX": []})
    ledger = ledger_of(result)
    assert ledger.loc["ZZZ XX", "status"] == "unresolved" and ledger.loc["ZZZ XX", "attempts"] == 0
    assert "overrides" in ledger.loc["ZZZ XX", "last_error"]
    assert result.summary["unresolved"] == 1 and result.summary["ok"] == 1


def test_ledger_table_lists_problems_first():
    from numerflow.tasks.prices.configured import ledger_table

    ledger = pd.DataFrame(
        {
            "ticker": ["A", "B", "C"],
            "symbol": ["A", None, "C"],
            "status": ["ok", "failed", "delisted"],
            "rows": [3, 0, 0],
            "first_date": ["2024-01-02", None, None],
            "last_date": ["2024-01-04", None, None],
            "attempts": [1, 5, 1],
            "last_error": [None, "server_error: HTTP 503", "not_found"],
            "repull_reason": [None, None, None],
        }
    )
    rows = ledger_table(ledger)
    assert [r["ticker"] for r in rows] == ["B", "C", "A"]
    assert rows[0]["last_error"] == "server_error: HTTP 503" and rows[2]["symbol"] == "A"


def test_cli_progress_bar_reads_the_run_directory(tmp_path):
    import io

    from numerflow.tasks.core.store import write_json
    from numerflow.tasks.prices.progress import ProgressBar

    bar = ProgressBar(tmp_path, stream=io.StringIO())
    assert bar.render() == "ingest: planning..."
    write_json(tmp_path / "plan.json", {"batches": [{}, {}, {}, {}]})
    write_json(tmp_path / "batch-00000.json", [])
    assert bar.counts() == (1, 4)
    assert "1/4 batches" in bar.render()


def test_with_unresolved_keeps_every_universe_ticker():
    from numerflow.tasks.prices.configured import with_unresolved

    mapping = with_unresolved(["A US", "B XX"], {"A US": ["A"]})
    assert mapping == {"A US": ["A"], "B XX": []}


def test_foreign_files_in_the_prices_dir_are_refused(tmp_path):
    from numerflow.tasks.core.errors import BadInputError
    from numerflow.tasks.prices.sources.demo import DemoMarket

    store = Store(tmp_path / "data")
    market = DemoMarket(tickers=3, years=0.1, seed=1, end=date(2024, 3, 29))
    store.prices_dir(market.name).mkdir(parents=True)
    market.fetch(market.all_tickers()).to_parquet(store.prices_dir(market.name) / "part-all.parquet")
    with pytest.raises(BadInputError, match="foreign_price_files"):
        ingest_like_the_flow(market, store, market.all_tickers(), as_of=date(2024, 3, 29))


def test_timezone_remembered_in_the_catalog_saves_the_probe_next_run(fake, store):
    # An unknown suffix: no guess, so the first run lets yfinance ask Yahoo (range=1d probe).
    fake.add("XYZ.ZZ", currency="JPY", timezone="Asia/Tokyo", end="2024-03-15")
    mapping = {"XYZ ZZ": ["XYZ.ZZ"]}
    run(fake, store, mapping, as_of=date(2024, 3, 15))
    assert sum("range" in r.params for r in fake.chart_requests("XYZ.ZZ")) == 1
    fake.extend("XYZ.ZZ", "2024-03-29")
    fake.log.clear()
    # A new process: a fresh source and an empty yfinance tz cache; the catalog remembers Tokyo.
    reset_yfinance(store.root / "yf-cache-2")
    result = run(fake, store, mapping)
    (request,) = fake.chart_requests("XYZ.ZZ")
    assert int(request.params["period1"]) == int(pd.Timestamp("2024-03-10", tz="Asia/Tokyo").timestamp())
    assert ledger_of(result).loc["XYZ ZZ", "timezone"] == "Asia/Tokyo"
    assert prices(store)["date"].dt.date.tolist() == list(fake.listings["XYZ.ZZ"].bars.index)


def test_winning_symbols_are_remembered_for_the_resolver(fake, store):
    from numerflow.tasks.prices.ingest import remembered_symbols
    from numerflow.tasks.prices.tickers import resolve_for_yahoo

    fake.add("005930.KQ", currency="KRW", timezone="Asia/Seoul", price=70000, seed=4)
    fake.add("AAPL", seed=1)
    assert remembered_symbols(store, "yahoo") == {}
    run(fake, store, {"005930 KR": ["005930.KS", "005930.KQ"], "AAPL US": ["AAPL"], "GONE US": ["GONE"]})
    remembered = remembered_symbols(store, "yahoo")
    assert remembered == {"005930 KR": "005930.KQ", "AAPL US": "AAPL"}  # the delisted one has no winner
    table = resolve_for_yahoo(["005930 KR", "AAPL US"], "signals", remembered=remembered).set_index("numerai_ticker")
    assert table.loc["005930 KR", "status"] == "remembered"
    assert table.loc["005930 KR", "candidates"][0] == "005930.KQ"


def test_a_wholly_rate_limited_batch_stops_the_run_early_and_the_next_run_resumes_it(fake, store):
    from numerflow.tasks.prices.ingest import RateLimitedError

    symbols = [f"S{i}" for i in range(9)]  # 3 batches of 3, in ticker order
    for symbol in symbols:
        fake.add(symbol)
    mapping = {f"{s} US": [s] for s in symbols}
    for symbol in symbols[3:6]:  # batch 1: Yahoo answers 429 to every attempt
        fake.fail(symbol, *["429"] * 4)
    with pytest.raises(RateLimitedError, match=r"rate_limited: .*every ticker of batch 1 .*resume with `numerflow ingest`"):
        run(fake, store, mapping)
    assert not fake.history_requests("S6")  # batch 2 never asked: the run stopped early
    stored_first = read_parquet(store.prices_dir("yahoo"))
    assert sorted(stored_first["ticker"].unique()) == ["S0 US", "S1 US", "S2 US"]  # batch 0 kept

    fake.log.clear()  # the limit lifted: the next ingest resumes the same run
    result = run(fake, store, mapping)
    assert result.summary["ok"] == 9 and result.summary["failed"] == 0
    assert not fake.history_requests("S0")  # batch 0 was done: not fetched again
    bars = prices(store)
    assert len(bars) == sum(len(fake.listings[s].bars) for s in symbols)  # nothing lost, nothing doubled
    assert not bars.duplicated(["ticker", "date"]).any()


@pytest.mark.slow
def test_the_ingest_flow_stops_on_a_rate_limited_batch_with_a_resume_message(prefect_harness, fake, tmp_path,
                                                                             monkeypatch):
    import json

    from numerflow.flows import prices as prices_flow_module
    from numerflow.tasks.core.config import load_settings
    from numerflow.tasks.prices import configured
    from numerflow.tasks.prices.ingest import RateLimitedError

    symbols = [f"S{i}" for i in range(6)]
    for symbol in symbols:
        fake.add(symbol)
        fake.fail(symbol, *["429"] * 5)  # every ticker, every attempt (yahoo.max_attempts = 5)
    candidates = tmp_path / "candidates.json"
    candidates.write_text(json.dumps({f"{s} US": [s] for s in symbols}))
    overrides = {"data_dir": str(tmp_path / "data"), "price_source": "yahoo",
                 "yahoo": {"batch_size": 3, "backoff_base_seconds": 0, "backoff_cap_seconds": 0}}
    settings = load_settings(**overrides)
    monkeypatch.setitem(configured._sources, configured.source_key(settings), make_source(fake))
    with pytest.raises(RateLimitedError, match=r"stopping early.*resume with `numerflow ingest`.*\(0 of 2 batches stored\)"):
        prices_flow_module.prices_flow(overrides=overrides, candidates_path=str(candidates))


def test_the_progress_bar_writes_plain_lines_when_not_on_a_terminal(tmp_path):
    import io
    import time

    from numerflow.tasks.core.store import write_json
    from numerflow.tasks.prices.progress import ProgressBar

    stream = io.StringIO()  # not a tty: a log file, CI, a pipe
    write_json(tmp_path / "plan.json", {"batches": [{}, {}]})
    with ProgressBar(tmp_path, stream=stream, interval=0.01):
        write_json(tmp_path / "batch-00000.json", [])
        write_json(tmp_path / "batch-00001.json", [])
        deadline = time.monotonic() + 5
        while "2/2" not in stream.getvalue() and time.monotonic() < deadline:  # the loop draws the last state
            time.sleep(0.01)
    text = stream.getvalue()
    assert "\r" not in text and text.endswith("ingest [" + "#" * 30 + "] 2/2 batches\n")
    assert text.count("2/2 batches") == 1  # the final state once, not again on exit
