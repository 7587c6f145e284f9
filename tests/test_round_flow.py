"""A real Prefect run of the whole demo round (Prefect test harness: a temporary server)."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from numerflow.tasks.core.config import load_settings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import read_json, read_parquet

SMALL = {"tickers": 160, "years": 3.0, "signal": 1.0, "seed": 5}


@pytest.fixture
def fast_training(monkeypatch):
    monkeypatch.setenv("NUMERFLOW_TRAINING__NUM_BOOST_ROUND", "40")
    monkeypatch.setenv("NUMERFLOW_TRAINING__NUM_THREADS", "1")


async def _artifact_keys(flow_run_id) -> set[str]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        artifacts = await client.read_artifacts(limit=200)
    return {a.key for a in artifacts if a.key}


async def _task_input_types(flow_run_id) -> set[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId

    async with get_client() as client:
        runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])))
        ids = [flow_run_id, *(r.id for r in runs)]
        tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=200)
    return {f"{getattr(i, 'input_type', type(i).__name__)}" for t in tasks for values in t.task_inputs.values()
            for i in values} | {f"{t.name}.{k}" for t in tasks for k, values in t.task_inputs.items()
                                if any(getattr(i, "input_type", "") == "flow_run" for i in values)}


@pytest.mark.slow
def test_whole_round_runs_as_a_prefect_flow_and_reuses_its_model(prefect_harness, fast_training, tmp_path):
    from numerflow.flows.round import round_flow

    state = round_flow(**SMALL, data_dir=str(tmp_path), return_state=True)
    assert state.is_completed(), state.message
    result = state.result()

    assert result.mode == "demo" and result.round_label.startswith("demo-")
    # price_source defaults to Yahoo (the live commands'): a demo round still reads the offline market.
    assert load_settings().price_source == "yahoo" and result.prices.source == "demo-seed5-n160-y3-s1"
    submission_path = result.submission.path
    submission = pd.read_csv(submission_path)
    universe = read_parquet(result.universe.path)
    assert list(submission.columns) == ["numerai_ticker", "signal"]
    assert len(submission) >= 100
    assert submission["numerai_ticker"].isin(universe["numerai_ticker"]).all()
    assert submission["signal"].between(0, 1, inclusive="neither").all()
    assert not submission["numerai_ticker"].duplicated().any()

    assert result.upload.status == "dry_run" and result.upload.message.startswith("DRY RUN")
    # Coverage counts live-universe tickers only: the demo also ingests delisted history.
    coverage = result.prices.coverage
    assert coverage["universe"] == result.universe.tickers == len(universe)
    assert coverage["covered"] <= coverage["universe"] and coverage["outside"] > 0
    assert result.prices.ok + result.prices.stale > coverage["universe"]
    record = read_json(result.upload.record)
    assert record["dry_run"] is True and record["rows"] == len(submission)
    assert record["round"] == result.round_label and record["sha256"] == result.submission.sha256

    model = result.model
    assert model.trained is True
    meta = read_json(f"{model.model_dir}/meta.json")
    assert meta["data_range"]["train_last_target_end"] < meta["data_range"]["validation_start"]
    markdown = open(model.report.markdown).read()
    assert "feature-neutral CORR" in markdown and "| sharpe |" in markdown
    assert open(model.report.chart, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert np.isfinite(model.validation["mean"])

    keys = asyncio.run(_artifact_keys(None))
    assert {"validation-report", "submission-checks"} <= keys
    # Task inputs are plain (task results or values), never a subflow's result: Prefect's v1 UI
    # cannot render a "flow_run" input and shows no task runs at all.
    inputs = asyncio.run(_task_input_types(state.state_details.flow_run_id))
    assert inputs and "flow_run" not in inputs, inputs
    assert model.report.artifact_id  # the round report links the validation report's artifact

    # A second round on the same data reuses the fresh model instead of retraining.
    again = round_flow(**SMALL, data_dir=str(tmp_path))
    assert again.model.trained is False
    assert again.model.model_id == model.model_id
    assert "reusing model" in again.model.decision


@pytest.mark.slow
def test_too_few_tickers_stops_before_any_data_or_submission_file(prefect_harness, fast_training, tmp_path):
    from numerflow.flows.round import round_flow

    # A market smaller than a submission's minimum is refused at the universe stage, before any
    # price is generated (the submission check itself, not_enough_tickers, is in test_submission.py).
    with pytest.raises(BadInputError, match="invalid_option: --tickers 60 is below Numerai's minimum of 100"):
        round_flow(tickers=60, years=3.0, seed=5, data_dir=str(tmp_path))
    assert not (tmp_path / "prices").exists() and not (tmp_path / "submissions").exists()
