"""Live scores back: the REAL numerapi client fetches each model's scores (``submissionScores``) and
the recent rounds (``rounds`` in ``list_rounds``' shape) from the fake Numerai server; the history
lands in the store; ``numerflow scores`` shows it; a missed round or a mean below the floor notifies
once."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from fakes.numerai_server import FakeNumeraiServer, closed_round, open_round
from test_notify import Receiver

from numerflow.flows.cli import main
from numerflow.tasks.core.config import load_settings
from numerflow.tasks.core.store import Store
from numerflow.tasks.numerai.ledger import SubmissionLedger
from numerflow.tasks.numerai.scores import history_path, read_history

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def numerai():
    with FakeNumeraiServer() as fake:
        fake.set_round("signals", open_round(1006))
        for n in range(1000, 1006):
            fake.add_round("signals", closed_round(n, now=NOW - dt.timedelta(days=1006 - n)))
        fake.add_round("signals", open_round(1006))
        for n in range(1000, 1006):
            resolved = n < 1004
            for day in (5, 20):
                fake.add_score("model-signals-1", n, "CORR20", 0.01 * (n - 999) + day / 1000, day=day,
                               resolved=resolved and day == 20)
                fake.add_score("model-signals-1", n, "MMC", 0.002, day=day, resolved=resolved and day == 20)
            if n not in (1003, 1005):  # other_signals: no score for 1003 and 1005
                fake.add_score("model-signals-2", n, "CORR20", -0.03, day=20)
        yield fake


@pytest.fixture
def env(numerai, tmp_path, monkeypatch):
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", numerai.state.public_id)
    monkeypatch.setenv("NUMERAI_SECRET_KEY", numerai.state.secret_key)
    monkeypatch.setenv("NUMERFLOW_NUMERAI_API_URL", numerai.url)
    monkeypatch.setenv("NUMERFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NUMERFLOW_MODELS", json.dumps([{"name": "my_signals"}, {"name": "other_signals"}]))
    monkeypatch.setenv("NUMERFLOW_SCORES__ALERT_ROUNDS", "3")
    # other_signals submitted round 1005 (the ledger knows): not missed although not scored yet.
    SubmissionLedger.for_settings(load_settings()).record(
        {"tournament": "signals", "round": 1005, "model_name": "other_signals", "submission_id": "s",
         "sha256": "0" * 64, "uploaded_at": NOW.isoformat()})
    with Receiver() as receiver:
        monkeypatch.setenv("NUMERFLOW_ORCHESTRATION__NOTIFY_WEBHOOK_URL", receiver.url)
        yield receiver


def test_scores_are_fetched_into_the_history_and_shown(env, numerai, capsys):
    assert main(["scores", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    settings = load_settings()
    history = read_history(Store(settings.data_dir), "signals")
    assert len(history) == 6 * 2 * 2 + 4 and report["fetched_rows"] == len(history)
    assert set(history["metric"]) == {"CORR20", "MMC"} and history["date"].dt.tz is not None
    calls = numerai.calls("submissionScores")
    assert {c["variables"]["modelId"] for c in calls} == {"model-signals-1", "model-signals-2"}
    assert all(c["variables"]["lastNRounds"] == 20 and c["variables"]["tournament"] == 11 for c in calls)

    mine, other = report["models"]
    assert mine["model"] == "my_signals" and [r["round"] for r in mine["rounds"]][:3] == [1005, 1004, 1003]
    # Each round shows its latest scoring day (day 20), and whether it resolved.
    assert mine["rounds"][0]["CORR20"] == pytest.approx(0.06 + 0.02) and mine["rounds"][0]["resolved"] is False
    assert mine["rounds"][-1]["resolved"] is True
    assert mine["rolling_mean"]["CORR20"] == pytest.approx((0.08 + 0.07 + 0.06) / 3, abs=1e-12)  # last 3 rounds
    assert mine["missed"] == [] and other["missed"] == [1003]  # 1005: in the ledger
    assert [a["kind"] for a in report["alerts"]] == ["missed"]
    (message,) = env.messages
    assert message["state"] == "Alert" and "other_signals missed round 1003" in message["cause"]

    # A second look: the history keeps one row per (model, round, metric, day); nothing re-notified.
    assert main(["scores"]) == 0
    text = capsys.readouterr().out
    assert len(read_history(Store(settings.data_dir), "signals")) == len(history)
    assert "my_signals" in text and "missed    1003" in text and "ALERT model other_signals missed round 1003" in text
    assert len(env.messages) == 1


def test_mean_below_the_floor_notifies(env, numerai, monkeypatch, capsys):
    monkeypatch.setenv("NUMERFLOW_SCORES__FLOOR", "0.0")
    monkeypatch.setenv("NUMERFLOW_SCORES__METRIC", "corr")
    assert main(["scores", "--json"]) == 0
    alerts = json.loads(capsys.readouterr().out)["alerts"]
    below = [a for a in alerts if a["kind"] == "below_floor"]
    assert [a["model"] for a in below] == ["other_signals"]
    assert "mean CORR20 -0.0300 over its last 3 scored rounds" in below[0]["text"]


def test_stored_history_without_keys(env, numerai, monkeypatch, capsys):
    assert main(["scores"]) == 0
    capsys.readouterr()
    monkeypatch.delenv("NUMERAI_PUBLIC_ID")
    monkeypatch.delenv("NUMERAI_SECRET_KEY")
    assert main(["scores"]) == 2 and "pass --no-fetch" in capsys.readouterr().err
    assert main(["scores", "--no-fetch", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fetched_rows"] == 0 and report["models"][0]["rounds"]
    assert history_path(Store(load_settings().data_dir), "signals").exists()


def test_run_report_has_a_live_scores_section(env, numerai):
    from numerflow.tasks.numerai.live_scores import refresh_scores, render_scores_table

    report = refresh_scores(load_settings(), notify=False)
    markdown = "\n".join(render_scores_table(report))
    assert "### other_signals" in markdown and "- missed rounds: 1003" in markdown
    assert "| 1005 | no | 0.0800 | 0.0020 |" in markdown
    assert "rolling mean (last scored rounds): CORR20" in markdown
    assert pd.notna(report.models[0].rolling_mean["MMC"])


@pytest.mark.slow
def test_scores_flow_skips_cleanly_without_keys(prefect_harness, tmp_path, monkeypatch):
    from numerflow.flows.scores import scores_flow

    monkeypatch.setenv("NUMERFLOW_NUMERAI__MODEL_NAME", "my_signals")
    state = scores_flow(overrides={"data_dir": str(tmp_path / "data")}, return_state=True)
    assert state.is_completed() and state.name == "Skipped" and "no Numerai API keys" in state.message
