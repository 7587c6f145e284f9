"""The round guard: round closed, already submitted, late runs — as pure decisions, and through the
scheduled round flow (a real Prefect run) against the fake Numerai and the demo's upload record."""

from __future__ import annotations

import datetime as dt

import pytest
from fakes.numerai_fixtures import (  # noqa: F401 - fixtures
    fake_numerai,
    keys,
    make_client,
    numerai_settings,
    sleeps,
    universe_parquet,
    us_tickers,
)
from fakes.numerai_server import closed_round, open_round

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.numerai.client import RoundInfo
from numerflow.tasks.numerai.ledger import SubmissionLedger
from numerflow.tasks.numerai.submit import submit_file
from numerflow.tasks.numerai.universe import fetch_universe
from numerflow.tasks.round.guard import DEMO_RECORD, demo_round_guard, demo_round_label, live_round_guard

UTC = dt.UTC
OPEN = dt.datetime(2026, 11, 21, 18, 0, tzinfo=UTC)
CLOSE = dt.datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
ROUND = RoundInfo("signals", 842, OPEN, CLOSE)
ENTRY = {"submission_id": "sub-1", "uploaded_at": "2026-11-21T18:40:00+00:00"}


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def test_open_round_not_submitted_proceeds():
    decision = live_round_guard(ROUND, None, now=at(21, 18, 30))
    assert decision.proceed and decision.round_label == "round-842" and decision.round_number == 842


def test_already_submitted_skips_with_the_round_number():
    decision = live_round_guard(ROUND, ENTRY, now=at(22, 6))
    assert not decision.proceed
    assert decision.reason.startswith("skipped: already submitted for round 842") and "sub-1" in decision.reason


def test_force_resubmits_an_open_round_but_never_a_closed_one():
    assert live_round_guard(ROUND, ENTRY, now=at(22, 6), force=True).proceed
    assert not live_round_guard(ROUND, ENTRY, now=at(23, 15), force=True).proceed


def test_no_round_is_closed():
    decision = live_round_guard(None, None, now=at(25, 12))
    assert not decision.proceed and decision.reason.startswith("round closed: Numerai has no round open")


def test_before_open_is_closed():
    decision = live_round_guard(ROUND, None, now=at(21, 17, 59))
    assert not decision.proceed and decision.reason.startswith("round closed: round 842 has not opened yet")


@pytest.mark.parametrize("now", [at(23, 14, 30), at(23, 16), at(24, 9)])
def test_late_run_past_the_deadline_uploads_nothing(now):
    decision = live_round_guard(ROUND, None, now=now)
    assert not decision.proceed
    assert decision.reason.startswith("round closed: round 842 closed at 2026-11-23 14:30 UTC")


def test_too_close_to_the_deadline_is_skipped():
    decision = live_round_guard(ROUND, None, now=at(23, 14, 15), min_time_left=dt.timedelta(minutes=20))
    assert not decision.proceed and "only 15 min left" in decision.reason
    assert live_round_guard(ROUND, None, now=at(23, 14, 5), min_time_left=dt.timedelta(0)).proceed


def test_guard_needs_an_aware_now():
    with pytest.raises(ValueError):
        live_round_guard(ROUND, None, now=dt.datetime(2026, 11, 22, 6))


def test_demo_guard_uses_the_upload_record(tmp_path):
    label = demo_round_label(dt.date(2026, 11, 20))
    assert label == "demo-2026-11-20"
    assert demo_round_guard(tmp_path, label).proceed
    (tmp_path / DEMO_RECORD).write_text("{}")
    skipped = demo_round_guard(tmp_path, label)
    assert not skipped.proceed and skipped.reason.startswith("skipped: already submitted for round demo-2026-11-20")
    assert demo_round_guard(tmp_path, label, force=True).proceed


def test_upload_reached_after_the_deadline_is_refused(fake_numerai, numerai_settings, make_client, tmp_path):
    """A run that started in time but reaches the upload late: the upload re-checks the window."""
    import pandas as pd

    from numerflow.tasks.core.store import Store

    fetch_universe(make_client(with_keys=False), Store(numerai_settings.data_dir))
    path = tmp_path / "submission.csv"
    tickers = us_tickers(150)
    pd.DataFrame({"numerai_ticker": tickers, "signal": [(i + .5) / 150 for i in range(150)]}).to_csv(path, index=False)
    late = dt.datetime.now(UTC) + dt.timedelta(hours=2)  # the fake round closes in 1 hour
    with pytest.raises(BadInputError, match="round_closed: .*is closed"):
        submit_file(path, numerai_settings, client=make_client(), now=late)
    assert fake_numerai.state.uploads == [] and fake_numerai.state.submissions == []
    assert SubmissionLedger.for_settings(numerai_settings).get("signals", 1001, "my_signals") is None


# ------------------------------------------------------------------ through the scheduled round flow


def live_params(fake, data_dir) -> dict:
    return {"mode": "live", "data_dir": str(data_dir), "model_name": "my_signals",
            "overrides": {"numerai": {"api_url": fake.url, "timeout_seconds": 5, "retries": 1}}}


def run_round(**params):
    from numerflow.flows.scheduled import scheduled_round_flow

    return scheduled_round_flow.with_options(retries=0)(**params, return_state=True)


def test_flow_skips_a_closed_round(prefect_harness, fake_numerai, tmp_path):
    fake_numerai.set_round("signals", closed_round(1001))
    state = run_round(**live_params(fake_numerai, tmp_path / "data"))
    assert state.is_completed() and state.name == "Skipped"
    assert state.message.startswith("round closed: round 1001 closed at")
    assert fake_numerai.calls("listDatasets") == []  # finished before any round work


def test_flow_skips_an_already_submitted_round(prefect_harness, fake_numerai, numerai_settings, tmp_path):
    data_dir = tmp_path / "data"
    from numerflow.tasks.core.config import load_settings

    ledger = SubmissionLedger.for_settings(load_settings(data_dir=data_dir))
    ledger.record({"tournament": "signals", "round": 1001, "model_name": "my_signals", "submission_id": "sub-9",
                   "uploaded_at": "2026-11-21T18:40:00+00:00", "sha256": "0" * 64})
    state = run_round(**live_params(fake_numerai, data_dir))
    assert state.name == "Skipped" and state.message.startswith("skipped: already submitted for round 1001")
    assert fake_numerai.calls("listDatasets") == []


def test_flow_skips_when_too_little_time_is_left(prefect_harness, fake_numerai, tmp_path):
    fake_numerai.set_round("signals", open_round(1001, hours_left=0.1))  # 6 minutes
    state = run_round(**live_params(fake_numerai, tmp_path / "data"))
    assert state.name == "Skipped" and "min left" in state.message


def test_demo_flow_skips_a_submitted_demo_round(prefect_harness, tmp_path):
    from numerflow.tasks.core.config import load_settings
    from numerflow.tasks.core.store import Store, write_json
    from numerflow.tasks.prices.sources.demo import DemoMarket

    data_dir = tmp_path / "data"
    settings = load_settings(data_dir=data_dir, demo={"tickers": 120, "years": 2})
    label = demo_round_label(DemoMarket.from_settings(settings.demo).end)
    write_json(Store(data_dir).submission_dir("signals", label) / DEMO_RECORD, {"dry_run": True})
    state = run_round(mode="demo", data_dir=str(data_dir), tickers=120, years=2)
    assert state.name == "Skipped" and state.message.startswith(f"skipped: already submitted for round {label}")
    assert not (data_dir / "prices").exists()  # nothing ingested


# ------------------------------------------------------------------ a missed round notifies once


def test_missed_round_is_a_refusal_for_time_of_a_run_due_before_the_close():
    from numerflow.tasks.round.guard import missed_round

    late = live_round_guard(ROUND, None, now=at(23, 14, 15))  # 15 min left: refused for time
    closed = live_round_guard(ROUND, None, now=at(23, 16))
    assert "missed: my_model not submitted" in missed_round(late, expected_start=at(23, 14, 15),
                                                            unsubmitted=["my_model"])
    # Blocked or queued: due Monday 11:00, started after the close.
    assert missed_round(closed, expected_start=at(23, 11), unsubmitted=["my_model"]).startswith("round 842 missed")
    assert missed_round(closed, expected_start=at(23, 15), unsubmitted=["my_model"]) is None  # due after the close
    assert missed_round(closed, expected_start=at(23, 11), unsubmitted=[]) is None  # every model submitted
    assert missed_round(live_round_guard(ROUND, None, now=at(21, 17)), expected_start=at(21, 17),
                       unsubmitted=["my_model"]) is None  # not open yet: not missed
    assert missed_round(live_round_guard(ROUND, None, now=at(22, 6)), expected_start=at(22, 6),
                       unsubmitted=["my_model"]) is None  # it runs


@pytest.mark.slow
def test_scheduled_round_skipped_for_time_notifies_once(prefect_harness, fake_numerai, tmp_path, monkeypatch):
    from test_notify import Receiver

    from numerflow.flows.scheduled import scheduled_round_flow

    monkeypatch.setenv("NUMERFLOW_NUMERAI_API_URL", fake_numerai.url)
    monkeypatch.setenv("NUMERFLOW_SCHEDULE__MIN_MINUTES_BEFORE_DEADLINE", "120")  # the round has 60 min left
    params = {"mode": "live", "model_name": "my_signals", "data_dir": str(tmp_path / "data")}
    with Receiver() as receiver:
        monkeypatch.setenv("NUMERFLOW_ORCHESTRATION__NOTIFY_WEBHOOK_URL", receiver.url)
        first = scheduled_round_flow(**params, return_state=True)
        second = scheduled_round_flow(**params, return_state=True)
    assert first.name == second.name == "Skipped" and "only 60 min left" in first.message
    (message,) = receiver.messages  # one notice per round, not one per firing
    assert message["state"] == "Missed" and message["stage"] == "guard"
    assert "round 1001 missed: my_signals not submitted before the close" in message["cause"]
