"""Churn and turnover of a submission against the model's own recent submissions, and the gate.

Numerai does not pay a Signals submission whose churn against any of the model's submissions of
the last week is 15 % or more (since 2024-09), and checks a turnover of 20–25 % (sources
disagree: the thresholds are settings, and the check reports the values rather than claiming
Numerai's verdict). Definitions (numerai-tools 0.7.2 ``signals``):

- **churn** = 1 − Spearman correlation of the two signals on their common tickers
  (``signals.churn``);
- **turnover** = half the sum of absolute differences of the two portfolios' weights on their
  common tickers (``signals.turnover``). A portfolio's weights are its signal tie-kept ranked,
  gaussianised, raised to the power 1.5, centred and scaled to absolute sum 1. Numerai also
  neutralises them against its neutralizers, which exist for validation dates but not for the
  live universe, so the local value is neutral to the mean only and may differ from Numerai's.

Like numerai-tools, a pair is compared only when at least 80 % of each submission's tickers are
common to both; with no comparable recent submission there is nothing to gate (reported).

History: every submission that leaves (uploaded, or a demo dry run) is kept in
``submissions/<tournament>/history/<model>/<round>.parquet`` (``numerai_ticker``/``symbol``,
``signal``) with its time in the file's metadata.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.special import ndtri

from numerflow.tasks.core.config import SubmissionSettings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.ranking import rank_by_group
from numerflow.tasks.core.store import Store, safe_id, write_parquet

#: numerai-tools' DEFAULT_MAX_FILTERED_INDEX_RATIO: at most 20 % of either side may be unmatched.
MAX_UNMATCHED_SHARE = 0.2
_TIME_KEY = b"numerflow_submitted_at"


def _signal_series(frame: pd.DataFrame) -> pd.Series:
    """(id column, signal) frame → signal (the second column: ``signal``, Classic's ``prediction``)
    indexed by id (the first column)."""
    return pd.Series(frame.iloc[:, 1].to_numpy(dtype="float64"), index=frame.iloc[:, 0].astype(str).to_numpy())


def _common(current: pd.Series, previous: pd.Series) -> tuple[pd.Series, pd.Series] | None:
    current, previous = current.dropna(), previous.dropna()
    ids = current.index.intersection(previous.index)
    if not len(current) or not len(previous) or len(ids) / len(current) < 1 - MAX_UNMATCHED_SHARE \
            or len(ids) / len(previous) < 1 - MAX_UNMATCHED_SHARE:
        return None
    return current.loc[ids], previous.loc[ids]


def _ranks(values: np.ndarray) -> np.ndarray:
    return rank_by_group(values, np.zeros(len(values), dtype=np.int64))


def churn(current: pd.Series, previous: pd.Series) -> float | None:
    """1 − Spearman correlation on the common tickers; None when too few are common."""
    pair = _common(current, previous)
    if pair is None:
        return None
    a, b = (_ranks(s.to_numpy()) for s in pair)
    if a.std() == 0 or b.std() == 0:
        raise BadInputError("a submission's signals are all equal; churn is undefined", tag="invalid_submission_values")
    return float(1.0 - np.corrcoef(a, b)[0, 1])


def portfolio_weights(signal: pd.Series) -> pd.Series:
    """Tie-kept rank → gaussianise → power 1.5 → centre → absolute sum 1, over the submission."""
    values = signal.dropna()
    gaussian = ndtri(_ranks(values.to_numpy()))
    powered = np.sign(gaussian) * np.abs(gaussian) ** 1.5
    centred = powered - powered.mean()
    return pd.Series(centred / np.abs(centred).sum(), index=values.index)


def turnover(current: pd.Series, previous: pd.Series) -> float | None:
    """Half the absolute weight change on the common tickers; None when too few are common."""
    pair = _common(portfolio_weights(current), portfolio_weights(previous))
    if pair is None:
        return None
    return float(np.abs(pair[0].to_numpy() - pair[1].to_numpy()).sum() / 2)


def _neutral_residual(signal: pd.Series, neutralizers: pd.DataFrame) -> pd.Series | None:
    """numerai-tools' per-era step: keep the ids both have (None when under 80 % of either), tie-kept
    rank, gaussianise, then subtract the least-squares fit on the neutralizers plus a constant."""
    signal = signal.dropna()
    neutralizers = neutralizers.dropna()
    ids = signal.index.intersection(neutralizers.index).sort_values()
    if not len(signal) or not len(neutralizers) or len(ids) / len(signal) < 1 - MAX_UNMATCHED_SHARE \
            or len(ids) / len(neutralizers) < 1 - MAX_UNMATCHED_SHARE:
        return None
    gaussian = ndtri(_ranks(signal.loc[ids].to_numpy(dtype="float64")))
    matrix = np.column_stack([neutralizers.loc[ids].to_numpy(dtype="float64"), np.ones(len(ids))])
    fit = np.linalg.lstsq(matrix, gaussian, rcond=1e-6)[0]
    return pd.Series(gaussian - matrix @ fit, index=ids)


def neutral_churn(current: pd.Series, previous: pd.Series, neutralizers_current: pd.DataFrame,
                  neutralizers_previous: pd.DataFrame) -> float | None:
    """Churn of the two signals after each is neutralised against its own era's neutralizers
    (numerai-tools 0.7.2 ``signals.neutral_churn``): what is left of a signal once the factors are
    taken out is what Numerai pays for, so a change there is the churn that costs. None when too
    few ids are common (to the neutralizers, or to the two residuals)."""
    residuals = [_neutral_residual(s, n) for s, n in ((current, neutralizers_current),
                                                      (previous, neutralizers_previous))]
    if residuals[0] is None or residuals[1] is None:
        return None
    if residuals[0].std() == 0 or residuals[1].std() == 0:
        raise BadInputError("a signal is fully explained by the neutralizers (nothing left after neutralising); "
                            "neutral churn is undefined", tag="invalid_submission_values")
    return churn(residuals[0], residuals[1])


def neutral_churn_penalty(value: float, threshold: float = 0.1, scaling_factor: float = 10.0) -> float:
    """The share of a positive payout kept at neutral churn ``value``: 1 up to ``threshold``, then
    ``2 / (1 + exp(scaling_factor × (value − threshold)))`` (numerai-tools 0.7.2
    ``signals.neutral_churn_penalty``, whose checks are asserts that ``python -O`` strips: they
    are real checks here). A negative payout is not reduced further."""
    for name, number, low, high in (("neutral churn", value, 0.0, 2.0), ("threshold", threshold, 0.0, 2.0)):
        if not (math.isfinite(number) and low <= number <= high):
            raise BadInputError(f"{name} must be a finite number in [{low:g}, {high:g}], got {number!r}",
                                tag="invalid_neutral_churn")
    if not (math.isfinite(scaling_factor) and scaling_factor > 0):
        raise BadInputError(f"the scaling factor must be finite and positive, got {scaling_factor!r}",
                            tag="invalid_neutral_churn")
    if value <= threshold:
        return 1.0
    decay = math.exp(-scaling_factor * (value - threshold))  # this form cannot overflow
    return 2 * decay / (1 + decay)


# --------------------------------------------------------------------------------------------
# History of the model's own submissions
# --------------------------------------------------------------------------------------------


def history_dir(store: Store, tournament: str, model_name: str | None) -> Path:
    return store.root / "submissions" / tournament / "history" / safe_id(model_name or "default", "model name")


def record_submission(store: Store, tournament: str, model_name: str | None, round_label: str,
                      submission: pd.DataFrame, now: dt.datetime | None = None) -> Path:
    """Keep a submission that left (atomic write), for the next rounds' churn."""
    now = now or dt.datetime.now(dt.UTC)
    table = pa.Table.from_pandas(submission, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _TIME_KEY: now.isoformat().encode()})
    return write_parquet(history_dir(store, tournament, model_name) / f"{safe_id(round_label, 'round')}.parquet",
                         table)


@dataclass(frozen=True)
class PastSubmission:
    round_label: str
    submitted_at: dt.datetime
    signal: pd.Series


def recent_submissions(store: Store, tournament: str, model_name: str | None, *, lookback_days: float, limit: int,
                       exclude_round: str | None = None, now: dt.datetime | None = None) -> list[PastSubmission]:
    """The model's submissions of the last ``lookback_days``, newest first, at most ``limit``."""
    now = now or dt.datetime.now(dt.UTC)
    folder = history_dir(store, tournament, model_name)
    found = []
    for path in folder.glob("*.parquet") if folder.exists() else []:
        if path.name.startswith(".") or path.stem == exclude_round:
            continue
        metadata = pq.read_schema(path).metadata or {}
        stamp = dt.datetime.fromisoformat(metadata.get(_TIME_KEY, b"1970-01-01T00:00:00+00:00").decode())
        if now - stamp <= dt.timedelta(days=lookback_days):
            found.append((stamp, path))
    found.sort(reverse=True)
    return [PastSubmission(path.stem, stamp, _signal_series(pd.read_parquet(path))) for stamp, path in found[:limit]]


# --------------------------------------------------------------------------------------------
# The check and the gate
# --------------------------------------------------------------------------------------------


def churn_report(submission: pd.DataFrame, previous: list[PastSubmission], settings: SubmissionSettings) -> dict:
    """Max churn and turnover against ``previous``, per comparison, thresholds and verdict."""
    current = _signal_series(submission)
    pairs = [(p, churn(current, p.signal), turnover(current, p.signal)) for p in previous]
    comparisons = [{"round": p.round_label, "submitted_at": p.submitted_at.isoformat(), "churn": c, "turnover": t}
                   for p, c, t in pairs]
    churns = [c for _, c, _ in pairs if c is not None]
    turnovers = [t for _, _, t in pairs if t is not None]
    max_churn = max(churns) if churns else None
    max_turnover = max(turnovers) if turnovers else None
    problems = []
    if max_churn is not None and max_churn >= settings.max_churn:
        problems.append(f"churn {max_churn:.3f} >= threshold {settings.max_churn:.3f}")
    if max_turnover is not None and max_turnover >= settings.max_turnover:
        problems.append(f"turnover {max_turnover:.3f} >= threshold {settings.max_turnover:.3f}")
    report: dict[str, Any] = {
        "max_churn": max_churn,
        "max_turnover": max_turnover,
        "churn_threshold": settings.max_churn,
        "turnover_threshold": settings.max_turnover,
        "gate": settings.churn_gate,
        "compared_with": comparisons,
    }
    report["problems"] = problems
    if not comparisons:
        report["note"] = "no submission of this model in the lookback window: nothing to compare"
    elif not churns:
        report["note"] = "no recent submission shares 80 % of its tickers with this one: not compared"
    return report


def churn_message(report: dict) -> str:
    """One line for logs and outcomes."""
    def fmt(value: float | None) -> str:
        return "—" if value is None or not math.isfinite(value) else f"{value:.3f}"

    line = (f"churn {fmt(report['max_churn'])} (threshold {report['churn_threshold']:.3f}), turnover "
            f"{fmt(report['max_turnover'])} (threshold {report['turnover_threshold']:.3f}) against "
            f"{len(report['compared_with'])} recent submissions")
    return line + (f"; {report['note']}" if report.get("note") else "")


def gate(report: dict) -> str | None:
    """``refuse``: raise (tag ``churn_gate``) when a threshold is crossed; ``warn``: return the
    warning to log and show (None when within the thresholds)."""
    if not report["problems"]:
        return None
    detail = "; ".join(report["problems"])
    if report["gate"] == "refuse":
        raise BadInputError(
            f"not uploaded: {detail} against the model's recent submissions (submission.churn_gate = refuse). "
            "Numerai may not pay a submission above these; lower the churn (e.g. blend with the last submission) "
            "or set submission.churn_gate = \"warn\" to upload anyway", tag="churn_gate")
    return f"churn gate warning: {detail} (uploaded anyway: submission.churn_gate = warn)"


def check_against_history(store: Store, settings: SubmissionSettings, tournament: str, model_name: str | None,
                          round_label: str, submission: pd.DataFrame, now: dt.datetime | None = None) -> dict:
    """The churn report of ``submission`` against the model's recent submissions (this round's own
    excluded), gated: raises in ``refuse`` mode above a threshold, else the report carries the
    ``warning`` (or None)."""
    previous = recent_submissions(store, tournament, model_name, lookback_days=settings.churn_lookback_days,
                                  limit=settings.churn_history, exclude_round=round_label, now=now)
    report = churn_report(submission, previous, settings)
    report["warning"] = gate(report)
    return report


# --------------------------------------------------------------------------------------------
# Neutral churn against the model's recent submissions (Signals)
# --------------------------------------------------------------------------------------------


def neutral_churn_report(submission: pd.DataFrame, previous: list[PastSubmission],
                         neutralizers_now: pd.DataFrame, neutralizers_at: Any, settings: SubmissionSettings,
                         used: str) -> dict:
    """Neutral churn of ``submission`` against each of ``previous`` (each side neutralised against its
    own date's neutralizers: ``neutralizers_now``, and ``neutralizers_at(past)`` for a past one), the
    payout penalty of the largest, the floor ``submission.min_neutral_churn_penalty`` and the verdict.
    ``used`` says which neutralizers these are (Numerai publishes no live neutralizer)."""
    current = _signal_series(submission)
    pairs = [(past.round_label, neutral_churn(current, past.signal, neutralizers_now, neutralizers_at(past)))
             for past in previous]
    comparisons = [{"round": label, "neutral_churn": value} for label, value in pairs]
    values = [value for _, value in pairs if value is not None]
    worst = max(values) if values else None
    penalty = neutral_churn_penalty(min(max(worst, 0.0), 2.0)) if worst is not None else None
    floor = settings.min_neutral_churn_penalty
    problems = ([f"neutral-churn penalty {penalty:.3f} < floor {floor:.3f} (neutral churn {worst:.3f})"]
                if penalty is not None and penalty < floor else [])
    report: dict[str, Any] = {"max_neutral_churn": worst, "neutral_churn_penalty": penalty, "penalty_floor": floor,
                              "gate": settings.churn_gate, "neutralizers": used, "compared_with": comparisons,
                              "problems": problems}
    if not comparisons:
        report["note"] = "no submission of this model in the lookback window: nothing to compare"
    elif not values:
        report["note"] = "no recent submission shares 80 % of its tickers with this one and the neutralizers"
    return report


def neutral_churn_message(report: dict) -> str:
    """One line: the neutral churn, its penalty, the floor and what it was neutralised against."""
    worst, penalty = report["max_neutral_churn"], report["neutral_churn_penalty"]
    line = (f"neutral churn {'—' if worst is None else format(worst, '.3f')}, payout penalty "
            f"{'—' if penalty is None else format(penalty, '.3f')} (share of a positive payout kept; floor "
            f"{report['penalty_floor']:.3f}) against {len(report['compared_with'])} recent submissions, neutralised "
            f"against {report['neutralizers']}")
    return line + (f"; {report['note']}" if report.get("note") else "")


def neutral_churn_gate(report: dict) -> str | None:
    """Like ``gate``, for the neutral-churn penalty below ``submission.min_neutral_churn_penalty``."""
    if not report["problems"]:
        return None
    detail = "; ".join(report["problems"])
    if report["gate"] == "refuse":
        raise BadInputError(
            f"not uploaded: {detail} against the model's recent submissions (submission.min_neutral_churn_penalty, "
            "submission.churn_gate = refuse). Numerai keeps only this share of a positive payout; change the signal "
            "less from one submission to the next, lower submission.min_neutral_churn_penalty, or set "
            "submission.churn_gate = \"warn\" to upload anyway", tag="churn_gate")
    return (f"churn gate warning: {detail} (submission.min_neutral_churn_penalty; uploaded anyway: "
            "submission.churn_gate = warn)")
