"""Many models in one round (the ``[[models]]`` table): shared stages once, each model trained,
validated and uploaded once with its own ledger entry; one model failing never blocks another.

Live rounds run the REAL numerapi client against the fake Numerai server and the REAL yfinance
against the fake Yahoo transport (fixtures of tests/test_live_round.py), through Prefect.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_live_round import live_env, numerai, yahoo  # noqa: F401 - fixtures
from test_notify import receiver  # noqa: F401 - fixture

from numerflow.tasks.core.config import load_settings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import read_json
from numerflow.tasks.round.models import round_models
from numerflow.tasks.round.tournaments import judge_models, preflight

TWO = [{"name": "my_signals", "params": {"num_leaves": 4}},
       {"name": "other_signals", "target": "target_raw_return_20", "params": {"learning_rate": 0.2}}]
BAD = {"name": "other_signals", "params": {"objective": "no_such_objective"}}


def _ledger(settings) -> dict:
    path = Path(settings.data_dir) / "submissions" / "ledger.json"
    return json.loads(path.read_text())["submissions"] if path.exists() else {}


# ------------------------------------------------------------------ the table itself (no Prefect)


def test_no_table_is_the_single_configured_model_unchanged():
    settings = load_settings(numerai={"model_name": "solo"})
    (model,) = round_models(settings)
    assert (model.name, model.in_table, model.submit, model.stage_suffix, model.folder) == ("solo", False, True, "",
                                                                                          None)
    assert model.settings is settings and model.run_id("r1") == "r1"


def test_each_entry_gets_its_name_params_over_training_and_target():
    settings = load_settings(training={"params": {"objective": "regression", "num_leaves": 31}}, models=TWO)
    first, second = (m.settings for m in round_models(settings))
    assert first.numerai.model_name == "my_signals" and second.numerai.model_name == "other_signals"
    assert first.training.params == {"objective": "regression", "num_leaves": 4}
    assert second.training.params == {"objective": "regression", "num_leaves": 31, "learning_rate": 0.2}
    assert first.numerai.target_column == "target" and second.numerai.target_column == "target_raw_return_20"
    assert settings.training.params["num_leaves"] == 31  # the shared settings are not changed
    assert [m.name for m in round_models(settings, "other_signals")] == ["other_signals"]
    assert [(m.in_table, m.stage_suffix, m.run_id("r1")) for m in round_models(settings)] == [
        (True, " my_signals", "r1-my_signals"), (True, " other_signals", "r1-other_signals")]


def test_table_mistakes_are_named_before_any_work():
    with pytest.raises(BadInputError, match="listed twice: a"):
        load_settings(models=[{"name": "a"}, {"name": "a"}])
    with pytest.raises(BadInputError, match="models.0.name"):
        load_settings(models=[{"name": "../x"}])
    with pytest.raises(BadInputError, match=r"models.0.parms: unknown option \(did you mean params\?\)"):
        load_settings(models=[{"name": "a", "parms": {}}])
    with pytest.raises(BadInputError, match="unknown_model: model 'nope' is not in the"):
        round_models(load_settings(models=TWO), "nope")


def test_table_from_numerflow_toml(tmp_path, monkeypatch):
    config = tmp_path / "numerflow.toml"
    config.write_text('[[models]]\nname = "a"\nsubmit = false\n[models.params]\nnum_leaves = 7\n\n'
                      '[[models]]\nname = "b"\ntarget = "target_chili_60"\n')
    monkeypatch.setenv("NUMERFLOW_CONFIG", str(config))
    a, b = load_settings().models
    assert (a.name, a.submit, a.params, b.name, b.submit, b.target) == ("a", False, {"num_leaves": 7}, "b", True,
                                                                        "target_chili_60")


# ------------------------------------------------------------------ live rounds (fake Numerai + Yahoo)


@pytest.mark.slow
def test_two_models_two_uploads_rerun_skips_force_one_named_model(prefect_harness, live_env, numerai, monkeypatch):
    from numerflow.flows import prices as prices_module
    from numerflow.flows.round import round_flow

    monkeypatch.setenv("NUMERFLOW_MODELS", json.dumps(TWO))
    ingests = []
    real_prices_flow = prices_module.prices_flow
    monkeypatch.setattr("numerflow.flows.round.prices_flow",
                        real_prices_flow.with_options(on_completion=[lambda *a: ingests.append(1)]))
    result = round_flow(mode="live")

    # Shared stages once; one model run, one upload, one ledger entry per model.
    assert len(ingests) == 1
    assert [run.name for run in result.models] == ["my_signals", "other_signals"]
    assert [run.upload.status for run in result.models] == ["uploaded", "uploaded"]
    assert sorted(s["variables"]["modelId"] for s in numerai.state.submissions) == ["model-signals-1",
                                                                                   "model-signals-2"]
    ledger = _ledger(live_env)
    assert sorted(ledger) == ["signals/1200/my_signals", "signals/1200/other_signals"]
    for run in result.models:
        entry = ledger[f"signals/1200/{run.name}"]
        assert entry["sha256"] == run.submission.sha256 and Path(run.submission.path).parent.name == run.name
        assert {u["body"] for u in numerai.state.uploads} >= {Path(run.submission.path).read_bytes()}
    # Each model: its own registry lineage, params and Numerai target.
    first, second = (read_json(Path(run.model.model_dir) / "meta.json") for run in result.models)
    assert first["lineage"]["model"] == "my_signals" and second["lineage"]["model"] == "other_signals"
    assert first["params"]["num_leaves"] == 4 and second["params"]["learning_rate"] == 0.2
    assert [run.model.numerai_targets.target_column for run in result.models] == ["target", "target_raw_return_20"]

    # A re-run: both models reuse their own model and skip the upload.
    again = round_flow(mode="live")
    assert [run.upload.status for run in again.models] == ["skipped", "skipped"]
    assert [run.model.model_id for run in again.models] == [run.model.model_id for run in result.models]
    assert len(numerai.state.submissions) == 2

    # --force --model other_signals: that model only is uploaded again.
    forced = round_flow(mode="live", force=True, model_name="other_signals")
    assert [(run.name, run.upload.status) for run in forced.models] == [("other_signals", "uploaded")]
    assert [s["variables"]["modelId"] for s in numerai.state.submissions[2:]] == ["model-signals-2"]
    ledger = _ledger(live_env)
    assert len(ledger["signals/1200/other_signals"]["replaced"]) == 1 and "replaced" not in ledger[
        "signals/1200/my_signals"]


@pytest.mark.slow
def test_a_misconfigured_model_fails_alone_and_is_named(prefect_harness, live_env, numerai, monkeypatch):
    from numerflow.flows.round import ModelsFailed, round_flow

    monkeypatch.setenv("NUMERFLOW_MODELS", json.dumps([TWO[0], BAD]))
    with pytest.raises(ModelsFailed) as failed:
        round_flow(mode="live")
    message = str(failed.value)
    assert "1 of 2 models failed" in message and "other_signals:" in message and "no_such_objective" in message
    assert "my_signals uploaded" in message
    assert list(_ledger(live_env)) == ["signals/1200/my_signals"]
    assert [s["variables"]["modelId"] for s in numerai.state.submissions] == ["model-signals-1"]


# ------------------------------------------------------------------ the scheduled demo round: state and webhook


@pytest.mark.slow
def test_scheduled_round_names_the_failed_model_in_state_report_and_webhook(
        prefect_harness, receiver, tmp_path, monkeypatch):  # noqa: F811
    from numerflow.flows.scheduled import scheduled_round_flow

    monkeypatch.setenv("NUMERFLOW_ORCHESTRATION__NOTIFY_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("NUMERFLOW_TRAINING__NUM_BOOST_ROUND", "20")
    monkeypatch.setenv("NUMERFLOW_TRAINING__NUM_THREADS", "1")
    good = {"name": "good_model"}
    bad = {"name": "bad_model", "params": {"objective": "no_such_objective"}}
    params = {"mode": "demo", "data_dir": str(tmp_path / "data"), "tickers": 120, "years": 2.5,
              "overrides": {"models": [good, bad]}}
    state = scheduled_round_flow(**params, return_state=True)
    assert state.is_failed()
    assert "stage 'models' failed" in state.message and "bad_model:" in state.message
    assert "good_model dry_run" in state.message
    (message,) = receiver.messages
    assert message["stage"] == "models" and "bad_model" in message["cause"] and "no_such_objective" in message["cause"]
    submissions = tmp_path / "data" / "submissions" / "signals"
    (good_file,) = submissions.glob("demo-*/good_model/submission.csv")
    assert (good_file.parent / "upload-record.json").exists()
    assert not list(submissions.glob("demo-*/bad_model/*"))
    assert len(pd.read_csv(good_file)) >= 100

    # The next firing runs the failed model only (the good one is recorded); fixed, it succeeds.
    params["overrides"] = {"models": [good, {"name": "bad_model"}]}
    fixed = scheduled_round_flow(**params, return_state=True)
    assert fixed.is_completed(), fixed.message
    result = fixed.result()
    assert [run.name for run in result.models] == ["bad_model"]
    assert "models to run: bad_model" in result.guard.reason
    skipped = scheduled_round_flow(**params, return_state=True)
    assert skipped.name == "Skipped" and skipped.message.startswith("skipped: already submitted")
    assert len(receiver.messages) == 1


@pytest.mark.slow
def test_scheduled_round_where_every_model_fails_after_preflight_names_each_and_still_reports(
        prefect_harness, receiver, tmp_path, monkeypatch):  # noqa: F811
    """Every [[models]] entry passes preflight (LightGBM accepts their parameters) and fails in the
    train stage (Numerai's features asked of the demo market): the round fails naming each model,
    the webhook names each, and the round report is still published (it has no model to show)."""
    from test_live_round import _assert_artifact

    from numerflow.flows.scheduled import scheduled_round_flow

    monkeypatch.setenv("NUMERFLOW_ORCHESTRATION__NOTIFY_WEBHOOK_URL", receiver.url)
    models = [{"name": "first_model", "feature_set": "numerai"}, {"name": "second_model", "feature_set": "both"}]
    state = scheduled_round_flow(mode="demo", data_dir=str(tmp_path / "data"), tickers=120, years=2.5,
                                 overrides={"models": models}, return_state=True)
    assert state.is_failed()
    assert "stage 'models' failed" in state.message, state.message
    assert "2 of 2 models failed" in state.message
    assert "first_model:" in state.message and "second_model:" in state.message
    (message,) = receiver.messages
    assert message["stage"] == "models"
    assert "first_model" in message["cause"] and "second_model" in message["cause"]
    assert "invalid_config" in message["cause"]
    _assert_artifact("round-report", "first_model")
    _assert_artifact("round-report", "second_model")
    assert not list((tmp_path / "data" / "submissions").rglob("submission.csv"))


@pytest.mark.slow
def test_scheduled_retrain_trains_every_model_of_the_table(prefect_harness, tmp_path, monkeypatch):
    from numerflow.flows.scheduled import scheduled_train_flow

    monkeypatch.setenv("NUMERFLOW_TRAINING__NUM_BOOST_ROUND", "20")
    monkeypatch.setenv("NUMERFLOW_TRAINING__NUM_THREADS", "1")
    overrides = {"data_dir": str(tmp_path / "data"), "price_source": "demo", "demo": {"tickers": 120, "years": 2.5},
                 "models": [{"name": "a"}, {"name": "b", "params": {"num_leaves": 5}}]}
    chosen = scheduled_train_flow(overrides=overrides)
    assert set(chosen) == {"a", "b"} and all(c.trained for c in chosen.values())
    assert read_json(Path(chosen["b"].model_dir) / "meta.json")["lineage"]["model"] == "b"
    again = scheduled_train_flow(retrain=False, ingest_first=False, overrides=overrides)
    assert {n: c.model_id for n, c in again.items()} == {n: c.model_id for n, c in chosen.items()}


def test_a_model_entry_carries_its_own_feature_set_target_and_ensemble():
    from numerflow.tasks.core.config import ModelSettings, load_settings, settings_for_model

    base = load_settings()
    entry = ModelSettings(name="both_chili", feature_set="both", target="target_chili_60",
                          ensemble_targets=["target_chili_60", "target"], ensemble_weights=[2, 1])
    mine = settings_for_model(base, entry)
    assert (mine.training.feature_set, mine.numerai.target_column) == ("both", "target_chili_60")
    assert (mine.numerai.ensemble_targets, mine.numerai.ensemble_weights) == (["target_chili_60", "target"], [2, 1])
    assert mine.numerai.model_name == "both_chili"
    plain = settings_for_model(base, ModelSettings(name="plain"))  # unset fields keep the top-level ones
    assert (plain.training.feature_set, plain.numerai.ensemble_targets) == (base.training.feature_set, [])


def test_models_with_their_own_feature_groups_get_their_own_dataset_built_once_per_configuration(
        prefect_harness, tmp_path, monkeypatch):
    """[[models]] entries pick feature groups: "a" the price features only, "b" and "c" the same price + news
    groups. Two datasets are built (one per distinct configuration), and each model trains on its own."""
    from numerflow.flows.scheduled import scheduled_train_flow
    from numerflow.tasks.model.dataset import feature_columns_of

    monkeypatch.setenv("NUMERFLOW_TRAINING__NUM_BOOST_ROUND", "20")
    monkeypatch.setenv("NUMERFLOW_TRAINING__NUM_THREADS", "1")
    news = ["own", "news_sentiment"]
    overrides = {"data_dir": str(tmp_path / "data"), "price_source": "demo", "demo": {"tickers": 120, "years": 2.5},
                 "models": [{"name": "a"}, {"name": "b", "features": news}, {"name": "c", "features": news}]}
    chosen = scheduled_train_flow(overrides=overrides)
    features = {n: read_json(Path(c.model_dir) / "meta.json")["features"] for n, c in chosen.items()}
    assert "feature_news_sentiment_sentiment" in features["b"] and features["b"] == features["c"]
    assert not any("news" in f for f in features["a"]) and "feature_ret_60d" in features["a"]
    datasets = sorted(p for p in (tmp_path / "data" / "features").glob("*.parquet") if p.name.count(".") == 1)
    assert len(datasets) == 2, datasets  # one per distinct feature configuration
    assert {tuple(feature_columns_of(p)) for p in datasets} == {tuple(features["a"]), tuple(features["b"])}
    with pytest.raises(BadInputError, match="feature group"):
        load_settings(models=[{"name": "x", "features": ["Own"]}])


# ------------------------------------------------------------------ LightGBM parameters: each model judged once, as it runs


def test_a_top_level_parameter_every_entry_overrides_is_not_judged_on_its_own(tmp_path):
    fixed = [{"name": "a", "params": {"objective": "regression"}}, {"name": "b", "params": {"objective": "huber"}}]
    settings = load_settings(data_dir=str(tmp_path), training={"params": {"objective": "regresion"}}, models=fixed)
    models, failures = preflight(settings, round_models(settings), "live")
    assert [m.name for m in models] == ["a", "b"] and failures == []


def test_the_single_models_refused_parameters_are_the_rounds_error(tmp_path):
    settings = load_settings(data_dir=str(tmp_path), training={"params": {"objective": "regresion"}})
    with pytest.raises(BadInputError, match="regresion"):
        judge_models(round_models(settings), "live")


def test_when_every_entry_is_refused_the_round_stops_in_preflight(tmp_path):
    settings = load_settings(data_dir=str(tmp_path), models=[BAD, {**BAD, "name": "third"}])
    with pytest.raises(BadInputError, match="every model of the") as refused:
        preflight(settings, round_models(settings), "live")
    assert "other_signals:" in str(refused.value) and "third:" in str(refused.value)
