"""The offline Crypto round (`numerflow run --demo --tournament crypto`): the synthetic token market
(tasks/crypto/demo.py) on 7-day bars, CORR and MMC against its synthetic meta model; the planted
signal is found, pure noise scores within 3 SE of 0, and MMC equals numerai-tools."""

from __future__ import annotations

import datetime as dt
import json

import numerai_tools.scoring as nt
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from numerflow.tasks.core.config import TargetSettings, TrainingSettings
from numerflow.tasks.core.store import Store, read_parquet, write_parquet
from numerflow.tasks.crypto.demo import NUMERAI_FEATURES, NUMERAI_TARGET, CryptoDemoMarket
from numerflow.tasks.crypto.scoring import validation_mmc
from numerflow.tasks.model.dataset import build_dataset_frame
from numerflow.tasks.model.scoring import overlap_adjusted_sem
from numerflow.tasks.model.training import train_and_register

END = dt.date(2025, 6, 29)
FAST = TrainingSettings(num_boost_round=100, validation_fraction=0.3, num_threads=1, refit_on_all=False)


def _validation(tmp_path, *, signal: float, seed: int) -> tuple[CryptoDemoMarket, pd.DataFrame]:
    market = CryptoDemoMarket(tickers=250, years=3.0, signal=signal, seed=seed, end=END)
    dataset = build_dataset_frame(market.fetch(market.all_tickers()), TargetSettings(), calendar_days=True)
    path = write_parquet(tmp_path / f"dataset-{signal}.parquet", dataset)
    result = train_and_register(Store(tmp_path / f"store-{signal}"), path, FAST, run_id="t")
    return market, read_parquet(result.validation_predictions)


def _scores(market: CryptoDemoMarket, predictions: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    from numerflow.tasks.model.scoring import numerai_corr_by_date

    rows = predictions.dropna(subset=["target"])
    corr = numerai_corr_by_date(rows["prediction"], rows["target"], rows["date"]).dropna()
    mmc = validation_mmc(rows, market.meta_model(rows["ticker"], rows["date"])).dropna()
    return corr, mmc


@pytest.mark.slow
def test_the_planted_signal_is_found_and_noise_scores_zero(tmp_path):
    planted, noise = (_scores(*_validation(tmp_path, signal=s, seed=3)) for s in (0.5, 0.0))
    for name, series in zip(("CORR", "MMC"), planted, strict=True):
        sem = overlap_adjusted_sem(series, overlap=22)
        assert series.mean() > 3 * sem, (name, series.mean(), sem)
    for name, series in zip(("CORR", "MMC"), noise, strict=True):
        sem = overlap_adjusted_sem(series, overlap=22)
        assert len(series) > 200 and abs(series.mean()) < 3 * sem, (name, series.mean(), sem)


def test_mmc_equals_numerai_tools_correlation_contribution(tmp_path):
    market = CryptoDemoMarket(tickers=120, years=1.0, signal=1.0, seed=9, end=END)
    dates = market.dates[-40:]
    frame = pd.DataFrame([(t, d) for d in dates for t in market.all_tickers()], columns=["ticker", "date"])
    rng = np.random.default_rng(4)
    frame["prediction"] = rng.normal(size=len(frame))
    frame.loc[frame.index[::13], "prediction"] = 0.0  # ties
    frame["target"] = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], len(frame))
    frame.loc[frame.index[::31], "target"] = np.nan
    meta = market.meta_model(frame["ticker"], frame["date"])
    ours = validation_mmc(frame.dropna(subset=["target"]), meta[frame["target"].notna().to_numpy()])
    frame["meta"] = meta
    for day, rows in frame.dropna(subset=["target"]).groupby("date"):
        expected = nt.correlation_contribution(rows[["prediction"]], rows["meta"], rows["target"]).iloc[0]
        assert ours.loc[day] == pytest.approx(expected, abs=1e-9)
    assert len(ours) == 40


def test_numerai_shaped_files_have_v2_layout(tmp_path):
    market = CryptoDemoMarket(tickers=120, years=1.0, signal=0.5, seed=9, end=END)
    train, live = market.numerai_files(tmp_path, END)
    assert pq.read_schema(train).pandas_metadata["index_columns"] == ["symbol"]
    rows = pd.read_parquet(train)
    assert list(rows.columns) == ["date", *NUMERAI_FEATURES, NUMERAI_TARGET]
    assert pd.to_datetime(rows["date"]).dt.day_of_week.max() == 4  # weekday data dates
    # No target whose 22 calendar days pass the live date.
    assert pd.to_datetime(rows["date"]).max() <= pd.Timestamp(END) - pd.Timedelta(days=22)
    assert set(rows[NUMERAI_TARGET].unique()) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    live_rows = pd.read_parquet(live)
    assert (live_rows["date"] == END.isoformat()).all() and set(live_rows.index) == set(market.universe()["symbol"])


@pytest.mark.slow
def test_numerflow_run_demo_crypto_submits_symbol_signal_with_corr_and_mmc(prefect_harness, tmp_path, capsys,
                                                                           monkeypatch):
    """The whole offline round, with the ``both`` feature set: the demo's v2.0-shaped train.parquet (its
    feature_* and target_binned_return_20) next to our price features, its live.parquet for the live rows;
    CORR and MMC in the summary and the report, no ALPHA, a ``symbol,signal`` file. Neutralised at
    proportion 1 against our features: validation (so its MMC) and live predictions alike."""
    from numerflow.flows.cli import main

    monkeypatch.setenv("NUMERFLOW_TRAINING__FEATURE_SET", "both")
    monkeypatch.setenv("NUMERFLOW_NEUTRALIZE__PROPORTION", "1")
    assert main(["run", "--demo", "--tournament", "crypto", "--json", "--tickers", "150", "--years", "2",
                 "--data-dir", str(tmp_path / "data")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["tournament"] == "crypto" and summary["alpha"] is None
    assert summary["mmc"]["n_eras"] > 10 and summary["validation"]["n_eras"] == summary["mmc"]["n_eras"]
    submission = pd.read_csv(summary["submission"]["path"])
    assert list(submission.columns) == ["symbol", "signal"] and len(submission) >= 100
    assert {"BTC", "ETH"} <= set(submission["symbol"])
    assert submission["signal"].between(0, 1, inclusive="neither").all()
    report = open(summary["report"]).read()
    assert "MMC" in report and "ALPHA" not in report and "clip(payout_factor × MMC, ±0.05)" in report
    meta = json.loads((tmp_path / "data" / "models" / summary["model"]["id"] / "meta.json").read_text())
    assert set(NUMERAI_FEATURES) <= set(meta["features"]) and "feature_ret_20d" in meta["features"]
    assert "demo-numerai-target_binned_return_20-both" in meta["dataset"]
    assert meta["neutralization"]["proportion"] == 1 and "-neutralized" in meta["validation_predictions"]
    assert summary["neutralization"]["before"]["alpha"] is None


def test_the_meta_model_refuses_pairs_outside_the_market():
    from numerflow.tasks.core.errors import BadInputError

    market = CryptoDemoMarket(tickers=120, years=0.5, signal=0.5, seed=9, end=END)
    with pytest.raises(BadInputError, match="unknown_tickers: 1 .* not in the crypto demo market, e.g. \\['ZZZZ'\\]"):
        market.meta_model(["BTC", "ZZZZ"], [END, END])
    ranks = market.meta_model(["BTC", "ETH"], [END, END])
    assert sorted(ranks.tolist()) == [0.25, 0.75]  # tie-kept ranks within the date
