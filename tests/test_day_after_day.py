"""Day after day through the CLI, for your files and for Yahoo (the fake): ingest, round, an
unchanged ingest (exit 0, nothing failed, nothing re-written), then one appended day and one
revised past bar (only those written, the revised ticker re-pulled), then a round whose dataset
ends on the new day. The REAL numerapi client talks to the fake Numerai server throughout."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakes.vendor_files import append_day, revise_bar, write_yf_csv
from fakes.yahoo import make_bars
from test_live_round import (  # noqa: F401
    HISTORY_START,
    UNRESOLVABLE,
    _assert_artifact,
    live_env,
    numerai,
    signals_universe,
    signals_yahoo,
)

from numerflow.flows.cli import main
from numerflow.flows.round import round_flow
from numerflow.tasks.core.store import read_parquet
from numerflow.tasks.round.report import render_round_report
from numerflow.tasks.round.summary import render_summary, run_summary

TODAY = dt.date.today()
# The new day: the last weekday before today; the first ingest's data ends one weekday earlier.
NEW_DAY = pd.Timestamp(np.busday_offset(np.datetime64(TODAY, "D"), -1, roll="forward")).date()
FIRST_END = pd.Timestamp(np.busday_offset(np.datetime64(NEW_DAY, "D"), -1)).date()
REVISED_DAY = pd.Timestamp(np.busday_offset(np.datetime64(FIRST_END, "D"), -2)).date()  # inside the re-fetch window
REVISED = 3  # index of the listing whose past bar the vendor revises


@pytest.fixture
def yahoo(tmp_path):
    """The fake Yahoo of tests/test_live_round.py, with history ending on FIRST_END."""
    return signals_yahoo(tmp_path / "yf-tz", FIRST_END)


def _cli(capsys, *argv: str) -> tuple[int, dict]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out[out.index("{"):])


def _parts(settings, source: str) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (Path(settings.data_dir) / "prices" / source).glob("part-*.parquet")}


def _vendor_folder(folder: Path) -> list[str]:
    """One yfinance CSV per listing, named by its Yahoo symbol (``0001.HK.csv``), up to FIRST_END."""
    folder.mkdir()
    files = []
    for n, (_, symbol, _, _) in enumerate(signals_universe()):
        bars = make_bars(HISTORY_START, FIRST_END, price=20 + n, seed=n).reset_index()
        frame = pd.DataFrame({"Date": pd.to_datetime(bars["date"]).dt.strftime("%Y-%m-%d"), "Open": bars["open"].round(4),
                              "High": bars["high"].round(4), "Low": bars["low"].round(4),
                              "Close": bars["close"].round(4), "Adj Close": bars["close"].round(4),
                              "Volume": bars["volume"].astype("int64")})
        files.append(str(write_yf_csv(folder / f"{symbol}.csv", frame)))
    return files


@pytest.mark.slow
@pytest.mark.parametrize("source", ["files", "yahoo"])
def test_day_after_day_through_the_cli(prefect_harness, live_env, numerai, yahoo, tmp_path, monkeypatch, capsys,
                                       source):
    universe = [t for t, *_ in signals_universe()]
    revised_ticker = universe[REVISED]
    if source == "files":
        monkeypatch.setenv("NUMERFLOW_PRICE_SOURCE", "files")
        monkeypatch.setenv("NUMERFLOW_FILES__PATH", str(tmp_path / "vendor"))
        files = _vendor_folder(tmp_path / "vendor")
    store_name = source
    assert main(["universe"]) == 0
    capsys.readouterr()

    # Day one: ingest, then the round.
    code, first = _cli(capsys, "ingest")
    assert code == 0 and first["ok"] == 124 and first["failed"] == 0 and first["rows"] > 0
    assert first["unresolved" if source == "yahoo" else "no_data"] == 1  # the one listing nobody has
    code, round_one = _cli(capsys, "run", "--model", "my_signals")
    assert code == 0 and round_one["dataset"]["last_date"] == str(FIRST_END)
    assert round_one["prices"]["failed"] == 0
    parts = _parts(live_env, store_name)

    # The unchanged source again: exit 0, nothing failed, nothing written or re-written.
    code, unchanged = _cli(capsys, "ingest")
    assert code == 0 and unchanged["failed"] == 0 and unchanged["ok"] == 124
    assert unchanged["rows"] == 0 and unchanged["repulled"] == 0 and unchanged["verdict"] is None
    assert _parts(live_env, store_name) == parts

    # A new day for every listing, and the vendor revises one past bar of one listing.
    if source == "files":
        for path in files:
            append_day(Path(path), NEW_DAY)
        revise_bar(Path(files[REVISED]), REVISED_DAY)
    else:
        for n, (_, symbol, _, _) in enumerate(signals_universe()):
            yahoo.extend(symbol, NEW_DAY, seed=500 + n)
        listing = yahoo.listings[signals_universe()[REVISED][1]]
        listing.bars.loc[REVISED_DAY, "close"] *= 1.02
    code, next_day = _cli(capsys, "ingest")
    assert code == 0 and next_day["failed"] == 0 and next_day["ok"] == 124
    assert next_day["rows"] == 124 + 1  # the new day everywhere, plus the revised bar
    # No stored part is rewritten: the new and revised bars are delta parts beside them.
    assert _parts(live_env, store_name) == parts
    assert len(list((Path(live_env.data_dir) / "prices" / store_name).glob("delta-*.parquet"))) == len(parts)
    assert next_day["repulled"] == 1
    ledger = read_parquet(Path(next_day["ledger_path"])).set_index("ticker")
    assert ledger.loc[revised_ticker, "repull_reason"] == "revision" and ledger.loc[revised_ticker, "rows"] == 2
    assert (ledger.loc[ledger.index != revised_ticker, "rows"].drop(UNRESOLVABLE) == 1).all()
    assert (ledger.loc[universe, "last_date"] == str(NEW_DAY)).all()
    stored = read_parquet(Path(next_day["prices_dir"]))
    bar = stored[(stored["ticker"] == revised_ticker) & (stored["date"] == pd.Timestamp(REVISED_DAY))]
    if source == "files":
        expected = pd.read_csv(files[REVISED]).set_index("Date").loc[str(REVISED_DAY), "Close"]
    else:
        expected = yahoo.listings[signals_universe()[REVISED][1]].bars.loc[REVISED_DAY, "close"]
    assert bar["close"].iloc[0] == pytest.approx(expected, rel=1e-6)  # Yahoo serves rounded prices

    # The round on the new day: its dataset ends there.
    code, round_two = _cli(capsys, "run", "--model", "my_signals")
    assert code == 0 and round_two["dataset"]["last_date"] == str(NEW_DAY)
    assert round_two["prices"]["last_date"] == str(NEW_DAY) and round_two["prices"]["failed"] == 0
    assert round_two["prices"]["coverage"]["covered"] == 124
    if source == "yahoo":
        return

    # A broken delivery: every file gets a second, different bar for the new day. Every ticker
    # fails, on screen with its cause, and the exit is non-zero; the stored bars are kept.
    for path in files:
        with open(path, "a") as handle:
            handle.write(f"{NEW_DAY},1,1,1,1,1,1\n")
    assert main(["ingest"]) == 1
    out = capsys.readouterr().out
    assert "124 failed    conflicting_close:" in out and "has two different closes" in out
    assert "FAILED      no ticker has usable bars (124 failed of 125)" in out
    # The round says so in its summary, its run report and the ingest artifact, and its coverage
    # counts the stored bars it uses (not 0 % next to a full dataset).
    result = round_flow(mode="live", model_name="my_signals")
    summary = run_summary(result)
    assert summary["prices"]["failed"] == 124 and summary["prices"]["causes"][0]["cause"] == "conflicting_close"
    assert summary["prices"]["coverage"]["covered"] == 124 and summary["dataset"]["last_date"] == str(NEW_DAY)
    screen = render_summary(summary)
    assert "124 failed    conflicting_close:" in screen and "124 of 125 universe tickers have prices" in screen
    report = render_round_report(result)
    assert "124 failed, conflicting_close:" in report and "124 of 125 universe tickers have prices" in report
    _assert_artifact("ingest-summary-files", "conflicting_close")
