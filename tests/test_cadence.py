"""Cadence presets: "weekend" (today's crons) and "daily" (a prepare before each Tuesday-Saturday
open, a submit after it), both reading the real round window from Numerai (the REAL numerapi
client against the fake server's ``rounds`` answers in numerapi 3.1.1's ``list_rounds`` shape)."""

from __future__ import annotations

import datetime as dt

import pytest
from fakes.numerai_fixtures import (  # noqa: F401 - fixtures
    fake_numerai,
    keys,
    make_client,
    numerai_settings,
    sleeps,
)
from fakes.numerai_server import closed_round, open_round, upcoming_round

from numerflow.flows.deployments import build_deployments
from numerflow.flows.schedule import next_run_times
from numerflow.tasks.core.config import load_settings
from numerflow.tasks.numerai.ledger import SubmissionLedger

UTC = dt.UTC
MONDAY = dt.datetime(2026, 11, 30, 0, 0, tzinfo=UTC)


def _deployments(**schedule):
    return {d.name: d for d in build_deployments(load_settings(schedule=schedule))}


def test_daily_preset_prepares_before_and_submits_after_each_tuesday_to_saturday_open():
    deployments = _deployments(cadence="daily")
    assert set(deployments) == {"numerflow-round", "numerflow-train", "numerflow-ingest-backfill",
                                "numerflow-scores", "numerflow-prepare", "numerflow-submit"}
    assert deployments["numerflow-round"].schedules == []  # the weekly crons are not scheduled
    prepare = next_run_times([s.schedule for s in deployments["numerflow-prepare"].schedules], MONDAY, 6)
    assert [(d.strftime("%a %H:%M"), d.utcoffset()) for d in prepare] == [
        (f"{day} 09:00", dt.timedelta(0)) for day in ("Tue", "Wed", "Thu", "Fri", "Sat", "Tue")]
    submit = next_run_times([s.schedule for s in deployments["numerflow-submit"].schedules], MONDAY, 12)
    assert [d.strftime("%a %H:%M") for d in submit] == [
        "Tue 12:10", "Tue 12:30", "Wed 12:10", "Wed 12:30", "Thu 12:10", "Thu 12:30", "Fri 12:10", "Fri 12:30",
        "Sat 12:10", "Sat 12:30", "Sun 09:00", "Sun 13:00"]
    assert all(d.tzinfo is not None and d.utcoffset() == dt.timedelta(0) for d in submit)
    for name in ("numerflow-prepare", "numerflow-submit"):
        assert deployments[name].concurrency_limit == 1 and deployments[name].parameters == {"mode": "live"}


def test_weekend_preset_is_todays_schedule():
    deployments = _deployments()
    assert set(deployments) == {"numerflow-round", "numerflow-train", "numerflow-ingest-backfill",
                                "numerflow-scores"}
    crons = sorted(s.schedule.cron for s in deployments["numerflow-round"].schedules)
    assert crons == sorted(["30 18 * * 6", "0 6 * * 0", "0 6 * * 1", "0 11 * * 1"])


def test_upcoming_round_is_read_from_numerais_rounds_list(fake_numerai, make_client):
    client = make_client()
    assert client.upcoming_round() is None
    fake_numerai.add_round("signals", closed_round(1000))
    fake_numerai.add_round("signals", upcoming_round(1003, opens_in_hours=27))
    fake_numerai.add_round("signals", upcoming_round(1002, opens_in_hours=3, open_hours=1))
    nxt = client.upcoming_round()
    assert nxt.number == 1002 and nxt.close_time - nxt.open_time == dt.timedelta(hours=1)
    call = [c for c in fake_numerai.calls("rounds") if c["variables"].get("status")][-1]
    assert call["variables"]["status"] == "UPCOMING" and "roundScoreConfigs" in call["query"]


# ------------------------------------------------------------------ the flows (Prefect harness)


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setenv("NUMERFLOW_TRAINING__NUM_BOOST_ROUND", "20")
    monkeypatch.setenv("NUMERFLOW_TRAINING__NUM_THREADS", "1")


@pytest.mark.slow
def test_demo_prepare_then_submit_predicts_from_the_prepared_prices(prefect_harness, fast, tmp_path):
    from numerflow.flows.scheduled import scheduled_prepare_flow, scheduled_submit_flow

    params = {"mode": "demo", "data_dir": str(tmp_path / "data"), "tickers": 120, "years": 2.5,
              "overrides": {"models": [{"name": "a"}, {"name": "b", "params": {"num_leaves": 7}}]}}
    prepared = scheduled_prepare_flow(**params)
    assert set(prepared.models) == {"a", "b"} and all(m.trained for m in prepared.models.values())
    (runs_dir,) = (tmp_path / "data" / "ingest").glob("demo*/runs")  # the demo store is keyed by its market
    ingests = sorted(runs_dir.iterdir())
    assert not list((tmp_path / "data").glob("submissions/**/*.csv"))  # prepare uploads nothing

    result = scheduled_submit_flow(**params)
    assert sorted(runs_dir.iterdir()) == ingests  # no ingest at submit time
    assert result.prices.run_id == ingests[-1].name
    assert [(r.name, r.upload.status, r.model.trained) for r in result.models] == [
        ("a", "dry_run", False), ("b", "dry_run", False)]  # the prepared models, reused
    assert {r.model.model_id for r in result.models} == {m.model_id for m in prepared.models.values()}
    again = scheduled_submit_flow(**params, return_state=True)
    assert again.name == "Skipped" and again.message.startswith("skipped: already submitted")


@pytest.mark.slow
def test_submit_skips_cleanly_when_closed_or_already_submitted(prefect_harness, fake_numerai, tmp_path,
                                                               monkeypatch):
    from numerflow.flows.scheduled import scheduled_submit_flow

    monkeypatch.setenv("NUMERFLOW_NUMERAI_API_URL", fake_numerai.url)
    params = {"mode": "live", "model_name": "my_signals", "data_dir": str(tmp_path / "data")}
    fake_numerai.set_round("signals", closed_round(1001))
    closed = scheduled_submit_flow(**params, return_state=True)
    assert closed.is_completed() and closed.name == "Skipped"
    assert closed.message.startswith("round closed: round 1001 closed at")

    fake_numerai.set_round("signals", open_round(1002, hours_left=5))
    settings = load_settings(data_dir=tmp_path / "data")
    SubmissionLedger.for_settings(settings).record(
        {"tournament": "signals", "round": 1002, "model_name": "my_signals", "submission_id": "sub-1",
         "sha256": "0" * 64, "uploaded_at": "2026-12-01T12:11:00+00:00"})
    done = scheduled_submit_flow(**params, return_state=True)
    assert done.name == "Skipped" and done.message.startswith("skipped: already submitted for round 1002")
    assert not fake_numerai.calls("dataset") and not fake_numerai.state.uploads  # nothing fetched or sent


@pytest.mark.slow
def test_live_prepare_skips_when_numerai_lists_no_round(prefect_harness, fake_numerai, tmp_path, monkeypatch):
    from numerflow.flows.scheduled import scheduled_prepare_flow

    monkeypatch.setenv("NUMERFLOW_NUMERAI_API_URL", fake_numerai.url)
    fake_numerai.set_round("signals", None)
    state = scheduled_prepare_flow(mode="live", data_dir=str(tmp_path / "data"),
                                   overrides={"price_source": "yahoo"}, return_state=True)
    assert state.name == "Skipped" and "no open or upcoming signals round" in state.message
