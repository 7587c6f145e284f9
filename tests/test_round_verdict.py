"""Numerai's own verdict inside a round (tasks/round/verdict.py, flows/round.py): diagnostics after each
(re)training as tasks of their own, the payout preview of the round's configuration and neutral churn
against numerflow's own live features, with the gate's floor on the penalty.

Through the REAL numerapi against the fake Numerai (tests/fakes/numerai_server.py) and the real
yfinance against the fake Yahoo, under Prefect (the session harness)."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakes.numerai_server import open_round
from test_live_round import _assert_artifact, live_env, numerai, yahoo  # noqa: F401 - fixtures of a live round
from test_numerai_verdict import SIGNALS_CONFIGS, _numerai_style_scorer, verdict_env  # noqa: F401 - fixture

from numerflow.tasks.core.config import load_settings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, write_parquet
from numerflow.tasks.numerai import diagnostics as diag
from numerflow.tasks.numerai.churn import churn, record_submission
from numerflow.tasks.round.verdict import neutral_churn_check, submission_verdict

# --------------------------------------------------------------------------- neutral churn in the round


def _dataset(tmp_path: Path, tickers: list[str], days: list[pd.Timestamp], rng: np.random.Generator) -> Path:
    """A dataset of numerflow's shape: ticker, date, three numeric features per day."""
    rows = []
    for day in days:
        features = rng.normal(size=(len(tickers), 3))
        rows.append(pd.DataFrame({"ticker": tickers, "date": day, "feature_a": features[:, 0],
                                  "feature_b": features[:, 1], "feature_c": features[:, 2]}))
    return write_parquet(tmp_path / "dataset.parquet", pd.concat(rows, ignore_index=True))


def _submission(tickers: list[str], values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"numerai_ticker": tickers, "signal": pd.Series(values).rank(pct=True).to_numpy() * 0.98})


def _verdict_settings(tmp_path: Path, monkeypatch, **submission: object):
    monkeypatch.setenv("NUMERFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NUMERFLOW_NUMERAI__MODEL_NAME", "my_signals")
    for key, value in submission.items():
        monkeypatch.setenv(f"NUMERFLOW_SUBMISSION__{key.upper()}", str(value))
    return load_settings()


def test_neutral_churn_sees_a_factor_move_as_no_churn_and_a_new_signal_as_a_penalty(tmp_path, monkeypatch):
    """Last week's submission, then this week's: moved only along numerflow's features (plain churn
    counts it, neutral churn does not), or a new idea (both count it; the penalty is below 1)."""
    rng = np.random.default_rng(5)
    tickers = [f"T{i:03d} US" for i in range(300)]
    now = dt.datetime.now(dt.UTC)
    last_week, today = pd.Timestamp((now - dt.timedelta(days=3)).date()), pd.Timestamp(now.date())
    path = _dataset(tmp_path, tickers, [last_week, today], rng)
    frame = pd.read_parquet(path)
    then = frame[frame["date"] == last_week][["feature_a", "feature_b", "feature_c"]].to_numpy()
    here = frame[frame["date"] == today][["feature_a", "feature_b", "feature_c"]].to_numpy()
    idea = rng.normal(size=len(tickers))
    settings = _verdict_settings(tmp_path, monkeypatch)
    record_submission(Store(settings.data_dir), "signals", "my_signals", "round-1199",  # sent the day after
                      _submission(tickers, idea + 3 * then[:, 0]), now=now - dt.timedelta(days=2))

    moved = neutral_churn_check(settings, _submission(tickers, idea + 3 * here[:, 0]), "round-1200", path,
                                str(today.date()))
    plain = churn(_submission(tickers, idea + 3 * here[:, 0]).set_index("numerai_ticker")["signal"],
                  _submission(tickers, idea + 3 * then[:, 0]).set_index("numerai_ticker")["signal"])
    assert plain > 0.5 and moved["max_neutral_churn"] < 0.1 and moved["neutral_churn_penalty"] == 1.0
    assert [c["round"] for c in moved["compared_with"]] == ["round-1199"]
    assert "numerflow's own 3 features (feature_a, feature_b, feature_c)" in moved["neutralizers"]
    assert moved["warning"] is None

    new_idea = neutral_churn_check(settings, _submission(tickers, rng.normal(size=len(tickers))), "round-1200",
                                   path, str(today.date()))
    assert new_idea["max_neutral_churn"] > 0.5 and new_idea["neutral_churn_penalty"] < 0.5
    assert "submission.min_neutral_churn_penalty" in new_idea["warning"]  # warn (the default gate): uploaded


def test_the_gate_refuses_a_penalty_below_the_floor_naming_the_setting(tmp_path, monkeypatch):
    rng = np.random.default_rng(6)
    tickers = [f"T{i:03d} US" for i in range(200)]
    now = dt.datetime.now(dt.UTC)
    today = pd.Timestamp(now.date())
    path = _dataset(tmp_path, tickers, [today - pd.Timedelta(days=2), today], rng)
    settings = _verdict_settings(tmp_path, monkeypatch, churn_gate="refuse", min_neutral_churn_penalty=0.9)
    record_submission(Store(settings.data_dir), "signals", "my_signals", "round-1199",
                      _submission(tickers, rng.normal(size=len(tickers))), now=now - dt.timedelta(days=1))
    predictions = write_parquet(tmp_path / "live.parquet", pd.DataFrame({
        "ticker": tickers, "date": today, "prediction": rng.normal(size=len(tickers))}))
    with pytest.raises(BadInputError, match=r"neutral-churn penalty 0\.\d+ < floor 0\.900.*"
                       r"submission\.min_neutral_churn_penalty") as refused:
        submission_verdict(settings, str(predictions), "round-1200", model_dir=str(tmp_path), dataset_path=str(path),
                           live_date=str(today.date()), payout=None, live=True)
    assert refused.value.tag == "churn_gate"

    # A floor of 0 never refuses; the figures stay in the checks.
    monkeypatch.setenv("NUMERFLOW_SUBMISSION__MIN_NEUTRAL_CHURN_PENALTY", "0")
    checks = submission_verdict(load_settings(), str(predictions), "round-1200", model_dir=str(tmp_path),
                                dataset_path=str(path), live_date=str(today.date()), payout=None, live=True)
    assert checks["neutral_churn_penalty"] < 0.9 and checks["neutral_churn"].startswith("neutral churn 1.")
    assert checks["payout"].startswith("no payout preview: Numerai gave no payout configuration for this round")


# --------------------------------------------------------------------------- a live round with the verdict


@pytest.mark.slow
def test_a_live_round_uploads_diagnostics_per_trained_model_beside_its_upload(prefect_harness, live_env, numerai,
                                                                             yahoo, monkeypatch):
    from numerflow.flows.round import round_flow
    from numerflow.tasks.round.report import render_round_report
    from numerflow.tasks.round.summary import summary_of

    monkeypatch.setenv("NUMERFLOW_MODELS", json.dumps([{"name": "my_signals", "stake": 100},
                                                       {"name": "other_signals", "upload_diagnostics": False}]))
    monkeypatch.setenv("NUMERFLOW_NUMERAI__UPLOAD_DIAGNOSTICS", "true")
    monkeypatch.setenv("NUMERFLOW_DIAGNOSTICS__POLL_WAITS_SECONDS", "[0, 0, 0]")
    numerai_rows = pd.concat([pd.read_parquet(io.BytesIO(numerai.state.datasets[11][f"signals/v2.1/{name}.parquet"]))
                              for name in ("train", "validation")])  # numerflow's validation eras are Numerai's too
    numerai.state.diagnostics_scorer = _numerai_style_scorer(pd.DataFrame({
        "ticker": numerai_rows["numerai_ticker"], "date": pd.to_datetime(numerai_rows["date"]),
        "target": numerai_rows["target"]}))
    numerai.state.diagnostics_pending_polls = 10  # longer than the schedule: still pending at the round's end
    numerai.add_round("signals", {**open_round(1200, hours_left=6), "payoutFactor": "0.5",
                                  "roundScoreConfigs": SIGNALS_CONFIGS})

    first = round_flow(mode="live")

    # Both uploaded; one diagnostics upload, for the model that asks for it, made from its validation predictions.
    runs = {run.name: run for run in first.models}
    assert {name: run.upload.status for name, run in runs.items()} == {"my_signals": "uploaded",
                                                                       "other_signals": "uploaded"}
    (uploaded,) = numerai.state.diagnostics
    assert uploaded["variables"]["modelId"] == "model-signals-1"
    sent = pd.read_csv(io.BytesIO(uploaded["body"]))
    assert list(sent.columns) == ["numerai_ticker", "date", "signal"]
    assert (pd.to_datetime(sent["date"]).dt.dayofweek == 4).all()
    assert len(numerai.calls("diagnostics")) == 3  # the bounded schedule, then left pending
    mine = runs["my_signals"].diagnostics
    assert (mine.status, mine.uploaded, mine.diagnostics_id) == ("pending", True, uploaded["id"])
    assert runs["other_signals"].diagnostics is None  # upload_diagnostics = false for this entry
    store = Store(load_settings().data_dir)
    assert diag.history(store, "signals")["status"].tolist() == ["pending"]

    # The payout preview of the round's configuration, for the model's stake, in checks, summary and report.
    checks = runs["my_signals"].submission.checks
    assert checks["payout"].startswith("payout: round 1200 pays 0.3×alpha") and "mpc unknown" in checks["payout"]
    assert checks["payout_preview"]["stake"] == 100
    summary, text = summary_of(first)
    assert summary["models"][0]["payout"]["payout"] == checks["payout"]
    assert "diagnostics pending" in text and "payout      payout: round 1200" in text
    assert "pays        round 1200 pays 0.3×alpha + 0.8×mpc, clip ±0.017, payout factor 0.5" in text
    report = render_round_report(first)
    assert "## Numerai's verdict" in report and "still pending" in report
    assert "- this round: round 1200 pays 0.3×alpha" in report

    # The next round: the models are reused, nothing is uploaded to diagnostics, the pending one is done.
    numerai.state.diagnostics_pending_polls = 0
    numerai.set_round("signals", open_round(1201, hours_left=6))
    second = round_flow(mode="live")
    runs = {run.name: run for run in second.models}
    assert not any(run.model.trained for run in runs.values())
    assert len(numerai.state.diagnostics) == 1
    mine = runs["my_signals"].diagnostics
    assert (mine.status, mine.uploaded, mine.diagnostics_id) == ("done", False, uploaded["id"])
    (corr,) = mine.agreement
    assert corr["score"] == "corr" and corr["eras"] == sent["date"].nunique() and not corr["flagged"]
    assert abs(corr["difference"]) < 1e-9  # Numerai's figures equal numerflow's on the same eras
    assert diag.history(store, "signals")["status"].tolist() == ["done"]
    report = render_round_report(second)
    assert "| corr |" in report and "| ok |" in report
    _assert_artifact("diagnostics-agreement", "corr")

    # Neutral churn against round 1200's submission, beside plain churn: same model, same features.
    checks = runs["my_signals"].submission.checks
    assert checks["max_neutral_churn"] == pytest.approx(0.0, abs=1e-6) and checks["neutral_churn_penalty"] == 1.0
    assert "neutralised against numerflow's own" in checks["neutral_churn"]
    assert "neutral churn" in summary_of(second)[1]


@pytest.mark.slow
def test_a_diagnostics_failure_never_costs_the_upload_and_is_shown(prefect_harness, live_env, numerai, yahoo,
                                                                   monkeypatch):
    from numerflow.flows.round import round_flow
    from numerflow.tasks.round.summary import summary_of

    monkeypatch.setenv("NUMERFLOW_NUMERAI__UPLOAD_DIAGNOSTICS", "true")
    monkeypatch.setenv("NUMERFLOW_DIAGNOSTICS__POLL_WAITS_SECONDS", "[0]")
    numerai.fail("createDiagnostics", message="Invalid diagnostics file: eras mismatch")

    result = round_flow(mode="live", model_name="my_signals")

    assert result.upload.status == "uploaded" and len(numerai.state.submissions) == 1
    assert numerai.state.diagnostics == []
    outcome = result.models[0].diagnostics
    assert outcome.status == "failed" and "eras mismatch" in outcome.message
    assert "the round's upload stands" in outcome.message
    assert "diagnostics failed" in summary_of(result)[1]


# --------------------------------------------------------------------------- ALPHA in the agreement table


def test_the_agreement_table_puts_numerflows_alpha_beside_numerais(verdict_env):
    """A model with ALPHA scored locally (per date, in its meta.json): Numerai's per-era ALPHA is
    compared on the same eras; eras Numerai scored that numerflow did not are flagged."""
    from test_numerai_verdict import _register_model, _validation_predictions

    from numerflow.tasks.core.store import read_json, write_json
    from numerflow.tasks.round.verdict import model_diagnostics, upload_model_diagnostics

    fake = verdict_env
    rng = np.random.default_rng(21)
    predictions = _validation_predictions(rng)
    settings = load_settings().model_copy(update={"numerai": load_settings().numerai.model_copy(
        update={"model_name": "my_signals"})})
    _register_model(settings.data_dir, "my_signals", predictions)
    model_dir = next(Store(settings.data_dir).models_dir().iterdir())
    fridays = sorted(d for d in predictions["date"].unique() if pd.Timestamp(d).dayofweek == 4)
    values = rng.normal(0.01, 0.02, len(fridays))
    local_alpha = {pd.Timestamp(d).strftime("%Y-%m-%d"): float(v) for d, v in zip(fridays, values, strict=True)}
    meta = read_json(model_dir / "meta.json")
    meta["validation_metrics"]["per_date_alpha"] = {"date": list(local_alpha)[:-3],
                                                    "alpha": list(local_alpha.values())[:-3]}
    write_json(model_dir / "meta.json", meta)
    corr_scorer = _numerai_style_scorer(predictions)

    def scorer(body: bytes) -> dict:
        scored = corr_scorer(body)
        for era in scored["perEraDiagnostics"]:
            era["validationAlpha"] = local_alpha[era["era"]]
        return scored

    fake.state.diagnostics_scorer = scorer
    fake.state.diagnostics_pending_polls = 0
    uploaded = upload_model_diagnostics(settings, str(model_dir))
    outcome = model_diagnostics(settings, uploaded, sleep=lambda _: None)

    assert outcome.status == "done" and outcome.uploaded
    rows = {row["score"]: row for row in outcome.agreement}
    assert rows["corr"]["eras"] == len(fridays) and not rows["corr"]["flagged"]
    alpha = rows["alpha"]
    assert alpha["eras"] == len(fridays) - 3 and abs(alpha["difference"]) < 1e-12
    assert alpha["flagged"]  # Numerai scored 3 eras numerflow has no ALPHA for
    assert outcome.flagged
