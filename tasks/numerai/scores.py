"""Live scores back from Numerai: every model's recent round scores into a Parquet history.

``fetch_scores`` asks Numerai (numerapi's ``submission_scores``, the ``submissionScores`` query)
for each model's last rounds; ``merge_history`` keeps one row per (model, round, metric, day),
newest fetch winning, written atomically to ``scores/<tournament>/history.parquet``
(``SCORES_SCHEMA``). ``summarise`` gives per model the last rounds (each metric's latest scoring
day), a rolling mean and the rounds it missed; ``score_alerts`` turns a missed round or a mean
below the floor into notices.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from numerflow.tasks.core.schemas import SCORES_SCHEMA
from numerflow.tasks.core.store import Store, read_parquet, write_parquet
from numerflow.tasks.numerai.client import NumeraiClient, RoundInfo

KEY = ["model", "round", "metric", "day"]


def history_path(store: Store, tournament: str) -> Path:
    return store.root / "scores" / tournament / "history.parquet"


def fetch_scores(client: NumeraiClient, model_ids: Mapping[str, str], last_n_rounds: int,
                 now: dt.datetime | None = None) -> pd.DataFrame:
    """Every model's scores of its last ``last_n_rounds`` rounds, one row per score and day."""
    now = now or dt.datetime.now(dt.UTC)
    rows = []
    for name, model_id in model_ids.items():
        for score in client.submission_scores(model_id, last_n_rounds):
            rows.append({"model": name, "model_id": model_id, "round": score.get("roundNumber"),
                         "metric": score.get("displayName"), "value": score.get("value"),
                         "percentile": score.get("percentile"), "day": score.get("day"), "date": score.get("date"),
                         "resolved": bool(score.get("resolved")), "fetched_at": now})
    return _typed(pd.DataFrame(rows, columns=SCORES_SCHEMA.names))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.dropna(subset=["round", "metric"]).copy()
    frame["round"] = frame["round"].astype("int64")
    frame["day"] = pd.to_numeric(frame["day"], errors="coerce").fillna(-1).astype("int64")
    for column in ("value", "percentile"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in ("date", "fetched_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["resolved"] = frame["resolved"].astype(bool)
    return frame.reset_index(drop=True)


def read_history(store: Store, tournament: str) -> pd.DataFrame:
    path = history_path(store, tournament)
    if not path.exists():
        return _typed(pd.DataFrame(columns=SCORES_SCHEMA.names))
    return _typed(read_parquet(path))


def merge_history(store: Store, tournament: str, fetched: pd.DataFrame) -> Path:
    """Add ``fetched`` to the history: one row per (model, round, metric, day), the newest wins."""
    merged = pd.concat([read_history(store, tournament), fetched], ignore_index=True)
    merged = merged.sort_values("fetched_at", kind="stable").drop_duplicates(KEY, keep="last")
    merged = merged.sort_values(["model", "round", "metric", "day"]).reset_index(drop=True)
    table = pa.Table.from_pandas(merged[SCORES_SCHEMA.names], schema=SCORES_SCHEMA, preserve_index=False)
    return write_parquet(history_path(store, tournament), table)


@dataclass(frozen=True)
class ModelScores:
    """One model's recent live scores: per round, each metric's latest scoring day."""

    model: str
    rounds: list[dict]  # {"round", "resolved", <metric>: value, …}, newest first
    rolling_mean: dict[str, float]  # metric → mean over the latest N scored rounds
    missed: list[int] = field(default_factory=list)  # closed rounds with neither a submission nor a score

    def as_dict(self) -> dict:
        return asdict(self)


def summarise(history: pd.DataFrame, models: list[str], *, n: int, closed_rounds: list[int] | None = None,
              submitted: Mapping[str, set[int]] | None = None, last: int = 10) -> list[ModelScores]:
    """Per model (in ``models`` order): its last ``last`` rounds, the mean of each metric over its
    latest ``n`` scored rounds, and which of ``closed_rounds`` (the latest N closed) it missed:
    no score and no ledger entry (``submitted``)."""
    latest = (history.sort_values("day", kind="stable").groupby(["model", "round", "metric"], as_index=False).last())
    out = []
    for name in models:
        mine = latest[latest["model"] == name]
        wide = mine.pivot_table(index="round", columns="metric", values="value", aggfunc="last").sort_index(
            ascending=False)
        resolved = mine.groupby("round")["resolved"].all()
        rounds = [{"round": int(r), "resolved": bool(resolved.get(r, False)),
                   **{m: (None if pd.isna(v) else float(v)) for m, v in row.items()}}
                  for r, row in wide.head(last).iterrows()]
        rolling = {str(m): float(v) for m, v in wide.head(n).mean(skipna=True).items() if pd.notna(v)}
        scored = set(wide.index.astype(int))
        sent = set((submitted or {}).get(name, set()))
        missed = sorted(r for r in (closed_rounds or []) if r not in scored and r not in sent)
        out.append(ModelScores(name, rounds, rolling, missed))
    return out


def metric_column(scores: ModelScores, metric: str) -> str | None:
    """The displayName the configured metric names: equal, else the one containing it (case-insensitive)."""
    names = sorted(scores.rolling_mean)
    exact = [m for m in names if m.lower() == metric.lower()]
    partial = [m for m in names if metric.lower() in m.lower()]
    found = exact or partial
    return found[0] if found else None


def score_alerts(summaries: list[ModelScores], *, metric: str, floor: float | None, n: int) -> list[dict]:
    """Notices: a model that missed a round, or whose mean ``metric`` over ``n`` rounds is below ``floor``."""
    alerts = []
    for s in summaries:
        for round_number in s.missed:
            alerts.append({"model": s.model, "kind": "missed", "round": round_number,
                           "text": f"model {s.model} missed round {round_number}: no submission and no score"})
        column = metric_column(s, metric)
        if floor is not None and column is not None and s.rounds:
            mean = s.rolling_mean[column]
            if mean < floor:
                newest = s.rounds[0]["round"]
                alerts.append({"model": s.model, "kind": "below_floor", "round": newest,
                               "text": f"model {s.model}: mean {column} {mean:.4f} over its last {n} scored rounds "
                               f"(to round {newest}) is below the floor {floor}"})
    return alerts



def closed_round_numbers(rounds: list[RoundInfo], n: int, now: dt.datetime | None = None) -> list[int]:
    """The latest ``n`` rounds whose submission window has closed."""
    now = now or dt.datetime.now(dt.UTC)
    return sorted(r.number for r in rounds if r.close_time <= now)[-n:]
