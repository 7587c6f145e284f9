"""Crypto's validation scores: CORR (the training's own) and MMC against a meta model, no ALPHA.

Numerai scores Crypto submissions on CORR and MMC ("correlation contribution of a submission, the
Crypto meta model of submissions staked at least 1 NMR, and the target", 20D2L) and pays
``stake × clip(payout_factor × MMC, ±0.05)``; there is no neutralizer, so no ALPHA. MMC here is
``tasks.classic.scoring.mmc_by_era`` per validation date (= numerai-tools
``scoring.correlation_contribution``), written into the model's meta.json and its report like
Signals' ALPHA.

The meta model: the demo's synthetic one (``CryptoDemoMarket.meta_model``). Numerai publishes no
Crypto meta model file for the validation dates, so a live round's MMC is not scored locally (said
in the log and the report, never guessed).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from numerflow.tasks.classic.scoring import mmc_by_era
from numerflow.tasks.core.config import Settings
from numerflow.tasks.core.store import read_json, read_parquet, write_json
from numerflow.tasks.model.eras import with_score
from numerflow.tasks.model.training import META_FILE, TrainResult
from numerflow.tasks.round.results import Mode

log = logging.getLogger(__name__)


def validation_mmc(predictions: pd.DataFrame, meta_model: np.ndarray) -> pd.Series:
    """MMC of each validation date: ``predictions`` has ``date``, ``prediction``, ``target``."""
    per_date = mmc_by_era(predictions["prediction"].to_numpy(), meta_model, predictions["target"].to_numpy(),
                          pd.to_datetime(predictions["date"]).to_numpy())
    per_date.index = pd.DatetimeIndex(per_date.index, name="date")
    return per_date


def score_mmc(settings: Settings, trained: TrainResult, mode: Mode) -> dict:
    """The validation metrics plus MMC per date and per weekly era (also written into the model's
    meta.json); unchanged, with the reason logged, when there is no meta model to score against."""
    if mode != "demo":
        log.info("MMC not scored: Numerai's Crypto datasets hold no meta model for the validation dates")
        return trained.metrics
    from numerflow.tasks.crypto.demo import CryptoDemoMarket
    from numerflow.tasks.prices.configured import demo_market

    market = demo_market(settings)
    assert isinstance(market, CryptoDemoMarket)  # a Crypto demo round's market
    predictions = read_parquet(Path(trained.validation_predictions), columns=["ticker", "date", "prediction", "target"])
    per_date = validation_mmc(predictions, market.meta_model(predictions["ticker"], predictions["date"]))
    meta_path = Path(trained.model_dir) / META_FILE
    meta = read_json(meta_path)
    span = int(meta["data_range"].get("target_span_trading_days") or 0)
    metrics = with_score(trained.metrics, "mmc", per_date, span)
    metrics["mmc_scored_on"] = "the demo's synthetic meta model"
    meta["validation_metrics"] = {**meta["validation_metrics"], "mmc": metrics["mmc"], "daily": metrics["daily"]}
    write_json(meta_path, meta)
    log.info("Validation MMC per weekly era: mean %.5f over %s eras", metrics["mmc"]["mean"] or float("nan"),
             metrics["mmc"]["n_eras"])
    return metrics
