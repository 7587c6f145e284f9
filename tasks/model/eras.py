"""Era summaries: scores the way Numerai shows them, not the way overlapping daily scores flatter.

A per-date score on a 20-trading-day target shares most of its window with the next 19 dates',
so the daily series is heavily autocorrelated: its naive standard error is several times too
small, and the drawdown of its cumulative sum (about -6 on a pure-noise demo run) measures the
overlap, not a loss anyone would see on Numerai. So:

- **eras** are weekly and do not share a date: the last scored date of each week (weeks ending
  Friday, Numerai's data dates), one score each. Summaries on them: mean, std, sharpe
  (mean / std, not annualised), max drawdown of the cumulative era scores, share of positive
  eras, number of eras.
- **daily** scores stay available with their mean, the overlap-adjusted (Newey–West) standard
  error for the target's span, and the t-statistic; no sharpe and no drawdown is computed on them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from numerflow.tasks.model.scoring import overlap_adjusted_sem

#: Numerai's weekly data dates fall on Fridays: a week is the period ending Friday.
ERA_FREQUENCY = "W-FRI"


def weekly_era_dates(dates: pd.DatetimeIndex | pd.Series) -> pd.DatetimeIndex:
    """The last date of each week (weeks ending Friday) among ``dates``: one date per era."""
    index = pd.DatetimeIndex(pd.to_datetime(pd.Series(dates)).dropna().unique()).sort_values()
    if index.empty:
        return index
    weeks = index.to_period(ERA_FREQUENCY)
    last = pd.Series(index, index=weeks).groupby(level=0).max()
    return pd.DatetimeIndex(last.to_numpy())


def era_summary(per_era: pd.Series) -> dict[str, float | int]:
    """mean, std (ddof 1), sharpe (mean / std), max_drawdown (deepest fall of the cumulative era
    scores below their running peak, the peak starting at 0; <= 0), positive_share, n_eras."""
    scores = pd.Series(per_era, dtype="float64").dropna().to_numpy()
    n = int(scores.shape[0])
    mean = float(scores.mean()) if n else math.nan
    std = float(scores.std(ddof=1)) if n >= 2 else math.nan
    if n:
        cumulative = np.concatenate(([0.0], np.cumsum(scores)))
        drawdown = float(np.min(cumulative - np.maximum.accumulate(cumulative)))
    else:
        drawdown = math.nan
    return {"mean": mean, "std": std, "sharpe": mean / std if std > 0 else math.nan, "max_drawdown": drawdown,
            "positive_share": float((scores > 0).mean()) if n else math.nan, "n_eras": n}


def daily_summary(per_date: pd.Series, overlap: int) -> dict[str, float | int]:
    """mean, naive sem, overlap-adjusted sem (``overlap`` dates), t-stat on the adjusted sem, n_dates."""
    scores = pd.Series(per_date, dtype="float64").dropna()
    n = int(len(scores))
    mean = float(scores.mean()) if n else math.nan
    naive = float(scores.std(ddof=1) / math.sqrt(n)) if n >= 2 else math.nan
    adjusted = overlap_adjusted_sem(scores, overlap)
    return {"mean": mean, "sem": naive, "sem_overlap_adjusted": adjusted,
            "t_stat": mean / adjusted if adjusted and adjusted > 0 else math.nan, "overlap": int(overlap),
            "n_dates": n}


def _json(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def era_metrics(per_date: dict[str, list], overlap: int, scores: tuple[str, ...] = ("corr", "fnc")) -> dict:
    """From a per-date dict (``date`` and one list per score): ``{score: era summary}``,
    ``daily: {score: daily summary}``, ``per_era: {"date": [...], score: [...]}``; JSON-ready."""
    index = pd.to_datetime(pd.Series(per_date["date"]))
    frame = pd.DataFrame({name: pd.Series(per_date[name], dtype="float64").to_numpy()
                          for name in scores if name in per_date}, index=pd.DatetimeIndex(index))
    eras = weekly_era_dates(frame.index)
    per_era = frame.loc[eras]
    out: dict[str, Any] = {}
    for name in frame.columns:
        out[name] = {k: _json(v) for k, v in era_summary(per_era[name]).items()}
    out["daily"] = {name: {k: _json(v) for k, v in daily_summary(frame[name], overlap).items()}
                    for name in frame.columns}
    out["per_era"] = {"date": [d.date().isoformat() for d in eras],
                      **{name: [_json(float(v)) for v in per_era[name].to_numpy()] for name in frame.columns}}
    return out


def with_score(metrics: dict, name: str, per_date: pd.Series, overlap: int) -> dict:
    """``metrics`` plus a score computed elsewhere (ALPHA, from Numerai's neutralizers): its era
    summary under ``name``, its daily summary, its per-era values aligned on the era weeks of
    ``metrics["per_era"]``, and its own per-date list under ``per_date_<name>``."""
    series = pd.Series(per_date, dtype="float64")
    series.index = pd.DatetimeIndex(pd.to_datetime(series.index))
    series = series.sort_index()
    eras = weekly_era_dates(series.dropna().index)
    out = dict(metrics)
    out[name] = {k: _json(v) for k, v in era_summary(series.loc[eras]).items()}
    out["daily"] = {**(metrics.get("daily") or {}), name: {k: _json(v) for k, v in
                                                           daily_summary(series, overlap).items()}}
    by_week = pd.Series(series.loc[eras].to_numpy(), index=eras.to_period(ERA_FREQUENCY))
    per_era = dict(metrics.get("per_era") or {"date": [d.date().isoformat() for d in eras]})
    weeks = pd.DatetimeIndex(pd.to_datetime(pd.Series(per_era["date"]))).to_period(ERA_FREQUENCY)
    per_era[name] = [_json(float(by_week.get(week, math.nan))) for week in weeks]
    out["per_era"] = per_era
    out[f"per_date_{name}"] = {"date": [d.date().isoformat() for d in series.index],
                               name: [_json(float(v)) for v in series.to_numpy()]}
    return out


def feature_scores(metrics: dict, own: pd.DataFrame, overlap: int, score: str = "corr",
                   importance: dict[str, float] | None = None) -> dict:
    """``metrics`` plus per-feature diagnostics, JSON-ready: ``features: {name: {<score>: daily summary of
    the feature's own per-date score (mean, overlap-adjusted sem, t-stat), importance_gain_share}}`` and
    ``per_date_features: {<score>: {"date": [...], name: [...]}}``. ``own``: per-date scores, one column per
    feature (``tasks.model.scoring.feature_corr_by_date``, or ALPHA per feature); earlier scores are kept."""
    out = dict(metrics)
    features = {name: dict(entry) for name, entry in (metrics.get("features") or {}).items()}
    for name, share in (importance or {}).items():
        features.setdefault(name, {})["importance_gain_share"] = _json(float(share))
    for name in own.columns:
        features.setdefault(name, {})[score] = {k: _json(v) for k, v in daily_summary(own[name], overlap).items()}
    dates = pd.DatetimeIndex(pd.to_datetime(own.index))
    per_date = dict(metrics.get("per_date_features") or {})
    per_date[score] = {"date": [d.date().isoformat() for d in dates],
                       **{name: [_json(float(v)) for v in own[name].to_numpy()] for name in own.columns}}
    out["features"], out["per_date_features"] = features, per_date
    return out
