"""What differs between Numerai's tournaments, in one place: a ``Tournament`` says where its
universe comes from (Numerai's universe resolved to price symbols, or Classic's live ids), whether
prices are ingested, how a model's training data is built and scored, and what its submission file
looks like. The round engine (flows/round.py) runs the same chain for each; demo or live is the
orthogonal ``RoundKind``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from numerflow.tasks.core.config import Settings, load_settings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import remove_stale_temp_files
from numerflow.tasks.model.predict import LivePredictions
from numerflow.tasks.round import classic, signals
from numerflow.tasks.round.models import RoundModel
from numerflow.tasks.round.results import Mode, ModelFailure, RoundInputs, UniverseRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tournament:
    """One Numerai tournament's stages (plain functions of ``tasks/round/signals.py`` or ``classic.py``)."""

    name: str
    #: Signals, Crypto: universe → resolution → price ingest → our features; Classic: Numerai's files and live ids.
    ingests_prices: bool
    #: Whether the submission is checked for churn/turnover against the model's recent ones (Signals' rule).
    checks_churn: bool
    #: The submission file's columns.
    submission_columns: tuple[str, str]
    check_model: Callable[[RoundModel, Mode], None]
    report: Callable[[Settings, str, dict, str], dict[str, Any]]
    predict: Callable[[Settings, RoundInputs, str, str], LivePredictions]
    checked_submission: Callable[[Settings, str, UniverseRef], tuple[pd.DataFrame, dict[str, Any]]]


SIGNALS = Tournament("signals", True, True, ("numerai_ticker", "signal"), signals.check_model, signals.report,
                     signals.predict, signals.checked_submission)
CRYPTO = Tournament("crypto", True, True, ("symbol", "signal"), signals.check_model, signals.report,
                    signals.predict, signals.checked_submission)
CLASSIC = Tournament("classic", False, False, ("id", "prediction"), classic.check_model, classic.report,
                     classic.predict, classic.checked_submission)
TOURNAMENTS = {t.name: t for t in (SIGNALS, CRYPTO, CLASSIC)}


def tournament_of(settings: Settings) -> Tournament:
    return TOURNAMENTS[settings.tournament]


def judge_models(models: list[RoundModel], mode: Mode) -> tuple[list[RoundModel], list[ModelFailure]]:
    """Before any data moves, each model's own settings judged once by its tournament (LightGBM's view
    of its parameters; its targets and ensemble weights, in every mode; Signals' feature sources, Classic's
    targets). The single configured model's refusal is
    the round's error; a table entry's fails that entry alone (so a top-level parameter that every
    entry overrides is never judged on its own). The models that pass, and each other one's failure."""
    passed: list[RoundModel] = []
    failures: list[ModelFailure] = []
    for model in models:
        try:
            tournament_of(model.settings).check_model(model, mode)
        except BadInputError as exc:
            if not model.in_table:
                raise
            failures.append(ModelFailure.of(model.label, "preflight", exc))
        else:
            passed.append(model)
    return passed, failures


def preflight(settings: Settings, models: list[RoundModel], mode: Mode) -> tuple[list[RoundModel], list[ModelFailure]]:
    """What can be judged before any data moves (``judge_models``: a typo must not cost an ingest
    or a download), and the temp files that killed runs left behind cleared. The models that can
    run, and why each other one cannot; every entry refused stops the round here."""
    passed, failures = judge_models(models, mode)
    if not passed:  # every entry refused: nothing would use the ingest
        raise BadInputError("every model of the [[models]] table is refused: " + "; ".join(
            f"{f.name}: {f.message}" for f in failures) + "; fix them in numerflow.toml", tag="invalid_config")
    removed = remove_stale_temp_files(settings.data_dir)
    if removed:
        log.info("removed %d temp files left by interrupted runs", len(removed))
    return passed, failures


def round_settings(overrides: dict[str, Any]) -> Settings:
    """The settings a round runs with, from its overrides: Classic's adjusted by ``classic_settings``."""
    settings = load_settings(**overrides)
    return classic.classic_settings(settings) if settings.tournament == "classic" else settings
