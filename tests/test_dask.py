"""Scale-out: the ingest batches on a 2-worker local Dask cluster give the same store as threads."""

from __future__ import annotations

from pathlib import Path

import pytest

from numerflow.tasks.core.config import load_settings
from numerflow.tasks.core.store import read_parquet

pytestmark = pytest.mark.slow


def ingest_with(runner_name: str, data_dir) -> tuple[dict, object]:
    from numerflow.flows.prices import prices_flow
    from numerflow.flows.scheduled import task_runner_for

    overrides = {"data_dir": str(data_dir), "price_source": "demo", "demo": {"tickers": 120, "years": 1.5, "seed": 7},
                 "yahoo": {"batch_size": 30},
                 "orchestration": {"task_runner": runner_name, "dask_workers": 2, "dask_threads_per_worker": 1}}
    runner = task_runner_for(load_settings(**overrides))
    summary = prices_flow.with_options(task_runner=runner)(overrides=overrides)
    prices = read_parquet(Path(summary["prices_dir"]))
    return summary, prices.sort_values(["ticker", "date"]).reset_index(drop=True)


def test_runner_choice():
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from numerflow.flows.scheduled import task_runner_for

    assert isinstance(task_runner_for(load_settings()), ThreadPoolTaskRunner)
    remote = task_runner_for(load_settings(orchestration={"task_runner": "dask", "dask_address": "tcp://10.0.0.5:8786"}))
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://10.0.0.5:8786"
    local = task_runner_for(load_settings(orchestration={"task_runner": "dask", "dask_workers": 3}))
    assert local.address is None and local.cluster_kwargs["n_workers"] == 3


def test_offline_sources_run_one_batch_per_core_and_yahoo_keeps_prefects_default(monkeypatch):
    """Demo and file batches are CPU work: one thread per core (unlimited, every batch of a 5,000-ticker
    demo ran at once and held its bars: 11 GB); Yahoo's wait on the network; a configured count wins."""
    import sys

    from numerflow.flows.scheduled import task_runner_for

    monkeypatch.setattr("os.cpu_count", lambda: 3)
    assert task_runner_for(load_settings(price_source="demo"))._max_workers == 3
    assert task_runner_for(load_settings(price_source="files", files={"path": "/nowhere"}))._max_workers == 3
    assert task_runner_for(load_settings(price_source="yahoo"))._max_workers == sys.maxsize  # Prefect's default
    assert task_runner_for(load_settings(price_source="demo", orchestration={"thread_workers": 5}))._max_workers == 5


def test_dask_ingest_equals_threads(prefect_harness, tmp_path):
    threads_summary, threads_prices = ingest_with("threads", tmp_path / "threads")
    dask_summary, dask_prices = ingest_with("dask", tmp_path / "dask")
    assert threads_summary["tickers"] == dask_summary["tickers"] == 120
    counts = ("ok", "stale", "failed", "delisted", "rows", "excluded_rows")
    assert {k: threads_summary.get(k) for k in counts} == {k: dask_summary.get(k) for k in counts}
    assert len(threads_prices) > 0
    import pandas as pd

    pd.testing.assert_frame_equal(threads_prices, dask_prices)


def round_with(runner_name: str, data_dir) -> object:
    from numerflow.flows.round import round_flow

    models = [{"name": "m_one"}, {"name": "m_two", "params": {"num_leaves": 7}},
              {"name": "m_three", "params": {"learning_rate": 0.05, "max_depth": 3}}]
    overrides = {"training": {"num_boost_round": 25, "num_threads": 1}, "models": models,
                 "orchestration": {"task_runner": runner_name, "dask_workers": 2, "dask_threads_per_worker": 1}}
    return round_flow(tickers=120, years=2.5, seed=4, data_dir=str(data_dir), overrides=overrides)


def test_three_models_train_on_a_two_worker_dask_cluster_as_on_threads(prefect_harness, tmp_path):
    import pandas as pd
    from prefect import get_client

    threads = round_with("threads", tmp_path / "threads")
    dask = round_with("dask", tmp_path / "dask")
    assert [r.name for r in dask.models] == ["m_one", "m_two", "m_three"]
    assert all(r.model.trained for r in threads.models + dask.models)
    for mine, theirs in zip(threads.models, dask.models, strict=True):
        assert mine.submission.sha256 == theirs.submission.sha256  # the same submissions, byte for byte
        assert mine.model.validation["mean"] == theirs.model.validation["mean"]
        pd.testing.assert_frame_equal(pd.read_parquet(mine.live.path), pd.read_parquet(theirs.live.path))
    # Each model trained as its own task of one train-models subflow per round.
    with get_client(sync_client=True) as client:
        from prefect.client.schemas.sorting import FlowRunSort

        recent = client.read_flow_runs(limit=200, sort=FlowRunSort.START_TIME_DESC)
        runs = [r for r in recent if r.parameters.get("jobs")
                and r.parameters["jobs"][0]["dataset_path"].startswith(str(tmp_path))]  # this test's rounds
    assert len(runs) == 2 and all(len(r.parameters["jobs"]) == 3 for r in runs)
