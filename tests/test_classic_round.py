"""The Numerai Classic round end to end (flows/classic.py): the REAL numerapi ``NumerAPI``
(tournament 8) against the fake Numerai server on 127.0.0.1 serving Classic's files in their
real schemas (tests/fakes/classic.py), through Prefect (the session harness); and the offline
demo round, ad hoc (the CLI) and scheduled (the guard)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from fakes.classic import serve_demo_classic
from fakes.numerai_server import FakeNumeraiServer, closed_round, open_round

from numerflow.tasks.core.errors import BadInputError

ROUND = 900
SIZES = {"train_eras": 30, "validation_eras": 8, "ids_per_era": 120, "n_features": 12}


@pytest.fixture
def numerai(tmp_path):
    with FakeNumeraiServer() as fake:
        fake.set_round("classic", open_round(ROUND, hours_left=6))
        fake.state.models.append({"id": "model-classic-1", "name": "my_classic", "tournament": 8})
        served = serve_demo_classic(fake, tmp_path / "served", **SIZES)
        fake.served = served  # type: ignore[attr-defined]
        yield fake


@pytest.fixture
def classic_env(numerai, monkeypatch, tmp_path):
    env = {
        "NUMERAI_PUBLIC_ID": numerai.state.public_id,
        "NUMERAI_SECRET_KEY": numerai.state.secret_key,
        "NUMERFLOW_NUMERAI_API_URL": numerai.url,
        "NUMERFLOW_NUMERAI__TIMEOUT_SECONDS": "5",
        "NUMERFLOW_DATA_DIR": str(tmp_path / "data"),
        "NUMERFLOW_TRAINING__NUM_THREADS": "2",
        "NUMERFLOW_CLASSIC__QUICK_NUM_BOOST_ROUND": "30",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return tmp_path / "data"


def _ledger(data_dir: Path) -> dict:
    path = data_dir / "submissions" / "ledger.json"
    return json.loads(path.read_text())["submissions"] if path.exists() else {}


@pytest.mark.slow
def test_live_classic_round_uploads_the_file_once_then_skips(prefect_harness, classic_env, numerai):
    from numerflow.flows.classic import classic_round_flow

    result = classic_round_flow(mode="live", model_name="my_classic", quick=True)

    # The upload: exactly the submission file's bytes, id,prediction, every live id once.
    path = Path(result.submission.path)
    assert result.upload.status == "uploaded"
    (upload,) = numerai.state.uploads
    assert upload["body"] == path.read_bytes()
    assert upload["body"].startswith(b"id,prediction\n")
    sent = pd.read_csv(io.BytesIO(upload["body"]), dtype={"id": str})
    live = pd.read_parquet(io.BytesIO(numerai.served["live.parquet"]))
    assert sorted(sent["id"]) == sorted(live.index.astype(str)) and sent["id"].is_unique
    assert sent["prediction"].between(0, 1, inclusive="neither").all()
    (created,) = numerai.state.submissions
    assert created["operation"] == "create_submission"
    assert created["variables"]["modelId"] == "model-classic-1"
    auth = numerai.calls("submission_upload_auth")[-1]["variables"]
    assert auth["modelId"] == "model-classic-1" and auth["tournament"] == 8
    (entry,) = _ledger(classic_env).values()
    assert (entry["tournament"], entry["round"], entry["model_name"]) == ("classic", ROUND, "my_classic")
    assert entry["sha256"] == result.submission.sha256
    # Trained on the newest complete version with the quick (small) feature set, scored with MMC.
    assert result.data.version == "v5.2" and result.model.trained
    assert numerai.calls("dataset")  # downloaded through numerapi's dataset query
    report = json.loads(Path(result.model.report.json).read_text())
    assert report["model"]["lineage"]["data_version"] == "v5.2"
    assert report["model"]["lineage"]["feature_set"] == "small"
    assert report["metrics"]["mmc"]["n_eras"] == SIZES["validation_eras"]

    # The same round again: skipped by the ledger, the model reused, nothing sent twice.
    again = classic_round_flow(mode="live", model_name="my_classic", quick=True)
    assert again.upload.status == "skipped" and "already submitted" in again.upload.message
    assert again.model.trained is False
    assert len(numerai.state.uploads) == 1 and len(numerai.state.submissions) == 1
    assert len(_ledger(classic_env)) == 1


@pytest.mark.slow
def test_a_two_model_classic_round_uploads_each_model_once_with_its_own_ledger_entry(prefect_harness, classic_env,
                                                                                      numerai, monkeypatch):
    """A [[classic.models]] table: the data is downloaded once; each model trains with its own
    parameters and lineage, writes its own file in its own folder and is uploaded once."""
    from numerflow.flows.classic import classic_round_flow

    numerai.state.models.append({"id": "model-classic-2", "name": "other_classic", "tournament": 8})
    models = [{"name": "my_classic"}, {"name": "other_classic", "params": {"num_leaves": 7}}]
    result = classic_round_flow(mode="live", quick=True, overrides={"classic": {"models": models}})

    assert [(run.name, run.upload.status) for run in result.models] == [("my_classic", "uploaded"),
                                                                        ("other_classic", "uploaded")]
    assert sorted(s["variables"]["modelId"] for s in numerai.state.submissions) == ["model-classic-1",
                                                                                   "model-classic-2"]
    ledger = _ledger(classic_env)
    assert sorted(ledger) == [f"classic/{ROUND}/my_classic", f"classic/{ROUND}/other_classic"]
    for run in result.models:
        assert ledger[f"classic/{ROUND}/{run.name}"]["sha256"] == run.submission.sha256
        assert Path(run.submission.path).parent.name == run.name
    first, second = (json.loads((Path(run.model.model_dir) / "meta.json").read_text()) for run in result.models)
    assert first["lineage"]["model"] != second["lineage"]["model"]
    assert second["lineage"]["params"]["num_leaves"] == 7 and first["lineage"]["params"]["num_leaves"] == 31


@pytest.mark.slow
def test_a_two_model_classic_demo_writes_two_submissions_and_two_records(prefect_harness, tmp_path, monkeypatch):
    from numerflow.flows.classic import classic_round_flow

    monkeypatch.setenv("NUMERFLOW_CLASSIC__QUICK_NUM_BOOST_ROUND", "30")
    models = [{"name": "first_classic"}, {"name": "second_classic", "target": "target_cyrusd_20"}]
    result = classic_round_flow(mode="demo", quick=True, data_dir=str(tmp_path / "data"),
                                overrides={"classic": {"models": models}})
    assert [(run.name, run.upload.status) for run in result.models] == [("first_classic", "dry_run"),
                                                                        ("second_classic", "dry_run")]
    files = sorted((tmp_path / "data" / "submissions" / "classic").glob("demo-*/*/submission.csv"))
    assert [f.parent.name for f in files] == ["first_classic", "second_classic"]
    assert all((f.parent / "upload-record.json").exists() for f in files)
    targets = [json.loads((Path(run.model.model_dir) / "meta.json").read_text())["lineage"]["targets"]
               for run in result.models]
    assert targets == [["target"], ["target_cyrusd_20"]]


@pytest.mark.slow
def test_a_closed_classic_round_refuses_before_any_download(prefect_harness, classic_env, numerai):
    from numerflow.flows.classic import classic_round_flow

    numerai.set_round("classic", closed_round(ROUND + 1))
    with pytest.raises(BadInputError, match=rf"round {ROUND + 1} is closed"):
        classic_round_flow(mode="live", model_name="my_classic", quick=True)
    assert numerai.state.uploads == [] and numerai.state.submissions == []
    assert _ledger(classic_env) == {}
    assert numerai.calls("dataset") == []  # refused before any file was fetched


@pytest.mark.slow
def test_without_keys_a_live_classic_round_is_a_validated_dry_run(prefect_harness, classic_env, numerai, monkeypatch):
    from numerflow.flows.classic import classic_round_flow

    monkeypatch.delenv("NUMERAI_PUBLIC_ID")
    monkeypatch.delenv("NUMERAI_SECRET_KEY")
    result = classic_round_flow(mode="live", model_name="my_classic", quick=True)
    assert result.upload.status == "dry_run" and "no Numerai API keys" in result.upload.message
    record = json.loads(Path(result.upload.record).read_text())
    assert record["validated_against_universe"] is True and record["rows"] == SIZES["ids_per_era"]
    assert record["would_call"] == "NumerAPI.upload_predictions"
    assert numerai.state.uploads == [] and _ledger(classic_env) == {}


@pytest.mark.slow
def test_the_demo_classic_round_from_the_cli_then_the_scheduled_guard_skips(prefect_harness, tmp_path, capsys,
                                                                            monkeypatch):
    from numerflow.flows.classic import scheduled_classic_flow
    from numerflow.flows.cli import main

    monkeypatch.setenv("NUMERFLOW_CLASSIC__QUICK_NUM_BOOST_ROUND", "30")
    data = tmp_path / "data"
    assert main(["run", "--demo", "--tournament", "classic", "--quick", "--data-dir", str(data), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["tournament"] == "classic" and summary["upload"]["status"] == "dry_run"
    assert summary["validation"]["mean"] > 0  # the demo's planted signal is found
    assert Path(summary["submission"]["path"]).read_text().startswith("id,prediction\n")

    # The CLI's run recorded the demo round: the scheduled one skips it, unless forced.
    overrides = {"classic": {"quick": True}}
    skipped = scheduled_classic_flow(mode="demo", data_dir=str(data), overrides=overrides, return_state=True)
    assert skipped.name == "Skipped" and "already submitted" in skipped.message
    forced = scheduled_classic_flow(mode="demo", force=True, data_dir=str(data), overrides=overrides)
    assert forced.upload.status == "dry_run" and forced.model.trained is False  # the CLI's model, reused
    assert "forced re-submission" in forced.guard.reason


@pytest.mark.slow
def test_the_classic_demo_with_no_planted_signal_scores_within_three_standard_errors(prefect_harness, tmp_path, capsys,
                                                                                     monkeypatch):
    import math

    from numerflow.flows.cli import main

    monkeypatch.setenv("NUMERFLOW_CLASSIC__QUICK_NUM_BOOST_ROUND", "30")
    assert main(["run", "--demo", "--tournament", "classic", "--quick", "--signal", "0", "--data-dir",
                 str(tmp_path), "--json"]) == 0
    v = json.loads(capsys.readouterr().out)["validation"]
    assert v["n_eras"] == 40 and abs(v["mean"]) < 3 * v["std"] / math.sqrt(v["n_eras"])


@pytest.mark.slow
def test_a_scheduled_classic_round_too_close_to_its_close_is_skipped_and_notified_once(prefect_harness, classic_env,
                                                                                        numerai, monkeypatch):
    from fakes.webhook import Receiver

    from numerflow.flows.classic import scheduled_classic_flow

    numerai.set_round("classic", open_round(ROUND, hours_left=0.1))  # 6 minutes left, 20 needed
    with Receiver() as hook:
        monkeypatch.setenv("NUMERFLOW_ORCHESTRATION__NOTIFY_WEBHOOK_URL", hook.url)
        for _ in range(2):
            state = scheduled_classic_flow(mode="live", model_name="my_classic", return_state=True)
            assert state.name == "Skipped" and "min left" in state.message
    (notice,) = hook.messages  # the second firing of the same round stays quiet
    assert f"round {ROUND} missed" in json.dumps(notice) and "my_classic" in json.dumps(notice)
    assert numerai.state.uploads == [] and numerai.calls("dataset") == []


def test_signals_only_options_are_refused_for_classic(tmp_path):
    from numerflow.flows.cli import main

    assert main(["run", "--demo", "--tournament", "classic", "--tickers", "200", "--data-dir", str(tmp_path)]) == 2
    assert not (tmp_path / "models").exists()


def test_the_classic_deployment_runs_tuesday_to_saturday_with_the_guard_and_notifications():
    import datetime as dt

    from prefect.flows import load_flow_from_entrypoint

    from numerflow.flows.deployments import build_deployments
    from numerflow.flows.schedule import next_run_times
    from numerflow.tasks.core.config import load_settings

    assert "numerflow-classic" not in {d.name for d in build_deployments(load_settings())}  # opt-in
    settings = load_settings(classic={"deploy": True})
    deployment = {d.name: d for d in build_deployments(settings)}["numerflow-classic"]
    assert deployment.parameters == {"mode": "live"} and deployment.concurrency_limit == 1
    assert {s.schedule.timezone for s in deployment.schedules} == {"UTC"}
    flow = load_flow_from_entrypoint(deployment.entrypoint)
    assert flow.name == "scheduled-classic" and flow.retries in (0, None) and flow.on_failure_hooks
    properties = deployment._parameter_openapi_schema.model_dump()["properties"]
    assert all(p.get("description") for p in properties.values())
    # A week of firings: after each 13:00 UTC open Tuesday-Saturday, none on Sunday.
    monday = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    runs = next_run_times([s.schedule for s in deployment.schedules], monday, 12)
    week = [r for r in runs if r < monday + dt.timedelta(days=7)]
    assert {r.strftime("%a") for r in week if r.hour == 13 and r.minute == 10} == {"Tue", "Wed", "Thu", "Fri", "Sat"}
    assert not [r for r in week if r.strftime("%a") == "Sun"]
    with pytest.raises(BadInputError, match="classic.crons: 'every day' is not a five-field cron"):
        load_settings(classic={"deploy": True, "crons": ["every day"]})  # refused when the settings load


def test_a_classic_file_made_by_hand_is_submitted_once_against_the_rounds_live_ids(classic_env, numerai, tmp_path,
                                                                                  capsys):
    """`numerflow submit --tournament classic`: only live.parquet is downloaded (never the training
    data), the file is checked against exactly its ids, uploaded once, then skipped; `status` names
    the round; `universe` refuses Classic clearly."""
    from numerflow.flows.cli import main

    live = pd.read_parquet(io.BytesIO(numerai.served["live.parquet"]))
    ids = live.index.astype(str)
    mine = tmp_path / "mine.csv"
    pd.DataFrame({"id": ids, "prediction": (pd.Series(range(len(ids))) + 0.5) / len(ids)}).to_csv(mine, index=False)
    short = tmp_path / "short.csv"
    pd.read_csv(mine).iloc[1:].to_csv(short, index=False)

    argv = ["submit", "--tournament", "classic", "--model", "my_classic"]
    assert main([*argv, str(short)]) == 2  # one live id missing: refused before any upload
    assert "id" in capsys.readouterr().err and not numerai.state.uploads
    assert main([*argv, str(mine)]) == 0
    assert "uploaded" in capsys.readouterr().out
    (upload,) = numerai.state.uploads
    assert upload["body"].startswith(b"id,prediction\n")
    assert sorted(pd.read_csv(io.BytesIO(upload["body"]), dtype={"id": str})["id"]) == sorted(ids)
    downloaded = {c["variables"]["filename"] for c in numerai.calls("dataset")}
    assert downloaded == {"v5.2/live.parquet"}  # no training data for a file made by hand
    assert main([*argv, str(mine)]) == 0 and "already submitted" in capsys.readouterr().out
    assert len(numerai.state.uploads) == 1

    assert main(["status", "--tournament", "classic"]) == 0
    out = capsys.readouterr().out
    assert f"classic round {ROUND}, OPEN" in out and "my_classic" in out
    assert main(["universe", "--tournament", "classic"]) == 2
    assert "unsupported_tournament" in capsys.readouterr().err
