"""Live submission: turn predictions into Numerai's file, check it with Numerai's rules.

Every check runs before anything is written: a submission that would be refused
stops here with a tagged BadInputError and leaves no file behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.ranking import rank_by_group
from numerflow.tasks.core.store import write_json, write_text
from numerflow.tasks.numerai.client import tournament_spec


def to_signal(predictions: pd.Series) -> np.ndarray:
    """Tie-kept rank into (0, 1) exclusive: (rank - 0.5) / n, as Numerai ranks."""
    values = predictions.to_numpy(dtype="float64", na_value=np.nan)
    return rank_by_group(values, np.zeros(len(values), dtype=np.int64))


def build_submission(predictions: pd.DataFrame, tournament: str = "signals") -> pd.DataFrame:
    """``predictions`` (ticker, prediction) → the submission frame (id column, signal).

    NaN or infinite predictions are refused, not silently dropped or filled.
    """
    values = predictions["prediction"].to_numpy(dtype="float64", na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        sample = predictions.loc[bad, "ticker"].astype(str).head(5).tolist()
        raise BadInputError(
            f"{int(bad.sum())} predictions are NaN or infinite (e.g. {sample}); "
            "the model or its features produced invalid values: check the live features for those tickers",
            tag="invalid_predictions",
        )
    spec = tournament_spec(tournament)
    return pd.DataFrame({spec.ticker_column: predictions["ticker"].astype(str).to_numpy(),
                         spec.signal_column: to_signal(predictions["prediction"])})


def validate_submission(
    submission: pd.DataFrame,
    universe_ids: pd.Series,
    *,
    tournament: str = "signals",
    min_tickers: int = 100,
) -> dict:
    """Numerai's rules, checked by us (explicit raises, so ``python -O`` cannot strip them)
    and then by numerai-tools' own validator on a copy. Returns a summary dict."""
    id_column = tournament_spec(tournament).ticker_column
    signal = check_submission_format(submission, tournament)
    ids = submission[id_column]
    live = set(universe_ids.astype(str))
    if tournament == "classic":
        check_classic_ids(ids, pd.Index(universe_ids.astype(str)))
    in_universe = int(ids.astype(str).isin(live).sum())
    if in_universe < min_tickers:
        raise BadInputError(
            f"only {in_universe} of {len(ids)} submitted tickers are in the live universe "
            f"({len(live)} tickers); Numerai needs at least {min_tickers}. "
            "Check the price ingest ledger for tickers without recent bars",
            tag="not_enough_tickers",
        )
    _numerai_tools_check(submission, universe_ids, tournament, id_column)
    return {
        "rows": int(len(submission)),
        "in_universe": in_universe,
        "not_in_universe": int(len(submission) - in_universe),
        "universe_size": len(live),
        "signal_min": float(signal.min()),
        "signal_max": float(signal.max()),
    }


def check_classic_ids(ids: pd.Series, live: pd.Index) -> None:
    """A Classic submission holds every live id of live.parquet once, and nothing else: how many are
    missing or extra, with a few of each."""
    submitted = pd.Index(ids.astype(str))
    missing, extra = live.difference(submitted), submitted.difference(live)
    if len(missing) or len(extra):
        parts = ([f"{len(missing)} of the {len(live)} live ids are missing (e.g. {missing[:3].tolist()})"]
                 if len(missing) else []) + ([f"{len(extra)} ids are not live (e.g. {extra[:3].tolist()})"]
                                             if len(extra) else [])
        raise BadInputError(f"a Classic submission holds a prediction for every live id of this round's "
                            f"live.parquet, and only those: {'; '.join(parts)}; predict this round's live.parquet",
                            tag="invalid_submission_ids")


def check_submission_format(submission: pd.DataFrame, tournament: str = "signals") -> np.ndarray:
    """The rules that need no universe: the two columns, ids present and unique, signals numbers
    strictly inside (0, 1) that vary. Returns the signals."""
    spec = tournament_spec(tournament)
    id_column, value_column = spec.ticker_column, spec.signal_column
    if list(submission.columns) != [id_column, value_column]:
        raise BadInputError(
            f"submission columns are {list(submission.columns)}, expected ['{id_column}', '{value_column}']",
            tag="invalid_submission_headers",
        )
    ids = submission[id_column]
    if ids.isna().any():
        raise BadInputError(f"submission has empty {'ids' if tournament == 'classic' else 'ticker ids'}",
                            tag="invalid_submission_ids")
    noun = "ids" if tournament == "classic" else "tickers"
    duplicates = ids[ids.duplicated()].astype(str).unique().tolist()
    if duplicates:
        raise BadInputError(
            f"submission has duplicate {noun} {duplicates[:5]}; each {noun[:-1]} must appear once",
            tag="invalid_submission_ids",
        )
    try:
        signal = submission[value_column].to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError):
        values = submission[value_column]
        bad = values[pd.to_numeric(values, errors="coerce").isna() & values.notna()].astype(str).unique().tolist()
        raise BadInputError(f"the {value_column} column holds values that are not numbers, e.g. {bad[:3]}; "
                            f"every {value_column} must be a number strictly inside (0, 1)",
                            tag="invalid_submission_values") from None
    what = "predictions" if tournament == "classic" else "signals"
    if not np.isfinite(signal).all():
        raise BadInputError(f"submission has NaN or infinite {what}", tag="invalid_submission_values")
    ends = (signal == 0) | (signal == 1)
    if tournament == "classic" and ends.any() and ((signal >= 0) & (signal <= 1)).all():
        raise BadInputError(
            f"Classic predictions must be strictly inside (0, 1): {int(ends.sum())} of {len(signal)} are exactly 0 or 1 "
            "(numerai-tools' checker lets the ends through; numerflow does not, as Numerai ranks predictions and an "
            "end value is usually a clipped or 0/1 label): submit ranks, e.g. (rank - 0.5) / n",
            tag="invalid_submission_values")
    if not ((signal > 0) & (signal < 1)).all():
        raise BadInputError(
            f"{what} must be strictly inside (0, 1); got min {float(signal.min())}, max {float(signal.max())}",
            tag="invalid_submission_values",
        )
    if len(signal) > 1 and np.isclose(signal.std(), 0):
        raise BadInputError(f"every {what[:-1]} is the same value; Numerai requires variation",
                            tag="invalid_submission_values")
    return signal


def _numerai_tools_check(submission: pd.DataFrame, universe_ids: pd.Series, tournament: str, id_column: str) -> None:
    from numerai_tools import submissions as nt

    ids = universe_ids.astype(str).reset_index(drop=True)
    try:
        # numerai-tools mutates its input and reports with assert: give it a copy, translate.
        if tournament == "classic":  # every live id, exactly once (its minimum is the whole live set)
            nt.validate_submission_numerai(ids, submission.copy())
        else:
            validator = nt.validate_submission_signals if tournament == "signals" else nt.validate_submission_crypto
            validator(pd.DataFrame({id_column: ids.to_numpy()}), submission.copy())
    except AssertionError as exc:
        raise BadInputError(f"numerai-tools rejected the submission: {exc}", tag="invalid_submission") from None


def write_submission(submission: pd.DataFrame, path: Path) -> tuple[Path, str]:
    """Atomically write the CSV; return (path, sha256 of its bytes)."""
    payload = submission.to_csv(index=False)
    write_text(path, payload)
    return Path(path), hashlib.sha256(payload.encode("utf-8")).hexdigest()


def write_dry_run_record(
    path: Path,
    *,
    reason: str,
    tournament: str,
    round_label: str | None,
    model_name: str | None,
    file: str,
    sha256: str,
    rows: int | None,
    validated_against_universe: bool,
    would_call: str,
    api_url: str | None = None,
) -> Path:
    """The record of a dry run (the demo market, or a live run without keys): exactly what would
    have been sent, where, and why it was not. One format for both; written atomically."""
    record = {
        "dry_run": True,
        "reason": reason,
        "would_call": would_call,
        "tournament": tournament,
        "round": round_label,
        "model_name": model_name,
        "file": file,
        "sha256": sha256,
        "rows": rows,
        "validated_against_universe": validated_against_universe,
        "api_url": api_url,
        "recorded_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    return write_json(path, record)
